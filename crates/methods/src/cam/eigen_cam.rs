//! Eigen-CAM (Muhammad and Yeasin, 2020): the first principal component of the activations, no
//! gradients and no class.

use super::{CamContext, CamMethod};
use crate::error::Result;
use crate::transform::Rng;

/// Eigen-CAM as pytorch-grad-cam's `get_2d_projection`: the activations as an `(H·W) × C`
/// matrix with each channel's mean removed, projected on its first right singular vector.
///
/// The singular vector's sign is arbitrary (pytorch-grad-cam leaves it to LAPACK); here it is
/// fixed as pytorch-grad-cam's `get_2d_projection_with_sign_correction` does: the projection is
/// negated when `|min| > |max|`, so the strongest response is positive. The map is the ReLU of
/// the projection. The same for every target class.
///
/// The singular vector comes from power iteration (in f64) on the smaller of the two Gram
/// matrices, `C × C` (`MᵀM`) or `HW × HW` (`MMᵀ`), which share their top eigenvalue; no
/// linear-algebra crate is involved.
#[derive(Clone, Copy, Debug, Default)]
pub struct EigenCam;

impl CamMethod for EigenCam {
    fn name(&self) -> &'static str {
        "eigencam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    /// The first principal direction (one value per channel), sign-corrected with the map.
    fn weights(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let (direction, _) = principal_component(ctx.activations, ctx.channels, ctx.plane());
        Ok(direction.into_iter().map(|v| v as f32).collect())
    }

    fn cam_image(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let (_, projection) = principal_component(ctx.activations, ctx.channels, ctx.plane());
        Ok(projection.into_iter().map(|v| v.max(0.0) as f32).collect())
    }
}

/// `(direction (C), projection (HW))` of the first principal component of the `C × HW`
/// activations `a`, sign-corrected so that `|max| ≥ |min|` of the projection.
pub(crate) fn principal_component(a: &[f32], c: usize, p: usize) -> (Vec<f64>, Vec<f64>) {
    // Centred channels: m[k·p + i] = A[k, i] − mean_i A[k, ·]; NaN counts as 0 (as upstream).
    let mut m: Vec<f64> = a
        .iter()
        .map(|&v| if v.is_nan() { 0.0 } else { v as f64 })
        .collect();
    for row in m.chunks_mut(p) {
        let mean = row.iter().sum::<f64>() / p as f64;
        row.iter_mut().for_each(|v| *v -= mean);
    }
    let mut direction = if p <= c {
        // u = top eigenvector of M·Mᵀ (p × p); v = Mᵀu / ‖Mᵀu‖.
        let mut g = vec![0.0f64; p * p];
        for row in m.chunks(p) {
            for i in 0..p {
                let ri = row[i];
                if ri != 0.0 {
                    for j in i..p {
                        g[i * p + j] += ri * row[j];
                    }
                }
            }
        }
        for i in 0..p {
            for j in 0..i {
                g[i * p + j] = g[j * p + i];
            }
        }
        let u = top_eigenvector(&g, p);
        let mut v: Vec<f64> = m
            .chunks(p)
            .map(|row| row.iter().zip(&u).map(|(a, b)| a * b).sum())
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    } else {
        // v = top eigenvector of MᵀM (c × c).
        let mut s = vec![0.0f64; c * c];
        for k in 0..c {
            let rk = &m[k * p..(k + 1) * p];
            for l in k..c {
                let rl = &m[l * p..(l + 1) * p];
                let d: f64 = rk.iter().zip(rl).map(|(a, b)| a * b).sum();
                s[k * c + l] = d;
                s[l * c + k] = d;
            }
        }
        top_eigenvector(&s, c)
    };
    let mut projection = vec![0.0f64; p];
    for (row, &vk) in m.chunks(p).zip(&direction) {
        if vk != 0.0 {
            projection
                .iter_mut()
                .zip(row)
                .for_each(|(acc, &x)| *acc += x * vk);
        }
    }
    let (min, max) = projection
        .iter()
        .fold((0.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if min.abs() > max.abs() {
        projection.iter_mut().for_each(|v| *v = -*v);
        direction.iter_mut().for_each(|v| *v = -*v);
    }
    (direction, projection)
}

/// Unit eigenvector of the largest eigenvalue of a symmetric positive semi-definite `n × n`
/// matrix, by power iteration from a fixed pseudo-random start (zero for a zero matrix).
fn top_eigenvector(g: &[f64], n: usize) -> Vec<f64> {
    let mut rng = Rng::new(0x5EED);
    let mut x: Vec<f64> = (0..n).map(|_| rng.uniform() as f64 - 0.5).collect();
    normalize(&mut x);
    // Convergence goes as (λ₂/λ₁)^t; bound the work for large matrices.
    let max_iters = (400_000_000 / (n * n).max(1)).clamp(200, 20_000);
    let mut y = vec![0.0f64; n];
    for _ in 0..max_iters {
        for (i, yi) in y.iter_mut().enumerate() {
            *yi = g[i * n..(i + 1) * n]
                .iter()
                .zip(&x)
                .map(|(a, b)| a * b)
                .sum();
        }
        if normalize(&mut y) == 0.0 {
            return vec![0.0; n];
        }
        let diff = y
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        std::mem::swap(&mut x, &mut y);
        if diff < 1e-12 {
            break;
        }
    }
    x
}

/// Scales `v` to unit length; returns the old length.
fn normalize(v: &mut [f64]) -> f64 {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rank-one map: every channel is a multiple of one spatial pattern plus a constant; both
    /// branches (`HW > C` and `HW <= C`) recover the centred pattern up to a positive factor.
    #[test]
    fn recovers_a_rank_one_pattern() {
        let pattern = [0.0f32, 1.0, 3.0, 1.0, 0.0, 2.0];
        let p = pattern.len();
        for scale in [
            &[1.0f32, -2.0, 0.5, 3.0][..],
            &[1.0, -2.0, 0.5, 3.0, 0.1, -0.7, 2.0, 1.5][..],
        ] {
            let c = scale.len();
            let a: Vec<f32> = (0..c)
                .flat_map(|k| pattern.iter().map(move |&v| v * scale[k] + k as f32))
                .collect();
            let (dir, proj) = principal_component(&a, c, p);
            let mean = pattern.iter().sum::<f32>() as f64 / p as f64;
            let centred: Vec<f64> = pattern.iter().map(|&v| v as f64 - mean).collect();
            let ratio = proj[2] / centred[2];
            assert!(ratio > 0.0, "sign corrected: the peak stays positive");
            for (x, y) in proj.iter().zip(&centred) {
                assert!(
                    (x - ratio * y).abs() < 1e-6 * ratio.abs(),
                    "{proj:?} vs {centred:?}"
                );
            }
            let norm: f64 = dir.iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn constant_map_projects_to_zero() {
        let (_, proj) = principal_component(&[2.0; 12], 3, 4);
        assert!(proj.iter().all(|&v| v == 0.0));
    }
}
