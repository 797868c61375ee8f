//! AVX-512 input and output transforms of the Winograd path.
//!
//! Both work on up to 16 tiles of one tile row and one channel at a time, one tile per vector
//! lane, with every intermediate value in registers: the six input rows under the tiles are
//! loaded with masked loads (padding and the image's edges read as zero, no bounds checks),
//! split into column phases by permutes and transformed in place; the output rows are
//! transformed, biased, clamped and interleaved back into columns in registers, and written
//! with masked stores. The portable versions in the parent module go through small row
//! buffers, and their compiler-vectorised loops fall back to scalar code for the 8 tiles of a
//! 32×32 map (design.md, "Winograd").

use std::arch::x86_64::*;

use super::{runs, ConvGeometry, Epilogue};
use crate::kernels::lane_mask;
use crate::runtime::pool::SharedOut;

/// Tiles per vector.
const TILES: usize = 16;

/// `Bᵀ d` for six vectors (the rows of Bᵀ written out, as in the portable `apply_bt`).
#[inline(always)]
unsafe fn bt(d: [__m512; 6]) -> [__m512; 6] {
    let [d0, d1, d2, d3, d4, d5] = d;
    let (two, four, five) = (
        _mm512_set1_ps(2.0),
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(5.0),
    );
    [
        _mm512_fmadd_ps(four, d0, _mm512_fnmadd_ps(five, d2, d4)),
        _mm512_fnmadd_ps(four, _mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4)),
        _mm512_fmadd_ps(four, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d4, d3)),
        _mm512_fmadd_ps(two, _mm512_sub_ps(d3, d1), _mm512_sub_ps(d4, d2)),
        _mm512_fmadd_ps(two, _mm512_sub_ps(d1, d3), _mm512_sub_ps(d4, d2)),
        _mm512_fmadd_ps(four, d1, _mm512_fnmadd_ps(five, d3, d5)),
    ]
}

/// `Aᵀ m` for six vectors.
#[inline(always)]
unsafe fn at(m: [__m512; 6]) -> [__m512; 4] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let (s12, d12) = (_mm512_add_ps(m1, m2), _mm512_sub_ps(m1, m2));
    let (s34, d34) = (_mm512_add_ps(m3, m4), _mm512_sub_ps(m3, m4));
    [
        _mm512_add_ps(_mm512_add_ps(m0, s12), s34),
        _mm512_fmadd_ps(_mm512_set1_ps(2.0), d34, d12),
        _mm512_fmadd_ps(_mm512_set1_ps(4.0), s34, s12),
        _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0), d34, d12), m5),
    ]
}

