//! Writing a trained [`Network`] as an ONNX model with convscope's own ONNX writer.
//!
//! The graph reads like the architecture: nodes `conv1`, `relu1`, `pool1`, …, `conv4`,
//! `relu4`, `gap` (GlobalAveragePool), `flatten`, `classifier` (Gemm) and `softmax`. The
//! input `image` is `[N, 3, H, W]` with symbolic `N`, `H` and `W`; the output is
//! `probabilities` `[N, classes]`. The value names match the node names plus a suffix
//! (`relu4` produces `relu4_out`); the classifier's pre-softmax output is called `logits`.
//!
//! ```
//! use convscope_demo_train::export::{to_onnx, LOGITS, OUTPUT};
//! use convscope_demo_train::train::{Architecture, Network};
//! use convscope_engine::{Model, Tensor};
//!
//! let net = Network::new(Architecture { channels: vec![3, 4, 4, 4, 8], classes: 4 }, 3);
//! let bytes = to_onnx(&net, "doc test").encode();
//! let model = Model::from_bytes(&bytes)?;
//! let x = Tensor::full(&[1, 3, 32, 48], 0.5);
//! let out = model.run_float(&x, &[model.resolve(OUTPUT)?, model.resolve(LOGITS)?])?;
//! assert_eq!(out[0].shape(), &[1, 4]);
//! let expect = net.logits(&vec![0.5; 3 * 32 * 48], 32, 48);
//! for (a, b) in out[1].data().iter().zip(&expect) {
//!     assert!((a - b).abs() < 1e-4);
//! }
//! # Ok::<(), convscope_engine::Error>(())
//! ```

use convscope_onnx::{AttributeProto, Dim, GraphBuilder, ModelProto, TensorProto};

use crate::train::Network;

/// The model's interface names live with the assets, so the program can read them without
/// this crate; they are re-exported here for the exporter's readers.
pub use convscope_demo::{INPUT, LOGITS, OUTPUT};

/// The ONNX opset the model is written for.
pub const OPSET: i64 = 13;

/// Node name of 1-based conv `i` (`conv1`, …).
pub fn conv_node(i: usize) -> String {
    format!("conv{i}")
}

/// Name of the value produced by the ReLU after 1-based conv `i` (`relu1_out`, …); for the
/// last conv this is the Grad-CAM target.
pub fn relu_value(i: usize) -> String {
    format!("relu{i}_out")
}

