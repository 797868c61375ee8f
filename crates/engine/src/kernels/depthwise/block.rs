//! An inverted-residual block's depthwise layer, its projection (the 1×1 convolution that reads
//! it, with a residual `Add` after it) and, when fused, its expansion (the 1×1 convolution it
//! reads), in one sweep of strips of output rows over all channels.
//!
//! Run apart, the depthwise output (96–144 channels on EfficientNet's 112×112 to 28×28
//! stages) is written out whole by tasks that each own 16 channels, and the projection then
//! reads every channel of a run of columns: half of it from the other core's cache. Here one
//! task owns a band of output rows of every channel: each strip's depthwise rows go into a
//! buffer of its thread (`c × rows × ow` values, within 256 KB) and the projection reads them
//! from there. The expansion's rows are formed into a ring of the last rows the strips read,
//! per channel group, so each is formed once per band (only a band's first strip forms the
//! rows it shares with the band above). On AVX2 and NEON, from 14 input columns on, the
//! expansion forms its rows as cells ([`super::vector::pointwise_cells`]) instead of planes
//! that the strips transpose: EfficientNet-Lite0 to its head × 0.93 at batch 8 and × 0.95 at
//! batch 32 (two threads). Those cells go straight into each group's padded strip, where the
//! taps read them; only the rows a strip shares with the one before move (to the front).
//! Copying every row from a ring into the strip had been 1 % of a pass's samples: without it,
//! the whole pass × 0.97 at batch 1 and at batch 8.
//!
//! On those paths the expansion may also be a small dense convolution (a network's stem: 3 → 32
//! channels, 3×3, stride 2, before a block without an expansion): each strip forms the im2col
//! rows of the input rows it needs, once for every channel group, and the groups turn them into
//! cells as a 1×1 convolution over those rows. The stem's output (1.6 MB on EfficientNet) is
//! then never written or gathered: EfficientNet-Lite0's whole pass × 0.93 on AVX2.

use super::{bias_cell, strip_rows, Cell, Padded, Path, Pointwise, Rows, Strip};
use super::{forms_cells, with_formed, LANES};
use crate::kernels::epilogue::{Clamp, Epilogue};
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::im2col::im2col_tile;
use crate::kernels::panel;
use crate::runtime::cpu::Isa;
use crate::runtime::pool::{for_each_task, SharedOut};

/// The 1×1 convolution that reads a depthwise layer's output, with its clamp and the addend
/// of a residual `Add` after it.
pub(crate) struct Projection<'a> {
    /// Its weights as [`panel::pack`] lays them out (one group, `m` rows of `c` values).
    pub packed: &'a [f32],
    /// Its output channels.
    pub m: usize,
    pub bias: Option<&'a [f32]>,
    pub act: Option<Clamp>,
    /// Added last (after the clamp), laid out as the output.
    pub residual: Option<&'a [f32]>,
}

/// What the depthwise layer reads: its input planes, or the 1×1 convolution that forms them.
pub(crate) enum Source<'a> {
    Planes(&'a [f32]),
    Pointwise(&'a Pointwise<'a>),
}

/// Depthwise outputs a strip may buffer for the projection (256 KB of floats).
const STRIP_OUTPUTS: usize = 1 << 16;

