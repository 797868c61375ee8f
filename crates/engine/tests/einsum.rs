//! Einsum: values against a naive loop over every index assignment (written here, from the
//! equation alone) on the equations exporters emit and on random operands, gradients by finite
//! differences, and the equations refused at load with a one-line error.

mod common;

use common::grad::*;
use convscope_engine::{Model, Tensor};
use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, TensorProto};

// ---------------------------------------------------------------------------------------------
// The naive reference
// ---------------------------------------------------------------------------------------------

/// Letters standing for the axes under `...` in the reference (the equations use lower case).
const ELLIPSIS_LETTERS: &[u8] = b"ABCDEFGH";

/// `einsum(equation, operands)` by looping over every assignment of every index, NumPy's rules:
/// `...` axes aligned to the right and broadcast (size 1 against n), an implicit output of `...`
/// and then the indices seen once, in alphabetical order.
fn naive(equation: &str, operands: &[&Tensor]) -> (Vec<usize>, Vec<f64>) {
    let (lhs, rhs) = match equation.split_once("->") {
        Some((l, r)) => (l, Some(r.to_string())),
        None => (equation, None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    let width = terms
        .iter()
        .zip(operands)
        .map(|(t, x)| {
            if t.contains("...") {
                x.rank() - (t.len() - 3)
            } else {
                0
            }
        })
        .max()
        .unwrap();
    let rhs = rhs.unwrap_or_else(|| {
        let letters: String = terms.concat().replace("...", "");
        let mut once: Vec<char> = letters
            .chars()
            .filter(|&c| letters.matches(c).count() == 1)
            .collect();
        once.sort_unstable();
        let dots = if lhs.contains("...") { "..." } else { "" };
        format!("{dots}{}", once.into_iter().collect::<String>())
    });
    let spell = |t: &str, cover: usize| -> Vec<u8> {
        let e = &ELLIPSIS_LETTERS[width - cover..width];
        t.replace("...", std::str::from_utf8(e).unwrap())
            .into_bytes()
    };
    let ins: Vec<Vec<u8>> = terms
        .iter()
        .zip(operands)
        .map(|(t, x)| {
            let cover = if t.contains("...") {
                x.rank() - (t.len() - 3)
            } else {
                0
            };
            spell(t, cover)
        })
        .collect();
    let out = spell(&rhs, width);
    let mut letters: Vec<u8> = ins.concat();
    letters.sort_unstable();
    letters.dedup();
    let size = |c: u8| {
        ins.iter()
            .zip(operands)
            .flat_map(|(t, x)| t.iter().zip(x.shape()).filter(move |(&l, _)| l == c))
            .map(|(_, &d)| d)
            .max()
            .unwrap()
    };
    let sizes: Vec<usize> = letters.iter().map(|&c| size(c)).collect();
    let out_shape: Vec<usize> = out.iter().map(|&c| size(c)).collect();
    let mut acc = vec![0.0f64; out_shape.iter().product()];
    let total: usize = sizes.iter().product();
    let mut idx = vec![0usize; letters.len()];
    for _ in 0..total {
        let at = |c: u8| idx[letters.iter().position(|&l| l == c).unwrap()];
        let mut p = 1.0f64;
        for (t, x) in ins.iter().zip(operands) {
            let mut flat = 0;
            for (&c, &d) in t.iter().zip(x.shape()) {
                flat = flat * d + if d == 1 { 0 } else { at(c) };
            }
            p *= x.data()[flat] as f64;
        }
        let mut o = 0;
        for (&c, &d) in out.iter().zip(&out_shape) {
            o = o * d + at(c);
        }
        acc[o] += p;
        // Next assignment (last index fastest).
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < sizes[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    (out_shape, acc)
}

/// A model `y = Einsum(x, w…)`: `x` its input of `x_shape` (run through a Reshape to the
/// operand's shape), the other operands random constants.
fn einsum_model(equation: &str, shapes: &[&[usize]], rng: &mut Rng) -> (Model, Vec<Tensor>) {
    let x_len: usize = shapes[0].iter().product();
    let mut g = GraphBuilder::new("einsum");
    g.input(
        "x",
        &[
            Dim::Value(1),
            Dim::Value(1),
            Dim::Value(1),
            Dim::Value(x_len as i64),
        ],
    )
    .output("y", &[]);
    let dims: Vec<i64> = shapes[0].iter().map(|&d| d as i64).collect();
    g.initializer(TensorProto::from_i64("dims", &[dims.len()], &dims))
        .node("Reshape", "to_operand", &["x", "dims"], &["x0"], vec![]);
    let mut names = vec!["x0".to_string()];
    let mut consts = Vec::new();
    for (i, s) in shapes.iter().enumerate().skip(1) {
        let t = Tensor::new(s.to_vec(), rng.vec(s.iter().product(), -1.0, 1.0)).unwrap();
        g.initializer(TensorProto::from_f32(&format!("w{i}"), s, t.data()));
        names.push(format!("w{i}"));
        consts.push(t);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    g.node(
        "Einsum",
        "einsum",
        &refs,
        &["y"],
        vec![A::string("equation", equation)],
    );
    (Model::from_proto(g.build(12)).unwrap(), consts)
}

/// The equations checked, with operand shapes: attention, batched and broadcast products,
/// transposes, reductions, outer and inner products, implicit outputs.
const CASES: &[(&str, &[&[usize]])] = &[
    ("bhid,bhjd->bhij", &[&[2, 3, 4, 5], &[2, 3, 6, 5]]),
    ("bhij,bhjd->bhid", &[&[2, 3, 4, 6], &[2, 3, 6, 5]]),
    ("bij,bjk->bik", &[&[3, 4, 5], &[3, 5, 2]]),
    ("...ij,...jk->...ik", &[&[2, 1, 4, 5], &[3, 5, 2]]),
    ("...ij,...jk->...ik", &[&[4, 5], &[2, 5, 3]]),
    ("ij->ji", &[&[3, 4]]),
    ("i,i->", &[&[7], &[7]]),
    ("ij,jk", &[&[3, 4], &[4, 5]]),
    ("ba", &[&[3, 4]]),
    ("ij->", &[&[3, 4]]),
    ("ij->i", &[&[3, 4]]),
    ("i,j->ij", &[&[3], &[4]]),
    ("bnc,cd->bnd", &[&[2, 3, 4], &[4, 5]]),
    ("ij,ij->ij", &[&[3, 4], &[3, 4]]),
    ("ijk,k->ij", &[&[2, 3, 4], &[4]]),
    ("bhwc,hkc->bhwk", &[&[2, 3, 4, 5], &[3, 6, 5]]),
    ("bij,bkj->bik", &[&[2, 3, 4], &[2, 5, 4]]),
    ("bi,bk->b", &[&[3, 4], &[3, 5]]),
    ("...d,d->...", &[&[2, 3, 4], &[4]]),
    ("...ij->...ji", &[&[2, 3, 4]]),
    ("...ij->ij", &[&[2, 3, 4]]),
    ("b i d , b j d -> b i j", &[&[2, 3, 4], &[2, 5, 4]]),
];

#[test]
fn einsum_matches_the_naive_loop() {
    let mut failures = Vec::new();
    for (n, (equation, shapes)) in CASES.iter().enumerate() {
        let mut rng = Rng::new(seed_of(equation) ^ n as u64);
        let (model, consts) = einsum_model(equation, shapes, &mut rng);
        let x_len: usize = shapes[0].iter().product();
        let x = Tensor::new(vec![1, 1, 1, x_len], rng.vec(x_len, -1.0, 1.0)).unwrap();
        let y = model.resolve("y").unwrap();
        let got = match model.run_float(&x, &[y]) {
            Ok(mut v) => v.remove(0),
            Err(e) => {
                failures.push(format!("{equation}: {e}"));
                continue;
            }
        };
        let x0 = Tensor::new(shapes[0].to_vec(), x.data().to_vec()).unwrap();
        let mut ops = vec![&x0];
        ops.extend(consts.iter());
        let (shape, want) = naive(&equation.replace(' ', ""), &ops);
        if got.shape() != shape {
            failures.push(format!(
                "{equation}: shape {:?}, want {shape:?}",
                got.shape()
            ));
            continue;
        }
        // Shape inference (memory estimates) gives the same shape without running.
        match model.value_shape(x.shape(), y) {
            Ok(s) if s == shape => {}
            other => failures.push(format!("{equation}: inferred {other:?}, want {shape:?}")),
        }
        let worst = got
            .data()
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0, f64::max);
        if worst > 1e-5 {
            failures.push(format!("{equation}: off by {worst:e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Random equations of two operands over up to five indices: each index in the first operand,
/// the second or both, kept or summed, operands and output in shuffled order.
#[test]
fn random_equations_match_the_naive_loop() {
    let mut rng = Rng::new(23);
    for round in 0..60 {
        let n = 1 + (rng.next_u64() % 5) as usize;
        let letters: Vec<char> = "pqrst".chars().take(n).collect();
        let (mut a, mut b, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for &c in &letters {
            match rng.next_u64() % 3 {
                0 => a.push(c),
                1 => b.push(c),
                _ => {
                    a.push(c);
                    b.push(c);
                }
            }
            if rng.next_u64().is_multiple_of(2) {
                out.push(c);
            }
        }
        if a.is_empty() || b.is_empty() {
            continue;
        }
        rng.shuffle(&mut a);
        rng.shuffle(&mut b);
        rng.shuffle(&mut out);
        let s = |v: &[char]| v.iter().collect::<String>();
        let equation = format!("{},{}->{}", s(&a), s(&b), s(&out));
        let size = |c: char| 2 + (c as usize * 7 + round) % 3;
        let sa: Vec<usize> = a.iter().map(|&c| size(c)).collect();
        let sb: Vec<usize> = b.iter().map(|&c| size(c)).collect();
        let (model, consts) = einsum_model(&equation, &[&sa, &sb], &mut rng);
        let xa = Tensor::new(sa.clone(), rng.vec(sa.iter().product(), -1.0, 1.0)).unwrap();
        let x = Tensor::new(vec![1, 1, 1, xa.len()], xa.data().to_vec()).unwrap();
        let y = model.resolve("y").unwrap();
        let got = model
            .run_float(&x, &[y])
            .unwrap_or_else(|e| panic!("{equation}: {e}"))
            .remove(0);
        let (shape, want) = naive(&equation, &[&xa, &consts[0]]);
        assert_eq!(got.shape(), shape, "{equation}");
        for (g, w) in got.data().iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{equation}: {g} vs {w}");
        }
    }
}

/// Gradients by finite differences: the input as one operand (the other a constant, broadcast
/// along a `...` axis of size 1 in one case, summed privately in another) and as both operands
/// of an attention product.
#[test]
fn grad_einsum() {
    let mut f = Family::default();
    /// An equation, the input's shape, and the constant operand's shape (none: the input is
    /// every operand).
    type Case<'a> = (&'a str, &'a [usize], Option<&'a [usize]>);
    let cases: &[Case] = &[
        ("bhid,bhjd->bhij", &[2, 3, 4, 5], Some(&[2, 3, 6, 5])),
        ("bij,bjk->bik", &[2, 3, 4, 5], None),
        ("...ij,...jk->...ik", &[1, 3, 4, 5], Some(&[2, 1, 5, 2])),
        ("abij->abji", &[2, 3, 4, 5], None),
        ("abij->ai", &[2, 3, 4, 5], None),
        ("abij,k->abk", &[2, 3, 4, 5], Some(&[3])),
        ("abij,bj", &[2, 3, 4, 5], Some(&[3, 5])),
    ];
    for &(equation, xs, other) in cases {
        f.case(equation, |rng| {
            let mut n = Net::new(xs, 12);
            let inputs: Vec<&str> = match other {
                Some(s) => {
                    n.rand(rng, "w", s, -1.0, 1.0);
                    vec!["x", "w"]
                }
                // The input on both sides: `bij,bjk` on [2·3, 4, 5] read as i, j, k sizes.
                None if equation.contains(',') => vec!["xr", "xt"],
                None => vec!["x"],
            };
            if inputs[0] == "xr" {
                n.i("r", &[3], &[6, 4, 5])
                    .node("Reshape", &["x", "r"], &["xr"], vec![])
                    .node(
                        "Transpose",
                        &["xr"],
                        &["xt"],
                        vec![A::ints("perm", &[0, 2, 1])],
                    );
            }
            n.node(
                "Einsum",
                &inputs,
                &["y"],
                vec![A::string("equation", equation)],
            );
            (n, xin(rng, xs))
        });
    }
    // x against itself: the attention scores q·kᵀ with q = k = x.
    f.case("bhid,bhjd->bhij self", |rng| {
        let mut n = Net::new(&XS, 12);
        n.node(
            "Einsum",
            &["x", "x"],
            &["y"],
            vec![A::string("equation", "bhid,bhjd->bhij")],
        );
        (n, xin(rng, &XS))
    });
    f.finish();
}

/// Equations the engine does not run are refused when the model loads, in one line naming the
/// node and the equation; operands that do not fit their equation fail the pass with an error.
#[test]
fn unsupported_equations_are_refused_at_load() {
    for (equation, inputs, why) in [
        ("ii->i", &["x"][..], "diagonal"),
        ("bii->b", &["x"][..], "diagonal"),
        ("ij,jk,kl->il", &["x", "x", "x"][..], "3 operands"),
        ("ij->k", &["x"][..], "'k'"),
        ("ij,jk->ik", &["x"][..], "2 operand"),
        ("i#j->ij", &["x"][..], "'#'"),
    ] {
        let mut n = Net::new(&[1, 1, 2, 2], 12);
        n.node(
            "Einsum",
            inputs,
            &["y"],
            vec![A::string("equation", equation)],
        );
        let e = n
            .build()
            .err()
            .unwrap_or_else(|| panic!("{equation} loads"));
        assert!(e.contains("einsum_0"), "{equation}: {e}");
        assert!(e.contains(equation), "{equation}: {e}");
        assert!(e.contains(why), "{equation}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    // Two indices for a 4-D operand: an error from the pass, not a panic.
    let mut n = Net::new(&[1, 1, 2, 2], 12);
    n.node(
        "Einsum",
        &["x"],
        &["y"],
        vec![A::string("equation", "ij->ji")],
    );
    let model = n.build().unwrap();
    let y = model.resolve("y").unwrap();
    let e = model
        .run(&Tensor::zeros(&[1, 1, 2, 2]), &[y])
        .unwrap_err()
        .to_string();
    assert!(e.contains("einsum_0") && e.contains("4 axes"), "{e}");
    // Index sizes that disagree.
    let mut n = Net::new(&[1, 1, 2, 3], 12);
    n.rand(&mut Rng::new(1), "w", &[4, 2], -1.0, 1.0).node(
        "Einsum",
        &["x", "w"],
        &["y"],
        vec![A::string("equation", "abij,jk->abik")],
    );
    let model = n.build().unwrap();
    let y = model.resolve("y").unwrap();
    let e = model
        .run(&Tensor::zeros(&[1, 1, 2, 3]), &[y])
        .unwrap_err()
        .to_string();
    assert!(e.contains("sizes 3 and 4"), "{e}");
}
