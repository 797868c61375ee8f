//! Finite-difference checks of shape and data-movement ops, Pad, Resize, Upsample and the
//! reductions.

mod common;

use common::grad::*;
use convscope_onnx::AttributeProto as A;

// ---------------------------------------------------------------------------------------------
// Shape and data-movement ops
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_shape_ops() {
    let mut f = Family::default();
    f.case("flatten_axis1", |rng| {
        (
            single(rng, &XS, 13, "Flatten", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("flatten_axis_neg1", |rng| {
        (
            single(
                rng,
                &XS,
                13,
                "Flatten",
                &["x"],
                &[],
                vec![A::int("axis", -1)],
            ),
            xin(rng, &XS),
        )
    });
    f.case("reshape_0_and_minus1", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("s", &[3], &[0, -1, 5])
            .node("Reshape", &["x", "s"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    // Reshape, then an op that is not symmetric in the new axes, then reshape back.
    f.case("reshape_softmax_reshape", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("s", &[2], &[-1, 10])
            .i("back", &[4], &[2, 3, 4, 5])
            .node("Reshape", &["x", "s"], &["a"], vec![])
            .node("Softmax", &["a"], &["b"], vec![])
            .node("Reshape", &["b", "back"], &["y"], vec![]);
        (n, xscaled(rng, &XS, 2.0))
    });
    for (name, perm) in [
        ("transpose_0231", [0i64, 2, 3, 1]),
        ("transpose_3102", [3, 1, 0, 2]),
    ] {
        f.case(name, |rng| {
            (
                single(
                    rng,
                    &XS,
                    13,
                    "Transpose",
                    &["x"],
                    &[],
                    vec![A::ints("perm", &perm)],
                ),
                xin(rng, &XS),
            )
        });
    }
    f.case("transpose_default_reverse", |rng| {
        (
            single(rng, &XS, 13, "Transpose", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("concat_x_x_axis1", |rng| {
        (
            single(
                rng,
                &XS,
                13,
                "Concat",
                &["x", "x"],
                &[],
                vec![A::int("axis", 1)],
            ),
            xin(rng, &XS),
        )
    });
    f.case("concat_x_c_x_axis_neg1", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "Concat",
            &["x", "c", "x"],
            &[("c", &[2, 3, 4, 2])],
            vec![A::int("axis", -1)],
        );
        (n, xin(rng, &XS))
    });
    f.case("concat_c_x_axis2", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "Concat",
            &["c", "x"],
            &[("c", &[2, 3, 1, 5])],
            vec![A::int("axis", 2)],
        );
        (n, xin(rng, &XS))
    });
    f.case("split_input_sizes_swapped_concat", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("sizes", &[2], &[1, 2])
            .node(
                "Split",
                &["x", "sizes"],
                &["a", "b"],
                vec![A::int("axis", 1)],
            )
            .node("Concat", &["b", "a"], &["y"], vec![A::int("axis", 1)]);
        (n, xin(rng, &XS))
    });
    f.case("split_unused_output", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("sizes", &[3], &[1, 2, 2])
            .node(
                "Split",
                &["x", "sizes"],
                &["a", "b", "c"],
                vec![A::int("axis", 3)],
            )
            .node("Concat", &["c", "a"], &["y"], vec![A::int("axis", 3)]);
        (n, xin(rng, &XS))
    });
    f.case("split_opset11_attr", |rng| {
        let mut n = Net::new(&XS, 11);
        n.node(
            "Split",
            &["x"],
            &["a", "b"],
            vec![A::int("axis", -2), A::ints("split", &[3, 1])],
        )
        .node("Mul", &["a", "a"], &["a2"], vec![])
        .node("Concat", &["b", "a2"], &["y"], vec![A::int("axis", 2)]);
        (n, xin(rng, &XS))
    });
    f.case("split_equal_parts", |rng| {
        let mut n = Net::new(&XS, 13);
        n.node("Split", &["x"], &["a", "b"], vec![A::int("axis", 2)])
            .node("Sub", &["a", "b"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    let slice = |rng: &mut Rng,
                 starts: &[i64],
                 ends: &[i64],
                 axes: Option<&[i64]>,
                 steps: Option<&[i64]>| {
        let mut n = Net::new(&XS, 13);
        n.i("st", &[starts.len()], starts)
            .i("en", &[ends.len()], ends);
        let mut inputs = vec!["x", "st", "en"];
        if let Some(a) = axes {
            n.i("ax", &[a.len()], a);
            inputs.push("ax");
        } else if steps.is_some() {
            inputs.push("");
        }
        if let Some(s) = steps {
            n.i("sp", &[s.len()], s);
            inputs.push("sp");
        }
        n.node("Slice", &inputs, &["y"], vec![]);
        (n, xin(rng, &XS))
    };
    f.case("slice_negative_step", |rng| {
        slice(rng, &[-1], &[-1000], Some(&[3]), Some(&[-2]))
    });
    f.case("slice_multi_axes_mixed_steps_clamped", |rng| {
        slice(
            rng,
            &[1, 3, 0],
            &[3, 0, 100],
            Some(&[1, -2, 3]),
            Some(&[1, -1, 2]),
        )
    });
    f.case("slice_default_axes", |rng| {
        slice(rng, &[1, 1], &[2, 100], None, None)
    });
    f.case("slice_steps_without_axes", |rng| {
        slice(rng, &[0, 2, 3], &[2, -100, 0], None, Some(&[1, -2, -1]))
    });
    f.case("slice_opset9_attrs", |rng| {
        let attrs = vec![
            A::ints("starts", &[1, -3]),
            A::ints("ends", &[100, -1]),
            A::ints("axes", &[2, 3]),
        ];
        (
            single(rng, &XS, 9, "Slice", &["x"], &[], attrs),
            xin(rng, &XS),
        )
    });
    f.case("unsqueeze_squeeze_opset13_inputs", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("ua", &[2], &[0, -1])
            .i("sa", &[1], &[0])
            .rand(rng, "c", &[5, 1], -1.0, 1.0)
            .node("Unsqueeze", &["x", "ua"], &["u"], vec![])
            .node("Mul", &["u", "c"], &["m"], vec![])
            .node("Squeeze", &["m", "sa"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    f.case("unsqueeze_squeeze_opset11_attrs", |rng| {
        let mut n = Net::new(&XS, 11);
        n.node("Unsqueeze", &["x"], &["u"], vec![A::ints("axes", &[1, 5])])
            .node("Softmax", &["u"], &["s"], vec![A::int("axis", 2)])
            .node("Squeeze", &["s"], &["y"], vec![A::ints("axes", &[-1, 1])]);
        (n, xscaled(rng, &XS, 2.0))
    });
    f.case("squeeze_no_axes", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("s", &[5], &[2, 1, 12, 1, 5])
            .node("Reshape", &["x", "s"], &["r"], vec![])
            .node("Squeeze", &["r"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    let gather = |rng: &mut Rng, axis: i64, dims: &[usize], idx: &[i64]| {
        let mut n = Net::new(&XS, 13);
        n.i("idx", dims, idx)
            .node("Gather", &["x", "idx"], &["y"], vec![A::int("axis", axis)]);
        (n, xin(rng, &XS))
    };
    // Index 2 appears three times (2, -1 and 2): its gradient must be the sum of three slices.
    f.case("gather_axis1_negative_and_duplicates", |rng| {
        gather(rng, 1, &[4], &[2, -1, 0, 2])
    });
    f.case("gather_axis3_2d_indices", |rng| {
        gather(rng, 3, &[2, 2], &[0, 4, 4, -5])
    });
    f.case("gather_axis0_scalar_index", |rng| gather(rng, 0, &[], &[1]));
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Pad, Resize, Upsample
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_pad_resize() {
    let mut f = Family::default();
    let pads13 = |rng: &mut Rng, mode: &str, pads: &[i64], value: Option<f32>| {
        let mut n = Net::new(&XS, 13);
        n.i("p", &[8], pads);
        let mut inputs = vec!["x", "p"];
        if let Some(v) = value {
            n.f("v", &[], &[v]);
            inputs.push("v");
        }
        n.node("Pad", &inputs, &["y"], vec![A::string("mode", mode)]);
        (n, xin(rng, &XS))
    };
    f.case("pad_constant_opset13", |rng| {
        pads13(rng, "constant", &[0, 0, 1, 2, 0, 0, 2, 1], Some(0.3))
    });
    f.case("pad_reflect_opset13", |rng| {
        pads13(rng, "reflect", &[0, 0, 3, 2, 0, 0, 2, 4], None)
    });
    f.case("pad_edge_opset13", |rng| {
        pads13(rng, "edge", &[0, 1, 2, 3, 1, 0, 3, 2], None)
    });
    f.case("pad_negative_crops", |rng| {
        pads13(rng, "constant", &[0, 0, -1, 1, 0, 0, 1, -2], None)
    });
    f.case("pad_reflect_negative_crops", |rng| {
        pads13(rng, "reflect", &[0, 0, -1, 2, 0, 0, 1, -2], None)
    });
    for mode in ["constant", "reflect", "edge"] {
        f.case(&format!("pad_{mode}_opset2_attrs"), |rng| {
            let attrs = vec![
                A::string("mode", mode),
                A::ints("pads", &[0, 0, 2, 1, 0, 0, 1, 3]),
                A::float("value", -0.2),
            ];
            (
                single(rng, &XS, 2, "Pad", &["x"], &[], attrs),
                xin(rng, &XS),
            )
        });
    }
    f.case("pad_reflect_opset18_axes", |rng| {
        let mut n = Net::new(&XS, 18);
        n.i("p", &[4], &[1, 2, 2, 1])
            .i("axes", &[2], &[-1, 2])
            .node(
                "Pad",
                &["x", "p", "", "axes"],
                &["y"],
                vec![A::string("mode", "reflect")],
            );
        (n, xin(rng, &XS))
    });

    let x4 = [1usize, 2, 4, 5];
    let resize = |rng: &mut Rng, attrs: Vec<A>, scales: Option<&[f32]>, sizes: Option<&[i64]>| {
        let mut n = Net::new(&x4, 13);
        let mut inputs = vec!["x", ""];
        match (scales, sizes) {
            (Some(s), _) => {
                n.f("scales", &[4], s);
                inputs.push("scales");
            }
            (None, Some(s)) => {
                n.i("sizes", &[4], s);
                inputs.extend(["", "sizes"]);
            }
            _ => unreachable!(),
        }
        n.node("Resize", &inputs, &["y"], attrs);
        (n, xin(rng, &x4))
    };
    let mode = |m: &str| A::string("mode", m);
    let ctm = |m: &str| A::string("coordinate_transformation_mode", m);
    f.case("resize_nearest_2x_asymmetric", |rng| {
        resize(
            rng,
            vec![mode("nearest"), ctm("asymmetric")],
            Some(&[1.0, 1.0, 2.0, 2.0]),
            None,
        )
    });
    f.case("resize_nearest_half_pixel_down", |rng| {
        resize(
            rng,
            vec![mode("nearest")],
            Some(&[1.0, 1.0, 0.5, 0.6]),
            None,
        )
    });
    f.case("resize_nearest_floor_sizes_up", |rng| {
        let attrs = vec![
            mode("nearest"),
            ctm("align_corners"),
            A::string("nearest_mode", "floor"),
        ];
        resize(rng, attrs, None, Some(&[1, 2, 7, 8]))
    });
    f.case("resize_nearest_ceil_half_pixel", |rng| {
        let attrs = vec![mode("nearest"), A::string("nearest_mode", "ceil")];
        resize(rng, attrs, Some(&[1.0, 1.0, 1.5, 1.4]), None)
    });
    f.case("resize_linear_half_pixel_2x", |rng| {
        resize(rng, vec![mode("linear")], Some(&[1.0, 1.0, 2.0, 2.0]), None)
    });
    f.case("resize_linear_half_pixel_down", |rng| {
        resize(rng, vec![mode("linear")], Some(&[1.0, 1.0, 0.6, 0.5]), None)
    });
    f.case("resize_linear_align_corners_sizes", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("align_corners")],
            None,
            Some(&[1, 2, 5, 7]),
        )
    });
    f.case("resize_linear_align_corners_down", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("align_corners")],
            None,
            Some(&[1, 2, 3, 3]),
        )
    });
    f.case("resize_linear_asymmetric_up", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("asymmetric")],
            Some(&[1.0, 1.0, 1.5, 2.5]),
            None,
        )
    });
    f.case("resize_linear_pytorch_half_pixel_down", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("pytorch_half_pixel")],
            None,
            Some(&[1, 2, 2, 3]),
        )
    });
    f.case("resize_linear_pytorch_half_pixel_to_1", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("pytorch_half_pixel")],
            None,
            Some(&[1, 2, 1, 3]),
        )
    });
    f.case("resize_opset10_scales", |rng| {
        let mut n = Net::new(&x4, 10);
        n.f("scales", &[4], &[1.0, 1.0, 2.0, 1.5]).node(
            "Resize",
            &["x", "scales"],
            &["y"],
            vec![mode("linear")],
        );
        (n, xin(rng, &x4))
    });
    f.case("resize_opset11_roi_scales", |rng| {
        let mut n = Net::new(&x4, 11);
        n.f("roi", &[0], &[])
            .f("scales", &[4], &[1.0, 1.0, 1.5, 2.0])
            .node(
                "Resize",
                &["x", "roi", "scales"],
                &["y"],
                vec![mode("linear")],
            );
        (n, xin(rng, &x4))
    });
    f.case("upsample_opset9_nearest", |rng| {
        let mut n = Net::new(&x4, 9);
        n.f("scales", &[4], &[1.0, 1.0, 2.0, 3.0]).node(
            "Upsample",
            &["x", "scales"],
            &["y"],
            vec![mode("nearest")],
        );
        (n, xin(rng, &x4))
    });
    f.case("upsample_opset9_linear", |rng| {
        let mut n = Net::new(&x4, 9);
        n.f("scales", &[4], &[1.0, 1.0, 2.0, 2.0]).node(
            "Upsample",
            &["x", "scales"],
            &["y"],
            vec![mode("linear")],
        );
        (n, xin(rng, &x4))
    });
    f.case("upsample_opset7_attr_scales", |rng| {
        let attrs = vec![mode("nearest"), A::floats("scales", &[1.0, 1.0, 3.0, 2.0])];
        (
            single(rng, &x4, 7, "Upsample", &["x"], &[], attrs),
            xin(rng, &x4),
        )
    });
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_reduce() {
    let mut f = Family::default();
    let attr = |rng: &mut Rng, op: &str, opset: i64, axes: Option<&[i64]>, keep: i64| {
        let mut attrs = vec![A::int("keepdims", keep)];
        if let Some(a) = axes {
            attrs.push(A::ints("axes", a));
        }
        (
            single(rng, &XS, opset, op, &["x"], &[], attrs),
            xin(rng, &XS),
        )
    };
    let input = |rng: &mut Rng, op: &str, opset: i64, axes: &[i64], keep: i64| {
        let mut n = Net::new(&XS, opset);
        n.i("axes", &[axes.len()], axes).node(
            op,
            &["x", "axes"],
            &["y"],
            vec![A::int("keepdims", keep)],
        );
        (n, xin(rng, &XS))
    };
    f.case("reduce_mean_attr_axes13_keep", |rng| {
        attr(rng, "ReduceMean", 13, Some(&[1, 3]), 1)
    });
    f.case("reduce_mean_all", |rng| {
        attr(rng, "ReduceMean", 13, None, 0)
    });
    f.case("reduce_mean_input_axes_opset18_nokeep", |rng| {
        input(rng, "ReduceMean", 18, &[2], 0)
    });
    f.case("reduce_sum_attr_opset11", |rng| {
        attr(rng, "ReduceSum", 11, Some(&[2, -1]), 1)
    });
    f.case("reduce_sum_input_axes_opset13_nokeep", |rng| {
        input(rng, "ReduceSum", 13, &[1], 0)
    });
    f.case("reduce_max_attr_last_nokeep", |rng| {
        attr(rng, "ReduceMax", 13, Some(&[-1]), 0)
    });
    f.case("reduce_max_input_axes_opset18", |rng| {
        input(rng, "ReduceMax", 18, &[1, 2], 1)
    });
    f.case("reduce_max_all_keep", |rng| {
        attr(rng, "ReduceMax", 13, None, 1)
    });
    f.finish();
}
