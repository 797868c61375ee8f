//! Shapes and memory worked out without running (`Model::value_shape`,
//! `Model::estimate_forward_bytes`) against real passes: every inferred shape must be the shape
//! the pass produces, on a generated model that uses every kind of shape rule and on the real
//! models, and a job beyond the element limit must be refused before anything is allocated.

mod common;

use convscope_engine::{Model, Pass, Tensor, ValueId};
use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, TensorProto};

fn dims(v: &[i64]) -> Vec<Dim> {
    v.iter().map(|&d| Dim::Value(d)).collect()
}

fn w(name: &str, shape: &[usize]) -> TensorProto {
    let n: usize = shape.iter().product();
    TensorProto::from_f32(
        name,
        shape,
        &(0..n)
            .map(|i| ((i * 7) % 11) as f32 * 0.01 - 0.05)
            .collect::<Vec<_>>(),
    )
}

/// A model with a dynamic spatial size that goes through every shape rule: strided, dilated,
/// grouped and SAME-padded convolutions, a transposed convolution, pooling with ceil mode,
/// Pad, Resize by scales and by sizes computed from the input's shape, Concat, Split, Slice,
/// Gather, Transpose, Squeeze/Unsqueeze, a reduction, Cast, Dropout, and a head that flattens
/// through a Shape → Gather → Concat → Reshape subgraph into MatMul and Gemm.
fn zoo() -> (Model, Vec<&'static str>) {
    let mut g = GraphBuilder::new("zoo");
    g.input(
        "x",
        &[
            Dim::Value(1),
            Dim::Value(3),
            Dim::Param("H".into()),
            Dim::Param("W".into()),
        ],
    )
    .initializer(w("w1", &[8, 3, 3, 3]))
    .initializer(w("b1", &[8]))
    .initializer(w("w2", &[8, 2, 3, 3]))
    .initializer(w("w3", &[8, 8, 1, 1]))
    .initializer(w("wt", &[8, 4, 2, 2]))
    .initializer(TensorProto::from_i64(
        "pads",
        &[8],
        &[0, 0, 1, 2, 0, 0, 2, 1],
    ))
    .initializer(TensorProto::from_f32(
        "scales",
        &[4],
        &[1.0, 1.0, 1.5, 0.75],
    ))
    .initializer(TensorProto::from_i64("hw_idx", &[2], &[2, 3]))
    .initializer(TensorProto::from_i64("nc", &[2], &[1, 4]))
    .initializer(TensorProto::from_i64("starts", &[2], &[1, -5]))
    .initializer(TensorProto::from_i64("ends", &[2], &[i64::MAX, -1]))
    .initializer(TensorProto::from_i64("axes", &[2], &[2, 3]))
    .initializer(TensorProto::from_i64("steps", &[2], &[2, 1]))
    .initializer(TensorProto::from_i64("pick", &[3], &[0, 2, 1]))
    .initializer(TensorProto::from_i64("zero", &[1], &[0]))
    .initializer(TensorProto::from_i64("minus1", &[1], &[-1]))
    .initializer(TensorProto::from_i64("ax0", &[1], &[0]))
    .node(
        "Conv",
        "conv1",
        &["x", "w1", "b1"],
        &["c1"],
        vec![A::ints("strides", &[2, 1]), A::ints("pads", &[1, 0, 1, 2])],
    )
    .node("Relu", "relu1", &["c1"], &["r1"], vec![])
    .node(
        "Conv",
        "grouped",
        &["r1", "w2"],
        &["c2"],
        vec![
            A::int("group", 4),
            A::ints("dilations", &[2, 2]),
            A::string("auto_pad", "SAME_UPPER"),
        ],
    )
    .node(
        "MaxPool",
        "pool",
        &["c2"],
        &["p"],
        vec![
            A::ints("kernel_shape", &[3, 3]),
            A::ints("strides", &[2, 2]),
            A::int("ceil_mode", 1),
        ],
    )
    .node("Pad", "pad", &["p", "pads"], &["pd"], vec![])
    .node("Resize", "up", &["pd", "", "scales"], &["u"], vec![])
    .node("Conv", "pw", &["u", "w3"], &["c3"], vec![])
    .node(
        "ConvTranspose",
        "deconv",
        &["c3", "wt"],
        &["dc"],
        vec![A::ints("strides", &[2, 2])],
    )
    .node(
        "Split",
        "split",
        &["dc"],
        &["s1", "s2"],
        vec![A::int("axis", 1)],
    )
    .node(
        "Concat",
        "cat",
        &["s2", "s1", "s2"],
        &["cc"],
        vec![A::int("axis", 1)],
    )
    .node(
        "Slice",
        "slice",
        &["cc", "starts", "ends", "axes", "steps"],
        &["sl"],
        vec![],
    )
    .node(
        "Gather",
        "gather",
        &["sl", "pick"],
        &["ga"],
        vec![A::int("axis", 1)],
    )
    .node(
        "Transpose",
        "tr",
        &["ga"],
        &["t"],
        vec![A::ints("perm", &[0, 2, 3, 1])],
    )
    .node("Unsqueeze", "unsq", &["t", "ax0"], &["us"], vec![])
    .node("Squeeze", "sq", &["us", "ax0"], &["sqz"], vec![])
    .node("Cast", "cast", &["sqz"], &["cs"], vec![A::int("to", 1)])
    .node("Dropout", "drop", &["cs"], &["dr"], vec![])
    .node(
        "ReduceMean",
        "mean",
        &["dr"],
        &["m"],
        vec![A::ints("axes", &[1]), A::int("keepdims", 1)],
    )
    // Resize by sizes computed from the input's shape: the map becomes (H/4, W/4)... at 6x6.
    .node("Shape", "shape", &["x"], &["xs"], vec![])
    .node("Gather", "hw", &["xs", "hw_idx"], &["hw"], vec![])
    .node(
        "Concat",
        "sizes",
        &["nc", "hw"],
        &["sz"],
        vec![A::int("axis", 0)],
    )
    .node("Resize", "fit", &["c3", "", "", "sz"], &["f"], vec![])
    .node("GlobalAveragePool", "gap", &["f"], &["gp"], vec![])
    // A head at a fixed size: average down to 6×6, flatten through a shape subgraph.
    .node(
        "AveragePool",
        "to6",
        &["m"],
        &["a6"],
        vec![A::ints("kernel_shape", &[1, 1])],
    )
    .node("Shape", "shape6", &["a6"], &["s6"], vec![])
    .node("Gather", "n6", &["s6", "zero"], &["n"], vec![])
    .node(
        "Concat",
        "flat_shape",
        &["n", "minus1"],
        &["fs"],
        vec![A::int("axis", 0)],
    )
    .node("Reshape", "flat", &["a6", "fs"], &["fl"], vec![])
    .output("gp", &[])
    .output("fl", &[]);
    let model = Model::from_proto(g.build(13)).expect("zoo loads");
    let names = vec![
        "c1", "r1", "c2", "p", "pd", "u", "c3", "dc", "s1", "s2", "cc", "sl", "ga", "t", "us",
        "sqz", "cs", "dr", "m", "f", "gp", "a6", "fl",
    ];
    (model, names)
}

