//! Parameterisations: how a vector of free parameters becomes a picture, and how a gradient on
//! the picture flows back to the parameters.
//!
//! * [`Pixel`]: the walk-through's: the parameters are the pixels (0..255), shown after the
//!   walk-through's deprocessing.
//! * [`Fourier`]: Lucid's: a half spectrum scaled by `1/f^decay`, `irfft2` (`ortho`) / 4,
//!   colours recorrelated ([`COLOR_CORRELATION`]), then a sigmoid.
//! * [`Maco`]: MaCo's (Fel et al. 2023): only the phase is free; the magnitude is a fixed
//!   natural-image spectrum ([`super::spectrum::Spectrum`]). Phase standardised, `irfft2`
//!   (`backward`), standardised, colours recorrelated, sigmoid.
//!
//! Pictures are planar RGB `3 × h × w` with values on the unit scale (0..1).

use rayon::prelude::*;
use rustfft::num_complex::Complex32;

use super::fft::Fft2;
use super::spectrum::Spectrum;
use super::Planes;
use crate::transform::Rng;

/// Lucid's colour correlation matrix (square root of the ImageNet colour covariance, from its
/// SVD), columns scaled so the largest has norm 1. `rgb = M · x` at every pixel.
pub const COLOR_CORRELATION: [[f32; 3]; 3] = color_correlation();

const fn color_correlation() -> [[f32; 3]; 3] {
    let m = [
        [0.26f64, 0.09, 0.02],
        [0.27, 0.00, -0.05],
        [0.27, -0.09, 0.03],
    ];
    // The largest column norm is column 0's: √(0.26² + 0.27² + 0.27²). `sqrt` is not const;
    // the value is checked against the formula in the tests.
    let norm = 0.461_952_378_024_066_8f64;
    let mut out = [[0.0f32; 3]; 3];
    let mut i = 0;
    while i < 3 {
        let mut j = 0;
        while j < 3 {
            out[i][j] = (m[i][j] / norm) as f32;
            j += 1;
        }
        i += 1;
    }
    out
}

/// How free parameters become a picture.
pub trait Parameterization: Send + Sync {
    /// `(height, width)` of the picture.
    fn size(&self) -> (usize, usize);
    /// Number of parameters of one picture.
    fn len(&self) -> usize;
    /// Whether there are no parameters (never, for a picture of at least one pixel).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Starting parameters drawn from `rng`.
    fn init(&self, rng: &mut Rng) -> Vec<f32>;
    /// The picture (`3 × h × w`, unit scale) the parameters stand for.
    fn image(&self, params: &[f32]) -> Planes;
    /// The gradient on the parameters from the gradient `grad` on [`Parameterization::image`].
    fn pull_back(&self, params: &[f32], grad: &Planes) -> Vec<f32>;
    /// The picture as shown (0..255 per channel, `h × w × 3` interleaved).
    fn display(&self, params: &[f32]) -> Vec<f32> {
        let img = self.image(params);
        interleave(&img, |v| v.clamp(0.0, 1.0) * 255.0)
    }
}

/// `3 × h × w` planar to `h × w × 3` interleaved, mapping each value.
pub(crate) fn interleave(img: &Planes, f: impl Fn(f32) -> f32) -> Vec<f32> {
    let p = img.height * img.width;
    let mut out = vec![0.0; p * 3];
    for j in 0..p {
        for k in 0..3 {
            out[j * 3 + k] = f(img.data[k.min(img.channels - 1) * p + j]);
        }
    }
    out
}

/// The walk-through's parameterisation: the parameters are the pixel values (0..255 scale),
/// starting from uniform noise · 20 + 128; the picture is them / 255, unclipped; shown with the
/// walk-through's deprocessing (`(x − mean)/(std + 1e-5)·0.1 + 0.5`, clipped).
#[derive(Clone, Debug)]
pub struct Pixel {
    /// `(height, width)`.
    pub size: (usize, usize),
}

