//! Resize (opset 10+) and Upsample (opset 7–9): nearest and linear, on any axes.
//!
//! Each resized axis is a sparse linear map (one or two taps per output), applied axis by axis;
//! the gradient applies the transposed maps in reverse order.

use std::collections::HashMap;

use super::{
    any_input, check_size, float_input, only_first, BuildCtx, Builder, ExecConfig, Op, Vjp,
};
use crate::error::{Error, Result};
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Resize", |c| build(c, false));
    reg.insert("Upsample", |c| build(c, true));
}

fn build(c: &BuildCtx, upsample: bool) -> Result<Box<dyn Op>> {
    let linear = match c.string("mode", "nearest").as_str() {
        "nearest" => false,
        "linear" | "bilinear" => true,
        other => {
            return Err(Error::InvalidModel(format!(
                "Resize mode '{other}' is not supported (nearest, linear)"
            )))
        }
    };
    let coord = if upsample || c.opset < 11 {
        "asymmetric".to_string()
    } else {
        c.string("coordinate_transformation_mode", "half_pixel")
    };
    if ![
        "half_pixel",
        "pytorch_half_pixel",
        "align_corners",
        "asymmetric",
        "tf_half_pixel_for_nn",
    ]
    .contains(&coord.as_str())
    {
        return Err(Error::InvalidModel(format!(
            "Resize coordinate_transformation_mode '{coord}' is not supported"
        )));
    }
    // Upsample and Resize-10 have no nearest_mode: they pick floor(x_out / scale), as
    // onnxruntime and PyTorch's exports do (rounding differs from floor for scales like 3).
    let nearest_mode = if upsample || c.opset < 11 {
        "floor".to_string()
    } else {
        c.string("nearest_mode", "round_prefer_floor")
    };
    Ok(Box::new(Resize {
        linear,
        coord,
        nearest_mode,
        scales_attr: c.node.attr_floats("scales").map(|s| s.to_vec()),
        upsample,
        opset: c.opset,
    }))
}

struct Resize {
    linear: bool,
    coord: String,
    nearest_mode: String,
    scales_attr: Option<Vec<f32>>,
    upsample: bool,
    opset: i64,
}

/// Longest resized axis accepted (the tap lists are per output position).
const MAX_AXIS: usize = 1 << 20;

/// Taps of one output coordinate: `(source index, weight)`.
type Taps = Vec<Vec<(usize, f32)>>;