/// Every inferred shape equals the shape of the value in a real pass.
fn assert_shapes_match(model: &Model, ids: &[ValueId], input: &[usize], case: &str) {
    let x = Tensor::full(input, 0.25);
    let tape = model
        .forward(&x, ids)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    for &id in ids {
        let Ok(real) = tape.value(id) else { continue };
        let inferred = model
            .value_shape(input, id)
            .unwrap_or_else(|e| panic!("{case}: '{}': {e}", model.value_name(id)));
        assert_eq!(
            inferred,
            real.shape(),
            "{case}: '{}' at input {input:?}",
            model.value_name(id)
        );
    }
}

#[test]
fn inferred_shapes_equal_the_real_ones_on_generated_models() {
    let (model, names) = zoo();
    let ids: Vec<ValueId> = names.iter().map(|n| model.resolve(n).unwrap()).collect();
    for (h, w) in [(23, 29), (24, 24), (31, 40), (17, 64)] {
        assert_shapes_match(&model, &ids, &[1, 3, h, w], &format!("zoo {h}x{w}"));
    }
}

#[test]
fn inferred_shapes_equal_the_real_ones_on_real_models() {
    for (file, sizes) in [
        ("models/vgg16_tumor.onnx", vec![(240, 240)]),
        (
            "models/efficientnet_lite0.onnx",
            vec![(224, 224), (161, 97)],
        ),
    ] {
        let Some(path) = common::shared(file) else {
            continue;
        };
        let model = Model::load(&path).unwrap();
        let mut ids: Vec<ValueId> = model
            .layers()
            .iter()
            .flat_map(|l| [l.value, l.raw_value])
            .collect();
        ids.extend_from_slice(model.outputs());
        // EfficientNet's head reshapes to a batch of one: the estimate fails where the pass
        // fails, naming the same node.
        let two = model.input_spec().shape(2, 224, 224);
        let out = model.outputs().to_vec();
        match (
            model.estimate_forward_bytes(&two, &out, Pass::Inference),
            model.run(&Tensor::zeros(&two), &out),
        ) {
            (Ok(_), Ok(_)) => {}
            (Err(e), Err(r)) => assert_eq!(e.to_string(), r.to_string(), "{file}"),
            (e, r) => panic!(
                "{file} at batch 2: estimate {e:?}, pass {:?}",
                r.map(|_| ())
            ),
        }
        for (h, w) in sizes {
            let shape = model.input_spec().shape(1, h, w);
            assert_shapes_match(&model, &ids, &shape, file);
            // The estimates are computed (and sane) for every kind of pass.
            let out = model.outputs().to_vec();
            let run = model
                .estimate_forward_bytes(&shape, &out, Pass::Inference)
                .unwrap();
            let tape = model
                .estimate_forward_bytes(&shape, &out, Pass::Tape)
                .unwrap();
            let grad = model
                .estimate_forward_bytes(&shape, &out, Pass::Gradient)
                .unwrap();
            assert!(run.peak_bytes < tape.peak_bytes && tape.peak_bytes < grad.peak_bytes);
            assert_eq!(tape.peak_bytes, tape.total_bytes);
            // The real tape holds what the estimate counts, minus values a fused activation
            // never stored.
            let real = model
                .forward(&Tensor::zeros(&shape), &out)
                .unwrap()
                .memory_bytes() as u64;
            assert!(
                real <= tape.peak_bytes,
                "{file}: tape {real} > estimate {tape:?}"
            );
            eprintln!(
                "{file} {h}x{w}: real tape {real} bytes, estimate {} ({:.2})",
                tape.peak_bytes,
                real as f64 / tape.peak_bytes as f64
            );
            assert!(
                real as f64 >= 0.99 * tape.peak_bytes as f64,
                "{file}: tape {real} below the estimate {tape:?}"
            );
        }
    }
}