impl Parameterization for Pixel {
    fn size(&self) -> (usize, usize) {
        self.size
    }
    fn len(&self) -> usize {
        3 * self.size.0 * self.size.1
    }
    fn init(&self, rng: &mut Rng) -> Vec<f32> {
        (0..self.len())
            .map(|_| rng.uniform() * 20.0 + 128.0)
            .collect()
    }
    fn image(&self, params: &[f32]) -> Planes {
        Planes::new(
            3,
            self.size.0,
            self.size.1,
            params.iter().map(|v| v / 255.0).collect(),
        )
    }
    fn pull_back(&self, _params: &[f32], grad: &Planes) -> Vec<f32> {
        grad.data.iter().map(|g| g / 255.0).collect()
    }
    fn display(&self, params: &[f32]) -> Vec<f32> {
        let (h, w) = self.size;
        crate::filters::deprocess(params, 3, h, w).data
    }
}

/// Lucid's Fourier parameterisation (Lucent's `param.image(w, h, fft=True, decorrelate=True)`).
///
/// Parameters: for each colour, a half spectrum of `h × (w/2+1)` complex values stored as
/// (real, imaginary) pairs, drawn from N(0, `sd`²). Picture: each frequency scaled by
/// `1/max(f, 1/max(h, w))^decay` (`f` in cycles per pixel), `irfft2` with `ortho`
/// normalisation, divided by 4, colours recorrelated when `decorrelate`, then a sigmoid.
#[derive(Debug)]
pub struct Fourier {
    size: (usize, usize),
    decorrelate: bool,
    sd: f32,
    scale: Vec<f32>,
    plan: Fft2,
}

/// Lucid's `rfft2d_freqs`: `√(fx² + fy²)` in cycles per pixel for the half spectrum.
pub fn rfft2d_freqs(h: usize, w: usize) -> Vec<f32> {
    let freq = |k: usize, n: usize| -> f64 {
        // numpy's fftfreq: 0, 1, …, ⌈n/2⌉−1, −⌊n/2⌋, …, −1, over n.
        let k = if k < n.div_ceil(2) {
            k as f64
        } else {
            k as f64 - n as f64
        };
        k / n as f64
    };
    let wc = w / 2 + 1;
    let mut out = Vec::with_capacity(h * wc);
    for y in 0..h {
        let fy = freq(y, h);
        for x in 0..wc {
            let fx = freq(x, w);
            out.push((fx * fx + fy * fy).sqrt() as f32);
        }
    }
    out
}

impl Fourier {
    /// Lucid's: decay 1, sd 0.01, decorrelated colours.
    pub fn lucid(size: (usize, usize)) -> Fourier {
        Fourier::new(size, 1.0, 0.01, true)
    }

    /// A Fourier parameterisation of `size` with `1/f^decay` scaling.
    pub fn new(size: (usize, usize), decay: f32, sd: f32, decorrelate: bool) -> Fourier {
        let (h, w) = size;
        let floor = 1.0 / h.max(w) as f64;
        let scale = rfft2d_freqs(h, w)
            .into_iter()
            .map(|f| (1.0 / (f as f64).max(floor).powf(decay as f64)) as f32)
            .collect();
        Fourier {
            size,
            decorrelate,
            sd,
            scale,
            plan: Fft2::new(h, w),
        }
    }

    /// The frequency scale of every half-spectrum entry (`h × (w/2+1)`).
    pub fn scale(&self) -> &[f32] {
        &self.scale
    }

    /// The picture before colour recorrelation and sigmoid.
    fn spatial(&self, params: &[f32]) -> Planes {
        let (h, w) = self.size;
        let n = self.scale.len();
        let norm = 1.0 / ((h * w) as f32).sqrt() / 4.0;
        let mut data = vec![0.0; 3 * h * w];
        data.par_chunks_mut(h * w).enumerate().for_each(|(c, out)| {
            let spec: Vec<Complex32> = (0..n)
                .map(|i| {
                    let j = 2 * (c * n + i);
                    Complex32::new(params[j], params[j + 1]) * self.scale[i]
                })
                .collect();
            self.plan.inverse(&spec, out);
            out.iter_mut().for_each(|v| *v *= norm);
        });
        Planes::new(3, h, w, data)
    }
}

