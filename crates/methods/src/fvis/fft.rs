//! The 2-D real FFTs of the Fourier parameterisations: the inverse transform of a half spectrum
//! (what `torch.fft.irfft2` computes), its adjoint (which pulls a gradient on the picture back to
//! the spectrum) and the forward transform (for measuring spectra).
//!
//! All three are unnormalised; callers scale (`ortho`: `1/√(h·w)`, `backward`: `1/(h·w)`).

use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Plans for transforms of one picture size: `h` rows of `w` real values, whose half spectrum
/// has `h` rows of `w / 2 + 1` complex values.
pub struct Fft2 {
    h: usize,
    w: usize,
    row_inverse: Arc<dyn ComplexToReal<f32>>,
    row_forward: Arc<dyn RealToComplex<f32>>,
    col_inverse: Arc<dyn Fft<f32>>,
    col_forward: Arc<dyn Fft<f32>>,
}

impl std::fmt::Debug for Fft2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fft2({}x{})", self.h, self.w)
    }
}

impl Fft2 {
    /// Plans for `h`×`w` pictures (both at least 1).
    pub fn new(h: usize, w: usize) -> Fft2 {
        let mut real = RealFftPlanner::<f32>::new();
        let mut complex = FftPlanner::<f32>::new();
        Fft2 {
            h,
            w,
            row_inverse: real.plan_fft_inverse(w),
            row_forward: real.plan_fft_forward(w),
            col_inverse: complex.plan_fft_inverse(h),
            col_forward: complex.plan_fft_forward(h),
        }
    }

    /// Columns of the half spectrum (`w / 2 + 1`).
    pub fn half_width(&self) -> usize {
        self.w / 2 + 1
    }

    /// Weight of column `k` in the real inverse: 1 for the constant and (even `w`) the Nyquist
    /// column, which stand for themselves, 2 for the others, which also stand for their
    /// mirror images.
    fn column_weight(&self, k: usize) -> f32 {
        if k == 0 || (self.w.is_multiple_of(2) && k == self.w / 2) {
            1.0
        } else {
            2.0
        }
    }

    /// `out = irfft2(spec)` unnormalised: a complex inverse transform along the columns, then a
    /// real one along the rows. As in numpy and torch, the imaginary parts that a real signal
    /// cannot have (constant and Nyquist columns after the column transform) are ignored.
    ///
    /// `spec` is `h × (w/2+1)` row-major, `out` is `h × w`.
    pub fn inverse(&self, spec: &[Complex32], out: &mut [f32]) {
        let (h, w, wc) = (self.h, self.w, self.half_width());
        debug_assert_eq!(spec.len(), h * wc);
        debug_assert_eq!(out.len(), h * w);
        let mut cols = transpose(spec, h, wc);
        for col in cols.chunks_mut(h) {
            self.col_inverse.process(col);
        }
        let mut row = vec![Complex32::default(); wc];
        let mut scratch = self.row_inverse.make_scratch_vec();
        for (y, out_row) in out.chunks_mut(w).enumerate() {
            for (k, r) in row.iter_mut().enumerate() {
                *r = cols[k * h + y];
            }
            row[0].im = 0.0;
            if w.is_multiple_of(2) {
                row[wc - 1].im = 0.0;
            }
            self.row_inverse
                .process_with_scratch(&mut row, out_row, &mut scratch)
                .expect("lengths are planned");
        }
    }

    /// The adjoint of [`Fft2::inverse`] as a real-linear map of the real and imaginary parts:
    /// for a gradient `g` on the picture, the gradient on the spectrum (`h × (w/2+1)`).
    pub fn inverse_adjoint(&self, g: &[f32], out: &mut [Complex32]) {
        let (h, w, wc) = (self.h, self.w, self.half_width());
        debug_assert_eq!(g.len(), h * w);
        debug_assert_eq!(out.len(), h * wc);
        // Rows: the adjoint of the real inverse is the forward transform, each column weighted
        // by how often it appears in the full spectrum.
        let mut cols = vec![Complex32::default(); wc * h];
        let mut row_in = vec![0.0f32; w];
        let mut row_out = vec![Complex32::default(); wc];
        let mut scratch = self.row_forward.make_scratch_vec();
        for y in 0..h {
            row_in.copy_from_slice(&g[y * w..(y + 1) * w]);
            self.row_forward
                .process_with_scratch(&mut row_in, &mut row_out, &mut scratch)
                .expect("lengths are planned");
            for (k, v) in row_out.iter().enumerate() {
                cols[k * h + y] = v * self.column_weight(k);
            }
        }
        // Columns: the adjoint of the complex inverse is the forward transform.
        for col in cols.chunks_mut(h) {
            self.col_forward.process(col);
        }
        for k in 0..wc {
            for y in 0..h {
                out[y * wc + k] = cols[k * h + y];
            }
        }
    }

