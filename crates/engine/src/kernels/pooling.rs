//! Pooling kernels on one plane: max pooling over windows that tile the plane, and the
//! backward pass of 2×2 max pooling (with a fused ReLU mask); the lane-wise sum of a global
//! average pool.

use std::mem::MaybeUninit;

use super::epilogue::Clamp;
use super::geometry::Axis;
use crate::runtime::cpu::Isa;

/// Windows that tile the axis without padding or dilation (VGG's 2×2 stride-2 pools): every
/// tap is inside the input, so the loops index directly.
pub(crate) fn plain_windows(a: &Axis) -> bool {
    a.pad_begin == 0 && a.dilation == 1 && a.stride == a.kernel && a.output * a.stride <= a.input
}

/// The running maximum of the general loop: a NaN wins, as in onnxruntime. Written with `|`
/// so that loops of it compile to vector compares and selects.
#[inline(always)]
fn pick(acc: f32, v: f32) -> f32 {
    if (v > acc) | v.is_nan() {
        v
    } else {
        acc
    }
}

/// Max pooling of one plane with [`plain_windows`] geometry (same results as the general loop).
pub(crate) fn max_plain(xp: &[f32], o: &mut [f32], h: &Axis, w: &Axis) {
    if h.kernel == 2 && w.kernel == 2 {
        // VGG's 2×2 windows: four loads and three vector selects per output.
        let ow_n = w.output;
        for (oh, orow) in o.chunks_exact_mut(ow_n).enumerate().take(h.output) {
            let r0 = &xp[2 * oh * w.input..][..2 * ow_n];
            let r1 = &xp[(2 * oh + 1) * w.input..][..2 * ow_n];
            for (i, ov) in orow.iter_mut().enumerate() {
                *ov = pick(
                    pick(pick(r0[2 * i], r0[2 * i + 1]), r1[2 * i]),
                    r1[2 * i + 1],
                );
            }
        }
        return;
    }
    for oh in 0..h.output {
        let orow = &mut o[oh * w.output..(oh + 1) * w.output];
        orow.fill(f32::NEG_INFINITY);
        for ki in 0..h.kernel {
            let xrow = &xp[(oh * h.stride + ki) * w.input..][..w.input];
            for (ow, ov) in orow.iter_mut().enumerate() {
                for &v in &xrow[ow * w.stride..ow * w.stride + w.kernel] {
                    if v > *ov || v.is_nan() {
                        *ov = v;
                    }
                }
            }
        }
    }
}

