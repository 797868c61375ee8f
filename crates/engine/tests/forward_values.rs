//! Forward values of the geometry-heavy ops (Resize, pooling, Pad, Slice, Softmax, Conv and
//! ConvTranspose geometry) against onnxruntime, on small generated graphs.

mod common;

use common::grad::*;
use convscope_engine::Tensor;
use convscope_onnx::AttributeProto as A;

// ---------------------------------------------------------------------------------------------
// Forward values against onnxruntime
// ---------------------------------------------------------------------------------------------
//
// Inputs are `pattern(n, 5, 3, 11, 5, 4)` (values in −1.25..1.25 step 0.25) and weights
// `pattern(n, 7, 1, 13, 6, 4)`. Expected values come from onnxruntime 1.32 (onnx 1.23), one model
// per case, with this one-off:
//
//   import numpy as np, onnxruntime as ort
//   from onnx import helper as h, TensorProto as T, numpy_helper as nh
//   P = lambda n, a, b, m, o, d: np.array([((i*a+b) % m - o)/d for i in range(n)], np.float32)
//   def run(op, xs, inits, opset=13, ins=None, **attrs):  # inits: name -> array, in input order
//       x = P(int(np.prod(xs)), 5, 3, 11, 5, 4).reshape(xs)
//       g = h.make_graph([h.make_node(op, ins or ["x", *inits], ["y"], **attrs)], "g",
//           [h.make_tensor_value_info("x", T.FLOAT, xs)], [h.make_tensor_value_info("y", T.FLOAT, None)],
//           [nh.from_array(v, k) for k, v in inits.items()])
//       m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)]); m.ir_version = 8
//       return ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
//   # e.g. CONVT_S2_P1_OP1:
//   run("ConvTranspose", [1,2,3,3], {"w": P(36,7,1,13,6,4).reshape(2,2,3,3),
//       "b": np.array([.5,-.25], np.float32)}, strides=[2,2], pads=[1,1,1,1], output_padding=[1,1])
//   # e.g. resize_linear_align_corners_sizes (omitted inputs as ""):
//   run("Resize", [1,1,2,3], {"sz": np.array([1,1,3,5])}, ins=["x", "", "", "sz"], mode="linear",
//       coordinate_transformation_mode="align_corners")

/// Runs `net` on the pattern input and checks shape and values within 1e-5.
fn check_forward(name: &str, net: &Net, x_shape: &[usize], shape: &[usize], want: &[f32]) {
    let model = net.build().unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = Tensor::new(
        x_shape.to_vec(),
        pattern(numel(x_shape), 5, 3, 11, 5.0, 4.0),
    )
    .unwrap();
    let y = model
        .run_float(&x, &[model.resolve("y").unwrap()])
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .remove(0);
    assert_eq!(y.shape(), shape, "{name}: output shape");
    for (i, (&g, &w)) in y.data().iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{name}: element {i} is {g}, onnxruntime gives {w}\n got {:?}",
            y.data()
        );
    }
}

fn weights(n: usize) -> Vec<f32> {
    pattern(n, 7, 1, 13, 6.0, 4.0)
}

fn one_op(x: &[usize], opset: i64, op: &str, inputs: &[&str], attrs: Vec<A>) -> Net {
    let mut n = Net::new(x, opset);
    n.node(op, inputs, &["y"], attrs);
    n
}

