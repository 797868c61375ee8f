//! `Einsum` over one or two operands, as exporters emit it (`torch.einsum` in attention and
//! relative-position code): explicit (`bhid,bhjd->bhij`) and implicit (`ij,jk`) outputs,
//! indices summed away, and `...` broadcasting. Diagonals (an index repeated within one
//! operand, `ii->i`) and three or more operands are refused at load.
//!
//! Every contraction is reduced to one batched matrix product: indices found only in one
//! operand and not in the output are summed first; indices of both operands are the batch
//! (kept) or the inner dimension (summed); the rest are the rows or the columns. The gradient
//! of an einsum is an einsum of the output gradient with the other operand, written to the
//! operand's indices, so the backward pass is the same routine ([`contract`]), which also
//! broadcasts along indices the result lacks and sums along those its target has as size 1.

use std::borrow::Cow;
use std::collections::HashMap;

use super::binary::broadcast_sources;
use super::{check_size, float_input, BuildCtx, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::kernels::gemm::{matmul, Mat};
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Einsum", build);
}

fn build(ctx: &BuildCtx) -> Result<Box<dyn Op>> {
    let text = ctx.string("equation", "");
    let operands = ctx.node.input.len();
    let equation = Equation::parse(&text, operands).map_err(|why| {
        Error::InvalidModel(format!("Einsum equation '{}' {why}", text.escape_debug()))
    })?;
    Ok(Box::new(Einsum { equation }))
}

/// An index: a letter's byte, or `ELLIPSIS + k` for the k-th axis covered by `...`.
type Label = u32;
const ELLIPSIS: Label = 256;

/// One side of an equation: its letters in order and where `...` stands among them.
#[derive(Clone, Debug, PartialEq)]
struct Term {
    letters: Vec<u8>,
    ellipsis: Option<usize>,
}

impl Term {
    fn parse(s: &str) -> std::result::Result<Term, String> {
        let mut letters = Vec::new();
        let mut ellipsis = None;
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("...") {
                if ellipsis.is_some() {
                    return Err(format!("has more than one '...' in '{s}'"));
                }
                ellipsis = Some(letters.len());
                rest = &rest[3..];
            } else if c.is_ascii_alphabetic() {
                letters.push(c as u8);
                rest = &rest[1..];
            } else {
                return Err(format!("has '{}', not a letter or '...'", c.escape_debug()));
            }
        }
        Ok(Term { letters, ellipsis })
    }

    /// The labels of an operand of `rank` axes, with `width` axes under the widest `...` of
    /// the equation (this term's own `...` covers the last of them).
    fn labels(&self, rank: usize, width: usize, what: &str) -> Result<Vec<Label>> {
        let covered = match self.ellipsis {
            Some(_) => rank.checked_sub(self.letters.len()),
            None => (rank == self.letters.len()).then_some(0),
        }
        .ok_or_else(|| {
            Error::Shape(format!(
                "Einsum {what} has {rank} axes, its indices '{}' name {}",
                String::from_utf8_lossy(&self.letters),
                self.letters.len()
            ))
        })?;
        let letter = |&c: &u8| Label::from(c);
        let at = self.ellipsis.unwrap_or(self.letters.len());
        Ok(self.letters[..at]
            .iter()
            .map(letter)
            .chain((width - covered..width).map(|k| ELLIPSIS + k as Label))
            .chain(self.letters[at..].iter().map(letter))
            .collect())
    }
}

/// A parsed equation: the operands' terms and the output's (written, or implied).
#[derive(Clone, Debug, PartialEq)]
struct Equation {
    inputs: Vec<Term>,
    output: Term,
    /// Whether the output names `...` (else the axes under `...` are summed away).
    output_ellipsis: bool,
}

