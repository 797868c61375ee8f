//! Random transformations applied to the image at each ascent step (Lucid's "transformation
//! robustness"), each with its adjoint so the gradient flows back to the untransformed image.

/// A small deterministic generator (SplitMix64): same seed, same sequence, on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Standard normal (Box–Muller on two uniform draws of 53 bits).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
    /// Uniform integer in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Uniform integer in `[-r, r]`.
    pub fn offset(&mut self, r: usize) -> isize {
        if r == 0 {
            0
        } else {
            (self.next_u64() % (2 * r as u64 + 1)) as isize - r as isize
        }
    }
}

/// One sampled transformation of one image: a cyclic shift, then scale and rotation about the
/// centre (bilinear, edges clamped).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warp {
    /// Shift in pixels along y and x.
    pub shift: (isize, isize),
    /// Scale factor (1 = none).
    pub scale: f32,
    /// Rotation in radians.
    pub angle: f32,
}

impl Warp {
    /// The identity transformation.
    pub const IDENTITY: Warp = Warp {
        shift: (0, 0),
        scale: 1.0,
        angle: 0.0,
    };

    fn is_affine_identity(&self) -> bool {
        self.scale == 1.0 && self.angle == 0.0
    }

    /// For output pixel (y, x): the four source taps and weights.
    fn taps(&self, h: usize, w: usize, y: usize, x: usize) -> [(usize, f32); 4] {
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let (s, c) = self.angle.sin_cos();
        let (dy, dx) = (y as f32 - cy, x as f32 - cx);
        // Inverse map: rotate by -angle, divide by scale.
        let sy = (c * dy - s * dx) / self.scale + cy;
        let sx = (s * dy + c * dx) / self.scale + cx;
        let sy = sy.clamp(0.0, h as f32 - 1.0);
        let sx = sx.clamp(0.0, w as f32 - 1.0);
        let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
        let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
        let (fy, fx) = (sy - y0 as f32, sx - x0 as f32);
        [
            (y0 * w + x0, (1.0 - fy) * (1.0 - fx)),
            (y0 * w + x1, (1.0 - fy) * fx),
            (y1 * w + x0, fy * (1.0 - fx)),
            (y1 * w + x1, fy * fx),
        ]
    }

    fn roll_index(&self, h: usize, w: usize, y: usize, x: usize) -> usize {
        let sy = (y as isize - self.shift.0).rem_euclid(h as isize) as usize;
        let sx = (x as isize - self.shift.1).rem_euclid(w as isize) as usize;
        sy * w + sx
    }

    /// Applies the transformation to `channels` planes of `h`×`w`.
    pub fn apply(&self, src: &[f32], channels: usize, h: usize, w: usize) -> Vec<f32> {
        let p = h * w;
        let mut rolled = vec![0.0; src.len()];
        for c in 0..channels {
            for y in 0..h {
                for x in 0..w {
                    rolled[c * p + y * w + x] = src[c * p + self.roll_index(h, w, y, x)];
                }
            }
        }
        if self.is_affine_identity() {
            return rolled;
        }
        let mut out = vec![0.0; src.len()];
        for y in 0..h {
            for x in 0..w {
                let taps = self.taps(h, w, y, x);
                for c in 0..channels {
                    out[c * p + y * w + x] =
                        taps.iter().map(|&(i, wt)| wt * rolled[c * p + i]).sum();
                }
            }
        }
        out
    }

    /// The adjoint of [`Warp::apply`]: maps a gradient on the output back to the input.
    pub fn adjoint(&self, grad: &[f32], channels: usize, h: usize, w: usize) -> Vec<f32> {
        if *self == Warp::IDENTITY {
            return grad.to_vec();
        }
        let p = h * w;
        let g = if self.is_affine_identity() {
            grad.to_vec()
        } else {
            let mut acc = vec![0.0; grad.len()];
            for y in 0..h {
                for x in 0..w {
                    let taps = self.taps(h, w, y, x);
                    for c in 0..channels {
                        let gv = grad[c * p + y * w + x];
                        for &(i, wt) in &taps {
                            acc[c * p + i] += wt * gv;
                        }
                    }
                }
            }
            acc
        };
        let mut out = vec![0.0; grad.len()];
        for c in 0..channels {
            for y in 0..h {
                for x in 0..w {
                    out[c * p + self.roll_index(h, w, y, x)] += g[c * p + y * w + x];
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ⟨apply(x), g⟩ = ⟨x, adjoint(g)⟩ for random x and g: the adjoint is exact.
    #[test]
    fn adjoint_is_exact() {
        let mut r = Rng::new(7);
        let (c, h, w) = (2, 9, 11);
        let x: Vec<f32> = (0..c * h * w).map(|_| r.uniform()).collect();
        let g: Vec<f32> = (0..c * h * w).map(|_| r.uniform() - 0.5).collect();
        for warp in [
            Warp {
                shift: (2, -3),
                scale: 1.0,
                angle: 0.0,
            },
            Warp {
                shift: (1, 1),
                scale: 1.1,
                angle: 0.2,
            },
        ] {
            let y = warp.apply(&x, c, h, w);
            let gx = warp.adjoint(&g, c, h, w);
            let lhs: f64 = y
                .iter()
                .zip(&g)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = x
                .iter()
                .zip(&gx)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                "{warp:?}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
    }
}
