//! Comparisons, boolean logic and `Where`. Booleans are integer values holding 0 or 1 (the
//! engine has float and integer values only); every op here reads any nonzero integer as true.
//!
//! Transformer exports compute masks and shapes with these (`Equal`/`Where` around an `Expand`
//! of the class token, Swin's attention mask built with `Not` and `Where`); only `Where`
//! passes a gradient, to its two value inputs.

use std::collections::HashMap;

use super::binary::{broadcast_shape, broadcast_sources, broadcast_zip};
use super::{any_input, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::tensor::{IntTensor, Tensor, TensorOf, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Logic {
    And,
    Or,
    Xor,
}

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Equal", |_| Ok(Box::new(CompareOp(Compare::Equal))));
    reg.insert("Less", |_| Ok(Box::new(CompareOp(Compare::Less))));
    reg.insert("LessOrEqual", |_| {
        Ok(Box::new(CompareOp(Compare::LessOrEqual)))
    });
    reg.insert("Greater", |_| Ok(Box::new(CompareOp(Compare::Greater))));
    reg.insert("GreaterOrEqual", |_| {
        Ok(Box::new(CompareOp(Compare::GreaterOrEqual)))
    });
    reg.insert("And", |_| Ok(Box::new(LogicOp(Logic::And))));
    reg.insert("Or", |_| Ok(Box::new(LogicOp(Logic::Or))));
    reg.insert("Xor", |_| Ok(Box::new(LogicOp(Logic::Xor))));
    reg.insert("Not", |_| Ok(Box::new(NotOp)));
    reg.insert("Where", |_| Ok(Box::new(WhereOp)));
}

/// Booleans as the engine holds them.
fn truth(b: bool) -> i64 {
    i64::from(b)
}

/// The integer (boolean) tensor of a value; a float one is read as "nonzero".
fn as_bools(v: &Value) -> IntTensor {
    match v {
        Value::Int(t) => t.clone(),
        Value::Float(t) => TensorOf::from_parts(
            t.shape().to_vec(),
            t.data().iter().map(|&x| truth(x != 0.0)).collect(),
        ),
    }
}

struct CompareOp(Compare);

impl CompareOp {
    fn test<T: PartialOrd>(&self, a: T, b: T) -> i64 {
        truth(match self.0 {
            Compare::Equal => a == b,
            Compare::Less => a < b,
            Compare::LessOrEqual => a <= b,
            Compare::Greater => a > b,
            Compare::GreaterOrEqual => a >= b,
        })
    }
}

impl Op for CompareOp {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (a, b) = (any_input(inputs, 0)?, any_input(inputs, 1)?);
        let out = match (a, b) {
            (Value::Int(x), Value::Int(y)) => broadcast_zip(x, y, |p, q| self.test(p, q))?,
            (Value::Float(x), Value::Float(y)) => broadcast_zip(x, y, |p, q| self.test(p, q))?,
            // Mixed kinds come from a Cast the engine keeps as integers; compare as floats.
            (Value::Float(x), Value::Int(y)) => {
                broadcast_zip(x, y, |p, q| self.test(p as f64, q as f64))?
            }
            (Value::Int(x), Value::Float(y)) => {
                broadcast_zip(x, y, |p, q| self.test(p as f64, q as f64))?
            }
        };
        Ok(vec![out.into()])
    }
}

struct LogicOp(Logic);

impl Op for LogicOp {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let a = as_bools(any_input(inputs, 0)?);
        let b = as_bools(any_input(inputs, 1)?);
        let out = broadcast_zip(&a, &b, |p, q| {
            let (p, q) = (p != 0, q != 0);
            truth(match self.0 {
                Logic::And => p && q,
                Logic::Or => p || q,
                Logic::Xor => p != q,
            })
        })?;
        Ok(vec![out.into()])
    }
}

struct NotOp;

impl Op for NotOp {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let a = as_bools(any_input(inputs, 0)?);
        let data = a.data().iter().map(|&v| truth(v == 0)).collect();
        Ok(vec![IntTensor::from_parts(a.shape().to_vec(), data).into()])
    }
}

/// `Where(condition, x, y)`: `x` where the condition holds, else `y`, all three broadcast.
struct WhereOp;

/// The broadcast shape of the three inputs and, per output element, the element each reads.
struct WherePlan {
    shape: Vec<usize>,
    cond: Vec<usize>,
    x: Vec<usize>,
    y: Vec<usize>,
}

fn where_plan(c: &[usize], x: &[usize], y: &[usize]) -> Result<WherePlan> {
    let shape = broadcast_shape(&broadcast_shape(c, x)?, y)?;
    Ok(WherePlan {
        cond: broadcast_sources(c, &shape)?,
        x: broadcast_sources(x, &shape)?,
        y: broadcast_sources(y, &shape)?,
        shape,
    })
}