impl Equation {
    /// Parses `text` for `operands` inputs; the error says what is wrong, to follow the
    /// equation in a message.
    fn parse(text: &str, operands: usize) -> std::result::Result<Equation, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs) = match compact.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (compact.as_str(), None),
        };
        let inputs = lhs
            .split(',')
            .map(Term::parse)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if inputs.len() != operands {
            return Err(format!(
                "names {} operand(s), the node has {operands}",
                inputs.len()
            ));
        }
        if !(1..=2).contains(&operands) {
            return Err(format!(
                "has {operands} operands; Einsum of one or two operands is supported"
            ));
        }
        for t in &inputs {
            if let Some(c) = repeated(&t.letters) {
                return Err(format!(
                    "repeats index '{}' within one operand (a diagonal), which is not supported",
                    c as char
                ));
            }
        }
        let any_ellipsis = inputs.iter().any(|t| t.ellipsis.is_some());
        let output = match rhs {
            Some(r) => {
                let t = Term::parse(r)?;
                if let Some(c) = repeated(&t.letters) {
                    return Err(format!("repeats output index '{}'", c as char));
                }
                if let Some(&c) = t
                    .letters
                    .iter()
                    .find(|c| !inputs.iter().any(|i| i.letters.contains(c)))
                {
                    return Err(format!(
                        "has output index '{}', which no operand has",
                        c as char
                    ));
                }
                t
            }
            None => {
                // NumPy's implicit output: `...` first, then the indices seen once, sorted.
                let mut once: Vec<u8> = inputs
                    .iter()
                    .flat_map(|t| t.letters.iter().copied())
                    .filter(|c| {
                        inputs
                            .iter()
                            .map(|t| t.letters.iter().filter(|&d| d == c).count())
                            .sum::<usize>()
                            == 1
                    })
                    .collect();
                once.sort_unstable();
                Term {
                    letters: once,
                    ellipsis: any_ellipsis.then_some(0),
                }
            }
        };
        let output_ellipsis = output.ellipsis.is_some();
        Ok(Equation {
            inputs,
            output,
            output_ellipsis,
        })
    }

    /// The labels of each operand of these shapes and of the output.
    fn resolve(&self, shapes: &[&[usize]]) -> Result<(Vec<Vec<Label>>, Vec<Label>)> {
        let width = self
            .inputs
            .iter()
            .zip(shapes)
            .map(|(t, s)| {
                t.ellipsis
                    .map_or(0, |_| s.len().saturating_sub(t.letters.len()))
            })
            .max()
            .unwrap_or(0);
        let inputs = self
            .inputs
            .iter()
            .zip(shapes)
            .enumerate()
            .map(|(i, (t, s))| t.labels(s.len(), width, &format!("operand {i}")))
            .collect::<Result<Vec<_>>>()?;
        let output = if self.output_ellipsis {
            self.output
                .labels(self.output.letters.len() + width, width, "output")?
        } else {
            self.output
                .letters
                .iter()
                .map(|&c| Label::from(c))
                .collect()
        };
        Ok((inputs, output))
    }

    /// The output shape for operands of these shapes.
    fn output_shape(&self, shapes: &[&[usize]]) -> Result<Vec<usize>> {
        let (inputs, output) = self.resolve(shapes)?;
        let sizes = label_sizes(inputs.iter().map(Vec::as_slice).zip(shapes.iter().copied()))?;
        Ok(output.iter().map(|l| sizes[l]).collect())
    }
}

/// The first letter that appears twice.
fn repeated(letters: &[u8]) -> Option<u8> {
    letters
        .iter()
        .enumerate()
        .find(|(i, c)| letters[..*i].contains(c))
        .map(|(_, &c)| c)
}

fn label_name(l: Label) -> String {
    if l < ELLIPSIS {
        format!("'{}'", l as u8 as char)
    } else {
        format!("'...' axis {}", l - ELLIPSIS)
    }
}

/// The size of every label, checked across the operands (equal, or 1 broadcast).
fn label_sizes<'a>(
    operands: impl Iterator<Item = (&'a [Label], &'a [usize])>,
) -> Result<HashMap<Label, usize>> {
    let mut sizes: HashMap<Label, usize> = HashMap::new();
    for (labels, shape) in operands {
        for (&l, &d) in labels.iter().zip(shape) {
            let s = sizes.entry(l).or_insert(d);
            if *s != d && *s != 1 && d != 1 {
                return Err(Error::Shape(format!(
                    "Einsum index {} has sizes {} and {d}",
                    label_name(l),
                    *s
                )));
            }
            *s = (*s).max(d);
        }
    }
    Ok(sizes)
}

