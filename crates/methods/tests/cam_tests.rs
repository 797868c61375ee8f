//! Class activation maps and saliency: known-answer models built with `GraphBuilder`, edge
//! cases, a model-randomisation sanity check, Integrated Gradients' completeness, and the real
//! EfficientNet-Lite0 against pytorch-grad-cam's maps.

use std::time::Instant;

use convscope_engine::{Model, Tensor};
use convscope_methods::cam::{
    auto_layer, compute_cams, find_classifier, method, method_names, predict, run_cams, CamConfig,
    OutputKind,
};
use convscope_methods::saliency::{
    compute_saliency, integrated_gradients, saliency_method_names, smooth_grad, vanilla_gradient,
    SaliencyConfig,
};
use convscope_methods::target::{classes, Class};
use convscope_methods::transform::Rng;
use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, TensorProto};
use convscope_test_support::{
    argmax, chelsea_crop, hwc_to_chw, pearson_f32, reference_json, shared, spearman,
};

// ---------------------------------------------------------------------------------------------
// Toy models
// ---------------------------------------------------------------------------------------------

const S: usize = 16;

/// How the toy classifier ends.
#[derive(Clone, Copy, PartialEq)]
enum Head {
    /// Flatten → Gemm (logits).
    Logits,
    /// Flatten → Gemm → Softmax.
    Softmax,
    /// Reshape to the constant `[1, -1]` → Gemm: runs one image at a time only.
    FixedReshape,
}

/// `x [1,1,16,16]` → Conv 3×3 (2 filters: 0 = bright detector, 1 = dark detector) → Relu →
/// MaxPool 2×2 (`pool`, 8×8) → GlobalAveragePool → Flatten → Gemm to 3 classes:
/// class 0 = 8·mean(ch 0) ("a bright object"), class 1 = 8·mean(ch 1) ("dark"),
/// class 2 = −mean(ch 0) − mean(ch 1) (no positive evidence anywhere).
fn toy(head: Head) -> Model {
    let mut g = GraphBuilder::new("toy");
    g.input(
        "x",
        &[
            Dim::Value(1),
            Dim::Value(1),
            Dim::Value(S as i64),
            Dim::Value(S as i64),
        ],
    )
    .output("y", &[]);
    let mut w = vec![1.0 / 9.0; 9];
    w.extend([-1.0 / 9.0; 9]);
    g.initializer(TensorProto::from_f32("w", &[2, 1, 3, 3], &w))
        .initializer(TensorProto::from_f32("b", &[2], &[0.0, 0.5]))
        .initializer(TensorProto::from_f32(
            "fw",
            &[3, 2],
            &[8.0, 0.0, 0.0, 8.0, -1.0, -1.0],
        ))
        .initializer(TensorProto::from_f32("fb", &[3], &[0.0, 0.0, 0.0]))
        .node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", "relu", &["c"], &["r"], vec![])
        .node(
            "MaxPool",
            "pool",
            &["r"],
            &["p"],
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("strides", &[2, 2]),
            ],
        )
        .node("GlobalAveragePool", "gap", &["p"], &["g"], vec![]);
    match head {
        Head::FixedReshape => {
            g.initializer(TensorProto::from_i64("shape", &[2], &[1, -1]));
            g.node("Reshape", "flat", &["g", "shape"], &["f"], vec![]);
        }
        _ => {
            g.node("Flatten", "flat", &["g"], &["f"], vec![]);
        }
    }
    let fc_out = if head == Head::Softmax { "z" } else { "y" };
    g.node(
        "Gemm",
        "fc",
        &["f", "fw", "fb"],
        &[fc_out],
        vec![A::int("transB", 1)],
    );
    if head == Head::Softmax {
        g.node("Softmax", "prob", &["z"], &["y"], vec![A::int("axis", 1)]);
    }
    Model::from_proto(g.build(13)).expect("toy model loads")
}

/// A black 16×16 image with a bright 5×5 square whose left column is `col`.
fn square(col: usize) -> Tensor {
    let mut x = Tensor::zeros(&[1, 1, S, S]);
    for y in 5..10 {
        for c in col..col + 5 {
            x.data_mut()[y * S + c] = 1.0;
        }
    }
    x
}

// ---------------------------------------------------------------------------------------------
// Known answers
// ---------------------------------------------------------------------------------------------

