//! Hostile and unlucky models (issue #22): names and graphs far larger than any real network,
//! non-finite weights, integer-typed inputs. Each must load and run, or be refused with one
//! line, never panic.

use std::time::Instant;

use convscope_engine::{Model, Tensor};
use convscope_onnx::{Dim, GraphBuilder, ModelProto};

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
