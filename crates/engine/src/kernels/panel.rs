//! Convolution products on weights packed in panels of 8 output channels, with the bias,
//! activation and gradient mask applied in registers before the one write of each output.
//!
//! `out[r][j] = epilogue(Σ_k W[r][k] · B[k][j])`, where `B` is the input itself for a 1×1
//! convolution (rows are channel planes, already contiguous runs of output positions) or an
//! im2col tile. Neither operand is repacked at run time: constant weights are packed once
//! ([`pack`]) and `B` rows are read as vectors where they lie. The `gemm` crate packed both
//! operands on every call, which on EfficientNet's 7×7 maps (49 columns against 192–1152
//! channels) cost more than the multiplications and kept a second thread from helping
//! (design.md, "Pointwise convolutions").

use super::epilogue::{Clamp, Epilogue};
use crate::runtime::cpu::Isa;

/// Output channels per panel: 8 rows of accumulators, 16·NV columns each.
pub(crate) const PANEL: usize = 8;

/// Whether the panel kernel may run with `isa` (it needs AVX-512F).
pub(crate) fn available(isa: Isa) -> bool {
    cfg!(target_arch = "x86_64") && isa.avx512f()
}

/// `g` groups of `mg × k` row-major weights → per group `ceil(mg/8)` panels of `k × 8`
/// (`[group][panel][k][8]`), rows past `mg` zero.
pub(crate) fn pack(w: &[f32], groups: usize, mg: usize, k: usize) -> Vec<f32> {
    assert_eq!(w.len(), groups * mg * k, "weights");
    let panels = mg.div_ceil(PANEL);
    let mut out = vec![0.0f32; groups * panels * k * PANEL];
    for gi in 0..groups {
        for r in 0..mg {
            let (panel, lane) = (r / PANEL, r % PANEL);
            let dst = &mut out[(gi * panels + panel) * k * PANEL..][..k * PANEL];
            for (kk, &v) in w[(gi * mg + r) * k..][..k].iter().enumerate() {
                dst[kk * PANEL + lane] = v;
            }
        }
    }
    out
}

/// The [`Epilogue`] as the vector loops read it: the mask and residual sources as pointers
/// that move with the output block (checked against the sources' lengths once, in
/// [`product`]).
#[derive(Clone, Copy)]
struct RawEpilogue<'a> {
    /// One bias per row of the block.
    bias: Option<&'a [f32]>,
    act: Option<Clamp>,
    /// Values laid out as the output (same pointer offsets): where one is outside the clamp's
    /// open interval the output is 0.
    mask: Option<(*const f32, Clamp)>,
    /// Values laid out as the output, added last (a residual `Add` fused into the convolution
    /// before it: the sum is written once instead of the convolution's output being written,
    /// read back and written again).
    residual: Option<*const f32>,
}

impl RawEpilogue<'_> {
    /// The same epilogue for a block whose output starts `off` values further on (the mask
    /// and residual sources have the output's layout, so they move with it).
    ///
    /// # Safety
    /// `off` must stay inside the sources (as it stays inside the output).
    unsafe fn moved(self, off: usize) -> Self {
        // SAFETY: as the caller promised.
        unsafe {
            RawEpilogue {
                mask: self.mask.map(|(src, c)| (src.add(off), c)),
                residual: self.residual.map(|src| src.add(off)),
                ..self
            }
        }
    }
}

