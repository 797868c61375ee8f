//! Depthwise convolution (group = C = M: one filter per channel), forward and input gradient.
//!
//! Channels go 16 at a time, one per vector lane, laid out channels-last in a padded buffer
//! (`[rows][cols][16]`), so every tap of every output is one 16-wide multiply-add whatever the
//! stride, dilation or plane size. A loop per plane (one channel at a time, vectorised along the
//! row) ran at 1–3 GFLOP/s on EfficientNet's 7×7 and 14×14 planes and its stride-2 layers: rows
//! of 7–14 values are too short to vectorise, and strided taps gather.
//!
//! The forward pass works in strips of output rows whose buffers fit in about 64 KB, so the
//! planes are read once, transposed into lanes while in L1, and the outputs are transposed back
//! (with bias and activation) and written once. On AVX-512 both transposes are 16×16 register
//! transposes (design.md, "Depthwise convolutions").
//!
//! On AVX-512, stride-1 forward passes with rows of at least 56 outputs skip the transposes:
//! [`planes`] convolves each NCHW plane, 16 outputs of a row per vector, from a zero-padded
//! copy of the plane. On AVX2 and NEON, a 1×1 convolution fused before the layer writes its
//! output straight into the padded cells ([`forward_into_cells`]), skipping the transpose in.

use super::epilogue::{self, Clamp, Epilogue};
use super::geometry::{Axis, ConvGeometry};
use super::panel::{self, PANEL};
use super::simd::{multiversion, Path, Simd};
use crate::runtime::cpu::Isa;
use crate::runtime::pool::{for_each_range, for_each_task, SharedOut};

pub(crate) mod block;
mod planes;

/// Channels a depthwise task handles together, one per vector lane.
pub(crate) const LANES: usize = 16;
/// The 16 lanes of one position: one value per channel of a group.
///
/// Aligned to a cache line: as plain `[f32; 16]` the buffers came 16-byte aligned from the
/// allocator and every 64-byte load or store of a cell straddled two lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Cell(pub [f32; LANES]);

impl std::ops::Deref for Cell {
    type Target = [f32; LANES];
    fn deref(&self) -> &[f32; LANES] {
        &self.0
    }
}

impl std::ops::DerefMut for Cell {
    fn deref_mut(&mut self) -> &mut [f32; LANES] {
        &mut self.0
    }
}

const ZERO: Cell = Cell([0.0; LANES]);

/// Cells (of 16 floats) a forward strip's input rows plus one output row may take: 64 KB, so
/// that the strip stays in L1/L2 between its transpose in, its taps and its transpose out.
const STRIP_CELLS: usize = 1024;

/// Below this many multiply-adds per task, tasks are grouped (see `MIN_TASK_MACS` in conv.rs).
const MIN_TASK_MACS: usize = 1 << 17;

/// The depthwise convolution's view of its geometry (`groups = c = m`, one filter per channel).
impl ConvGeometry {
    /// Groups of 16 channels, one channel per vector lane.
    fn lane_groups(&self) -> usize {
        self.c.div_ceil(LANES)
    }
    /// Checks the sizes of a forward pass's weights in lanes, output and bias.
    fn check_depthwise(&self, lane_taps: &[Cell], out: usize, bias: Option<&[f32]>) {
        assert!(self.depthwise(), "one filter per channel");
        assert_eq!(
            lane_taps.len(),
            self.lane_groups() * self.taps(),
            "depthwise weights in lanes"
        );
        assert_eq!(out, self.output_len(), "depthwise output");
        assert!(bias.is_none_or(|b| b.len() == self.c), "depthwise bias");
    }
}

/// `out = epilogue(depthwise(x, w))` for the depthwise convolution `g`; writes every one of
/// the `n·c·oh·ow` values of `out`. `lanes` is `w` as [`pack_lanes`] lays it out (kept by the
/// caller across calls: building it was a tenth of a 7×7 layer's time). The bias and clamp are
/// applied in the kernels, the mask in a pass over the output; there is no residual here.
pub(crate) fn forward(
    isa: Isa,
    x: &[f32],
    w: &[f32],
    lanes: &[Cell],
    out: &mut [std::mem::MaybeUninit<f32>],
    g: &ConvGeometry,
    epi: Epilogue,
) {
    assert!(
        epi.residual.is_none(),
        "the depthwise route adds no residual"
    );
    let (bias, act) = (epi.bias, epi.act);
    if runs_on_planes(isa, g) {
        assert_eq!(out.len(), g.output_len(), "depthwise output");
        // SAFETY: a vector path (`runs_on_planes` checked `isa`) and `out` holds the
        // n·c·oh·ow values, exclusively borrowed.
        unsafe {
            planes::forward(
                Path::of(isa),
                x,
                w,
                bias,
                SharedOut(out.as_mut_ptr().cast()),
                g,
                act,
            )
        };
    } else {
        forward_with(Path::of(isa), x, lanes, bias, out, g, act);
    }
    if let Some((src, clamp)) = epi.mask {
        // SAFETY: both routes above wrote every value of `out`.
        let out = unsafe { &mut *(out as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
        epilogue::mask(isa, clamp, out, &src[..out.len()]);
    }
}

/// Whether [`forward`] runs `g` on the plane kernel (else on the strips).
pub(crate) fn runs_on_planes(isa: Isa, g: &ConvGeometry) -> bool {
    Path::of(isa).vector() && planes::supports(g)
}

fn forward_with(
    kernel: Path,
    x: &[f32],
    lane_taps: &[Cell],
    bias: Option<&[f32]>,
    out: &mut [std::mem::MaybeUninit<f32>],
    g: &ConvGeometry,
    act: Option<Clamp>,
) {
    let (h, wa) = (&g.h, &g.w);
    let (plane_in, p) = (h.input * wa.input, h.output * wa.output);
    let kk = g.taps();
    assert_eq!(x.len(), g.n * g.c * plane_in, "depthwise input");
    g.check_depthwise(lane_taps, out.len(), bias);
    let padded = Padded::new(h, wa);
    let rows = strip_rows(&padded);
    let strips = h.output.div_ceil(rows);
    let groups = g.lane_groups();
    let min_tasks = (MIN_TASK_MACS / (rows * wa.output * kk * LANES).max(1)).max(1);
    let dst = SharedOut(out.as_mut_ptr().cast::<f32>());
    for_each_range(g.n * groups * strips, min_tasks, |range| {
        for task in range {
            let (img, rest) = (task / (groups * strips), task % (groups * strips));
            let (c0, strip) = ((rest / strips) * LANES, rest % strips);
            let lanes = LANES.min(g.c - c0);
            let oh0 = strip * rows;
            let nrows = rows.min(h.output - oh0);
            let taps = &lane_taps[c0 / LANES * kk..][..kk];
            let bias = bias_cell(bias, c0, lanes);
            let planes = &x[(img * g.c + c0) * plane_in..][..lanes * plane_in];
            let strip = Strip {
                kernel,
                padded: &padded,
                taps,
                bias: &bias,
                act,
            };
            // SAFETY: planes (img, c0 .. c0 + lanes) of `out`, output rows oh0 .. oh0 + nrows:
            // values that only this task (image, channel group, strip) writes; `out` holds n·c·p
            // values.
            unsafe {
                strip.run(
                    Rows::whole(planes, g),
                    lanes,
                    oh0,
                    nrows,
                    dst.get().add((img * g.c + c0) * p + oh0 * wa.output),
                    p,
                )
            };
        }
    });
}

/// One channel group's share of a forward pass: its padding, weights, bias and activation.
struct Strip<'a> {
    kernel: Path,
    padded: &'a Padded,
    taps: &'a [Cell],
    bias: &'a Cell,
    act: Option<Clamp>,
}

impl Strip<'_> {
    /// Output rows `oh0 .. oh0 + nrows` of the `lanes` channels whose input planes are
    /// `planes` (see [`Rows`]). Output row `oh0 + r` of lane `l` goes to `first + r·ow + l·plane`.
    ///
    /// # Safety
    /// Those rows at `first` must be valid for writes that no other thread touches.
    unsafe fn run(
        &self,
        planes: Rows,
        lanes: usize,
        oh0: usize,
        nrows: usize,
        first: *mut f32,
        plane: usize,
    ) {
        let padded = self.padded;
        let nin = padded.rows_for(nrows);
        STRIP.with_borrow_mut(|buf| {
            // Grown, never shrunk: every cell a strip uses is written before it is read.
            let need = nin * padded.cols + padded.w.output;
            if buf.len() < need {
                buf.resize(need, ZERO);
            }
            let (input, orow) = buf[..need].split_at_mut(nin * padded.cols);
            for (r, row) in input.chunks_mut(padded.cols).enumerate() {
                padded.fill_row(self.kernel, &planes, lanes, oh0 * padded.h.stride + r, row);
            }
            // SAFETY: forwarded from the caller.
            unsafe { self.run_on(input, orow, lanes, nrows, first, plane) };
        });
    }

    /// [`Strip::run`] on a strip already laid out as padded cells: `input` row `i` is padded
    /// row `oh0·stride + i`. `orow` is room for one output row.
    ///
    /// # Safety
    /// As [`Strip::run`].
    unsafe fn run_on(
        &self,
        input: &[Cell],
        orow: &mut [Cell],
        lanes: usize,
        nrows: usize,
        first: *mut f32,
        plane: usize,
    ) {
        let ow = self.padded.w.output;
        let orow = &mut orow[..ow];
        for r in 0..nrows {
            taps_row(
                self.kernel,
                input,
                self.taps,
                self.bias,
                self.padded,
                r,
                orow,
                self.act,
            );
            // SAFETY: output row oh0 + r of the `lanes` planes at `first`, as the caller
            // promised.
            unsafe { store_row(self.kernel, orow, lanes, first.add(r * ow), plane) };
        }
    }
}

