//! Objectives: what a picture should make the network do, as a value per picture and its
//! gradient with respect to the activations.
//!
//! An [`Objective`] is a weighted sum of [`Term`]s and composes with `+`, `-` and `* f32`, as
//! Lucent's objectives do. Every term reads one value of the network (a layer's `N × C × H × W`
//! feature map, or an output `N × K` or `N × K × H × W`) and is evaluated per picture; only the
//! diversity term couples the pictures of one group.

use std::collections::HashMap;
use std::ops::{Add, Mul, Neg, Sub};

use convscope_engine::{Tensor, ValueId};

use crate::error::{Error, Result};

/// How strongly [`dot_cossim`] favours alignment (Lucid's `cossim_pow`, horama's default 2).
pub const COSSIM_POW: f32 = 2.0;

/// One kind of objective.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// Mean of channel `channel` of `layer` over all positions (the walk-through's).
    Channel {
        /// The feature map.
        layer: ValueId,
        /// Channel index.
        channel: usize,
    },
    /// One neuron: channel `channel` of `layer` at `(y, x)` (the centre when `None`).
    Neuron {
        /// The feature map.
        layer: ValueId,
        /// Channel index.
        channel: usize,
        /// Position `(y, x)` in the feature map.
        at: Option<(usize, usize)>,
    },
    /// A direction in channel space: at each position (or at `at`), the dot product of the
    /// activation vector with `vector`, weighted by their cosine similarity to the power
    /// [`COSSIM_POW`] (floored at 0.1), averaged over positions.
    Direction {
        /// The feature map.
        layer: ValueId,
        /// One value per channel.
        vector: Vec<f32>,
        /// One position `(y, x)`, or every position.
        at: Option<(usize, usize)>,
    },
    /// A class score: element `index` of an output, before any softmax (averaged over
    /// positions when the output has them).
    Class {
        /// The output (or the Softmax's input).
        value: ValueId,
        /// Class index.
        index: usize,
    },
    /// Feature inversion: minus the squared distance of `layer` to `target`, relative to the
    /// target's squared norm (0 at a perfect match).
    Match {
        /// The feature map.
        layer: ValueId,
        /// The activations to match (`C × H × W` of one picture).
        target: Vec<f32>,
    },
    /// Caricature: [`dot_cossim`] of the whole feature map with `target`, relative to the
    /// target's squared norm (1 at a perfect match, more when exaggerated).
    Caricature {
        /// The feature map.
        layer: ValueId,
        /// The activations to exaggerate (`C × H × W` of one picture).
        target: Vec<f32>,
    },
    /// Diversity (Lucent's): minus the similarity of this picture's normalised Gram matrix of
    /// `layer` with those of the other pictures of its group, divided by the group's size.
    Diversity {
        /// The feature map.
        layer: ValueId,
    },
}

impl Term {
    /// The network value the term reads.
    pub fn value(&self) -> ValueId {
        match self {
            Term::Channel { layer, .. }
            | Term::Neuron { layer, .. }
            | Term::Direction { layer, .. }
            | Term::Match { layer, .. }
            | Term::Caricature { layer, .. }
            | Term::Diversity { layer } => *layer,
            Term::Class { value, .. } => *value,
        }
    }

    /// Whether the term reads particular positions of its map (a neuron, a direction at a
    /// point, inversion and caricature compare position by position), so transformations that
    /// move the picture far blur what it asks for.
    ///
    /// ```
    /// use convscope_methods::fvis::objective::Term;
    /// # let layer = convscope_engine::ValueId(0);
    /// assert!(Term::Neuron { layer, channel: 5, at: None }.reads_positions());
    /// assert!(!Term::Channel { layer, channel: 5 }.reads_positions());
    /// ```
    pub fn reads_positions(&self) -> bool {
        match self {
            Term::Neuron { .. } | Term::Match { .. } | Term::Caricature { .. } => true,
            Term::Direction { at, .. } => at.is_some(),
            Term::Channel { .. } | Term::Class { .. } | Term::Diversity { .. } => false,
        }
    }
}