/// `t` (axes labelled `labels`) with the axes of `drop` summed away; with `keep`, they stay as
/// axes of size 1.
fn sum_labels(t: &Tensor, labels: &[Label], drop: &[Label], keep: bool) -> Tensor {
    if drop.is_empty() {
        return t.clone();
    }
    let kept: Vec<usize> = (0..labels.len())
        .filter(|&a| !drop.contains(&labels[a]))
        .collect();
    let summed: Vec<usize> = (0..labels.len())
        .filter(|&a| drop.contains(&labels[a]))
        .collect();
    let perm: Vec<usize> = kept.iter().chain(&summed).copied().collect();
    let moved = permuted(t, &perm);
    let run: usize = summed.iter().map(|&a| t.shape()[a]).product();
    let data: Vec<f32> = if run == 0 {
        vec![0.0; kept.iter().map(|&a| t.shape()[a]).product()]
    } else {
        moved
            .data()
            .chunks_exact(run)
            .map(|c| c.iter().sum())
            .collect()
    };
    let shape: Vec<usize> = (0..labels.len())
        .filter_map(|a| match (drop.contains(&labels[a]), keep) {
            (false, _) => Some(t.shape()[a]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Tensor::from_parts(shape, data)
}

/// `t` with its axes in the order `perm` (no copy when it is already).
fn permuted<'a>(t: &'a Tensor, perm: &[usize]) -> Cow<'a, Tensor> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        Cow::Borrowed(t)
    } else {
        Cow::Owned(t.permute(perm))
    }
}

/// `t` (labelled `labels`) broadcast to the sizes of `sizes`.
fn expand_to(t: Tensor, labels: &[Label], sizes: &HashMap<Label, usize>) -> Result<Tensor> {
    let shape: Vec<usize> = labels.iter().map(|l| sizes[l]).collect();
    if shape == t.shape() {
        return Ok(t);
    }
    check_size(&shape, "Einsum")?;
    let src = broadcast_sources(t.shape(), &shape)?;
    let d = t.data();
    Ok(Tensor::from_parts(
        shape,
        src.iter().map(|&i| d[i]).collect(),
    ))
}

/// The einsum of `operands` (each a tensor and its axes' labels) written to the labels `out`
/// with shape `out_shape` (see the module): labels of `out` that no operand has are
/// broadcast, and labels the operands have larger than `out_shape` says (1) are summed.
fn contract(
    operands: &[(&Tensor, &[Label])],
    out: &[Label],
    out_shape: &[usize],
) -> Result<Tensor> {
    let mut sizes = label_sizes(operands.iter().map(|(t, l)| (*l, t.shape())))?;
    // Indices only one operand has and the output lacks are summed first.
    let reduced: Vec<(Tensor, Vec<Label>)> = operands
        .iter()
        .enumerate()
        .map(|(k, (t, labels))| {
            let private: Vec<Label> = labels
                .iter()
                .copied()
                .filter(|l| {
                    !out.contains(l)
                        && !operands
                            .iter()
                            .enumerate()
                            .any(|(j, (_, o))| j != k && o.contains(l))
                })
                .collect();
            let rest = labels
                .iter()
                .copied()
                .filter(|l| !private.contains(l))
                .collect();
            (sum_labels(t, labels, &private, false), rest)
        })
        .collect();
    let (result, labels) = match &reduced[..] {
        [(a, la)] => (a.clone(), la.clone()),
        [(a, la), (b, lb)] => product(a, la, b, lb, out, &sizes)?,
        _ => return Err(Error::Shape("Einsum of more than two operands".into())),
    };
    // To the output: sum what the target holds as size 1, broadcast what the result lacks,
    // then the output's order.
    for (l, &d) in out.iter().zip(out_shape) {
        sizes.insert(*l, d);
    }
    let shrink: Vec<Label> = labels
        .iter()
        .zip(result.shape())
        .filter(|(l, &d)| d > 1 && sizes.get(l) == Some(&1))
        .map(|(l, _)| *l)
        .collect();
    let result = sum_labels(&result, &labels, &shrink, true);
    let missing: Vec<Label> = out
        .iter()
        .copied()
        .filter(|l| !labels.contains(l))
        .collect();
    let mut all = labels.clone();
    all.extend(&missing);
    let mut shape = result.shape().to_vec();
    shape.extend(missing.iter().map(|_| 1));
    let result = Tensor::from_parts(shape, result.into_data());
    let perm: Vec<usize> = out
        .iter()
        .map(|l| {
            all.iter()
                .position(|a| a == l)
                .expect("every output label placed")
        })
        .collect();
    let result = permuted(&result, &perm).into_owned();
    expand_to(result, out, &sizes)
}