#[test]
fn forward_resize_matches_onnxruntime() {
    let x = [1, 1, 2, 3];
    let mode = |m: &str| A::string("mode", m);
    let ctm = |m: &str| A::string("coordinate_transformation_mode", m);

    let mut n = one_op(
        &x,
        13,
        "Resize",
        &["x", "", "s"],
        vec![mode("nearest"), ctm("asymmetric")],
    );
    n.f("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
    // By hand too: every input pixel becomes a 2×2 block.
    check_forward(
        "resize_nearest_asym_2x",
        &n,
        &x,
        &[1, 1, 4, 6],
        &[
            -0.5, -0.5, 0.75, 0.75, -0.75, -0.75, -0.5, -0.5, 0.75, 0.75, -0.75, -0.75, 0.5, 0.5,
            -1.0, -1.0, 0.25, 0.25, 0.5, 0.5, -1.0, -1.0, 0.25, 0.25,
        ],
    );

    let mut n = one_op(&x, 13, "Resize", &["x", "", "s"], vec![mode("linear")]);
    n.f("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
    check_forward(
        "resize_linear_half_pixel_2x",
        &n,
        &x,
        &[1, 1, 4, 6],
        &[
            -0.5, -0.1875, 0.4375, 0.375, -0.375, -0.75, -0.25, -0.109375, 0.171875, 0.109375,
            -0.296875, -0.5, 0.25, 0.046875, -0.359375, -0.421875, -0.140625, 0.0, 0.5, 0.125,
            -0.625, -0.6875, -0.0625, 0.25,
        ],
    );

    let mut n = one_op(
        &x,
        13,
        "Resize",
        &["x", "", "", "sz"],
        vec![mode("linear"), ctm("align_corners")],
    );
    n.i("sz", &[4], &[1, 1, 3, 5]);
    check_forward(
        "resize_linear_align_corners_sizes",
        &n,
        &x,
        &[1, 1, 3, 5],
        &[
            -0.5, 0.125, 0.75, 0.0, -0.75, 0.0, -0.0625, -0.125, -0.1875, -0.25, 0.5, -0.25, -1.0,
            -0.375, 0.25,
        ],
    );

    let x34 = [1, 1, 3, 4];
    let mut n = one_op(
        &x34,
        13,
        "Resize",
        &["x", "", "", "sz"],
        vec![mode("linear"), ctm("pytorch_half_pixel")],
    );
    n.i("sz", &[4], &[1, 1, 1, 2]);
    check_forward(
        "resize_linear_pytorch_half_pixel_down",
        &n,
        &x34,
        &[1, 1, 1, 2],
        &[0.125, -0.125],
    );

    let x35 = [1, 1, 3, 5];
    let mut n = one_op(
        &x35,
        13,
        "Resize",
        &["x", "", "s"],
        vec![mode("linear"), ctm("asymmetric")],
    );
    n.f("s", &[4], &[1.0, 1.0, 0.7, 0.6]);
    check_forward(
        "resize_linear_asym_down",
        &n,
        &x35,
        &[1, 1, 2, 3],
        &[
            -0.5,
            -0.25,
            1.192_092_9e-7,
            0.571_428_6,
            -0.095_238_09,
            0.285_714_27,
        ],
    );

    let x45 = [1, 1, 4, 5];
    let mut n = one_op(&x45, 13, "Resize", &["x", "", "s"], vec![mode("nearest")]);
    n.f("s", &[4], &[1.0, 1.0, 0.5, 0.6]);
    check_forward(
        "resize_nearest_half_pixel_down",
        &n,
        &x45,
        &[1, 1, 2, 3],
        &[-0.5, -0.75, -1.0, 1.0, 0.75, 0.5],
    );

    // Upsample (opset 9) and Resize-10 pick floor(x_out / scale), not the nearest pixel: with a
    // scale of 2.6, outputs 2 and 5 (sources 0.77 and 1.92) read pixels 0 and 1.
    for (opset, op) in [(9, "Upsample"), (10, "Resize")] {
        let mut n = one_op(&[1, 1, 1, 4], opset, op, &["x", "s"], vec![mode("nearest")]);
        n.f("s", &[4], &[1.0, 1.0, 1.0, 2.6]);
        let model = n.build().unwrap();
        let x = Tensor::new(vec![1, 1, 1, 4], vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        let y = model.run_float(&x, model.outputs()).unwrap().remove(0);
        // onnxruntime: [0. 0. 0. 1. 1. 1. 2. 2. 3. 3.] for both.
        assert_eq!(
            y.data(),
            &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
            "{op}-{opset}"
        );
    }

    let x22 = [1, 1, 2, 2];
    let mut n = one_op(&x22, 9, "Upsample", &["x", "s"], vec![mode("nearest")]);
    n.f("s", &[4], &[1.0, 1.0, 2.0, 3.0]);
    check_forward(
        "upsample_nearest_opset9",
        &n,
        &x22,
        &[1, 1, 4, 6],
        &[
            -0.5, -0.5, -0.5, 0.75, 0.75, 0.75, -0.5, -0.5, -0.5, 0.75, 0.75, 0.75, -0.75, -0.75,
            -0.75, 0.5, 0.5, 0.5, -0.75, -0.75, -0.75, 0.5, 0.5, 0.5,
        ],
    );
    let mut n = one_op(&x22, 9, "Upsample", &["x", "s"], vec![mode("linear")]);
    n.f("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
    check_forward(
        "upsample_linear_opset9",
        &n,
        &x22,
        &[1, 1, 4, 4],
        &[
            -0.5, 0.125, 0.75, 0.75, -0.625, 0.0, 0.625, 0.625, -0.75, -0.125, 0.5, 0.5, -0.75,
            -0.125, 0.5, 0.5,
        ],
    );
}

#[test]
fn forward_pool_matches_onnxruntime() {
    let k = |a: i64| A::ints("kernel_shape", &[a, a]);
    let s2 = || A::ints("strides", &[2, 2]);
    let x5 = [1, 1, 5, 5];
    // ceil_mode: (5 − 2)/2 rounded up + 1 = 3 windows; the last one reads only row/column 4.
    check_forward(
        "maxpool_ceil_k2s2",
        &one_op(
            &x5,
            13,
            "MaxPool",
            &["x"],
            vec![k(2), s2(), A::int("ceil_mode", 1)],
        ),
        &x5,
        &[1, 1, 3, 3],
        &[0.75, 1.25, -0.25, 1.0, 0.75, 1.25, 1.0, 0.75, -0.75],
    );
    let x6 = [1, 1, 6, 6];
    check_forward(
        "maxpool_ceil_k3s2p1",
        &one_op(
            &x6,
            13,
            "MaxPool",
            &["x"],
            vec![
                k(3),
                s2(),
                A::ints("pads", &[1, 1, 1, 1]),
                A::int("ceil_mode", 1),
            ],
        ),
        &x6,
        &[1, 1, 4, 4],
        &[
            0.75, 1.25, 1.0, 0.25, 1.25, 1.25, 1.0, 0.75, 1.25, 1.25, 1.0, 0.75, 1.25, 1.0, 0.75,
            -0.75,
        ],
    );
    let avg = |pads: &[i64], ceil: i64, include: i64| {
        one_op(
            &x5,
            13,
            "AveragePool",
            &["x"],
            vec![
                k(3),
                s2(),
                A::ints("pads", pads),
                A::int("ceil_mode", ceil),
                A::int("count_include_pad", include),
            ],
        )
    };
    // Corner windows: 4 real pixels of 9 (divisor 4 excluding, 9 including the padding).
    check_forward(
        "avgpool_k3s2p1_exclude_pad",
        &avg(&[1, 1, 1, 1], 0, 0),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.1875,
            0.083_333_336,
            0.125,
            -0.208_333_33,
            -0.166_666_67,
            0.333_333_34,
            0.0,
            0.041_666_668,
            0.3125,
        ],
    );
    check_forward(
        "avgpool_k3s2p1_include_pad",
        &avg(&[1, 1, 1, 1], 0, 1),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.083_333_336,
            0.055_555_556,
            0.055_555_556,
            -0.138_888_9,
            -0.166_666_67,
            0.222_222_22,
            0.0,
            0.027_777_778,
            0.138_888_9,
        ],
    );
    // ceil_mode: the last window covers row 4, one row of end padding and one row past it; with
    // count_include_pad the divisor counts the padding row but not the row past it (3·2 = 6).
    check_forward(
        "avgpool_ceil_exclude_pad",
        &avg(&[0, 0, 1, 1], 1, 0),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.027_777_778,
            0.027_777_778,
            -0.25,
            -0.055_555_556,
            0.0,
            0.333_333_34,
            0.083_333_336,
            -0.166_666_67,
            -0.75,
        ],
    );
    check_forward(
        "avgpool_ceil_include_pad",
        &avg(&[0, 0, 1, 1], 1, 1),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.027_777_778,
            0.027_777_778,
            -0.125,
            -0.055_555_556,
            0.0,
            0.166_666_67,
            0.041_666_668,
            -0.083_333_336,
            -0.1875,
        ],
    );
}

