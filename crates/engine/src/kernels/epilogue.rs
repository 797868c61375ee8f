//! What happens to a value between its sum and its one write: the [`Epilogue`] every
//! convolution kernel takes (bias, clamping activation, gradient mask, residual addend), and
//! the loops that apply it to a row when a kernel cannot do it in registers.

use crate::runtime::cpu::Isa;

/// A clamping activation `min(max(x, lo), hi)`: ReLU is `lo = 0, hi = ∞`, ReLU6 is `Clip(0, 6)`.
///
/// Its derivative can be read from the output alone (1 strictly between the bounds, else 0),
/// which is what lets a convolution apply it in the same sweep and keep only the activated value.
///
/// ```
/// use convscope_engine::ops::Clamp;
/// let relu6 = Clamp { lo: 0.0, hi: 6.0 };
/// let mut v = [-1.0, 3.0, 7.0];
/// relu6.apply(&mut v);
/// assert_eq!(v, [0.0, 3.0, 6.0]);
/// assert!(relu6.passes(3.0) && !relu6.passes(6.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    /// Lower bound (may be -∞).
    pub lo: f32,
    /// Upper bound (may be +∞).
    pub hi: f32,
}

impl Clamp {
    /// Whether the derivative at output (or input) value `v` is 1.
    #[inline(always)]
    pub fn passes(&self, v: f32) -> bool {
        (v > self.lo) & (v < self.hi)
    }

    /// Zeroes `g[i]` wherever `x[i]` is not strictly between the bounds (on this CPU's fastest
    /// route).
    pub fn mask(&self, g: &mut [f32], x: &[f32]) {
        mask(Isa::host(), *self, g, x)
    }

    /// Applies the clamp to every value (NaN becomes `lo`, as `Relu`'s `max` does), on this
    /// CPU's fastest route.
    pub fn apply(&self, v: &mut [f32]) {
        bias_act(Isa::host(), v, None, Some(*self))
    }
}

/// What a convolution kernel applies to each output value between its sum and its write, in
/// this order: `+ bias[row]`, the clamp `act`, zero where the `mask` source fails its clamp
/// (a fused ReLU backward pass), `+ residual` (a residual `Add` fused into the convolution).
///
/// `mask` and `residual` are laid out as the output the kernel writes: the same index (from
/// the start of what the kernel was handed) in the source as in the output. `bias` has one
/// value per output channel (row of the product) of what the kernel was handed.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub act: Option<Clamp>,
    pub mask: Option<(&'a [f32], Clamp)>,
    pub residual: Option<&'a [f32]>,
}

impl<'a> Epilogue<'a> {
    /// The epilogue of a part of the output: rows from `row` on (for the bias) and values from
    /// `at` on (for the mask and residual sources).
    pub fn part(self, row: usize, at: usize) -> Epilogue<'a> {
        Epilogue {
            bias: self.bias.map(|b| &b[row..]),
            act: self.act,
            mask: self.mask.map(|(src, c)| (&src[at..], c)),
            residual: self.residual.map(|r| &r[at..]),
        }
    }

    /// Whether there is anything to apply at all.
    pub fn is_empty(&self) -> bool {
        self.bias.is_none() && self.act.is_none() && self.mask.is_none() && self.residual.is_none()
    }

    /// Applies the epilogue to `out`, one run of output values of channel `row` that starts at
    /// index `at` of the mask and residual sources: what a kernel does when its sums are
    /// already written (the portable GEMM route, the depthwise strips' mask).
    pub fn apply_row(&self, isa: Isa, out: &mut [f32], row: usize, at: usize) {
        bias_act(isa, out, self.bias.map(|b| b[row]), self.act);
        if let Some((src, clamp)) = self.mask {
            let n = out.len();
            mask(isa, clamp, out, &src[at..at + n]);
        }
        if let Some(r) = self.residual {
            let n = out.len();
            for (o, &v) in out.iter_mut().zip(&r[at..at + n]) {
                *o += v;
            }
        }
    }
}