/// Where a strip's input rows lie: `lanes` planes `stride` values apart, input row `i` at
/// `(i % ring)·iw` of each (`ring` = the input's height for whole planes; fewer for a buffer
/// that holds only the last `ring` rows formed).
#[derive(Clone, Copy)]
struct Rows<'a> {
    planes: &'a [f32],
    stride: usize,
    ring: usize,
}

impl<'a> Rows<'a> {
    /// Whole input planes of `g`'s size, one after the other.
    fn whole(planes: &'a [f32], g: &ConvGeometry) -> Rows<'a> {
        Rows {
            planes,
            stride: g.h.input * g.w.input,
            ring: g.h.input.max(1),
        }
    }
}

/// The 1×1 convolution (with its clamp) whose output a depthwise layer reads: formed inside
/// the depthwise layer's tasks ([`forward_after_pointwise`]).
///
/// In a whole block ([`block::forward`]) it may also be a small ungrouped convolution of any
/// kernel, stride and pads (a network's stem: 3 → 32 channels, 3×3, stride 2), run as a 1×1
/// convolution over the im2col rows of its input: `im2col` is then its geometry, `x` its
/// input images and `k` the im2col rows (`c·kh·kw`).
pub(crate) struct Pointwise<'a> {
    /// Its input: `n` images of `k` planes, each of the depthwise layer's input size (with
    /// `im2col`: `n` images of the geometry's `c` input planes).
    pub x: &'a [f32],
    /// Its input channels (with `im2col`: rows of its im2col matrix).
    pub k: usize,
    /// Its weights as [`panel::pack`] lays them out (one group, `c` rows).
    pub packed: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub act: Option<Clamp>,
    /// The geometry of a convolution other than 1×1, whose im2col rows the block forms.
    pub im2col: Option<ConvGeometry>,
}

impl Pointwise<'_> {
    /// The same layer as a 1×1 convolution over `tile`: `k` rows of `plane` values (the
    /// im2col rows of the output positions a strip needs, as one image).
    fn over<'t>(&'t self, tile: &'t [f32]) -> Pointwise<'t> {
        Pointwise {
            x: tile,
            k: self.k,
            packed: self.packed,
            bias: self.bias,
            act: self.act,
            im2col: None,
        }
    }

    /// Input rows `rows` of channels `c0 .. c0 + lanes` of the 1×1 output for image `img`
    /// (whose input planes hold `plane` = `rows_total·width` values), into `planes`: channel
    /// `l`'s row `rows.start + i` at `l·stride + (at + i)·width`.
    ///
    /// # Safety
    /// The panel kernel must be available; `c0` a multiple of 8 below the packed rows, `lanes`
    /// at most the rows left; `rows` inside the planes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn form_rows(
        &self,
        isa: Isa,
        img: usize,
        c0: usize,
        lanes: usize,
        rows: std::ops::Range<usize>,
        (plane, width): (usize, usize),
        planes: &mut [f32],
        (stride, at): (usize, usize),
    ) {
        assert!(lanes > 0 && (lanes - 1) * stride + (at + rows.len()) * width <= planes.len());
        assert!(rows.end * width <= plane && self.x.len() >= (img + 1) * self.k * plane);
        let epi = Epilogue {
            bias: self.bias.map(|b| &b[c0..c0 + lanes]),
            act: self.act,
            ..Epilogue::default()
        };
        // SAFETY: the panel kernel is available (the caller's contract); B is rows `rows` of
        // the k input planes of image img (stride plane, inside `x`, asserted), the output
        // `rows.len()` rows of the `lanes` planes of `planes` from row `at` (asserted); the
        // weights from panel c0 / 8 on hold ceil(lanes / 8) panels of k·8 values (the
        // caller's contract).
        unsafe {
            panel::product(
                isa,
                &self.packed[c0 / PANEL * self.k * PANEL..],
                lanes,
                self.k,
                self.x[img * self.k * plane + rows.start * width..].as_ptr(),
                plane,
                rows.len() * width,
                planes[at * width..].as_mut_ptr(),
                stride,
                epi,
            )
        };
    }

    /// [`Pointwise::form_rows`] as cells, on a path of 4 or 8 lanes: input row
    /// `rows.start + i`, column `j < nc`, of channels `c0 .. c0 + lanes` of image `img`'s 1×1
    /// output goes to `cells[at + i·cols + j]` (every lane; those past `lanes` hold the
    /// clamp of 0).
    ///
    /// # Safety
    /// `kernel` is AVX2 or NEON on a CPU that has it; `c0` a multiple of 16 below the packed
    /// rows. (The sizes are checked here.)
    #[allow(clippy::too_many_arguments)]
    unsafe fn form_cells(
        &self,
        kernel: Path,
        img: usize,
        c0: usize,
        lanes: usize,
        rows: std::ops::Range<usize>,
        (plane, width): (usize, usize),
        nc: usize,
        cells: &mut [Cell],
        (at, cols): (usize, usize),
    ) {
        assert!(
            matches!(kernel, Path::Avx2 | Path::Neon),
            "a path of 4 or 8 lanes"
        );
        assert!(rows.end * width <= plane && self.x.len() >= (img + 1) * self.k * plane);
        assert!(nc <= width && nc <= cols);
        assert!(rows.is_empty() || at + (rows.len() - 1) * cols + nc <= cells.len());
        if rows.is_empty() || nc == 0 {
            return;
        }
        let out = vector::CellsOut {
            x: self.x[img * self.k * plane + rows.start * width..].as_ptr(),
            plane,
            n: rows.len() * width,
            width,
            nc,
            first: cells[at..].as_mut_ptr(),
            cols,
        };
        let halves = (self.packed.len() / (self.k * PANEL) - c0 / PANEL).min(2);
        // SAFETY: a path of 4 or 8 lanes (asserted; the CPU has it, the caller's contract);
        // rows `rows` of the k input planes of image img (asserted inside `x`); the cells
        // (i, j < nc) of the rows.len() rows at `at` inside `cells` (asserted); `halves`
        // panels from panel c0 / 8 on (the caller's contract on c0).
        unsafe {
            vector::pointwise_cells(
                kernel,
                &self.packed[c0 / PANEL * self.k * PANEL..],
                halves,
                self.k,
                &bias_cell(self.bias, c0, lanes),
                self.act,
                &out,
            )
        };
    }
}

/// The bias of channels `c0 .. c0 + lanes` in lanes (zero past them, and without a bias).
fn bias_cell(bias: Option<&[f32]>, c0: usize, lanes: usize) -> Cell {
    Cell(std::array::from_fn(|l| match bias {
        Some(b) if l < lanes => b[c0 + l],
        _ => 0.0,
    }))
}