/// A weighted sum of terms, maximised.
///
/// ```
/// use convscope_methods::fvis::objective::{Objective, Term};
/// # let layer = convscope_engine::ValueId(0);
/// let a = Objective::from(Term::Channel { layer, channel: 3 });
/// let b = Objective::from(Term::Neuron { layer, channel: 5, at: None });
/// let both = a.clone() + 0.5 * b - a;
/// assert_eq!(both.terms().len(), 3);
/// assert_eq!(both.terms()[2].0, -1.0);
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Objective {
    terms: Vec<(f32, Term)>,
}

impl From<Term> for Objective {
    fn from(t: Term) -> Objective {
        Objective {
            terms: vec![(1.0, t)],
        }
    }
}

impl Objective {
    /// The `(weight, term)` pairs.
    pub fn terms(&self) -> &[(f32, Term)] {
        &self.terms
    }

    /// The network values the objective reads, each once.
    pub fn values(&self) -> Vec<ValueId> {
        let mut v: Vec<ValueId> = Vec::new();
        for (_, t) in &self.terms {
            if !v.contains(&t.value()) {
                v.push(t.value());
            }
        }
        v
    }

    /// Whether any term reads particular positions ([`Term::reads_positions`]).
    pub fn reads_positions(&self) -> bool {
        self.terms.iter().any(|(_, t)| t.reads_positions())
    }

    /// Whether any term couples pictures (diversity).
    pub fn couples(&self) -> bool {
        self.terms
            .iter()
            .any(|(_, t)| matches!(t, Term::Diversity { .. }))
    }
}

impl Add for Objective {
    type Output = Objective;
    fn add(mut self, rhs: Objective) -> Objective {
        self.terms.extend(rhs.terms);
        self
    }
}

impl Sub for Objective {
    type Output = Objective;
    fn sub(self, rhs: Objective) -> Objective {
        self + (-rhs)
    }
}

impl Neg for Objective {
    type Output = Objective;
    fn neg(self) -> Objective {
        -1.0 * self
    }
}

impl Mul<Objective> for f32 {
    type Output = Objective;
    fn mul(self, mut rhs: Objective) -> Objective {
        rhs.terms.iter_mut().for_each(|(w, _)| *w *= self);
        rhs
    }
}