/// A job whose tensors exceed the engine's element limit is refused from the shapes alone,
/// naming the node: the pass itself would first fill gigabytes. (Before, the only way to learn
/// it was to run it: `filters --size 16384` took 13 s and 6.2 GB to be refused.)
#[test]
fn oversized_jobs_are_refused_from_shapes() {
    let mut g = GraphBuilder::new("wide");
    g.input(
        "x",
        &[
            Dim::Value(1),
            Dim::Value(3),
            Dim::Param("H".into()),
            Dim::Param("W".into()),
        ],
    )
    .initializer(w("k", &[64, 3, 3, 3]))
    .node(
        "Conv",
        "block1_conv1",
        &["x", "k"],
        &["c"],
        vec![A::ints("pads", &[1, 1, 1, 1])],
    )
    .node("Relu", "relu", &["c"], &["y"], vec![])
    .output("y", &[]);
    let model = Model::from_proto(g.build(13)).unwrap();
    let y = model.resolve("y").unwrap();
    // 3 × 8192² fits one tensor, 64 × 8192² does not.
    let err = model
        .estimate_forward_bytes(&[1, 3, 8192, 8192], &[y], Pass::Inference)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("block1_conv1")
            && err.contains("[1, 64, 8192, 8192]")
            && err.contains("limit"),
        "{err}"
    );
    assert!(model.value_shape(&[1, 3, 8192, 8192], y).is_err());
    // The input itself beyond the limit.
    let err = model
        .estimate_forward_bytes(&[1, 3, 16384, 16384], &[y], Pass::Tape)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[1, 3, 16384, 16384]") && err.contains("limit"),
        "{err}"
    );
    // Within the limit: the figures of a two-value chain, by hand.
    let est = model
        .estimate_forward_bytes(&[1, 3, 64, 64], &[y], Pass::Gradient)
        .unwrap();
    let (x, c) = (3 * 64 * 64 * 4, 64 * 64 * 64 * 4);
    // The ReLU runs inside the convolution's sweep: the convolution's own output is never
    // stored.
    assert_eq!(est.total_bytes, (x + c) as u64);
    // Tape, then the seed (dy), dc formed beside it, then dx formed beside dc.
    assert_eq!(est.peak_bytes, (x + c) as u64 + (2 * c).max(c + x) as u64);
    assert_eq!(est.largest.1, [1, 64, 64, 64]);
}

