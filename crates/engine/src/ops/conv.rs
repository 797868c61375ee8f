//! Conv and ConvTranspose (2-D, NCHW), with groups, strides, dilations, pads and auto_pad.
//!
//! 3×3 stride-1 convolutions large enough to gain run as Winograd F(4×4, 3×3)
//! (`kernels/winograd`); the rest is im2col (none for 1×1) + a matrix product: on AVX-512 the
//! panel kernel (`kernels/panel.rs`: packed weights, epilogue in registers, tasks split over
//! columns and, on small maps, output channels), elsewhere the `gemm` crate over column tiles,
//! one single-threaded GEMM per tile (design.md, "Convolution kernels"). The input gradient of a
//! stride-1 convolution is itself a convolution with flipped, transposed weights and reuses the
//! forward kernel; other cases use GEMM + col2im. Depthwise convolutions use direct loops over
//! 16 channels at a time (`kernels/depthwise`). The route is chosen here, per call, from the
//! geometry and the run's [`ExecConfig`].
//!
//! The fused forms the planner may choose are methods of [`Conv`]: a ReLU/Clip in the epilogue
//! ([`Conv::forward_activated`]) and its mask in the next convolution's input gradient
//! ([`Conv::backward_masked`]), a residual `Add` ([`Conv::forward_residual`]), a 1×1
//! convolution formed inside the depthwise one that reads it
//! ([`Conv::forward_after_pointwise`]), a whole inverted-residual block
//! ([`Conv::forward_block`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use super::{check_size, float_input, BuildCtx, Builder, Clamp, ExecConfig, Op, OpKind, Vjp};
use crate::error::{Error, Result};
use crate::kernels::depthwise;
use crate::kernels::epilogue::{self, Epilogue};
use crate::kernels::gemm::{matmul_raw, Mat};
use crate::kernels::geometry::{same_pads, Axis, ConvGeometry};
use crate::kernels::im2col::{col2im_channel, im2col_tile};
use crate::kernels::panel;
use crate::kernels::winograd::{self, transform_weights, TransformedWeights, WeightLayout};
use crate::runtime::cpu::Isa;
use crate::runtime::pool::{for_each_chunk_mut, for_each_guided, for_each_range, SharedOut};
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Conv", |ctx| {
        Ok(Box::new(Conv {
            attrs: ConvAttrs::parse(ctx)?,
            constant_weights: ctx.consts.get(1).is_some_and(Option::is_some),
            flipped: OnceLock::new(),
            packed: WeightCache::default(),
            packed_flipped: WeightCache::default(),
        }))
    });
    reg.insert("ConvTranspose", |ctx| {
        Ok(Box::new(ConvTranspose {
            attrs: ConvAttrs::parse(ctx)?,
            output_padding: ctx.ints("output_padding").unwrap_or_default(),
            output_shape: ctx.ints("output_shape"),
        }))
    });
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

#[derive(Clone, Debug)]
struct ConvAttrs {
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
    auto_pad: AutoPad,
    group: usize,
}

/// Largest stride, dilation or pad accepted. Real networks stay far below; the bound keeps the
/// index arithmetic (`o·stride + k·dilation`, `input + pads`) from overflowing on corrupt values.
const MAX_GEOMETRY: i64 = 1 << 20;

fn pair(v: Option<Vec<i64>>, what: &str) -> Result<[usize; 2]> {
    let ok = |x: i64| (1..=MAX_GEOMETRY).contains(&x);
    match v.as_deref() {
        None => Ok([1, 1]),
        Some([a, b]) if ok(*a) && ok(*b) => Ok([*a as usize, *b as usize]),
        Some(other) => Err(Error::InvalidModel(format!(
            "{what} {other:?}: only 2-D convolutions with values in 1..={MAX_GEOMETRY} are supported"
        ))),
    }
}

impl ConvAttrs {
    fn parse(ctx: &BuildCtx) -> Result<Self> {
        let auto_pad = match ctx.string("auto_pad", "NOTSET").as_str() {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(Error::InvalidModel(format!("unknown auto_pad '{other}'"))),
        };
        let pads = match ctx.ints("pads").as_deref() {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&v| (0..=MAX_GEOMETRY).contains(&v)) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => {
                return Err(Error::InvalidModel(format!(
                    "pads {p:?}: expected 4 non-negative values (2-D) up to {MAX_GEOMETRY}"
                )))
            }
        };
        let group = ctx.int("group", 1);
        if group < 1 {
            return Err(Error::InvalidModel(format!("group {group} must be >= 1")));
        }
        if let Some(ks) = ctx.ints("kernel_shape") {
            if ks.len() != 2 {
                return Err(Error::InvalidModel(format!(
                    "kernel_shape {ks:?}: only 2-D convolutions are supported"
                )));
            }
        }
        Ok(Self {
            strides: pair(ctx.ints("strides"), "strides")?,
            dilations: pair(ctx.ints("dilations"), "dilations")?,
            pads,
            auto_pad,
            group: group as usize,
        })
    }

    /// Geometry of a convolution reading `input` along axis `a` (0 = height, 1 = width).
    fn axis(&self, a: usize, input: usize, kernel: usize) -> Result<Axis> {
        let (s, d) = (self.strides[a], self.dilations[a]);
        // An empty axis would underflow `out - 1` below (SAME) and convolve only padding.
        if input == 0 || kernel == 0 {
            return Err(Error::Shape(format!(
                "convolution of an axis of size {input} with a kernel of size {kernel}"
            )));
        }
        let span = (kernel - 1) * d + 1;
        let (pb, pe) = match self.auto_pad {
            AutoPad::NotSet => (self.pads[a], self.pads[a + 2]),
            AutoPad::Valid => (0, 0),
            AutoPad::SameUpper | AutoPad::SameLower => {
                same_pads(input, s, span, self.auto_pad == AutoPad::SameUpper)
            }
        };
        if input + pb + pe < span {
            return Err(Error::Shape(format!(
                "input size {input} (padded {}) is smaller than the kernel extent {span}",
                input + pb + pe
            )));
        }
        let output = (input + pb + pe - span) / s + 1;
        Ok(Axis {
            input,
            output,
            kernel,
            stride: s,
            dilation: d,
            pad_begin: pb,
        })
    }
}

/// Validated shapes of a convolution call.
type Dims = ConvGeometry;

/// A convolution's optional bias, input 2.
fn bias_input<'a>(inputs: &[Option<&'a Value>]) -> Result<Option<&'a Tensor>> {
    inputs
        .get(2)
        .copied()
        .flatten()
        .map(|b| b.as_float("bias"))
        .transpose()
}

fn conv_dims(attrs: &ConvAttrs, x: &Tensor, w: &Tensor) -> Result<Dims> {
    conv_dims_for(attrs, x.shape(), w)
}

/// [`conv_dims`] for an input of shape `x` (which need not exist yet).
fn conv_dims_for(attrs: &ConvAttrs, x: &[usize], w: &Tensor) -> Result<Dims> {
    let [n, c, ih, iw] = *x else {
        return Err(Error::Shape(format!(
            "Conv input must be 4-D NCHW, got {x:?}"
        )));
    };
    let [m, cg, kh, kw] = *w.shape() else {
        return Err(Error::Shape(format!(
            "Conv weight must be 4-D, got {:?}",
            w.shape()
        )));
    };
    let g = attrs.group;
    if kh == 0 || kw == 0 {
        return Err(Error::Shape(format!(
            "Conv weight {:?} has an empty {kh}×{kw} kernel",
            w.shape()
        )));
    }
    // Checked: a corrupt group attribute can overflow `cg * g`.
    if cg.checked_mul(g) != Some(c) || m % g != 0 {
        return Err(Error::Shape(format!(
            "input has {c} channels but weight {:?} with group {g} expects {}·{g} channels and a multiple of {g} filters",
            w.shape(),
            cg
        )));
    }
    let d = Dims {
        n,
        c,
        m,
        groups: g,
        h: attrs.axis(0, ih, kh)?,
        w: attrs.axis(1, iw, kw)?,
    };
    check_size(&[n, m, d.h.output, d.w.output], "Conv")?;
    Ok(d)
}