impl Parameterization for Fourier {
    fn size(&self) -> (usize, usize) {
        self.size
    }
    fn len(&self) -> usize {
        3 * self.scale.len() * 2
    }
    fn init(&self, rng: &mut Rng) -> Vec<f32> {
        (0..self.len()).map(|_| rng.normal() * self.sd).collect()
    }
    fn image(&self, params: &[f32]) -> Planes {
        let mut x = self.spatial(params);
        if self.decorrelate {
            recorrelate(&mut x);
        }
        x.data.iter_mut().for_each(|v| *v = sigmoid(*v));
        x
    }
    fn pull_back(&self, params: &[f32], grad: &Planes) -> Vec<f32> {
        let (h, w) = self.size;
        let y = self.image(params);
        let mut g = Planes::new(
            3,
            h,
            w,
            grad.data
                .iter()
                .zip(&y.data)
                .map(|(g, y)| g * y * (1.0 - y))
                .collect(),
        );
        if self.decorrelate {
            recorrelate_adjoint(&mut g);
        }
        let n = self.scale.len();
        let norm = 1.0 / ((h * w) as f32).sqrt() / 4.0;
        let mut out = vec![0.0; self.len()];
        out.par_chunks_mut(2 * n).enumerate().for_each(|(c, o)| {
            let mut spec = vec![Complex32::default(); n];
            self.plan
                .inverse_adjoint(&g.data[c * h * w..(c + 1) * h * w], &mut spec);
            for (i, s) in spec.iter().enumerate() {
                let k = self.scale[i] * norm;
                o[2 * i] = s.re * k;
                o[2 * i + 1] = s.im * k;
            }
        });
        out
    }
}

/// MaCo's parameterisation (horama's `maco_preconditioner`): only the phase is free.
///
/// Parameters: the phase of each colour's half spectrum (`3 × h × (w/2+1)`), drawn from
/// N(0, 1). Picture: phase standardised, spectrum `magnitude · e^{iφ}`, `irfft2` (`backward`
/// normalisation), standardised over the whole picture, colours recorrelated, sigmoid.
/// (horama then maps the sigmoid to a model-space range; here the picture stays on the unit
/// scale and goes through the model's own preprocessing.)
#[derive(Debug)]
pub struct Maco {
    size: (usize, usize),
    magnitude: Vec<f32>,
    plan: Fft2,
}

/// What standardising kept for its backward pass.
struct Standardized {
    mean: f64,
    std: f64,
}

const STANDARDIZE_EPS: f64 = 1e-4;

/// horama's `standardize`: `(x − mean)/(std + 1e-4)` with the unbiased std, in place.
fn standardize(x: &mut [f32]) -> Standardized {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let std = var.sqrt();
    let d = std + STANDARDIZE_EPS;
    x.iter_mut()
        .for_each(|v| *v = ((*v as f64 - mean) / d) as f32);
    Standardized { mean, std }
}

/// The gradient through [`standardize`]: `x` is the input, `g` the gradient on the output
/// (overwritten with the gradient on the input).
fn standardize_adjoint(x: &[f32], s: &Standardized, g: &mut [f32]) {
    let n = x.len() as f64;
    let d = s.std + STANDARDIZE_EPS;
    let g_mean = g.iter().map(|&v| v as f64).sum::<f64>() / n;
    let g_dot = x
        .iter()
        .zip(g.iter())
        .map(|(&xv, &gv)| gv as f64 * (xv as f64 - s.mean))
        .sum::<f64>();
    let k = if s.std > 0.0 {
        g_dot / (d * d * (n - 1.0).max(1.0) * s.std)
    } else {
        0.0
    };
    for (gv, &xv) in g.iter_mut().zip(x) {
        *gv = ((*gv as f64 - g_mean) / d - k * (xv as f64 - s.mean)) as f32;
    }
}