#[test]
fn every_method_finds_the_square_and_follows_it() {
    let model = toy(Head::Logits);
    let layer = model.layer("pool").expect("pool layer").value;
    assert_eq!(auto_layer(&model, &square(1)).unwrap().name, "pool");
    for name in method_names() {
        let m = method(name).unwrap();
        for (col, left) in [(1usize, true), (10, false)] {
            let cams =
                compute_cams(&model, &square(col), layer, &classes(&[0]), m.as_ref()).unwrap();
            let cam = &cams[0];
            assert_eq!((cam.height, cam.width, cam.class), (8, 8, Some(0)));
            assert!(!cam.all_zero, "{name}: empty map");
            let up = cam.normalized(S, S);
            assert!(up.iter().all(|v| (0.0..=1.0).contains(v)), "{name}: {up:?}");
            let peak_col = argmax(&up) % S;
            assert_eq!(
                peak_col < S / 2,
                left,
                "{name}: square at column {col}, peak at column {peak_col}"
            );
            // The peak is on the square itself (rows 5..10), not just the right half.
            let peak_row = argmax(&up) / S;
            assert!((4..=10).contains(&peak_row), "{name}: peak row {peak_row}");
        }
    }
}

#[test]
fn gradient_methods_agree_on_a_pooling_head() {
    // With a global-average-pooling head dScore/dA is constant per channel, so Grad-CAM,
    // XGrad-CAM and HiResCAM give the same map.
    let model = toy(Head::Logits);
    let layer = model.layer("pool").unwrap().value;
    let x = square(3);
    let get = |n: &str| {
        compute_cams(
            &model,
            &x,
            layer,
            &classes(&[0]),
            method(n).unwrap().as_ref(),
        )
        .unwrap()
        .remove(0)
        .raw
    };
    let g = get("gradcam");
    for other in ["xgradcam", "hirescam"] {
        for (a, b) in g.iter().zip(get(other)) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{other}");
        }
    }
}