#[test]
fn forward_pad_slice_softmax_match_onnxruntime() {
    let x = [1, 1, 2, 3];
    let mut n = one_op(
        &x,
        13,
        "Pad",
        &["x", "p"],
        vec![A::string("mode", "reflect")],
    );
    n.i("p", &[8], &[0, 0, 1, 2, 0, 0, 1, 1]);
    // Rows reflect as r1 r0 r1 r0, columns as c2 c1 c0 c1 c2 c1.
    check_forward(
        "pad_reflect",
        &n,
        &x,
        &[1, 1, 4, 6],
        &[
            0.25, -1.0, 0.5, -1.0, 0.25, -1.0, -0.75, 0.75, -0.5, 0.75, -0.75, 0.75, 0.25, -1.0,
            0.5, -1.0, 0.25, -1.0, -0.75, 0.75, -0.5, 0.75, -0.75, 0.75,
        ],
    );
    let mut n = one_op(&x, 13, "Pad", &["x", "p"], vec![A::string("mode", "edge")]);
    n.i("p", &[8], &[0, 0, 1, 2, 0, 0, 0, 1]);
    check_forward(
        "pad_edge",
        &n,
        &x,
        &[1, 1, 3, 6],
        &[
            -0.5, -0.5, -0.5, 0.75, -0.75, -0.75, -0.5, -0.5, -0.5, 0.75, -0.75, -0.75, 0.5, 0.5,
            0.5, -1.0, 0.25, 0.25,
        ],
    );

    let slice = |x: &[usize], st: &[i64], en: &[i64], ax: &[i64], sp: &[i64]| {
        let mut n = one_op(x, 13, "Slice", &["x", "st", "en", "ax", "sp"], vec![]);
        n.i("st", &[st.len()], st)
            .i("en", &[en.len()], en)
            .i("ax", &[ax.len()], ax)
            .i("sp", &[sp.len()], sp);
        n
    };
    // Columns 4, 2, 0 of each row.
    check_forward(
        "slice_negative_step",
        &slice(&[1, 1, 3, 5], &[-1], &[-1000], &[3], &[-2]),
        &[1, 1, 3, 5],
        &[1, 1, 3, 3],
        &[-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
    );
    // A start below −dim clamps to 0 for a negative step (one element), not to −1 (none).
    check_forward(
        "slice_negative_step_clamped_start",
        &slice(&[1, 1, 2, 4], &[-10, 1], &[-20, -100], &[3, 2], &[-1, -1]),
        &[1, 1, 2, 4],
        &[1, 1, 2, 1],
        &[-1.0, -0.5],
    );

    let x2 = [1, 2, 2, 2];
    check_forward(
        "softmax_opset11_axis1_flattens",
        &one_op(&x2, 11, "Softmax", &["x"], vec![A::int("axis", 1)]),
        &x2,
        &[1, 2, 2, 2],
        &[
            0.077_929_91,
            0.272_002_1,
            0.060_691_874,
            0.211_835_44,
            0.047_266_88,
            0.164_977_61,
            0.036_811_482,
            0.128_484_7,
        ],
    );
}

#[test]
fn forward_conv_geometry_matches_onnxruntime() {
    let conv = |op: &str, x: &[usize], w: &[usize], bias: Option<&[f32]>, attrs: Vec<A>| {
        let mut inputs = vec!["x", "w"];
        if bias.is_some() {
            inputs.push("b");
        }
        let mut n = one_op(x, 13, op, &inputs, attrs);
        n.f("w", w, &weights(numel(w)));
        if let Some(b) = bias {
            n.f("b", &[b.len()], b);
        }
        n
    };
    let s2 = || A::ints("strides", &[2, 2]);
    let x = [1, 2, 3, 3];
    let w = [2, 2, 3, 3];
    check_forward(
        "convtranspose_s2_p1_outpad1_bias",
        &conv(
            "ConvTranspose",
            &x,
            &w,
            Some(&[0.5, -0.25]),
            vec![
                s2(),
                A::ints("pads", &[1, 1, 1, 1]),
                A::ints("output_padding", &[1, 1]),
            ],
        ),
        &x,
        &[1, 2, 6, 6],
        &CONVT_S2_P1_OP1,
    );
    check_forward(
        "convtranspose_same_upper",
        &conv(
            "ConvTranspose",
            &x,
            &w,
            None,
            vec![s2(), A::string("auto_pad", "SAME_UPPER")],
        ),
        &x,
        &[1, 2, 6, 6],
        &CONVT_SAME_UPPER,
    );
    check_forward(
        "convtranspose_output_shape",
        &conv(
            "ConvTranspose",
            &x,
            &w,
            None,
            vec![s2(), A::ints("output_shape", &[6, 5])],
        ),
        &x,
        &[1, 2, 6, 5],
        &CONVT_OUTPUT_SHAPE,
    );
    let xg = [1, 4, 2, 3];
    check_forward(
        "convtranspose_group2_dilated",
        &conv(
            "ConvTranspose",
            &xg,
            &[4, 1, 2, 3],
            None,
            vec![
                A::ints("strides", &[1, 2]),
                A::ints("dilations", &[2, 1]),
                A::ints("pads", &[0, 1, 1, 0]),
                A::int("group", 2),
            ],
        ),
        &xg,
        &[1, 2, 3, 6],
        &CONVT_GROUP2_DILATED,
    );
    let xc = [1, 2, 5, 6];
    let wc = [2, 2, 4, 4];
    check_forward(
        "conv_same_lower_k4",
        &conv(
            "Conv",
            &xc,
            &wc,
            None,
            vec![A::string("auto_pad", "SAME_LOWER")],
        ),
        &xc,
        &[1, 2, 5, 6],
        &CONV_SAME_LOWER_K4,
    );
    check_forward(
        "conv_same_upper_k4_s2",
        &conv(
            "Conv",
            &xc,
            &wc,
            None,
            vec![A::string("auto_pad", "SAME_UPPER"), s2()],
        ),
        &xc,
        &[1, 2, 3, 3],
        &CONV_SAME_UPPER_K4_S2,
    );
    check_forward(
        "conv_depthwise_s2_pads_1122",
        &conv(
            "Conv",
            &[1, 2, 5, 6],
            &[2, 1, 3, 3],
            Some(&[0.25, -0.5]),
            vec![s2(), A::ints("pads", &[1, 1, 2, 2]), A::int("group", 2)],
        ),
        &[1, 2, 5, 6],
        &[1, 2, 3, 4],
        &CONV_DEPTHWISE_S2,
    );
}

// Expected outputs of forward_conv_geometry_matches_onnxruntime (onnxruntime 1.32).
const CONVT_S2_P1_OP1: [f32; 72] = [
    0.5, 0.3125, 1.4375, 0.8125, 0.3125, -0.25, -0.3125, 0.0, 1.5625, 0.4375, -0.6875, 1.6875,
    1.25, 0.4375, 0.125, -0.4375, 1.0625, 0.75, 1.1875, 1.3125, -1.0625, -1.6875, 2.1875, -3.0,
    -0.0625, -0.8125, 0.875, 1.75, -2.3125, 1.75, -1.3125, 1.6875, 0.5625, 1.4375, 1.75, 1.75,
    0.125, -0.9375, -0.1875, -0.1875, 0.1875, -0.375, -1.3125, -1.8125, 0.8125, 2.375, -1.1875,
    -0.4375, -0.125, -0.0625, 0.25, -0.6875, -0.0625, -0.375, 0.9375, 1.8125, -1.0625, 1.1875,
    1.0625, -2.5, 0.3125, -0.5625, 0.0, 0.875, -3.0625, 1.0, -0.9375, -0.5, -0.3125, -2.6875, 1.0,
    -3.0625,
];
const CONVT_SAME_UPPER: [f32; 72] = [
    0.375, -0.125, 0.25, -0.125, 0.9375, -0.125, -0.3125, 0.0, -0.1875, 0.9375, 0.3125, -0.1875,
    0.75, -0.8125, -0.5, 1.0625, -0.0625, -1.1875, 0.1875, 0.75, -0.0625, -0.375, -0.9375, 0.5625,
    -0.8125, 0.6875, 0.8125, -1.5625, -2.1875, 1.6875, -0.6875, -0.5625, -1.3125, 0.375, 1.25,
    -2.8125, -0.875, 0.25, 2.1875, -1.0, -1.75, 0.5, 0.0625, 0.375, -0.6875, 0.0625, 0.0625,
    0.4375, 1.3125, -1.0625, -1.5625, 1.0625, 2.625, -0.9375, -0.4375, 0.125, 0.1875, 0.5, -0.4375,
    0.1875, -1.9375, 1.1875, 2.0625, -0.8125, 1.4375, 1.3125, 0.4375, 0.5625, -0.3125, 0.25, 1.125,
    -2.8125,
];
const CONVT_OUTPUT_SHAPE: [f32; 60] = [
    0.0, -0.1875, 0.9375, 0.3125, -0.1875, -0.8125, -0.5, 1.0625, -0.0625, -1.1875, 0.75, -0.0625,
    -0.375, -0.9375, 0.5625, 0.6875, 0.8125, -1.5625, -2.1875, 1.6875, -0.5625, -1.3125, 0.375,
    1.25, -2.8125, -1.8125, 1.1875, 0.0625, 0.9375, 1.25, 0.375, -0.6875, 0.0625, 0.0625, 0.4375,
    -1.0625, -1.5625, 1.0625, 2.625, -0.9375, 0.125, 0.1875, 0.5, -0.4375, 0.1875, 1.1875, 2.0625,
    -0.8125, 1.4375, 1.3125, 0.5625, -0.3125, 0.25, 1.125, -2.8125, -0.6875, -0.25, -0.0625,
    -2.4375, 1.25,
];
const CONVT_GROUP2_DILATED: [f32; 36] = [
    -1.8125, -0.125, 0.375, -0.4375, 1.1875, 0.4375, -0.0625, 0.3125, 0.75, 0.6875, -0.5, -0.125,
    0.375, 1.9375, -0.5625, 2.0625, 0.5625, -2.625, -0.9375, 1.4375, 0.3125, 1.0625, -0.5, -0.0625,
    0.75, 0.3125, -0.0625, -0.0625, 1.1875, 0.3125, 0.5625, -0.125, 1.3125, 0.125, 0.0, -0.375,
];
const CONV_SAME_LOWER_K4: [f32; 60] = [
    -4.8125, 3.1875, -5.0625, 1.25, -0.6875, -1.0, 4.25, -8.0, 8.5, -4.875, 9.25, -4.4375, 5.5,
    -7.0625, 7.0, -5.625, 3.0625, -0.25, -2.0625, 5.375, -2.75, 8.6875, -10.8125, 8.25, -4.25,
    4.25, -7.3125, 5.3125, -3.375, 2.5, -1.9375, 4.9375, -3.625, 4.0625, -5.4375, 1.875, -5.3125,
    4.0625, -5.125, 1.625, 0.125, -1.875, -0.4375, -0.625, 4.75, -8.375, 6.6875, -1.6875, 1.0,
    -1.5, 1.625, 3.625, -0.5625, 0.0, -3.125, 3.25, -7.3125, 7.5625, -9.875, 6.25,
];
const CONV_SAME_UPPER_K4_S2: [f32; 18] = [
    -8.0, -4.875, -4.4375, 5.375, 8.6875, 8.25, -3.0625, -7.5625, -7.4375, 4.0625, 1.625, -1.875,
    -1.5, 3.625, 0.0, 2.6875, 4.0, 3.125,
];
const CONV_DEPTHWISE_S2: [f32; 24] = [
    -0.1875, 3.5, 3.125, 0.6875, -2.0, -2.0, -1.9375, -0.4375, 0.0625, -1.0625, -0.875, -0.6875,
    -1.0625, 0.0625, -1.625, -1.9375, 0.875, -0.0625, -1.75, 1.75, -2.375, -1.5625, -1.4375,
    -1.125,
];
