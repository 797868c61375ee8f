//! Model-level tests of the planned fusions (the plan offers a form, the kernels take it, the
//! values are those of the nodes run apart) and of filter slices.

use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};

use crate::kernels::panel;
use crate::plan::Fused;
use crate::runtime::cpu::Isa;
use crate::{Model, Tensor, Value, ValueId};

/// The index of the node named `name`.
fn node(model: &Model, name: &str) -> usize {
    model
        .graph
        .nodes
        .iter()
        .position(|n| n.name == name)
        .expect("a node of the test model")
}

/// The fused forms the plan of a pass from `x` to `targets` offers at node `ni` (an inference
/// pass, or a taped one with `keep`).
fn offered(model: &Model, x: &Tensor, ni: usize, targets: &[ValueId], keep: bool) -> Vec<Fused> {
    let leaves = [(model.graph.input, Value::Float(x.clone()))];
    let plan = model.plan(targets, &leaves, keep);
    let step = plan.steps.iter().find(|s| s.node == ni).expect("a step");
    step.fusions.iter().map(|f| f.form.clone()).collect()
}

/// Which nodes an inference pass from `x` to `targets` ran inside the node before them.
fn fused_in_run(model: &Model, x: &Tensor, targets: &[ValueId]) -> Vec<bool> {
    let leaves = vec![(model.graph.input, Value::Float(x.clone()))];
    model.run_pass(leaves, targets).unwrap().1
}

/// Whether the panel kernel runs here (the fused 1×1 layers need it).
fn panel_here() -> bool {
    panel::available(Isa::host())
}

/// x → Conv 1×1 (16 → 16, bias) → Add with `residual` (the input, on either side, or a
/// per-channel constant that broadcasts) → y; and a 3×3 convolution with a residual.
fn residual_model(residual: &str, conv_first: bool, kernel: i64) -> Model {
    let c = 16usize;
    let k = kernel as usize;
    let w: Vec<f32> = (0..c * c * k * k)
        .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.45)
        .collect();
    let b: Vec<f32> = (0..c).map(|i| 0.1 * i as f32 - 0.7).collect();
    let mut g = GraphBuilder::new("residual");
    let dims = [Dim::Value(2), Dim::Value(16), Dim::Value(9), Dim::Value(13)];
    let add_inputs = if conv_first {
        ["c", residual]
    } else {
        [residual, "c"]
    };
    g.input("x", &dims)
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[c, c, k, k], &w))
        .initializer(TensorProto::from_f32("b", &[c], &b))
        .initializer(TensorProto::from_f32("per_channel", &[1, c, 1, 1], &b))
        .node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            vec![AttributeProto::ints("pads", &[kernel / 2; 4])],
        )
        .node("Add", "add", &add_inputs, &["y"], vec![]);
    Model::from_proto(g.build(13)).unwrap()
}

/// A fused pass's value against the unfused one: same shape, within 1e-5 of the largest
/// magnitude (a column tail may sum in another order), and not trivially small.
fn assert_agree(fused: &Tensor, apart: &Tensor, case: &str) {
    assert_eq!(fused.shape(), apart.shape(), "{case}");
    let scale = apart.data().iter().fold(0f32, |a, v| a.max(v.abs()));
    assert!(scale > 1.0, "{case}: a meaningful output");
    for (i, (a, b)) in fused.data().iter().zip(apart.data()).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "{case}: value {i}: {a} vs {b}"
        );
    }
}