/// `out = act(depthwise(pointwise(x)) + bias)` without forming the 1×1 convolution's output:
/// each task (an image and a group of 16 channels) computes the rows of those 16 channels
/// just before its strips read them, into a buffer of one plane per channel that stays in
/// L2. The 1×1 output of an inverted-residual block is 6× wider than its input (4.8 MB on
/// EfficientNet's 112×112 stage); written out whole, it went to L3 and came back.
///
/// Wide stride-1 layers (those [`forward`] runs on the plane kernel) go the same way on the
/// plane kernel, 8 channels per task. The values are those of the two layers run apart (the
/// same products, a column tail possibly summed in another order). `w` is the depthwise
/// weights as stored, `lane_taps` the same in lanes; the epilogue is the depthwise layer's
/// (bias and clamp). The caller checks [`panel::available`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_after_pointwise(
    isa: Isa,
    pw: &Pointwise,
    w: &[f32],
    lane_taps: &[Cell],
    out: &mut [std::mem::MaybeUninit<f32>],
    g: &ConvGeometry,
    epi: Epilogue,
) {
    let (h, wa) = (&g.h, &g.w);
    let (plane_in, p) = (h.input * wa.input, h.output * wa.output);
    let kk = g.taps();
    let (bias, act) = (epi.bias, epi.act);
    assert!(
        epi.mask.is_none() && epi.residual.is_none(),
        "no mask or residual after a fused 1×1 convolution"
    );
    assert!(
        panel::available(isa),
        "the panel kernel runs the 1×1 convolution"
    );
    assert!(pw.im2col.is_none(), "a 1×1 convolution");
    assert_eq!(pw.x.len(), g.n * pw.k * plane_in, "1×1 input");
    assert!(pw.k > 0, "1×1 input channels");
    assert_eq!(
        pw.packed.len(),
        g.c.div_ceil(panel::PANEL) * pw.k * panel::PANEL,
        "1×1 weights"
    );
    assert!(pw.bias.is_none_or(|b| b.len() == g.c), "1×1 bias");
    g.check_depthwise(lane_taps, out.len(), bias);
    let kernel = Path::of(isa);
    let dst = SharedOut(out.as_mut_ptr().cast::<f32>());
    if runs_on_planes(isa, g) {
        // SAFETY: a vector path (`runs_on_planes` checked it) and the panel kernel (asserted
        // above); `out` holds the n·c·oh·ow values, exclusively borrowed.
        unsafe { planes::forward_after_pointwise(isa, pw, w, bias, dst, g, act) };
        return;
    }
    if forms_cells(isa, g) {
        forward_into_cells(kernel, pw, lane_taps, g, bias, act, dst);
        return;
    }
    let padded = Padded::new(h, wa);
    let rows = strip_rows(&padded);
    let strips = h.output.div_ceil(rows);
    let groups = g.lane_groups();
    for_each_task(g.n * groups, |task| {
        let (img, c0) = (task / groups, (task % groups) * LANES);
        let lanes = LANES.min(g.c - c0);
        let bias = bias_cell(bias, c0, lanes);
        let strip = Strip {
            kernel,
            padded: &padded,
            taps: &lane_taps[c0 / LANES * kk..][..kk],
            bias: &bias,
            act,
        };
        with_formed(lanes * plane_in, |planes| {
            // Input rows 0 .. ready of the 16 planes hold this task's 1×1 outputs.
            let mut ready = 0;
            for s in 0..strips {
                let oh0 = s * rows;
                let nrows = rows.min(h.output - oh0);
                // Padded rows the strip reads end at `end`; input row = padded row − pad.
                let end = padded.rows_for(nrows) + oh0 * h.stride;
                let need = end.saturating_sub(h.pad_begin).min(h.input);
                if need > ready {
                    // SAFETY: the panel kernel is available (asserted above); c0 is a multiple
                    // of 16 below c, the packing's length was asserted above.
                    unsafe {
                        pw.form_rows(
                            isa,
                            img,
                            c0,
                            lanes,
                            ready..need,
                            (plane_in, wa.input),
                            planes,
                            (plane_in, ready),
                        )
                    };
                    ready = need;
                }
                // SAFETY: planes (img, c0 .. c0 + lanes) of `out`, rows oh0 .. oh0 + nrows:
                // only this task (image, channel group) writes them.
                unsafe {
                    strip.run(
                        Rows::whole(planes, g),
                        lanes,
                        oh0,
                        nrows,
                        dst.get().add((img * g.c + c0) * p + oh0 * wa.output),
                        p,
                    )
                };
            }
        });
    });
}

/// Input columns from which [`forward_after_pointwise`] forms the 1×1 output straight into
/// cells ([`forward_into_cells`]). EfficientNet-Lite0 on AVX2, one thread, per node: 56- and
/// 28-column inputs 6–14 % faster, 14 columns level, 7 columns 7–12 % slower (a task's 192
/// input planes and its weights, 49 KB, no longer fit in L1 beside each other; the panel
/// kernel keeps a 24-column block of the input there).
const CELLS_MIN_WIDTH: usize = 14;

/// Whether a fused expansion's output is formed as cells for depthwise geometry `g`
/// ([`forward_after_pointwise`] and [`block::forward`]): on paths of 4 and 8 lanes, from
/// [`CELLS_MIN_WIDTH`] input columns on. The only way a block runs an expansion that is not
/// 1×1 ([`Pointwise::im2col`]).
pub(crate) fn forms_cells(isa: Isa, g: &ConvGeometry) -> bool {
    matches!(Path::of(isa), Path::Avx2 | Path::Neon) && g.w.input >= CELLS_MIN_WIDTH
}

/// [`forward_after_pointwise`] on paths of 4 and 8 lanes: each task forms its 16 channels of
/// the 1×1 output with channels across the lanes ([`vector::pointwise_cells`]) straight into
/// a padded buffer of cells for the whole input plane, which the taps then read in place. The
/// panel kernel's planes had to be transposed into cells first (`gather_lanes`, 8 % of an
/// EfficientNet pass's samples with the scatter back). The sums are the panel kernel's
/// products in the same order (one rounding per multiply-add), from the bias.
fn forward_into_cells(
    kernel: Path,
    pw: &Pointwise,
    lane_taps: &[Cell],
    g: &ConvGeometry,
    bias: Option<&[f32]>,
    act: Option<Clamp>,
    dst: SharedOut,
) {
    let (h, wa) = (&g.h, &g.w);
    let (plane_in, p) = (h.input * wa.input, h.output * wa.output);
    let kk = g.taps();
    let padded = Padded::new(h, wa);
    let cols = padded.cols;
    // Input rows and columns that land in the buffer (at rows r0.., columns c0..).
    let (r0, nr) = Padded::inside(h, padded.rows);
    let (c0, nc) = Padded::inside(wa, cols);
    let groups = g.lane_groups();
    for_each_task(g.n * groups, |task| {
        let (img, first_channel) = (task / groups, (task % groups) * LANES);
        let lanes = LANES.min(g.c - first_channel);
        let dw_bias = bias_cell(bias, first_channel, lanes);
        let taps = &lane_taps[first_channel / LANES * kk..][..kk];
        PLANE_CELLS.with_borrow_mut(|buf| {
            // Grown, never shrunk: the padding is cleared and the interior formed below.
            let len = padded.rows * cols + wa.output;
            if buf.len() < len {
                buf.resize(len, ZERO);
            }
            let (pad, orow) = buf[..len].split_at_mut(padded.rows * cols);
            pad[..r0 * cols].fill(ZERO);
            pad[(r0 + nr) * cols..].fill(ZERO);
            for row in pad[r0 * cols..(r0 + nr) * cols].chunks_mut(cols) {
                row[..c0].fill(ZERO);
                row[c0 + nc..].fill(ZERO);
            }
            // SAFETY: a path of 4 or 8 lanes (the caller's match) that the CPU has;
            // first_channel is a multiple of 16 below c, whose rows are packed (asserted by
            // the caller).
            unsafe {
                pw.form_cells(
                    kernel,
                    img,
                    first_channel,
                    lanes,
                    0..nr,
                    (plane_in, wa.input),
                    nc,
                    pad,
                    (r0 * cols + c0, cols),
                )
            };
            for r in 0..h.output {
                taps_row(kernel, pad, taps, &dw_bias, &padded, r, orow, act);
                // SAFETY: output row r of planes (img, first_channel .. + lanes) of `out`:
                // only this task (image, channel group) writes them.
                unsafe {
                    store_row(
                        kernel,
                        orow,
                        lanes,
                        dst.get()
                            .add((img * g.c + first_channel) * p + r * wa.output),
                        p,
                    )
                };
            }
        });
    });
}

