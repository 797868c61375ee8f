//! Depthwise forward pass straight on NCHW planes, for wide stride-1 layers (every vector
//! path, written once over [`Simd`]).
//!
//! Each plane is convolved on its own, one vector of output columns at a time, from a zero-padded copy of
//! the plane (so every tap is one plain load and one multiply-add, no masks or bounds); a block
//! of `R` output rows × `V` vectors is accumulated in registers through all taps. Nothing is
//! transposed. On EfficientNet's 112×112 and 56×56 stride-1 layers this beat the channels-last
//! strips of the parent module; on its stride-2 layers and its 28×28 and smaller maps the strips
//! were faster (per-node profiles, design.md "Depthwise convolutions"), so those stay there.

use super::{multiversion, Path, Simd, MIN_TASK_MACS};
use crate::kernels::epilogue::Clamp;
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::panel::PANEL;
use crate::runtime::cpu::Isa;
use crate::runtime::pool::{for_each_range, for_each_task, SharedOut};

/// Whether [`forward`] handles this geometry (the caller checks for a vector path): stride 1 across,
/// rows of at least 56 outputs.
pub(super) fn supports(g: &ConvGeometry) -> bool {
    g.w.stride == 1 && g.w.output >= 56
}

/// `out = act(depthwise(x, w) + bias)` for `g` (see [`supports`]); writes every one of the
/// `n·c·oh·ow` values of `out`.
///
/// # Safety
/// `path` must be a vector path of this CPU; `out` must hold `n·c·oh·ow` values that no other
/// thread touches during the call.
pub(super) unsafe fn forward(
    path: Path,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: SharedOut,
    g: &ConvGeometry,
    act: Option<Clamp>,
) {
    let (h, wa) = (&g.h, &g.w);
    assert!(supports(g));
    assert_eq!(x.len(), g.n * g.c * h.input * wa.input, "depthwise input");
    assert_eq!(w.len(), g.c * h.kernel * wa.kernel, "depthwise weights");
    assert!(bias.is_none_or(|b| b.len() == g.c), "depthwise bias");
    let macs = h.output * wa.output * h.kernel * wa.kernel;
    let min_planes = (MIN_TASK_MACS / macs.max(1)).max(1);
    for_each_range(g.n * g.c, min_planes, |planes| {
        for plane in planes {
            let src = &x[plane * h.input * wa.input..][..h.input * wa.input];
            // SAFETY: a vector path (the caller's contract); this task alone writes plane
            // `plane` of the output, which holds n·c planes.
            PLANE.with_borrow_mut(|buf| unsafe {
                convolve_plane(path, buf, plane, src, w, bias, out, g, act)
            })
        }
    });
}

/// [`forward`] with its input formed by the 1×1 convolution `pw` inside the pass, 8 channels
/// (one panel of the 1×1 weights) per task: the task computes those 8 whole planes into a
/// buffer of its thread (`8·ih·iw` values, in L2) and convolves them from there, so the 1×1
/// output is never written out whole (see `super::forward_after_pointwise`).
///
/// # Safety
/// As [`forward`]; and the panel kernel must be available (it runs the 1×1 convolution).
pub(super) unsafe fn forward_after_pointwise(
    isa: Isa,
    pw: &super::Pointwise,
    w: &[f32],
    bias: Option<&[f32]>,
    out: SharedOut,
    g: &ConvGeometry,
    act: Option<Clamp>,
) {
    let (h, wa) = (&g.h, &g.w);
    let plane_in = h.input * wa.input;
    assert!(supports(g));
    assert_eq!(pw.x.len(), g.n * pw.k * plane_in, "1×1 input");
    assert_eq!(w.len(), g.c * h.kernel * wa.kernel, "depthwise weights");
    assert!(bias.is_none_or(|b| b.len() == g.c), "depthwise bias");
    let panels = g.c.div_ceil(PANEL);
    for_each_task(g.n * panels, |task| {
        let (img, c0) = (task / panels, (task % panels) * PANEL);
        let lanes = PANEL.min(g.c - c0);
        super::with_formed(lanes * plane_in, |formed| {
            // SAFETY: the panel kernel is available (the caller's contract); c0 is a multiple
            // of 8 below c, whose rows the caller packed.
            unsafe {
                pw.form_rows(
                    isa,
                    img,
                    c0,
                    lanes,
                    0..h.input,
                    (plane_in, wa.input),
                    formed,
                    (plane_in, 0),
                )
            };
            for (l, src) in formed.chunks(plane_in).enumerate() {
                // SAFETY: a vector path (the caller's contract); this task alone writes plane
                // (img, c0 + l) of the output, which holds n·c planes.
                PLANE.with_borrow_mut(|buf| unsafe {
                    let plane = img * g.c + c0 + l;
                    convolve_plane(Path::of(isa), buf, plane, src, w, bias, out, g, act)
                })
            }
        });
    });
}