/// Columns per GEMM tile: at most 512 (256 and 1024 measured slower on VGG16), fewer so that
/// every thread gets a tile, but never so few that a tile holds less than about a million
/// multiply-adds (small 1×1 convolutions would otherwise spend more time handing out tasks than
/// computing).
fn tile_width(p: usize, tasks_without_tiling: usize, macs_per_column: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let per = if tasks_without_tiling >= threads {
        p
    } else {
        // max(1): an empty batch has no task at all (and div_ceil(0) panics).
        p.div_ceil(threads.div_ceil(tasks_without_tiling.max(1)))
    };
    let floor = (MIN_TASK_MACS / macs_per_column.max(1)).max(1);
    per.clamp(1, 512).max(floor.min(p.max(1)))
}

/// Below this much work a parallel task costs more in hand-off than it saves, especially when
/// the machine is shared and a woken thread may wait for a time slice.
const MIN_TASK_MACS: usize = 1 << 20;

/// Weights transformed for the Winograd path or packed for the panel kernel, kept from the
/// first call on. Only used for weights that are constants of the model (weights computed at
/// run time may come back in the same buffer with other values, so no address or length key
/// would be safe).
#[derive(Default)]
struct WeightCache {
    /// The Winograd transform in each [`WeightLayout`] (the one a run reads depends on its
    /// instruction set, and runs may differ).
    winograd: [OnceLock<TransformedWeights>; 2],
    panels: OnceLock<Vec<f32>>,
    lanes: OnceLock<Vec<depthwise::Cell>>,
}

impl WeightCache {
    /// The Winograd transform of 3×3 weights `[m, c, 3, 3]` in `layout`.
    fn winograd(
        &self,
        w: &Tensor,
        m: usize,
        c: usize,
        layout: WeightLayout,
    ) -> &TransformedWeights {
        let slot = match layout {
            WeightLayout::Panels => &self.winograd[0],
            WeightLayout::Transposed => &self.winograd[1],
        };
        slot.get_or_init(|| transform_weights(w.data(), m, c, layout))
    }

    /// Depthwise weights in lanes of 16 channels ([`depthwise::pack_lanes`]).
    fn lanes(&self, w: &Tensor, c: usize, taps: usize) -> &[depthwise::Cell] {
        self.lanes
            .get_or_init(|| depthwise::pack_lanes(w.data(), c, taps))
    }

    /// The weights packed for [`panel::product`], group by group.
    fn panels(&self, w: &Tensor, d: &Dims) -> &[f32] {
        self.panels
            .get_or_init(|| panel::pack(w.data(), d.groups, d.mg(), d.k()))
    }
}

/// Whether `d` runs on the Winograd route: a convolution it computes and gains on, with the
/// route switched on.
fn on_winograd(config: &ExecConfig, d: &Dims) -> bool {
    config.winograd && winograd::applies(d)
}

/// `y = conv(x, w) + b` for NCHW `x` and `w` of shape `[M, C/g, kh, kw]`, as `config` says.
///
/// `cache` keeps the Winograd transform of constant weights between calls; `act` is applied to
/// each output block right after it is computed; `mask = (src, clamp)` zeroes the outputs whose
/// `src` value (same shape as the output) is outside the clamp's open interval.
#[allow(clippy::too_many_arguments)]
fn conv_forward(
    config: &ExecConfig,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    d: &Dims,
    cache: Option<&WeightCache>,
    act: Option<Clamp>,
    mask: Option<(&Tensor, Clamp)>,
) -> Result<Tensor> {
    if let Some(b) = b {
        if b.len() != d.m {
            return Err(Error::Shape(format!(
                "bias has {} values for {} output channels",
                b.len(),
                d.m
            )));
        }
    }
    let epi = Epilogue {
        bias: b.map(Tensor::data),
        act,
        mask: mask.map(|(t, c)| (t.data(), c)),
        residual: None,
    };
    let isa = config.isa;
    let len = d.output_len();
    if on_winograd(config, d) {
        let layout = WeightLayout::of(isa, d.m);
        let fresh;
        let u = match cache {
            Some(cache) => cache.winograd(w, d.m, d.c, layout),
            None => {
                fresh = transform_weights(w.data(), d.m, d.c, layout);
                &fresh
            }
        };
        let mut out: Vec<f32> = Vec::with_capacity(len);
        winograd::conv3x3(
            isa,
            x.data(),
            u,
            d,
            &mut out.spare_capacity_mut()[..len],
            epi,
        );
        // SAFETY: `conv3x3` writes every one of the `len` elements.
        unsafe { out.set_len(len) };
        return Ok(Tensor::from_parts(d.output_shape().to_vec(), out));
    }
    if d.depthwise() {
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let lanes = match cache {
            Some(cache) => Cow::Borrowed(cache.lanes(w, d.c, d.taps())),
            None => Cow::Owned(depthwise::pack_lanes(w.data(), d.c, d.taps())),
        };
        depthwise::forward(
            isa,
            x.data(),
            w.data(),
            &lanes,
            &mut out.spare_capacity_mut()[..len],
            d,
            epi,
        );
        // SAFETY: `depthwise::forward` writes every one of the `len` values.
        unsafe { out.set_len(len) };
        return Ok(Tensor::from_parts(d.output_shape().to_vec(), out));
    }
    if d.k() == 0 {
        // With no input channels the bias is all.
        let p = d.plane_out();
        let mut out = vec![0.0f32; len];
        let unbiased = Epilogue { bias: None, ..epi };
        for (plane, row) in out.chunks_mut(p.max(1)).enumerate() {
            if let Some(b) = epi.bias {
                row.fill(b[plane % d.m]);
            }
            unbiased.apply_row(isa, row, plane % d.m, plane * p);
        }
        return Ok(Tensor::from_parts(d.output_shape().to_vec(), out));
    }
    // Every output value is written once by its tile's GEMM (which does not read it), then
    // gets its epilogue while the tile is in cache: no zeroing or bias pass over the whole
    // output first.
    if panel::available(isa) && d.mg() >= panel::PANEL {
        return Ok(panel_forward(isa, x, w, d, cache, epi));
    }
    Ok(gemm_forward(isa, x, w, d, epi))
}