thread_local! {
    /// The padded cells of one channel group's whole input plane ([`forward_into_cells`]).
    static PLANE_CELLS: std::cell::RefCell<Vec<Cell>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A forward strip's cells, kept per thread (rayon hands out many small tasks).
    static STRIP: std::cell::RefCell<Vec<Cell>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The 1×1 outputs of a [`forward_after_pointwise`] task (or the ring of them of a
    /// [`block::forward`] task), kept per thread.
    static FORMED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's buffer of 1×1 outputs, `len` values long. Grown, never shrunk,
/// and not cleared: a task reads only the values it formed itself.
fn with_formed<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    FORMED.with_borrow_mut(|buf| {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Output rows per forward strip: as many as keep the strip within [`STRIP_CELLS`].
fn strip_rows(p: &Padded) -> usize {
    let mut rows = p.h.output;
    while rows > 1 && p.rows_for(rows) * p.cols + p.w.output > STRIP_CELLS {
        rows -= 1;
    }
    rows
}

/// Depthwise input gradient: the adjoint of [`forward`], scattered into a padded
/// channels-last buffer whose interior becomes `dx`.
pub(crate) fn input_grad(isa: Isa, dy: &[f32], w: &[f32], dx: &mut [f32], g: &ConvGeometry) {
    let (h, wa) = (&g.h, &g.w);
    let (plane_in, p) = (h.input * wa.input, h.output * wa.output);
    let kk = g.taps();
    assert_eq!(dy.len(), g.n * g.c * p, "depthwise output gradient");
    assert_eq!(dx.len(), g.n * g.c * plane_in, "depthwise input gradient");
    let groups = g.lane_groups();
    let min_tasks = (MIN_TASK_MACS / (p * kk * LANES).max(1)).max(1);
    let dst = SharedOut(dx.as_mut_ptr());
    let lane_taps = pack_lanes(w, g.c, kk);
    let kernel = Path::of(isa);
    for_each_range(g.n * groups, min_tasks, |range| {
        // Scratch for this task's range of channel groups.
        let (mut pad, mut grad): (Vec<Cell>, Vec<Cell>) = (Vec::new(), Vec::new());
        for task in range {
            let (img, c0) = (task / groups, (task % groups) * LANES);
            let lanes = LANES.min(g.c - c0);
            let padded = Padded::new(h, wa);
            // Every lane of every cell is written (0 past `lanes`).
            grad.resize(p, ZERO);
            // Into lanes by register transposes (the lane-by-lane loop, a scalar store per
            // value, was 8 % of EfficientNet's AVX2 gradient, and the copy back out 5 %).
            let planes = &dy[(img * g.c + c0) * p..][..lanes * p];
            load_row(kernel, planes, p, lanes, &mut grad);
            let taps = &lane_taps[c0 / LANES * kk..][..kk];
            pad.clear();
            pad.resize(padded.rows * padded.cols, ZERO);
            adjoint(isa, &grad, taps, &mut pad, &padded);
            // SAFETY: planes (img, c0 .. c0 + lanes) of `dx`, which only this task touches.
            unsafe {
                padded.store_interior(
                    kernel,
                    &pad,
                    lanes,
                    dst.get().add((img * g.c + c0) * plane_in),
                    plane_in,
                )
            };
        }
    });
}

/// Depthwise weights `[c, kh, kw]` in groups of 16 channels, tap by tap, one channel per lane
/// (`[c/16][taps][16]`, lanes past `c` zero): what [`forward`] takes.
pub(crate) fn pack_lanes(w: &[f32], c: usize, taps: usize) -> Vec<Cell> {
    assert_eq!(w.len(), c * taps, "depthwise weights");
    let mut out = vec![ZERO; c.div_ceil(LANES) * taps];
    for ch in 0..c {
        let (group, lane) = (ch / LANES, ch % LANES);
        for (t, &v) in w[ch * taps..(ch + 1) * taps].iter().enumerate() {
            out[group * taps + t][lane] = v;
        }
    }
    out
}

/// A plane with its convolution padding made explicit, so the inner loops need no bounds tests.
struct Padded {
    rows: usize,
    cols: usize,
    h: Axis,
    w: Axis,
}

impl Padded {
    fn new(h: &Axis, w: &Axis) -> Padded {
        // Every position any output reads, from -pad_begin to the last tap.
        Padded {
            rows: Self::span(h, h.output).max(1),
            cols: Self::span(w, w.output).max(1),
            h: *h,
            w: *w,
        }
    }

    /// Padded positions that `outputs` consecutive outputs read along `a`.
    fn span(a: &Axis, outputs: usize) -> usize {
        (outputs.max(1) - 1) * a.stride + (a.kernel - 1) * a.dilation + 1
    }

    /// Padded rows that `outputs` consecutive output rows read.
    fn rows_for(&self, outputs: usize) -> usize {
        Self::span(&self.h, outputs)
    }

    /// Input positions along `a` that land inside a padded buffer of `len` positions:
    /// `(first buffer index, count)` (input 0 sits at buffer index `pad_begin`).
    fn inside(a: &Axis, len: usize) -> (usize, usize) {
        (a.pad_begin, a.input.min(len.saturating_sub(a.pad_begin)))
    }

    /// Padded row `pr` of channels `0..lanes` of `planes` into `row`, channels-last, with zeros
    /// in the padding and in unused lanes.
    fn fill_row(&self, kernel: Path, planes: &Rows, lanes: usize, pr: usize, row: &mut [Cell]) {
        let (left, nc) = Self::inside(&self.w, self.cols);
        let ih = pr as isize - self.h.pad_begin as isize;
        if ih < 0 || ih as usize >= self.h.input || nc == 0 {
            row.fill(ZERO);
            return;
        }
        row[..left].fill(ZERO);
        row[left + nc..].fill(ZERO);
        let at = (ih as usize % planes.ring) * self.w.input;
        load_row(
            kernel,
            &planes.planes[at..],
            planes.stride,
            lanes,
            &mut row[left..left + nc],
        );
    }

    /// Lanes `0..lanes` of the buffer's interior (the positions inside the input) into the
    /// planes from `first` on, `plane` values apart.
    ///
    /// # Safety
    /// `first` must be valid for writes of `lanes` planes of the input's size, `plane` apart,
    /// that no other thread makes.
    unsafe fn store_interior(
        &self,
        kernel: Path,
        buf: &[Cell],
        lanes: usize,
        first: *mut f32,
        plane: usize,
    ) {
        let (r0, nr) = Self::inside(&self.h, self.rows);
        let (c0, nc) = Self::inside(&self.w, self.cols);
        assert!(nr <= self.h.input && nc <= self.w.input && plane >= nr * self.w.input);
        for ih in 0..nr {
            let cells = &buf[(ih + r0) * self.cols + c0..][..nc];
            // SAFETY: row ih < input rows of each of the `lanes` planes (the caller's).
            unsafe { store_row(kernel, cells, lanes, first.add(ih * self.w.input), plane) };
        }
    }
}

/// Output row `r` of a strip: `orow[ow] = act(bias + Σ w[ki, kj] · input[r·s + ki·d, ow·s + kj·d])`
/// with `taps` in lanes (as [`pack_lanes`]).
#[allow(clippy::too_many_arguments)]
fn taps_row(
    kernel: Path,
    input: &[Cell],
    taps: &[Cell],
    bias: &Cell,
    p: &Padded,
    r: usize,
    orow: &mut [Cell],
    act: Option<Clamp>,
) {
    match kernel {
        // SAFETY: a vector path comes from an `Isa` the CPU has.
        path if path.vector() => unsafe {
            vector::taps_row(path, input, taps, bias, p, r, orow, act)
        },
        _ => {
            let (h, wa) = (&p.h, &p.w);
            for (ow, o) in orow.iter_mut().enumerate() {
                let mut a = *bias;
                for ki in 0..h.kernel {
                    let row = (r * h.stride + ki * h.dilation) * p.cols + ow * wa.stride;
                    for kj in 0..wa.kernel {
                        let (x, wt) = (&input[row + kj * wa.dilation], &taps[ki * wa.kernel + kj]);
                        for l in 0..LANES {
                            a[l] += wt[l] * x[l];
                        }
                    }
                }
                if let Some(act) = act {
                    act.apply(&mut a.0);
                }
                *o = a;
            }
        }
    }
}

/// Lanes `0..lanes` of `orow` to the rows at `first + l·plane`.
///
/// # Safety
/// Each of those rows must be valid for `orow.len()` writes that no other thread touches.
unsafe fn store_row(kernel: Path, orow: &[Cell], lanes: usize, first: *mut f32, plane: usize) {
    match kernel {
        // SAFETY: a vector path comes from an `Isa` the CPU has; the rows as the caller
        // promised.
        path if path.vector() => unsafe { vector::scatter_lanes(path, orow, lanes, first, plane) },
        _ => {
            for l in 0..lanes {
                for (ow, cell) in orow.iter().enumerate() {
                    // SAFETY: as the caller promised.
                    unsafe { *first.add(l * plane + ow) = cell[l] };
                }
            }
        }
    }
}

/// `cells[j][l] = src[l·plane + j]` for `l < lanes`, 0 in the other lanes: `lanes` rows of
/// planes into 16-channel cells (register transposes on a vector path); the inverse of
/// [`store_row`].
fn load_row(kernel: Path, src: &[f32], plane: usize, lanes: usize, cells: &mut [Cell]) {
    match kernel {
        Path::Portable => {
            let n = cells.len();
            for (l, lane) in (0..lanes).map(|l| (l, &src[l * plane..][..n])) {
                for (cell, &v) in cells.iter_mut().zip(lane) {
                    cell[l] = v;
                }
            }
            if lanes < LANES {
                cells.iter_mut().for_each(|c| c[lanes..].fill(0.0));
            }
        }
        // SAFETY: a vector path comes from an `Isa` the CPU has; `gather_lanes` asserts that
        // `src` holds the `lanes` rows `plane` apart.
        path => unsafe { vector::gather_lanes(path, src, plane, lanes, cells) },
    }
}

/// `pad[oh·s + ki·d, ow·s + kj·d] += w[ki, kj] · dy[oh, ow]`, 16 channels per step.
fn adjoint(isa: Isa, dy: &[Cell], w: &[Cell], pad: &mut [Cell], p: &Padded) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx2_fma() {
        // SAFETY: `isa` says the CPU has AVX2 and FMA.
        return unsafe { adjoint_avx2(dy, w, pad, p) };
    }
    let _ = isa;
    adjoint_generic(dy, w, pad, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adjoint_avx2(dy: &[Cell], w: &[Cell], pad: &mut [Cell], p: &Padded) {
    adjoint_generic(dy, w, pad, p)
}

#[inline(always)]
fn adjoint_generic(dy: &[Cell], w: &[Cell], pad: &mut [Cell], p: &Padded) {
    let (h, wa) = (&p.h, &p.w);
    for oh in 0..h.output {
        for ow in 0..wa.output {
            let g = dy[oh * wa.output + ow];
            for ki in 0..h.kernel {
                let row = (oh * h.stride + ki * h.dilation) * p.cols;
                for kj in 0..wa.kernel {
                    let x = &mut pad[row + ow * wa.stride + kj * wa.dilation];
                    let wt = &w[ki * wa.kernel + kj];
                    for l in 0..LANES {
                        x[l] += wt[l] * g[l];
                    }
                }
            }
        }
    }
}

mod vector {
    //! The vector inner loops, written once over [`Simd`]: register transposes between
    //! planes and 16-channel cells (one 16×16 tile on AVX-512, 2×2 tiles of 8×8 on AVX2,
    //! 4×4 of 4×4 on NEON), and taps over up to eight outputs at a time (one weight load
    //! feeds eight multiply-adds).

    use super::{multiversion, Cell, Clamp, Padded, Simd, LANES};

    /// Where [`pointwise_cells`] reads and writes: the 1×1 convolution's `k` input planes
    /// (`plane` apart, their first `n` values read, rows of `width`), and the padded cells its
    /// outputs go to (pixel `(row, col)` at `first + row·cols + col`; columns `nc` and beyond
    /// are not stored).
    pub(super) struct CellsOut {
        pub x: *const f32,
        pub plane: usize,
        pub n: usize,
        pub width: usize,
        pub nc: usize,
        pub first: *mut Cell,
        pub cols: usize,
    }

    multiversion! {
        /// One group of 16 channels of a 1×1 convolution, written straight into depthwise
        /// cells: `cell(j)[c] = act(bias[c] + Σ_kk w[c][kk] · x[kk·plane + j])`, channels across
        /// the lanes, pixels in blocks of six, summed from the bias over `kk` in order (one
        /// rounding per multiply-add; the panel kernel adds the bias last). `panels` are the
        /// group's panels as [`crate::kernels::panel::pack`] lays them out (`[panel][k][8]`),
        /// `halves` of them (1 when the group has at most 8 channels). Paths of 4 and 8 lanes
        /// only.
        ///
        /// # Safety
        /// A path the CPU has, of fewer than 16 lanes; `at.x` valid for reads of `k` planes of
        /// `at.n` values, `at.first` for writes of every cell `row·cols + col` with
        /// `col < nc` of the `n / width` rows.
        pub(super) unsafe fn pointwise_cells(
            panels: &[f32],
            halves: usize,
            k: usize,
            bias: &Cell,
            act: Option<Clamp>,
            at: &CellsOut,
        ) => pointwise_cells_generic
    }

    #[inline(always)]
    unsafe fn pointwise_cells_generic<S: Simd>(
        panels: &[f32],
        halves: usize,
        k: usize,
        bias: &Cell,
        act: Option<Clamp>,
        at: &CellsOut,
    ) {
        assert!(S::LANES < LANES && (1..=2).contains(&halves) && k > 0);
        assert!(panels.len() >= halves * k * 8 && at.width > 0 && at.n.is_multiple_of(at.width));
        // Blocks of five or six pixels, the n split evenly (49 = 4·6 + 5·5, not 8·6 + 1): a
        // block of one pixel has two chains of multiply-adds, each waiting on the last.
        let blocks = at.n.div_ceil(6);
        let mut j = 0;
        for b in 0..blocks {
            let p = (b + 1) * at.n / blocks - b * at.n / blocks;
            // SAFETY (all): the path's extensions; pixels j .. j + p < n (the caller's).
            unsafe {
                if halves == 2 {
                    pixel_block::<S, 2>(p, panels, k, bias, act, at, j)
                } else {
                    pixel_block::<S, 1>(p, panels, k, bias, act, at, j)
                }
            }
            j += p;
        }
        debug_assert_eq!(j, at.n);
    }

    /// A block of `p ≤ 6` pixels from `j0` with `HALVES` panels: the halves count is a
    /// constant of the loop, so its inner steps carry no test of it.
    ///
    /// # Safety
    /// As [`pixels`].
    #[inline(always)]
    unsafe fn pixel_block<S: Simd, const HALVES: usize>(
        p: usize,
        panels: &[f32],
        k: usize,
        bias: &Cell,
        act: Option<Clamp>,
        at: &CellsOut,
        j0: usize,
    ) {
        // SAFETY: the caller's.
        unsafe {
            match p {
                6 => pixels::<S, 6, HALVES>(panels, k, bias, act, at, j0),
                5 => pixels::<S, 5, HALVES>(panels, k, bias, act, at, j0),
                4 => pixels::<S, 4, HALVES>(panels, k, bias, act, at, j0),
                3 => pixels::<S, 3, HALVES>(panels, k, bias, act, at, j0),
                2 => pixels::<S, 2, HALVES>(panels, k, bias, act, at, j0),
                _ => pixels::<S, 1, HALVES>(panels, k, bias, act, at, j0),
            }
        }
    }

    /// Pixels `j0 .. j0 + P` of [`pointwise_cells`]: `P × 16 / LANES` accumulators.
    ///
    /// # Safety
    /// As [`pointwise_cells`], with `j0 + P ≤ at.n`.
    #[inline(always)]
    unsafe fn pixels<S: Simd, const P: usize, const HALVES: usize>(
        panels: &[f32],
        k: usize,
        bias: &Cell,
        act: Option<Clamp>,
        at: &CellsOut,
        j0: usize,
    ) {
        // Vectors per cell: 2 on AVX2, 4 on NEON (at most 4).
        let per = LANES / S::LANES;
        // SAFETY (all below): steps kk < k (the caller's contract on the panels and planes);
        // the output cells as the caller promised.
        unsafe {
            // The sums start from the bias: on the 16- and 24-channel expansions, adding it
            // after the products was a tenth of the vector operations of a block of pixels.
            let b: [S::V; 4] = std::array::from_fn(|v| {
                if v < per {
                    S::load(bias.as_ptr().add(v * S::LANES))
                } else {
                    S::zero()
                }
            });
            let mut acc = [b; P];
            // Two steps per turn: the loop's own counting and branching was a third of the
            // instructions of a one-step turn on AVX2 (12 multiply-adds in 27 instructions).
            let mut kk = 0;
            while kk + 2 <= k {
                step::<S, P, HALVES>(&mut acc, panels, k, at, j0, kk);
                step::<S, P, HALVES>(&mut acc, panels, k, at, j0, kk + 1);
                kk += 2;
            }
            if kk < k {
                step::<S, P, HALVES>(&mut acc, panels, k, at, j0, kk);
            }
            let (lo, hi) = act.map_or((f32::NEG_INFINITY, f32::INFINITY), |c| (c.lo, c.hi));
            let (lo, hi) = (S::splat(lo), S::splat(hi));
            let (mut row, mut col) = (j0 / at.width, j0 % at.width);
            for acc_p in &acc {
                if col < at.nc {
                    let cell = at.first.add(row * at.cols + col).cast::<f32>();
                    for (v, &a) in acc_p.iter().enumerate().take(per) {
                        let mut y = a;
                        if act.is_some() {
                            y = S::min(S::max(y, lo), hi);
                        }
                        S::store(cell.add(v * S::LANES), y);
                    }
                }
                col += 1;
                if col == at.width {
                    (row, col) = (row + 1, 0);
                }
            }
        }
    }

    /// One input channel `kk` of [`pixels`]: its weights for the group's lanes times each
    /// pixel's value, added into `acc`.
    ///
    /// # Safety
    /// As [`pixels`], with `kk < k`.
    #[inline(always)]
    unsafe fn step<S: Simd, const P: usize, const HALVES: usize>(
        acc: &mut [[S::V; 4]; P],
        panels: &[f32],
        k: usize,
        at: &CellsOut,
        j0: usize,
        kk: usize,
    ) {
        let per = LANES / S::LANES;
        let live = HALVES * 8 / S::LANES;
        // SAFETY (all below): lane group v < live of channel kk lies in panel v·LANES / 8, at
        // kk·8 + (v·LANES) % 8 (inside `panels`, asserted by the caller); x row kk < k of
        // pixels j0 .. j0 + P.
        unsafe {
            let w = panels.as_ptr();
            let wv: [S::V; 4] = std::array::from_fn(|v| {
                if v < live {
                    S::load(w.add((v * S::LANES / 8) * k * 8 + kk * 8 + (v * S::LANES) % 8))
                } else {
                    S::zero()
                }
            });
            let row = at.x.add(j0 + kk * at.plane);
            for (p, acc_p) in acc.iter_mut().enumerate() {
                let x = S::splat(*row.add(p));
                for v in 0..per {
                    acc_p[v] = S::fmadd(x, wv[v], acc_p[v]);
                }
            }
        }
    }

    multiversion! {
        /// `cells[j][l] = src[l·plane + j]` for `l < lanes` (0 in the other lanes).
        ///
        /// # Safety
        /// A path the CPU has (asserts the sizes itself).
        pub(super) unsafe fn gather_lanes(
            src: &[f32],
            plane: usize,
            lanes: usize,
            cells: &mut [Cell],
        ) => gather_lanes_generic
    }

    #[inline(always)]
    unsafe fn gather_lanes_generic<S: Simd>(
        src: &[f32],
        plane: usize,
        lanes: usize,
        cells: &mut [Cell],
    ) {
        let n = cells.len();
        assert!(lanes <= LANES && (lanes == 0 || (lanes - 1) * plane + n <= src.len()));
        let l = S::LANES;
        for j0 in (0..n).step_by(l) {
            let width = l.min(n - j0);
            for g0 in (0..LANES).step_by(l) {
                let rows = lanes.saturating_sub(g0).min(l);
                // SAFETY: rows g0 .. g0 + rows < lanes of `width` values from column j0 are
                // inside `src` (asserted above); cells j0 .. j0 + width exist, lanes
                // g0 .. g0 + l of each written.
                unsafe {
                    S::transpose_tile(
                        src.as_ptr().wrapping_add(g0 * plane + j0),
                        plane,
                        (rows, width),
                        cells[j0].as_mut_ptr().add(g0),
                        LANES,
                        (width, l),
                    )
                };
            }
        }
    }

    multiversion! {
        /// `first[l·plane + j] = cells[j][l]` for `l < lanes`.
        ///
        /// # Safety
        /// A path the CPU has; every row `first + l·plane` valid for `cells.len()` writes.
        pub(super) unsafe fn scatter_lanes(
            cells: &[Cell],
            lanes: usize,
            first: *mut f32,
            plane: usize,
        ) => scatter_lanes_generic
    }

    #[inline(always)]
    unsafe fn scatter_lanes_generic<S: Simd>(
        cells: &[Cell],
        lanes: usize,
        first: *mut f32,
        plane: usize,
    ) {
        let n = cells.len();
        let l = S::LANES;
        for j0 in (0..n).step_by(l) {
            let width = l.min(n - j0);
            for g0 in (0..lanes.min(LANES)).step_by(l) {
                let rows = (lanes - g0).min(l);
                // SAFETY: cells j0 .. j0 + width exist (lanes g0 .. g0 + l read); rows
                // g0 .. g0 + rows < lanes of the output, `width` values from column j0, as the
                // caller promised.
                unsafe {
                    S::transpose_tile(
                        cells[j0].as_ptr().add(g0),
                        LANES,
                        (width, l),
                        first.add(g0 * plane + j0),
                        plane,
                        (rows, width),
                    )
                };
            }
        }
    }

    multiversion! {
        /// As the portable loop of `taps_row`, up to eight outputs at a time.
        ///
        /// # Safety
        /// A path the CPU has (asserts the sizes itself).
        pub(super) unsafe fn taps_row(
            input: &[Cell],
            taps: &[Cell],
            bias: &Cell,
            p: &Padded,
            r: usize,
            orow: &mut [Cell],
            act: Option<Clamp>,
        ) => taps_row_generic
    }

    #[inline(always)]
    unsafe fn taps_row_generic<S: Simd>(
        input: &[Cell],
        taps: &[Cell],
        bias: &Cell,
        p: &Padded,
        r: usize,
        orow: &mut [Cell],
        act: Option<Clamp>,
    ) {
        let (h, wa) = (&p.h, &p.w);
        assert_eq!(taps.len(), h.kernel * wa.kernel);
        // Highest cell any tap of this row reads, checked once so the loop can skip bounds.
        let last = (r * h.stride + (h.kernel - 1) * h.dilation) * p.cols
            + (orow.len().max(1) - 1) * wa.stride
            + (wa.kernel - 1) * wa.dilation;
        assert!(orow.is_empty() || last < input.len());
        // Outputs in blocks of up to 8, the row split evenly (14 = 7 + 7, not 8 + 4 + 2):
        // independent accumulators hide the FMA latency, and a 7-wide row in blocks of 4, 2
        // and 1 waited on a chain of 25 dependent multiply-adds in its last block.
        let n = orow.len();
        let size = n.div_ceil(n.div_ceil(8)).max(1);
        let at = Row {
            base: input.as_ptr().cast::<f32>(),
            p,
            r,
            taps,
            bias,
            act,
        };
        let mut ow = 0;
        while ow < n {
            let width = size.min(n - ow);
            // SAFETY (all): the path's extensions, and the blocks stay within `orow` and below
            // `last` (asserted above).
            ow += unsafe {
                match wa.stride {
                    1 => by_stride::<S, 1>(&at, width, ow, orow),
                    2 => by_stride::<S, 2>(&at, width, ow, orow),
                    _ => by_stride::<S, 0>(&at, width, ow, orow),
                }
            };
        }
    }

    /// What every block of one output row shares: the strip's cells, its geometry, the row,
    /// the taps, the bias and the activation.
    struct Row<'a> {
        base: *const f32,
        p: &'a Padded,
        r: usize,
        taps: &'a [Cell],
        bias: &'a Cell,
        act: Option<Clamp>,
    }

    /// A block of `width` outputs with the column stride `ST` known at compile time (0: read
    /// from the geometry), so that the inputs of a block's outputs are fixed offsets from one
    /// pointer. Computed at run time, the compiler had formed the eight addresses in a vector
    /// register and extracted them one by one for every tap.
    ///
    /// # Safety
    /// `S`'s extensions; `ow0 + width ≤ orow.len()`, and every cell read lies in the strip.
    #[inline(always)]
    unsafe fn by_stride<S: Simd, const ST: usize>(
        at: &Row,
        width: usize,
        ow0: usize,
        orow: &mut [Cell],
    ) -> usize {
        // SAFETY (all eight): forwarded from the caller.
        unsafe {
            match width {
                8 => block::<S, 8, ST>(at, ow0, orow),
                7 => block::<S, 7, ST>(at, ow0, orow),
                6 => block::<S, 6, ST>(at, ow0, orow),
                5 => block::<S, 5, ST>(at, ow0, orow),
                4 => block::<S, 4, ST>(at, ow0, orow),
                3 => block::<S, 3, ST>(at, ow0, orow),
                2 => block::<S, 2, ST>(at, ow0, orow),
                _ => block::<S, 1, ST>(at, ow0, orow),
            }
        }
    }

    /// Outputs `ow0 .. ow0 + N` of row `r`, each cell's 16 channels in `16 / LANES` parts
    /// (one on AVX-512), each part's N accumulators through all taps; returns `N`.
    ///
    /// # Safety
    /// As [`by_stride`].
    #[inline(always)]
    unsafe fn block<S: Simd, const N: usize, const ST: usize>(
        at: &Row,
        ow0: usize,
        orow: &mut [Cell],
    ) -> usize {
        let (h, wa) = (&at.p.h, &at.p.w);
        let stride = if ST == 0 { wa.stride } else { ST };
        let step = wa.dilation * LANES;
        // SAFETY (all below): cell `row` and the cells the taps reach from it lie in the strip
        // (caller); `tap` walks the kh·kw cells of `taps` (the caller asserted its length);
        // a Cell is 16 floats, part + LANES of S ≤ 16.
        unsafe {
            let clamp = at.act.map(|c| (S::splat(c.lo), S::splat(c.hi)));
            for part in (0..LANES).step_by(S::LANES) {
                let mut acc = [S::load(at.bias.as_ptr().add(part)); N];
                let mut tap = at.taps.as_ptr().cast::<f32>().add(part);
                for ki in 0..h.kernel {
                    let row = (at.r * h.stride + ki * h.dilation) * at.p.cols + ow0 * stride;
                    let mut src = at.base.add(row * LANES + part);
                    for _ in 0..wa.kernel {
                        let wt = S::load(tap);
                        for (j, a) in acc.iter_mut().enumerate() {
                            *a = S::fmadd(wt, S::load(src.add(j * stride * LANES)), *a);
                        }
                        src = src.add(step);
                        tap = tap.add(LANES);
                    }
                }
                for (o, a) in orow[ow0..ow0 + N].iter_mut().zip(acc) {
                    let v = match clamp {
                        // NaN becomes `lo`, as `Clamp::apply` does.
                        Some((lo, hi)) => S::min(S::max(a, lo), hi),
                        None => a,
                    };
                    S::store(o.as_mut_ptr().add(part), v);
                }
            }
        }
        N
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    fn axis(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pads: (usize, usize),
    ) -> Axis {
        let span = (kernel - 1) * dilation + 1;
        Axis {
            input,
            output: (input + pads.0 + pads.1 - span) / stride + 1,
            kernel,
            stride,
            dilation,
            pad_begin: pads.0,
        }
    }

    /// Direct f64 depthwise convolution with bounds tests: the reference.
    fn direct(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeometry, act: Option<Clamp>) -> Vec<f64> {
        let (h, wa) = (&g.h, &g.w);
        let mut out = Vec::new();
        for img in 0..g.n {
            for c in 0..g.c {
                for oh in 0..h.output {
                    for ow in 0..wa.output {
                        let mut s = b[c] as f64;
                        for ki in 0..h.kernel {
                            for kj in 0..wa.kernel {
                                if let (Some(ih), Some(iw)) = (h.source(oh, ki), wa.source(ow, kj))
                                {
                                    let xv = x[((img * g.c + c) * h.input + ih) * wa.input + iw];
                                    s += xv as f64 * w[(c * h.kernel + ki) * wa.kernel + kj] as f64;
                                }
                            }
                        }
                        if let Some(a) = act {
                            s = s.max(a.lo as f64).min(a.hi as f64);
                        }
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    /// A 1×1 convolution (bias, Relu6) and the depthwise layer after it, run as one on every
    /// path this CPU has (AVX2 and NEON form the 1×1 output straight into cells from 14 input
    /// columns on, the other paths and narrower maps go through planes), against the two
    /// layers in f64: channel counts that fill two panels, one, or part of one in the last
    /// group, strides, a 5×5 layer with its padding, dilated taps, input rows and columns no
    /// tap reads, pixel counts that are no multiple of six, and layers without activation.
    #[test]
    fn forward_after_pointwise_matches_the_layers_on_every_path() {
        let relu6 = Clamp { lo: 0.0, hi: 6.0 };
        let cases = [
            // (n, 1×1 input channels, channels, h axis, w axis)
            (
                1,
                24,
                40,
                axis(15, 3, 2, 1, (0, 1)),
                axis(28, 3, 2, 1, (0, 1)),
            ),
            (
                2,
                16,
                20,
                axis(14, 5, 1, 1, (2, 2)),
                axis(14, 5, 1, 1, (2, 2)),
            ),
            (
                1,
                7,
                33,
                axis(18, 3, 2, 1, (0, 0)),
                axis(18, 3, 2, 1, (0, 0)),
            ),
            (
                1,
                40,
                8,
                axis(16, 3, 1, 1, (1, 1)),
                axis(17, 3, 1, 1, (1, 1)),
            ),
            (
                1,
                12,
                24,
                axis(7, 5, 1, 1, (2, 2)),
                axis(7, 5, 1, 1, (2, 2)),
            ),
            // Dilated taps, and (below) no activation on either layer.
            (
                1,
                9,
                16,
                axis(16, 3, 1, 2, (2, 2)),
                axis(20, 3, 1, 2, (2, 2)),
            ),
        ];
        for (case, &(n, k, c, h, w)) in cases.iter().enumerate() {
            let act = (case != 5).then_some(relu6);
            let g = ConvGeometry {
                n,
                c,
                m: c,
                groups: c,
                h,
                w,
            };
            let plane = h.input * w.input;
            let x: Vec<f32> = values(n * k * plane, 300 + case as u32)
                .iter()
                .map(|v| v * 4.0)
                .collect();
            let w1 = values(c * k, 400 + case as u32);
            let b1 = values(c, 500 + case as u32);
            let taps = values(c * h.kernel * w.kernel, 600 + case as u32);
            let b2 = values(c, 700 + case as u32);
            // The 1×1 layer in f64, rounded once to f32 as the depthwise reference's input.
            let mut y1 = vec![0.0f32; n * c * plane];
            for img in 0..n {
                for ch in 0..c {
                    for j in 0..plane {
                        let s = (0..k).fold(b1[ch] as f64, |s, i| {
                            s + w1[ch * k + i] as f64 * x[(img * k + i) * plane + j] as f64
                        });
                        y1[(img * c + ch) * plane + j] =
                            act.map_or(s, |_| s.clamp(0.0, 6.0)) as f32;
                    }
                }
            }
            let want = direct(&y1, &taps, &b2, &g, act);
            let packed = crate::kernels::panel::pack(&w1, 1, c, k);
            let lanes = pack_lanes(&taps, c, h.kernel * w.kernel);
            let pw = Pointwise {
                x: &x,
                k,
                packed: &packed,
                bias: Some(&b1),
                act,
                im2col: None,
            };
            for isa in crate::kernels::simd::test_isas() {
                if !crate::kernels::panel::available(isa) {
                    continue;
                }
                let mut out = vec![std::mem::MaybeUninit::new(f32::NAN); want.len()];
                let epi = Epilogue {
                    bias: Some(&b2),
                    act,
                    ..Epilogue::default()
                };
                forward_after_pointwise(isa, &pw, &taps, &lanes, &mut out, &g, epi);
                for (i, (o, &e)) in out.iter().zip(&want).enumerate() {
                    // SAFETY: initialised above (and overwritten).
                    let o = unsafe { o.assume_init() } as f64;
                    assert!(
                        (o - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "case {case} {}: value {i} is {o}, expected {e}",
                        isa.name()
                    );
                }
            }
        }
    }

    /// The input gradient on every path this CPU has against the adjoint of the direct loop
    /// (f64), on channel counts that fill 16 lanes and leave a partial group (the transposes
    /// into and out of lanes), strides (inputs no tap reads get 0), dilations, asymmetric pads
    /// and rows narrower and wider than a vector.
    #[test]
    fn input_grad_is_the_adjoint_on_every_path() {
        let cases = [
            (1, 37, axis(9, 3, 1, 1, (1, 1)), axis(21, 3, 1, 1, (1, 1))),
            (2, 16, axis(12, 5, 2, 1, (1, 2)), axis(17, 5, 2, 1, (2, 1))),
            (1, 5, axis(7, 3, 1, 2, (2, 0)), axis(6, 2, 2, 1, (0, 1))),
            (1, 19, axis(14, 5, 1, 1, (2, 2)), axis(14, 5, 1, 1, (2, 2))),
            (1, 21, axis(8, 3, 3, 1, (1, 1)), axis(40, 5, 3, 2, (3, 2))),
        ];
        for (case, &(n, c, h, w)) in cases.iter().enumerate() {
            let g = ConvGeometry {
                n,
                c,
                m: c,
                groups: c,
                h,
                w,
            };
            let dy = values(n * c * h.output * w.output, 300 + case as u32);
            let wt = values(c * h.kernel * w.kernel, 400 + case as u32);
            let mut want = vec![0.0f64; n * c * h.input * w.input];
            for img in 0..n {
                for ch in 0..c {
                    for oh in 0..h.output {
                        for ow in 0..w.output {
                            let d = dy[((img * c + ch) * h.output + oh) * w.output + ow] as f64;
                            for ki in 0..h.kernel {
                                for kj in 0..w.kernel {
                                    if let (Some(ih), Some(iw)) =
                                        (h.source(oh, ki), w.source(ow, kj))
                                    {
                                        want[((img * c + ch) * h.input + ih) * w.input + iw] +=
                                            d * wt[(ch * h.kernel + ki) * w.kernel + kj] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for isa in crate::kernels::simd::test_isas() {
                let mut dx = vec![f32::NAN; want.len()];
                input_grad(isa, &dy, &wt, &mut dx, &g);
                for (i, (&a, &b)) in dx.iter().zip(&want).enumerate() {
                    assert!(
                        (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{isa:?} case {case} at {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// The strips on every path this CPU has, and the plane kernel where the path and the
    /// stride allow, against the direct loop, on channel counts that fill 16 lanes and leave a
    /// partial group, widths below, at and above 16, strides, dilations, asymmetric pads and
    /// strips (the 70-wide plane needs several).
    #[test]
    fn forward_matches_the_direct_convolution() {
        let relu6 = Clamp { lo: 0.0, hi: 6.0 };
        let cases = [
            // (n, c, h axis, w axis, act)
            (
                1,
                37,
                axis(9, 3, 1, 1, (1, 1)),
                axis(21, 3, 1, 1, (1, 1)),
                None,
            ),
            (
                2,
                16,
                axis(12, 5, 2, 1, (1, 2)),
                axis(17, 5, 2, 1, (2, 1)),
                Some(relu6),
            ),
            (
                1,
                5,
                axis(7, 3, 1, 2, (2, 0)),
                axis(6, 2, 2, 1, (0, 1)),
                None,
            ),
            (
                1,
                33,
                axis(70, 3, 1, 1, (1, 1)),
                axis(70, 3, 1, 1, (1, 1)),
                Some(relu6),
            ),
            (
                1,
                17,
                axis(4, 1, 1, 1, (0, 0)),
                axis(1, 1, 1, 1, (0, 0)),
                None,
            ),
            (
                1,
                20,
                axis(15, 3, 2, 1, (0, 1)),
                axis(32, 3, 2, 1, (0, 1)),
                Some(relu6),
            ),
            // Rows of more than eight vectors (the plane kernel's blocks of 8, and 4 on the
            // 60-wide plane with an odd row count), a stride-2 row of three vectors with
            // dilation, and a 14×14 plane (each strip row in two blocks of 7).
            (
                1,
                3,
                axis(5, 3, 1, 1, (1, 1)),
                axis(150, 3, 1, 1, (1, 1)),
                Some(relu6),
            ),
            (
                2,
                4,
                axis(11, 3, 2, 2, (1, 2)),
                axis(75, 3, 2, 2, (2, 1)),
                None,
            ),
            (
                1,
                19,
                axis(14, 5, 1, 1, (2, 2)),
                axis(14, 5, 1, 1, (2, 2)),
                Some(relu6),
            ),
            (
                2,
                3,
                axis(5, 3, 1, 1, (1, 1)),
                axis(60, 5, 1, 1, (2, 2)),
                None,
            ),
            // A column stride of 3: the blocks' stride read at run time, not a constant.
            (
                1,
                21,
                axis(8, 3, 3, 1, (1, 1)),
                axis(40, 5, 3, 2, (3, 2)),
                Some(relu6),
            ),
        ];
        for (case, &(n, c, h, w, act)) in cases.iter().enumerate() {
            let g = ConvGeometry {
                n,
                c,
                m: c,
                groups: c,
                h,
                w,
            };
            let x = values(n * c * h.input * w.input, case as u32);
            let wt = values(c * h.kernel * w.kernel, 100 + case as u32);
            let b = values(c, 200 + case as u32);
            // Scale up so Relu6 clips at both ends.
            let x: Vec<f32> = x.iter().map(|v| v * 4.0).collect();
            let want = direct(&x, &wt, &b, &g, act);
            let lanes = pack_lanes(&wt, c, h.kernel * w.kernel);
            // (path, whether on the plane kernel)
            let mut runs = Vec::new();
            for isa in crate::kernels::simd::test_isas() {
                runs.push((isa, false));
                if runs_on_planes(isa, &g) {
                    runs.push((isa, true));
                }
            }
            for (isa, on_planes) in runs {
                let kernel = (Path::of(isa), on_planes);
                let mut out = vec![std::mem::MaybeUninit::new(f32::NAN); want.len()];
                if on_planes {
                    let epi = Epilogue {
                        bias: Some(&b),
                        act,
                        ..Epilogue::default()
                    };
                    forward(isa, &x, &wt, &lanes, &mut out, &g, epi)
                } else {
                    forward_with(Path::of(isa), &x, &lanes, Some(&b), &mut out, &g, act)
                }
                for (i, (o, &e)) in out.iter().zip(&want).enumerate() {
                    // SAFETY: initialised above (and overwritten by forward_with).
                    let o = unsafe { o.assume_init() } as f64;
                    assert!(
                        (o - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "case {case} {kernel:?}: value {i} is {o}, expected {e}"
                    );
                }
            }
        }
    }
}