/// Shapes that depend on the input's values cannot be known before running: a clear error,
/// not a guess.
#[test]
fn data_dependent_shapes_are_reported() {
    let mut g = GraphBuilder::new("dd");
    g.input("x", &dims(&[1, 1, 2, 2]))
        .node("Cast", "to_int", &["x"], &["xi"], vec![A::int("to", 7)])
        .node("Reshape", "reshape", &["x", "xi"], &["y"], vec![])
        .output("y", &[]);
    let model = Model::from_proto(g.build(13)).unwrap();
    let y = model.resolve("y").unwrap();
    let err = model.value_shape(&[1, 1, 2, 2], y).unwrap_err();
    assert!(err.is_shape_unknown(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("reshape") && msg.contains("input's values"),
        "{msg}"
    );
    // The pass itself runs.
    let x = Tensor::new(vec![1, 1, 2, 2], vec![2.0, 2.0, 1.0, 1.0]).unwrap();
    assert_eq!(model.run_float(&x, &[y]).unwrap()[0].shape(), [2, 2, 1, 1]);
}

/// Which convolution outputs the estimate leaves out (those of a convolution run with its
/// activation) is the plan's decision, read from the plan: a Relu and a Clip with a clamp run
/// inside their convolution and the tape never holds the convolution's output, while a Clip
/// whose bounds are no clamp (min above max) runs apart and the tape does hold it. The
/// estimate of each tape must be exactly what the real tape holds. (Before the estimate read
/// the plan it matched Conv + Relu/Clip itself, counted the third case as fused, and came out
/// one convolution output below the real tape.)
#[test]
fn the_estimate_counts_the_fusions_the_plan_makes() {
    for (case, bounds) in [
        ("relu", None),
        ("clip 0..6", Some((0.0f32, 6.0f32))),
        ("clip 1..0", Some((1.0, 0.0))),
    ] {
        let mut g = GraphBuilder::new("act");
        g.input("x", &dims(&[1, 3, 20, 24]))
            .initializer(w("k", &[8, 3, 3, 3]))
            .node(
                "Conv",
                "conv",
                &["x", "k"],
                &["c"],
                vec![A::ints("pads", &[1, 1, 1, 1])],
            );
        match bounds {
            None => g.node("Relu", "act", &["c"], &["y"], vec![]),
            Some((lo, hi)) => g
                .initializer(TensorProto::from_f32("lo", &[], &[lo]))
                .initializer(TensorProto::from_f32("hi", &[], &[hi]))
                .node("Clip", "act", &["c", "lo", "hi"], &["y"], vec![]),
        };
        g.output("y", &[]);
        let model = Model::from_proto(g.build(13)).unwrap();
        let y = model.resolve("y").unwrap();
        let shape = [1, 3, 20, 24];
        let est = model
            .estimate_forward_bytes(&shape, &[y], Pass::Tape)
            .unwrap();
        let real = model
            .forward(&Tensor::zeros(&shape), &[y])
            .unwrap()
            .memory_bytes() as u64;
        let (x, c) = (3 * 20 * 24 * 4, 8 * 20 * 24 * 4);
        let fused = bounds.is_none_or(|(lo, hi)| lo <= hi);
        let expected = if fused { x + c } else { x + 2 * c };
        assert_eq!(real, expected as u64, "{case}: the real tape");
        assert_eq!(est.peak_bytes, real, "{case}: the estimate");
    }
}