fn pick<T: Copy>(p: &WherePlan, cond: &[i64], x: &[T], y: &[T]) -> Vec<T> {
    (0..p.cond.len())
        .map(|o| {
            if cond[p.cond[o]] != 0 {
                x[p.x[o]]
            } else {
                y[p.y[o]]
            }
        })
        .collect()
}

impl Op for WhereOp {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let cond = as_bools(any_input(inputs, 0)?);
        let (x, y) = (any_input(inputs, 1)?, any_input(inputs, 2)?);
        let p = where_plan(cond.shape(), x.shape(), y.shape())?;
        let out: Value = match (x, y) {
            (Value::Float(a), Value::Float(b)) => {
                Tensor::from_parts(p.shape.clone(), pick(&p, cond.data(), a.data(), b.data()))
                    .into()
            }
            (Value::Int(a), Value::Int(b)) => {
                IntTensor::from_parts(p.shape.clone(), pick(&p, cond.data(), a.data(), b.data()))
                    .into()
            }
            _ => return Err(Error::Type("Where of an integer and a float tensor".into())),
        };
        Ok(vec![out])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let cond = as_bools(any_input(v.inputs, 0)?);
        let (x, y, g) = (v.input(1)?, v.input(2)?, v.grad(0)?);
        let p = where_plan(cond.shape(), x.shape(), y.shape())?;
        let mut grads: Vec<Option<Tensor>> = vec![None, None, None];
        for (k, (src, taken, t)) in [(&p.x, true, x), (&p.y, false, y)].into_iter().enumerate() {
            if !v.needs.get(k + 1).copied().unwrap_or(false) {
                continue;
            }
            // Scatter-add the gradient of the elements this input supplied.
            let mut acc = vec![0.0f32; t.len()];
            for (o, &gv) in g.data().iter().enumerate() {
                if (cond.data()[p.cond[o]] != 0) == taken {
                    acc[src[o]] += gv;
                }
            }
            grads[k + 1] = Some(Tensor::from_parts(t.shape().to_vec(), acc));
        }
        Ok(grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(shape: &[usize], d: &[i64]) -> Value {
        IntTensor::new(shape.to_vec(), d.to_vec()).unwrap().into()
    }
    fn floats(shape: &[usize], d: &[f32]) -> Value {
        Tensor::new(shape.to_vec(), d.to_vec()).unwrap().into()
    }
    fn run(op: &dyn Op, ins: &[&Value]) -> Value {
        let ins: Vec<Option<&Value>> = ins.iter().map(|v| Some(*v)).collect();
        op.forward(&ExecConfig::default(), &ins).unwrap().remove(0)
    }

    #[test]
    fn comparisons_broadcast_and_give_booleans() {
        let a = ints(&[3], &[1, 2, 3]);
        let b = ints(&[1], &[2]);
        assert_eq!(
            run(&CompareOp(Compare::Equal), &[&a, &b]),
            ints(&[3], &[0, 1, 0])
        );
        assert_eq!(
            run(&CompareOp(Compare::Less), &[&a, &b]),
            ints(&[3], &[1, 0, 0])
        );
        let f = floats(&[2], &[0.5, -1.0]);
        let z = floats(&[], &[0.0]);
        assert_eq!(
            run(&CompareOp(Compare::GreaterOrEqual), &[&f, &z]),
            ints(&[2], &[1, 0])
        );
    }

    #[test]
    fn not_and_logic() {
        let a = ints(&[3], &[0, 1, 5]);
        assert_eq!(run(&NotOp, &[&a]), ints(&[3], &[1, 0, 0]));
        let b = ints(&[3], &[1, 1, 0]);
        assert_eq!(run(&LogicOp(Logic::And), &[&a, &b]), ints(&[3], &[0, 1, 0]));
        assert_eq!(run(&LogicOp(Logic::Xor), &[&a, &b]), ints(&[3], &[1, 0, 1]));
    }

    #[test]
    fn where_broadcasts_all_three() {
        let c = ints(&[2, 1], &[1, 0]);
        let x = floats(&[3], &[1.0, 2.0, 3.0]);
        let y = floats(&[], &[-1.0]);
        assert_eq!(
            run(&WhereOp, &[&c, &x, &y]),
            floats(&[2, 3], &[1.0, 2.0, 3.0, -1.0, -1.0, -1.0])
        );
        let bad = ints(&[4], &[1, 0, 1, 0]);
        let ins = [Some(&bad), Some(&x), Some(&y)];
        assert!(WhereOp.forward(&ExecConfig::default(), &ins).is_err());
    }
}