/// Zeroes `g[i]` wherever `x[i]` is not strictly between the clamp's bounds.
pub(crate) fn mask(isa: Isa, clamp: Clamp, g: &mut [f32], x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512f() {
        // SAFETY: `isa` says the CPU has AVX-512F.
        return unsafe { mask_avx512(clamp, g, x) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa.avx2_fma() {
        // SAFETY: `isa` says the CPU has AVX2 and FMA.
        return unsafe { mask_avx2(clamp, g, x) };
    }
    let _ = isa;
    mask_generic(clamp, g, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn mask_avx512(clamp: Clamp, g: &mut [f32], x: &[f32]) {
    mask_generic(clamp, g, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mask_avx2(clamp: Clamp, g: &mut [f32], x: &[f32]) {
    mask_generic(clamp, g, x)
}

#[inline(always)]
fn mask_generic(clamp: Clamp, g: &mut [f32], x: &[f32]) {
    for (gv, &xv) in g.iter_mut().zip(x) {
        *gv = if clamp.passes(xv) { *gv } else { 0.0 };
    }
}

/// `v[i] = act(v[i] + bias)`: a convolution's epilogue, 16 values per step on AVX-512 and 8 on
/// AVX2 (the crate is compiled for baseline x86-64, where these loops would take 4 per step).
pub(crate) fn bias_act(isa: Isa, v: &mut [f32], bias: Option<f32>, act: Option<Clamp>) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512f() {
        // SAFETY: `isa` says the CPU has AVX-512F.
        return unsafe { bias_act_avx512(v, bias, act) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa.avx2_fma() {
        // SAFETY: `isa` says the CPU has AVX2 and FMA.
        return unsafe { bias_act_avx2(v, bias, act) };
    }
    let _ = isa;
    bias_act_generic(v, bias, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bias_act_avx512(v: &mut [f32], bias: Option<f32>, act: Option<Clamp>) {
    bias_act_generic(v, bias, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bias_act_avx2(v: &mut [f32], bias: Option<f32>, act: Option<Clamp>) {
    bias_act_generic(v, bias, act)
}

#[inline(always)]
fn bias_act_generic(v: &mut [f32], bias: Option<f32>, act: Option<Clamp>) {
    if let Some(b) = bias {
        v.iter_mut().for_each(|x| *x += b);
    }
    match act {
        None => {}
        Some(Clamp { lo, hi }) if hi == f32::INFINITY => {
            v.iter_mut().for_each(|x| *x = x.max(lo));
        }
        Some(Clamp { lo, hi }) => v.iter_mut().for_each(|x| *x = x.max(lo).min(hi)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row through the whole epilogue, on the vector and the portable routes alike: bias,
    /// clamp (NaN to `lo`), mask by the source's open interval, residual last.
    #[test]
    fn rows_get_bias_clamp_mask_and_residual_in_order() {
        let clamp = Clamp { lo: 0.0, hi: 6.0 };
        let src: Vec<f32> = (0..40).map(|i| i as f32 / 4.0 - 2.0).collect();
        let residual: Vec<f32> = (0..40).map(|i| i as f32 * 0.5).collect();
        let bias = [0.0, 1.5];
        let epi = Epilogue {
            bias: Some(&bias),
            act: Some(clamp),
            mask: Some((&src, clamp)),
            residual: Some(&residual),
        };
        for isa in crate::kernels::simd::test_isas() {
            let mut row: Vec<f32> = (0..20).map(|i| i as f32 - 8.0).collect();
            row[3] = f32::NAN;
            epi.apply_row(isa, &mut row, 1, 10);
            for (j, &v) in row.iter().enumerate() {
                let x = if j == 3 { f32::NAN } else { j as f32 - 8.0 };
                // Not `clamp`: NaN must become `lo`, as the kernels' max/min make it.
                #[allow(clippy::manual_clamp)]
                let mut want = (x + 1.5).max(0.0).min(6.0);
                if !clamp.passes(src[10 + j]) {
                    want = 0.0;
                }
                want += residual[10 + j];
                assert_eq!(v, want, "{isa:?} value {j}");
            }
        }
        assert!(Epilogue::default().is_empty() && !epi.is_empty());
    }
}
