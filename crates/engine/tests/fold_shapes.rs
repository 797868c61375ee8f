//! Shape folding (`ExecConfig::fold_shapes`): the values that follow from the input's shape and
//! the constants alone are computed once per plan, and the nodes forming them leave the pass.
//!
//! The model is built here the way transformer exports build theirs, on an input of free
//! spatial size: `Shape → Gather → Mul → Unsqueeze → Concat → Reshape` flattens the map into
//! tokens, `Range → Cast → Mul → Unsqueeze → Expand` forms a position table, `Range → Mod →
//! Equal` a mask for `Where`, `ConstantOfShape` a zero addend, and a varying value is
//! `Expand`ed by a folded shape. Values and gradients must be the same folded and unfolded,
//! at every input size.

mod common;

use common::grad::{compare, gradients, Rng};
use convscope_engine::{ExecConfig, Model, Pass, Tensor, Value, ValueId};
use convscope_onnx::{data_type, AttributeProto as A, Dim, GraphBuilder, TensorProto};

/// Nodes of the model whose values follow from the input's shape alone.
const SHAPE_NODES: usize = 20;
/// Nodes of the model that read the input's values.
const DATA_NODES: usize = 10;

fn model_proto() -> convscope_onnx::ModelProto {
    let mut g = GraphBuilder::new("fold");
    let free = |s: &str| Dim::Param(s.into());
    g.input("x", &[free("N"), Dim::Value(3), free("H"), free("W")])
        .output("y", &[]);
    g.initializer(TensorProto::from_f32("k", &[1, 3, 1, 1], &[0.5, -1.5, 2.0]))
        .initializer(TensorProto::from_f32("tenth", &[], &[0.1]))
        .initializer(TensorProto::from_i64("zero", &[], &[0]))
        .initializer(TensorProto::from_i64("one", &[], &[1]))
        .initializer(TensorProto::from_i64("two", &[], &[2]))
        .initializer(TensorProto::from_i64("three", &[], &[3]))
        .initializer(TensorProto::from_i64("axis0", &[1], &[0]))
        .initializer(TensorProto::from_i64("axes02", &[2], &[0, 2]));
    let cat = || vec![A::int("axis", 0)];
    g.node("Mul", "scale", &["x", "k"], &["t"], vec![])
        // Shape → Gather → Mul → Unsqueeze → Concat → Reshape: [N, C, H·W].
        .node("Shape", "shape", &["t"], &["s"], vec![])
        .node("Gather", "get_n", &["s", "zero"], &["n"], vec![])
        .node("Gather", "get_c", &["s", "one"], &["c"], vec![])
        .node("Gather", "get_h", &["s", "two"], &["h"], vec![])
        .node("Gather", "get_w", &["s", "three"], &["w"], vec![])
        .node("Mul", "hw", &["h", "w"], &["hw"], vec![])
        .node("Unsqueeze", "n1", &["n", "axis0"], &["n1"], vec![])
        .node("Unsqueeze", "c1", &["c", "axis0"], &["c1"], vec![])
        .node("Unsqueeze", "hw1", &["hw", "axis0"], &["hw1"], vec![])
        .node("Concat", "dims", &["n1", "c1", "hw1"], &["dims"], cat())
        .node("Reshape", "flatten", &["t", "dims"], &["flat"], vec![])
        .node(
            "Transpose",
            "tokens",
            &["flat"],
            &["tok"],
            vec![A::ints("perm", &[0, 2, 1])],
        )
        // Range → Cast → Mul → Unsqueeze → Expand: a position table [N, H·W, C].
        .node("Range", "range", &["zero", "hw", "one"], &["r"], vec![])
        .node(
            "Cast",
            "cast",
            &["r"],
            &["rf"],
            vec![A::int("to", i64::from(data_type::FLOAT))],
        )
        .node("Mul", "pos", &["rf", "tenth"], &["pos"], vec![])
        .node("Unsqueeze", "pos3", &["pos", "axes02"], &["pos3"], vec![])
        .node("Concat", "shape3", &["n1", "hw1", "c1"], &["shape3"], cat())
        .node("Expand", "posx", &["pos3", "shape3"], &["posx"], vec![])
        .node("Add", "add_pos", &["tok", "posx"], &["a"], vec![])
        // Range → Mod → Equal: even tokens kept, odd ones negated.
        .node("Mod", "parity", &["r", "two"], &["par"], vec![])
        .node("Equal", "even", &["par", "zero"], &["m"], vec![])
        .node("Unsqueeze", "m3", &["m", "axes02"], &["m3"], vec![])
        .node("Neg", "neg", &["a"], &["na"], vec![])
        .node("Where", "select", &["m3", "a", "na"], &["b"], vec![])
        // A varying value expanded by a folded shape.
        .node(
            "ReduceMean",
            "gate",
            &["b"],
            &["gm"],
            vec![A::ints("axes", &[1]), A::int("keepdims", 1)],
        )
        .node("Expand", "gate_x", &["gm", "shape3"], &["ge"], vec![])
        .node("Mul", "gated", &["b", "ge"], &["yg"], vec![])
        .node("ConstantOfShape", "zeros", &["shape3"], &["z"], vec![])
        .node("Add", "out", &["yg", "z"], &["y"], vec![]);
    g.build(17)
}

