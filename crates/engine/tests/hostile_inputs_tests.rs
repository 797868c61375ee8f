//! Hostile and unlucky models (issue #22): names and graphs far larger than any real network,
//! non-finite weights, integer-typed inputs. Each must load and run, or be refused with one
//! line, never panic.

use std::time::Instant;

use convscope_engine::{Error, LoadOptions, Model, Tensor};
use convscope_onnx::{data_type, AttributeProto, Dim, GraphBuilder, ModelProto, TensorProto};

fn dims(v: &[i64]) -> Vec<Dim> {
    v.iter().map(|&d| Dim::Value(d)).collect()
}

/// x [1,1,2,2] → a chain of `n` nodes of `op` → y.
fn chain(n: usize, op: &str) -> ModelProto {
    let mut g = GraphBuilder::new("chain");
    g.input("x", &dims(&[1, 1, 2, 2]));
    let names: Vec<String> = (0..=n)
        .map(|i| if i == 0 { "x".into() } else { format!("v{i}") })
        .collect();
    for i in 0..n {
        g.node(op, &format!("n{i}"), &[&names[i]], &[&names[i + 1]], vec![]);
    }
    g.output(&names[n], &[]);
    g.build(13)
}

/// A node name of 70,000 characters (more than `std::fmt`'s 65,535 width limit): the summary
/// prints it whole and does not panic (it panicked with "formatting width out of range").
#[test]
fn a_huge_node_name_prints_in_the_summary() {
    let long = "n".repeat(70_000);
    let mut g = GraphBuilder::new("long");
    g.input("x", &dims(&[1, 1, 2, 2]))
        .node("Neg", &long, &["x"], &["y"], vec![])
        .node("Relu", "short", &["y"], &["z"], vec![])
        .node("Neg", "second", &["z"], &["out"], vec![])
        .output("out", &[]);
    let model = Model::from_proto(g.build(13)).unwrap();
    let summary = model.summary(None).unwrap();
    let text = summary.to_string();
    assert!(text.contains(&long), "the name is printed whole");
    // The other rows keep a table of sane width.
    let second = text.lines().find(|l| l.contains("second")).unwrap();
    assert!(second.chars().count() < 200, "{second}");
}

/// 200,000 nodes in a chain: the ReLUs fuse into one layer whose ops text is 1 MB long (the
/// summary panicked on it), and a chain of 200,000 one-node layers loads, runs and summarises
/// without deep recursion. Times are printed for the report, not asserted.
#[test]
fn a_200000_node_chain_loads_runs_and_summarises() {
    for (n, op) in [(200_000, "Relu"), (50_000, "Neg"), (200_000, "Neg")] {
        let proto = chain(n, op);
        let bytes = proto.encode();
        let t0 = Instant::now();
        let model = Model::from_bytes(&bytes).unwrap();
        let load = t0.elapsed();
        let x = Tensor::new(vec![1, 1, 2, 2], vec![1.0, -2.0, 3.0, -4.0]).unwrap();
        let out = *model.outputs().first().unwrap();
        let t1 = Instant::now();
        let y = model.run_float(&x, &[out]).unwrap().remove(0);
        let run = t1.elapsed();
        let want: Vec<f32> = match op {
            "Relu" => vec![1.0, 0.0, 3.0, 0.0],
            _ if n % 2 == 0 => x.data().to_vec(),
            _ => x.data().iter().map(|v| -v).collect(),
        };
        assert_eq!(y.data(), &want[..], "{n} × {op}");
        let t2 = Instant::now();
        let tape = model.forward(&x, &[out]).unwrap();
        let grads = tape
            .backward(vec![(out, Tensor::full(&[1, 1, 2, 2], 1.0))], &[])
            .unwrap();
        let backward = t2.elapsed();
        assert_eq!(grads.input.len(), 4);
        let t3 = Instant::now();
        let summary = model.summary(None).unwrap();
        let text = summary.to_string();
        let shown = t3.elapsed();
        let layers = if op == "Relu" { 1 } else { n };
        assert_eq!(summary.layers.len(), layers, "{n} × {op}");
        assert!(text.lines().count() >= layers);
        eprintln!(
            "{n} × {op}: {} bytes, load {:.0} ms, run {:.0} ms, forward+backward {:.0} ms, summary {:.0} ms",
            bytes.len(),
            load.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3,
            backward.as_secs_f64() * 1e3,
            shown.as_secs_f64() * 1e3
        );
    }
}