/// [`conv_forward`]'s portable route (no Winograd, no depthwise, no panel kernel): tiles of
/// output columns, each one single-threaded GEMM on the input planes (1×1) or an im2col tile,
/// then the epilogue on each row of the tile while it is in cache.
fn gemm_forward(isa: Isa, x: &Tensor, w: &Tensor, d: &Dims, epi: Epilogue) -> Tensor {
    let (cg, mg, k) = (d.cg(), d.mg(), d.k());
    let p = d.plane_out();
    let len = d.output_len();
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let plane_in = d.plane_in();
    let pointwise = d.pointwise();
    let tile = tile_width(p, d.n * d.groups, mg * k);
    let tiles = p.div_ceil(tile);
    let tasks = d.n * d.groups * tiles;
    let threads = if tasks >= rayon::current_num_threads() {
        1
    } else {
        0
    };
    let dst = SharedOut(out.as_mut_ptr());
    let (xd, wd) = (x.data(), w.data());
    for_each_range(tasks, 1, |range| {
        let mut col = Vec::new();
        for task in range {
            let col = &mut col;
            let (img, rest) = (task / (d.groups * tiles), task % (d.groups * tiles));
            let (gi, t) = (rest / tiles, rest % tiles);
            let p0 = t * tile;
            let cols = tile.min(p - p0);
            let x_img =
                &xd[(img * d.c + gi * cg) * plane_in..(img * d.c + (gi + 1) * cg) * plane_in];
            let w_g = &wd[gi * mg * k..(gi + 1) * mg * k];
            let out_off = (img * d.m + gi * mg) * p + p0;
            let cm = Mat {
                rows: mg,
                cols,
                rs: p as isize,
                cs: 1,
            };
            if pointwise {
                let bm = Mat {
                    rows: cg,
                    cols,
                    rs: plane_in as isize,
                    cs: 1,
                };
                // SAFETY: task (img, gi, t) writes only rows gi·mg.. of image img, columns p0..p0+cols.
                unsafe {
                    matmul_raw(
                        w_g,
                        Mat::row_major(mg, k),
                        &x_img[p0..],
                        bm,
                        dst.get().add(out_off),
                        cm,
                        false,
                        threads,
                    )
                };
            } else {
                col.resize(k * cols, 0.0);
                im2col_tile(isa, x_img, cg, &d.h, &d.w, p0, cols, col);
                // SAFETY: as above, each task owns a disjoint block of `out`.
                unsafe {
                    matmul_raw(
                        w_g,
                        Mat::row_major(mg, k),
                        col,
                        Mat::row_major(k, cols),
                        dst.get().add(out_off),
                        cm,
                        false,
                        threads,
                    )
                };
            }
            if !epi.is_empty() {
                for r in 0..mg {
                    // SAFETY: row r of this task's block: `cols` values inside `out`, written
                    // by the GEMM above, that only this task touches.
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(dst.get().add(out_off + r * p), cols)
                    };
                    epi.apply_row(isa, row, gi * mg + r, out_off + r * p);
                }
            }
        }
    });
    // SAFETY: the tasks cover every (image, group, tile) block, and each block's GEMM wrote all
    // of its `mg × cols` values (k > 0, so the GEMM does run).
    unsafe { out.set_len(len) };
    Tensor::from_parts(d.output_shape().to_vec(), out)
}

/// `conv(x, w) + b + residual` in one sweep when the convolution runs on the panel kernel
/// (1×1 and im2col convolutions; `None` on the other routes, and when `residual` is not of
/// the output's shape): a residual `Add` fused into the convolution before it.
fn conv_forward_residual(
    config: &ExecConfig,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    d: &Dims,
    cache: Option<&WeightCache>,
    residual: &Tensor,
) -> Option<Tensor> {
    let isa = config.isa;
    let on_panels = panel::available(isa)
        && d.mg() >= panel::PANEL
        && d.k() > 0
        && !d.depthwise()
        && !on_winograd(config, d);
    if !on_panels || residual.shape() != d.output_shape() || b.is_some_and(|b| b.len() != d.m) {
        return None;
    }
    let epi = Epilogue {
        bias: b.map(Tensor::data),
        residual: Some(residual.data()),
        ..Epilogue::default()
    };
    Some(panel_forward(isa, x, w, d, cache, epi))
}

/// [`conv_forward`]'s panel-kernel route (the caller checked that it applies).
fn panel_forward(
    isa: Isa,
    x: &Tensor,
    w: &Tensor,
    d: &Dims,
    cache: Option<&WeightCache>,
    epi: Epilogue,
) -> Tensor {
    let len = d.output_len();
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let packed = match cache {
        Some(cache) => Cow::Borrowed(cache.panels(w, d)),
        None => Cow::Owned(panel::pack(w.data(), d.groups, d.mg(), d.k())),
    };
    let dst = SharedOut(out.as_mut_ptr());
    panel_conv(isa, x.data(), &packed, d, epi, dst);
    // SAFETY: `panel_conv` writes every (image, channel, position) of the output once.
    unsafe { out.set_len(len) };
    Tensor::from_parts(d.output_shape().to_vec(), out)
}

/// The non-Winograd, non-depthwise convolution on [`panel::product`], in claims that shrink
/// ([`for_each_guided`]) over 48-column units of every image (and group) or, when there are
/// fewer than eight such units per thread (7×7 and 14×14 maps at batch 1), over panels of
/// output channels of fixed column chunks. A 1×1 convolution reads its input planes in place;
/// others build one im2col tile per product call.
///
/// Every output value is computed the same way whatever claim it falls in: column runs start
/// at multiples of 48 (a whole number of the kernel's column blocks on every path), so only
/// the end of a map has a partial block, and panels are independent. The results do not
/// depend on the number of threads or on timing.
fn panel_conv(isa: Isa, x: &[f32], wp: &[f32], d: &Dims, epi: Epilogue, dst: SharedOut) {
    let (cg, mg, k) = (d.cg(), d.mg(), d.k());
    let p = d.plane_out();
    let plane_in = d.plane_in();
    let pointwise = d.pointwise();
    // Columns per product call, a multiple of the 48-column unit: with 64 input channels or
    // more, the k × cols block of the input (or im2col tile) within 16 KB, so that it stays in
    // L1 while every panel of weights passes over it (EfficientNet's projections × 0.91 in
    // paired rounds; 10–30 % faster hot); with fewer, within 256 KB (L2): those layers are
    // bound by their output writes, and shorter runs per output row measured slower on
    // 112×112 maps.
    let budget = if k >= 64 { 1usize << 12 } else { 1 << 16 };
    let chunk = (budget / k).clamp(COLUMN_UNIT, 1024) / COLUMN_UNIT * COLUMN_UNIT;
    // The last chunk of a map takes the remainder (up to twice the others), so that no
    // product runs on a few leftover columns alone.
    let chunks = (p / chunk).max(1);
    let planes = d.n * d.groups;
    let panels = mg.div_ceil(panel::PANEL);
    let threads = rayon::current_num_threads().max(1);
    assert!(
        epi.mask.is_none_or(|(src, _)| src.len() == d.output_len()),
        "mask source of the output's size"
    );
    assert!(
        epi.residual.is_none_or(|r| r.len() == d.output_len()),
        "residual of the output's size"
    );
    // Rows r0 .. r0 + rows of image `img`, group `gi`, columns p0 .. p0 + cols.
    let block = |col: &mut Vec<f32>, plane: usize, p0: usize, cols: usize, r0: usize, rows| {
        let (img, gi) = (plane / d.groups, plane % d.groups);
        let x_img = &x[(img * d.c + gi * cg) * plane_in..][..cg * plane_in];
        let (b, brs) = if pointwise {
            (x_img[p0..].as_ptr(), plane_in)
        } else {
            // Grown, never shrunk or cleared: `im2col_tile` writes every value it covers.
            if col.len() < k * cols {
                col.resize(k * cols, 0.0);
            }
            im2col_tile(isa, x_img, cg, &d.h, &d.w, p0, cols, &mut col[..k * cols]);
            (col.as_ptr(), cols)
        };
        let first = (img * d.m + gi * mg + r0) * p + p0;
        let epi = epi.part(gi * mg + r0, first);
        let wp_g = &wp[(gi * panels + r0 / panel::PANEL) * k * panel::PANEL..];
        // SAFETY: `b` holds k rows of `cols` values at stride `brs` (input planes of this
        // image and group, or the im2col tile); each claim alone writes its rows r0 .. r0 +
        // rows of group gi, columns p0 .. p0 + cols, of image img's output (the kernel checks
        // its own requirements, and the epilogue's sources, of the output's size, are read at
        // the same places).
        unsafe {
            panel::product(
                isa,
                wp_g,
                rows,
                k,
                b,
                brs,
                cols,
                dst.get().add(first),
                p,
                epi,
            )
        };
    };
    // Units of 48 columns; the last unit of a map takes the remainder (48–95 columns).
    let units = (p / COLUMN_UNIT).max(1);
    if planes * units >= 8 * threads {
        let unit_macs = COLUMN_UNIT * mg * k;
        for_each_guided(planes * units, CLAIM_MACS.div_ceil(unit_macs), |claim| {
            IM2COL.with_borrow_mut(|col| {
                let mut at = claim.start;
                while at < claim.end {
                    let (plane, u0) = (at / units, at % units);
                    let u1 = units.min(u0 + claim.end - at);
                    let end = if u1 == units { p } else { u1 * COLUMN_UNIT };
                    let mut p0 = u0 * COLUMN_UNIT;
                    while p0 < end {
                        // A piece of less than a unit would be the map's remainder alone.
                        let cols = if end - p0 < chunk + COLUMN_UNIT {
                            end - p0
                        } else {
                            chunk
                        };
                        block(col, plane, p0, cols, 0, mg);
                        p0 += cols;
                    }
                    at += u1 - u0;
                }
            })
        });
    } else {
        // Units of one panel of output channels of one column chunk.
        let cols_max = p - (chunks - 1) * chunk;
        let unit_macs = panel::PANEL * k * cols_max;
        for_each_guided(
            planes * chunks * panels,
            CLAIM_MACS.div_ceil(unit_macs),
            |claim| {
                IM2COL.with_borrow_mut(|col| {
                    let mut at = claim.start;
                    while at < claim.end {
                        let (piece, s0) = (at / panels, at % panels);
                        let s1 = panels.min(s0 + claim.end - at);
                        let (plane, ci) = (piece / chunks, piece % chunks);
                        let p0 = ci * chunk;
                        let cols = if ci + 1 == chunks { p - p0 } else { chunk };
                        let r0 = s0 * panel::PANEL;
                        block(col, plane, p0, cols, r0, (s1 * panel::PANEL).min(mg) - r0);
                        at += s1 - s0;
                    }
                })
            },
        );
    }
}

