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
use super::simd::{multiversion, Path, Simd};
use crate::runtime::cpu::Isa;

/// Output channels per panel: 8 rows of accumulators, 16·NV columns each.
pub(crate) const PANEL: usize = 8;

/// Whether the panel kernel may run with `isa` (it needs a vector path: AVX-512, AVX2 + FMA
/// or NEON).
pub(crate) fn available(isa: Isa) -> bool {
    Path::of(isa).vector()
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
    assert!(available(isa), "the panel kernel needs a vector path");
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
    // SAFETY: a vector path (asserted above); the operands as the caller promised, the
    // epilogue's sources as long as the output block (asserted above).
    unsafe { product_on(Path::of(isa), wp, rows, k, b, brs, cols, out, ors, raw) }
}

multiversion! {
    unsafe fn product_on<'a>(
        wp: &[f32],
        rows: usize,
        k: usize,
        b: *const f32,
        brs: usize,
        cols: usize,
        out: *mut f32,
        ors: usize,
        epi: RawEpilogue<'a>,
    ) => product_generic
}

/// Rows of a panel one block of accumulators covers: all 8 where there are 32 vector registers
/// (AVX-512, NEON: 8 × 3 accumulators), half where there are 16 (AVX2: 4 × 3, leaving
/// registers for the 3 loads and the broadcast).
#[inline(always)]
fn block_rows<S: Simd>() -> usize {
    if S::REGISTERS >= 32 {
        PANEL
    } else {
        PANEL / 2
    }
}

/// Vectors of columns per block: 3 (48 columns on AVX-512, 24 on AVX2, 12 on NEON), as the
/// Winograd product kernel.
const NV: usize = 3;

