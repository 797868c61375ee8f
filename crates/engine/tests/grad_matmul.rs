//! Finite-difference checks of MatMul and Gemm gradients (transposes, broadcasts, batches).

mod common;

use common::grad::*;
use convscope_onnx::AttributeProto as A;

// ---------------------------------------------------------------------------------------------
// MatMul and Gemm
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_matmul_gemm() {
    let mut f = Family::default();
    let reshape_then =
        |rng: &mut Rng, shape: &[i64], op: &str, x_first: bool, c: &[usize], attrs: Vec<A>| {
            let mut n = Net::new(&XS, 13);
            n.i("shape", &[shape.len()], shape)
                .rand(rng, "c", c, -1.0, 1.0)
                .node("Reshape", &["x", "shape"], &["xr"], vec![]);
            let inputs = if x_first { ["xr", "c"] } else { ["c", "xr"] };
            n.node(op, &inputs, &["y"], attrs);
            n
        };
    f.case("matmul_2d_x_c", |rng| {
        (
            reshape_then(rng, &[24, 5], "MatMul", true, &[5, 3], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_2d_c_x", |rng| {
        (
            reshape_then(rng, &[6, 20], "MatMul", false, &[4, 6], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_3d_batched_x_c2d", |rng| {
        (
            reshape_then(rng, &[6, 4, 5], "MatMul", true, &[5, 2], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_3d_batched_x_c3d", |rng| {
        (
            reshape_then(rng, &[6, 4, 5], "MatMul", true, &[6, 5, 2], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_4d_x_broadcast_c3d", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "MatMul",
            &["x", "c"],
            &[("c", &[3, 5, 2])],
            vec![],
        );
        (n, xin(rng, &XS))
    });
    f.case("matmul_c2d_x_4d", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "MatMul",
            &["c", "x"],
            &[("c", &[3, 4])],
            vec![],
        );
        (n, xin(rng, &XS))
    });
    f.case("matmul_c_batched_x_4d", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "MatMul",
            &["c", "x"],
            &[("c", &[2, 1, 2, 4])],
            vec![],
        );
        (n, xin(rng, &XS))
    });
    f.case("matmul_x_vector", |rng| {
        (
            reshape_then(rng, &[2, 60], "MatMul", true, &[60], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_vector_x", |rng| {
        (
            reshape_then(rng, &[6, 20], "MatMul", false, &[6], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_x_xt", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("shape", &[3], &[6, 4, 5])
            .node("Reshape", &["x", "shape"], &["a"], vec![])
            .node(
                "Transpose",
                &["a"],
                &["at"],
                vec![A::ints("perm", &[0, 2, 1])],
            )
            .node("MatMul", &["a", "at"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    let gemm = |rng: &mut Rng,
                shape: &[i64],
                x_first: bool,
                other: &[usize],
                c: Option<&[usize]>,
                attrs: Vec<A>| {
        let mut n = Net::new(&XS, 13);
        n.i("shape", &[shape.len()], shape)
            .rand(rng, "o", other, -1.0, 1.0)
            .node("Reshape", &["x", "shape"], &["xr"], vec![]);
        let mut inputs = if x_first {
            vec!["xr", "o"]
        } else {
            vec!["o", "xr"]
        };
        if let Some(c) = c {
            n.rand(rng, "c", c, -1.0, 1.0);
            inputs.push("c");
        }
        n.node("Gemm", &inputs, &["y"], attrs);
        n
    };
    f.case("gemm_plain_bias_vector", |rng| {
        (
            gemm(rng, &[2, 60], true, &[60, 4], Some(&[4]), vec![]),
            xin(rng, &XS),
        )
    });
    f.case("gemm_transB_alpha_beta", |rng| {
        let attrs = vec![
            A::int("transB", 1),
            A::float("alpha", 0.5),
            A::float("beta", 2.0),
        ];
        (
            gemm(rng, &[2, 60], true, &[4, 60], Some(&[1, 4]), attrs),
            xin(rng, &XS),
        )
    });
    // Batch 1 with transB: the classifier-head route (four rows of B at a time, then the rest).
    f.case("gemm_batch1_transB_seven_outputs", |rng| {
        let attrs = vec![A::int("transB", 1)];
        (
            gemm(rng, &[1, 120], true, &[7, 120], Some(&[7]), attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_transA_full_bias", |rng| {
        let attrs = vec![
            A::int("transA", 1),
            A::float("alpha", 1.5),
            A::float("beta", 0.3),
        ];
        (
            gemm(rng, &[60, 2], true, &[60, 3], Some(&[2, 3]), attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_transA_transB_no_bias", |rng| {
        let attrs = vec![A::int("transA", 1), A::int("transB", 1)];
        (
            gemm(rng, &[20, 6], true, &[3, 20], None, attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_x_as_B", |rng| {
        (
            gemm(rng, &[60, 2], false, &[4, 60], Some(&[4, 1]), vec![]),
            xin(rng, &XS),
        )
    });
    f.case("gemm_x_as_B_transB_alpha", |rng| {
        let attrs = vec![A::int("transB", 1), A::float("alpha", -0.7)];
        (
            gemm(rng, &[2, 60], false, &[3, 60], None, attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_x_as_B_transA_transB", |rng| {
        let attrs = vec![A::int("transA", 1), A::int("transB", 1)];
        (
            gemm(rng, &[6, 20], false, &[20, 3], Some(&[1]), attrs),
            xin(rng, &XS),
        )
    });
    f.finish();
}