/// Columns of one unit of [`panel_conv`]'s claims: a whole number of the panel kernel's
/// column blocks on every path (48 on AVX-512, 24 on AVX2, 12 on NEON).
const COLUMN_UNIT: usize = 48;

/// Multiply-adds of the smallest claim of [`panel_conv`] (about 2 µs of one core): smaller
/// ones would cost more in claims and product calls than they save in waiting.
const CLAIM_MACS: usize = 1 << 18;

thread_local! {
    /// The im2col tile of a [`panel_conv`] task, kept per thread: made per rayon split, it was
    /// allocated and zeroed for most tasks (the zeroing was 4 % of the stem's perf samples).
    static IM2COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The gradient of `conv(x, w)` with respect to `x`, given `dy` (also ConvTranspose's forward).
///
/// `flipped` holds the flipped, transposed weights (and their Winograd cache) when the caller
/// has them.
///
/// With `mask` = `(x, clamp)`, the gradient is zeroed wherever `x` is outside the clamp's open
/// interval (inside the flipped convolution's epilogue when it runs, else in a final pass).
fn conv_input_grad(
    config: &ExecConfig,
    dy: &Tensor,
    w: &Tensor,
    d: &Dims,
    flipped: Option<(&Tensor, Option<&WeightCache>)>,
    mask: Option<(&Tensor, Clamp)>,
) -> Result<Tensor> {
    let (ih, iw) = (d.h.input, d.w.input);
    let plane_in = ih * iw;
    let p = d.h.output * d.w.output;
    if dy.shape() != [d.n, d.m, d.h.output, d.w.output] {
        return Err(Error::Shape(format!(
            "gradient shape {:?} does not match the conv output",
            dy.shape()
        )));
    }
    // The flipped-kernel convolution builds columns from the M output-gradient channels; GEMM +
    // col2im builds them for the C input channels. Take the smaller (the first layer of a
    // network has C = 3 and M = 64: 21× fewer column values through col2im), unless the flipped
    // convolution runs on the Winograd path, which builds no columns at all. It applies the
    // mask in its own epilogue.
    // A stride-1 depthwise layer's flipped convolution is depthwise too, and runs on the
    // forward strips (registers accumulate each input position's taps; the adjoint below
    // adds every tap into memory, 6 % of EfficientNet's AVX2 gradient); strided ones have no
    // such transpose.
    if let (Some((wf, cache)), Some(td)) = (flipped, d.transposed()) {
        // A 1×1 convolution's col2im is a copy: the flipped route builds nothing either.
        let no_columns = on_winograd(config, &td) || td.pointwise();
        if d.c >= d.m || no_columns {
            return conv_forward(config, dy, wf, None, &td, cache, None, mask);
        }
    }
    let mut dx = vec![0.0f32; d.n * d.c * plane_in];
    let masked = |mut dx: Vec<f32>| {
        if let Some((x, clamp)) = mask {
            epilogue::mask(config.isa, clamp, &mut dx, x.data());
        }
        Tensor::from_parts(vec![d.n, d.c, ih, iw], dx)
    };
    if d.depthwise() {
        depthwise::input_grad(config.isa, dy.data(), w.data(), &mut dx, d);
        return Ok(masked(dx));
    }
    let (cg, mg, k) = (d.cg(), d.mg(), d.k());
    let tasks = d.n * d.groups;
    let image_grad = |task: usize, dcol: &mut Vec<f32>, dx_g: &mut [f32], threads: usize| {
        let (img, gi) = (task / d.groups, task % d.groups);
        let dy_g = &dy.data()[(img * d.m + gi * mg) * p..(img * d.m + (gi + 1) * mg) * p];
        let w_g = &w.data()[gi * mg * k..(gi + 1) * mg * k];
        dcol.resize(k * p, 0.0);
        // dcol[k, p] = w_gᵀ[k, mg] · dy_g[mg, p]
        // SAFETY: `dcol` is exclusively borrowed here and sized k·p.
        unsafe {
            matmul_raw(
                w_g,
                Mat::row_major(mg, k).t(),
                dy_g,
                Mat::row_major(mg, p),
                dcol.as_mut_ptr(),
                Mat::row_major(k, p),
                false,
                threads,
            )
        };
        if threads == 1 {
            for (c, plane) in dx_g.chunks_mut(plane_in).enumerate() {
                col2im_channel(dcol, c, &d.h, &d.w, plane);
            }
        } else {
            for_each_chunk_mut(dx_g, plane_in, |c, plane| {
                col2im_channel(dcol, c, &d.h, &d.w, plane)
            });
        }
    };
    if tasks >= rayon::current_num_threads() {
        // Enough images (×groups) to keep every thread busy with its own GEMM and col2im.
        let len = cg * plane_in;
        let base = SharedOut(dx.as_mut_ptr());
        for_each_range(tasks, 1, |range| {
            let mut dcol = Vec::new();
            for task in range {
                // SAFETY: image (× group) `task`'s part of `dx`, which holds `tasks` such parts;
                // only this task touches it.
                let dx_g =
                    unsafe { std::slice::from_raw_parts_mut(base.get().add(task * len), len) };
                image_grad(task, &mut dcol, dx_g, 1);
            }
        });
    } else {
        let mut dcol = Vec::new();
        for (task, dx_g) in dx.chunks_mut(cg * plane_in).enumerate() {
            image_grad(task, &mut dcol, dx_g, 0);
        }
    }
    Ok(masked(dx))
}

/// `[M, C, kh, kw]` → `[C, M, kh, kw]` with both kernel axes reversed.
fn flip_transpose(w: &Tensor) -> Tensor {
    let [m, c, kh, kw] = *w.shape() else {
        unreachable!("checked 4-D")
    };
    let mut out = vec![0.0; w.len()];
    for mi in 0..m {
        for ci in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    out[((ci * m + mi) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)] =
                        w.data()[((mi * c + ci) * kh + i) * kw + j];
                }
            }
        }
    }
    Tensor::from_parts(vec![c, m, kh, kw], out)
}

