//! Winograd F(4×4, 3×3) convolution (Lavin & Gray, 2016) for 3×3, stride-1 convolutions.
//!
//! Each 4×4 block of output ("tile") is computed from the 6×6 input patch under it: the patch and
//! the filter are transformed (`V = Bᵀ d B`, `U = G g Gᵀ`), multiplied element by element and
//! summed over input channels, and transformed back (`Y = Aᵀ M A`). The sum over channels of the
//! 36 element-wise products is 36 matrix products `M_ξ = U_ξ · V_ξ` (`M × C` by `C × tiles`), so
//! the multiply-adds drop from 9·16 = 144 to 36 per tile and channel pair: 4× fewer than
//! im2col + GEMM. The transforms are linear, so the result is the same convolution up to
//! rounding (checked against the direct path in the tests below and against onnxruntime in the
//! reference tests; design.md "Winograd" has the error figures).
//!
//! The work is split into blocks of tiles, one per task: each task transforms its tiles' input,
//! runs the 36 single-threaded products and writes its own output tiles, so the transformed
//! data stays small (a few MiB) and every core has its own block. A map with fewer blocks than
//! threads also splits each block's output channels among tasks.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::epilogue::{Clamp, Epilogue};
use super::gemm::{matmul_raw, Mat};
use super::geometry::ConvGeometry;
use super::simd::{multiversion, Path, Simd};
use crate::runtime::cpu::Isa;
use crate::runtime::pool::{for_each_task, SharedOut};

mod vector;

/// Block widths (tiles per product) are multiples of this: the product kernel's vector width.
const LANES: usize = 16;

impl ConvGeometry {
    /// Rows of 4×4 output tiles.
    fn tiles_h(&self) -> usize {
        self.h.output.div_ceil(4)
    }
    /// Columns of 4×4 output tiles.
    fn tiles_w(&self) -> usize {
        self.w.output.div_ceil(4)
    }
    /// Output tiles of the whole batch.
    fn tiles(&self) -> usize {
        self.n * self.tiles_h() * self.tiles_w()
    }
}

/// Whether the Winograd route computes `g` and pays off there: a 3×3, stride-1, undilated,
/// ungrouped convolution with enough channels for the products to dominate the transforms (the
/// first layer of a network, with 3 input channels, stays on im2col), and enough tiles per
/// weight for the products not to be bound by reading the transformed weights, which are 4×
/// the direct weights: from 8 tiles (a 9×9 map). 512 → 512 channels at batch 1, AVX2 / AVX-512
/// (`conv_micro`): 15×15 3.3 / 1.9 ms against im2col's 7.0 / 4.0, 9×9 2.7 / 2.0 against
/// 3.1 / 2.0, but 7×7 (4 tiles, 64 % of their outputs inside the map) 2.8 / 2.4 against
/// 1.7 / 1.3.
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    let plain = |a: &super::geometry::Axis| a.kernel == 3 && a.stride == 1 && a.dilation == 1;
    g.groups == 1 && plain(&g.h) && plain(&g.w) && g.c >= 16 && g.m >= 16 && g.tiles() >= 8
}

/// How the transformed weights `U` are laid out: for the vector product kernel
/// ([`product_on`]) in panels of 8 output channels, else transposed for the `gemm` crate.
/// Fixed by the route a run takes ([`WeightLayout::of`]), so weights transformed for one route
/// are never read by the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightLayout {
    /// `[ξ][m/8][c][8]`.
    Panels,
    /// `[ξ][c][m]`, read transposed by GEMM.
    Transposed,
}

impl WeightLayout {
    /// The layout the products of `m` output channels read on `isa`.
    pub(crate) fn of(isa: Isa, m: usize) -> WeightLayout {
        if Path::of(isa).vector() && m.is_multiple_of(8) {
            WeightLayout::Panels
        } else {
            WeightLayout::Transposed
        }
    }
}

/// Index of `U_ξ[mi][ci]` for `m` output and `c` input channels in `layout`.
#[inline]
fn u_index(layout: WeightLayout, xi: usize, mi: usize, ci: usize, m: usize, c: usize) -> usize {
    match layout {
        WeightLayout::Panels => ((xi * (m / 8) + mi / 8) * c + ci) * 8 + mi % 8,
        WeightLayout::Transposed => (xi * c + ci) * m + mi,
    }
}

/// Weights transformed for the Winograd route ([`transform_weights`]), with their layout.
pub(crate) struct TransformedWeights {
    layout: WeightLayout,
    /// Output and input channels.
    m: usize,
    c: usize,
    u: Vec<f32>,
}