impl Maco {
    /// A MaCo parameterisation of `size` with the magnitude of `spectrum` resampled to it.
    pub fn new(size: (usize, usize), spectrum: &Spectrum) -> Maco {
        let (h, w) = size;
        Maco {
            size,
            magnitude: spectrum.resampled(h, w),
            plan: Fft2::new(h, w),
        }
    }

    /// The fixed magnitude (`3 × h × (w/2+1)`).
    pub fn magnitude(&self) -> &[f32] {
        &self.magnitude
    }

    /// Forward pass, keeping what the backward pass needs.
    fn forward(&self, params: &[f32]) -> (Vec<f32>, Standardized, Planes, Standardized, Planes) {
        let (h, w) = self.size;
        let n = self.magnitude.len() / 3;
        let mut phase = params.to_vec();
        let s1 = standardize(&mut phase);
        let norm = 1.0 / (h * w) as f32;
        let mut spatial = vec![0.0; 3 * h * w];
        spatial
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(c, out)| {
                let spec: Vec<Complex32> = (0..n)
                    .map(|i| {
                        let (s, co) = phase[c * n + i].sin_cos();
                        Complex32::new(co, s) * self.magnitude[c * n + i]
                    })
                    .collect();
                self.plan.inverse(&spec, out);
                out.iter_mut().for_each(|v| *v *= norm);
            });
        let spatial = Planes::new(3, h, w, spatial);
        let mut z = spatial.clone();
        let s2 = standardize(&mut z.data);
        recorrelate(&mut z);
        z.data.iter_mut().for_each(|v| *v = sigmoid(*v));
        (phase, s1, spatial, s2, z)
    }
}