/// x [1,2,3,3] → Conv (w [2,2,1,1], b [2]) → Relu → y, with `w` and `b` as given.
fn conv_relu(w: &[f32], b: &[f32]) -> ModelProto {
    let mut g = GraphBuilder::new("conv_relu");
    g.input("x", &dims(&[1, 2, 3, 3]))
        .initializer(TensorProto::from_f32("w", &[2, 2, 1, 1], w))
        .initializer(TensorProto::from_f32("b", &[2], b))
        .node("Conv", "conv", &["x", "w", "b"], &["c"], vec![])
        .node("Relu", "relu", &["c"], &["y"], vec![])
        .output("y", &[]);
    g.build(13)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("convscope-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Weights that hold NaN or ±infinity are refused at load, by every entry point, with one
/// line naming the tensor, the element and its readers (they used to load, and every value
/// computed from them came out NaN). `allow_nonfinite` loads them anyway.
#[test]
fn nonfinite_weights_are_refused_at_load_naming_tensor_and_readers() {
    let good = [0.5, -0.25, 1.0, 2.0];
    let mut nan_w = good;
    nan_w[3] = f32::NAN;
    let refusals = [
        (
            conv_relu(&nan_w, &[0.0, 0.0]),
            "weight 'w' holds NaN at element 3 (read by node 'conv' (Conv))",
        ),
        (
            conv_relu(&good, &[0.0, f32::NEG_INFINITY]),
            "weight 'b' holds -inf at element 1 (read by node 'conv' (Conv))",
        ),
    ];
    let dir = temp_dir("nonfinite");
    for (proto, words) in refusals {
        let path = dir.join("m.onnx");
        std::fs::write(&path, proto.encode()).unwrap();
        for (how, result) in [
            ("from_proto", Model::from_proto(proto.clone())),
            ("from_bytes", Model::from_bytes(&proto.encode())),
            ("load", Model::load(&path)),
        ] {
            let err = result.err().unwrap_or_else(|| panic!("{how}: loaded"));
            assert!(matches!(err, Error::NonFiniteWeight { .. }), "{how}: {err}");
            let msg = err.to_string();
            assert!(
                msg.contains(words) && msg.contains("allow_nonfinite"),
                "{how}: {msg}"
            );
            assert!(!msg.contains('\n'));
        }
        let opts = LoadOptions {
            allow_nonfinite: true,
        };
        assert!(Model::load_with(&path, &opts).is_ok());
        assert!(Model::from_bytes_with(&proto.encode(), &opts).is_ok());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(Model::from_proto(conv_relu(&good, &[0.0, 0.0])).is_ok());
}

/// Other kinds of constants: a `Constant` node's float, a DOUBLE that only overflows as an f32,
/// and infinite bounds, which are allowed where infinity means "no bound" (a single value read
/// only by Clip, Pad, Max or Min) and refused elsewhere.
#[test]
fn nonfinite_constants_and_infinite_bounds() {
    let build = |constant: TensorProto, op: &str, as_node: bool| {
        let mut g = GraphBuilder::new("bound");
        g.input("x", &dims(&[1, 1, 2, 2]));
        if as_node {
            g.node(
                "Constant",
                "k",
                &[],
                &["k"],
                vec![AttributeProto::float("value_float", f32::NAN)],
            );
        } else {
            g.initializer(constant);
        }
        let inputs: Vec<&str> = match op {
            "Clip" => vec!["x", "", "k"],
            _ => vec!["x", "k"],
        };
        g.node(op, "use", &inputs, &["y"], vec![]).output("y", &[]);
        Model::from_proto(g.build(13))
    };
    let inf = || TensorProto::from_f32("k", &[], &[f32::INFINITY]);
    for op in ["Clip", "Max", "Min"] {
        assert!(
            build(inf(), op, false).is_ok(),
            "{op} with an infinite bound"
        );
    }
    for (op, constant, node, words) in [
        (
            "Mul",
            inf(),
            false,
            "weight 'k' holds inf at element 0 (read by node 'use' (Mul))",
        ),
        (
            "Clip",
            TensorProto::from_f32("k", &[2], &[f32::INFINITY, 1.0]),
            false,
            "weight 'k' holds inf",
        ),
        (
            "Clip",
            TensorProto::from_f32("k", &[], &[f32::NAN]),
            false,
            "weight 'k' holds NaN",
        ),
        (
            "Mul",
            inf(),
            true,
            "weight 'k' holds NaN at element 0 (read by node 'use' (Mul))",
        ),
        (
            "Mul",
            TensorProto {
                name: "k".into(),
                dims: vec![1],
                data_type: data_type::DOUBLE,
                double_data: vec![1e300],
                ..Default::default()
            },
            false,
            "weight 'k' holds inf",
        ),
    ] {
        let err = build(constant, op, node)
            .err()
            .unwrap_or_else(|| panic!("{words}: loaded"));
        assert!(err.to_string().contains(words), "{err}");
    }
}

/// The first node (in execution order, fusions undone) whose output holds NaN or infinity.
#[test]
fn first_nonfinite_names_the_node_that_made_it() {
    // Relu → Log: log(0) = -inf at the negative inputs; the Neg after it is not blamed.
    let mut g = GraphBuilder::new("log");
    g.input("x", &dims(&[1, 1, 2, 2]))
        .node("Relu", "relu", &["x"], &["r"], vec![])
        .node("Log", "log", &["r"], &["l"], vec![])
        .node("Neg", "neg", &["l"], &["y"], vec![])
        .output("y", &[]);
    let m = Model::from_proto(g.build(13)).unwrap();
    let x = Tensor::new(vec![1, 1, 2, 2], vec![1.0, -2.0, 3.0, -4.0]).unwrap();
    let found = m.first_nonfinite(&x).unwrap().expect("log(0)");
    assert_eq!(found.node.as_deref(), Some("log"));
    assert_eq!(
        (found.value.as_str(), found.index, found.count, found.len),
        ("l", 1, 2, 4)
    );
    assert_eq!(found.element, f32::NEG_INFINITY);
    assert_eq!(
        found.to_string(),
        "node 'log' (Log) produced -inf at element 1 (2 of 4 values non-finite) in 'l', from finite inputs"
    );
    let positive = Tensor::full(&[1, 1, 2, 2], 2.0);
    assert_eq!(m.first_nonfinite(&positive).unwrap(), None);
    let mut nan = positive.clone();
    nan.data_mut()[3] = f32::NAN;
    let found = m.first_nonfinite(&nan).unwrap().expect("the input");
    assert_eq!(
        (found.node.clone(), found.value.as_str(), found.index),
        (None, "x", 3)
    );
    assert!(found
        .to_string()
        .starts_with("the input 'x' holds NaN at element 3"));

    // Conv → Relu runs fused in a normal pass; the overflow is the convolution's.
    let m = Model::from_proto(conv_relu(&[1e30, 1e30, 1e30, 1e30], &[0.0, 0.0])).unwrap();
    let x = Tensor::full(&[1, 2, 3, 3], 1e10);
    let found = m.first_nonfinite(&x).unwrap().expect("overflow");
    assert_eq!(
        (found.node.as_deref(), found.op.as_str()),
        (Some("conv"), "Conv")
    );

    // A NaN weight loaded on purpose is named as the likely cause.
    let mut w = [1.0f32; 4];
    w[0] = f32::NAN;
    let opts = LoadOptions {
        allow_nonfinite: true,
    };
    let m = Model::from_proto_with(conv_relu(&w, &[0.0, 0.0]), &opts).unwrap();
    let found = m
        .first_nonfinite(&Tensor::full(&[1, 2, 3, 3], 1.0))
        .unwrap()
        .unwrap();
    assert_eq!(found.nonfinite_weights, ["w"]);
    assert!(
        found.to_string().ends_with("reading non-finite weight 'w'"),
        "{found}"
    );
}

/// A model that declares a 1,000,000 × 2,000,000 input is summarised at the default size, and
/// the summary says what it declares (it used to say "size not declared").
#[test]
fn an_absurd_declared_size_is_named_in_the_summary() {
    let mut g = GraphBuilder::new("huge");
    g.input("x", &dims(&[1, 3, 1_000_000, 2_000_000]))
        .node("Neg", "neg", &["x"], &["y"], vec![])
        .output("y", &[]);
    let model = Model::from_proto(g.build(13)).unwrap();
    let summary = model.summary(None).unwrap();
    assert_eq!(summary.input_shape, [1, 3, 224, 224]);
    assert_eq!(summary.unusable_size, Some((1_000_000, 2_000_000)));
    let text = summary.to_string();
    assert!(
        text.contains("(declares 2000000x1000000, beyond the 65536 pixels per side convscope runs; shapes shown at this size)"),
        "{text}"
    );
}