multiversion! {
    /// Output plane `plane` (image-major: channel `plane % c`) from its input plane `src`.
    ///
    /// # Safety
    /// A vector path of this CPU; `out` must hold the n·c planes of oh·ow values, plane
    /// `plane` written by no other thread.
    unsafe fn convolve_plane(
        buf: &mut Vec<f32>,
        plane: usize,
        src: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        out: SharedOut,
        g: &ConvGeometry,
        act: Option<Clamp>,
    ) => convolve_plane_generic
}

/// [`convolve_plane`] on the block shape that suits its rows: 2 rows × 4 vectors up to 4
/// vectors a row, else 1 × 8 (8 accumulators: 4-cycle multiply-add latency, two units).
///
/// # Safety
/// As [`convolve_plane`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn convolve_plane_generic<S: Simd>(
    buf: &mut Vec<f32>,
    plane: usize,
    src: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: SharedOut,
    g: &ConvGeometry,
    act: Option<Clamp>,
) {
    let (h, wa) = (&g.h, &g.w);
    let ch = plane % g.c;
    let b = bias.map_or(0.0, |b| b[ch]);
    let taps = &w[ch * h.kernel * wa.kernel..][..h.kernel * wa.kernel];
    // SAFETY (all): as the caller promised; plane `plane` of `out` starts at plane·oh·ow.
    unsafe {
        let dst = out.get().add(plane * h.output * wa.output);
        if wa.output.div_ceil(S::LANES) <= 4 {
            plane_rows::<S, 2, 4>(buf, src, taps, b, dst, g, act)
        } else {
            plane_rows::<S, 1, 8>(buf, src, taps, b, dst, g, act)
        }
    }
}

/// Zero-padded copy of one input plane that every tap reads with plain loads: `rows` rows of
/// `pitch` floats.
struct PaddedPlane {
    rows: usize,
    pitch: usize,
}

impl PaddedPlane {
    fn new<const R: usize, const V: usize>(g: &ConvGeometry, lanes: usize) -> PaddedPlane {
        let (h, wa) = (&g.h, &g.w);
        let vectors = wa.output.div_ceil(lanes);
        // Row blocks run up to R rows past the last output row; their loads stay inside.
        let rows = (h.output.next_multiple_of(R) - 1) * h.stride + (h.kernel - 1) * h.dilation + 1;
        // Columns the last vector reads at the last tap, rounded to whole vectors.
        let reach = (wa.kernel - 1) * wa.dilation;
        let pitch = (lanes * vectors.next_multiple_of(V) + reach + 1).next_multiple_of(lanes);
        PaddedPlane { rows, pitch }
    }

    fn len(&self) -> usize {
        self.rows * self.pitch
    }