/// [`product`] on one path (the caller checked the sizes).
///
/// # Safety
/// As [`product`], on a CPU with `S`'s extensions.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn product_generic<S: Simd>(
    wp: &[f32],
    rows: usize,
    k: usize,
    b: *const f32,
    brs: usize,
    cols: usize,
    out: *mut f32,
    ors: usize,
    epi: RawEpilogue,
) {
    let lanes = S::LANES;
    let block = NV * lanes;
    let sub = block_rows::<S>();
    // Panels outside, column blocks inside: each panel's 8 output rows are written as 8
    // sequential streams while the block of `B` (k × cols, sized by the caller to stay in
    // L2) is read again for every panel. Column blocks outside wrote all rows of the block at
    // once, one 4 KB page per row: twice as slow on 96 rows of 12 544 columns.
    for p0 in (0..rows).step_by(PANEL) {
        let panel = &wp[p0 / PANEL * k * PANEL..][..k * PANEL];
        let live = PANEL.min(rows - p0);
        let mut j0 = 0;
        while j0 < cols {
            let mut width = block.min(cols - j0);
            // A last block of fewer than 8 columns past a whole vector (49 = 48 + 1 on 7×7
            // maps, 196 = 192 + 4 on 14×14) goes to `tail_columns`, which spends one multiply-add
            // of a panel column per column where a masked vector per row spends 8.
            let narrow = width % lanes;
            if width < block && narrow > 0 && narrow < PANEL.min(lanes) {
                let first = j0 + width - narrow;
                // SAFETY: columns first .. first + narrow ≤ cols of rows p0 .. p0 + live.
                unsafe {
                    tail_columns::<S>(
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
            let nv = width.div_ceil(lanes);
            let tail = width - (nv - 1) * lanes;
            for r0 in (0..live).step_by(sub) {
                // SAFETY: the block's first output is inside the output (and the sources).
                let epi = unsafe { epi.moved((p0 + r0) * ors + j0) };
                let at = Block {
                    b: unsafe { b.add(j0) },
                    brs,
                    out: unsafe { out.add((p0 + r0) * ors + j0) },
                    ors,
                    live: sub.min(live - r0),
                    tail,
                    first_row: p0 + r0,
                    panel_row: r0,
                    next_panel: if j0 == 0 && r0 == 0 {
                        panel.as_ptr().wrapping_add(k * PANEL)
                    } else {
                        std::ptr::null()
                    },
                };
                // SAFETY (all): the block covers columns j0 .. j0 + width ≤ cols of rows
                // p0 + r0 .. p0 + r0 + at.live ≤ rows, inside what the caller promised.
                unsafe {
                    if sub == PANEL {
                        by_width::<S, PANEL>(panel, k, &at, epi, nv)
                    } else {
                        by_width::<S, { PANEL / 2 }>(panel, k, &at, epi, nv)
                    }
                }
            }
            j0 += width;
        }
    }
}

/// One block of `nv ≤ 3` vectors of columns (the last masked when `at.tail < LANES`).
///
/// # Safety
/// As the call in [`product_generic`].
#[inline(always)]
unsafe fn by_width<S: Simd, const R: usize>(
    panel: &[f32],
    k: usize,
    at: &Block,
    epi: RawEpilogue,
    nv: usize,
) {
    let whole = at.tail == S::LANES;
    // SAFETY (all six): forwarded.
    unsafe {
        match (nv, whole) {
            (3, true) => micro::<S, R, 3, false>(panel, k, at, epi),
            (3, false) => micro::<S, R, 3, true>(panel, k, at, epi),
            (2, true) => micro::<S, R, 2, false>(panel, k, at, epi),
            (2, false) => micro::<S, R, 2, true>(panel, k, at, epi),
            (_, true) => micro::<S, R, 1, false>(panel, k, at, epi),
            (_, false) => micro::<S, R, 1, true>(panel, k, at, epi),
        }
    }
}

/// Columns `0..n` (n < 8) of one panel, one column per vector of the panel's 8 output channels
/// (the panel's rows for one input channel are 8 consecutive weights: one vector on AVX2, the
/// low half of one on AVX-512, two on NEON), four independent chains of multiply-adds between
/// them so the FMA latency stays hidden.
///
/// # Safety
/// `S`'s extensions; `b` valid for `k` rows of `n` values at stride `brs`, `out` (and the mask
/// source) for `live` rows of `n` values at stride `ors`.
// The part index runs over two arrays (the weights' parts and the accumulators').
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tail_columns<S: Simd>(
    panel: &[f32],
    k: usize,
    b: *const f32,
    brs: usize,
    n: usize,
    out: *mut f32,
    ors: usize,
    live: usize,
    first_row: usize,
    epi: RawEpilogue,
) {
    // The panel's 8 weights of one input channel in `parts` vectors (the last masked).
    const MAX_PARTS: usize = 2;
    let parts = PANEL.div_ceil(S::LANES);
    debug_assert!(parts <= MAX_PARTS);
    let w = panel.as_ptr();
    // SAFETY (all below): lanes of row kk < k of the panel (8 values), column j < n of row kk
    // of B, 16 floats of `v`.
    unsafe {
        let part_mask = S::mask(0, PANEL.min(S::LANES) as isize);
        let wv = |kk: usize, p: usize| S::load_masked(part_mask, w.add(kk * PANEL + p * S::LANES));
        let x = |kk: usize, j: usize| S::splat(*b.add(kk * brs + j));
        let mut j = 0;
        while j < n {
            // Four chains: four columns at once, or one column's channels split four ways.
            let group = if n - j >= 4 { 4 } else { 1 };
            let mut acc = [[S::zero(); MAX_PARTS]; 4];
            if group == 4 {
                for kk in 0..k {
                    for p in 0..parts {
                        let a = wv(kk, p);
                        for (c, acc_c) in acc.iter_mut().enumerate() {
                            acc_c[p] = S::fmadd(a, x(kk, j + c), acc_c[p]);
                        }
                    }
                }
            } else {
                // Channel kk goes to chain kk % 4. Unrolled by four so that every index into
                // `acc` is a constant: with `acc[kk % 4]` the chains lived on the stack, a
                // load, multiply-add and store per channel (a fifth of the 320→1280 head's
                // product time on 7×7 maps, whose 49th column comes here).
                let one = |acc: &mut [S::V; MAX_PARTS], kk: usize| {
                    let xv = x(kk, j);
                    for p in 0..parts {
                        acc[p] = S::fmadd(wv(kk, p), xv, acc[p]);
                    }
                };
                let whole = k / 4 * 4;
                for kk in (0..whole).step_by(4) {
                    let [a0, a1, a2, a3] = &mut acc;
                    one(a0, kk);
                    one(a1, kk + 1);
                    one(a2, kk + 2);
                    one(a3, kk + 3);
                }
                let [a0, a1, a2, _] = &mut acc;
                if whole < k {
                    one(a0, whole);
                }
                if whole + 1 < k {
                    one(a1, whole + 1);
                }
                if whole + 2 < k {
                    one(a2, whole + 2);
                }
                for p in 0..parts {
                    acc[0][p] = S::add(S::add(acc[0][p], acc[1][p]), S::add(acc[2][p], acc[3][p]));
                }
            }
            for (c, a) in acc.iter().take(group).enumerate() {
                let mut v = [0.0f32; 16];
                for (p, &ap) in a.iter().take(parts).enumerate() {
                    S::store_masked(v.as_mut_ptr().add(p * S::LANES), part_mask, ap);
                }
                for (r, &val) in v.iter().enumerate().take(live) {
                    let mut y = val + epi.bias.map_or(0.0, |bs| bs[first_row + r]);
                    if let Some(cl) = epi.act {
                        y = y.max(cl.lo).min(cl.hi);
                    }
                    let at = r * ors + j + c;
                    if let Some((src, cl)) = epi.mask {
                        // The mask source has the output's layout (caller).
                        if !cl.passes(*src.add(at)) {
                            y = 0.0;
                        }
                    }
                    if let Some(src) = epi.residual {
                        // The residual has the output's layout (caller).
                        y += *src.add(at);
                    }
                    // Row r < live, column j + c < n (caller).
                    out.add(at).write(y);
                }
            }
            j += group;
        }
    }
}

/// Where one block of `R` rows × NV vectors reads and writes.
struct Block {
    b: *const f32,
    brs: usize,
    out: *mut f32,
    ors: usize,
    /// Rows of the block that exist (the rest are zero padding of the panel, never stored).
    live: usize,
    /// Columns of the last vector (`LANES` when it is whole).
    tail: usize,
    /// Row of the product where this block starts (for the bias).
    first_row: usize,
    /// Row of the panel where this block starts (for the weights).
    panel_row: usize,
    /// The next panel's weights, for [`micro`] to prefetch into L2 (null: not this block).
    next_panel: *const f32,
}

/// How many input channels ahead [`micro`] prefetches.
const PREFETCH_K: usize = 8;

/// Rows `at.panel_row .. + R` of one panel times NV vectors of columns, summed over all `k`
/// input channels in registers, then the epilogue and one store of each output.
///
/// # Safety
/// As the call in [`product_generic`].
#[inline(always)]
unsafe fn micro<S: Simd, const R: usize, const NV: usize, const MASKED: bool>(
    panel: &[f32],
    k: usize,
    at: &Block,
    epi: RawEpilogue,
) {
    // SAFETY (all below): row kk < k of B holds the block's columns (caller); the panel holds
    // k·8 values; the outputs and the epilogue's sources are inside the block (caller).
    unsafe {
        // Whole blocks load without a mask: a mask register live through the loop made the
        // compiler spill an accumulator to the stack on every step (perf: 9 % of the kernel).
        let last = S::mask(0, at.tail as isize);
        let full = S::mask(0, S::LANES as isize);
        let mask_of = |j: usize| if MASKED && j + 1 == NV { last } else { full };
        let w = panel.as_ptr().add(at.panel_row);
        let load = |kk: usize| -> [S::V; NV] {
            let row = at.b.add(kk * at.brs);
            std::array::from_fn(|j| {
                if MASKED && j + 1 == NV {
                    S::load_masked(last, row.add(S::LANES * j))
                } else {
                    S::load(row.add(S::LANES * j))
                }
            })
        };
        let weight = |kk: usize, r: usize| S::splat(*w.add(kk * PANEL + r));
        // The first channel multiplies instead of adding to zeros: a zeroed accumulator array
        // was built with a memset on the stack and reloaded (a store-forwarding stall on every
        // block, 9 % of the kernel on the 16-channel layers).
        let b0 = load(0);
        let mut acc: [[S::V; NV]; R] = std::array::from_fn(|r| {
            let a = weight(0, r);
            std::array::from_fn(|j| S::mul(a, b0[j]))
        });
        for kk in 1..k {
            // Ask for the weights and input rows a few channels ahead: a layer's weights and
            // input are usually out of cache, and the hardware prefetchers follow these strided
            // rows too slowly (a 7×7 layer ran 2–3× slower with cold caches). One prefetch per
            // 64-byte line: the weights of two channels share one (8 floats a channel), and
            // the row's NV vectors take 1.5 lines on AVX2 — a prefetch per vector there made 4
            // of the loop's 11 load-port operations per 12 multiply-adds.
            // The first block of a panel also asks for the next panel's weights, into L2, on
            // the other half of the steps: in a network a layer's weights have left the
            // caches since the last pass (EfficientNet's 7×7 layers ran 15–20 % slower there
            // than in a chain of eight blocks), and the hardware prefetchers restart at every
            // 4 KB page of them. Those loads now overlap a whole pass over the current panel.
            if kk % 2 == 0 {
                S::prefetch(w.wrapping_add((kk + PREFETCH_K) * PANEL));
            } else if !at.next_panel.is_null() {
                S::prefetch_l2(at.next_panel.wrapping_add(kk * PANEL));
            }
            let ahead = at.b.wrapping_add((kk + PREFETCH_K) * at.brs);
            for line in (0..S::LANES * NV).step_by(16) {
                S::prefetch(ahead.wrapping_add(line));
            }
            let bv = load(kk);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a = weight(kk, r);
                for (acc_rj, &bj) in acc_r.iter_mut().zip(&bv) {
                    *acc_rj = S::fmadd(a, bj, *acc_rj);
                }
            }
        }
        let (lo, hi) = epi
            .act
            .map_or((f32::NEG_INFINITY, f32::INFINITY), |c| (c.lo, c.hi));
        let (lo, hi) = (S::splat(lo), S::splat(hi));
        let (mlo, mhi) = epi.mask.map_or((0.0, 0.0), |(_, c)| (c.lo, c.hi));
        let (mlo, mhi) = (S::splat(mlo), S::splat(mhi));
        for (r, acc_r) in acc.iter().enumerate().take(at.live) {
            let bias = S::splat(epi.bias.map_or(0.0, |b| b[at.first_row + r]));
            for (j, &a) in acc_r.iter().enumerate() {
                let mut v = if epi.bias.is_some() {
                    S::add(a, bias)
                } else {
                    a
                };
                if epi.act.is_some() {
                    // NaN becomes `lo`, as `Clamp::apply` does.
                    v = S::min(S::max(v, lo), hi);
                }
                let off = r * at.ors + S::LANES * j;
                if let Some((src, _)) = epi.mask {
                    let s = S::load_masked(mask_of(j), src.add(off));
                    v = S::keep_between(v, s, mlo, mhi);
                }
                if let Some(src) = epi.residual {
                    v = S::add(v, S::load_masked(mask_of(j), src.add(off)));
                }
                if MASKED && j + 1 == NV {
                    S::store_masked(at.out.add(off), last, v);
                } else {
                    S::store(at.out.add(off), v);
                }
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
        for isa in crate::kernels::simd::test_isas() {
            if available(isa) {
                product_matches_a_direct_loop_on(isa);
            }
        }
    }

    fn product_matches_a_direct_loop_on(isa: Isa) {
        let clamp = Clamp { lo: 0.0, hi: 6.0 };
        for &(rows, k, cols) in &[
            (13, 5, 1),
            (3, 17, 15),
            (16, 9, 16),
            (24, 33, 49),
            (8, 1, 97),
            (12, 7, 30),
            (5, 3, 4),
            (20, 66, 27),
            // Single tail columns (one past whole vectors) with k % 4 = 2, 0 and 3: the chains
            // of `tail_columns` unrolled by four, and their remainders.
            (6, 10, 17),
            (9, 8, 33),
            (7, 11, 50),
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
                            "{isa:?} rows {rows} k {k} cols {cols}: ({r}, {j}) = {got}, expected {s}"
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
