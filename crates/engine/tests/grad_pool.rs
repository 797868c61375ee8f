//! Pooling gradients: finite-difference checks of every pool, and the routing of 2×2 max-pool
//! gradients to the first maximum (ties, NaN, the vectorised rows).

mod common;

use common::grad::*;
use convscope_engine::{Model, Tensor};
use convscope_onnx::AttributeProto as A;

// ---------------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_pool() {
    let mut f = Family::default();
    let pool = |f: &mut Family, name: &str, op: &str, x: &[usize], attrs: Vec<A>| {
        f.case(name, |rng| {
            (single(rng, x, 13, op, &["x"], &[], attrs), xin(rng, x))
        });
    };
    let k = |a: i64, b: i64| A::ints("kernel_shape", &[a, b]);
    let s = |a: i64, b: i64| A::ints("strides", &[a, b]);
    let p = |v: &[i64]| A::ints("pads", v);
    pool(
        &mut f,
        "maxpool_k2s2",
        "MaxPool",
        &[2, 2, 4, 6],
        vec![k(2, 2), s(2, 2)],
    );
    pool(
        &mut f,
        "maxpool_k3s2_pads1_ceil",
        "MaxPool",
        &[1, 2, 6, 6],
        vec![k(3, 3), s(2, 2), p(&[1, 1, 1, 1]), A::int("ceil_mode", 1)],
    );
    pool(
        &mut f,
        "maxpool_k2s2_ceil_odd",
        "MaxPool",
        &[1, 3, 5, 5],
        vec![k(2, 2), s(2, 2), A::int("ceil_mode", 1)],
    );
    pool(
        &mut f,
        "maxpool_dilation2",
        "MaxPool",
        &[1, 2, 5, 6],
        vec![k(2, 2), A::ints("dilations", &[2, 2])],
    );
    pool(
        &mut f,
        "maxpool_rect_asym_pads",
        "MaxPool",
        &[2, 2, 5, 4],
        vec![k(2, 3), s(2, 1), p(&[0, 1, 1, 0])],
    );
    pool(
        &mut f,
        "maxpool_same_upper",
        "MaxPool",
        &[1, 2, 5, 5],
        vec![k(3, 3), s(2, 2), A::string("auto_pad", "SAME_UPPER")],
    );
    for include in [0, 1] {
        pool(
            &mut f,
            &format!("avgpool_k3s2_pads1_include{include}"),
            "AveragePool",
            &[1, 2, 5, 5],
            vec![
                k(3, 3),
                s(2, 2),
                p(&[1, 1, 1, 1]),
                A::int("count_include_pad", include),
            ],
        );
        pool(
            &mut f,
            &format!("avgpool_ceil_pads0011_include{include}"),
            "AveragePool",
            &[1, 2, 5, 5],
            vec![
                k(3, 3),
                s(2, 2),
                p(&[0, 0, 1, 1]),
                A::int("ceil_mode", 1),
                A::int("count_include_pad", include),
            ],
        );
    }
    pool(
        &mut f,
        "avgpool_rect_nopad",
        "AveragePool",
        &[2, 2, 4, 5],
        vec![k(2, 3), s(1, 2)],
    );
    f.case("global_average_pool", |rng| {
        (
            single(rng, &XS, 13, "GlobalAveragePool", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("global_max_pool", |rng| {
        (
            single(rng, &XS, 13, "GlobalMaxPool", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.finish();
}

/// A model of one 2×2, stride-2 MaxPool (VGG's) from `x` of `shape` to `y`.
fn maxpool_2x2(shape: &[usize]) -> Model {
    let mut net = Net::new(shape, 13);
    net.node(
        "MaxPool",
        &["x"],
        &["y"],
        vec![
            A::ints("kernel_shape", &[2, 2]),
            A::ints("strides", &[2, 2]),
        ],
    );
    net.build().unwrap()
}

/// VGG's 2×2 stride-2 max pools run a branch-free path: ties send the gradient to the first
/// maximum in row-major window order (never split, never scaled), and a NaN wins its window.
#[test]
fn maxpool_2x2_routes_ties_to_the_first_maximum() {
    let model = maxpool_2x2(&[1, 1, 2, 6]);
    let y = model.resolve("y").unwrap();
    let nan = f32::NAN;
    // Windows: [1 3; 3 2] (tie of 3s), [5 5; 5 5] (all equal), [0 NaN; 1 2] (NaN).
    let x = Tensor::new(
        vec![1, 1, 2, 6],
        vec![1.0, 3.0, 5.0, 5.0, 0.0, nan, 3.0, 2.0, 5.0, 5.0, 1.0, 2.0],
    )
    .unwrap();
    let tape = model.forward(&x, &[y]).unwrap();
    let out = tape.value(y).unwrap().data().to_vec();
    assert_eq!(&out[..2], &[3.0, 5.0]);
    assert!(out[2].is_nan());
    let g = tape
        .backward(
            vec![(
                y,
                Tensor::new(vec![1, 1, 1, 3], vec![1.0, 2.0, 4.0]).unwrap(),
            )],
            &[],
        )
        .unwrap()
        .input;
    assert_eq!(
        g.data(),
        &[0.0, 1.0, 2.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

/// The vectorised 2×2 max-pool backward (8 windows at a time, then one by one) routes exactly
/// as the rule says on a wide input full of ties and a few NaNs.
#[test]
fn maxpool_2x2_backward_wide_rows_match_the_first_maximum_rule() {
    // 19 windows per row (16 vectorised + 3); odd sizes leave a last row and column that no
    // window covers, whose gradient must be written as zero (the buffer starts uninitialised).
    let (c, h, w) = (2usize, 5usize, 39usize);
    let model = maxpool_2x2(&[1, c, h, w]);
    let y = model.resolve("y").unwrap();
    let mut rng = Rng::new(seed_of("pool ties"));
    // Values from a set of four, so most windows hold ties; every 29th is NaN.
    let xs: Vec<f32> = (0..c * h * w)
        .map(|i| {
            if i % 29 == 7 {
                f32::NAN
            } else {
                (rng.vec(1, 0.0, 4.0)[0]).floor() - 1.0
            }
        })
        .collect();
    let x = Tensor::new(vec![1, c, h, w], xs.clone()).unwrap();
    let (oh, ow) = (h / 2, w / 2);
    let dy: Vec<f32> = (0..c * oh * ow).map(|i| 1.0 + i as f32).collect();
    let tape = model.forward(&x, &[y]).unwrap();
    let g = tape
        .backward(
            vec![(y, Tensor::new(vec![1, c, oh, ow], dy.clone()).unwrap())],
            &[],
        )
        .unwrap()
        .input;
    let mut want = vec![0.0f32; xs.len()];
    for ch in 0..c {
        for i in 0..oh {
            for j in 0..ow {
                let at = |a: usize, b: usize| (ch * h + 2 * i + a) * w + 2 * j + b;
                let cells = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                // A NaN wins (the first NaN), else the first of the largest.
                let pick = cells
                    .iter()
                    .copied()
                    .find(|&k| xs[k].is_nan())
                    .unwrap_or_else(|| {
                        let best = cells
                            .iter()
                            .map(|&k| xs[k])
                            .fold(f32::NEG_INFINITY, f32::max);
                        cells.iter().copied().find(|&k| xs[k] == best).unwrap()
                    });
                want[pick] = dy[(ch * oh + i) * ow + j];
            }
        }
    }
    assert_eq!(g.data(), &want[..]);
}