/// A layer of a fused block: the convolution, its inputs (the one the block forms itself
/// absent) and the clamp after it, if any.
pub(crate) type BlockLayer<'a> = (&'a Conv, &'a [Option<&'a Value>], Option<Clamp>);

/// The nodes of an inverted-residual block (MobileNetV2, EfficientNet) that
/// [`Conv::forward_block`] runs as one: an optional 1×1 expansion, the depthwise convolution
/// (whose op receives this), a 1×1 projection reading only its output, and an optional
/// residual addend after the projection.
pub(crate) struct BlockParts<'a> {
    /// The expansion, when its output only feeds the depthwise layer.
    pub expand: Option<BlockLayer<'a>>,
    /// The depthwise layer's inputs (input 0 absent when the expansion is fused).
    pub inputs: &'a [Option<&'a Value>],
    /// The clamp after the depthwise layer.
    pub act: Option<Clamp>,
    /// The projection (input 0 absent).
    pub project: BlockLayer<'a>,
    /// The other operand of an `Add` that only reads the projection's output.
    pub residual: Option<&'a Tensor>,
}

/// A layer of a block that is an ungrouped 1×1 convolution with constant weights (or, as an
/// expansion, a small ungrouped convolution run over its im2col rows: see
/// [`PointwiseLayer::expansion`]).
struct PointwiseLayer<'a> {
    conv: &'a Conv,
    w: &'a Tensor,
    b: Option<&'a Tensor>,
    d: Dims,
    act: Option<Clamp>,
}

impl<'a> PointwiseLayer<'a> {
    /// `layer` on an input of shape `x`, if it is such a convolution.
    fn of(layer: &BlockLayer<'a>, x: &[usize]) -> Option<PointwiseLayer<'a>> {
        Self::fitting(layer, x, Dims::pointwise)
    }

    /// `layer` on an input of shape `x` as a block's expansion: a 1×1 convolution as
    /// [`PointwiseLayer::of`], or an ungrouped one of at most [`DENSE_MAX_ROWS`] im2col rows
    /// (a stem), which only the whole-block kernel forms (as cells, on paths of 4 and 8 lanes).
    fn expansion(layer: &BlockLayer<'a>, x: &[usize]) -> Option<PointwiseLayer<'a>> {
        Self::fitting(layer, x, |d| d.pointwise() || d.k() <= DENSE_MAX_ROWS)
    }

    /// `layer` on an input of shape `x`, when it is an ungrouped convolution with constant
    /// weights whose geometry `shape_fits`.
    fn fitting(
        &(conv, inputs, act): &BlockLayer<'a>,
        x: &[usize],
        shape_fits: impl Fn(&Dims) -> bool,
    ) -> Option<PointwiseLayer<'a>> {
        let w = float_input(inputs, 1).ok()?;
        let b = bias_input(inputs).ok()?;
        let d = conv_dims_for(&conv.attrs, x, w).ok()?;
        let fits = conv.constant_weights
            && shape_fits(&d)
            && d.groups == 1
            && d.k() > 0
            && b.is_none_or(|b| b.len() == d.m);
        fits.then_some(PointwiseLayer { conv, w, b, d, act })
    }

    /// The shape of its output.
    fn output_shape(&self) -> [usize; 4] {
        self.d.output_shape()
    }

    /// The layer as the depthwise kernels form it, on input `x`.
    fn formed(&self, x: &'a Tensor) -> depthwise::Pointwise<'a> {
        depthwise::Pointwise {
            x: x.data(),
            k: self.d.k(),
            packed: self.conv.packed.panels(self.w, &self.d),
            bias: self.b.map(Tensor::data),
            act: self.act,
            im2col: (!self.d.pointwise()).then_some(self.d),
        }
    }
}

/// What a convolution can be in a fused block, from its attributes and constant weights alone
/// (the kernels still check the shapes of each call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockRole {
    /// An ungrouped 1×1, stride-1, unpadded convolution: an expansion or a projection.
    Pointwise,
    /// Another ungrouped convolution of at most [`DENSE_MAX_ROWS`] im2col rows (a network's
    /// stem: 3 channels, 3×3, stride 2): an expansion the whole-block kernel forms from its
    /// im2col rows.
    Dense,
    /// One filter per channel (weights `[m, 1, kh, kw]`, `group = m`).
    Depthwise,
    /// Neither, or weights computed at run time.
    Other,
}

/// The most im2col rows (`c·kh·kw`) of a dense expansion ([`BlockRole::Dense`]): a strip's
/// im2col rows stay within a few hundred KB (EfficientNet's stem has 27).
const DENSE_MAX_ROWS: usize = 64;

/// Output columns from which a depthwise layer runs with its block ([`Conv::forward_block`]).
const BLOCK_MIN_COLUMNS: usize = 56;
/// Images from which a batch runs inverted-residual blocks as one on narrower maps too (two
/// per thread on this project's 2-core machines; see [`Conv::forward_block`]).
const BLOCK_MIN_IMAGES: usize = 4;

/// `Conv` (2-D, NCHW), with groups, strides, dilations, pads and auto_pad; its fused forms are
/// its own methods (see the module).
pub struct Conv {
    attrs: ConvAttrs,
    /// Whether the weights are a constant of the model (then their derived forms are cached).
    constant_weights: bool,
    /// Flipped, transposed weights for the stride-1 input gradient, built on first use.
    flipped: OnceLock<Tensor>,
    /// Winograd transforms of the weights and of the flipped weights.
    packed: WeightCache,
    packed_flipped: WeightCache,
}

impl Conv {
    /// What this convolution can be in a fused block, given its weights (`None` when they are
    /// not a constant of the model).
    pub(crate) fn block_role(&self, weights: Option<&Tensor>) -> BlockRole {
        let Some(w) = weights.filter(|_| self.constant_weights) else {
            return BlockRole::Other;
        };
        let a = &self.attrs;
        let unpadded = match a.auto_pad {
            AutoPad::NotSet => a.pads == [0; 4],
            // A 1×1 kernel at stride 1 gets no padding from these.
            AutoPad::Valid | AutoPad::SameUpper | AutoPad::SameLower => true,
        };
        match *w.shape() {
            [_, cg, 1, 1] if cg > 0 && a.group == 1 && a.strides == [1, 1] && unpadded => {
                BlockRole::Pointwise
            }
            [m, 1, _, _] if a.group == m => BlockRole::Depthwise,
            [_, c, kh, kw] if a.group == 1 && c * kh * kw <= DENSE_MAX_ROWS => BlockRole::Dense,
            _ => BlockRole::Other,
        }
    }

    /// The Winograd weight cache, for constant weights only.
    fn cache(&self) -> Option<&WeightCache> {
        self.constant_weights.then_some(&self.packed)
    }

    /// The input gradient, masked by `mask` read from the input (see
    /// [`Conv::backward_masked`]).
    fn input_grads(&self, v: &Vjp, mask: Option<Clamp>) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (v.input(0)?, v.input(1)?);
        let d = conv_dims(&self.attrs, x, w)?;
        let mut grads: Vec<Option<Tensor>> = v.inputs.iter().map(|_| None).collect();
        if v.needs[0] {
            // Constant weights are flipped (and transformed) once; others on every call.
            let fresh;
            let flip = || {
                let f = flip_transpose(w);
                // `[m, 1, kh, kw]` flipped is laid out as `[1, m, kh, kw]` transposed: the same
                // values, the depthwise shape.
                if d.depthwise() {
                    Tensor::from_parts(w.shape().to_vec(), f.data().to_vec())
                } else {
                    f
                }
            };
            let flipped = match (d.groups == 1 || d.depthwise(), self.constant_weights) {
                (false, _) => None,
                (true, true) => Some((self.flipped.get_or_init(flip), Some(&self.packed_flipped))),
                (true, false) => {
                    fresh = flip();
                    Some((&fresh, None))
                }
            };
            let mask = mask.map(|c| (x, c));
            grads[0] = Some(conv_input_grad(v.config, v.grad(0)?, w, &d, flipped, mask)?);
        }
        if v.needs.iter().skip(1).any(|&n| n) {
            return Err(Error::NotDifferentiable(
                "Conv with respect to its weights or bias".into(),
            ));
        }
        Ok(grads)
    }