/// The product of two operands whose private indices are summed already: `[batch, rows, k]
/// · [batch, k, cols]`, with its labels (batch, then `a`'s own, then `b`'s own).
fn product(
    a: &Tensor,
    la: &[Label],
    b: &Tensor,
    lb: &[Label],
    out: &[Label],
    sizes: &HashMap<Label, usize>,
) -> Result<(Tensor, Vec<Label>)> {
    // Shared indices broadcast to their common size.
    let a = expand_to(a.clone(), la, sizes)?;
    let b = expand_to(b.clone(), lb, sizes)?;
    let shared: Vec<Label> = la.iter().copied().filter(|l| lb.contains(l)).collect();
    let batch: Vec<Label> = shared.iter().copied().filter(|l| out.contains(l)).collect();
    let inner: Vec<Label> = shared
        .iter()
        .copied()
        .filter(|l| !out.contains(l))
        .collect();
    let rows: Vec<Label> = la.iter().copied().filter(|l| !shared.contains(l)).collect();
    let cols: Vec<Label> = lb.iter().copied().filter(|l| !shared.contains(l)).collect();
    let pos = |labels: &[Label], l: &Label| labels.iter().position(|x| x == l).expect("a label");
    let perm_a: Vec<usize> = batch
        .iter()
        .chain(&rows)
        .chain(&inner)
        .map(|l| pos(la, l))
        .collect();
    let perm_b: Vec<usize> = batch
        .iter()
        .chain(&inner)
        .chain(&cols)
        .map(|l| pos(lb, l))
        .collect();
    let (pa, pb) = (permuted(&a, &perm_a), permuted(&b, &perm_b));
    let n = |ls: &[Label]| ls.iter().map(|l| sizes[l]).product::<usize>();
    let (nb, m, k, nc) = (n(&batch), n(&rows), n(&inner), n(&cols));
    let labels: Vec<Label> = batch.iter().chain(&rows).chain(&cols).copied().collect();
    let shape: Vec<usize> = labels.iter().map(|l| sizes[l]).collect();
    let len = check_size(&shape, "Einsum")?;
    let mut data = vec![0.0f32; len];
    if k > 0 && m > 0 && nc > 0 {
        for i in 0..nb {
            matmul(
                &pa.data()[i * m * k..(i + 1) * m * k],
                Mat::row_major(m, k),
                &pb.data()[i * k * nc..(i + 1) * k * nc],
                Mat::row_major(k, nc),
                &mut data[i * m * nc..(i + 1) * m * nc],
                Mat::row_major(m, nc),
                false,
                0,
            );
        }
    }
    Ok((Tensor::from_parts(shape, data), labels))
}

struct Einsum {
    equation: Equation,
}

impl Einsum {
    fn operands<'a>(&self, inputs: &[Option<&'a Value>]) -> Result<Vec<&'a Tensor>> {
        (0..self.equation.inputs.len())
            .map(|i| float_input(inputs, i))
            .collect()
    }
}