/// x (2 images, 8 channels) → 1×1 Conv (8 → 40, bias) → Clip(0, 6) → depthwise Conv (`k`×`k`,
/// stride `s`, asymmetric pads, bias) → Clip(0, 6) → y.
fn pointwise_depthwise_model(k: usize, s: i64, hw: (i64, i64)) -> Model {
    let (c, m) = (8usize, 40usize);
    let w1: Vec<f32> = (0..m * c)
        .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.4)
        .collect();
    let b1: Vec<f32> = (0..m).map(|i| 0.05 * i as f32 - 0.5).collect();
    let w2: Vec<f32> = (0..m * k * k)
        .map(|i| ((i * 13) % 17) as f32 / 17.0 - 0.45)
        .collect();
    let b2: Vec<f32> = (0..m).map(|i| 0.5 - 0.03 * i as f32).collect();
    let pad = (k / 2) as i64;
    let mut g = GraphBuilder::new("pointwise_depthwise");
    let dims = [
        Dim::Value(2),
        Dim::Value(8),
        Dim::Value(hw.0),
        Dim::Value(hw.1),
    ];
    g.input("x", &dims)
        .output("y", &[])
        .initializer(TensorProto::from_f32("w1", &[m, c, 1, 1], &w1))
        .initializer(TensorProto::from_f32("b1", &[m], &b1))
        .initializer(TensorProto::from_f32("w2", &[m, 1, k, k], &w2))
        .initializer(TensorProto::from_f32("b2", &[m], &b2))
        .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
        .initializer(TensorProto::from_f32("hi", &[], &[6.0]))
        .node("Conv", "expand", &["x", "w1", "b1"], &["e"], vec![])
        .node("Clip", "clip1", &["e", "lo", "hi"], &["r"], vec![])
        .node(
            "Conv",
            "depthwise",
            &["r", "w2", "b2"],
            &["d"],
            vec![
                AttributeProto::int("group", m as i64),
                AttributeProto::ints("strides", &[s, s]),
                AttributeProto::ints("pads", &[pad - 1, pad, pad, pad - 1]),
            ],
        )
        .node("Clip", "clip2", &["d", "lo", "hi"], &["y"], vec![]);
    Model::from_proto(g.build(13)).unwrap()
}

/// The inference pass runs the 1×1 convolution inside the depthwise one, a few rows at a
/// time; the taped pass runs the four nodes apart. Same values (within rounding: a column
/// tail may sum in another order), on 40 channels (a partial group of 8), two images,
/// strides 1 and 2, 3×3 and 5×5 taps, asymmetric pads, maps for the strips and for the
/// plane kernel.
/// Asking for the 1×1 output as well turns the fusion off.
#[test]
fn a_pointwise_convolution_fused_into_the_depthwise_one_changes_no_value() {
    // The last two have rows of 56+ outputs at stride 1: the plane kernel's route.
    for (k, s, hw) in [
        (3, 1, (13, 11)),
        (5, 2, (17, 20)),
        (3, 2, (9, 9)),
        (3, 1, (6, 60)),
        (5, 1, (5, 70)),
    ] {
        let model = pointwise_depthwise_model(k, s, hw);
        let (y, r) = (model.resolve("y").unwrap(), model.resolve("r").unwrap());
        let n = 2 * 8 * hw.0 as usize * hw.1 as usize;
        let x = Tensor::new(
            vec![2, 8, hw.0 as usize, hw.1 as usize],
            (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect(),
        )
        .unwrap();
        let case = format!("k={k} s={s} {hw:?}");
        // The fusion is offered and taken (on AVX-512: the panel kernel runs the 1×1).
        let (conv, dw) = (node(&model, "expand"), node(&model, "depthwise"));
        let pointwise_depthwise = |targets: &[ValueId], keep: bool| {
            offered(&model, &x, conv, targets, keep)
                .iter()
                .any(|f| matches!(f, Fused::PointwiseDepthwise { .. }))
        };
        assert!(pointwise_depthwise(&[y], false), "{case}");
        assert_eq!(fused_in_run(&model, &x, &[y])[dw], panel_here(), "{case}");
        assert!(!pointwise_depthwise(&[y], true), "{case}");
        assert!(!pointwise_depthwise(&[y, r], false), "{case}");
        let fused = model.run_float(&x, &[y]).unwrap().remove(0);
        let tape = model.forward(&x, &[y, r]).unwrap();
        let apart = tape.value(y).unwrap();
        assert_agree(&fused, apart, &case);
        // With the 1×1 output asked for too, both come back as the unfused pass has them.
        let both = model.run_float(&x, &[r, y]).unwrap();
        assert_eq!(both[0].data(), tape.value(r).unwrap().data(), "{case}");
        assert_eq!(both[1].data(), apart.data(), "{case}");
    }
}

/// `(i·a mod b) / b − off` for `i < n`: deterministic test weights.
fn values(n: usize, a: usize, b: usize, off: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * a) % b) as f32 / b as f32 - off)
        .collect()
}