    /// The forward pass with `act` applied to each output block while it is still in cache,
    /// so the pre-activation value is never written out.
    pub(crate) fn forward_activated(
        &self,
        config: &ExecConfig,
        inputs: &[Option<&Value>],
        act: Clamp,
    ) -> Result<Value> {
        let (x, w) = (float_input(inputs, 0)?, float_input(inputs, 1)?);
        let b = bias_input(inputs)?;
        let d = conv_dims(&self.attrs, x, w)?;
        Ok(conv_forward(config, x, w, b, &d, self.cache(), Some(act), None)?.into())
    }

    /// `forward(inputs) + residual` (a residual `Add` after the convolution), the sum formed
    /// while each output block is in cache. `None` when the convolution has no such form for
    /// these inputs (the caller then runs the two nodes apart); errors in the inputs also give
    /// `None`, so that the unfused pass reports them.
    pub(crate) fn forward_residual(
        &self,
        config: &ExecConfig,
        inputs: &[Option<&Value>],
        residual: &Tensor,
    ) -> Option<Result<Value>> {
        let (x, w) = (float_input(inputs, 0).ok()?, float_input(inputs, 1).ok()?);
        let b = bias_input(inputs).ok()?;
        let d = conv_dims(&self.attrs, x, w).ok()?;
        conv_forward_residual(config, x, w, b, &d, self.cache(), residual).map(|t| Ok(t.into()))
    }

    /// For a depthwise convolution whose input is the output of `pointwise` (a 1×1
    /// convolution with inputs `pointwise_inputs`, clamped by `pointwise_act`) that nothing
    /// else reads: both layers in one sweep, the 1×1 output never formed whole. `inputs` are
    /// this node's own, input 0 absent. `None` when the two have no such form (the caller then
    /// runs them apart); errors in the inputs also give `None`, so that the unfused pass
    /// reports them.
    pub(crate) fn forward_after_pointwise(
        &self,
        config: &ExecConfig,
        pointwise: BlockLayer,
        inputs: &[Option<&Value>],
        act: Option<Clamp>,
    ) -> Option<Result<Value>> {
        let isa = config.isa;
        let x = float_input(pointwise.1, 0).ok()?;
        let pw = PointwiseLayer::of(&pointwise, x.shape())?;
        let w2 = float_input(inputs, 1).ok()?;
        let b2 = bias_input(inputs).ok()?;
        let d2 = conv_dims_for(&self.attrs, &pw.output_shape(), w2).ok()?;
        // Only constant weights (their packed forms are cached), on the panel kernel.
        let fits = self.constant_weights
            && panel::available(isa)
            && d2.depthwise()
            && b2.is_none_or(|b| b.len() == d2.m);
        if !fits {
            return None;
        }
        let len = d2.output_len();
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let lanes = self.packed.lanes(w2, d2.c, d2.taps());
        let pointwise = pw.formed(x);
        let epi = Epilogue {
            bias: b2.map(Tensor::data),
            act,
            ..Epilogue::default()
        };
        depthwise::forward_after_pointwise(
            isa,
            &pointwise,
            w2.data(),
            lanes,
            &mut out.spare_capacity_mut()[..len],
            &d2,
            epi,
        );
        // SAFETY: `forward_after_pointwise` writes every one of the `len` values.
        unsafe { out.set_len(len) };
        Some(Ok(
            Tensor::from_parts(d2.output_shape().to_vec(), out).into()
        ))
    }

    /// For a depthwise convolution: the layers of an inverted-residual block around it in
    /// one sweep (see [`BlockParts`]), the depthwise output (and the expansion's) never formed
    /// whole. `None` when the ops or shapes have no such form (the caller then runs them
    /// apart or in the pairs above); errors in the inputs also give `None`, so that the
    /// unfused pass reports them.
    pub(crate) fn forward_block(
        &self,
        config: &ExecConfig,
        parts: &BlockParts,
    ) -> Option<Result<Value>> {
        let isa = config.isa;
        // Only constant weights (their packed forms are cached), on the panel kernel.
        if !self.constant_weights || !panel::available(isa) {
            return None;
        }
        let (expand, x) = match &parts.expand {
            Some(layer) => {
                let x = float_input(layer.1, 0).ok()?;
                (Some(PointwiseLayer::expansion(layer, x.shape())?), x)
            }
            None => (None, float_input(parts.inputs, 0).ok()?),
        };
        let dw_shape = match &expand {
            Some(e) => e.output_shape(),
            None => <[usize; 4]>::try_from(x.shape()).ok()?,
        };
        let w2 = float_input(parts.inputs, 1).ok()?;
        let b2 = bias_input(parts.inputs).ok()?;
        let d2 = conv_dims_for(&self.attrs, &dw_shape, w2).ok()?;
        let (oh, ow) = (d2.h.output, d2.w.output);
        let proj = PointwiseLayer::of(&parts.project, &[d2.n, d2.m, oh, ow])?;
        let d3 = &proj.d;
        // Maps of 56 columns and more. On 28×28 maps (EfficientNet's blocks 3 and 4, 5×5 taps)
        // it measured no faster, or slower: a band's first strip forms 2–4 rows twice, and
        // the products are short. Smaller maps of one image stay in cache anyway. In a batch
        // of several images (`convscope examples` runs 16–32) the depthwise output written
        // whole is the batch's, out of cache, and with two images per thread a band is a whole
        // image (no row formed twice): fused there, EfficientNet's pass to its head took 0.82×
        // the time at batch 32 (design.md, "Dataset examples: speed"). The rule counts images,
        // not threads, so that whether a block fuses does not depend on the machine.
        // A dense expansion (a stem) is formed as cells only.
        let formable = expand
            .as_ref()
            .is_none_or(|e| e.d.pointwise() || depthwise::forms_cells(isa, &d2));
        let fits = d2.depthwise()
            && formable
            && (ow >= BLOCK_MIN_COLUMNS || d2.n >= BLOCK_MIN_IMAGES)
            && b2.is_none_or(|b| b.len() == d2.m)
            && parts
                .residual
                .is_none_or(|r| r.shape() == d3.output_shape());
        if !fits {
            return None;
        }
        let len = d3.output_len();
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let lanes = self.packed.lanes(w2, d2.c, d2.taps());
        let pointwise = expand.map(|e| e.formed(x));
        let source = match &pointwise {
            Some(pw) => depthwise::block::Source::Pointwise(pw),
            None => depthwise::block::Source::Planes(x.data()),
        };
        let projection = depthwise::block::Projection {
            packed: proj.conv.packed.panels(proj.w, d3),
            m: d3.m,
            bias: proj.b.map(Tensor::data),
            act: proj.act,
            residual: parts.residual.map(Tensor::data),
        };
        let epi = Epilogue {
            bias: b2.map(Tensor::data),
            act: parts.act,
            ..Epilogue::default()
        };
        depthwise::block::forward(
            isa,
            &source,
            lanes,
            &d2,
            epi,
            &projection,
            &mut out.spare_capacity_mut()[..len],
        );
        // SAFETY: `block::forward` writes every one of the `len` values.
        unsafe { out.set_len(len) };
        Some(Ok(
            Tensor::from_parts(d3.output_shape().to_vec(), out).into()
        ))
    }