/// `U = G g Gᵀ` for every filter `g` of `w` (`[m, c, 3, 3]`): 36 matrices, laid out as
/// `layout` says.
pub(crate) fn transform_weights(
    w: &[f32],
    m: usize,
    c: usize,
    layout: WeightLayout,
) -> TransformedWeights {
    assert_eq!(w.len(), m * c * 9, "3×3 weights");
    // G applied to 3 values, in f64 (done once per layer, so precision is free).
    let g = |a: f64, b: f64, c: f64| -> [f64; 6] {
        [
            a / 4.0,
            -(a + b + c) / 6.0,
            -(a - b + c) / 6.0,
            a / 24.0 + b / 12.0 + c / 6.0,
            a / 24.0 - b / 12.0 + c / 6.0,
            c,
        ]
    };
    let mut u = vec![0.0f32; 36 * m * c];
    // Groups of eight output channels in parallel, input channels outside them, so the eight
    // values of one transform position land side by side in either layout. One thread took
    // ~0.5 s for VGG16's 236 MB (half of it the first touch of that memory), paid by every
    // command's first pass.
    let dst = SharedOut(u.as_mut_ptr());
    let len = u.len();
    for_each_task(m.div_ceil(8), |group| {
        for ci in 0..c {
            for mi in group * 8..(group * 8 + 8).min(m) {
                let k = &w[(mi * c + ci) * 9..][..9];
                let k = |r: usize, s: usize| k[r * 3 + s] as f64;
                // Columns first: t[i][s] = (G g)[i][s].
                let cols: [[f64; 6]; 3] = std::array::from_fn(|s| g(k(0, s), k(1, s), k(2, s)));
                let rows: [[f64; 6]; 6] =
                    std::array::from_fn(|i| g(cols[0][i], cols[1][i], cols[2][i]));
                for (i, row) in rows.iter().enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        let at = u_index(layout, i * 6 + j, mi, ci, m, c);
                        assert!(at < len);
                        // SAFETY: `at` is in bounds (checked), and the index of (ξ, mi, ci) is
                        // distinct for distinct `mi`, so tasks, which own distinct `mi`,
                        // never write the same element.
                        unsafe { dst.get().add(at).write(v as f32) };
                    }
                }
            }
        }
    });
    TransformedWeights { layout, m, c, u }
}

/// `out = epilogue(conv(x, w))` for the 3×3, stride-1 convolution `geo` (see [`applies`]), with
/// `u` from [`transform_weights`] in the layout `isa` reads ([`WeightLayout::of`]). `out` is
/// `n × m × oh × ow`; every element is written exactly once and none is read, so it may be
/// uninitialised (no zeroing pass over a large output). The epilogue's bias, clamp and mask
/// (a fused ReLU backward pass) are applied as each row is written; it has no residual here.
pub(crate) fn conv3x3(
    isa: Isa,
    x: &[f32],
    u: &TransformedWeights,
    geo: &ConvGeometry,
    out: &mut [MaybeUninit<f32>],
    epilogue: Epilogue,
) {
    let g = *geo;
    assert!(
        epilogue.mask.is_none_or(|(x, _)| x.len() == out.len()),
        "mask source of the output's size"
    );
    assert!(
        epilogue.residual.is_none(),
        "the Winograd route adds no residual"
    );
    assert_eq!(x.len(), g.n * g.c * g.plane_in(), "input size");
    assert_eq!(out.len(), g.output_len(), "output size");
    assert!(
        epilogue.bias.is_none_or(|b| b.len() == g.m),
        "one bias per output channel"
    );
    assert_eq!(
        (u.layout, u.m, u.c, u.u.len()),
        (WeightLayout::of(isa, g.m), g.m, g.c, 36 * g.m * g.c),
        "transformed weights for this route"
    );
    let tiles = g.tiles();
    let threads = rayon::current_num_threads().max(1);
    // Block size (tiles per task, the N of the 36 products): the transformed input and the
    // products of a block (36·(c + m)·block values) take at most 512 KB, under half of a core's
    // 1.25 MiB L2, leaving room for the weights of one transform position and the input rows;
    // but the products need at least 32 columns to run at full speed. Blocks of up to 2 MB
    // (4× this budget) were 10–20 % slower on the block4_conv1 ascent and the single-image
    // gradient (design.md, "Winograd").
    let budget: usize = (128 << 10) / (36 * (g.c + g.m));
    let per_thread = tiles.div_ceil(threads).next_multiple_of(LANES);
    let block = budget
        .clamp(32, 512)
        .next_multiple_of(LANES)
        .min(per_thread);
    let blocks = tiles.div_ceil(block);
    // Fewer blocks than threads (a small map, such as VGG16's 15×15 block5 at batch 1: 16
    // tiles, one block): each block's output channels are split among tasks too, each task
    // transforming the block's input itself (a small part of the work at these sizes) and
    // reading only its channels' weights. The vector products take panels of 8 channels;
    // the `gemm` crate's transposed layout stays whole.
    let parts = if u.layout == WeightLayout::Panels {
        threads.div_ceil(blocks).min(g.m / 8).max(1)
    } else {
        1
    };
    let per_part = if parts == 1 {
        g.m
    } else {
        (g.m / 8).div_ceil(parts) * 8
    };
    let dst = SharedOut(out.as_mut_ptr().cast::<f32>());
    for_each_task(blocks * parts, |task| {
        let (b, part) = (task / parts, task % parts);
        let first = b * block;
        let count = block.min(tiles - first);
        let channels = part * per_part..((part + 1) * per_part).min(g.m);
        if channels.is_empty() {
            return;
        }
        SCRATCH.with(|s| {
            let (v, mm) = &mut *s.borrow_mut();
            // SAFETY: task (b, part) writes only output channels `channels` of the tiles
            // first..first+count, which no other task touches, and every write stays inside
            // `out` (checked sizes above).
            unsafe { run_block(isa, x, u, &g, first, count, channels, v, mm, dst, epilogue) };
        });
    });
}