/// The weights of a test block after its expansion's `w1`: the expansion's bias `b1` (`e`),
/// the depthwise layer's `w2`, `b2` (`e` channels, `k`×`k`), the projection's `w3`, `b3`
/// (`e` → `m`) and the Clip(0, 6) bounds `lo`, `hi`.
fn block_weights(g: &mut GraphBuilder, e: usize, k: usize, m: usize) -> &mut GraphBuilder {
    g.initializer(TensorProto::from_f32("b1", &[e], &values(e, 5, 11, 0.5)))
        .initializer(TensorProto::from_f32(
            "w2",
            &[e, 1, k, k],
            &values(e * k * k, 13, 17, 0.45),
        ))
        .initializer(TensorProto::from_f32("b2", &[e], &values(e, 7, 13, 0.3)))
        .initializer(TensorProto::from_f32(
            "w3",
            &[m, e, 1, 1],
            &values(m * e, 29, 31, 0.5),
        ))
        .initializer(TensorProto::from_f32("b3", &[m], &values(m, 3, 7, 0.5)))
        .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
        .initializer(TensorProto::from_f32("hi", &[], &[6.0]))
}

/// An inverted-residual block on 2 images: [1×1 Conv (8 → 40, bias) → Clip(0, 6)] →
/// depthwise Conv (`k`×`k`, stride `s`, asymmetric pads, bias) → Clip(0, 6) → 1×1 Conv
/// (40 → `m`, bias) → [Clip(0, 6) | Add x] → y. Without the expansion the depthwise layer
/// reads x (40 channels). Pads are asymmetric but for the Add.
fn block_model(expand: bool, k: usize, s: i64, hw: (i64, i64), m: usize, tail: &str) -> Model {
    let (c, e) = (if expand { 8usize } else { 40 }, 40usize);
    let pad = (k / 2) as i64;
    let mut g = GraphBuilder::new("block");
    let dims = [
        Dim::Param("N".into()),
        Dim::Value(c as i64),
        Dim::Value(hw.0),
        Dim::Value(hw.1),
    ];
    g.input("x", &dims)
        .output("y", &[])
        .initializer(TensorProto::from_f32(
            "w1",
            &[e, c, 1, 1],
            &values(e * c, 37, 23, 0.4),
        ));
    block_weights(&mut g, e, k, m);
    if expand {
        g.node("Conv", "expand", &["x", "w1", "b1"], &["e"], vec![])
            .node("Clip", "clip1", &["e", "lo", "hi"], &["r"], vec![]);
    }
    g.node(
        "Conv",
        "depthwise",
        &[if expand { "r" } else { "x" }, "w2", "b2"],
        &["d"],
        vec![
            AttributeProto::int("group", e as i64),
            AttributeProto::ints("strides", &[s, s]),
            // Asymmetric, except where the residual needs the input's size.
            AttributeProto::ints(
                "pads",
                &[pad - 1, pad, pad, pad - 1].map(|p| if tail == "add" { pad } else { p }),
            ),
        ],
    )
    .node("Clip", "clip2", &["d", "lo", "hi"], &["a"], vec![]);
    match tail {
        "clip" => g
            .node("Conv", "project", &["a", "w3", "b3"], &["p"], vec![])
            .node("Clip", "clip3", &["p", "lo", "hi"], &["y"], vec![]),
        "add" => g
            .node("Conv", "project", &["a", "w3", "b3"], &["p"], vec![])
            .node("Add", "add", &["p", "x"], &["y"], vec![]),
        _ => g.node("Conv", "project", &["a", "w3", "b3"], &["y"], vec![]),
    };
    Model::from_proto(g.build(13)).unwrap()
}

