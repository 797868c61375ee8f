//! im2col / col2im: the columns a convolution's matrix product reads, and their adjoint.

use super::geometry::{valid_outputs, Axis};
#[cfg(target_arch = "x86_64")]
use super::lane_mask;
use crate::runtime::cpu::Isa;

/// Fills `col` (rows `c·kh·kw`, `cols` columns starting at output position `p0`) from one image
/// `x` of `channels × h.input × w.input`.
///
/// Each row is built from runs of one output row: the valid middle is a copy (contiguous for
/// stride 1) and the padded ends are zeros, so the loop has no per-element bounds test.
#[allow(clippy::too_many_arguments)]
pub(crate) fn im2col_tile(
    isa: Isa,
    x: &[f32],
    channels: usize,
    h: &Axis,
    w: &Axis,
    p0: usize,
    cols: usize,
    col: &mut [f32],
) {
    let kk = h.kernel * w.kernel;
    let ranges: Vec<(usize, usize)> = (0..w.kernel).map(|kj| valid_outputs(w, kj)).collect();
    for c in 0..channels {
        let xc = &x[c * h.input * w.input..(c + 1) * h.input * w.input];
        for ki in 0..h.kernel {
            for (kj, &(lo, hi)) in ranges.iter().enumerate() {
                let row = (c * kk + ki * w.kernel + kj) * cols;
                let dst = &mut col[row..row + cols];
                let (mut oh, mut ow) = (p0 / w.output, p0 % w.output);
                let mut t = 0;
                while t < cols {
                    let run = (w.output - ow).min(cols - t);
                    let out = &mut dst[t..t + run];
                    match h.source(oh, ki) {
                        None => out.fill(0.0),
                        Some(ih) => {
                            // Outputs ow..ow+run of this row; valid ones are lo..hi.
                            let (a, b) = (lo.clamp(ow, ow + run), hi.clamp(ow, ow + run));
                            out[..a - ow].fill(0.0);
                            out[b - ow..].fill(0.0);
                            if a < b {
                                let base = ih * w.input + kj * w.dilation;
                                let first = base + a * w.stride - w.pad_begin;
                                let seg = &mut out[a - ow..b - ow];
                                if w.stride == 1 {
                                    seg.copy_from_slice(&xc[first..first + (b - a)]);
                                } else if w.stride == 2 {
                                    let n = b - a;
                                    copy_stride2(isa, &xc[first..first + 2 * n - 1], seg);
                                } else {
                                    for (u, d) in seg.iter_mut().enumerate() {
                                        *d = xc[first + u * w.stride];
                                    }
                                }
                            }
                        }
                    }
                    t += run;
                    ow = 0;
                    oh += 1;
                }
            }
        }
    }
}

/// `dst[u] = src[2u]` for every `u` (`src` holds `2·dst.len() − 1` values or more): the
/// stride-2 rows of [`im2col_tile`], 16 values per permute on AVX-512 (a scalar loop made the
/// im2col of EfficientNet's stride-2 stem slower than its product).
pub(crate) fn copy_stride2(isa: Isa, src: &[f32], dst: &mut [f32]) {
    assert!(
        dst.is_empty() || src.len() > 2 * (dst.len() - 1),
        "stride-2 source"
    );
    #[cfg(target_arch = "x86_64")]
    if isa.avx512f() {
        // SAFETY: `isa` says the CPU has AVX-512F; sizes asserted above.
        return unsafe { copy_stride2_avx512(src, dst) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa.avx2() {
        // SAFETY: `isa` says the CPU has AVX2.
        return unsafe { copy_stride2_avx2(src, dst) };
    }
    let _ = isa;
    copy_stride2_generic(src, dst)
}

#[inline(always)]
fn copy_stride2_generic(src: &[f32], dst: &mut [f32]) {
    // Pairs, so that the compiler sees whole vectors of them (and no bounds test per value).
    for (d, pair) in dst.iter_mut().zip(src.chunks(2)) {
        *d = pair[0];
    }
}

/// [`copy_stride2`] on AVX2: two loads of 8 source values, the even ones of each 128-bit half
/// picked by one in-lane shuffle and put in order by one 64-bit permute, then the pair loop for
/// the last outputs. The pair loop alone, compiled for AVX2, was 31 % of EfficientNet's
/// stride-2 stem on one thread (perf; its product 53 %).
///
/// # Safety
/// AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_stride2_avx2(src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    // Whole vectors while all 16 source values under 8 outputs exist.
    let whole = (src.len() / 16).min(dst.len() / 8);
    for u in 0..whole {
        // SAFETY: source values 16u .. 16u + 16 ≤ src.len() and outputs 8u .. 8u + 8 ≤
        // dst.len() (`whole` above).
        unsafe {
            let a = _mm256_loadu_ps(src.as_ptr().add(16 * u));
            let b = _mm256_loadu_ps(src.as_ptr().add(16 * u + 8));
            // [a0 a2 b0 b2 | a4 a6 b4 b6] → [a0 a2 a4 a6 b0 b2 b4 b6].
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let ordered = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(
                _mm256_castps_pd(even),
            ));
            _mm256_storeu_ps(dst.as_mut_ptr().add(8 * u), ordered);
        }
    }
    copy_stride2_generic(&src[16 * whole..], &mut dst[8 * whole..])
}