thread_local! {
    /// Per-thread buffers for the transformed input and the products. Every value is written
    /// before it is read, so they only grow and are never cleared (zeroing 8 MiB per block cost
    /// a fifth of the time).
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Transforms tiles `first..first + count`, multiplies them by the weights of output channels
/// `channels` (whole panels of 8, or every channel on the transposed layout) and writes those
/// channels back.
///
/// # Safety
/// `out` must point to the `n × m × oh × ow` output, and no other thread may write these output
/// channels of the block's tiles during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn run_block(
    isa: Isa,
    x: &[f32],
    u: &TransformedWeights,
    g: &ConvGeometry,
    first: usize,
    count: usize,
    channels: Range<usize>,
    v: &mut Vec<f32>,
    mm: &mut Vec<f32>,
    out: SharedOut,
    epilogue: Epilogue,
) {
    let width = count.next_multiple_of(LANES);
    let ms = channels.len();
    assert!(
        channels.end <= g.m
            && (channels.start.is_multiple_of(8) && ms.is_multiple_of(8) || ms == g.m),
        "whole panels of output channels"
    );
    if v.len() < 36 * g.c * width {
        v.resize(36 * g.c * width, 0.0);
    }
    if mm.len() < 36 * ms * width {
        mm.resize(36 * ms * width, 0.0);
    }
    transform_input(isa, x, g, first, count, width, v);
    for xi in 0..36 {
        let v_xi = &v[xi * g.c * width..(xi + 1) * g.c * width];
        let mm_xi = &mut mm[xi * ms * width..(xi + 1) * ms * width];
        if u.layout == WeightLayout::Panels {
            // Panels of 8 channels follow each other, so these channels' panels are one run.
            let u_xi = &u.u[(xi * g.m + channels.start) * g.c..(xi * g.m + channels.end) * g.c];
            // SAFETY: the panel layout is only chosen on a vector path of `isa` (asserted by
            // `conv3x3`); sizes as documented there.
            unsafe { product_on(Path::of(isa), u_xi, v_xi, mm_xi, ms, g.c, width) };
            continue;
        }
        assert_eq!(ms, g.m, "the transposed layout is multiplied whole");
        let u_xi = &u.u[xi * g.m * g.c..(xi + 1) * g.m * g.c];
        // SAFETY: `mm_xi` is exclusively borrowed and sized m·width; `u_xi` is read as its
        // transpose (c × m stored, m × c used).
        unsafe {
            matmul_raw(
                u_xi,
                Mat::row_major(g.c, g.m).t(),
                v_xi,
                Mat::row_major(g.c, width),
                mm_xi.as_mut_ptr(),
                Mat::row_major(g.m, width),
                false,
                1,
            )
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe { transform_output(isa, mm, g, first, count, width, channels, out, epilogue) };
}

multiversion! {
    /// `mm = U · V` for one transform position: `ut` holds `U` (`m × c`, m a multiple of 8) as
    /// `m/8` panels of `c × 8`, `v` is `c × width` and `mm` is `m × width` (width a multiple of 16),
    /// row-major.
    ///
    /// No packing at run time: `V` rows are already contiguous runs of tiles, which the kernel loads
    /// as vectors, and each `U` panel holds the 8 output channels of a block side by side, read
    /// front to back (a `c × m` layout strided by `m` floats aliased in L1 and ran slower than the
    /// gemm crate). On AVX-512, blocks of 8 × 48 outputs live in 24 registers through the whole
    /// sum over channels (3 loads, 8 broadcasts, 24 FMAs per channel; 8 × 32 measured the same);
    /// with 16 registers (AVX2), blocks of 4 × 24 (12 accumulators), each panel in two halves;
    /// then narrower blocks for the last columns (4 vectors as 2 + 2: the 32-tile blocks on
    /// AVX2). The gemm crate repacked both operands on
    /// every call, which cost as much as the multiplications at these sizes (design.md,
    /// "Winograd").
    ///
    /// # Safety
    /// A vector path of this CPU; the slices must have the sizes above.
    unsafe fn product_on(
        ut: &[f32],
        v: &[f32],
        mm: &mut [f32],
        m: usize,
        c: usize,
        width: usize,
    ) => product_generic
}

#[inline(always)]
unsafe fn product_generic<S: Simd>(
    ut: &[f32],
    v: &[f32],
    mm: &mut [f32],
    m: usize,
    c: usize,
    width: usize,
) {
    assert!(m.is_multiple_of(8) && width.is_multiple_of(LANES));
    assert!(ut.len() >= c * m && v.len() >= c * width && mm.len() >= m * width);
    let (up, vp, op) = (ut.as_ptr(), v.as_ptr(), mm.as_mut_ptr());
    let l = S::LANES;
    let sub = if S::REGISTERS >= 32 { 8 } else { 4 };
    for m0 in (0..m).step_by(8) {
        for r0 in (0..8).step_by(sub) {
            let at = Tile {
                up,
                vp,
                op,
                c,
                width,
                m0,
                r0,
            };
            // 3 vectors of columns at a time, but 4 as 2 + 2 rather than 3 + 1 (width is a
            // multiple of 16, so of every path's vector). A 1-vector block has R chains of
            // multiply-adds: on AVX2 (R = 4) too few to cover two FMA units' latency, and
            // the 32-tile blocks every VGG16 layer takes are 4 vectors wide there.
            // SAFETY (all calls): rows ci < c of `v` hold `width` values and each call reads
            // columns t0..t0 + LANES·NV ≤ width; panel m0/8 of `ut` holds c·8 values, m0 + 8 ≤
            // m; rows m0..m0+8 of `mm` hold `width` values. Checked by the asserts above.
            let mut t0 = 0;
            while t0 < width {
                let vectors = match (width - t0) / l {
                    1 => 1,
                    2 | 4 => 2,
                    _ => 3,
                };
                unsafe {
                    match vectors {
                        1 => micro_tile_rows::<S, 1>(&at, sub, t0),
                        2 => micro_tile_rows::<S, 2>(&at, sub, t0),
                        _ => micro_tile_rows::<S, 3>(&at, sub, t0),
                    }
                }
                t0 += vectors * l;
            }
        }
    }
}

/// Where [`micro_tile`] reads and writes: the operands of [`product_generic`] and the block's
/// first output channel (`m0 + r0`: a panel, and the half of it on AVX2).
struct Tile {
    up: *const f32,
    vp: *const f32,
    op: *mut f32,
    c: usize,
    width: usize,
    m0: usize,
    r0: usize,
}

/// [`micro_tile`] with `sub` (8 or 4) rows.
///
/// # Safety
/// As the calls in [`product_generic`].
#[inline(always)]
unsafe fn micro_tile_rows<S: Simd, const NV: usize>(at: &Tile, sub: usize, t0: usize) {
    // SAFETY: forwarded.
    unsafe {
        if sub == 8 {
            micro_tile::<S, 8, NV>(at, t0)
        } else {
            micro_tile::<S, 4, NV>(at, t0)
        }
    }
}

/// One R × LANES·NV block of [`product_generic`]: the sum over all `c` input channels, in
/// registers.
///
/// # Safety
/// As the calls in [`product_generic`].
#[inline(always)]
unsafe fn micro_tile<S: Simd, const R: usize, const NV: usize>(at: &Tile, t0: usize) {
    // SAFETY: the caller's contract covers every offset below.
    unsafe {
        let mut acc = [[S::zero(); NV]; R];
        for ci in 0..at.c {
            let row = at.vp.add(ci * at.width + t0);
            let b: [S::V; NV] = std::array::from_fn(|j| S::load(row.add(S::LANES * j)));
            let u = at.up.add((at.m0 / 8 * at.c + ci) * 8 + at.r0);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a = S::splat(*u.add(r));
                for (acc_rj, &bj) in acc_r.iter_mut().zip(&b) {
                    *acc_rj = S::fmadd(a, bj, *acc_rj);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let dst = at.op.add((at.m0 + at.r0 + r) * at.width + t0);
            for (j, &v) in acc_r.iter().enumerate() {
                S::store(dst.add(S::LANES * j), v);
            }
        }
    }
}

/// Position of tile `t`: image, first output row and column.
#[inline]
fn tile_origin(g: &ConvGeometry, t: usize) -> (usize, usize, usize) {
    let (th, tw) = (g.tiles_h(), g.tiles_w());
    let img = t / (th * tw);
    let r = t % (th * tw);
    (img, (r / tw) * 4, (r % tw) * 4)
}

/// A run of consecutive tiles of one tile row: image, output row and column of the first tile,
/// number of tiles, and the run's first column in the block's matrices.
struct Run {
    img: usize,
    oy: usize,
    ox: usize,
    len: usize,
    col: usize,
}

/// The runs of tiles `first..first + count`.
fn runs(g: &ConvGeometry, first: usize, count: usize) -> impl Iterator<Item = Run> + '_ {
    let tw = g.tiles_w();
    let mut t = first;
    std::iter::from_fn(move || {
        (t < first + count).then(|| {
            let (img, oy, ox) = tile_origin(g, t);
            let len = (tw - ox / 4).min(first + count - t);
            let run = Run {
                img,
                oy,
                ox,
                len,
                col: t - first,
            };
            t += len;
            run
        })
    })
}

/// `V = Bᵀ d B` of every tile and channel, into 36 matrices `c × width`.
///
/// Works on whole runs of tiles so that every loop reads and writes contiguous memory: each of
/// the six input rows under a run is transformed horizontally (`d B`, tiles 4 columns apart),
/// then the six results are combined vertically (`Bᵀ ·`) one contiguous vector at a time.
fn transform_input(
    isa: Isa,
    x: &[f32],
    g: &ConvGeometry,
    first: usize,
    count: usize,
    width: usize,
    v: &mut [f32],
) {
    let path = Path::of(isa);
    if path.vector() {
        // SAFETY: a vector path of this CPU; `run_block` sizes the slices.
        return unsafe { vector::transform_input_on(path, x, g, first, count, width, v) };
    }
    transform_input_portable(x, g, first, count, width, v)
}

/// The portable [`transform_input`].
fn transform_input_portable(
    x: &[f32],
    g: &ConvGeometry,
    first: usize,
    count: usize,
    width: usize,
    v: &mut [f32],
) {
    let plane = g.h.input * g.w.input;
    let tw = g.tiles_w();
    // The input row under a run, split by column phase: ph[p][t] = row[4t + p], so that the
    // horizontal transform reads contiguous vectors (d4, d5 are the next tile's phases 0, 1).
    let mut ph = vec![0.0f32; 4 * (tw + 1)];
    // h[(r·6 + k)·tw + t]: row r of tile t's patch, transformed horizontally, component k.
    let mut h = vec![0.0f32; 36 * tw];
    for run in runs(g, first, count) {
        let n = run.len;
        let span = 4 * n + 2;
        let left = run.ox as isize - g.w.pad_begin as isize;
        // Input columns inside the image.
        let c_lo = left.max(0) as usize;
        let c_hi = ((left + span as isize).min(g.w.input as isize)).max(c_lo as isize) as usize;
        for ci in 0..g.c {
            let src = &x[(run.img * g.c + ci) * plane..][..plane];
            for r in 0..6 {
                let ir = run.oy as isize - g.h.pad_begin as isize + r as isize;
                let stride = tw + 1;
                let inside = ir >= 0 && (ir as usize) < g.h.input;
                // Position i = col - left of each input column.
                let i_lo = (c_lo as isize - left) as usize;
                let i_hi = (c_hi as isize - left) as usize;
                // Zeros only where padding is read: a row fully inside fills every phase value
                // the transform reads (filling them all anyway cost 3 % of a VGG ascent).
                if !inside || i_lo > 0 || i_hi < span {
                    ph.fill(0.0);
                }
                if inside {
                    let row = &src[ir as usize * g.w.input..(ir as usize + 1) * g.w.input];
                    // Unaligned ends one by one, the aligned middle four at a time.
                    let a_lo = i_lo.next_multiple_of(4).min(i_hi);
                    let a_hi = (i_hi / 4 * 4).max(a_lo);
                    let mut put =
                        |i: usize| ph[(i % 4) * stride + i / 4] = row[(i as isize + left) as usize];
                    (i_lo..a_lo).for_each(&mut put);
                    (a_hi..i_hi).for_each(&mut put);
                    let mid =
                        &row[(a_lo as isize + left) as usize..(a_hi as isize + left) as usize];
                    let (q0, rest) = ph.split_at_mut(stride);
                    let (q1, rest) = rest.split_at_mut(stride);
                    let (q2, q3) = rest.split_at_mut(stride);
                    let t0 = a_lo / 4;
                    for (t, c) in mid.chunks_exact(4).enumerate() {
                        q0[t0 + t] = c[0];
                        q1[t0 + t] = c[1];
                        q2[t0 + t] = c[2];
                        q3[t0 + t] = c[3];
                    }
                }
                let (p0, rest) = ph.split_at(stride);
                let (p1, rest) = rest.split_at(stride);
                let (p2, p3) = rest.split_at(stride);
                let hr = &mut h[r * 6 * tw..(r + 1) * 6 * tw];
                let (h0, rest) = hr.split_at_mut(tw);
                let (h1, rest) = rest.split_at_mut(tw);
                let (h2, rest) = rest.split_at_mut(tw);
                let (h3, rest) = rest.split_at_mut(tw);
                let (h4, h5) = rest.split_at_mut(tw);
                // Equal lengths up front, so the loop below has no bounds checks and vectorises.
                let (h0, h1, h2) = (&mut h0[..n], &mut h1[..n], &mut h2[..n]);
                let (h3, h4, h5) = (&mut h3[..n], &mut h4[..n], &mut h5[..n]);
                let (d0, d1, d2, d3) = (&p0[..n], &p1[..n], &p2[..n], &p3[..n]);
                let (d4, d5) = (&p0[1..n + 1], &p1[1..n + 1]);
                apply_bt([d0, d1, d2, d3, d4, d5], [h0, h1, h2, h3, h4, h5]);
            }
            for k in 0..6 {
                let d = |r: usize| &h[(r * 6 + k) * tw..(r * 6 + k) * tw + n];
                let (d0, d1, d2, d3, d4, d5) = (d(0), d(1), d(2), d(3), d(4), d(5));
                let at = |i: usize| ((i * 6 + k) * g.c + ci) * width + run.col;
                let (o0, o1, o2, o3, o4, o5) =
                    six_rows(v, [at(0), at(1), at(2), at(3), at(4), at(5)], n);
                apply_bt([d0, d1, d2, d3, d4, d5], [o0, o1, o2, o3, o4, o5]);
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

/// `o = Bᵀ d` element by element: six rows in, six rows out, all of one length (the one 1-D
/// input transform, applied along rows and then along columns). The rows of Bᵀ are written
/// out so no multiply by zero is left to do; equal lengths up front let the loop vectorise
/// without bounds checks.
#[inline(always)]
fn apply_bt(d: [&[f32]; 6], o: [&mut [f32]; 6]) {
    let [d0, d1, d2, d3, d4, d5] = d;
    let [o0, o1, o2, o3, o4, o5] = o;
    let n = o0.len();
    let (d0, d1, d2, d3, d4, d5) = (&d0[..n], &d1[..n], &d2[..n], &d3[..n], &d4[..n], &d5[..n]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..n],
        &mut o2[..n],
        &mut o3[..n],
        &mut o4[..n],
        &mut o5[..n],
    );
    for t in 0..n {
        o0[t] = 4.0 * d0[t] - 5.0 * d2[t] + d4[t];
        o1[t] = -4.0 * (d1[t] + d2[t]) + d3[t] + d4[t];
        o2[t] = 4.0 * (d1[t] - d2[t]) - d3[t] + d4[t];
        o3[t] = 2.0 * (d3[t] - d1[t]) - d2[t] + d4[t];
        o4[t] = 2.0 * (d1[t] - d3[t]) - d2[t] + d4[t];
        o5[t] = 4.0 * d1[t] - 5.0 * d3[t] + d5[t];
    }
}

/// Six disjoint `n`-long windows of `v` starting at increasing offsets `at`.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn six_rows(
    v: &mut [f32],
    at: [usize; 6],
    n: usize,
) -> (
    &mut [f32],
    &mut [f32],
    &mut [f32],
    &mut [f32],
    &mut [f32],
    &mut [f32],
) {
    let (a, rest) = v[at[0]..].split_at_mut(at[1] - at[0]);
    let (b, rest) = rest.split_at_mut(at[2] - at[1]);
    let (c, rest) = rest.split_at_mut(at[3] - at[2]);
    let (d, rest) = rest.split_at_mut(at[4] - at[3]);
    let (e, f) = rest.split_at_mut(at[5] - at[4]);
    (
        &mut a[..n],
        &mut b[..n],
        &mut c[..n],
        &mut d[..n],
        &mut e[..n],
        &mut f[..n],
    )
}

/// `Y = Aᵀ M A` of every tile and of output channels `channels`, with the epilogue, written
/// into the output. `mm` holds the products of those channels only (`36 × channels × width`).
///
/// # Safety
/// As [`run_block`].
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output(
    isa: Isa,
    mm: &[f32],
    g: &ConvGeometry,
    first: usize,
    count: usize,
    width: usize,
    channels: Range<usize>,
    out: SharedOut,
    epilogue: Epilogue,
) {
    let path = Path::of(isa);
    if path.vector() {
        // SAFETY: a vector path of this CPU; the rest is the caller's.
        return unsafe {
            vector::transform_output_on(path, mm, g, first, count, width, channels, out, epilogue)
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe { transform_output_portable(mm, g, first, count, width, channels, out, epilogue) }
}

/// The portable [`transform_output`].
///
/// # Safety
/// As [`run_block`].
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output_portable(
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
    assert!(mm.len() >= 36 * ms * width && channels.end <= g.m);
    let Epilogue {
        bias, act, mask, ..
    } = epilogue;
    let plane = g.h.output * g.w.output;
    let tw = g.tiles_w();
    // r[(i·6 + s)·tw + t]: row i of (Aᵀ M) for column s of tile t.
    let mut rb = vec![0.0f32; 24 * tw];
    // One output row of a run, split by column phase: ybuf[p·n + t] = y[4t + p].
    let mut ybuf = vec![0.0f32; 4 * tw];
    for run in runs(g, first, count) {
        let n = run.len;
        // Output columns of this run (the last tile may be cut by the image's edge).
        let cols = (g.w.output - run.ox).min(4 * n);
        for mi in channels.clone() {
            for s in 0..6 {
                let m = |r: usize| {
                    let o = ((r * 6 + s) * ms + mi - channels.start) * width + run.col;
                    &mm[o..o + n]
                };
                let (m0, m1, m2, m3, m4, m5) = (m(0), m(1), m(2), m(3), m(4), m(5));
                let (r0, rest) = rb.split_at_mut(6 * tw);
                let (r1, rest) = rest.split_at_mut(6 * tw);
                let (r2, r3) = rest.split_at_mut(6 * tw);
                let (r0, r1, r2, r3) = (
                    &mut r0[s * tw..s * tw + n],
                    &mut r1[s * tw..s * tw + n],
                    &mut r2[s * tw..s * tw + n],
                    &mut r3[s * tw..s * tw + n],
                );
                for t in 0..n {
                    let (s12, d12, s34, d34) =
                        (m1[t] + m2[t], m1[t] - m2[t], m3[t] + m4[t], m3[t] - m4[t]);
                    r0[t] = m0[t] + s12 + s34;
                    r1[t] = d12 + 2.0 * d34;
                    r2[t] = s12 + 4.0 * s34;
                    r3[t] = d12 + 8.0 * d34 + m5[t];
                }
            }
            for i in 0..4.min(g.h.output - run.oy) {
                let q = |s: usize| &rb[(i * 6 + s) * tw..(i * 6 + s) * tw + n];
                let (q0, q1, q2, q3, q4, q5) = (q(0), q(1), q(2), q(3), q(4), q(5));
                let offset = (run.img * g.m + mi) * plane + (run.oy + i) * g.w.output + run.ox;
                let bias = bias.map_or(0.0, |b| b[mi]);
                let ys = &mut ybuf[..4 * n];
                let (y0, rest) = ys.split_at_mut(n);
                let (y1, rest) = rest.split_at_mut(n);
                let (y2, y3) = rest.split_at_mut(n);
                for t in 0..n {
                    let (s12, d12) = (q1[t] + q2[t], q1[t] - q2[t]);
                    let (s34, d34) = (q3[t] + q4[t], q3[t] - q4[t]);
                    y0[t] = q0[t] + s12 + s34 + bias;
                    y1[t] = d12 + 2.0 * d34 + bias;
                    y2[t] = s12 + 4.0 * s34 + bias;
                    y3[t] = d12 + 8.0 * d34 + q5[t] + bias;
                }
                // In this (AVX2) loop rather than through `Clamp::apply`: a dispatched call per
                // row of 32 values on 32×32 maps was 2 % of a filter ascent (perf).
                if let Some(Clamp { lo, hi }) = act {
                    ybuf[..4 * n]
                        .iter_mut()
                        .for_each(|v| *v = v.max(lo).min(hi));
                }
                let dst = out.get().wrapping_add(offset);
                let mask = mask.map(|(src, c)| (&src[offset..offset + cols], c));
                // SAFETY: these `cols` output values of row oy+i belong to this run's tiles,
                // which only this block writes (the caller's contract), and lie inside `out`;
                // they are written, never read (the output may be uninitialised).
                unsafe { write_phases(dst, &ybuf[..4 * n], n, cols, mask) };
            }
        }
    }
}

/// Writes one output row from its four column phases (`phases[p·n + t] = y[4t + p]`),
/// zeroing the values whose mask source fails the clamp.
///
/// # Safety
/// `dst` must be valid for `cols` writes (`cols ≤ 4n`) that no other thread makes.
#[inline(always)]
unsafe fn write_phases(
    dst: *mut f32,
    phases: &[f32],
    n: usize,
    cols: usize,
    mask: Option<(&[f32], Clamp)>,
) {
    assert!(cols <= 4 * n && phases.len() == 4 * n && mask.is_none_or(|(m, _)| m.len() == cols));
    let keep = |j: usize, v: f32| match mask {
        Some((src, c)) if !c.passes(src[j]) => 0.0,
        _ => v,
    };
    for j in 0..cols {
        // SAFETY: j < cols (the caller's contract).
        unsafe { dst.add(j).write(keep(j, phases[(j % 4) * n + j / 4])) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 3×3 convolution, in f64.
    /// Deterministic input and 3×3 weights in -0.5..0.5 for `g`.
    fn inputs(g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
        let x = (0..g.n * g.c * g.h.input * g.w.input)
            .map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5)
            .collect();
        let w = (0..g.m * g.c * 9)
            .map(|i| ((i * 104_729) % 997) as f32 / 997.0 - 0.5)
            .collect();
        (x, w)
    }

    fn direct(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f64> {
        let mut out = vec![0.0f64; g.n * g.m * g.h.output * g.w.output];
        for n in 0..g.n {
            for m in 0..g.m {
                for oy in 0..g.h.output {
                    for ox in 0..g.w.output {
                        let mut s = 0.0f64;
                        for c in 0..g.c {
                            for r in 0..3 {
                                for q in 0..3 {
                                    let iy = (oy + r) as isize - g.h.pad_begin as isize;
                                    let ix = (ox + q) as isize - g.w.pad_begin as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy as usize >= g.h.input
                                        || ix as usize >= g.w.input
                                    {
                                        continue;
                                    }
                                    s += x[((n * g.c + c) * g.h.input + iy as usize) * g.w.input
                                        + ix as usize]
                                        as f64
                                        * w[((m * g.c + c) * 3 + r) * 3 + q] as f64;
                                }
                            }
                        }
                        out[((n * g.m + m) * g.h.output + oy) * g.w.output + ox] = s;
                    }
                }
            }
        }
        out
    }

    /// Runs `check` on the portable route, then (where the CPU has them) the AVX2 and the
    /// AVX-512 routes.
    fn on_every_route(check: impl Fn(Isa)) {
        for isa in crate::kernels::simd::test_isas() {
            check(isa);
        }
    }

    /// The geometry of a 3×3, stride-1 convolution.
    #[allow(clippy::too_many_arguments)]
    fn geometry(
        n: usize,
        c: usize,
        m: usize,
        (ih, iw): (usize, usize),
        (pad_top, pad_left): (usize, usize),
        (oh, ow): (usize, usize),
    ) -> ConvGeometry {
        let axis = |input, output, pad_begin| crate::kernels::geometry::Axis {
            input,
            output,
            kernel: 3,
            stride: 1,
            dilation: 1,
            pad_begin,
        };
        ConvGeometry {
            n,
            c,
            m,
            groups: 1,
            h: axis(ih, oh, pad_top),
            w: axis(iw, ow, pad_left),
        }
    }

    #[test]
    fn matches_direct_convolution_on_odd_shapes_and_pads() {
        on_every_route(matches_direct_convolution);
    }

    fn matches_direct_convolution(isa: Isa) {
        // (n, c, m, ih, iw, pad_top, pad_left, oh, ow): partial tiles, asymmetric and no padding,
        // rows of 1, 2 and more than 16 tiles (one vector of tiles and a remainder), a row
        // wider than four vectors of tiles, pads of 2 and rows read past the image's edge.
        for &(n, c, m, ih, iw, pt, pl, oh, ow) in &[
            (1, 16, 8, 5, 70, 1, 2, 7, 71),
            (2, 3, 8, 4, 4, 1, 1, 4, 4),
            (1, 2, 8, 3, 5, 2, 2, 5, 7),
            (2, 5, 7, 11, 9, 1, 1, 11, 9),
            (1, 3, 2, 6, 6, 0, 0, 4, 4),
            (3, 4, 3, 13, 7, 0, 2, 11, 8),
            (1, 17, 33, 23, 21, 1, 1, 23, 21),
            (1, 32, 64, 15, 30, 1, 1, 15, 30),
            // Whole groups of 8 and 16 tiles inside the image, one ending exactly at the end
            // of the row (and of the input), and a row of 9 tiles between two pads.
            (1, 16, 16, 10, 66, 0, 0, 8, 64),
            (2, 16, 8, 8, 34, 0, 0, 6, 32),
            (1, 16, 16, 6, 33, 1, 1, 6, 33),
        ] {
            let g = geometry(n, c, m, (ih, iw), (pt, pl), (oh, ow));
            let (x, w) = inputs(&g);
            let u = transform_weights(&w, m, c, WeightLayout::of(isa, m));
            let bias = vec![0.25f32; m];
            let mut out = vec![MaybeUninit::new(f32::NAN); n * m * oh * ow];
            let epilogue = Epilogue {
                bias: Some(&bias),
                ..Epilogue::default()
            };
            conv3x3(isa, &x, &u, &g, &mut out, epilogue);
            // SAFETY: every element was initialised above (NaN), and written by conv3x3.
            let out: Vec<f32> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
            let want = direct(&x, &w, &g);
            let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for (i, (&a, &b)) in out.iter().zip(&want).enumerate() {
                let err = (a as f64 - 0.25 - b).abs();
                assert!(
                    err < 1e-5 * scale,
                    "{isa:?} {n}x{c}->{m} {ih}x{iw} at {i}: {a} vs {b}"
                );
            }
        }
    }

    /// Maps of a single block of tiles with more threads than blocks: each block's output
    /// channels are split among tasks (unevenly when the panels do not divide). Every value
    /// against the direct convolution, and bit for bit against the same call on one thread.
    #[test]
    fn few_tiles_split_their_output_channels_among_threads() {
        on_every_route(few_tiles_split_output_channels);
    }

    fn few_tiles_split_output_channels(isa: Isa) {
        let pool = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
        };
        // (n, c, m, size, threads): 5 panels over 3 threads (16 + 16 + 8 channels), 8 panels over 5, a
        // batch of two 7×7 maps in one block, and 12 channels (no panels: one task).
        for &(n, c, m, hw, threads) in &[
            (1, 24, 40, 9, 3),
            (1, 16, 64, 15, 5),
            (2, 16, 64, 7, 2),
            (1, 16, 12, 9, 4),
        ] {
            let g = geometry(n, c, m, (hw, hw), (1, 1), (hw, hw));
            let (x, w) = inputs(&g);
            let u = transform_weights(&w, m, c, WeightLayout::of(isa, m));
            let bias: Vec<f32> = (0..m).map(|i| i as f32 / 8.0).collect();
            let run = |threads: usize| {
                let mut out = vec![MaybeUninit::new(f32::NAN); n * m * hw * hw];
                let epilogue = Epilogue {
                    bias: Some(&bias),
                    ..Epilogue::default()
                };
                pool(threads).install(|| conv3x3(isa, &x, &u, &g, &mut out, epilogue));
                // SAFETY: every element was initialised above (NaN), and written by conv3x3.
                out.iter()
                    .map(|v| unsafe { v.assume_init() })
                    .collect::<Vec<f32>>()
            };
            let (split, whole) = (run(threads), run(1));
            let want = direct(&x, &w, &g);
            let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let plane = hw * hw;
            for (i, (&a, &b)) in split.iter().zip(&want).enumerate() {
                let err = (a as f64 - bias[(i / plane) % m] as f64 - b).abs();
                assert!(
                    err < 1e-5 * scale,
                    "{isa:?} {n}x{c}->{m} {hw}x{hw} on {threads} threads at {i}: {a} vs {b}"
                );
            }
            assert!(
                split
                    .iter()
                    .zip(&whole)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{isa:?} {n}x{c}->{m} {hw}x{hw}: {threads} threads differ from one"
            );
        }
    }

    /// Rows wide enough for the vectorised write (64 values per step, then a scalar tail),
    /// with bias, clamp and mask: every value against the direct convolution.
    #[test]
    fn epilogue_on_wide_rows_clamps_and_masks() {
        on_every_route(epilogue_clamps_and_masks);
    }

    fn epilogue_clamps_and_masks(isa: Isa) {
        let (n, c, m, ih, iw) = (2, 16, 16, 9, 150);
        let g = geometry(n, c, m, (ih, iw), (1, 1), (ih, iw));
        let (x, w) = inputs(&g);
        let src: Vec<f32> = (0..n * m * ih * iw)
            .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let u = transform_weights(&w, m, c, WeightLayout::of(isa, m));
        let bias: Vec<f32> = (0..m).map(|i| i as f32 / 10.0 - 0.8).collect();
        let clamp = Clamp { lo: 0.0, hi: 1.5 };
        let mut out = vec![MaybeUninit::new(f32::NAN); n * m * ih * iw];
        let epilogue = Epilogue {
            bias: Some(&bias),
            act: Some(clamp),
            mask: Some((&src, clamp)),
            residual: None,
        };
        conv3x3(isa, &x, &u, &g, &mut out, epilogue);
        let want = direct(&x, &w, &g);
        let plane = ih * iw;
        for (i, (o, &d)) in out.iter().zip(&want).enumerate() {
            // SAFETY: initialised above (NaN), and written by conv3x3.
            let got = unsafe { o.assume_init() } as f64;
            let mut e = (d + bias[(i / plane) % m] as f64).clamp(0.0, 1.5);
            if !clamp.passes(src[i]) {
                e = 0.0;
            }
            assert!((got - e).abs() < 1e-4, "{isa:?} value {i}: {got} vs {e}");
        }
    }
}