/// The inference pass runs a whole inverted-residual block inside its depthwise node, in
/// strips of rows; the taped pass runs every node apart. Same values (within rounding),
/// with and without the expansion, strides 1 and 2, 3×3 and 5×5 taps, asymmetric pads, a
/// partial group of 16 channels, 2 images, a projection with a clamp, with a residual Add
/// and with neither, maps with several bands of several strips, on every path. Asking for
/// the depthwise output as well turns the block off.
#[test]
fn an_inverted_residual_block_run_as_one_changes_no_value() {
    // Maps of 56+ output columns fuse at any batch; narrower ones (EfficientNet's 28×28 to
    // 7×7 stages) from 4 images on, one band per image.
    for (expand, k, s, hw, m, tail, images) in [
        (true, 3, 1, (100, 60), 8, "add", 2),
        (true, 5, 1, (40, 57), 8, "add", 2),
        (true, 3, 2, (41, 113), 24, "none", 2),
        (true, 5, 2, (12, 120), 3, "clip", 2),
        (false, 3, 1, (30, 70), 16, "none", 2),
        (false, 5, 2, (9, 121), 17, "clip", 2),
        (true, 3, 1, (14, 14), 8, "add", 4),
        (true, 5, 2, (15, 13), 24, "none", 5),
        (false, 5, 1, (7, 7), 17, "clip", 4),
    ] {
        let model = block_model(expand, k, s, hw, m, tail);
        let (y, a) = (model.resolve("y").unwrap(), model.resolve("a").unwrap());
        let c = if expand { 8 } else { 40 };
        let n = images * c * hw.0 as usize * hw.1 as usize;
        let x = Tensor::new(
            vec![images, c, hw.0 as usize, hw.1 as usize],
            (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect(),
        )
        .unwrap();
        let case = format!("expand={expand} k={k} s={s} {hw:?} m={m} {tail} n={images}");
        let first = if expand { "expand" } else { "depthwise" };
        let ni = node(&model, first);
        // The block offered first takes in every node but the first.
        let block = |targets: &[ValueId], keep: bool| {
            offered(&model, &x, ni, targets, keep)
                .iter()
                .find(|f| matches!(f, Fused::Block { .. }))
                .map(|f| f.taken(true).len())
        };
        let nodes = model.graph.nodes.len() - 1;
        assert_eq!(block(&[y], false), Some(nodes), "{case}");
        // And runs so (on AVX-512: the panel kernel runs the 1×1).
        let taken = fused_in_run(&model, &x, &[y])
            .iter()
            .filter(|&&f| f)
            .count();
        assert_eq!(taken == nodes, panel_here(), "{case}");
        assert_eq!(block(&[y], true), None, "{case}");
        assert_eq!(block(&[y, a], false), None, "{case}");
        let fused = model.run_float(&x, &[y]).unwrap().remove(0);
        let tape = model.forward(&x, &[y, a]).unwrap();
        let apart = tape.value(y).unwrap();
        assert_agree(&fused, apart, &case);
        // With the depthwise output asked for too, both come back as the unfused pass has
        // them (the expansion may still run inside the depthwise layer).
        let both = model.run_float(&x, &[a, y]).unwrap();
        assert_agree(&both[0], tape.value(a).unwrap(), &case);
        assert_agree(&both[1], apart, &case);
        // Every path this CPU has runs the block as one too (AVX2 and NEON form the expansion
        // as cells from 14 input columns on), with the same values.
        for isa in crate::kernels::simd::test_isas() {
            let on = block_model(expand, k, s, hw, m, tail).with_config(crate::ExecConfig {
                isa,
                ..crate::ExecConfig::default()
            });
            let got = on.run_float(&x, &[on.resolve("y").unwrap()]).unwrap();
            assert_agree(&got[0], apart, &format!("{case} on {}", isa.name()));
        }
    }
}

/// A network's stem and first block: Conv (3 → 40 channels, 3×3, `stride`, `pads`, bias) →
/// Clip(0, 6) → depthwise Conv (`k`×`k`, stride `s`, pads k/2, bias) → Clip(0, 6) → 1×1 Conv
/// (40 → 16, bias) → y.
fn stem_block_model(stride: i64, pads: [i64; 4], k: usize, s: i64) -> Model {
    let (c, e, m) = (3usize, 40usize, 16usize);
    let pad = (k / 2) as i64;
    let mut g = GraphBuilder::new("stem_block");
    let dims = [
        Dim::Param("N".into()),
        Dim::Value(c as i64),
        Dim::Param("H".into()),
        Dim::Param("W".into()),
    ];
    g.input("x", &dims)
        .output("y", &[])
        .initializer(TensorProto::from_f32(
            "w1",
            &[e, c, 3, 3],
            &values(e * c * 9, 37, 23, 0.45),
        ));
    block_weights(&mut g, e, k, m)
        .node(
            "Conv",
            "stem",
            &["x", "w1", "b1"],
            &["e"],
            vec![
                AttributeProto::ints("strides", &[stride, stride]),
                AttributeProto::ints("pads", &pads),
            ],
        )
        .node("Clip", "clip1", &["e", "lo", "hi"], &["r"], vec![])
        .node(
            "Conv",
            "depthwise",
            &["r", "w2", "b2"],
            &["d"],
            vec![
                AttributeProto::int("group", e as i64),
                AttributeProto::ints("strides", &[s, s]),
                AttributeProto::ints("pads", &[pad; 4]),
            ],
        )
        .node("Clip", "clip2", &["d", "lo", "hi"], &["a"], vec![])
        .node("Conv", "project", &["a", "w3", "b3"], &["y"], vec![]);
    Model::from_proto(g.build(13)).unwrap()
}

/// A block whose expansion is a small dense convolution (a network's stem) runs as one on the
/// paths that form the expansion as cells (AVX2, NEON: its im2col rows formed per strip, the
/// stem's output never formed), and apart elsewhere, with the values of the taped pass on
/// every path: TF-style and symmetric pads, stride 1 and 2 stems, 3×3 and 5×5 taps, several
/// bands of several strips, a batch of four on narrow maps, and maps too narrow for cells.
#[test]
fn a_block_after_a_small_dense_convolution_runs_as_one_where_cells_are_formed() {
    // (stem stride, stem pads, depthwise k, s, images, input size, cells wide enough)
    for (stride, pads, k, s, images, hw, wide) in [
        (2, [0, 0, 1, 1], 3, 1, 2, (50, 120), true),
        (2, [1, 1, 1, 1], 3, 1, 1, (33, 113), true),
        (1, [1, 1, 1, 1], 5, 2, 4, (18, 30), true),
        (2, [0, 0, 1, 1], 3, 1, 4, (20, 24), false),
    ] {
        let model = stem_block_model(stride, pads, k, s);
        let (y, a) = (model.resolve("y").unwrap(), model.resolve("a").unwrap());
        let n = images * 3 * hw.0 * hw.1;
        let x = Tensor::new(
            vec![images, 3, hw.0, hw.1],
            (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect(),
        )
        .unwrap();
        let case = format!("stride={stride} pads={pads:?} k={k} s={s} n={images} {hw:?}");
        let stem = node(&model, "stem");
        let nodes = model.graph.nodes.len() - 1;
        let block = |targets: &[ValueId], keep: bool| {
            offered(&model, &x, stem, targets, keep)
                .iter()
                .find(|f| matches!(f, Fused::Block { .. }))
                .map(|f| f.taken(true).len())
        };
        // Offered whatever the path (the kernels decide), never in a taped pass or with
        // the depthwise output asked for; no pair form without the projection.
        assert_eq!(block(&[y], false), Some(nodes), "{case}");
        assert_eq!(block(&[y], true), None, "{case}");
        assert_eq!(block(&[y, a], false), None, "{case}");
        assert!(
            !offered(&model, &x, stem, &[y], false)
                .iter()
                .any(|f| matches!(f, Fused::PointwiseDepthwise { .. })),
            "{case}"
        );
        let apart = model.forward(&x, &[y]).unwrap().value(y).unwrap().clone();
        for isa in crate::kernels::simd::test_isas() {
            let on = stem_block_model(stride, pads, k, s).with_config(crate::ExecConfig {
                isa,
                ..crate::ExecConfig::default()
            });
            let cells = wide && matches!(isa.name(), "avx2" | "neon");
            let fused = fused_in_run(&on, &x, &[y]);
            let what = format!("{case} on {}", isa.name());
            assert_eq!(
                fused.iter().filter(|&&f| f).count() == nodes,
                cells,
                "{what}"
            );
            let got = on.run_float(&x, &[y]).unwrap().remove(0);
            assert_agree(&got, &apart, &what);
        }
    }
}

/// The inference pass forms conv + residual inside the convolution; the taped pass runs
/// the two nodes apart. The sums are the same floating-point operations, so the values are
/// equal bit for bit, with the residual on either side of the Add and with a broadcasting
/// addend (which the convolution declines, so the Add runs on its own).
#[test]
fn a_residual_add_fused_into_the_convolution_changes_no_value() {
    let x = Tensor::new(
        vec![2, 16, 9, 13],
        (0..2 * 16 * 117).map(|i| (i as f32 * 0.71).sin()).collect(),
    )
    .unwrap();
    for (residual, conv_first, kernel) in [
        ("x", true, 1),
        ("x", false, 1),
        ("x", true, 3),
        ("per_channel", true, 1),
    ] {
        let model = residual_model(residual, conv_first, kernel);
        let y = model.resolve("y").unwrap();
        let (conv, add) = (node(&model, "conv"), node(&model, "add"));
        let case = format!("{residual} conv_first={conv_first} kernel={kernel}");
        let residual_offered = |keep: bool| {
            offered(&model, &x, conv, &[y], keep)
                .iter()
                .any(|f| matches!(f, Fused::Residual(r) if r.add == add))
        };
        assert!(
            residual_offered(false),
            "{case}: the Add is offered to the convolution"
        );
        assert!(!residual_offered(true), "{case}");
        let fused = model.run_float(&x, &[y]).unwrap().remove(0);
        let tape = model.forward(&x, &[y]).unwrap();
        let apart = tape.value(y).unwrap();
        assert_eq!(fused.shape(), apart.shape(), "{case}");
        assert!(
            fused
                .data()
                .iter()
                .zip(apart.data())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{case}: fused and unfused sums differ"
        );
        // The panel kernel (AVX-512) forms the sum for 1×1 convolutions (a 3×3 one may
        // take the Winograd route, which declines; either way the values agree, above).
        if kernel == 1 {
            let formed = fused_in_run(&model, &x, &[y])[add];
            assert_eq!(formed, residual == "x" && panel_here(), "{case}");
        }
    }
}

/// Conv (stride 2, asymmetric pads, bias) → Clip(0, 0.6) → Sigmoid, 4 → 5 channels.
fn model(group: i64) -> Model {
    let (c, m) = (4usize, 6usize);
    let cg = c / group as usize;
    let w: Vec<f32> = (0..m * cg * 9)
        .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.45)
        .collect();
    let b: Vec<f32> = (0..m).map(|i| 0.1 * i as f32 - 0.2).collect();
    let mut g = GraphBuilder::new("slice");
    g.input(
        "x",
        &[
            Dim::Param("n".into()),
            Dim::Value(4),
            Dim::Value(9),
            Dim::Value(8),
        ],
    )
    .output("y", &[])
    .initializer(TensorProto::from_f32("w", &[m, cg, 3, 3], &w))
    .initializer(TensorProto::from_f32("b", &[m], &b))
    .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
    .initializer(TensorProto::from_f32("hi", &[], &[0.6]))
    .node(
        "Conv",
        "conv",
        &["x", "w", "b"],
        &["c"],
        vec![
            AttributeProto::ints("pads", &[1, 0, 2, 1]),
            AttributeProto::ints("strides", &[2, 1]),
            AttributeProto::int("group", group),
        ],
    )
    .node("Clip", "clip", &["c", "lo", "hi"], &["r"], vec![])
    .node("Sigmoid", "sig", &["r"], &["y"], vec![]);
    Model::from_proto(g.build(13)).unwrap()
}

#[test]
fn slice_equals_the_full_layer_forward_and_backward() {
    let model = model(1);
    let y = model.resolve("y").unwrap();
    let slice = model.filter_slice(y).expect("Conv+Clip+Sigmoid slices");
    assert_eq!(slice.filters(), 6);
    assert_eq!(slice.input(), model.resolve("x").unwrap());
    let n = 3;
    let x = Tensor::new(
        vec![n, 4, 9, 8],
        (0..n * 4 * 72).map(|i| (i as f32 * 0.71).sin()).collect(),
    )
    .unwrap();
    let filters = [5, 0, 5];
    let tape = slice.forward(&x, &filters).unwrap();
    let full_tape = model.forward(&x, &[y]).unwrap();
    let full = full_tape.value(y).unwrap();
    let [_, m, oh, ow] = *full.shape() else {
        panic!()
    };
    let p = oh * ow;
    assert_eq!(tape.output().shape(), &[n, 1, oh, ow]);
    for (i, &f) in filters.iter().enumerate() {
        let want = &full.data()[(i * m + f) * p..(i * m + f + 1) * p];
        let got = &tape.output().data()[i * p..(i + 1) * p];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
    // A seed on each item's channel: the same input gradient as the full tape's.
    let seed_small: Vec<f32> = (0..n * p).map(|i| (i as f32 * 0.3).cos()).collect();
    let mut seed_full = Tensor::zeros(full.shape());
    for (i, &f) in filters.iter().enumerate() {
        seed_full.data_mut()[(i * m + f) * p..(i * m + f + 1) * p]
            .copy_from_slice(&seed_small[i * p..(i + 1) * p]);
    }
    let dx = tape
        .backward(Tensor::new(vec![n, 1, oh, ow], seed_small).unwrap())
        .unwrap();
    let want = full_tape.backward(vec![(y, seed_full)], &[]).unwrap().input;
    assert_eq!(dx.shape(), want.shape());
    let scale = want.data().iter().fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(scale > 0.0);
    for (a, b) in dx.data().iter().zip(want.data()) {
        assert!((a - b).abs() < 1e-5 * scale, "{a} vs {b}");
    }
}

#[test]
fn only_plain_convolutions_with_activations_slice() {
    let grouped = model(2);
    assert!(grouped
        .filter_slice(grouped.resolve("y").unwrap())
        .is_none());
    let plain = model(1);
    // The raw convolution output slices too; the input does not.
    assert!(plain.filter_slice(plain.resolve("c").unwrap()).is_some());
    assert!(plain.filter_slice(plain.resolve("x").unwrap()).is_none());
    let x = Tensor::full(&[2, 4, 9, 8], 0.5);
    let slice = plain.filter_slice(plain.resolve("y").unwrap()).unwrap();
    assert!(slice.forward(&x, &[0, 6]).is_err(), "filter 6 of 6");
    assert!(
        slice.forward(&x, &[0]).is_err(),
        "one filter for two images"
    );
}

/// A plan is made once per targets, mode and input shape and then reused; a fused form its
/// kernels decline (an inverted-residual block on maps narrower than 56 columns) is marked on
/// the first pass and skipped after, the next form taken instead and the values unchanged.
#[test]
fn plans_are_made_once_and_remember_declined_forms() {
    let model = block_model(true, 3, 1, (12, 20), 8, "add");
    let (y, expand) = (model.resolve("y").unwrap(), node(&model, "expand"));
    let shape = vec![2, 8, 12, 20];
    let x = Tensor::new(
        shape.clone(),
        (0..2 * 8 * 240)
            .map(|i| (i as f32 * 0.37).sin() * 3.0)
            .collect(),
    )
    .unwrap();
    let leaves = [(model.graph.input, Value::Float(x.clone()))];
    let plan = model.plan(&[y], &leaves, false);
    let step = plan.steps.iter().find(|s| s.node == expand).unwrap();
    let block = |s: &crate::plan::Step| {
        s.fusions
            .iter()
            .find(|f| matches!(f.form, Fused::Block { .. }))
            .map(|f| f.declined())
    };
    assert_eq!(block(step), Some(false), "offered, not yet tried");
    let first = model.run_float(&x, &[y]).unwrap().remove(0);
    assert_eq!(
        block(step),
        Some(true),
        "declined by the kernels, remembered"
    );
    // The 1×1 convolution still runs inside the depthwise one (on AVX-512).
    let dw = node(&model, "depthwise");
    assert_eq!(fused_in_run(&model, &x, &[y])[dw], panel_here());
    let again = model.run_float(&x, &[y]).unwrap().remove(0);
    assert_eq!(first.data(), again.data());
    assert!(std::sync::Arc::ptr_eq(
        &plan,
        &model.plan(&[y], &leaves, false)
    ));
    // Another input shape, mode or target set gets a plan of its own.
    let other = Tensor::zeros(&[1, 8, 12, 20]);
    let other_leaves = [(model.graph.input, Value::Float(other))];
    assert!(!std::sync::Arc::ptr_eq(
        &plan,
        &model.plan(&[y], &other_leaves, false)
    ));
    assert!(!std::sync::Arc::ptr_eq(
        &plan,
        &model.plan(&[y], &leaves, true)
    ));
}