/// The backward pass of [`max_plain`]'s 2×2 windows: each window's gradient goes to its first
/// element equal to the maximum (as the general loop routes it). Windows do not overlap, so
/// every input element is written once, without branches.
///
/// `g` (one plane) may be uninitialised: every element is written, the rows and columns no
/// window covers (odd sizes) with zeros.
#[allow(clippy::too_many_arguments)]
pub(crate) fn max2x2_backward(
    isa: Isa,
    xp: &[f32],
    yp: &[f32],
    dy: &[f32],
    g: &mut [MaybeUninit<f32>],
    h: &Axis,
    w: &Axis,
    mask: Option<Clamp>,
) {
    let ow_n = w.output;
    assert_eq!(g.len(), h.input * w.input, "one input plane");
    // Rows below the last window, and in every row the columns right of it.
    g[2 * h.output * w.input..].fill(MaybeUninit::new(0.0));
    for row in g[..2 * h.output * w.input].chunks_mut(w.input) {
        row[2 * ow_n..].fill(MaybeUninit::new(0.0));
    }
    for oh in 0..h.output {
        let (top, bottom) = g[2 * oh * w.input..].split_at_mut(w.input);
        let (g0, g1) = (&mut top[..2 * ow_n], &mut bottom[..2 * ow_n]);
        let r0 = &xp[2 * oh * w.input..][..2 * ow_n];
        let r1 = &xp[(2 * oh + 1) * w.input..][..2 * ow_n];
        let (yr, dr) = (&yp[oh * ow_n..][..ow_n], &dy[oh * ow_n..][..ow_n]);
        // Windows before `done` were written by a vector route.
        let done = match () {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` says the CPU has AVX2.
            () if isa.avx2() => unsafe { max2x2_row_avx2(g0, g1, r0, r1, yr, dr, mask) },
            () => {
                let _ = isa;
                0
            }
        };
        max2x2_row(g0, g1, r0, r1, yr, dr, mask, done);
    }
}

/// One output row of [`max2x2_backward`] from window `from` on: `g0`/`g1` are the two input
/// rows' gradients, `r0`/`r1` the inputs, `yr`/`dr` the pooled values and their gradients.
#[allow(clippy::too_many_arguments)]
fn max2x2_row(
    g0: &mut [MaybeUninit<f32>],
    g1: &mut [MaybeUninit<f32>],
    r0: &[f32],
    r1: &[f32],
    yr: &[f32],
    dr: &[f32],
    mask: Option<Clamp>,
    from: usize,
) {
    let hit = |v: f32, t: f32| (v == t) | (v.is_nan() & t.is_nan());
    for i in from..yr.len() {
        let (t, d) = (yr[i], dr[i]);
        // The maximum's own clamp derivative, when masked.
        let d = match mask {
            Some(c) if !c.passes(t) => 0.0,
            _ => d,
        };
        let a = hit(r0[2 * i], t);
        let b = !a & hit(r0[2 * i + 1], t);
        let c = !(a | b) & hit(r1[2 * i], t);
        let e = !(a | b | c) & hit(r1[2 * i + 1], t);
        g0[2 * i].write(if a { d } else { 0.0 });
        g0[2 * i + 1].write(if b { d } else { 0.0 });
        g1[2 * i].write(if c { d } else { 0.0 });
        g1[2 * i + 1].write(if e { d } else { 0.0 });
    }
}

/// [`max2x2_row`] for 8 windows at a time; returns how many windows it did (a multiple of 8).
///
/// The loops above did not vectorise (the window pairs interleave): here each row's pairs are
/// split into even and odd elements with shuffles, the pooled values and gradients permuted to
/// the same order, and the four results interleaved back.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max2x2_row_avx2(
    g0: &mut [MaybeUninit<f32>],
    g1: &mut [MaybeUninit<f32>],
    r0: &[f32],
    r1: &[f32],
    yr: &[f32],
    dr: &[f32],
    mask: Option<Clamp>,
) -> usize {
    use std::arch::x86_64::*;
    let n = yr.len() / 8 * 8;
    assert!(dr.len() >= n && r0.len() >= 2 * n && r1.len() >= 2 * n);
    assert!(g0.len() >= 2 * n && g1.len() >= 2 * n);
    // SAFETY: every load and store below covers windows i..i+8 < n, inside the slices (checked
    // by the asserts above).
    unsafe {
        // Even/odd shuffles of two 8-float registers yield windows in the order 0,1,4,5,2,3,6,7.
        let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        let (lo, hi) = mask.map_or((f32::NEG_INFINITY, f32::INFINITY), |c| (c.lo, c.hi));
        let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        for i in (0..n).step_by(8) {
            let t = _mm256_permutevar8x32_ps(_mm256_loadu_ps(yr.as_ptr().add(i)), order);
            let mut d = _mm256_permutevar8x32_ps(_mm256_loadu_ps(dr.as_ptr().add(i)), order);
            if mask.is_some() {
                let pass = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(t, lo),
                    _mm256_cmp_ps::<_CMP_LT_OQ>(t, hi),
                );
                d = _mm256_and_ps(d, pass);
            }
            let t_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(t, t);
            let hit = |v: __m256| {
                _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_EQ_OQ>(v, t),
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v), t_nan),
                )
            };
            let (a0, b0) = (
                _mm256_loadu_ps(r0.as_ptr().add(2 * i)),
                _mm256_loadu_ps(r0.as_ptr().add(2 * i + 8)),
            );
            let (a1, b1) = (
                _mm256_loadu_ps(r1.as_ptr().add(2 * i)),
                _mm256_loadu_ps(r1.as_ptr().add(2 * i + 8)),
            );
            let (x00, x01) = (
                _mm256_shuffle_ps::<0x88>(a0, b0),
                _mm256_shuffle_ps::<0xDD>(a0, b0),
            );
            let (x10, x11) = (
                _mm256_shuffle_ps::<0x88>(a1, b1),
                _mm256_shuffle_ps::<0xDD>(a1, b1),
            );
            let ha = hit(x00);
            let hb = _mm256_andnot_ps(ha, hit(x01));
            let seen = _mm256_or_ps(ha, hb);
            let hc = _mm256_andnot_ps(seen, hit(x10));
            let he = _mm256_andnot_ps(_mm256_or_ps(seen, hc), hit(x11));
            let (e0, o0) = (_mm256_and_ps(ha, d), _mm256_and_ps(hb, d));
            let (e1, o1) = (_mm256_and_ps(hc, d), _mm256_and_ps(he, d));
            let (p0, p1) = (g0.as_mut_ptr().cast::<f32>(), g1.as_mut_ptr().cast::<f32>());
            _mm256_storeu_ps(p0.add(2 * i), _mm256_unpacklo_ps(e0, o0));
            _mm256_storeu_ps(p0.add(2 * i + 8), _mm256_unpackhi_ps(e0, o0));
            _mm256_storeu_ps(p1.add(2 * i), _mm256_unpacklo_ps(e1, o1));
            _mm256_storeu_ps(p1.add(2 * i + 8), _mm256_unpackhi_ps(e1, o1));
        }
    }
    n
}

/// `Σ v` in 16 interleaved partial sums (lanes a compiler can keep in one vector register),
/// added up at the end. One running sum is a chain of dependent adds, one per value: it made
/// EfficientNet's global pool of 1280 planes of 49 values take ~50 µs.
pub(crate) fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::lane_sum;

    /// Every length around the 16-lane boundaries, against an f64 sum.
    #[test]
    fn lane_sum_adds_every_value() {
        for n in 0..70 {
            let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let want: f64 = v.iter().map(|&x| x as f64).sum();
            assert!((lane_sum(&v) as f64 - want).abs() < 1e-5, "length {n}");
        }
    }
}