/// [`copy_stride2`] on AVX-512: masked loads of the 32 source values under 16 outputs, the even
/// ones kept by one permute, a masked store.
///
/// # Safety
/// AVX-512F; `src.len() ≥ 2·dst.len() − 1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn copy_stride2_avx512(src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let lanes = |n: usize| lane_mask(0, n as isize, 0);
    let (n, len) = (dst.len(), src.len());
    for u in (0..n).step_by(16) {
        let avail = len - 2 * u;
        // SAFETY: lanes past `src`'s end are masked off (not read); the store covers outputs
        // u .. min(u + 16, n) only.
        unsafe {
            let a0 = _mm512_maskz_loadu_ps(lanes(avail), src.as_ptr().add(2 * u));
            let a1 = _mm512_maskz_loadu_ps(
                lanes(avail.saturating_sub(16)),
                src.as_ptr().add(2 * u).wrapping_add(16),
            );
            let v = _mm512_permutex2var_ps(a0, even, a1);
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(u), lanes(n - u), v);
        }
    }
}

/// Adds the columns of `col` (rows `channels·kh·kw`, one column per output position) back into
/// the image gradient `dx` of one channel `c`: the adjoint of [`im2col_tile`].
pub(crate) fn col2im_channel(col: &[f32], c: usize, h: &Axis, w: &Axis, dx: &mut [f32]) {
    let p = h.output * w.output;
    let kk = h.kernel * w.kernel;
    for ki in 0..h.kernel {
        for kj in 0..w.kernel {
            let row = &col[(c * kk + ki * w.kernel + kj) * p..][..p];
            // Outputs lo..hi read inside the input at this tap: no per-element bounds test.
            let (lo, hi) = valid_outputs(w, kj);
            if lo >= hi {
                continue;
            }
            for oh in 0..h.output {
                let Some(ih) = h.source(oh, ki) else { continue };
                let dxrow = &mut dx[ih * w.input..(ih + 1) * w.input];
                let src = &row[oh * w.output + lo..oh * w.output + hi];
                let first = lo * w.stride + kj * w.dilation - w.pad_begin;
                if w.stride == 1 {
                    for (d, &g) in dxrow[first..first + (hi - lo)].iter_mut().zip(src) {
                        *d += g;
                    }
                } else {
                    for (u, &g) in src.iter().enumerate() {
                        dxrow[first + u * w.stride] += g;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the vector boundaries, on the vector and the portable routes.
    #[test]
    fn copy_stride2_takes_every_other_value_at_every_length() {
        for isa in crate::kernels::simd::test_isas() {
            for n in 0..50usize {
                for extra in 0..2 {
                    let src: Vec<f32> = (0..(2 * n).saturating_sub(1) + extra)
                        .map(|i| i as f32)
                        .collect();
                    let mut dst = vec![f32::NAN; n + 3];
                    copy_stride2(isa, &src, &mut dst[..n]);
                    for (u, &d) in dst[..n].iter().enumerate() {
                        assert_eq!(d, (2 * u) as f32, "{isa:?} n {n}, value {u}");
                    }
                    assert!(
                        dst[n..].iter().all(|v| v.is_nan()),
                        "{isa:?} n {n}: wrote past the end"
                    );
                }
            }
        }
    }
}