/// Rows `0..rows` of one group's product: `out[r·ors + j] = epi(Σ_k W[r][k] · b[k·brs + j])`
/// for `j < cols`, with `wp` that group's panels from [`pack`] (first panel = row 0). The
/// epilogue's bias is indexed by row, its mask and residual sources as `out` (from the same
/// first value, at the same stride).
///
/// # Safety
/// `b` must be valid for reads of `k` rows of `cols` values at stride `brs`; `out` for `rows`
/// rows of `cols` values at stride `ors`, written by no other thread. (The kernel's own
/// requirements are checked: [`available`] for `isa`, the lengths of `wp`, the bias and the
/// epilogue's sources.)
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product(
    isa: Isa,
    wp: &[f32],
    rows: usize,
    k: usize,
    b: *const f32,
    brs: usize,
    cols: usize,
    out: *mut f32,
    ors: usize,
    epi: Epilogue,
) {
    assert!(available(isa), "the panel kernel needs AVX-512F");
    assert!(k > 0 && wp.len() >= rows.div_ceil(PANEL) * k * PANEL);
    assert!(epi.bias.is_none_or(|b| b.len() >= rows));
    let extent = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ors + cols
    };
    assert!(
        epi.mask.is_none_or(|(m, _)| m.len() >= extent)
            && epi.residual.is_none_or(|r| r.len() >= extent),
        "epilogue sources laid out as the output"
    );
    let raw = RawEpilogue {
        bias: epi.bias,
        act: epi.act,
        mask: epi.mask.map(|(m, c)| (m.as_ptr(), c)),
        residual: epi.residual.map(<[f32]>::as_ptr),
    };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F (asserted above); the operands as the caller promised, the epilogue's
    // sources as long as the output block (asserted above).
    unsafe {
        avx512::product(wp, rows, k, b, brs, cols, out, ors, raw)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (b, brs, cols, out, ors, raw);
        unreachable!("`available` is false off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{RawEpilogue as Epilogue, PANEL};

    /// Columns per block: 48 (24 accumulators, 3 loads and 8 broadcasts per `k`), as the
    /// Winograd product kernel.
    const BLOCK: usize = 48;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(
        wp: &[f32],
        rows: usize,
        k: usize,
        b: *const f32,
        brs: usize,
        cols: usize,
        out: *mut f32,
        ors: usize,
        epi: Epilogue,
    ) {
        // Panels outside, column blocks inside: each panel's 8 output rows are written as 8
        // sequential streams while the block of `B` (k × cols, sized by the caller to stay in
        // L2) is read again for every panel. Column blocks outside wrote all rows of the block at
        // once, one 4 KB page per row: twice as slow on 96 rows of 12 544 columns.
        for p0 in (0..rows).step_by(PANEL) {
            let panel = &wp[p0 / PANEL * k * PANEL..][..k * PANEL];
            let live = PANEL.min(rows - p0);
            let mut j0 = 0;
            while j0 < cols {
                let mut width = BLOCK.min(cols - j0);
                // A last block of fewer than 8 columns past a multiple of 16 (49 = 48 + 1 on
                // 7×7 maps, 196 = 192 + 4 on 14×14) goes to `tail_columns`, which spends one
                // 8-wide multiply-add per column where a masked 16-wide vector spends 8.
                let narrow = width % 16;
                if width < BLOCK && (1..8).contains(&narrow) {
                    let first = j0 + width - narrow;
                    // SAFETY: columns first .. first + narrow ≤ cols of rows p0 .. p0 + live.
                    unsafe {
                        tail_columns(
                            panel,
                            k,
                            b.add(first),
                            brs,
                            narrow,
                            out.add(p0 * ors + first),
                            ors,
                            live,
                            p0,
                            epi.moved(p0 * ors + first),
                        )
                    };
                    width -= narrow;
                    if width == 0 {
                        break;
                    }
                }
                let nv = width.div_ceil(16);
                let tail = width - (nv - 1) * 16;
                let last: __mmask16 = if tail == 16 { !0 } else { (1u16 << tail) - 1 };
                // SAFETY: the block's first output is inside the output (and the sources).
                let epi = unsafe { epi.moved(p0 * ors + j0) };
                let at = Block {
                    b: b.add(j0),
                    brs,
                    out: out.add(p0 * ors + j0),
                    ors,
                    live,
                    last,
                    first_row: p0,
                };
                // SAFETY (all three): the block covers columns j0 .. j0 + width ≤ cols of rows
                // p0 .. p0 + live ≤ rows, inside what the caller promised.
                unsafe {
                    match (nv, tail == 16) {
                        (3, true) => micro::<3, false>(panel, k, &at, epi),
                        (3, false) => micro::<3, true>(panel, k, &at, epi),
                        (2, true) => micro::<2, false>(panel, k, &at, epi),
                        (2, false) => micro::<2, true>(panel, k, &at, epi),
                        (_, true) => micro::<1, false>(panel, k, &at, epi),
                        (_, false) => micro::<1, true>(panel, k, &at, epi),
                    }
                }
                j0 += width;
            }
        }
    }

    /// Columns `0..n` (n < 8) of one panel, one column per 8-lane vector of output channels
    /// (the panel's rows for one input channel are 8 consecutive weights), four independent
    /// chains of multiply-adds between them so the FMA latency stays hidden.
    ///
    /// # Safety
    /// AVX-512F (for the 256-bit FMA); `b` valid for `k` rows of `n` values at stride `brs`,
    /// `out` (and the mask source) for `live` rows of `n` values at stride `ors`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn tail_columns(
        panel: &[f32],
        k: usize,
        b: *const f32,
        brs: usize,
        n: usize,
        out: *mut f32,
        ors: usize,
        live: usize,
        first_row: usize,
        epi: Epilogue,
    ) {
        let w = panel.as_ptr();
        // SAFETY (both closures): row kk < k of the panel and column j < n of row kk of B.
        let wv = |kk: usize| unsafe { _mm256_loadu_ps(w.add(kk * PANEL)) };
        let x = |kk: usize, j: usize| _mm256_set1_ps(unsafe { *b.add(kk * brs + j) });
        let mut j = 0;
        while j < n {
            // Four chains: four columns at once, or one column's channels split four ways.
            let group = if n - j >= 4 { 4 } else { 1 };
            let mut acc = [_mm256_setzero_ps(); 4];
            if group == 4 {
                for kk in 0..k {
                    let a = wv(kk);
                    for (c, acc_c) in acc.iter_mut().enumerate() {
                        *acc_c = _mm256_fmadd_ps(a, x(kk, j + c), *acc_c);
                    }
                }
            } else {
                for kk in 0..k {
                    acc[kk % 4] = _mm256_fmadd_ps(wv(kk), x(kk, j), acc[kk % 4]);
                }
                let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                acc[0] = s;
            }
            for (c, a) in acc.iter().take(group).enumerate() {
                let mut v = [0.0f32; PANEL];
                // SAFETY: 8 floats.
                unsafe { _mm256_storeu_ps(v.as_mut_ptr(), *a) };
                for (r, &val) in v.iter().enumerate().take(live) {
                    let mut y = val + epi.bias.map_or(0.0, |bs| bs[first_row + r]);
                    if let Some(cl) = epi.act {
                        y = y.max(cl.lo).min(cl.hi);
                    }
                    let at = r * ors + j + c;
                    if let Some((src, cl)) = epi.mask {
                        // SAFETY: the mask source has the output's layout (caller).
                        if !cl.passes(unsafe { *src.add(at) }) {
                            y = 0.0;
                        }
                    }
                    if let Some(src) = epi.residual {
                        // SAFETY: the residual has the output's layout (caller).
                        y += unsafe { *src.add(at) };
                    }
                    // SAFETY: row r < live, column j + c < n (caller).
                    unsafe { out.add(at).write(y) };
                }
            }
            j += group;
        }
    }

    /// Where one 8 × (16·NV) block reads and writes.
    struct Block {
        b: *const f32,
        brs: usize,
        out: *mut f32,
        ors: usize,
        /// Rows of the panel that exist (the rest are zero padding, never stored).
        live: usize,
        /// Mask of the last vector's columns.
        last: __mmask16,
        /// Row of the product where this panel starts (for the bias).
        first_row: usize,
    }

    /// How many input channels ahead [`micro`] prefetches.
    const PREFETCH_K: usize = 8;

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn micro<const NV: usize, const MASKED: bool>(
        panel: &[f32],
        k: usize,
        at: &Block,
        epi: Epilogue,
    ) {
        // Whole blocks load without a mask: a mask register live through the loop made the
        // compiler spill an accumulator to the stack on every step (perf: 9 % of the kernel).
        let mask_of = |j: usize| if MASKED && j + 1 == NV { at.last } else { !0 };
        let w = panel.as_ptr();
        // SAFETY (both closures): row kk < k of B holds the block's columns (caller); the
        // panel holds k·8 values.
        let load = |kk: usize| -> [__m512; NV] {
            let row = unsafe { at.b.add(kk * at.brs) };
            std::array::from_fn(|j| unsafe {
                if MASKED {
                    _mm512_maskz_loadu_ps(mask_of(j), row.add(16 * j))
                } else {
                    _mm512_loadu_ps(row.add(16 * j))
                }
            })
        };
        let weight = |kk: usize, r: usize| _mm512_set1_ps(unsafe { *w.add(kk * PANEL + r) });
        // The first channel multiplies instead of adding to zeros: a zeroed accumulator array
        // was built with a memset on the stack and reloaded (a store-forwarding stall on every
        // block, 9 % of the kernel on the 16-channel layers).
        let b0 = load(0);
        let mut acc: [[__m512; NV]; PANEL] = std::array::from_fn(|r| {
            let a = weight(0, r);
            std::array::from_fn(|j| _mm512_mul_ps(a, b0[j]))
        });
        for kk in 1..k {
            // Ask for the weights and input rows a few channels ahead: a layer's weights and
            // input are usually out of cache, and the hardware prefetchers follow these strided
            // rows too slowly (a 7×7 layer ran 2–3× slower with cold caches).
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((kk + PREFETCH_K) * PANEL).cast());
            let ahead = at.b.wrapping_add((kk + PREFETCH_K) * at.brs);
            for j in 0..NV {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16 * j).cast());
            }
            let bv = load(kk);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a = weight(kk, r);
                for (acc_rj, &bj) in acc_r.iter_mut().zip(&bv) {
                    *acc_rj = _mm512_fmadd_ps(a, bj, *acc_rj);
                }
            }
        }
        let (lo, hi) = epi
            .act
            .map_or((f32::NEG_INFINITY, f32::INFINITY), |c| (c.lo, c.hi));
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        for (r, acc_r) in acc.iter().enumerate().take(at.live) {
            let bias = epi.bias.map_or(0.0, |b| b[at.first_row + r]);
            let bias = _mm512_set1_ps(bias);
            for (j, &a) in acc_r.iter().enumerate() {
                let mut v = if epi.bias.is_some() {
                    _mm512_add_ps(a, bias)
                } else {
                    a
                };
                if epi.act.is_some() {
                    // NaN becomes `lo`, as `Clamp::apply` does (max returns its second operand).
                    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                }
                let off = r * at.ors + 16 * j;
                if let Some((src, c)) = epi.mask {
                    // SAFETY: the mask source has the output's layout (caller).
                    let s = unsafe { _mm512_maskz_loadu_ps(mask_of(j), src.add(off)) };
                    let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, _mm512_set1_ps(c.lo))
                        & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(s, _mm512_set1_ps(c.hi));
                    v = _mm512_maskz_mov_ps(keep, v);
                }
                if let Some(src) = epi.residual {
                    // SAFETY: the residual has the output's layout (caller).
                    let s = unsafe { _mm512_maskz_loadu_ps(mask_of(j), src.add(off)) };
                    v = _mm512_add_ps(v, s);
                }
                // SAFETY: row r < live of the block, columns inside it (caller).
                unsafe { _mm512_mask_storeu_ps(at.out.add(off), mask_of(j), v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// Partial panels (rows 13, 3), column counts around the 16 and 48 boundaries, strided
    /// operands, bias, activation, mask and residual, against an f64 loop.
    #[test]
    fn product_matches_a_direct_loop() {
        let isa = Isa::host();
        if !available(isa) {
            return;
        }
        let clamp = Clamp { lo: 0.0, hi: 6.0 };
        for &(rows, k, cols) in &[
            (13, 5, 1),
            (3, 17, 15),
            (16, 9, 16),
            (24, 33, 49),
            (8, 1, 97),
        ] {
            let (brs, ors) = (cols + 3, cols + 5);
            let w = values(rows * k, 1);
            let b = values(k * brs, 2);
            let bias = values(rows, 3);
            let src = values(rows * ors, 4);
            let wp = pack(&w, 1, rows, k);
            let residual = values(rows * ors, 5);
            for (use_bias, act, mask, add) in [
                (false, None, false, false),
                (true, Some(clamp), true, false),
                (true, None, false, true),
            ] {
                let mut out = vec![f32::NAN; rows * ors];
                let epi = Epilogue {
                    bias: use_bias.then_some(&bias[..]),
                    act,
                    mask: mask.then_some((&src[..], clamp)),
                    residual: add.then_some(&residual[..]),
                };
                // SAFETY: every operand sized as `product` requires.
                unsafe {
                    product(
                        isa,
                        &wp,
                        rows,
                        k,
                        b.as_ptr(),
                        brs,
                        cols,
                        out.as_mut_ptr(),
                        ors,
                        epi,
                    )
                };
                for r in 0..rows {
                    for j in 0..ors {
                        let got = out[r * ors + j];
                        if j >= cols {
                            assert!(got.is_nan(), "({r}, {j}) outside the block was written");
                            continue;
                        }
                        let mut s: f64 = (0..k)
                            .map(|q| w[r * k + q] as f64 * b[q * brs + j] as f64)
                            .sum();
                        if use_bias {
                            s += bias[r] as f64;
                        }
                        if let Some(c) = act {
                            s = s.max(c.lo as f64).min(c.hi as f64);
                        }
                        if mask && !clamp.passes(src[r * ors + j]) {
                            s = 0.0;
                        }
                        if add {
                            s += residual[r * ors + j] as f64;
                        }
                        assert!(
                            (got as f64 - s).abs() < 1e-5,
                            "rows {rows} k {k} cols {cols}: ({r}, {j}) = {got}, expected {s}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pack_lays_groups_and_panels_out() {
        // 2 groups of 10 rows, k = 3: 2 panels per group, rows 10..16 of each zero.
        let w: Vec<f32> = (0..60).map(|i| i as f32).collect();
        let p = pack(&w, 2, 10, 3);
        assert_eq!(p.len(), 2 * 2 * 3 * 8);
        let at = |g: usize, r: usize, q: usize| p[((g * 2 + r / 8) * 3 + q) * 8 + r % 8];
        for g in 0..2 {
            for r in 0..16 {
                for q in 0..3 {
                    let want = if r < 10 { w[(g * 10 + r) * 3 + q] } else { 0.0 };
                    assert_eq!(at(g, r, q), want);
                }
            }
        }
    }
}
