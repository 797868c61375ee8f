//! Finite-difference checks of Conv and ConvTranspose gradients (every geometry: strides,
//! dilations, pads, auto_pad, groups, depthwise), on small generated graphs.

mod common;

use common::grad::*;
use convscope_onnx::AttributeProto as A;

// ---------------------------------------------------------------------------------------------
// Conv and ConvTranspose
// ---------------------------------------------------------------------------------------------

fn conv_case(fam: &mut Family, name: &str, x: &[usize], w: &[usize], bias: bool, attrs: Vec<A>) {
    conv_like(fam, "Conv", name, x, w, bias, attrs)
}

fn conv_like(
    fam: &mut Family,
    op: &str,
    name: &str,
    x: &[usize],
    w: &[usize],
    bias: bool,
    attrs: Vec<A>,
) {
    let group = attrs
        .iter()
        .find(|a| a.name == "group")
        .map_or(1, |a| match a.value {
            convscope_onnx::AttributeValue::Int(g) => g as usize,
            _ => 1,
        });
    let out_channels = if op == "Conv" { w[0] } else { w[1] * group };
    fam.case(name, |rng| {
        let mut n = Net::new(x, 13);
        n.rand(rng, "w", w, -1.0, 1.0);
        let mut inputs = vec!["x", "w"];
        if bias {
            n.rand(rng, "b", &[out_channels], -1.0, 1.0);
            inputs.push("b");
        }
        n.node(op, &inputs, &["y"], attrs);
        (n, xin(rng, x))
    });
}