impl Resize {
    /// Output size and scale for every axis.
    fn sizes(&self, inputs: &[Option<&Value>], shape: &[usize]) -> Result<Vec<(usize, f32)>> {
        let r = shape.len();
        let scales_input = if self.upsample || self.opset < 11 {
            1
        } else {
            2
        };
        let scales: Option<Vec<f32>> = self.scales_attr.clone().or_else(|| {
            match inputs.get(scales_input).copied().flatten() {
                Some(Value::Float(t)) if !t.is_empty() => Some(t.data().to_vec()),
                _ => None,
            }
        });
        let sizes = if self.upsample || self.opset < 11 {
            None
        } else {
            inputs.get(3).copied().flatten().map(Value::to_i64_vec)
        };
        let out: Vec<(usize, f32)> = match (sizes, scales) {
            (Some(s), _) if s.len() == r => {
                if let Some(bad) = s.iter().find(|&&o| o < 0) {
                    return Err(Error::InvalidModel(format!(
                        "Resize size {bad} is negative (sizes {s:?})"
                    )));
                }
                shape
                    .iter()
                    .zip(&s)
                    .map(|(&i, &o)| {
                        (
                            usize::try_from(o).unwrap_or(usize::MAX),
                            if i == 0 { 1.0 } else { o as f32 / i as f32 },
                        )
                    })
                    .collect()
            }
            (_, Some(sc)) if sc.len() == r => {
                // A zero, negative or non-finite scale has no meaningful output (and `as usize`
                // would silently turn it into 0 or usize::MAX).
                if let Some(bad) = sc.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return Err(Error::InvalidModel(format!(
                        "Resize scale {bad} must be a positive finite number (scales {sc:?})"
                    )));
                }
                shape
                    .iter()
                    .zip(&sc)
                    // In f32 like onnxruntime; `as usize` saturates.
                    .map(|(&i, &s)| ((i as f32 * s).floor() as usize, s))
                    .collect()
            }
            _ => {
                return Err(Error::Shape(format!(
                    "Resize needs scales or sizes for all {r} axes"
                )))
            }
        };
        let out_shape: Vec<usize> = out.iter().map(|&(o, _)| o).collect();
        check_size(&out_shape, "Resize")?;
        // Each resized axis builds one tap list per output position: bound those too.
        if let Some(&o) = out_shape.iter().find(|&&o| o > MAX_AXIS) {
            return Err(Error::Shape(format!(
                "Resize to {out_shape:?}: an axis of {o} exceeds the {MAX_AXIS} limit"
            )));
        }
        // Interpolating an empty axis into a non-empty one has nothing to read from, and
        // shrinking a non-empty axis to nothing (a zero size or a tiny scale) is no resize.
        if let Some(a) = (0..r).find(|&a| (shape[a] == 0) != (out_shape[a] == 0)) {
            return Err(Error::Shape(format!(
                "Resize of {shape:?} to {out_shape:?}: axis {a} would go from {} to {} elements",
                shape[a], out_shape[a]
            )));
        }
        Ok(out)
    }

    fn taps(&self, input: usize, output: usize, scale: f32) -> Taps {
        (0..output)
            .map(|o| {
                let x = o as f32;
                let src = match self.coord.as_str() {
                    "half_pixel" => (x + 0.5) / scale - 0.5,
                    "pytorch_half_pixel" => {
                        if output > 1 {
                            (x + 0.5) / scale - 0.5
                        } else {
                            0.0
                        }
                    }
                    "align_corners" => {
                        if output > 1 {
                            x * (input as f32 - 1.0) / (output as f32 - 1.0)
                        } else {
                            0.0
                        }
                    }
                    "tf_half_pixel_for_nn" => (x + 0.5) / scale,
                    _ => x / scale,
                };
                let last = input.saturating_sub(1) as f32;
                if self.linear {
                    let s = src.clamp(0.0, last);
                    let i0 = s.floor() as usize;
                    let i1 = (i0 + 1).min(input - 1);
                    let w = s - i0 as f32;
                    if i1 == i0 || w == 0.0 {
                        vec![(i0, 1.0)]
                    } else {
                        vec![(i0, 1.0 - w), (i1, w)]
                    }
                } else {
                    let i = match self.nearest_mode.as_str() {
                        "floor" => src.floor(),
                        "ceil" => src.ceil(),
                        "round_prefer_ceil" => (src + 0.5).floor(),
                        _ => {
                            // round_prefer_floor: halves go down.
                            if src.fract() == 0.5 {
                                src.floor()
                            } else {
                                src.round()
                            }
                        }
                    };
                    vec![(i.clamp(0.0, last) as usize, 1.0)]
                }
            })
            .collect()
    }
}

/// Applies `taps` along `axis` (or its transpose when `transpose`).
fn apply_axis(
    data: &[f32],
    shape: &[usize],
    axis: usize,
    taps: &Taps,
    in_len: usize,
    transpose: bool,
) -> (Vec<f32>, Vec<usize>) {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let (src_len, dst_len) = if transpose {
        (taps.len(), in_len)
    } else {
        (in_len, taps.len())
    };
    debug_assert_eq!(shape[axis], src_len);
    let mut out = vec![0.0f32; outer * dst_len * inner];
    for o in 0..outer {
        for (t, tap) in taps.iter().enumerate() {
            for &(i, w) in tap {
                let (s, d) = if transpose { (t, i) } else { (i, t) };
                let src = &data[(o * src_len + s) * inner..][..inner];
                let dst = &mut out[(o * dst_len + d) * inner..][..inner];
                for k in 0..inner {
                    dst[k] += w * src[k];
                }
            }
        }
    }
    let mut new_shape = shape.to_vec();
    new_shape[axis] = dst_len;
    (out, new_shape)
}

impl Op for Resize {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let _ = any_input(inputs, 0)?;
        let sizes = self.sizes(inputs, x.shape())?;
        let (mut data, mut shape) = (x.data().to_vec(), x.shape().to_vec());
        for (axis, &(out, scale)) in sizes.iter().enumerate() {
            if out == shape[axis] && scale == 1.0 {
                continue;
            }
            let taps = self.taps(shape[axis], out, scale);
            (data, shape) = apply_axis(&data, &shape, axis, &taps, shape[axis], false);
        }
        Ok(vec![Tensor::from_parts(shape, data).into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let x = v.input(0)?;
        let sizes = self.sizes(v.inputs, x.shape())?;
        let g = v.grad(0)?;
        let (mut data, mut shape) = (g.data().to_vec(), g.shape().to_vec());
        for (axis, &(out, scale)) in sizes.iter().enumerate().rev() {
            let input = x.shape()[axis];
            if out == input && scale == 1.0 {
                continue;
            }
            let taps = self.taps(input, out, scale);
            (data, shape) = apply_axis(&data, &shape, axis, &taps, input, true);
        }
        Ok(only_first(Tensor::from_parts(shape, data), v.inputs.len()))
    }
}