#[test]
fn softmax_models_are_explained_through_their_logits() {
    let plain = toy(Head::Logits);
    let soft = toy(Head::Softmax);
    let x = square(2);
    let p0 = predict(&plain, &x).unwrap();
    let p1 = predict(&soft, &x).unwrap();
    let logits = p1.logits.clone().expect("the Softmax input is found");
    assert_eq!(p0.logits.as_ref().unwrap(), &logits);
    assert!((p1.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    for (a, b) in p0.probs.iter().zip(&p1.probs) {
        assert!(
            (a - b).abs() < 1e-6,
            "probabilities are not softmaxed twice"
        );
    }
    let tape = soft.forward(&x, &[soft.outputs()[0]]).unwrap();
    let cls = find_classifier(&soft, &tape).unwrap();
    assert_eq!(cls.kind, OutputKind::Softmax);
    assert_eq!(soft.value_name(cls.score), "z");
    let layer = |m: &Model| m.layer("pool").unwrap().value;
    let g = method("gradcam").unwrap();
    let a = compute_cams(&plain, &x, layer(&plain), &classes(&[0, 1]), g.as_ref()).unwrap();
    let b = compute_cams(&soft, &x, layer(&soft), &classes(&[0, 1]), g.as_ref()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn single_image_graphs_fall_back_to_one_image_per_pass() {
    // Score-CAM and Ablation-CAM batch their extra passes; a Reshape to [1, -1] breaks batches.
    let x = square(4);
    for name in ["scorecam", "ablationcam"] {
        let m = method(name).unwrap();
        let run = |h| {
            let model = toy(h);
            let layer = model.layer("pool").unwrap().value;
            compute_cams(&model, &x, layer, &classes(&[0, 1]), m.as_ref()).unwrap()
        };
        let (a, b) = (run(Head::Logits), run(Head::FixedReshape));
        for (ca, cb) in a.iter().zip(&b) {
            for (p, q) in ca.raw.iter().zip(&cb.raw) {
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + p.abs()),
                    "{name}: {p} vs {q}"
                );
            }
        }
    }
}

#[test]
fn extra_passes_are_shared_by_the_targets_of_a_call() {
    let model = toy(Head::Logits);
    let layer = model.layer("pool").unwrap().value;
    let x = square(6);
    for name in ["scorecam", "ablationcam"] {
        let m = method(name).unwrap();
        let both = compute_cams(&model, &x, layer, &classes(&[0, 1]), m.as_ref()).unwrap();
        for (i, t) in [0usize, 1].into_iter().enumerate() {
            let one = compute_cams(&model, &x, layer, &classes(&[t]), m.as_ref()).unwrap();
            assert_eq!(both[i], one[0], "{name} class {t}");
        }
    }
}

#[test]
fn run_cams_explains_the_top_classes_from_one_config() {
    let model = toy(Head::Softmax);
    let cfg = CamConfig {
        method: "gradcam++".into(),
        top: 2,
        ..CamConfig::default()
    };
    let run = run_cams(&model, &square(1), &cfg).unwrap();
    assert_eq!(run.method, "gradcam++");
    assert_eq!(run.layer_label, "pool");
    let top: Vec<usize> = run
        .prediction
        .as_ref()
        .unwrap()
        .top(2)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        run.cams
            .iter()
            .map(|c| c.class.unwrap())
            .collect::<Vec<_>>(),
        top
    );
    let cfg = CamConfig {
        layer: Some("conv".into()),
        targets: classes(&[0]),
        ..CamConfig::default()
    };
    let run = run_cams(&model, &square(1), &cfg).unwrap();
    assert_eq!((run.layer_label.as_str(), run.cams[0].height), ("conv", 16));
}

// ---------------------------------------------------------------------------------------------
// Edge cases
// ---------------------------------------------------------------------------------------------

#[test]
fn class_out_of_range_is_an_error_naming_the_class_count() {
    let model = toy(Head::Logits);
    let layer = model.layer("pool").unwrap().value;
    let e = compute_cams(
        &model,
        &square(1),
        layer,
        &classes(&[3]),
        method("gradcam").unwrap().as_ref(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("class index 3") && e.contains("3 classes"),
        "{e}"
    );
    let cfg = SaliencyConfig {
        target: Some(std::sync::Arc::new(Class(7))),
        ..SaliencyConfig::default()
    };
    let e = vanilla_gradient(&model, &square(1), &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 classes"), "{e}");
}

#[test]
fn a_class_without_positive_evidence_gives_an_all_zero_map() {
    let model = toy(Head::Logits);
    let layer = model.layer("pool").unwrap().value;
    for name in ["gradcam", "gradcam++", "xgradcam", "layercam", "hirescam"] {
        let cam = compute_cams(
            &model,
            &square(1),
            layer,
            &classes(&[2]),
            method(name).unwrap().as_ref(),
        )
        .unwrap()
        .remove(0);
        assert!(cam.all_zero, "{name}: {:?}", cam.raw);
        let up = cam.normalized(S, S);
        assert!(up.iter().all(|&v| v == 0.0), "{name}: all zero, never NaN");
    }
}

#[test]
fn layers_and_models_without_maps_are_rejected() {
    let model = toy(Head::Logits);
    let gap = model.layer("gap").unwrap().value;
    let e = compute_cams(
        &model,
        &square(1),
        gap,
        &classes(&[0]),
        method("gradcam").unwrap().as_ref(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no spatial feature map") && e.contains("gap"),
        "{e}"
    );
    let e = method("gradcam+++").err().unwrap().to_string();
    assert!(e.contains("valid methods") && e.contains("scorecam"), "{e}");
    // A model whose output is a feature map, not class scores.
    let mut g = GraphBuilder::new("fcn");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(1), Dim::Value(8), Dim::Value(8)],
    )
    .output("y", &[])
    .initializer(TensorProto::from_f32("w", &[2, 1, 3, 3], &[0.1; 18]))
    .node(
        "Conv",
        "conv",
        &["x", "w"],
        &["y"],
        vec![A::ints("pads", &[1, 1, 1, 1])],
    );
    let fcn = Model::from_proto(g.build(13)).unwrap();
    let e = predict(&fcn, &Tensor::zeros(&[1, 1, 8, 8]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("model without a classifier output"), "{e}");
    // A batch is refused.
    let layer = model.layer("pool").unwrap().value;
    let e = compute_cams(
        &model,
        &Tensor::zeros(&[2, 1, S, S]),
        layer,
        &classes(&[0]),
        method("gradcam").unwrap().as_ref(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("one image"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Sanity check (Adebayo et al., 2018): randomising the top layers must change the map
// ---------------------------------------------------------------------------------------------

/// `x [1,1,16,16]` → Conv 3×3 with 4 hand-made filters (bright, dark, horizontal and vertical
/// edges) → Relu → Conv 3×3 4→4 (`mix`) → Relu → GlobalAveragePool → Flatten → Gemm to 2
/// classes. `mix` and `fc` come from `top`, or are random when `top` is `None`.
fn layered(top: Option<(&[f32], &[f32])>, seed: u64) -> Model {
    let mut rng = Rng::new(seed);
    let mut normal =
        |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.uniform() - 0.5) * 2.0).collect() };
    let (mix, fc) = match top {
        Some((m, f)) => (m.to_vec(), f.to_vec()),
        None => (normal(4 * 4 * 9), normal(2 * 4)),
    };
    let mut w1 = vec![1.0 / 9.0; 9];
    w1.extend([-1.0 / 9.0; 9]);
    w1.extend([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0]);
    w1.extend([1.0, 0.0, -1.0, 1.0, 0.0, -1.0, 1.0, 0.0, -1.0]);
    let mut g = GraphBuilder::new("layered");
    g.input(
        "x",
        &[
            Dim::Value(1),
            Dim::Value(1),
            Dim::Value(S as i64),
            Dim::Value(S as i64),
        ],
    )
    .output("y", &[])
    .initializer(TensorProto::from_f32("w1", &[4, 1, 3, 3], &w1))
    .initializer(TensorProto::from_f32("b1", &[4], &[0.0, 0.5, 0.0, 0.0]))
    .initializer(TensorProto::from_f32("w2", &[4, 4, 3, 3], &mix))
    .initializer(TensorProto::from_f32("fw", &[2, 4], &fc))
    .node(
        "Conv",
        "conv1",
        &["x", "w1", "b1"],
        &["c1"],
        vec![A::ints("pads", &[1, 1, 1, 1])],
    )
    .node("Relu", "relu1", &["c1"], &["r1"], vec![])
    .node(
        "Conv",
        "mix",
        &["r1", "w2"],
        &["c2"],
        vec![A::ints("pads", &[1, 1, 1, 1])],
    )
    .node("Relu", "relu2", &["c2"], &["r2"], vec![])
    .node("GlobalAveragePool", "gap", &["r2"], &["g"], vec![])
    .node("Flatten", "flat", &["g"], &["f"], vec![])
    .node(
        "Gemm",
        "fc",
        &["f", "fw"],
        &["y"],
        vec![A::int("transB", 1)],
    );
    Model::from_proto(g.build(13)).unwrap()
}

#[test]
fn randomising_the_top_layers_changes_the_gradcam_map() {
    // The "trained" top: mix channel k reads filter k's centre tap; class 0 reads the bright
    // channel, class 1 the edges.
    let mut mix = vec![0.0f32; 4 * 4 * 9];
    for k in 0..4 {
        mix[(k * 4 + k) * 9 + 4] = 1.0;
    }
    let fc = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5];
    let mut x = square(2);
    for c in 9..15 {
        x.data_mut()[12 * S + c] = 0.6; // a faint bar at the bottom right
    }
    let trained = layered(Some((&mix, &fc)), 0);
    let g = method("gradcam").unwrap();
    let cam_of = |m: &Model| {
        let layer = m.layer("mix").unwrap().value;
        compute_cams(m, &x, layer, &classes(&[0]), g.as_ref())
            .unwrap()
            .remove(0)
            .normalized(S, S)
    };
    let original = cam_of(&trained);
    assert!(
        argmax(&original) % S < S / 2,
        "the trained model points at the square"
    );
    assert!(spearman(&original, &original) > 0.999);
    let rhos: Vec<f64> = (1..=5)
        .map(|seed| spearman(&original, &cam_of(&layered(None, seed))))
        .collect();
    let mean = rhos.iter().sum::<f64>() / rhos.len() as f64;
    eprintln!("Spearman(original, randomised top) per seed: {rhos:.3?}, mean {mean:.3}");
    assert!(
        mean < 0.5,
        "Grad-CAM ignores the randomised weights: {rhos:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Saliency
// ---------------------------------------------------------------------------------------------

#[test]
fn integrated_gradients_are_complete() {
    let model = toy(Head::Softmax);
    let x = square(3);
    for target in [0, 1] {
        let cfg = SaliencyConfig {
            target: Some(std::sync::Arc::new(Class(target))),
            steps: 64,
            batch_size: 10,
            ..SaliencyConfig::default()
        };
        let ig = integrated_gradients(&model, &x, &cfg).unwrap();
        let c = ig.completeness.unwrap();
        eprintln!(
            "IG class {target}: Σattr {:.6} vs Δscore {:.6}",
            c.attribution_sum, c.score_difference
        );
        assert!(c.score_difference.abs() > 0.1);
        assert!(c.relative_error() < 0.02, "class {target}: {c:?}");
        assert_eq!(
            (ig.height, ig.width, ig.raw.shape()),
            (S, S, &[1, 1, S, S][..])
        );
    }
    // The same with one image per pass.
    let cfg = SaliencyConfig {
        target: Some(std::sync::Arc::new(Class(0))),
        steps: 8,
        ..SaliencyConfig::default()
    };
    let a = integrated_gradients(&toy(Head::Logits), &x, &cfg).unwrap();
    let b = integrated_gradients(&toy(Head::FixedReshape), &x, &cfg).unwrap();
    for (p, q) in a.raw.data().iter().zip(b.raw.data()) {
        assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()));
    }
}

#[test]
fn smoothgrad_is_seeded_and_independent_of_the_batch_size() {
    let model = toy(Head::Logits);
    let x = square(3);
    let cfg = SaliencyConfig {
        target: Some(std::sync::Arc::new(Class(0))),
        samples: 12,
        batch_size: 5,
        seed: 3,
        ..SaliencyConfig::default()
    };
    let a = smooth_grad(&model, &x, &cfg).unwrap();
    let b = smooth_grad(
        &model,
        &x,
        &SaliencyConfig {
            batch_size: 12,
            ..cfg.clone()
        },
    )
    .unwrap();
    for (p, q) in a.raw.data().iter().zip(b.raw.data()) {
        assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()));
    }
    let c = smooth_grad(&model, &x, &SaliencyConfig { seed: 4, ..cfg }).unwrap();
    assert_ne!(a.raw, c.raw);
}

#[test]
fn every_saliency_method_runs_and_points_at_the_square() {
    let model = toy(Head::Softmax);
    let x = square(1);
    let cfg = SaliencyConfig {
        target: Some(std::sync::Arc::new(Class(0))),
        samples: 8,
        steps: 16,
        ..SaliencyConfig::default()
    };
    for name in saliency_method_names() {
        let s = compute_saliency(&model, &x, name, &cfg).unwrap();
        assert_eq!((s.class, s.map.len()), (Some(0), S * S), "{name}");
        assert!(s.map.iter().all(|v| v.is_finite() && *v >= 0.0), "{name}");
        let n = s.normalized();
        assert!(
            (n.iter().copied().fold(0.0, f32::max) - 1.0).abs() < 1e-6,
            "{name}"
        );
        // Mass of the map on the left half, where the square is.
        let left: f32 = (0..S * S).filter(|i| i % S < S / 2).map(|i| s.map[i]).sum();
        let total: f32 = s.map.iter().sum();
        // SmoothGrad's noise switches the bright detector on all over the black background, so
        // its map is spread out more.
        let share = if name == "smoothgrad" { 0.5 } else { 0.6 };
        assert!(
            left > share * total,
            "{name}: {left} of {total} on the left"
        );
    }
    assert!(compute_saliency(&model, &x, "occlusion", &cfg).is_err());
}

// ---------------------------------------------------------------------------------------------
// Real models
// ---------------------------------------------------------------------------------------------

/// The reference scripts' EfficientNet input: chelsea.png rows 38..262, cols 113..337,
/// `((u8 / 255) − mean) / std` in f32, NCHW (bit-exact with `refcommon.eff_input`).
fn effnet_input() -> Option<Tensor> {
    let mut chw = hwc_to_chw(&chelsea_crop(38, 262, 113, 337)?, 224, 224, 3);
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    for (c, plane) in chw.chunks_mut(224 * 224).enumerate() {
        for v in plane {
            *v = (*v - mean[c]) / std[c];
        }
    }
    Some(Tensor::new(vec![1, 3, 224, 224], chw).unwrap())
}

#[test]
fn efficientnet_sees_the_cat_and_gradcam_points_at_it() {
    use convscope_image::{Normalize, ResizeFilter};
    use convscope_methods::input::{prepare_input, InputConfig};
    let (Some(model_path), Some(image)) = (
        shared("models/efficientnet_lite0.onnx"),
        shared("images/chelsea.png"),
    ) else {
        return;
    };
    let model = Model::load(&model_path).unwrap();
    let cfg = InputConfig {
        size: Some((224, 224)),
        filter: ResizeFilter::Bilinear,
        center_crop: true,
        normalize: Normalize::Imagenet,
    };
    let x = prepare_input(&model, &image, &cfg).unwrap().tensor;
    let p = predict(&model, &x).unwrap();
    let top = p.top(3);
    eprintln!("EfficientNet top-3: {top:?}");
    assert!([281, 282, 285].contains(&top[0].0), "{top:?}");
    let layer = auto_layer(&model, &x).unwrap();
    assert_eq!(
        (layer.name.as_str(), model.value_name(layer.value)),
        ("_conv_head", "/_swish_1/Clip_output_0")
    );
    let g = method("gradcam").unwrap();
    let t0 = Instant::now();
    let cam = compute_cams(&model, &x, layer.value, &classes(&[285]), g.as_ref())
        .unwrap()
        .remove(0);
    let t1 = t0.elapsed();
    let t0 = Instant::now();
    let five = compute_cams(
        &model,
        &x,
        layer.value,
        &classes(&[281, 282, 285, 287, 552]),
        g.as_ref(),
    )
    .unwrap();
    let t5 = t0.elapsed();
    eprintln!("Grad-CAM on EfficientNet-Lite0: 1 class {t1:.2?}, 5 classes {t5:.2?}");
    assert_eq!(five[2], cam);
    let up = cam.normalized(224, 224);
    let (py, px) = (argmax(&up) / 224, argmax(&up) % 224);
    eprintln!(
        "Grad-CAM peak for 285 at ({py}, {px}) of 224x224; raw peak {:?}",
        cam.peak()
    );
    assert!(
        (32..192).contains(&py) && (32..192).contains(&px),
        "peak ({py}, {px}) in the border ring"
    );
}

#[test]
fn vgg16_ends_in_softmax_and_is_explained_through_its_logits() {
    let Some(path) = shared("models/vgg16_tumor.onnx") else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let x = Tensor::full(&[1, 240, 240, 3], 0.5);
    let tape = model.forward(&x, &[model.outputs()[0]]).unwrap();
    let cls = find_classifier(&model, &tape).unwrap();
    assert_eq!((cls.kind, cls.classes), (OutputKind::Softmax, 4));
    assert_eq!(
        model.value_name(cls.score),
        "functional_1/dense_3_1/BiasAdd:0"
    );
    let layer = auto_layer(&model, &x).unwrap();
    assert_eq!(layer.name, "block5_pool");
    let cams = compute_cams(
        &model,
        &x,
        layer.value,
        &classes(&[0, 3]),
        method("gradcam").unwrap().as_ref(),
    )
    .unwrap();
    assert_eq!((cams[0].height, cams[0].width), (7, 7));
    // Guided Grad-CAM in the NHWC layout.
    let cfg = SaliencyConfig {
        target: Some(std::sync::Arc::new(Class(0))),
        layer: Some(layer.value),
        ..SaliencyConfig::default()
    };
    let s = compute_saliency(&model, &x, "guided-gradcam", &cfg).unwrap();
    assert_eq!(
        (s.height, s.width, s.raw.shape()),
        (240, 240, &[1, 240, 240, 3][..])
    );
}

/// Pearson r between our raw maps and pytorch-grad-cam's at the layer's 7×7 resolution.
fn compare_with_pytorch_grad_cam(methods: &[&str]) {
    let Some(path) = shared("models/efficientnet_lite0.onnx") else {
        return;
    };
    let Some(x) = effnet_input() else { return };
    let model = Model::load(&path).unwrap();
    let reference = reference_json("gradcam_efficientnet_lite0.json");
    let first8: Vec<f32> = reference["input_stats"]["first8"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(
        &x.data()[..8],
        &first8[..],
        "the input is rebuilt bit for bit"
    );
    let layer = model.resolve(reference["layer"].as_str().unwrap()).unwrap();
    for &name in methods {
        let Some(recs) = reference["methods"][name].as_array() else {
            panic!("{name} is not in the reference file");
        };
        let targets: Vec<usize> = recs
            .iter()
            .map(|r| r["target"].as_u64().unwrap() as usize)
            .collect();
        let t0 = Instant::now();
        let cams = compute_cams(
            &model,
            &x,
            layer,
            &classes(&targets),
            method(name).unwrap().as_ref(),
        )
        .unwrap();
        let dt = t0.elapsed();
        for (cam, rec) in cams.iter().zip(recs) {
            let want: Vec<f32> = rec["cam"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let r = pearson_f32(&cam.raw, &want);
            let max = want.iter().copied().fold(0.0f32, f32::max);
            let diff = cam
                .raw
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!(
                "{name:12} class {}: Pearson r = {r:.7} (1 - r = {:.1e}), max |ours - theirs| / max = {:.1e}, \
                 peak {:?} ({dt:.2?} for {} classes)",
                cam.target,
                1.0 - r,
                diff / max,
                cam.peak(),
                targets.len()
            );
            assert!(r >= 0.99, "{name} class {}: r = {r}", cam.target);
            // Same formula, same scale: the maps agree value by value, not just in shape.
            assert!(
                diff <= 1e-2 * max,
                "{name} class {}: max difference {diff} of {max}",
                cam.target
            );
        }
    }
}

#[test]
fn efficientnet_cams_match_pytorch_grad_cam() {
    compare_with_pytorch_grad_cam(&[
        "gradcam",
        "gradcam++",
        "xgradcam",
        "layercam",
        "hirescam",
        "eigencam",
        "ablationcam",
    ]);
}

/// Score-CAM runs 1280 forward passes per class (the graph takes one image at a time): about
/// two minutes. `cargo test -p convscope-methods --test cam_tests -- --ignored`.
#[test]
#[ignore]
fn efficientnet_scorecam_matches_pytorch_grad_cam() {
    compare_with_pytorch_grad_cam(&["scorecam"]);
}

#[test]
fn targets_beyond_one_class_explain_any_scalar() {
    use convscope_methods::target::{Classes, OutputElement, TargetRef};
    use std::sync::Arc;
    let model = toy(Head::Logits);
    let x = square(4);
    let layer = model.layer("pool").unwrap().value;
    // Grad-CAM of an element of the output value itself equals Grad-CAM of that class.
    let element: TargetRef = Arc::new(OutputElement {
        value: "y".into(),
        index: 0,
    });
    for name in ["gradcam", "scorecam", "ablationcam", "layercam"] {
        let m = method(name).unwrap();
        let by_class = compute_cams(&model, &x, layer, &classes(&[0]), m.as_ref()).unwrap();
        let by_value = compute_cams(
            &model,
            &x,
            layer,
            std::slice::from_ref(&element),
            m.as_ref(),
        )
        .unwrap();
        assert_eq!(by_class[0].raw, by_value[0].raw, "{name}");
        assert_eq!(by_value[0].class, None);
        assert_eq!(by_value[0].target, "y[0]");
    }
    // HiRes-CAM is linear in the gradient (no ReLU of weights, the map before its ReLU is
    // Σ g·A): the map of classes {0, 1} is relu(m0 + m1) where m0 and m1 are the maps before
    // the ReLU. Class 0 and class 1 see disjoint evidence (bright square, dark background), so
    // each map is its own pre-ReLU map where it is positive.
    let m = method("hirescam").unwrap();
    let both: TargetRef = Arc::new(Classes(vec![0, 1]));
    let sum = compute_cams(&model, &x, layer, &[both], m.as_ref()).unwrap();
    let single = compute_cams(&model, &x, layer, &classes(&[0, 1]), m.as_ref()).unwrap();
    assert_eq!(sum[0].target, "0+1");
    let s: f32 = sum[0].raw.iter().sum();
    let parts: f32 = single.iter().flat_map(|c| c.raw.iter()).sum();
    assert!(
        (s - parts).abs() <= 1e-4 * parts.abs().max(1.0),
        "{s} vs {parts}"
    );
    // A hidden value as the target: one unit of the pooled map, explained at the conv layer.
    let conv = model.layer("conv").unwrap().value;
    let unit: TargetRef = Arc::new(OutputElement {
        value: "p".into(),
        index: 2 * 8 + 3,
    });
    let cams = compute_cams(
        &model,
        &x,
        conv,
        &[unit],
        method("gradcam").unwrap().as_ref(),
    );
    let cams = cams.unwrap();
    assert!(cams[0].score > 0.0);
    // Out-of-range elements name the value and its size.
    let bad: TargetRef = Arc::new(OutputElement {
        value: "y".into(),
        index: 3,
    });
    let e = compute_cams(
        &model,
        &x,
        layer,
        &[bad],
        method("gradcam").unwrap().as_ref(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("'y' holds 3 values"), "{e}");
}
