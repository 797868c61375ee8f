//! BatchNormalization in inference mode: a per-channel affine map.

use std::collections::HashMap;

use super::{float_input, only_first, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("BatchNormalization", |c| {
        if c.node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(Error::InvalidModel(
                "BatchNormalization in training mode (running statistics outputs) is not supported"
                    .into(),
            ));
        }
        Ok(Box::new(BatchNorm {
            epsilon: c.float("epsilon", 1e-5),
        }))
    });
}

struct BatchNorm {
    epsilon: f32,
}

impl BatchNorm {
    /// Per-channel `(scale, shift)` so that `y = x·scale + shift`.
    fn affine(&self, inputs: &[Option<&Value>], channels: usize) -> Result<Vec<(f32, f32)>> {
        let [s, b, m, v] = [1, 2, 3, 4].map(|i| float_input(inputs, i));
        let (s, b, m, v) = (s?, b?, m?, v?);
        for t in [s, b, m, v] {
            if t.len() != channels {
                return Err(Error::Shape(format!(
                    "BatchNormalization parameter of {} values for {channels} channels",
                    t.len()
                )));
            }
        }
        Ok((0..channels)
            .map(|c| {
                let k = s.data()[c] / (v.data()[c] + self.epsilon).sqrt();
                (k, b.data()[c] - m.data()[c] * k)
            })
            .collect())
    }
}

fn channels_and_plane(x: &Tensor) -> Result<(usize, usize)> {
    if x.rank() < 2 {
        return Err(Error::Shape(format!(
            "BatchNormalization needs N×C×..., got {:?}",
            x.shape()
        )));
    }
    Ok((x.shape()[1], x.shape()[2..].iter().product()))
}

impl Op for BatchNorm {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let (c, plane) = channels_and_plane(x)?;
        let aff = self.affine(inputs, c)?;
        let mut y = x.clone();
        crate::runtime::pool::for_each_chunk_mut(y.data_mut(), plane, |i, p| {
            let (k, b) = aff[i % c];
            p.iter_mut().for_each(|v| *v = *v * k + b);
        });
        Ok(vec![y.into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let x = v.input(0)?;
        if v.needs.iter().skip(1).any(|&n| n) {
            return Err(Error::NotDifferentiable(
                "BatchNormalization parameters".into(),
            ));
        }
        let (c, plane) = channels_and_plane(x)?;
        let aff = self.affine(v.inputs, c)?;
        let mut dx = v.grad(0)?.clone();
        crate::runtime::pool::for_each_chunk_mut(dx.data_mut(), plane, |i, p| {
            let k = aff[i % c].0;
            p.iter_mut().for_each(|g| *g *= k);
        });
        Ok(only_first(dx, v.inputs.len()))
    }
}