/// `dot(a, d) · max(cos(a, d), 0.1)^pow` and its gradient with respect to `a` (horama's
/// `dot_cossim`, Lucid's `_dot_cossim`).
pub fn dot_cossim(a: &[f32], d: &[f32], pow: f32) -> (f32, Vec<f32>) {
    let dot: f64 = a.iter().zip(d).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na = a
        .iter()
        .map(|x| (*x as f64).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    let nd = d
        .iter()
        .map(|x| (*x as f64).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    let cos = dot / (na * nd);
    let floored = cos.max(0.1);
    let p = pow as f64;
    let factor = floored.powf(p);
    let value = dot * factor;
    // d(dot)/da = d; d(cos)/da = d/(|a||d|) − cos·a/|a|² (zero where the floor holds).
    let dcos = if cos > 0.1 {
        p * floored.powf(p - 1.0) * dot
    } else {
        0.0
    };
    let grad = a
        .iter()
        .zip(d)
        .map(|(&x, &y)| {
            let dc = y as f64 / (na * nd) - cos * x as f64 / (na * na);
            (y as f64 * factor + dcos * dc) as f32
        })
        .collect();
    (value as f32, grad)
}

/// Dimensions of one picture's slice of a value: `(per_item, channels, positions)`.
fn dims(shape: &[usize], what: &str) -> Result<(usize, usize, usize)> {
    match *shape {
        [_, c] => Ok((c, c, 1)),
        [_, c, h, w] => Ok((c * h * w, c, h * w)),
        [_, c, ref rest @ ..] => {
            let p: usize = rest.iter().product();
            Ok((c * p, c, p))
        }
        _ => Err(Error::Layer(format!(
            "{what} has shape {shape:?}; objectives read N x C (x H x W) values"
        ))),
    }
}

/// The values of every picture's objective and the gradient seeds for the backward pass.
pub struct Evaluation {
    /// One value per picture.
    pub values: Vec<f32>,
    /// d(Σ values)/d(value) for each value read.
    pub seeds: Vec<(ValueId, Tensor)>,
}

/// Evaluates `objectives[i]` on picture `i` of a batch whose values are `acts`; pictures with
/// the same `groups[i]` form one diversity group.
pub fn evaluate(
    objectives: &[&Objective],
    groups: &[usize],
    acts: &HashMap<ValueId, &Tensor>,
    names: &dyn Fn(ValueId) -> String,
) -> Result<Evaluation> {
    let n = objectives.len();
    let mut values = vec![0.0f32; n];
    let mut seeds: HashMap<ValueId, Vec<f32>> = HashMap::new();
    for (i, obj) in objectives.iter().enumerate() {
        for (weight, term) in obj.terms() {
            let id = term.value();
            let t = acts
                .get(&id)
                .ok_or_else(|| Error::Layer(format!("'{}' was not computed", names(id))))?;
            let (per, c, p) = dims(t.shape(), &format!("'{}'", names(id)))?;
            if t.shape()[0] != n {
                return Err(Error::Layer(format!(
                    "'{}' has batch {} for {n} pictures",
                    names(id),
                    t.shape()[0]
                )));
            }
            let a = &t.data()[i * per..(i + 1) * per];
            let seed = seeds.entry(id).or_insert_with(|| vec![0.0; t.len()]);
            let g = &mut seed[i * per..(i + 1) * per];
            let channel_ok = |k: usize| -> Result<()> {
                if k < c {
                    Ok(())
                } else {
                    Err(Error::Config(format!(
                        "channel {k} is out of range: '{}' has {c} channels (0..{c})",
                        names(id)
                    )))
                }
            };
            let position = |at: Option<(usize, usize)>| -> Result<usize> {
                let (h, w) = match t.shape() {
                    [_, _, h, w] => (*h, *w),
                    _ => (1, p),
                };
                let (y, x) = at.unwrap_or((h / 2, w / 2));
                if y >= h || x >= w {
                    return Err(Error::Config(format!(
                        "position ({x},{y}) is outside '{}' ({w}x{h} positions)",
                        names(id)
                    )));
                }
                Ok(y * w + x)
            };
            let v = match term {
                Term::Channel { channel, .. } | Term::Class { index: channel, .. } => {
                    channel_ok(*channel)?;
                    let plane = &a[channel * p..(channel + 1) * p];
                    let k = 1.0 / p as f32;
                    g[channel * p..(channel + 1) * p]
                        .iter_mut()
                        .for_each(|s| *s += weight * k);
                    plane.iter().map(|&v| v as f64).sum::<f64>() as f32 * k
                }
                Term::Neuron { channel, at, .. } => {
                    channel_ok(*channel)?;
                    let j = channel * p + position(*at)?;
                    g[j] += weight;
                    a[j]
                }
                Term::Direction { vector, at, .. } => {
                    if vector.len() != c {
                        return Err(Error::Config(format!(
                            "the direction has {} values; '{}' has {c} channels",
                            vector.len(),
                            names(id)
                        )));
                    }
                    let positions: Vec<usize> = match at {
                        Some(_) => vec![position(*at)?],
                        None => (0..p).collect(),
                    };
                    let k = 1.0 / positions.len() as f32;
                    let mut total = 0.0f32;
                    for &q in &positions {
                        let col: Vec<f32> = (0..c).map(|ch| a[ch * p + q]).collect();
                        let (v, dg) = dot_cossim(&col, vector, COSSIM_POW);
                        total += v * k;
                        for ch in 0..c {
                            g[ch * p + q] += weight * k * dg[ch];
                        }
                    }
                    total
                }
                Term::Match { target, .. } | Term::Caricature { target, .. } => {
                    if target.len() != per {
                        return Err(Error::Config(format!(
                            "the target activations have {} values; '{}' has {per} per picture \
                             (the pictures must be made at the target image's size)",
                            target.len(),
                            names(id)
                        )));
                    }
                    let norm = target
                        .iter()
                        .map(|v| (*v as f64).powi(2))
                        .sum::<f64>()
                        .max(1e-12);
                    if matches!(term, Term::Match { .. }) {
                        let mut d2 = 0.0f64;
                        for j in 0..per {
                            let d = (a[j] - target[j]) as f64;
                            d2 += d * d;
                            g[j] += weight * (-2.0 * d / norm) as f32;
                        }
                        (-d2 / norm) as f32
                    } else {
                        let (v, dg) = dot_cossim(a, target, 1.0);
                        let k = (1.0 / norm) as f32;
                        g.iter_mut().zip(dg).for_each(|(s, d)| *s += weight * k * d);
                        v * k
                    }
                }
                Term::Diversity { .. } => {
                    let grams: Vec<(usize, Vec<f32>, f64)> = (0..n)
                        .filter(|&j| groups[j] == groups[i])
                        .map(|j| {
                            let (gm, norm) = gram(&t.data()[j * per..(j + 1) * per], c, p);
                            (j, gm, norm)
                        })
                        .collect();
                    let size = grams.len() as f32;
                    let own = grams
                        .iter()
                        .find(|(j, ..)| *j == i)
                        .expect("i is in its group");
                    // d value_i / d G_i = −Σ_{j≠i} G_j / size; the other pictures' values
                    // depend on G_i too, so the whole group's gradient on G_i is twice that.
                    let mut dg = vec![0.0f32; c * c];
                    let mut v = 0.0f32;
                    for (j, gm, _) in &grams {
                        if *j != i {
                            v -= own.1.iter().zip(gm).map(|(x, y)| x * y).sum::<f32>() / size;
                            dg.iter_mut()
                                .zip(gm)
                                .for_each(|(d, y)| *d -= 2.0 * y / size);
                        }
                    }
                    gram_adjoint(a, c, p, &own.1, own.2, &dg, *weight, g);
                    v
                }
            };
            values[i] += weight * v;
        }
    }
    let seeds = seeds
        .into_iter()
        .map(|(id, data)| {
            let shape = acts[&id].shape().to_vec();
            (
                id,
                Tensor::new(shape, data).expect("seed has the value's shape"),
            )
        })
        .collect();
    Ok(Evaluation { values, seeds })
}

/// The Gram matrix `F Fᵀ` of a `c × p` feature map, divided by its Frobenius norm, and that
/// norm.
fn gram(f: &[f32], c: usize, p: usize) -> (Vec<f32>, f64) {
    let mut m = vec![0.0f64; c * c];
    for i in 0..c {
        for j in i..c {
            let v: f64 = (0..p)
                .map(|q| f[i * p + q] as f64 * f[j * p + q] as f64)
                .sum();
            m[i * c + j] = v;
            m[j * c + i] = v;
        }
    }
    let norm = m.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    (m.iter().map(|v| (v / norm) as f32).collect(), norm)
}

/// Adds `weight ·` d/dF of a function of the normalised Gram matrix `gn` (gradient `dg`) to
/// `out`: through the normalisation, then `M = F Fᵀ`.
#[allow(clippy::too_many_arguments)]
fn gram_adjoint(
    f: &[f32],
    c: usize,
    p: usize,
    gn: &[f32],
    norm: f64,
    dg: &[f32],
    weight: f32,
    out: &mut [f32],
) {
    let inner: f64 = gn.iter().zip(dg).map(|(a, b)| *a as f64 * *b as f64).sum();
    let dm: Vec<f64> = gn
        .iter()
        .zip(dg)
        .map(|(g, d)| (*d as f64 - *g as f64 * inner) / norm)
        .collect();
    for i in 0..c {
        for q in 0..p {
            let mut acc = 0.0f64;
            for j in 0..c {
                acc += (dm[i * c + j] + dm[j * c + i]) * f[j * p + q] as f64;
            }
            out[i * p + q] += weight * acc as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Rng;

    /// Every term's seed against central finite differences of the batch's total value.
    #[test]
    fn every_term_gradient_matches_finite_differences() {
        let layer = ValueId(0);
        let (n, c, h, w) = (3, 4, 3, 5);
        let mut r = Rng::new(11);
        let data: Vec<f32> = (0..n * c * h * w).map(|_| r.normal()).collect();
        let target: Vec<f32> = (0..c * h * w).map(|_| r.normal()).collect();
        let vector: Vec<f32> = (0..c).map(|_| r.normal()).collect();
        let terms = vec![
            Term::Channel { layer, channel: 2 },
            Term::Neuron {
                layer,
                channel: 1,
                at: Some((2, 3)),
            },
            Term::Direction {
                layer,
                vector: vector.clone(),
                at: None,
            },
            Term::Direction {
                layer,
                vector,
                at: Some((1, 1)),
            },
            Term::Match {
                layer,
                target: target.clone(),
            },
            Term::Caricature { layer, target },
            Term::Diversity { layer },
        ];
        for term in terms {
            let obj = Objective::from(term.clone()) * 1.0;
            let objs = vec![&obj; n];
            let groups = vec![0; n];
            let total = |d: &[f32]| -> f64 {
                let t = Tensor::new(vec![n, c, h, w], d.to_vec()).unwrap();
                let acts = HashMap::from([(layer, &t)]);
                let e = evaluate(&objs, &groups, &acts, &|_| "x".into()).unwrap();
                e.values.iter().map(|&v| v as f64).sum()
            };
            let t = Tensor::new(vec![n, c, h, w], data.clone()).unwrap();
            let acts = HashMap::from([(layer, &t)]);
            let e = evaluate(&objs, &groups, &acts, &|_| "x".into()).unwrap();
            let seed = &e.seeds[0].1;
            for i in (0..data.len()).step_by(7) {
                let eps = 1e-2;
                let (mut a, mut b) = (data.clone(), data.clone());
                a[i] += eps;
                b[i] -= eps;
                let numeric = (total(&a) - total(&b)) / (2.0 * eps as f64);
                let analytic = seed.data()[i] as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3 * numeric.abs().max(1.0),
                    "{term:?} [{i}]: {numeric} vs {analytic}"
                );
            }
        }
    }

    impl Mul<f32> for Objective {
        type Output = Objective;
        fn mul(self, k: f32) -> Objective {
            k * self
        }
    }

    #[test]
    fn class_scores_of_vectors_and_errors_name_the_problem() {
        let value = ValueId(0);
        let t = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let acts = HashMap::from([(value, &t)]);
        let a = Objective::from(Term::Class { value, index: 2 });
        let b = Objective::from(Term::Class { value, index: 0 });
        let e = evaluate(&[&a, &b], &[0, 1], &acts, &|_| "logits".into()).unwrap();
        assert_eq!(e.values, vec![3.0, 4.0]);
        assert_eq!(e.seeds[0].1.data(), &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        let bad = Objective::from(Term::Class { value, index: 3 });
        let err = evaluate(&[&bad, &bad], &[0, 1], &acts, &|_| "logits".into());
        assert_eq!(
            err.err().unwrap().to_string(),
            "channel 3 is out of range: 'logits' has 3 channels (0..3)"
        );
    }
}
