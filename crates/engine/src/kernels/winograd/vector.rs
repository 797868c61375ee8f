//! The Winograd input and output transforms on every vector path, written once over
//! [`Simd`] (AVX-512, AVX2 + FMA, NEON).
//!
//! Both work on up to `LANES` tiles of one tile row and one channel at a time, one tile per
//! vector lane, with every intermediate value in registers. The six input rows under the tiles
//! are loaded and split into their four column phases (plus the next tile's first two columns)
//! by [`Phases::load_phases`], then transformed in place; the output rows are transformed,
//! biased, clamped, interleaved back into columns ([`Phases::join_phases`]) and written with
//! masked stores where a group of tiles is cut by the image's edge. Only the phase split and
//! join differ between the paths (permutes on AVX-512, in-lane transposes and 128-bit inserts
//! on AVX2, `ld4` and transposes on NEON); the arithmetic is the same sequence of operations
//! on every path, so the AVX2 and AVX-512 results are bit-identical. The portable loops in the
//! parent module go through small row buffers; compiled for AVX2 they took about 3× the time
//! of these (design.md, "Winograd").

use std::ops::Range;

use super::{runs, ConvGeometry, Epilogue};
use crate::kernels::simd::{multiversion, Simd};
use crate::runtime::pool::SharedOut;

/// What the transforms need beyond [`Simd`]: a subtraction, a negated multiply-add, and the
/// split of an input row into the column phases of `LANES` tiles and its inverse.
///
/// # Safety
/// As [`Simd`]: only on a CPU with the path's extensions.
pub(super) trait Phases: Simd {
    /// Which columns of a row window [`Phases::load_phases`] may read, prepared once per
    /// group of tiles.
    type Window: Copy;
    /// `a − b`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `c − a · b` (one rounding).
    unsafe fn fnmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The window of the `4·LANES + 2` columns under `LANES` tiles of which only columns
    /// `lo ≤ i < hi` lie inside the image (the others read as zero, and are not touched).
    unsafe fn window(lo: isize, hi: isize) -> Self::Window;
    /// The column phases of the row window at `row` (columns `row[0 .. 4·LANES + 2]`):
    /// `out[p]` lane `t` = column `4t + p` for `p < 4`, `out[4]` and `out[5]` lane `t` =
    /// columns `4t + 4` and `4t + 5` (the next tile's phases 0 and 1). Reads only the columns
    /// of `w`.
    unsafe fn load_phases(row: *const f32, w: &Self::Window) -> [Self::V; 6];
    /// The inverse split for an output row: `y[p]` lane `t` is column `4t + p`; returns the
    /// `4·LANES` columns in order, `LANES` per vector.
    unsafe fn join_phases(y: [Self::V; 4]) -> [Self::V; 4];
}

/// `Bᵀ d` for six vectors (the rows of Bᵀ written out, as in the portable `apply_bt`).
#[inline(always)]
unsafe fn bt<S: Phases>(d: [S::V; 6]) -> [S::V; 6] {
    let [d0, d1, d2, d3, d4, d5] = d;
    // SAFETY: `S`'s extensions (the caller's contract).
    unsafe {
        let (two, four, five) = (S::splat(2.0), S::splat(4.0), S::splat(5.0));
        [
            S::fmadd(four, d0, S::fnmadd(five, d2, d4)),
            S::fnmadd(four, S::add(d1, d2), S::add(d3, d4)),
            S::fmadd(four, S::sub(d1, d2), S::sub(d4, d3)),
            S::fmadd(two, S::sub(d3, d1), S::sub(d4, d2)),
            S::fmadd(two, S::sub(d1, d3), S::sub(d4, d2)),
            S::fmadd(four, d1, S::fnmadd(five, d3, d5)),
        ]
    }
}

