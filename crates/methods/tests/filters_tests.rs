//! Filter visualisation on small generated models with a known answer.

use convscope_engine::Model;
use convscope_methods::filters::{visualize_filters, FiltersConfig, Optimizer};
use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
use convscope_test_support::pearson;

/// Two 5×5 filters over RGB with stride 5 on a 10×10 image (a 2×2 map): filter 0 is a diagonal
/// red-minus-blue pattern, filter 1 a horizontal green stripe pattern.
fn patterns() -> [Vec<f32>; 2] {
    let mut a = vec![0.0f32; 3 * 25];
    let mut b = vec![0.0f32; 3 * 25];
    for y in 0..5 {
        for x in 0..5 {
            let diag = if (x + y) % 2 == 0 { 1.0 } else { -1.0 };
            a[y * 5 + x] = diag; // red
            a[2 * 25 + y * 5 + x] = -diag; // blue
            b[25 + y * 5 + x] = if y % 2 == 0 { 1.0 } else { -0.5 }; // green
        }
    }
    [a, b]
}

fn model() -> Model {
    let [a, b] = patterns();
    let w: Vec<f32> = a.iter().chain(&b).map(|v| v * 0.1).collect();
    let mut g = GraphBuilder::new("known_patterns");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(3), Dim::Value(10), Dim::Value(10)],
    )
    .output("y", &[])
    .initializer(TensorProto::from_f32("w", &[2, 3, 5, 5], &w))
    .initializer(TensorProto::from_f32("b", &[2], &[0.5, 0.5]))
    .node(
        "Conv",
        "conv",
        &["x", "w", "b"],
        &["c"],
        vec![AttributeProto::ints("strides", &[5, 5])],
    )
    .node("Relu", "relu", &["c"], &["y"], vec![]);
    Model::from_proto(g.build(13)).expect("valid model")
}

/// The pattern tiled over the 10×10 image, in the image's HWC order.
fn tiled_hwc(pattern: &[f32]) -> Vec<f64> {
    let mut out = Vec::with_capacity(300);
    for y in 0..10 {
        for x in 0..10 {
            for c in 0..3 {
                out.push(pattern[c * 25 + (y % 5) * 5 + x % 5] as f64);
            }
        }
    }
    out
}

#[test]
fn each_filter_is_maximised_by_its_own_pattern() {
    let m = model();
    let layer = m.layer("conv").expect("the Conv+Relu layer").value;
    let cfg = FiltersConfig {
        filters: vec![0, 1],
        size: (10, 10),
        seed: 3,
        ..FiltersConfig::default()
    };
    let found = visualize_filters(&m, layer, &cfg, &mut |_| {}).unwrap();
    let pats = patterns();
    for (f, p) in found.iter().enumerate() {
        let img: Vec<f64> = p.image.data.iter().map(|&v| v as f64).collect();
        let own = pearson(&img, &tiled_hwc(&pats[f]));
        let other = pearson(&img, &tiled_hwc(&pats[1 - f]));
        assert!(
            own > 0.9,
            "filter {f}: correlation with its own pattern {own:.3}"
        );
        assert!(
            own > other.abs() + 0.5,
            "filter {f}: own {own:.3} vs other {other:.3}"
        );
        // The objective rises at every step (the ascent of a linear objective never stalls).
        assert!(
            p.curve.windows(2).all(|w| w[1] > w[0]),
            "filter {f}: curve {:?}",
            p.curve
        );
        assert_eq!(p.curve.len(), cfg.steps + 1);
    }
}

#[test]
fn same_seed_same_image_and_batching_does_not_matter() {
    let m = model();
    let layer = m.layer("conv").unwrap().value;
    let base = FiltersConfig {
        filters: vec![0, 1],
        size: (10, 10),
        steps: 5,
        seed: 9,
        ..FiltersConfig::default()
    };
    let a = visualize_filters(&m, layer, &base, &mut |_| {}).unwrap();
    let b = visualize_filters(
        &m,
        layer,
        &FiltersConfig {
            chunk: Some(1),
            ..base.clone()
        },
        &mut |_| {},
    )
    .unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.image.data, y.image.data,
            "filter {}: batch of 2 vs batches of 1",
            x.filter
        );
        assert_eq!(x.curve, y.curve);
    }
    let c = visualize_filters(&m, layer, &FiltersConfig { seed: 10, ..base }, &mut |_| {}).unwrap();
    assert_ne!(
        a[0].image.data, c[0].image.data,
        "another seed gives another start"
    );
}