impl Parameterization for Maco {
    fn size(&self) -> (usize, usize) {
        self.size
    }
    fn len(&self) -> usize {
        self.magnitude.len()
    }
    fn init(&self, rng: &mut Rng) -> Vec<f32> {
        (0..self.len()).map(|_| rng.normal()).collect()
    }
    fn image(&self, params: &[f32]) -> Planes {
        self.forward(params).4
    }
    fn pull_back(&self, params: &[f32], grad: &Planes) -> Vec<f32> {
        let (h, w) = self.size;
        let n = self.magnitude.len() / 3;
        let (phase, s1, spatial, s2, y) = self.forward(params);
        let mut g = Planes::new(
            3,
            h,
            w,
            grad.data
                .iter()
                .zip(&y.data)
                .map(|(g, y)| g * y * (1.0 - y))
                .collect(),
        );
        recorrelate_adjoint(&mut g);
        standardize_adjoint(&spatial.data, &s2, &mut g.data);
        let norm = 1.0 / (h * w) as f32;
        let mut out = vec![0.0; self.len()];
        out.par_chunks_mut(n).enumerate().for_each(|(c, o)| {
            let mut spec = vec![Complex32::default(); n];
            self.plan
                .inverse_adjoint(&g.data[c * h * w..(c + 1) * h * w], &mut spec);
            for (i, s) in spec.iter().enumerate() {
                let (sn, co) = phase[c * n + i].sin_cos();
                let m = self.magnitude[c * n + i] * norm;
                // d/dφ of m·(cos φ + i sin φ), against the gradient's real and imaginary parts.
                o[i] = m * (-sn * s.re + co * s.im);
            }
        });
        standardize_adjoint(params, &s1, &mut out);
        out
    }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// `rgb = M · x` at every pixel ([`COLOR_CORRELATION`]).
pub fn recorrelate(x: &mut Planes) {
    mix(x, |i, j| COLOR_CORRELATION[i][j]);
}

/// The adjoint of [`recorrelate`]: `Mᵀ · g`.
pub fn recorrelate_adjoint(g: &mut Planes) {
    mix(g, |i, j| COLOR_CORRELATION[j][i]);
}

fn mix(x: &mut Planes, m: impl Fn(usize, usize) -> f32) {
    let p = x.height * x.width;
    let (r, rest) = x.data.split_at_mut(p);
    let (g, b) = rest.split_at_mut(p);
    for j in 0..p {
        let v = [r[j], g[j], b[j]];
        r[j] = m(0, 0) * v[0] + m(0, 1) * v[1] + m(0, 2) * v[2];
        g[j] = m(1, 0) * v[0] + m(1, 1) * v[1] + m(1, 2) * v[2];
        b[j] = m(2, 0) * v[0] + m(2, 1) * v[1] + m(2, 2) * v[2];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks `pull_back` against central finite differences of `⟨image(p), g⟩` on a few
    /// parameters.
    pub(crate) fn check_gradient(param: &dyn Parameterization, seed: u64, tol: f64) {
        let mut r = Rng::new(seed);
        let p = param.init(&mut r);
        let (h, w) = param.size();
        let g = Planes::new(3, h, w, (0..3 * h * w).map(|_| r.normal()).collect());
        let analytic = param.pull_back(&p, &g);
        let f = |q: &[f32]| -> f64 {
            param
                .image(q)
                .data
                .iter()
                .zip(&g.data)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        let mut worst = 0.0f64;
        for k in 0..12 {
            let i = (k * 7919 + 13) % p.len();
            let eps = 1e-2 * p[i].abs().max(0.05);
            let (mut a, mut b) = (p.clone(), p.clone());
            a[i] += eps;
            b[i] -= eps;
            let numeric = (f(&a) - f(&b)) / (2.0 * eps as f64);
            let err = (numeric - analytic[i] as f64).abs()
                / (numeric.abs().max(analytic[i].abs() as f64).max(1e-3));
            worst = worst.max(err);
        }
        assert!(worst < tol, "relative error {worst}");
    }

    #[test]
    fn color_matrix_is_lucids_normalised() {
        let n = (0.26f64 * 0.26 + 0.27 * 0.27 + 0.27 * 0.27).sqrt();
        assert!((COLOR_CORRELATION[0][0] as f64 - 0.26 / n).abs() < 1e-7);
        assert!((COLOR_CORRELATION[2][1] as f64 + 0.09 / n).abs() < 1e-7);
    }

    #[test]
    fn fourier_gradient_matches_finite_differences() {
        check_gradient(&Fourier::new((6, 8), 1.0, 0.5, true), 1, 2e-2);
        check_gradient(&Fourier::new((5, 7), 1.5, 0.5, false), 2, 2e-2);
    }

    #[test]
    fn maco_gradient_matches_finite_differences() {
        // A 1/f magnitude: the gradient's formula does not depend on the values, and the
        // measured spectrum's steep fall leaves f32 central differences of the smallest
        // terms too coarse to compare at 3% (the formula is the same for any magnitude).
        let (h, w) = (16usize, 16usize);
        let wc = w / 2 + 1;
        let data: Vec<f32> = (0..3 * h * wc)
            .map(|i| {
                let (y, x) = ((i / wc) % h, i % wc);
                let fy = y.min(h - y) as f32;
                1.0 / (fy * fy + (x * x) as f32).sqrt().max(1.0)
            })
            .collect();
        let spectrum =
            Spectrum::from_npy(&convscope_image::npy_bytes_f32(&[3, h, wc], &data)).unwrap();
        check_gradient(&Maco::new((8, 10), &spectrum), 3, 3e-2);
        check_gradient(&Maco::new((7, 9), &spectrum), 4, 3e-2);
    }

    #[test]
    fn pixel_gradient_is_one_over_255() {
        check_gradient(&Pixel { size: (4, 5) }, 5, 1e-3);
    }
}