/// `Aᵀ m` for six vectors.
#[inline(always)]
unsafe fn at<S: Phases>(m: [S::V; 6]) -> [S::V; 4] {
    let [m0, m1, m2, m3, m4, m5] = m;
    // SAFETY: `S`'s extensions (the caller's contract).
    unsafe {
        let (s12, d12) = (S::add(m1, m2), S::sub(m1, m2));
        let (s34, d34) = (S::add(m3, m4), S::sub(m3, m4));
        [
            S::add(S::add(m0, s12), s34),
            S::fmadd(S::splat(2.0), d34, d12),
            S::fmadd(S::splat(4.0), s34, s12),
            S::add(S::fmadd(S::splat(8.0), d34, d12), m5),
        ]
    }
}

multiversion! {
    /// `V = Bᵀ d B` of tiles `first..first + count` and every channel, into 36 matrices
    /// `c × width` (as the portable `transform_input`).
    ///
    /// # Safety
    /// A vector path of this CPU; the slices must have the sizes `run_block` gives them.
    pub(super) unsafe fn transform_input_on(
        x: &[f32],
        g: &ConvGeometry,
        first: usize,
        count: usize,
        width: usize,
        v: &mut [f32],
    ) => transform_input
}

#[inline(always)]
unsafe fn transform_input<S: Phases>(
    x: &[f32],
    g: &ConvGeometry,
    first: usize,
    count: usize,
    width: usize,
    v: &mut [f32],
) {
    assert_eq!(x.len(), g.n * g.c * g.h.input * g.w.input);
    assert!(v.len() >= 36 * g.c * width && first + count <= g.tiles() && count <= width);
    let l = S::LANES;
    let plane = g.h.input * g.w.input;
    let vp = v.as_mut_ptr();
    for run in runs(g, first, count) {
        for t0 in (0..run.len).step_by(l) {
            let tiles = (run.len - t0).min(l);
            // Input columns start..start + span under these tiles (start < 0 in the padding).
            let start = (run.ox + 4 * t0) as isize - g.w.pad_begin as isize;
            let span = (4 * tiles + 2) as isize;
            let (i_lo, i_hi) = ((-start).max(0), span.min(g.w.input as isize - start));
            // SAFETY (this block): `S`'s extensions (the caller's contract). The window reads
            // only columns inside the image row `ir` of channel `ci`, which lies inside `x`
            // (asserted size); the stores write tiles col..col + tiles < width of rows of `v`
            // (asserted size), whole vectors only when all `LANES` tiles are this group's.
            unsafe {
                let window = S::window(i_lo, i_hi);
                let store = S::mask(0, tiles as isize);
                let col = run.col + t0;
                for ci in 0..g.c {
                    let src = x.as_ptr().add((run.img * g.c + ci) * plane);
                    // h[r][k]: input row r of every tile, transformed horizontally, component
                    // k (rows in the padding are zero). Built whole rather than zeroed and
                    // filled: a zeroed array of 36 vectors lives in memory, and was cleared by
                    // a call to memset per channel (5 % of a VGG16 gradient, perf).
                    let h: [[S::V; 6]; 6] = std::array::from_fn(|r| {
                        let ir = (run.oy + r) as isize - g.h.pad_begin as isize;
                        if ir < 0 || ir >= g.h.input as isize {
                            return [S::zero(); 6];
                        }
                        let row = src.wrapping_offset(ir * g.w.input as isize + start);
                        bt::<S>(S::load_phases(row, &window))
                    });
                    let by_component: [[S::V; 6]; 6] =
                        std::array::from_fn(|k| std::array::from_fn(|r| h[r][k]));
                    for (k, &hk) in by_component.iter().enumerate() {
                        for (i, &oi) in bt::<S>(hk).iter().enumerate() {
                            let at = vp.add(((i * 6 + k) * g.c + ci) * width + col);
                            if tiles == l {
                                S::store(at, oi);
                            } else {
                                S::store_masked(at, store, oi);
                            }
                        }
                    }
                }
            }
        }
    }
    // Columns past the last tile are multiplied too: keep them finite (zero).
    if count < width {
        for row in v[..36 * g.c * width].chunks_mut(width) {
            row[count..].fill(0.0);
        }
    }
}