/// A colour detector (red minus blue, 3×3, stride 1): its best input is the same under shifts,
/// scaling and rotation, so every robustness option should still climb.
fn colour_model() -> Model {
    let w: Vec<f32> = (0..27)
        .map(|i| match i / 9 {
            0 => 0.1,
            1 => 0.0,
            _ => -0.1,
        })
        .collect();
    let mut g = GraphBuilder::new("colour");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(3), Dim::Value(20), Dim::Value(20)],
    )
    .output("y", &[])
    .initializer(TensorProto::from_f32("w", &[1, 3, 3, 3], &w))
    .initializer(TensorProto::from_f32("b", &[1], &[0.5]))
    .node(
        "Conv",
        "conv",
        &["x", "w", "b"],
        &["c"],
        vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
    )
    .node("Relu", "relu", &["c"], &["y"], vec![]);
    Model::from_proto(g.build(13)).expect("valid model")
}

/// Each option beyond the walk-through, alone, still makes the objective climb.
#[test]
fn robustness_options_still_climb() {
    let m = colour_model();
    let layer = m.layer("conv").unwrap().value;
    let base = FiltersConfig {
        filters: vec![0],
        size: (20, 20),
        steps: 20,
        ..FiltersConfig::default()
    };
    let cases = [
        (
            "adam",
            FiltersConfig {
                optimizer: Optimizer::Adam,
                step: 2.0,
                ..base.clone()
            },
        ),
        (
            "jitter",
            FiltersConfig {
                jitter: 2,
                ..base.clone()
            },
        ),
        (
            "scale+rotate",
            FiltersConfig {
                scale: 0.05,
                rotate: 5.0,
                ..base.clone()
            },
        ),
        (
            "tv+l2",
            FiltersConfig {
                tv: 0.1,
                l2: 0.1,
                ..base.clone()
            },
        ),
        (
            "octaves",
            FiltersConfig {
                octaves: 2,
                octave_scale: 2.0,
                ..base.clone()
            },
        ),
    ];
    for (name, cfg) in cases {
        let p = &visualize_filters(&m, layer, &cfg, &mut |_| {}).unwrap()[0];
        eprintln!("{name}: {} -> {}", p.start(), p.end());
        assert!(
            p.end() > p.start() + 0.05,
            "{name}: objective {} -> {}",
            p.start(),
            p.end()
        );
        assert!(p.image.data.iter().all(|v| v.is_finite()));
    }
}

/// The ascent computes only each image's own channel when the layer is a convolution plus
/// activations. The same layer seen through an `Identity` (which the slice does not look
/// through) runs the full layer: both must climb the same way.
#[test]
fn channel_sliced_ascent_equals_the_full_layer() {
    let [a, b] = patterns();
    let w: Vec<f32> = a.iter().chain(&b).map(|v| v * 0.1).collect();
    let mut g = GraphBuilder::new("sliced_vs_full");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(3), Dim::Value(12), Dim::Value(12)],
    )
    .output("full", &[])
    .initializer(TensorProto::from_f32("w", &[2, 3, 5, 5], &w))
    .initializer(TensorProto::from_f32("b", &[2], &[0.5, -0.1]))
    .node(
        "Conv",
        "conv",
        &["x", "w", "b"],
        &["c"],
        vec![AttributeProto::ints("pads", &[2, 1, 2, 1])],
    )
    .node("Relu", "relu", &["c"], &["sliced"], vec![])
    .node("Identity", "same", &["sliced"], &["full"], vec![]);
    let m = Model::from_proto(g.build(13)).expect("valid model");
    let (sliced, full) = (m.resolve("sliced").unwrap(), m.resolve("full").unwrap());
    assert!(m.filter_slice(sliced).is_some() && m.filter_slice(full).is_none());
    let cfg = FiltersConfig {
        filters: vec![1, 0, 1],
        size: (12, 12),
        steps: 6,
        ..FiltersConfig::default()
    };
    let x = visualize_filters(&m, sliced, &cfg, &mut |_| {}).unwrap();
    let y = visualize_filters(&m, full, &cfg, &mut |_| {}).unwrap();
    for (p, q) in x.iter().zip(&y) {
        assert!(p.end() > p.start(), "filter {} climbs", p.filter);
        for (u, v) in p.curve.iter().zip(&q.curve) {
            assert!((u - v).abs() <= 1e-4 * v.abs().max(1.0), "{u} vs {v}");
        }
    }
}