impl Op for Einsum {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let ops = self.operands(inputs)?;
        let shapes: Vec<&[usize]> = ops.iter().map(|t| t.shape()).collect();
        let (labels, out) = self.equation.resolve(&shapes)?;
        let out_shape = self.equation.output_shape(&shapes)?;
        let operands: Vec<(&Tensor, &[Label])> = ops
            .iter()
            .copied()
            .zip(labels.iter().map(Vec::as_slice))
            .collect();
        Ok(vec![contract(&operands, &out, &out_shape)?.into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let ops = self.operands(v.inputs)?;
        let g = v.grad(0)?;
        let shapes: Vec<&[usize]> = ops.iter().map(|t| t.shape()).collect();
        let (labels, out) = self.equation.resolve(&shapes)?;
        (0..ops.len())
            .map(|i| {
                if !v.needs.get(i).copied().unwrap_or(false) {
                    return Ok(None);
                }
                // d operand i = einsum(output gradient, the other operand → operand i).
                let mut operands: Vec<(&Tensor, &[Label])> = vec![(g, &out)];
                operands.extend(
                    (0..ops.len())
                        .filter(|&j| j != i)
                        .map(|j| (ops[j], labels[j].as_slice())),
                );
                contract(&operands, &labels[i], ops[i].shape()).map(Some)
            })
            .collect()
    }

    fn flops(&self, inputs: &[Option<&Value>], _: &[&Value]) -> u64 {
        // One multiply-add per point of the operands' combined index space (what the matrix
        // product does once the private indices are summed).
        let Ok(ops) = self.operands(inputs) else {
            return 0;
        };
        let shapes: Vec<&[usize]> = ops.iter().map(|t| t.shape()).collect();
        let Ok((labels, _)) = self.equation.resolve(&shapes) else {
            return 0;
        };
        let Ok(sizes) = label_sizes(labels.iter().map(Vec::as_slice).zip(shapes)) else {
            return 0;
        };
        2 * sizes.values().map(|&d| d as u64).product::<u64>()
    }
}

/// The output shape of an Einsum node with this equation on operands of these shapes (for
/// shape inference).
pub(crate) fn output_shape(equation: &str, shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let eq = Equation::parse(equation, shapes.len())
        .map_err(|why| Error::Shape(format!("Einsum equation '{equation}' {why}")))?;
    eq.output_shape(shapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_outputs_follow_numpy() {
        let out = |eq: &str, n: usize| {
            let e = Equation::parse(eq, n).unwrap();
            (
                String::from_utf8(e.output.letters).unwrap(),
                e.output_ellipsis,
            )
        };
        assert_eq!(out("ij,jk", 2), ("ik".into(), false));
        assert_eq!(out("ba", 1), ("ab".into(), false));
        assert_eq!(out("...ij,...jk", 2), ("ik".into(), true));
        assert_eq!(out("i,i", 2), ("".into(), false));
    }

    #[test]
    fn refusals_say_why() {
        let why = |eq: &str, n: usize| Equation::parse(eq, n).unwrap_err();
        assert!(why("ii->i", 1).contains("diagonal"));
        assert!(why("ij,jk,kl->il", 3).contains("3 operands"));
        assert!(why("ij->k", 1).contains("'k'"));
        assert!(why("i.j->i", 1).contains("'.'"));
        assert!(why("ij,jk->ik", 1).contains("2 operand"));
        assert!(why("......i->i", 1).contains("more than one"));
    }

    #[test]
    fn ellipsis_labels_align_right() {
        let e = Equation::parse("...ij,...jk->...ik", 2).unwrap();
        let (ins, out) = e.resolve(&[&[2, 3, 4, 5], &[3, 5, 6]]).unwrap();
        let (e0, e1) = (ELLIPSIS, ELLIPSIS + 1);
        let (i, j, k) = (Label::from(b'i'), Label::from(b'j'), Label::from(b'k'));
        assert_eq!(ins[0], [e0, e1, i, j]);
        assert_eq!(ins[1], [e1, j, k]);
        assert_eq!(out, [e0, e1, i, k]);
        assert_eq!(
            e.output_shape(&[&[2, 3, 4, 5], &[3, 5, 6]]).unwrap(),
            [2, 3, 4, 6]
        );
    }
}