/// The ONNX model of `net`; `doc` becomes the model's doc string.
pub fn to_onnx(net: &Network, doc: &str) -> ModelProto {
    let arch = net.architecture();
    let n = arch.convs();
    let mut g = GraphBuilder::new("convscope_demo");
    g.input(
        INPUT,
        &[
            Dim::Param("N".into()),
            Dim::Value(arch.channels[0] as i64),
            Dim::Param("H".into()),
            Dim::Param("W".into()),
        ],
    );
    let mut x = INPUT.to_string();
    for l in 0..n {
        let i = l + 1;
        let (cin, cout) = (arch.channels[l], arch.channels[l + 1]);
        let (w, b) = (format!("conv{i}.weight"), format!("conv{i}.bias"));
        g.initializer(TensorProto::from_f32(
            &w,
            &[cout, cin, 3, 3],
            net.conv_weight(l),
        ))
        .initializer(TensorProto::from_f32(&b, &[cout], net.conv_bias(l)));
        let conv_out = format!("conv{i}_out");
        g.node(
            "Conv",
            &conv_node(i),
            &[&x, &w, &b],
            &[&conv_out],
            vec![
                AttributeProto::ints("kernel_shape", &[3, 3]),
                AttributeProto::ints("pads", &[1, 1, 1, 1]),
                AttributeProto::ints("strides", &[1, 1]),
            ],
        );
        let relu_out = relu_value(i);
        g.node(
            "Relu",
            &format!("relu{i}"),
            &[&conv_out],
            &[&relu_out],
            vec![],
        );
        x = relu_out;
        if i < n {
            let pool_out = format!("pool{i}_out");
            g.node(
                "MaxPool",
                &format!("pool{i}"),
                &[&x],
                &[&pool_out],
                vec![
                    AttributeProto::ints("kernel_shape", &[2, 2]),
                    AttributeProto::ints("strides", &[2, 2]),
                ],
            );
            x = pool_out;
        }
    }
    g.node("GlobalAveragePool", "gap", &[&x], &["gap_out"], vec![])
        .node(
            "Flatten",
            "flatten",
            &["gap_out"],
            &["features"],
            vec![AttributeProto::int("axis", 1)],
        )
        .initializer(TensorProto::from_f32(
            "classifier.weight",
            &[arch.classes, arch.features()],
            net.classifier_weight(),
        ))
        .initializer(TensorProto::from_f32(
            "classifier.bias",
            &[arch.classes],
            net.classifier_bias(),
        ))
        .node(
            "Gemm",
            "classifier",
            &["features", "classifier.weight", "classifier.bias"],
            &[LOGITS],
            vec![AttributeProto::int("transB", 1)],
        )
        .node(
            "Softmax",
            "softmax",
            &[LOGITS],
            &[OUTPUT],
            vec![AttributeProto::int("axis", 1)],
        )
        .output(
            OUTPUT,
            &[Dim::Param("N".into()), Dim::Value(arch.classes as i64)],
        );
    let mut model = g.build(OPSET);
    model.doc_string = doc.to_string();
    model
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{batch, Architecture};
    use convscope_demo::scene::{derive_seed, Sample};
    use convscope_engine::{Model, Tensor};

    #[test]
    fn engine_matches_trainer_on_random_weights() {
        let arch = Architecture::default();
        let net = Network::new(arch, 21);
        let model = Model::from_bytes(&to_onnx(&net, "").encode()).unwrap();
        assert_eq!(model.parameter_count(), net.parameters().len());
        let (x, _) = batch(derive_seed(3, 3), 0, 4);
        let t = Tensor::new(vec![4, 3, 64, 64], x.clone()).unwrap();
        let ids = [
            model.resolve(LOGITS).unwrap(),
            model.resolve(OUTPUT).unwrap(),
            model.resolve(&relu_value(4)).unwrap(),
        ];
        let out = model.run_float(&t, &ids).unwrap();
        for (i, xi) in x.chunks(3 * 64 * 64).enumerate() {
            let logits = net.logits(xi, 64, 64);
            let probs = net.probabilities(xi, 64, 64);
            for k in 0..4 {
                assert!((out[0].data()[i * 4 + k] - logits[k]).abs() < 1e-4);
                assert!((out[1].data()[i * 4 + k] - probs[k]).abs() < 1e-5);
            }
            let (act, fh, fw) = net.last_conv_output(xi, 64, 64);
            assert_eq!((fh, fw), (8, 8));
            let e = &out[2].data()[i * act.len()..(i + 1) * act.len()];
            let err = act
                .iter()
                .zip(e)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-4, "{err}");
        }
        // A scene of another size (non-square, odd pooled sizes).
        let s = Sample::generate(5);
        let img: Vec<f32> = s.image.to_chw_unit()[..3 * 64 * 64].to_vec();
        let crop: Vec<f32> = (0..3)
            .flat_map(|c| {
                let img = &img;
                (0..40).flat_map(move |y| (0..56).map(move |x| img[c * 4096 + y * 64 + x]))
            })
            .collect();
        let t = Tensor::new(vec![1, 3, 40, 56], crop.clone()).unwrap();
        let out = model.run_float(&t, &[ids[0]]).unwrap();
        let logits = net.logits(&crop, 40, 56);
        for (a, b) in out[0].data().iter().zip(&logits) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn layers_read_like_the_architecture() {
        let net = Network::new(Architecture::default(), 1);
        let model = Model::from_bytes(&to_onnx(&net, "").encode()).unwrap();
        let names: Vec<&str> = model.layers().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv1",
                "pool1",
                "conv2",
                "pool2",
                "conv3",
                "pool3",
                "conv4",
                "gap",
                "classifier"
            ]
        );
        let spec = model.input_spec();
        assert_eq!((spec.channels, spec.height, spec.width), (3, None, None));
        let conv4 = model.layer(convscope_demo::CAM_LAYER).unwrap();
        assert_eq!(model.value_name(conv4.value), relu_value(4));
        assert_eq!(relu_value(4), convscope_demo::CAM_VALUE);
    }
}
