//! Pad with constant, reflect and edge modes (negative pads crop).

use std::collections::HashMap;

use super::{
    any_input, check_size, float_input, norm_axis, only_first, Builder, ExecConfig, Op, Vjp,
};
use crate::error::{Error, Result};
use crate::tensor::{strides_of, Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Pad", |c| {
        let mode = match c.string("mode", "constant").as_str() {
            "constant" => Mode::Constant,
            "reflect" => Mode::Reflect,
            "edge" => Mode::Edge,
            other => {
                return Err(Error::InvalidModel(format!(
                    "Pad mode '{other}' is not supported"
                )))
            }
        };
        let legacy =
            (c.opset < 11).then(|| (c.ints("pads").unwrap_or_default(), c.float("value", 0.0)));
        Ok(Box::new(Pad { mode, legacy }))
    });
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Constant,
    Reflect,
    Edge,
}

struct Pad {
    mode: Mode,
    legacy: Option<(Vec<i64>, f32)>,
}

impl Pad {
    /// Per-axis `(begin, end)` pads and the fill value.
    fn spec(&self, inputs: &[Option<&Value>], rank: usize) -> Result<(Vec<(i64, i64)>, f32)> {
        let (raw, value) = match &self.legacy {
            Some((p, v)) => (p.clone(), *v),
            None => {
                let p = any_input(inputs, 1)?.to_i64_vec();
                let v = match inputs.get(2).copied().flatten() {
                    Some(Value::Float(t)) if !t.is_empty() => t.data()[0],
                    Some(Value::Int(t)) if !t.is_empty() => t.data()[0] as f32,
                    _ => 0.0,
                };
                (p, v)
            }
        };
        let axes: Vec<usize> = match inputs.get(3).copied().flatten() {
            Some(a) if self.legacy.is_none() => a
                .to_i64_vec()
                .iter()
                .map(|&x| norm_axis(x, rank))
                .collect::<Result<_>>()?,
            _ => (0..rank).collect(),
        };
        if raw.len() != 2 * axes.len() {
            return Err(Error::Shape(format!(
                "Pad has {} pads for {} axes",
                raw.len(),
                axes.len()
            )));
        }
        let mut pads = vec![(0, 0); rank];
        for (i, &ax) in axes.iter().enumerate() {
            pads[ax] = (raw[i], raw[i + axes.len()]);
        }
        Ok((pads, value))
    }

    /// Output shape and, per output element, the source element (None = fill value).
    fn mapping(
        &self,
        shape: &[usize],
        pads: &[(i64, i64)],
    ) -> Result<(Vec<usize>, Vec<Option<usize>>)> {
        let out: Vec<usize> = shape
            .iter()
            .zip(pads)
            .map(|(&d, &(b, e))| {
                // Checked: pads from a corrupt model can overflow i64, in the sum or (when huge
                // begin and end pads cancel out) in `position − begin` below; no real pad is
                // larger than the element limit.
                let limit = super::MAX_ELEMENTS as u64;
                if b.unsigned_abs() > limit || e.unsigned_abs() > limit {
                    return Err(Error::Shape(format!(
                        "Pad of {b},{e} on an axis of {d} is beyond the {limit}-element limit"
                    )));
                }
                match (d as i64).checked_add(b).and_then(|v| v.checked_add(e)) {
                    Some(n) if n >= 0 => Ok(n as usize),
                    _ => Err(Error::Shape(format!("Pad of {b},{e} on an axis of {d}"))),
                }
            })
            .collect::<Result<_>>()?;
        check_size(&out, "Pad")?;
        // Edge padding of an empty axis has no edge to copy (and clamp(0, -1) panics).
        if self.mode == Mode::Edge && shape.iter().zip(&out).any(|(&d, &o)| d == 0 && o > 0) {
            return Err(Error::Shape(format!(
                "edge padding of an empty axis in {shape:?}"
            )));
        }
        if self.mode == Mode::Reflect
            && shape
                .iter()
                .zip(pads)
                .any(|(&d, &(b, e))| (b > 0 || e > 0) && (b >= d as i64 || e >= d as i64))
        {
            return Err(Error::Shape(
                "reflect padding must be smaller than the axis".into(),
            ));
        }
        let (os, is) = (strides_of(&out), strides_of(shape));
        let n: usize = out.iter().product();
        let map = (0..n)
            .map(|o| {
                let mut src = 0usize;
                for ax in 0..out.len() {
                    let d = shape[ax] as i64;
                    let mut i = ((o / os[ax]) % out[ax]) as i64 - pads[ax].0;
                    if i < 0 || i >= d {
                        match self.mode {
                            Mode::Constant => return None,
                            Mode::Edge => i = i.clamp(0, d - 1),
                            Mode::Reflect => {
                                if d == 1 {
                                    i = 0
                                } else {
                                    let period = 2 * (d - 1);
                                    i = i.rem_euclid(period);
                                    if i >= d {
                                        i = period - i;
                                    }
                                }
                            }
                        }
                    }
                    src += i as usize * is[ax];
                }
                Some(src)
            })
            .collect();
        Ok((out, map))
    }
}

impl Op for Pad {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let (pads, value) = self.spec(inputs, x.rank())?;
        let (shape, map) = self.mapping(x.shape(), &pads)?;
        let data = map
            .iter()
            .map(|s| s.map_or(value, |i| x.data()[i]))
            .collect();
        Ok(vec![Tensor::from_parts(shape, data).into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let x = v.input(0)?;
        let (pads, _) = self.spec(v.inputs, x.rank())?;
        let (_, map) = self.mapping(x.shape(), &pads)?;
        let g = v.grad(0)?;
        let mut dx = vec![0.0f32; x.len()];
        for (o, s) in map.iter().enumerate() {
            if let Some(i) = s {
                dx[*i] += g.data()[o];
            }
        }
        Ok(only_first(
            Tensor::from_parts(x.shape().to_vec(), dx),
            v.inputs.len(),
        ))
    }
}