fn load(fold: bool) -> Model {
    Model::from_proto(model_proto())
        .unwrap()
        .with_config(ExecConfig {
            fold_shapes: fold,
            ..ExecConfig::default()
        })
}

fn input(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), rng.vec(n, -1.0, 1.0)).unwrap()
}

/// The input gradient of `Σ r ⊙ y` for a fixed random `r`.
fn input_gradient(model: &Model, x: &Tensor, y: ValueId) -> Tensor {
    let out = model.run_float(x, &[y]).unwrap().remove(0);
    let r = input(out.shape(), 99);
    let tape = model.forward(x, &[y]).unwrap();
    tape.backward(vec![(y, r)], &[]).unwrap().input
}

#[test]
fn folded_and_unfolded_passes_agree_at_every_size() {
    let (folded, unfolded) = (load(true), load(false));
    let y = folded.resolve("y").unwrap();
    // Back to the first size last: its plan is found again, not folded for the size before.
    for (i, shape) in [[1, 3, 3, 5], [2, 3, 4, 4], [1, 3, 6, 2], [1, 3, 3, 5]]
        .iter()
        .enumerate()
    {
        let x = input(shape, i as u64);
        let a = folded.run_float(&x, &[y]).unwrap().remove(0);
        let b = unfolded.run_float(&x, &[y]).unwrap().remove(0);
        let tokens = shape[2] * shape[3];
        assert_eq!(a.shape(), [shape[0], tokens, 3], "{shape:?}");
        assert_eq!(a.shape(), b.shape(), "{shape:?}");
        assert_eq!(a.data(), b.data(), "{shape:?}: folded values differ");
        let (ga, gb) = (
            input_gradient(&folded, &x, y),
            input_gradient(&unfolded, &x, y),
        );
        assert_eq!(ga.data(), gb.data(), "{shape:?}: folded gradients differ");
        assert!(ga.data().iter().any(|&v| v != 0.0), "{shape:?}: a gradient");
    }
}

/// The position table and mask are the ones written in the model: token j gets `0.1·j` and is
/// negated when j is odd (checked on one channel whose scale is 1 after `k`).
#[test]
fn folded_values_are_those_of_the_graph() {
    let model = load(true);
    let b = model.resolve("b").unwrap();
    let x = input(&[1, 3, 2, 3], 5);
    let got = model.run_float(&x, &[b]).unwrap().remove(0);
    for j in 0..6 {
        // Channel 0: x · 0.5 at token j, plus 0.1·j, negated for odd j.
        let a = x.data()[j] * 0.5 + 0.1 * j as f32;
        let want = if j % 2 == 0 { a } else { -a };
        assert!((got.data()[j * 3] - want).abs() < 1e-6, "token {j}");
    }
    // A folded value asked for is returned as it is.
    let dims = model.resolve("dims").unwrap();
    match model.run(&x, &[dims]).unwrap().remove(0) {
        Value::Int(t) => assert_eq!(t.data(), [1, 3, 6]),
        Value::Float(_) => panic!("dims is an integer value"),
    }
}

#[test]
fn the_plan_skips_the_shape_nodes() {
    let (folded, unfolded) = (load(true), load(false));
    let y = folded.resolve("y").unwrap();
    for pass in [Pass::Inference, Pass::Tape] {
        for shape in [[1, 3, 3, 5], [2, 3, 4, 4]] {
            let f = folded.plan_nodes(&shape, &[y], pass);
            let u = unfolded.plan_nodes(&shape, &[y], pass);
            assert_eq!((u.run, u.skipped, u.folded_values), (30, 0, 0));
            assert_eq!((f.run, f.skipped), (DATA_NODES, SHAPE_NODES), "{pass:?}");
            // What the running nodes read: dims, shape3, posx, m3, z.
            assert_eq!(f.folded_values, 5, "{pass:?}");
        }
    }
}

/// Finite differences through the folded model: the gradient flows through Reshape, Expand and
/// Where whose shapes and mask were folded.
#[test]
fn gradients_through_folded_shapes_match_finite_differences() {
    let model = load(true);
    for (i, shape) in [[1, 3, 2, 3], [2, 3, 3, 2]].iter().enumerate() {
        let x = input(shape, 10 + i as u64);
        let (ana, fd) = gradients(&model, &x, 7).unwrap();
        let worst = compare(&ana, &fd).unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert!(worst < 1e-2, "{shape:?}: {worst}");
    }
}

/// A run from an intermediate value folds from that value's shape (a batch of 3 fed at `t`,
/// as Score-CAM feeds its masked maps).
#[test]
fn runs_from_a_feed_fold_from_its_shape() {
    let (folded, unfolded) = (load(true), load(false));
    let (t, y) = (folded.resolve("t").unwrap(), folded.resolve("y").unwrap());
    let feed = input(&[3, 3, 2, 4], 3);
    let a = folded
        .run_from(&[(t, feed.clone())], &[y])
        .unwrap()
        .remove(0);
    let b = unfolded.run_from(&[(t, feed)], &[y]).unwrap().remove(0);
    assert_eq!(a.shape(), [3, 8, 3]);
    assert_eq!(a.shape(), b.shape());
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => assert_eq!(a.data(), b.data()),
        _ => panic!("float outputs"),
    }
}