    /// Fills `buf` from `src` (one `ih × iw` plane): padded column `c` of row `r` is input
    /// `(r − pad_top, c − pad_left)`, zero outside.
    ///
    /// # Safety
    /// `S`'s extensions.
    #[inline(always)]
    unsafe fn fill<S: Simd>(&self, src: &[f32], g: &ConvGeometry, buf: &mut [f32]) {
        let (h, wa) = (&g.h, &g.w);
        let (iw, pad) = (wa.input as isize, wa.pad_begin as isize);
        assert!(buf.len() >= self.len() && src.len() == h.input * wa.input);
        for r in 0..self.rows {
            let iy = r as isize - h.pad_begin as isize;
            let line = &mut buf[r * self.pitch..][..self.pitch];
            if iy < 0 || iy >= h.input as isize {
                line.fill(0.0);
                continue;
            }
            let row = src.as_ptr().wrapping_offset(iy * iw);
            for j in (0..self.pitch).step_by(S::LANES) {
                let at = j as isize - pad;
                // SAFETY: masked-off lanes are not read, the others are columns 0..iw of input
                // row iy; the store is LANES values at j, j + LANES ≤ pitch (a multiple).
                unsafe {
                    let v = S::load_masked(S::mask(-at, iw - at), row.wrapping_offset(at));
                    S::store(line.as_mut_ptr().add(j), v);
                }
            }
        }
    }
}

thread_local! {
    /// The padded plane of [`plane_rows`], kept per thread and only grown. Taken by the
    /// callers of the dispatcher: a closure inside the generic kernel would be compiled
    /// without the path's extensions, its every intrinsic a call (10× slower).
    static PLANE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One plane, in blocks of `R` output rows × `V` vectors of columns.
///
/// # Safety
/// `S`'s extensions; `dst` must be valid for the plane's `oh·ow` writes.
#[inline(always)]
unsafe fn plane_rows<S: Simd, const R: usize, const V: usize>(
    buf: &mut Vec<f32>,
    src: &[f32],
    taps: &[f32],
    bias: f32,
    dst: *mut f32,
    g: &ConvGeometry,
    act: Option<Clamp>,
) {
    let (h, wa) = (&g.h, &g.w);
    let (ow, kw) = (wa.output, wa.kernel);
    let l = S::LANES;
    let padded = PaddedPlane::new::<R, V>(g, l);
    // SAFETY: `S`'s extensions (this function's contract).
    let clamp = act.map(|c| unsafe { (S::splat(c.lo), S::splat(c.hi)) });
    let vectors = ow.div_ceil(l);
    let line = padded.pitch;
    {
        if buf.len() < padded.len() {
            buf.resize(padded.len(), 0.0);
        }
        // SAFETY: `S`'s extensions (this function's own contract); `buf` holds the padded
        // plane.
        unsafe { padded.fill::<S>(src, g, buf) };
        let base = buf.as_ptr();
        for v0 in (0..vectors).step_by(V) {
            // SAFETY (all below): `S`'s extensions; loads from rows and columns of the padded
            // plane (sized for the last row block and vector at the last tap by `new`), tap
            // (ky, kx) of taps (kh·kw values), stores to columns < ow of rows oy < oh of this
            // plane (the caller's contract).
            unsafe {
                let stores: [S::M; V] = std::array::from_fn(|v| {
                    let base = (l * (v0 + v)) as isize;
                    S::mask(-base, ow as isize - base)
                });
                for oy0 in (0..h.output).step_by(R) {
                    let mut acc = [[S::splat(bias); V]; R];
                    for ky in 0..h.kernel {
                        let row0 = (oy0 * h.stride + ky * h.dilation) * line + l * v0;
                        for kx in 0..kw {
                            let wv = S::splat(*taps.get_unchecked(ky * kw + kx));
                            let at = row0 + kx * wa.dilation;
                            for (r, acc_r) in acc.iter_mut().enumerate() {
                                for (v, a) in acc_r.iter_mut().enumerate() {
                                    let x = S::load(base.add(at + r * h.stride * line + l * v));
                                    *a = S::fmadd(wv, x, *a);
                                }
                            }
                        }
                    }
                    for (r, acc_r) in acc.iter().enumerate() {
                        let oy = oy0 + r;
                        if oy >= h.output {
                            break;
                        }
                        for (vi, (&a, &m)) in acc_r.iter().zip(&stores).enumerate() {
                            let y = match clamp {
                                Some((lo, hi)) => S::min(S::max(a, lo), hi),
                                None => a,
                            };
                            S::store_masked(dst.add(oy * ow + l * (v0 + vi)), m, y);
                        }
                    }
                }
            }
        }
    }
}