multiversion! {
    /// `Y = Aᵀ M A` of tiles `first..first + count` and output channels `channels` (whose
    /// products alone `mm` holds), with the epilogue, written into the output (as the portable
    /// `transform_output`).
    ///
    /// # Safety
    /// A vector path of this CPU, and as `run_block`: `out` points to the `n × m × oh × ow`
    /// output, and no other thread writes these tiles during the call.
    pub(super) unsafe fn transform_output_on<'a>(
        mm: &[f32],
        g: &ConvGeometry,
        first: usize,
        count: usize,
        width: usize,
        channels: Range<usize>,
        out: SharedOut,
        epilogue: Epilogue<'a>,
    ) => transform_output
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn transform_output<S: Phases>(
    mm: &[f32],
    g: &ConvGeometry,
    first: usize,
    count: usize,
    width: usize,
    channels: Range<usize>,
    out: SharedOut,
    epilogue: Epilogue,
) {
    let ms = channels.len();
    assert!(mm.len() >= 36 * ms * width && first + count <= g.tiles() && count <= width);
    assert!(channels.end <= g.m);
    let Epilogue {
        bias, act, mask, ..
    } = epilogue;
    assert!(bias.is_none_or(|b| b.len() == g.m));
    assert!(mask.is_none_or(|(src, _)| src.len() == g.n * g.m * g.h.output * g.w.output));
    let l = S::LANES;
    let plane = g.h.output * g.w.output;
    for run in runs(g, first, count) {
        let rows = 4.min(g.h.output - run.oy);
        for t0 in (0..run.len).step_by(l) {
            let tiles = (run.len - t0).min(l);
            let ox = run.ox + 4 * t0;
            // Output columns of these tiles (the last one may be cut by the image's edge).
            let cols = (g.w.output - ox).min(4 * tiles) as isize;
            let col = run.col + t0;
            // SAFETY (this block): `S`'s extensions (the caller's contract). Loads read tiles
            // col..col + tiles ≤ width of rows of `mm` (asserted size), whole vectors only
            // when all `LANES` are this group's; stores and mask loads touch the `cols`
            // columns of output row oy + i of these tiles, which only this block writes (the
            // caller's contract) and which lie inside the output and the mask source.
            unsafe {
                let load = S::mask(0, tiles as isize);
                let stores: [S::M; 4] =
                    std::array::from_fn(|k| S::mask(0, cols - (l * k) as isize));
                for mi in channels.clone() {
                    // r[s][i]: row i of Aᵀ M for column s of every tile (built whole, as `h`
                    // of the input transform).
                    let r: [[S::V; 4]; 6] = std::array::from_fn(|s| {
                        at::<S>(std::array::from_fn(|q| {
                            let at = mm
                                .as_ptr()
                                .add(((q * 6 + s) * ms + mi - channels.start) * width + col);
                            if tiles == l {
                                S::load(at)
                            } else {
                                S::load_masked(load, at)
                            }
                        }))
                    });
                    let b = S::splat(bias.map_or(0.0, |b| b[mi]));
                    let by_row: [[S::V; 6]; 4] =
                        std::array::from_fn(|i| std::array::from_fn(|s| r[s][i]));
                    for (i, &ri) in by_row.iter().enumerate().take(rows) {
                        let y = at::<S>(ri).map(|v| {
                            let v = S::add(v, b);
                            match act {
                                Some(c) => S::min(S::max(v, S::splat(c.lo)), S::splat(c.hi)),
                                None => v,
                            }
                        });
                        let offset = (run.img * g.m + mi) * plane + (run.oy + i) * g.w.output + ox;
                        for (k, (&val, &keep_cols)) in
                            S::join_phases(y).iter().zip(&stores).enumerate()
                        {
                            let left = cols - (l * k) as isize;
                            if left <= 0 {
                                break;
                            }
                            let at = offset + l * k;
                            let whole = left >= l as isize;
                            let val = match mask {
                                Some((src, c)) => {
                                    let p = src.as_ptr().add(at);
                                    let s = if whole {
                                        S::load(p)
                                    } else {
                                        S::load_masked(keep_cols, p)
                                    };
                                    S::keep_between(val, s, S::splat(c.lo), S::splat(c.hi))
                                }
                                None => val,
                            };
                            if whole {
                                S::store(out.get().add(at), val);
                            } else {
                                S::store_masked(out.get().add(at), keep_cols, val);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Phases;
    use crate::kernels::lane_mask;
    use crate::kernels::simd::{Avx2, Avx512};

    impl Phases for Avx512 {
        /// The lanes of the five loads of a window.
        type Window = [u16; 5];

        #[inline(always)]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fnmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fnmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn window(lo: isize, hi: isize) -> [u16; 5] {
            std::array::from_fn(|j| lane_mask(lo, hi, 16 * j as isize))
        }
        #[inline(always)]
        unsafe fn load_phases(row: *const f32, w: &[u16; 5]) -> [__m512; 6] {
            unsafe {
                // Lanes outside the image are masked off: they are neither read nor faulted
                // on, and load as zero (the padding).
                let v: [__m512; 5] =
                    std::array::from_fn(|j| _mm512_maskz_loadu_ps(w[j], row.wrapping_add(16 * j)));
                // Phase p of tiles 0..8 from the first vector pair in lanes 0..8, phase p + 1
                // in 8..16.
                let idx = |p: i32| {
                    _mm512_setr_epi32(
                        p,
                        p + 4,
                        p + 8,
                        p + 12,
                        p + 16,
                        p + 20,
                        p + 24,
                        p + 28,
                        p + 1,
                        p + 5,
                        p + 9,
                        p + 13,
                        p + 17,
                        p + 21,
                        p + 25,
                        p + 29,
                    )
                };
                let (i01, i23) = (idx(0), idx(2));
                let lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
                let hi =
                    _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
                // Next tile's phase 0 (1): lanes shifted down by one, the last from the fifth
                // load's lane 0 (1).
                let next0 =
                    _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
                let next1 =
                    _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
                let a01 = _mm512_permutex2var_ps(v[0], i01, v[1]);
                let b01 = _mm512_permutex2var_ps(v[2], i01, v[3]);
                let a23 = _mm512_permutex2var_ps(v[0], i23, v[1]);
                let b23 = _mm512_permutex2var_ps(v[2], i23, v[3]);
                let p0 = _mm512_permutex2var_ps(a01, lo, b01);
                let p1 = _mm512_permutex2var_ps(a01, hi, b01);
                let p2 = _mm512_permutex2var_ps(a23, lo, b23);
                let p3 = _mm512_permutex2var_ps(a23, hi, b23);
                let p4 = _mm512_permutex2var_ps(p0, next0, v[4]);
                let p5 = _mm512_permutex2var_ps(p1, next1, v[4]);
                [p0, p1, p2, p3, p4, p5]
            }
        }
        #[inline(always)]
        unsafe fn join_phases(y: [__m512; 4]) -> [__m512; 4] {
            unsafe {
                let pd = |v: __m512| _mm512_castps_pd(v);
                let ps = |v: __m512d| _mm512_castpd_ps(v);
                // A 4×4 transpose of 32-bit values within 128-bit lanes, then of the lanes.
                let (ab_lo, ab_hi) = (
                    _mm512_unpacklo_ps(y[0], y[1]),
                    _mm512_unpackhi_ps(y[0], y[1]),
                );
                let (cd_lo, cd_hi) = (
                    _mm512_unpacklo_ps(y[2], y[3]),
                    _mm512_unpackhi_ps(y[2], y[3]),
                );
                let q0 = ps(_mm512_unpacklo_pd(pd(ab_lo), pd(cd_lo)));
                let q1 = ps(_mm512_unpackhi_pd(pd(ab_lo), pd(cd_lo)));
                let q2 = ps(_mm512_unpacklo_pd(pd(ab_hi), pd(cd_hi)));
                let q3 = ps(_mm512_unpackhi_pd(pd(ab_hi), pd(cd_hi)));
                let c0 = _mm512_shuffle_f32x4::<0x88>(q0, q1);
                let c1 = _mm512_shuffle_f32x4::<0xDD>(q0, q1);
                let c2 = _mm512_shuffle_f32x4::<0x88>(q2, q3);
                let c3 = _mm512_shuffle_f32x4::<0xDD>(q2, q3);
                [
                    _mm512_shuffle_f32x4::<0x88>(c0, c2),
                    _mm512_shuffle_f32x4::<0x88>(c1, c3),
                    _mm512_shuffle_f32x4::<0xDD>(c0, c2),
                    _mm512_shuffle_f32x4::<0xDD>(c1, c3),
                ]
            }
        }
    }

    /// The columns of one tile (four) of an AVX2 window that lie inside the image.
    #[inline(always)]
    unsafe fn quad_mask(lo: isize, hi: isize, first: isize) -> __m128i {
        unsafe {
            let iota = _mm_setr_epi32(0, 1, 2, 3);
            let lo = _mm_set1_epi32((lo - first).clamp(-1, 5) as i32 - 1);
            let hi = _mm_set1_epi32((hi - first).clamp(-1, 5) as i32);
            _mm_and_si128(_mm_cmpgt_epi32(iota, lo), _mm_cmpgt_epi32(hi, iota))
        }
    }

    impl Phases for Avx2 {
        /// Whether the whole window is inside the image (plain loads), else the columns
        /// inside of each tile's four: tiles 0..8, then the next tile's first two.
        type Window = (bool, [__m128i; 9]);

        #[inline(always)]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fnmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fnmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn window(lo: isize, hi: isize) -> (bool, [__m128i; 9]) {
            unsafe {
                let full = lo <= 0 && hi >= 34;
                let mut m = [_mm_setzero_si128(); 9];
                if !full {
                    for (t, mt) in m.iter_mut().enumerate() {
                        *mt = quad_mask(lo, hi, 4 * t as isize);
                    }
                }
                (full, m)
            }
        }
        #[inline(always)]
        unsafe fn load_phases(row: *const f32, w: &(bool, [__m128i; 9])) -> [__m256; 6] {
            unsafe {
                // One tile's four columns per 128-bit load, so that a vector holds tiles t and
                // t + 4 and the in-lane transposes below leave every phase in tile order
                // (a transpose of whole 256-bit rows would leave tiles 0, 2, 4, 6, 1, 3, 5, 7
                // and need a cross-lane permute per phase). Masked loads do not read (or
                // fault on) the lanes outside the image, which load as zero (the padding).
                let (full, m) = w;
                let q: [__m128; 9] = std::array::from_fn(|t| {
                    let p = row.wrapping_add(4 * t);
                    if !*full {
                        _mm_maskload_ps(p, m[t])
                    } else if t < 8 {
                        _mm_loadu_ps(p)
                    } else {
                        // Only the next tile's two columns: the window ends there.
                        _mm_castsi128_ps(_mm_loadl_epi64(p.cast()))
                    }
                });
                // v[j] = tiles j (low half) and j + 4 (high half).
                let v: [__m256; 5] = std::array::from_fn(|j| _mm256_set_m128(q[j + 4], q[j]));
                let (t0, t1) = (
                    _mm256_unpacklo_ps(v[0], v[1]),
                    _mm256_unpackhi_ps(v[0], v[1]),
                );
                let (t2, t3) = (
                    _mm256_unpacklo_ps(v[2], v[3]),
                    _mm256_unpackhi_ps(v[2], v[3]),
                );
                // Tiles 1..5 and 5..9: the next tile's phases 0, 1.
                let (n0, n1) = (
                    _mm256_unpacklo_ps(v[1], v[2]),
                    _mm256_unpacklo_ps(v[3], v[4]),
                );
                [
                    _mm256_shuffle_ps::<0x44>(t0, t2),
                    _mm256_shuffle_ps::<0xEE>(t0, t2),
                    _mm256_shuffle_ps::<0x44>(t1, t3),
                    _mm256_shuffle_ps::<0xEE>(t1, t3),
                    _mm256_shuffle_ps::<0x44>(n0, n1),
                    _mm256_shuffle_ps::<0xEE>(n0, n1),
                ]
            }
        }
        #[inline(always)]
        unsafe fn join_phases(y: [__m256; 4]) -> [__m256; 4] {
            unsafe {
                // In-lane 4×4 transposes: q[t] holds tile t's four columns (low half) and
                // tile t + 4's (high half); then the halves are regrouped in column order.
                let (ab_lo, ab_hi) = (
                    _mm256_unpacklo_ps(y[0], y[1]),
                    _mm256_unpackhi_ps(y[0], y[1]),
                );
                let (cd_lo, cd_hi) = (
                    _mm256_unpacklo_ps(y[2], y[3]),
                    _mm256_unpackhi_ps(y[2], y[3]),
                );
                let q0 = _mm256_shuffle_ps::<0x44>(ab_lo, cd_lo);
                let q1 = _mm256_shuffle_ps::<0xEE>(ab_lo, cd_lo);
                let q2 = _mm256_shuffle_ps::<0x44>(ab_hi, cd_hi);
                let q3 = _mm256_shuffle_ps::<0xEE>(ab_hi, cd_hi);
                [
                    _mm256_permute2f128_ps::<0x20>(q0, q1),
                    _mm256_permute2f128_ps::<0x20>(q2, q3),
                    _mm256_permute2f128_ps::<0x31>(q0, q1),
                    _mm256_permute2f128_ps::<0x31>(q2, q3),
                ]
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::Phases;
    use crate::kernels::simd::Neon;

    impl Phases for Neon {
        /// Columns `lo..hi` of the window lie inside the image.
        type Window = (isize, isize);

        #[inline(always)]
        unsafe fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vsubq_f32(a, b) }
        }
        #[inline(always)]
        unsafe fn fnmadd(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            unsafe { vfmsq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn window(lo: isize, hi: isize) -> (isize, isize) {
            (lo.max(0), hi.min(18))
        }
        #[inline(always)]
        unsafe fn load_phases(row: *const f32, w: &(isize, isize)) -> [float32x4_t; 6] {
            unsafe {
                // The 18 columns, through a zeroed copy where the window is cut by the
                // image's edge (NEON has no masked loads).
                let mut copy = [0.0f32; 20];
                let src = if *w == (0, 18) {
                    row
                } else {
                    for i in w.0..w.1.max(w.0) {
                        copy[i as usize] = *row.wrapping_offset(i);
                    }
                    copy.as_ptr()
                };
                let p = vld4q_f32(src);
                [
                    p.0,
                    p.1,
                    p.2,
                    p.3,
                    vextq_f32::<1>(p.0, vld1q_dup_f32(src.add(16))),
                    vextq_f32::<1>(p.1, vld1q_dup_f32(src.add(17))),
                ]
            }
        }
        #[inline(always)]
        unsafe fn join_phases(y: [float32x4_t; 4]) -> [float32x4_t; 4] {
            unsafe {
                // A 4×4 transpose: pairs of rows interleaved, then 64-bit halves swapped.
                let a = vtrnq_f32(y[0], y[1]);
                let b = vtrnq_f32(y[2], y[3]);
                let half = |x: float32x4_t| vreinterpretq_f64_f32(x);
                [
                    vreinterpretq_f32_f64(vtrn1q_f64(half(a.0), half(b.0))),
                    vreinterpretq_f32_f64(vtrn1q_f64(half(a.1), half(b.1))),
                    vreinterpretq_f32_f64(vtrn2q_f64(half(a.0), half(b.0))),
                    vreinterpretq_f32_f64(vtrn2q_f64(half(a.1), half(b.1))),
                ]
            }
        }
    }
}
