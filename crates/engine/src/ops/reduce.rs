//! ReduceMean, ReduceSum, ReduceMax over a set of axes (attribute or, from opset 18, input).

use std::collections::HashMap;

use super::{float_input, norm_axis, only_first, Builder, ExecConfig, Op, Vjp};
use crate::error::Result;
use crate::tensor::{strides_of, Tensor, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Mean,
    Sum,
    Max,
}

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    fn mk(c: &super::BuildCtx, kind: Kind) -> Result<Box<dyn Op>> {
        Ok(Box::new(Reduce {
            kind,
            axes_attr: c.ints("axes"),
            keepdims: c.int("keepdims", 1) != 0,
            noop_with_empty_axes: c.int("noop_with_empty_axes", 0) != 0,
        }))
    }
    reg.insert("ReduceMean", |c| mk(c, Kind::Mean));
    reg.insert("ReduceSum", |c| mk(c, Kind::Sum));
    reg.insert("ReduceMax", |c| mk(c, Kind::Max));
}

struct Reduce {
    kind: Kind,
    axes_attr: Option<Vec<i64>>,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

impl Reduce {
    /// Per-axis flag: reduced or not. `None` means "no-op" (empty axes with noop_with_empty_axes).
    fn reduced(&self, inputs: &[Option<&Value>], rank: usize) -> Result<Option<Vec<bool>>> {
        let axes: Vec<i64> = match (&self.axes_attr, inputs.get(1).copied().flatten()) {
            (Some(a), _) => a.clone(),
            (None, Some(v)) => v.to_i64_vec(),
            (None, None) => vec![],
        };
        if axes.is_empty() {
            return Ok(if self.noop_with_empty_axes {
                None
            } else {
                Some(vec![true; rank])
            });
        }
        let mut flags = vec![false; rank];
        for a in axes {
            flags[norm_axis(a, rank)?] = true;
        }
        Ok(Some(flags))
    }

    /// Index of each input element in the reduced output.
    fn out_index(shape: &[usize], flags: &[bool]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
        let kept: Vec<usize> = shape
            .iter()
            .zip(flags)
            .map(|(&d, &r)| if r { 1 } else { d })
            .collect();
        let ks = strides_of(&kept);
        let xs = strides_of(shape);
        let n: usize = shape.iter().product();
        let map = (0..n)
            .map(|i| {
                (0..shape.len())
                    .filter(|&ax| !flags[ax])
                    .map(|ax| ((i / xs[ax]) % shape[ax]) * ks[ax])
                    .sum()
            })
            .collect();
        (map, kept, xs)
    }

    fn out_shape(&self, kept: &[usize], flags: &[bool]) -> Vec<usize> {
        if self.keepdims {
            kept.to_vec()
        } else {
            kept.iter()
                .zip(flags)
                .filter(|(_, &r)| !r)
                .map(|(&d, _)| d)
                .collect()
        }
    }
}

impl Op for Reduce {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let Some(flags) = self.reduced(inputs, x.rank())? else {
            return Ok(vec![x.clone().into()]);
        };
        let (map, kept, _) = Self::out_index(x.shape(), &flags);
        let m: usize = kept.iter().product();
        let count = (x.len() / m.max(1)).max(1) as f32;
        let init = if self.kind == Kind::Max {
            f32::NEG_INFINITY
        } else {
            0.0
        };
        let mut out = vec![init; m];
        for (i, &o) in map.iter().enumerate() {
            let v = x.data()[i];
            match self.kind {
                Kind::Max => out[o] = out[o].max(v),
                _ => out[o] += v,
            }
        }
        if self.kind == Kind::Mean {
            out.iter_mut().for_each(|v| *v /= count);
        }
        Ok(vec![
            Tensor::from_parts(self.out_shape(&kept, &flags), out).into()
        ])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (x, y, g) = (v.input(0)?, v.output(0)?, v.grad(0)?);
        let Some(flags) = self.reduced(v.inputs, x.rank())? else {
            return Ok(only_first(g.clone(), v.inputs.len()));
        };
        let (map, kept, _) = Self::out_index(x.shape(), &flags);
        let m: usize = kept.iter().product();
        let count = (x.len() / m.max(1)).max(1) as f32;
        let mut dx = vec![0.0f32; x.len()];
        let mut routed = vec![false; if self.kind == Kind::Max { m } else { 0 }];
        for (i, &o) in map.iter().enumerate() {
            dx[i] = match self.kind {
                Kind::Sum => g.data()[o],
                Kind::Mean => g.data()[o] / count,
                Kind::Max => {
                    if !routed[o] && x.data()[i] == y.data()[o] {
                        routed[o] = true;
                        g.data()[o]
                    } else {
                        0.0
                    }
                }
            };
        }
        Ok(only_first(
            Tensor::from_parts(x.shape().to_vec(), dx),
            v.inputs.len(),
        ))
    }
}