    /// `out = rfft2(x)` unnormalised (`h × (w/2+1)`), as numpy's `rfft2`.
    pub fn forward(&self, x: &[f32], out: &mut [Complex32]) {
        let (h, w, wc) = (self.h, self.w, self.half_width());
        let mut cols = vec![Complex32::default(); wc * h];
        let mut row_in = vec![0.0f32; w];
        let mut row_out = vec![Complex32::default(); wc];
        let mut scratch = self.row_forward.make_scratch_vec();
        for y in 0..h {
            row_in.copy_from_slice(&x[y * w..(y + 1) * w]);
            self.row_forward
                .process_with_scratch(&mut row_in, &mut row_out, &mut scratch)
                .expect("lengths are planned");
            for (k, v) in row_out.iter().enumerate() {
                cols[k * h + y] = *v;
            }
        }
        for col in cols.chunks_mut(h) {
            self.col_forward.process(col);
        }
        for k in 0..wc {
            for y in 0..h {
                out[y * wc + k] = cols[k * h + y];
            }
        }
    }
}

/// `rows × cols` row-major to column-major.
fn transpose(x: &[Complex32], rows: usize, cols: usize) -> Vec<Complex32> {
    let mut t = vec![Complex32::default(); rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = x[r * cols + c];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Rng;

    /// The inverse against the definition, on odd and even sizes.
    #[test]
    fn inverse_matches_the_definition() {
        for (h, w) in [(4, 6), (5, 7), (3, 4), (1, 5)] {
            let plan = Fft2::new(h, w);
            let wc = plan.half_width();
            let mut r = Rng::new(1);
            let spec: Vec<Complex32> = (0..h * wc)
                .map(|_| Complex32::new(r.normal(), r.normal()))
                .collect();
            let mut out = vec![0.0; h * w];
            plan.inverse(&spec, &mut out);
            for y in 0..h {
                for x in 0..w {
                    // Column transform, then the Hermitian row sum with the ignored parts.
                    let mut acc = 0.0f64;
                    for k in 0..wc {
                        let mut col = (0.0f64, 0.0f64);
                        for ky in 0..h {
                            let a = 2.0 * std::f64::consts::PI * (ky * y) as f64 / h as f64;
                            let s = spec[ky * wc + k];
                            col.0 += s.re as f64 * a.cos() - s.im as f64 * a.sin();
                            col.1 += s.re as f64 * a.sin() + s.im as f64 * a.cos();
                        }
                        let b = 2.0 * std::f64::consts::PI * (k * x) as f64 / w as f64;
                        let term = col.0 * b.cos() - col.1 * b.sin();
                        acc += plan.column_weight(k) as f64 * term;
                    }
                    let got = out[y * w + x] as f64;
                    assert!(
                        (got - acc).abs() < 1e-4 * (1.0 + acc.abs()),
                        "{h}x{w} ({y},{x}): {got} vs {acc}"
                    );
                }
            }
        }
    }

    /// ⟨inverse(s), g⟩ = ⟨s, adjoint(g)⟩ (real inner products of real and imaginary parts).
    #[test]
    fn adjoint_is_exact() {
        for (h, w) in [(4, 6), (5, 7), (8, 8), (2, 3)] {
            let plan = Fft2::new(h, w);
            let wc = plan.half_width();
            let mut r = Rng::new(2);
            let spec: Vec<Complex32> = (0..h * wc)
                .map(|_| Complex32::new(r.normal(), r.normal()))
                .collect();
            let g: Vec<f32> = (0..h * w).map(|_| r.normal()).collect();
            let mut img = vec![0.0; h * w];
            plan.inverse(&spec, &mut img);
            let mut back = vec![Complex32::default(); h * wc];
            plan.inverse_adjoint(&g, &mut back);
            let lhs: f64 = img
                .iter()
                .zip(&g)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = spec
                .iter()
                .zip(&back)
                .map(|(a, b)| a.re as f64 * b.re as f64 + a.im as f64 * b.im as f64)
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{h}x{w}: {lhs} vs {rhs}"
            );
        }
    }

    /// forward then inverse gives back the picture times h·w.
    #[test]
    fn forward_inverts() {
        let (h, w) = (6, 9);
        let plan = Fft2::new(h, w);
        let mut r = Rng::new(3);
        let x: Vec<f32> = (0..h * w).map(|_| r.normal()).collect();
        let mut spec = vec![Complex32::default(); h * plan.half_width()];
        plan.forward(&x, &mut spec);
        let mut back = vec![0.0; h * w];
        plan.inverse(&spec, &mut back);
        for (a, b) in x.iter().zip(&back) {
            assert!((a * (h * w) as f32 - b).abs() < 1e-3, "{a} {b}");
        }
    }
}