/// `V = Bᵀ d B` of tiles `first..first + count` and every channel, into 36 matrices
/// `c × width` (as the portable `transform_input`).
///
/// # Safety
/// AVX-512F; the slices must have the sizes the caller (`run_block`) gives them.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_input(
    x: &[f32],
    g: &ConvGeometry,
    first: usize,
    count: usize,
    width: usize,
    v: &mut [f32],
) {
    assert_eq!(x.len(), g.n * g.c * g.h.input * g.w.input);
    assert!(v.len() >= 36 * g.c * width && first + count <= g.tiles() && count <= width);
    let plane = g.h.input * g.w.input;
    // Phase p of tiles 0..8 from the first vector pair in lanes 0..8, phase p + 1 in 8..16.
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
    let hi = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    // Next tile's phase 0 (1): lanes shifted down by one, the last from the fifth load's lane
    // 0 (1).
    let next0 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    let next1 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
    let vp = v.as_mut_ptr();
    for run in runs(g, first, count) {
        for t0 in (0..run.len).step_by(TILES) {
            let tiles = (run.len - t0).min(TILES);
            // Input columns start..start + span under these tiles (start < 0 in the padding).
            let start = (run.ox + 4 * t0) as isize - g.w.pad_begin as isize;
            let span = (4 * tiles + 2) as isize;
            let (i_lo, i_hi) = ((-start).max(0), span.min(g.w.input as isize - start));
            let loads: [u16; 5] = std::array::from_fn(|j| lane_mask(i_lo, i_hi, 16 * j as isize));
            let store = lane_mask(0, tiles as isize, 0);
            let col = run.col + t0;
            for ci in 0..g.c {
                let src = x.as_ptr().add((run.img * g.c + ci) * plane);
                // h[k][r]: input row r of every tile, transformed horizontally, component k.
                let mut h = [[_mm512_setzero_ps(); 6]; 6];
                for r in 0..6 {
                    let ir = (run.oy + r) as isize - g.h.pad_begin as isize;
                    if ir < 0 || ir >= g.h.input as isize {
                        continue;
                    }
                    // Lanes outside the image are masked off: they are neither read nor
                    // faulted on, and load as zero (the padding).
                    let row = src.wrapping_offset(ir * g.w.input as isize + start);
                    let w: [__m512; 5] = std::array::from_fn(|j| {
                        _mm512_maskz_loadu_ps(loads[j], row.wrapping_add(16 * j))
                    });
                    let a01 = _mm512_permutex2var_ps(w[0], i01, w[1]);
                    let b01 = _mm512_permutex2var_ps(w[2], i01, w[3]);
                    let a23 = _mm512_permutex2var_ps(w[0], i23, w[1]);
                    let b23 = _mm512_permutex2var_ps(w[2], i23, w[3]);
                    let p0 = _mm512_permutex2var_ps(a01, lo, b01);
                    let p1 = _mm512_permutex2var_ps(a01, hi, b01);
                    let p2 = _mm512_permutex2var_ps(a23, lo, b23);
                    let p3 = _mm512_permutex2var_ps(a23, hi, b23);
                    let p4 = _mm512_permutex2var_ps(p0, next0, w[4]);
                    let p5 = _mm512_permutex2var_ps(p1, next1, w[4]);
                    for (hk, v) in h.iter_mut().zip(bt([p0, p1, p2, p3, p4, p5])) {
                        hk[r] = v;
                    }
                }
                for (k, &hk) in h.iter().enumerate() {
                    for (i, &oi) in bt(hk).iter().enumerate() {
                        let at = ((i * 6 + k) * g.c + ci) * width + col;
                        _mm512_mask_storeu_ps(vp.add(at), store, oi);
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

/// `Y = Aᵀ M A` of tiles `first..first + count` and every output channel, with the epilogue,
/// written into the output (as the portable `transform_output`).
///
/// # Safety
/// AVX-512F, and as `run_block`: `out` points to the `n × m × oh × ow` output, and no other
/// thread writes these tiles during the call.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_output(
    mm: &[f32],
    g: &ConvGeometry,
    first: usize,
    count: usize,
    width: usize,
    out: SharedOut,
    epilogue: Epilogue,
) {
    assert!(mm.len() >= 36 * g.m * width && first + count <= g.tiles() && count <= width);
    let Epilogue {
        bias, act, mask, ..
    } = epilogue;
    assert!(bias.is_none_or(|b| b.len() == g.m));
    assert!(mask.is_none_or(|(src, _)| src.len() == g.n * g.m * g.h.output * g.w.output));
    let plane = g.h.output * g.w.output;
    let pd = |v: __m512| _mm512_castps_pd(v);
    let ps = |v: __m512d| _mm512_castpd_ps(v);
    for run in runs(g, first, count) {
        let rows = 4.min(g.h.output - run.oy);
        for t0 in (0..run.len).step_by(TILES) {
            let tiles = (run.len - t0).min(TILES);
            let ox = run.ox + 4 * t0;
            // Output columns of these tiles (the last one may be cut by the image's edge).
            let cols = (g.w.output - ox).min(4 * tiles) as isize;
            let load = lane_mask(0, tiles as isize, 0);
            let stores: [u16; 4] = std::array::from_fn(|k| lane_mask(0, cols, 16 * k as isize));
            let col = run.col + t0;
            for mi in 0..g.m {
                // r[i][s]: row i of Aᵀ M for column s of every tile.
                let mut r = [[_mm512_setzero_ps(); 6]; 4];
                for s in 0..6 {
                    let m = std::array::from_fn(|q| {
                        let at = ((q * 6 + s) * g.m + mi) * width + col;
                        _mm512_maskz_loadu_ps(load, mm.as_ptr().add(at))
                    });
                    for (ri, v) in r.iter_mut().zip(at(m)) {
                        ri[s] = v;
                    }
                }
                let b = _mm512_set1_ps(bias.map_or(0.0, |b| b[mi]));
                for (i, ri) in r.iter().enumerate().take(rows) {
                    let y = at(*ri).map(|v| {
                        let v = _mm512_add_ps(v, b);
                        match act {
                            Some(c) => _mm512_min_ps(
                                _mm512_max_ps(v, _mm512_set1_ps(c.lo)),
                                _mm512_set1_ps(c.hi),
                            ),
                            None => v,
                        }
                    });
                    // Interleave the four column phases (lane t of y[p] is column 4t + p): a
                    // 4×4 transpose of 32-bit values within 128-bit lanes, then of the lanes.
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
                    let vals = [
                        _mm512_shuffle_f32x4::<0x88>(c0, c2),
                        _mm512_shuffle_f32x4::<0x88>(c1, c3),
                        _mm512_shuffle_f32x4::<0xDD>(c0, c2),
                        _mm512_shuffle_f32x4::<0xDD>(c1, c3),
                    ];
                    let offset = (run.img * g.m + mi) * plane + (run.oy + i) * g.w.output + ox;
                    for (k, (&val, &keep_cols)) in vals.iter().zip(&stores).enumerate() {
                        if keep_cols == 0 {
                            break;
                        }
                        let at = offset + 16 * k;
                        let val = match mask {
                            Some((src, c)) => {
                                let s = _mm512_maskz_loadu_ps(keep_cols, src.as_ptr().add(at));
                                let pass =
                                    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, _mm512_set1_ps(c.lo))
                                        & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(s, _mm512_set1_ps(c.hi));
                                _mm512_maskz_mov_ps(pass, val)
                            }
                            None => val,
                        };
                        // SAFETY: these columns of row oy + i belong to this block's tiles
                        // (the caller's contract) and lie inside the output.
                        _mm512_mask_storeu_ps(out.get().add(at), keep_cols, val);
                    }
                }
            }
        }
    }
}