thread_local! {
    /// The expansion's last `ring` rows of every channel group as cells, kept per thread.
    static RING_CELLS: std::cell::RefCell<Vec<Cell>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A strip's depthwise outputs, kept per thread.
    static OUTPUTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out = proj(epi(depthwise(source, w))) (+ residual)`, the depthwise output never formed
/// whole (see the module). `lane_taps` are the depthwise weights as [`super::pack_lanes`] lays
/// them out; `epi` is the depthwise layer's (bias and clamp). The values are those of the layers
/// run apart (the same products; a column tail may sum in another order). The caller checks
/// [`panel::available`].
pub(crate) fn forward(
    isa: Isa,
    source: &Source,
    lane_taps: &[Cell],
    g: &ConvGeometry,
    epi: Epilogue,
    proj: &Projection,
    out: &mut [std::mem::MaybeUninit<f32>],
) {
    let (h, wa) = (&g.h, &g.w);
    let (plane_in, p) = (h.input * wa.input, h.output * wa.output);
    let kk = g.taps();
    let (bias, act) = (epi.bias, epi.act);
    assert!(
        epi.mask.is_none() && epi.residual.is_none(),
        "no mask or residual between the depthwise layer and its projection"
    );
    assert!(g.depthwise(), "one filter per channel");
    assert!(
        panel::available(isa),
        "the panel kernel runs the 1×1 layers"
    );
    assert_eq!(
        lane_taps.len(),
        g.lane_groups() * kk,
        "depthwise weights in lanes"
    );
    assert!(bias.is_none_or(|b| b.len() == g.c), "depthwise bias");
    assert!(g.c > 0 && proj.m > 0, "channels");
    assert_eq!(
        proj.packed.len(),
        proj.m.div_ceil(panel::PANEL) * g.c * panel::PANEL,
        "projection weights"
    );
    assert!(
        proj.bias.is_none_or(|b| b.len() == proj.m),
        "projection bias"
    );
    assert_eq!(out.len(), g.n * proj.m * p, "block output");
    assert!(
        proj.residual.is_none_or(|r| r.len() == out.len()),
        "residual of the output's size"
    );
    match source {
        Source::Planes(x) => assert_eq!(x.len(), g.n * g.c * plane_in, "depthwise input"),
        Source::Pointwise(pw) => {
            assert!(pw.k > 0, "1×1 input channels");
            match pw.im2col {
                None => assert_eq!(pw.x.len(), g.n * pw.k * plane_in, "1×1 input"),
                Some(d1) => {
                    assert!(forms_cells(isa, g), "a dense expansion is formed as cells");
                    assert!(
                        d1.groups == 1
                            && d1.n == g.n
                            && d1.m == g.c
                            && (d1.h.output, d1.w.output) == (h.input, wa.input)
                            && pw.k == d1.c * d1.h.kernel * d1.w.kernel,
                        "a dense expansion's geometry"
                    );
                    assert_eq!(
                        pw.x.len(),
                        g.n * d1.c * d1.h.input * d1.w.input,
                        "the dense expansion's input"
                    );
                }
            }
            assert_eq!(
                pw.packed.len(),
                g.c.div_ceil(panel::PANEL) * pw.k * panel::PANEL,
                "1×1 weights"
            );
            assert!(pw.bias.is_none_or(|b| b.len() == g.c), "1×1 bias");
        }
    }
    let kernel = Path::of(isa);
    let padded = Padded::new(h, wa);
    let rows = strip_rows(&padded).min((STRIP_OUTPUTS / (g.c * wa.output).max(1)).max(1));
    // Two bands of rows per thread (for one image), so that a thread the machine takes away
    // holds up a quarter of the layer rather than half. Bands split the rows evenly, then
    // each goes in strips of `rows`: bands of whole strips had been uneven (56 rows in strips
    // of 8 went 16 + 16 + 16 + 8, one thread doing 32 of them).
    let threads = rayon::current_num_threads().max(1);
    let bands = (2 * threads).div_ceil(g.n).min(h.output).max(1);
    let groups = g.lane_groups();
    // Input rows a strip reads: the ring holds that many of each channel.
    let ring = padded.rows_for(rows);
    let ring_plane = ring * wa.input;
    let biases: Vec<Cell> = (0..groups)
        .map(|gi| bias_cell(bias, gi * LANES, LANES.min(g.c - gi * LANES)))
        .collect();
    let stride = rows * wa.output;
    let dst = SharedOut(out.as_mut_ptr().cast::<f32>());
    // On paths of 4 and 8 lanes the expansion forms its rows as cells (see
    // `super::forward_into_cells`), straight into each group's padded strip.
    let into_cells = forms_cells(isa, g);
    // In cells, each group keeps the padded rows of its last strip (`ring` rows of `pitch`
    // cells, the pad columns zero), and one output row's room follows the groups.
    let pitch = padded.cols;
    let (formed_len, cells_len) = match source {
        Source::Planes(_) => (0, 0),
        // A dense expansion's im2col rows of the input rows a strip forms.
        Source::Pointwise(pw) if into_cells => (
            pw.im2col.map_or(0, |_| pw.k * ring * wa.input),
            groups * ring * pitch + wa.output,
        ),
        Source::Pointwise(_) => (groups * LANES * ring_plane, 0),
    };
    let (left, inside) = Padded::inside(wa, pitch);
    for_each_task(g.n * bands, |task| {
        let (img, band) = (task / bands, task % bands);
        let (first, end) = (band * h.output / bands, (band + 1) * h.output / bands);
        with_formed(formed_len, |formed| {
            RING_CELLS.with_borrow_mut(|ring_cells| {
                // Grown, never shrunk or cleared: a task reads only the rows it formed.
                if ring_cells.len() < cells_len {
                    ring_cells.resize(cells_len, super::ZERO);
                }
                OUTPUTS.with_borrow_mut(|outputs| {
                    if outputs.len() < g.c * stride {
                        outputs.resize(g.c * stride, 0.0);
                    }
                    // Input rows before `ready` are in the ring (from this band's earlier strips).
                    let mut ready = 0;
                    for oh0 in (first..end).step_by(rows) {
                        let nrows = rows.min(end - oh0);
                        // The strip reads padded rows oh0·stride .. end; input row = padded − pad.
                        let begin = oh0 * h.stride;
                        let end = begin + padded.rows_for(nrows);
                        let lo = begin.saturating_sub(h.pad_begin).min(h.input);
                        let hi = end.saturating_sub(h.pad_begin).min(h.input);
                        let from = ready.max(lo);
                        let strip_of = |gi: usize| Strip {
                            kernel,
                            padded: &padded,
                            taps: &lane_taps[gi * kk..][..kk],
                            bias: &biases[gi],
                            act,
                        };
                        if let (Source::Pointwise(pw), true) = (source, into_cells) {
                            // The rows this strip shares with the last move to the front (the
                            // strip's first padded row is row 0); the rest are formed in place,
                            // straight from the expansion, with no copy. Every strip but a
                            // band's last is whole: the one before this read `ring` rows from
                            // `rows·stride` rows back.
                            let advance = rows * h.stride;
                            let kept = if oh0 > first {
                                ring.saturating_sub(advance)
                            } else {
                                0
                            };
                            let first_row =
                                (begin + kept).saturating_sub(h.pad_begin).clamp(lo, hi);
                            // The layer as a 1×1 convolution, its image, the rows to form in
                            // its planes and those planes' size. A dense layer's im2col rows
                            // for those input rows are formed once, for every group.
                            let tile_layer;
                            let (layer, layer_img, layer_rows, layer_plane) = match pw.im2col {
                                None => (*pw, img, first_row..hi, plane_in),
                                Some(d1) => {
                                    let cols = (hi - first_row) * wa.input;
                                    let image = d1.c * d1.h.input * d1.w.input;
                                    let tile = &mut formed[..pw.k * cols];
                                    im2col_tile(
                                        isa,
                                        &pw.x[img * image..][..image],
                                        d1.c,
                                        &d1.h,
                                        &d1.w,
                                        first_row * wa.input,
                                        cols,
                                        tile,
                                    );
                                    tile_layer = pw.over(tile);
                                    (&tile_layer, 0, 0..hi - first_row, cols)
                                }
                            };
                            let (groups_cells, orow) =
                                ring_cells[..cells_len].split_at_mut(groups * ring * pitch);
                            for gi in 0..groups {
                                let c0 = gi * LANES;
                                let lanes = LANES.min(g.c - c0);
                                // SAFETY (both runs): rows 0 .. nrows of channels c0 .. c0 +
                                // lanes of `outputs` (c planes of `stride` ≥ nrows·ow values,
                                // sized above), this thread's own buffer.
                                let to = outputs[c0 * stride..].as_mut_ptr();
                                let rows_of =
                                    &mut groups_cells[gi * ring * pitch..][..ring * pitch];
                                if kept > 0 {
                                    rows_of.copy_within(advance * pitch..ring * pitch, 0);
                                }
                                for pr in begin + kept..end {
                                    let row = &mut rows_of[(pr - begin) * pitch..][..pitch];
                                    if (lo + h.pad_begin..hi + h.pad_begin).contains(&pr) {
                                        row[..left].fill(super::ZERO);
                                        row[left + inside..].fill(super::ZERO);
                                    } else {
                                        row.fill(super::ZERO);
                                    }
                                }
                                // SAFETY: a path of 4 or 8 lanes (`into_cells`) that the CPU
                                // has; c0 is a multiple of 16 below c, whose rows are packed
                                // (asserted above).
                                unsafe {
                                    layer.form_cells(
                                        kernel,
                                        layer_img,
                                        c0,
                                        lanes,
                                        layer_rows.clone(),
                                        (layer_plane, wa.input),
                                        inside,
                                        rows_of,
                                        ((first_row + h.pad_begin - begin) * pitch + left, pitch),
                                    )
                                };
                                // SAFETY: as above (`to`).
                                unsafe {
                                    strip_of(gi).run_on(
                                        &rows_of[..(end - begin) * pitch],
                                        orow,
                                        lanes,
                                        nrows,
                                        to,
                                        stride,
                                    )
                                };
                            }
                        } else {
                            for gi in 0..groups {
                                let c0 = gi * LANES;
                                let lanes = LANES.min(g.c - c0);
                                let strip = strip_of(gi);
                                // SAFETY: rows 0 .. nrows of channels c0 .. c0 + lanes of
                                // `outputs` (c planes of `stride` ≥ nrows·ow values, sized
                                // above), this thread's own buffer.
                                let to = outputs[c0 * stride..].as_mut_ptr();
                                let planes = match source {
                                    Source::Planes(x) => Rows::whole(
                                        &x[(img * g.c + c0) * plane_in..][..lanes * plane_in],
                                        g,
                                    ),
                                    Source::Pointwise(pw) => {
                                        let group = &mut formed[gi * LANES * ring_plane..]
                                            [..LANES * ring_plane];
                                        // Rows from .. hi into their slots (row % ring),
                                        // in runs that do not wrap round the ring.
                                        let mut r = from;
                                        while r < hi {
                                            let slot = r % ring;
                                            let run_end = hi.min(r + ring - slot);
                                            // SAFETY: the panel kernel is available
                                            // (asserted above); c0 is a multiple of 16 below
                                            // c, whose rows are packed (asserted above); rows
                                            // r .. run_end fit the ring's slots slot .. slot +
                                            // (run_end − r) ≤ ring.
                                            unsafe {
                                                pw.form_rows(
                                                    isa,
                                                    img,
                                                    c0,
                                                    lanes,
                                                    r..run_end,
                                                    (plane_in, wa.input),
                                                    group,
                                                    (ring_plane, slot),
                                                )
                                            };
                                            r = run_end;
                                        }
                                        Rows {
                                            planes: group,
                                            stride: ring_plane,
                                            ring,
                                        }
                                    }
                                };
                                // SAFETY: as above (`to`).
                                unsafe { strip.run(planes, lanes, oh0, nrows, to, stride) };
                            }
                        }
                        ready = hi;
                        let first = img * proj.m * p + oh0 * wa.output;
                        let epi = Epilogue {
                            bias: proj.bias,
                            act: proj.act,
                            mask: None,
                            residual: proj.residual.map(|r| &r[first..]),
                        };
                        // SAFETY: the panel kernel is available (asserted above); B is the c rows
                        // of nrows·ow values at `stride` just written; the output is rows
                        // oh0 .. oh0 + nrows of the m planes of image img (out holds n·m·p values,
                        // asserted), written only by this task (its band), and the residual is read
                        // at the same places (asserted to be of the output's size).
                        unsafe {
                            panel::product(
                                isa,
                                proj.packed,
                                proj.m,
                                g.c,
                                outputs.as_ptr(),
                                stride,
                                nrows * wa.output,
                                dst.get().add(first),
                                p,
                                epi,
                            )
                        };
                    }
                })
            })
        })
    });
}