#[test]
fn grad_conv() {
    let mut f = Family::default();
    let p = |v: &[i64]| A::ints("pads", v);
    conv_case(
        &mut f,
        "conv_3x3_pad1_bias",
        &[1, 2, 5, 5],
        &[3, 2, 3, 3],
        true,
        vec![p(&[1, 1, 1, 1])],
    );
    conv_case(
        &mut f,
        "conv_3x3_pad1_nobias_batch2",
        &[2, 2, 5, 5],
        &[3, 2, 3, 3],
        false,
        vec![p(&[1, 1, 1, 1])],
    );
    conv_case(
        &mut f,
        "conv_3x3_nopad",
        &[1, 3, 6, 5],
        &[2, 3, 3, 3],
        false,
        vec![],
    );
    conv_case(
        &mut f,
        "conv_stride2_pads_0011",
        &[1, 2, 6, 6],
        &[3, 2, 3, 3],
        true,
        vec![p(&[0, 0, 1, 1]), A::ints("strides", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_stride2_batch2",
        &[2, 2, 5, 6],
        &[3, 2, 3, 3],
        false,
        vec![p(&[1, 0, 0, 1]), A::ints("strides", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_dilation2",
        &[1, 2, 7, 7],
        &[2, 2, 3, 3],
        true,
        vec![p(&[1, 2, 2, 1]), A::ints("dilations", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_groups2",
        &[1, 4, 5, 5],
        &[4, 2, 3, 3],
        true,
        vec![p(&[1, 1, 1, 1]), A::int("group", 2)],
    );
    conv_case(
        &mut f,
        "conv_groups2_stride2_batch2",
        &[2, 4, 5, 5],
        &[6, 2, 3, 3],
        false,
        vec![
            p(&[1, 1, 1, 1]),
            A::int("group", 2),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_depthwise_5x5_s2_pads_1122",
        &[1, 3, 9, 9],
        &[3, 1, 5, 5],
        true,
        vec![
            p(&[1, 1, 2, 2]),
            A::int("group", 3),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_depthwise_3x3_batch2",
        &[2, 3, 5, 5],
        &[3, 1, 3, 3],
        false,
        vec![p(&[1, 1, 1, 1]), A::int("group", 3)],
    );
    // Stride-1 depthwise layers take their flipped convolution (itself depthwise) for the
    // input gradient: asymmetric pads, a partial group of 16 lanes, a rectangular kernel.
    conv_case(
        &mut f,
        "conv_depthwise_5x5_s1_pads_1221_17ch",
        &[1, 17, 7, 8],
        &[17, 1, 5, 5],
        true,
        vec![p(&[1, 2, 2, 1]), A::int("group", 17)],
    );
    conv_case(
        &mut f,
        "conv_depthwise_3x2_s1_unpadded_batch2",
        &[2, 4, 5, 6],
        &[4, 1, 3, 2],
        false,
        vec![A::int("group", 4)],
    );
    conv_case(
        &mut f,
        "conv_depthwise_dilated_rect",
        &[1, 2, 6, 7],
        &[2, 1, 3, 2],
        false,
        vec![
            p(&[2, 0, 1, 1]),
            A::int("group", 2),
            A::ints("dilations", &[2, 1]),
            A::ints("strides", &[1, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_depth_multiplier2",
        &[1, 2, 5, 5],
        &[4, 1, 3, 3],
        false,
        vec![p(&[1, 1, 1, 1]), A::int("group", 2)],
    );
    conv_case(
        &mut f,
        "conv_pointwise_1x1",
        &[1, 3, 4, 4],
        &[5, 3, 1, 1],
        true,
        vec![],
    );
    conv_case(
        &mut f,
        "conv_pointwise_1x1_batch2",
        &[2, 3, 4, 5],
        &[2, 3, 1, 1],
        false,
        vec![],
    );
    conv_case(
        &mut f,
        "conv_pointwise_1x1_stride2",
        &[1, 3, 5, 5],
        &[2, 3, 1, 1],
        false,
        vec![A::ints("strides", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_same_upper_s2",
        &[1, 2, 6, 6],
        &[2, 2, 3, 3],
        true,
        vec![
            A::string("auto_pad", "SAME_UPPER"),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_same_upper_k4",
        &[1, 2, 5, 6],
        &[2, 2, 4, 4],
        false,
        vec![A::string("auto_pad", "SAME_UPPER")],
    );
    conv_case(
        &mut f,
        "conv_same_lower_k4",
        &[1, 2, 5, 6],
        &[2, 2, 4, 4],
        false,
        vec![A::string("auto_pad", "SAME_LOWER")],
    );
    conv_case(
        &mut f,
        "conv_same_lower_s2",
        &[1, 2, 7, 6],
        &[2, 2, 3, 3],
        false,
        vec![
            A::string("auto_pad", "SAME_LOWER"),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_valid",
        &[1, 2, 6, 5],
        &[2, 2, 3, 2],
        true,
        vec![A::string("auto_pad", "VALID")],
    );
    conv_case(
        &mut f,
        "conv_rect_kernel_stride_1x2",
        &[1, 2, 5, 7],
        &[3, 2, 3, 2],
        false,
        vec![p(&[1, 0, 0, 1]), A::ints("strides", &[1, 2])],
    );
    conv_case(
        &mut f,
        "conv_kernel_shape_attr",
        &[1, 2, 5, 5],
        &[2, 2, 3, 3],
        false,
        vec![A::ints("kernel_shape", &[3, 3]), p(&[0, 1, 2, 1])],
    );
    f.finish();
}

#[test]
fn grad_conv_transpose() {
    let mut f = Family::default();
    let ct = |f: &mut Family, name: &str, x: &[usize], w: &[usize], bias: bool, attrs: Vec<A>| {
        conv_like(f, "ConvTranspose", name, x, w, bias, attrs)
    };
    ct(
        &mut f,
        "convT_s2_pads1_outpad1_bias",
        &[1, 3, 4, 4],
        &[3, 2, 3, 3],
        true,
        vec![
            A::ints("strides", &[2, 2]),
            A::ints("pads", &[1, 1, 1, 1]),
            A::ints("output_padding", &[1, 1]),
        ],
    );
    ct(
        &mut f,
        "convT_s1_plain",
        &[1, 2, 3, 4],
        &[2, 3, 3, 3],
        false,
        vec![],
    );
    ct(
        &mut f,
        "convT_group2_s2",
        &[1, 4, 3, 3],
        &[4, 1, 3, 3],
        true,
        vec![A::ints("strides", &[2, 2]), A::int("group", 2)],
    );
    ct(
        &mut f,
        "convT_group2_dilated_asym",
        &[1, 4, 2, 3],
        &[4, 1, 2, 3],
        false,
        vec![
            A::ints("strides", &[1, 2]),
            A::ints("dilations", &[2, 1]),
            A::ints("pads", &[0, 1, 1, 0]),
            A::int("group", 2),
        ],
    );
    ct(
        &mut f,
        "convT_same_upper_s2",
        &[1, 2, 3, 3],
        &[2, 2, 3, 3],
        false,
        vec![
            A::ints("strides", &[2, 2]),
            A::string("auto_pad", "SAME_UPPER"),
        ],
    );
    ct(
        &mut f,
        "convT_output_shape",
        &[1, 2, 3, 3],
        &[2, 2, 3, 3],
        false,
        vec![
            A::ints("strides", &[2, 2]),
            A::ints("output_shape", &[6, 5]),
        ],
    );
    ct(
        &mut f,
        "convT_batch2_s3_k2",
        &[2, 2, 3, 3],
        &[2, 2, 2, 2],
        false,
        vec![A::ints("strides", &[3, 3])],
    );
    f.finish();
}