    /// Like [`Op::backward`], with the gradient of input 0 already multiplied by the derivative
    /// of `act` read from input 0 itself (1 where `lo < x < hi`, else 0). The executor asks for
    /// it when input 0 is the output of a clamp fused into the convolution before it and this
    /// node is its only reader; the clamp's own backward pass is then skipped.
    pub(crate) fn backward_masked(&self, v: &Vjp, act: Clamp) -> Result<Vec<Option<Tensor>>> {
        self.input_grads(v, Some(act))
    }

    /// The same convolution applied to `items` images stacked along the channel axis
    /// (`[1, items·C, H, W]`), each with its own single filter (weights `[items, C, kh, kw]`,
    /// bias `[items]`). `None` when the convolution cannot be sliced that way (grouped).
    pub(crate) fn one_filter_per_item(&self, items: usize) -> Option<Conv> {
        // Grouped convolutions would need their input channels sliced too.
        (self.attrs.group == 1 && items > 0).then(|| Conv {
            attrs: ConvAttrs {
                group: items,
                ..self.attrs.clone()
            },
            // The stacked weights are new on every call.
            constant_weights: false,
            flipped: OnceLock::new(),
            packed: WeightCache::default(),
            packed_flipped: WeightCache::default(),
        })
    }
}

impl Op for Conv {
    fn forward(&self, config: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (x, w) = (float_input(inputs, 0)?, float_input(inputs, 1)?);
        let b = bias_input(inputs)?;
        let d = conv_dims(&self.attrs, x, w)?;
        Ok(vec![conv_forward(
            config,
            x,
            w,
            b,
            &d,
            self.cache(),
            None,
            None,
        )?
        .into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        self.input_grads(v, None)
    }

    fn flops(&self, inputs: &[Option<&Value>], _outputs: &[&Value]) -> u64 {
        match (float_input(inputs, 0), float_input(inputs, 1)) {
            (Ok(x), Ok(w)) => conv_dims(&self.attrs, x, w).map_or(0, |d| 2 * d.macs()),
            _ => 0,
        }
    }

    fn kind(&self) -> OpKind<'_> {
        OpKind::Conv(self)
    }
}

struct ConvTranspose {
    attrs: ConvAttrs,
    output_padding: Vec<i64>,
    output_shape: Option<Vec<i64>>,
}

impl ConvTranspose {
    /// The dims of the convolution whose input gradient this ConvTranspose computes.
    fn dims(&self, x: &Tensor, w: &Tensor) -> Result<Dims> {
        let [n, cin, h, wd] = *x.shape() else {
            return Err(Error::Shape(format!(
                "ConvTranspose input must be 4-D NCHW, got {:?}",
                x.shape()
            )));
        };
        let [wc, mg, kh, kw] = *w.shape() else {
            return Err(Error::Shape(format!(
                "ConvTranspose weight must be 4-D, got {:?}",
                w.shape()
            )));
        };
        let g = self.attrs.group;
        if wc != cin || cin % g != 0 {
            return Err(Error::Shape(format!(
                "input has {cin} channels, weight {:?} (group {g})",
                w.shape()
            )));
        }
        // Checked: with no input channels any group divides, and `mg * g` may overflow.
        let c = mg.checked_mul(g).ok_or_else(|| {
            Error::Shape(format!(
                "ConvTranspose weight {:?} with group {g}",
                w.shape()
            ))
        })?;
        let a = &self.attrs;
        let mk = |ax: usize, input: usize, k: usize| -> Result<Axis> {
            let (s, dl) = (a.strides[ax], a.dilations[ax]);
            // `input - 1` and `k - 1` below underflow on empty axes.
            if input == 0 || k == 0 {
                return Err(Error::Shape(format!(
                    "ConvTranspose of an axis of size {input} with a kernel of size {k}"
                )));
            }
            let span = (k - 1) * dl + 1;
            // ONNX: output_padding must be smaller than the stride or the dilation.
            let op = self.output_padding.get(ax).copied().unwrap_or(0);
            if op < 0 || op as usize >= s.max(dl) {
                return Err(Error::InvalidModel(format!(
                    "ConvTranspose output_padding {:?} must be below the stride or dilation",
                    self.output_padding
                )));
            }
            let op = op as usize;
            let full = s * (input - 1) + op + span;
            let (out, pb) = match (&self.output_shape, a.auto_pad) {
                (Some(os), _) if os.len() == 2 => {
                    let out = os[ax].max(1) as usize;
                    if out > super::MAX_ELEMENTS {
                        return Err(Error::Shape(format!(
                            "ConvTranspose output_shape {os:?} is too large"
                        )));
                    }
                    let total = full.saturating_sub(out);
                    let pb = if a.auto_pad == AutoPad::SameUpper {
                        total / 2
                    } else {
                        total - total / 2
                    };
                    (out, pb)
                }
                (_, AutoPad::SameUpper | AutoPad::SameLower) => {
                    let out = input * s;
                    let total = full.saturating_sub(out);
                    let pb = if a.auto_pad == AutoPad::SameUpper {
                        total / 2
                    } else {
                        total - total / 2
                    };
                    (out, pb)
                }
                (_, AutoPad::Valid) => (full, 0),
                _ => {
                    let (pb, pe) = (a.pads[ax], a.pads[ax + 2]);
                    if full < pb + pe + 1 {
                        return Err(Error::Shape("ConvTranspose pads exceed its output".into()));
                    }
                    (full - pb - pe, pb)
                }
            };
            // The matching convolution reads `out` and produces `input` positions.
            let ax = Axis {
                input: out,
                output: input,
                kernel: k,
                stride: s,
                dilation: dl,
                pad_begin: pb,
            };
            if (out + pb + span).saturating_sub(span) / s + 1 < input {
                return Err(Error::Shape(
                    "ConvTranspose geometry is inconsistent".into(),
                ));
            }
            Ok(ax)
        };
        let d = Dims {
            n,
            c,
            m: cin,
            groups: g,
            h: mk(0, h, kh)?,
            w: mk(1, wd, kw)?,
        };
        check_size(&[n, c, d.h.input, d.w.input], "ConvTranspose")?;
        Ok(d)
    }
}

impl Op for ConvTranspose {
    fn forward(&self, config: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (x, w) = (float_input(inputs, 0)?, float_input(inputs, 1)?);
        let d = self.dims(x, w)?;
        let mut y = conv_input_grad(config, x, w, &d, None, None)?;
        if let Some(b) = inputs.get(2).copied().flatten() {
            let b = b.as_float("bias")?;
            if b.len() != d.c {
                return Err(Error::Shape(format!(
                    "bias has {} values for {} channels",
                    b.len(),
                    d.c
                )));
            }
            let p = d.h.input * d.w.input;
            for (plane, chunk) in y.data_mut().chunks_mut(p).enumerate() {
                let bv = b.data()[plane % d.c];
                chunk.iter_mut().for_each(|v| *v += bv);
            }
        }
        Ok(vec![y.into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (v.input(0)?, v.input(1)?);
        let d = self.dims(x, w)?;
        if v.needs.iter().skip(1).any(|&n| n) {
            return Err(Error::NotDifferentiable(
                "ConvTranspose with respect to its weights or bias".into(),
            ));
        }
        let mut grads: Vec<Option<Tensor>> = v.inputs.iter().map(|_| None).collect();
        if v.needs[0] {
            grads[0] = Some(conv_forward(
                v.config,
                v.grad(0)?,
                w,
                None,
                &d,
                None,
                None,
                None,
            )?);
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[Option<&Value>], _outputs: &[&Value]) -> u64 {
        match (float_input(inputs, 0), float_input(inputs, 1)) {
            (Ok(x), Ok(w)) => self.dims(x, w).map_or(0, |d| 2 * d.macs()),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 1013) as f32 / 1013.0 - 0.5)
            .collect()
    }

    /// `y[i][m][p] = b[m] + Σ x · w`, in f64, for NCHW `x` and grouped weights (no clamp).
    fn direct(x: &Tensor, w: &Tensor, b: &[f32], d: &Dims, a: &ConvAttrs) -> Vec<f64> {
        let (xs, ws) = (x.shape(), w.shape());
        let (cg, kh, kw) = (ws[1], ws[2], ws[3]);
        let (oh, ow) = (d.h.output, d.w.output);
        let mut y = vec![0.0f64; d.n * d.m * oh * ow];
        for (i, m, r, c) in positions(d.n, d.m, oh, ow) {
            let g = m / (d.m / a.group);
            let mut s = b[m] as f64;
            for ci in 0..cg {
                for ki in 0..kh {
                    for kj in 0..kw {
                        let ih = (r * a.strides[0] + ki) as isize - a.pads[0] as isize;
                        let iw = (c * a.strides[1] + kj) as isize - a.pads[1] as isize;
                        if ih < 0 || iw < 0 || ih as usize >= xs[2] || iw as usize >= xs[3] {
                            continue;
                        }
                        let xv = x.data()[((i * xs[1] + g * cg + ci) * xs[2] + ih as usize)
                            * xs[3]
                            + iw as usize];
                        s += xv as f64 * w.data()[((m * cg + ci) * kh + ki) * kw + kj] as f64;
                    }
                }
            }
            y[((i * d.m + m) * oh + r) * ow + c] = s;
        }
        y
    }

    /// Every (image, channel, row, column) of an output.
    fn positions(
        n: usize,
        m: usize,
        oh: usize,
        ow: usize,
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        (0..n).flat_map(move |i| {
            (0..m).flat_map(move |c| (0..oh).flat_map(move |r| (0..ow).map(move |q| (i, c, r, q))))
        })
    }

    /// The panel convolution's claims (ranges of column units or of panels, sized by timing)
    /// do not change any value: a pass on the pool's threads, run ten times, gives the same
    /// bits as one call on a single thread, and every value is the direct convolution's. The
    /// cases take both kinds of claim: panels of 7×7 and 14×14 maps (1×1, many panels, column
    /// chunks with a remainder), 48-column units of a strided 3×3 on im2col and of a batch of
    /// grouped 1×1 maps.
    #[test]
    fn panel_claims_do_not_change_values() {
        let host = Isa::host();
        if !panel::available(host) {
            return;
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        type Case = ([usize; 4], [usize; 4], usize, usize, usize);
        // (x shape, w shape, stride, pad, group)
        let cases: [Case; 5] = [
            ([1, 64, 7, 7], [200, 64, 1, 1], 1, 0, 1),
            ([1, 72, 14, 14], [40, 72, 1, 1], 1, 0, 1),
            ([1, 3, 64, 64], [32, 3, 3, 3], 2, 1, 1),
            ([3, 32, 14, 14], [48, 16, 1, 1], 1, 0, 2),
            ([2, 40, 10, 13], [24, 40, 3, 3], 1, 1, 1),
        ];
        for (case, (xs, ws, s, pad, g)) in cases.into_iter().enumerate() {
            let attrs = ConvAttrs {
                strides: [s; 2],
                dilations: [1, 1],
                pads: [pad; 4],
                auto_pad: AutoPad::NotSet,
                group: g,
            };
            let x = Tensor::new(xs.to_vec(), values(xs.iter().product(), case)).unwrap();
            let w = Tensor::new(ws.to_vec(), values(ws.iter().product(), 5 + case)).unwrap();
            let b = Tensor::new(vec![ws[0]], values(ws[0], 9)).unwrap();
            let d = conv_dims(&attrs, &x, &w).unwrap();
            let config = ExecConfig {
                isa: host,
                winograd: false,
                ..ExecConfig::default()
            };
            let run = || conv_forward(&config, &x, &w, Some(&b), &d, None, None, None).unwrap();
            let alone = one.install(run);
            let want = direct(&x, &w, b.data(), &d, &attrs);
            let scale = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            for (i, (&a, &v)) in alone.data().iter().zip(&want).enumerate() {
                assert!(
                    (a as f64 - v).abs() < 1e-5 * scale,
                    "case {case} at {i}: {a} vs {v}"
                );
            }
            for round in 0..10 {
                let shared = crate::runtime::pool::on_pool(run);
                assert!(
                    shared
                        .data()
                        .iter()
                        .zip(alone.data())
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "case {case} round {round}: the pool's claims changed values"
                );
            }
        }
    }

    /// The panel kernel and the portable GEMM path (what machines without AVX-512 run) give the
    /// same outputs and input gradients, with bias, fused clamp and gradient mask, on 1×1,
    /// strided, padded and grouped convolutions with whole and partial panels.
    #[test]
    fn panel_and_gemm_paths_agree() {
        let host = Isa::host();
        if !panel::available(host) {
            return;
        }
        let clamp = Clamp { lo: 0.0, hi: 0.5 };
        // (x shape, w shape, strides, pads, group)
        type Case = ([usize; 4], [usize; 4], i64, [i64; 4], usize);
        let cases: [Case; 4] = [
            ([2, 12, 7, 7], [20, 12, 1, 1], 1, [0; 4], 1),
            ([1, 5, 11, 9], [16, 5, 3, 3], 2, [1, 0, 1, 1], 1),
            ([1, 8, 6, 6], [24, 4, 3, 3], 1, [1, 1, 1, 1], 2),
            ([1, 40, 14, 14], [8, 40, 1, 1], 1, [0; 4], 1),
        ];
        for (case, (xs, ws, s, pads, g)) in cases.into_iter().enumerate() {
            let attrs = ConvAttrs {
                strides: [s as usize; 2],
                dilations: [1, 1],
                pads: pads.map(|p| p as usize),
                auto_pad: AutoPad::NotSet,
                group: g,
            };
            let x = Tensor::new(xs.to_vec(), values(xs.iter().product(), case)).unwrap();
            let w = Tensor::new(ws.to_vec(), values(ws.iter().product(), 7 + case)).unwrap();
            let b = Tensor::new(vec![ws[0]], values(ws[0], 11)).unwrap();
            let d = conv_dims(&attrs, &x, &w).unwrap();
            let run = |isa: Isa| {
                let config = ExecConfig {
                    isa,
                    ..ExecConfig::default()
                };
                let y =
                    conv_forward(&config, &x, &w, Some(&b), &d, None, Some(clamp), None).unwrap();
                let dy = Tensor::new(y.shape().to_vec(), values(y.len(), 3)).unwrap();
                let flipped = (d.groups == 1).then(|| flip_transpose(&w));
                let dx = conv_input_grad(
                    &config,
                    &dy,
                    &w,
                    &d,
                    flipped.as_ref().map(|f| (f, None)),
                    Some((&x, clamp)),
                )
                .unwrap();
                (y, dx)
            };
            // Without AVX-512 (what an AVX2 machine runs) the `gemm` crate does the products.
            let ((y1, dx1), (y2, dx2)) = (run(host), run(host.without_avx512()));
            for (what, a, b) in [("output", &y1, &y2), ("input gradient", &dx1, &dx2)] {
                assert_eq!(a.shape(), b.shape());
                for (i, (p, q)) in a.data().iter().zip(b.data()).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-5,
                        "case {case} {what} {i}: panel {p} vs gemm {q}"
                    );
                }
            }
        }
    }
}
