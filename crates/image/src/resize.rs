//! Resizing that reproduces Pillow's `Image.resize` exactly.
//!
//! Pillow (`src/libImaging/Resample.c`) resizes with a separable convolution:
//! a horizontal pass, then a vertical pass — or, since Pillow 13, vertical
//! first when the height shrinks by more than twice as many pixels as the
//! width (reproduced here; it changes 8-bit results by a few levels). For output pixel `i` the source
//! centre is `(i + 0.5) * scale` with `scale = in_size / out_size`; when
//! shrinking (`scale > 1`) the filter is stretched by `scale`, so the result is
//! antialiased. Weights are normalised to sum to 1. Filters:
//!
//! * bilinear: triangle filter, support 1;
//! * bicubic: Keys cubic with `a = -0.5`, support 2.
//!
//! Nearest does not use the convolution: Pillow maps output pixel `i` to
//! source pixel `floor((i + 0.5) * scale)` through an affine transform (with
//! the position accumulated by repeated addition, reproduced here bit for bit).
//!
//! Two flavours are provided:
//!
//! * [`resize`] computes in `f64` on float input and stores `f32` between and
//!   after the passes — exactly Pillow's algorithm for mode `"F"` images, with
//!   no 8-bit rounding (values may overshoot `0..=255` slightly with bicubic);
//! * [`resize_u8_like_pillow`] rounds the input to `u8` and uses Pillow's
//!   8-bit fixed-point path (22-bit coefficients, rounding and clamping to
//!   `0..=255` after each pass), matching Pillow on `"RGB"` images.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::types::f32_to_u8;
use crate::{Error, Result, RgbImageF32};

/// A resampling filter, named like Pillow's `Image.Resampling` members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResizeFilter {
    /// Nearest neighbour with Pillow's pixel-centre rule.
    Nearest,
    /// Triangle filter (antialiased when shrinking).
    Bilinear,
    /// Keys cubic convolution, `a = -0.5` (antialiased when shrinking).
    #[default]
    Bicubic,
}

impl ResizeFilter {
    const VALID: &'static str = "nearest, bilinear, bicubic";

    /// The lowercase name accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            ResizeFilter::Nearest => "nearest",
            ResizeFilter::Bilinear => "bilinear",
            ResizeFilter::Bicubic => "bicubic",
        }
    }

    fn support(self) -> f64 {
        match self {
            ResizeFilter::Nearest => 0.0,
            ResizeFilter::Bilinear => 1.0,
            ResizeFilter::Bicubic => 2.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            ResizeFilter::Nearest => 0.0,
            ResizeFilter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            ResizeFilter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

impl fmt::Display for ResizeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ResizeFilter {
    type Err = Error;

    /// Parses `nearest`, `bilinear` (alias `linear`) or `bicubic` (alias
    /// `cubic`), case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nearest" => Ok(ResizeFilter::Nearest),
            "bilinear" | "linear" => Ok(ResizeFilter::Bilinear),
            "bicubic" | "cubic" => Ok(ResizeFilter::Bicubic),
            _ => Err(Error::UnknownName {
                kind: "resize filter",
                value: s.to_string(),
                valid: Self::VALID,
            }),
        }
    }
}

/// Per-output-pixel convolution windows, as Pillow's `precompute_coeffs`.
struct Coeffs {
    ksize: usize,
    /// `(first source index, number of taps)` per output pixel.
    bounds: Vec<(usize, usize)>,
    /// `out_size * ksize` normalised weights.
    k: Vec<f64>,
}

fn precompute_coeffs(in_size: usize, out_size: usize, filter: ResizeFilter) -> Coeffs {
    precompute_coeffs_window(in_size, out_size, 0..out_size, filter)
}

/// [`precompute_coeffs`] for the output pixels in `window` only (entry `i` is output pixel
/// `window.start + i`): the same numbers, without the memory for the pixels outside it.
fn precompute_coeffs_window(
    in_size: usize,
    out_size: usize,
    window: Range<usize>,
    filter: ResizeFilter,
) -> Coeffs {
    // Pillow passes the box as floats: `(float)(in1 - in0)`.
    let scale = (in_size as f32) as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;
    let mut k = vec![0.0f64; window.len() * ksize];
    let mut bounds = Vec::with_capacity(window.len());
    for (row, xx) in window.enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        // C `(int)` truncates toward zero, like Rust's `as`.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let n = (xmax - xmin).max(0) as usize;
        let n = n.min(ksize);
        let xmin = xmin as usize;
        let row = &mut k[row * ksize..(row + 1) * ksize];
        let mut ww = 0.0;
        for (x, slot) in row.iter_mut().enumerate().take(n) {
            let w = filter.eval(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
            *slot = w;
            ww += w;
        }
        if ww != 0.0 {
            for slot in row.iter_mut().take(n) {
                *slot /= ww;
            }
        }
        bounds.push((xmin, n));
    }
    Coeffs { ksize, bounds, k }
}

impl Coeffs {
    /// The source range the taps read.
    fn source_span(&self) -> Range<usize> {
        let start = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let end = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(start);
        start..end.max(start)
    }

    /// The same taps, for a source that starts at `offset` of the original one.
    fn shifted(mut self, offset: usize) -> Coeffs {
        self.bounds.iter_mut().for_each(|b| b.0 -= offset);
        self
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn fixed_point(k: &[f64]) -> Vec<i32> {
    let one = (1i64 << PRECISION_BITS) as f64;
    k.iter()
        .map(|&v| {
            if v < 0.0 {
                (-0.5 + v * one) as i32
            } else {
                (0.5 + v * one) as i32
            }
        })
        .collect()
}

fn clip8(ss: i64) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass on interleaved RGB rows (`f32` storage, `f64` sums).
fn horizontal_f32(src: &[f32], in_w: usize, rows: usize, out_w: usize, c: &Coeffs) -> Vec<f32> {
    let mut out = vec![0.0f32; out_w * rows * 3];
    for y in 0..rows {
        let line = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &c.k[xx * c.ksize..xx * c.ksize + n];
            let mut ss = [0.0f64; 3];
            for (x, &w) in k.iter().enumerate() {
                let p = &line[(xmin + x) * 3..(xmin + x) * 3 + 3];
                for ch in 0..3 {
                    ss[ch] += p[ch] as f64 * w;
                }
            }
            let o = (y * out_w + xx) * 3;
            for ch in 0..3 {
                out[o + ch] = ss[ch] as f32;
            }
        }
    }
    out
}

/// Vertical pass on interleaved RGB rows (`f32` storage, `f64` sums).
fn vertical_f32(src: &[f32], w: usize, out_h: usize, c: &Coeffs) -> Vec<f32> {
    let mut out = vec![0.0f32; w * out_h * 3];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.k[yy * c.ksize..yy * c.ksize + n];
        for xx in 0..w {
            let mut ss = [0.0f64; 3];
            for (y, &wt) in k.iter().enumerate() {
                let p = ((ymin + y) * w + xx) * 3;
                for ch in 0..3 {
                    ss[ch] += src[p + ch] as f64 * wt;
                }
            }
            let o = (yy * w + xx) * 3;
            for ch in 0..3 {
                out[o + ch] = ss[ch] as f32;
            }
        }
    }
    out
}

fn horizontal_u8(src: &[u8], in_w: usize, rows: usize, out_w: usize, c: &Coeffs) -> Vec<u8> {
    let kk = fixed_point(&c.k);
    let mut out = vec![0u8; out_w * rows * 3];
    for y in 0..rows {
        let line = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &kk[xx * c.ksize..xx * c.ksize + n];
            let mut ss = [1i64 << (PRECISION_BITS - 1); 3];
            for (x, &w) in k.iter().enumerate() {
                let p = &line[(xmin + x) * 3..(xmin + x) * 3 + 3];
                for ch in 0..3 {
                    ss[ch] += p[ch] as i64 * w as i64;
                }
            }
            let o = (y * out_w + xx) * 3;
            for ch in 0..3 {
                out[o + ch] = clip8(ss[ch]);
            }
        }
    }
    out
}

fn vertical_u8(src: &[u8], w: usize, out_h: usize, c: &Coeffs) -> Vec<u8> {
    let kk = fixed_point(&c.k);
    let mut out = vec![0u8; w * out_h * 3];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &kk[yy * c.ksize..yy * c.ksize + n];
        for xx in 0..w {
            let mut ss = [1i64 << (PRECISION_BITS - 1); 3];
            for (y, &wt) in k.iter().enumerate() {
                let p = ((ymin + y) * w + xx) * 3;
                for ch in 0..3 {
                    ss[ch] += src[p + ch] as i64 * wt as i64;
                }
            }
            let o = (yy * w + xx) * 3;
            for ch in 0..3 {
                out[o + ch] = clip8(ss[ch]);
            }
        }
    }
    out
}

/// Pass order of Pillow 13 (`ImagingResampleInner`): horizontal first,
/// unless the height shrinks by more than twice as many pixels as the width.
/// The order matters for the 8-bit path (rounding between passes).
fn horizontal_first(in_w: usize, in_h: usize, w: usize, h: usize) -> bool {
    let dy = in_h as i64 - h as i64;
    let dx = in_w as i64 - w as i64;
    !(dy > 0 && dy > dx * 2)
}

/// Pillow's nearest-neighbour source indices (`ImagingScaleAffine`).
/// `None` marks positions outside the source (filled with 0 by Pillow).
pub(crate) fn nearest_indices(in_size: usize, out_size: usize) -> Vec<Option<usize>> {
    nearest_indices_window(in_size, out_size, 0..out_size)
}

/// [`nearest_indices`] for the output positions in `window` only. The position is still
/// accumulated from the first output pixel on, as Pillow does, so every index is the same.
fn nearest_indices_window(
    in_size: usize,
    out_size: usize,
    window: Range<usize>,
) -> Vec<Option<usize>> {
    let a = (in_size as f32) as f64 / out_size as f64;
    let mut pos = a * 0.5;
    let mut idx = Vec::with_capacity(window.len());
    for o in 0..window.end {
        if o >= window.start {
            let i = if pos < 0.0 { -1 } else { pos as i64 };
            idx.push(if i >= 0 && (i as usize) < in_size {
                Some(i as usize)
            } else {
                None
            });
        }
        pos += a;
    }
    idx
}

/// The `window` of the nearest-neighbour resize of `src` (`in_w×in_h`) to `w×h`.
fn resize_nearest<T: Copy + Default>(
    src: &[T],
    in_w: usize,
    in_h: usize,
    (w, h): (usize, usize),
    window: &Window,
) -> Vec<T> {
    let xs = nearest_indices_window(in_w, w, window.columns());
    let ys = nearest_indices_window(in_h, h, window.rows());
    let mut out = vec![T::default(); window.width * window.height * 3];
    for (y, yi) in ys.iter().enumerate() {
        let Some(yi) = *yi else { continue };
        for (x, xi) in xs.iter().enumerate() {
            let Some(xi) = *xi else { continue };
            let s = (yi * in_w + xi) * 3;
            let o = (y * window.width + x) * 3;
            out[o..o + 3].copy_from_slice(&src[s..s + 3]);
        }
    }
    out
}

/// A rectangle of output pixels: columns `left..left + width`, rows `top..top + height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    left: usize,
    top: usize,
    width: usize,
    height: usize,
}

impl Window {
    fn whole(w: usize, h: usize) -> Window {
        Window {
            left: 0,
            top: 0,
            width: w,
            height: h,
        }
    }
    fn columns(&self) -> Range<usize> {
        self.left..self.left + self.width
    }
    fn rows(&self) -> Range<usize> {
        self.top..self.top + self.height
    }
}

/// Columns `cols` of every row of an interleaved RGB image `in_w` wide.
fn column_band(src: &[f32], in_w: usize, cols: Range<usize>) -> Cow<'_, [f32]> {
    if cols == (0..in_w) {
        return Cow::Borrowed(src);
    }
    Cow::Owned(
        src.chunks_exact(in_w * 3)
            .flat_map(|row| &row[cols.start * 3..cols.end * 3])
            .copied()
            .collect(),
    )
}

/// The pixels of `window` of `resize(img, w, h, filter)`, computed without forming the others:
/// each pass only computes the output pixels the window needs, from the source rows or
/// columns their taps read. Every output pixel goes through exactly the arithmetic of the
/// whole resize (same taps, same weights, same order, same `f32` intermediate), so the result
/// is bit for bit the crop of the whole resize.
///
/// `window` must lie inside `w×h`, and neither size nor the image may be empty.
fn resize_window_f32(
    img: &RgbImageF32,
    (w, h): (usize, usize),
    window: &Window,
    filter: ResizeFilter,
) -> Vec<f32> {
    let (in_w, in_h) = (img.width, img.height);
    if filter == ResizeFilter::Nearest {
        return resize_nearest(&img.data, in_w, in_h, (w, h), window);
    }
    let x_taps = || precompute_coeffs_window(in_w, w, window.columns(), filter);
    let y_taps = || precompute_coeffs_window(in_h, h, window.rows(), filter);
    let row_len = in_w * 3;
    match (w != in_w, h != in_h, horizontal_first(in_w, in_h, w, h)) {
        (false, false, _) => {
            // Same size: the window of the image itself.
            let band = &img.data[window.top * row_len..(window.top + window.height) * row_len];
            column_band(band, in_w, window.columns()).into_owned()
        }
        (true, false, _) => {
            let band = &img.data[window.top * row_len..(window.top + window.height) * row_len];
            horizontal_f32(band, in_w, window.height, window.width, &x_taps())
        }
        (false, true, _) => {
            let band = column_band(&img.data, in_w, window.columns());
            vertical_f32(&band, window.width, window.height, &y_taps())
        }
        (_, _, true) => {
            // Horizontal first, over only the source rows the vertical taps read.
            let y = y_taps();
            let rows = y.source_span();
            let band = &img.data[rows.start * row_len..rows.end * row_len];
            let across = horizontal_f32(band, in_w, rows.len(), window.width, &x_taps());
            vertical_f32(&across, window.width, window.height, &y.shifted(rows.start))
        }
        (_, _, false) => {
            // Vertical first, over only the source columns the horizontal taps read.
            let x = x_taps();
            let cols = x.source_span();
            let band = column_band(&img.data, in_w, cols.clone());
            let down = vertical_f32(&band, cols.len(), window.height, &y_taps());
            horizontal_f32(
                &down,
                cols.len(),
                window.height,
                window.width,
                &x.shifted(cols.start),
            )
        }
    }
}

/// Resizes to `w×h` exactly like Pillow's `Image.resize((w, h), filter)` on a
/// float (mode `"F"`) image, per channel, without any 8-bit rounding.
///
/// Accumulation is `f64`; the intermediate (after the horizontal pass) and the
/// output are stored as `f32`, as Pillow does. Same size in → copy out.
/// A zero-sized output gives an empty image; an empty input gives zeros.
///
/// # Panics
/// If `img.data.len() != img.width * img.height * 3`.
pub fn resize(img: &RgbImageF32, w: usize, h: usize, filter: ResizeFilter) -> RgbImageF32 {
    check_len(img);
    if (w, h) == (img.width, img.height) {
        return img.clone();
    }
    if w == 0 || h == 0 || img.width == 0 || img.height == 0 {
        return RgbImageF32::zeros(w, h);
    }
    RgbImageF32 {
        width: w,
        height: h,
        data: resize_window_f32(img, (w, h), &Window::whole(w, h), filter),
    }
}

/// Resizes like Pillow does for an 8-bit `"RGB"` image: the input is first
/// rounded and clamped to `u8`, then Pillow's fixed-point convolution is
/// applied, rounding and clamping to `0..=255` after each pass.
///
/// Output samples are whole numbers in `0.0..=255.0`. This reproduces Pillow's
/// output (the test suite checks it against Pillow to ±1; in practice it is
/// identical).
///
/// # Panics
/// If `img.data.len() != img.width * img.height * 3`.
pub fn resize_u8_like_pillow(
    img: &RgbImageF32,
    w: usize,
    h: usize,
    filter: ResizeFilter,
) -> RgbImageF32 {
    check_len(img);
    let src: Vec<u8> = img.data.iter().map(|&v| f32_to_u8(v)).collect();
    let out = resize_u8_raw(&src, img.width, img.height, w, h, filter);
    RgbImageF32 {
        width: w,
        height: h,
        data: out.into_iter().map(|v| v as f32).collect(),
    }
}

/// [`resize_u8_like_pillow`] on an [`image::RgbImage`], returning an
/// [`image::RgbImage`].
///
/// # Panics
/// If `w` or `h` does not fit in `u32`.
pub fn resize_rgb8_like_pillow(
    img: &image::RgbImage,
    w: usize,
    h: usize,
    filter: ResizeFilter,
) -> image::RgbImage {
    let out = resize_u8_raw(
        img.as_raw(),
        img.width() as usize,
        img.height() as usize,
        w,
        h,
        filter,
    );
    image::RgbImage::from_raw(u32::try_from(w).unwrap(), u32::try_from(h).unwrap(), out)
        .expect("buffer length matches dimensions")
}

fn resize_u8_raw(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    w: usize,
    h: usize,
    filter: ResizeFilter,
) -> Vec<u8> {
    if (w, h) == (in_w, in_h) {
        return src.to_vec();
    }
    if w == 0 || h == 0 || in_w == 0 || in_h == 0 {
        return vec![0; w * h * 3];
    }
    if filter == ResizeFilter::Nearest {
        return resize_nearest(src, in_w, in_h, (w, h), &Window::whole(w, h));
    }
    let horiz = |src: &[u8], rows: usize| {
        horizontal_u8(src, in_w, rows, w, &precompute_coeffs(in_w, w, filter))
    };
    let vert =
        |src: &[u8], cols: usize| vertical_u8(src, cols, h, &precompute_coeffs(in_h, h, filter));
    match (w != in_w, h != in_h, horizontal_first(in_w, in_h, w, h)) {
        (true, false, _) => horiz(src, in_h),
        (false, true, _) => vert(src, in_w),
        (_, _, true) => vert(&horiz(src, in_h), w),
        (_, _, false) => horiz(&vert(src, in_w), h),
    }
}

fn check_len(img: &RgbImageF32) {
    assert_eq!(
        img.data.len(),
        img.width * img.height * 3,
        "RgbImageF32 {}x{} has {} samples",
        img.width,
        img.height,
        img.data.len()
    );
}

/// Python's `round()` (half to even) for the non-negative crop offsets.
fn round_half_even(v: f64) -> usize {
    let r = v.round();
    let r = if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    r.max(0.0) as usize
}

/// torchvision's centred `crop_w×crop_h` window of a `w×h` image (see [`center_crop`]).
fn center_window(w: usize, h: usize, crop_w: usize, crop_h: usize) -> Result<Window> {
    if crop_w == 0 || crop_h == 0 || crop_w > w || crop_h > h {
        return Err(Error::InvalidArgument(format!(
            "cannot center-crop {crop_w}x{crop_h} from a {w}x{h} image"
        )));
    }
    Ok(Window {
        left: round_half_even((w - crop_w) as f64 / 2.0),
        top: round_half_even((h - crop_h) as f64 / 2.0),
        width: crop_w,
        height: crop_h,
    })
}

/// Crops the centred `crop_w×crop_h` window, with torchvision's offsets
/// `top = round((H - crop_h) / 2)`, `left = round((W - crop_w) / 2)` (Python
/// `round`, half to even).
///
/// # Errors
/// [`Error::InvalidArgument`] if the crop is larger than the image or empty.
pub fn center_crop(img: &RgbImageF32, crop_w: usize, crop_h: usize) -> Result<RgbImageF32> {
    let Window { left, top, .. } = center_window(img.width, img.height, crop_w, crop_h)?;
    let mut data = Vec::with_capacity(crop_w * crop_h * 3);
    for y in top..top + crop_h {
        let s = (y * img.width + left) * 3;
        data.extend_from_slice(&img.data[s..s + crop_w * 3]);
    }
    Ok(RgbImageF32 {
        width: crop_w,
        height: crop_h,
        data,
    })
}

/// torchvision's `Resize(shorter)` followed by `CenterCrop((crop_h, crop_w))`.
///
/// The shorter side becomes `shorter` and the longer side
/// `int(shorter * long / short)` (truncated, like torchvision), resized with
/// [`resize`] (float math); then [`center_crop`].
///
/// Only the cropped window of the resized image is computed (from the source
/// rows and columns it reads), with exactly the arithmetic of the whole resize,
/// so the result is identical to resizing and then cropping, in memory
/// proportional to the crop and the source: a 20000×1 image asked for a
/// 224×224 crop used to form a 4,480,000×224 image (12 GB) first.
///
/// # Errors
/// [`Error::InvalidArgument`] if the image or `shorter` is empty, or the crop
/// does not fit in the resized image.
pub fn resize_shorter_and_center_crop(
    img: &RgbImageF32,
    shorter: usize,
    crop_w: usize,
    crop_h: usize,
    filter: ResizeFilter,
) -> Result<RgbImageF32> {
    if img.width == 0 || img.height == 0 || shorter == 0 {
        return Err(Error::InvalidArgument(format!(
            "cannot resize a {}x{} image to shorter side {shorter}",
            img.width, img.height
        )));
    }
    let (short, long) = if img.width <= img.height {
        (img.width, img.height)
    } else {
        (img.height, img.width)
    };
    let product = shorter.checked_mul(long).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "cannot resize a {}x{} image to shorter side {shorter}: the longer side overflows",
            img.width, img.height
        ))
    })?;
    let new_long = (product as f64 / short as f64) as usize;
    let (nw, nh) = if img.width <= img.height {
        (shorter, new_long)
    } else {
        (new_long, shorter)
    };
    check_len(img);
    let window = center_window(nw, nh, crop_w, crop_h)?;
    if (nw, nh) == (img.width, img.height) {
        return center_crop(img, crop_w, crop_h);
    }
    Ok(RgbImageF32 {
        width: crop_w,
        height: crop_h,
        data: resize_window_f32(img, (nw, nh), &window, filter),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> RgbImageF32 {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend([
                    (x * 10 % 256) as f32,
                    (y * 20 % 256) as f32,
                    ((x + y) % 7 * 30) as f32,
                ]);
            }
        }
        RgbImageF32 {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn pass_order_follows_pillow_13() {
        assert!(horizontal_first(451, 300, 240, 240));
        assert!(horizontal_first(600, 400, 1000, 400));
        assert!(!horizontal_first(600, 400, 1000, 37));
        assert!(!horizontal_first(600, 400, 590, 370));
        assert!(horizontal_first(600, 400, 580, 370));
    }

    #[test]
    fn parse_filters() {
        assert_eq!(
            "Bicubic".parse::<ResizeFilter>().unwrap(),
            ResizeFilter::Bicubic
        );
        assert_eq!(
            "linear".parse::<ResizeFilter>().unwrap(),
            ResizeFilter::Bilinear
        );
        assert_eq!(
            "nearest".parse::<ResizeFilter>().unwrap(),
            ResizeFilter::Nearest
        );
        let e = "lanczos".parse::<ResizeFilter>().unwrap_err().to_string();
        assert!(e.contains("nearest, bilinear, bicubic"), "{e}");
    }

    #[test]
    fn coefficients_sum_to_one() {
        for f in [ResizeFilter::Bilinear, ResizeFilter::Bicubic] {
            for (i, o) in [(451, 240), (300, 240), (7, 50), (10, 3)] {
                let c = precompute_coeffs(i, o, f);
                for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
                    assert!(xmin + n <= i);
                    let s: f64 = c.k[xx * c.ksize..xx * c.ksize + n].iter().sum();
                    assert!((s - 1.0).abs() < 1e-12, "{f} {i}->{o} at {xx}: {s}");
                }
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImageF32 {
            width: 9,
            height: 5,
            data: vec![77.0; 9 * 5 * 3],
        };
        for f in [
            ResizeFilter::Nearest,
            ResizeFilter::Bilinear,
            ResizeFilter::Bicubic,
        ] {
            for (w, h) in [(4, 3), (20, 11), (9, 2), (1, 1)] {
                let r = resize(&img, w, h, f);
                assert!(
                    r.data.iter().all(|&v| (v - 77.0).abs() < 1e-4),
                    "{f} {w}x{h}"
                );
                let r = resize_u8_like_pillow(&img, w, h, f);
                assert!(r.data.iter().all(|&v| v == 77.0), "{f} {w}x{h}");
            }
        }
    }

    #[test]
    fn same_size_is_copy_and_nearest_integer_upscale_replicates() {
        let img = ramp(3, 2);
        assert_eq!(resize(&img, 3, 2, ResizeFilter::Bicubic), img);
        let up = resize(&img, 6, 4, ResizeFilter::Nearest);
        for y in 0..4 {
            for x in 0..6 {
                assert_eq!(up.pixel(x, y), img.pixel(x / 2, y / 2));
            }
        }
        // Downscale by 2: Pillow picks floor((i + 0.5) * 2) = 2i + 1.
        let img = ramp(8, 4);
        let down = resize(&img, 4, 2, ResizeFilter::Nearest);
        assert_eq!(down.pixel(1, 1), img.pixel(3, 3));
    }

    #[test]
    fn bilinear_half_downscale_is_box_average() {
        // Shrinking by exactly 2 with a triangle of support 2 covers source
        // pixels 2i-1..2i+2 with weights 1/8, 3/8, 3/8, 1/8 (edges renormalised).
        let img = RgbImageF32 {
            width: 4,
            height: 1,
            data: [0.0, 8.0, 16.0, 24.0]
                .iter()
                .flat_map(|&v| [v, v, v])
                .collect(),
        };
        let r = resize(&img, 2, 1, ResizeFilter::Bilinear);
        // Output 0: taps 0,1,2 with weights 3/8,3/8,1/8 → /(7/8).
        let e0 = (0.0 * 3.0 + 8.0 * 3.0 + 16.0) / 7.0;
        assert!((r.data[0] - e0 as f32).abs() < 1e-5, "{:?}", r.data);
    }

    #[test]
    fn empty_sizes_do_not_panic() {
        let img = ramp(3, 2);
        assert_eq!(resize(&img, 0, 5, ResizeFilter::Bicubic).data.len(), 0);
        let empty = RgbImageF32::zeros(0, 0);
        assert_eq!(
            resize(&empty, 2, 2, ResizeFilter::Bilinear).data,
            vec![0.0; 12]
        );
        assert_eq!(
            resize_u8_like_pillow(&empty, 2, 2, ResizeFilter::Nearest).data,
            vec![0.0; 12]
        );
    }

    #[test]
    fn u8_variant_close_to_float_variant() {
        // Smooth content (no clamping in the 8-bit intermediate).
        let mut img = RgbImageF32::zeros(37, 23);
        for (i, v) in img.data.iter_mut().enumerate() {
            let (p, c) = (i / 3, i % 3);
            let (x, y) = ((p % 37) as f32, (p / 37) as f32);
            *v = [
                x * 5.0 + 10.0,
                y * 9.0 + 5.0,
                (128.0 + 60.0 * (x * 0.2 + y * 0.3).sin()).round(),
            ][c];
        }
        for f in [ResizeFilter::Bilinear, ResizeFilter::Bicubic] {
            for (w, h) in [(16, 16), (80, 50)] {
                let a = resize(&img, w, h, f);
                let b = resize_u8_like_pillow(&img, w, h, f);
                for (x, y) in a.data.iter().zip(&b.data) {
                    // Two roundings of at most 0.5; bicubic's negative lobes
                    // amplify the intermediate one by sum(|w|) ≈ 1.2.
                    assert!((x.clamp(0.0, 255.0) - y).abs() <= 1.25, "{f} {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn center_crop_offsets_follow_python_round() {
        let img = ramp(5, 4);
        // (5-2)/2 = 1.5 → 2 ; (4-3)/2 = 0.5 → 0
        let c = center_crop(&img, 2, 3).unwrap();
        assert_eq!(c.pixel(0, 0), img.pixel(2, 0));
        assert!(center_crop(&img, 6, 1).is_err());
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
        assert_eq!(round_half_even(1.0), 1);
    }

    /// A source with detail in every pixel (so a misplaced tap changes values).
    fn busy(w: usize, h: usize) -> RgbImageF32 {
        let data = (0..w * h * 3)
            .map(|i| ((i * 7919 % 1013) as f32 * 0.25).sin() * 120.0 + 128.0)
            .collect();
        RgbImageF32::new(w, h, data).unwrap()
    }

    /// Every window of every kind of resize (growing and shrinking, one axis or both, both
    /// pass orders, nearest) equals the same window cropped from the whole resize, bit for bit.
    #[test]
    fn a_window_of_the_resize_is_the_crop_of_the_whole_resize() {
        let filters = [
            ResizeFilter::Nearest,
            ResizeFilter::Bilinear,
            ResizeFilter::Bicubic,
        ];
        // (source, target): both grow, both shrink, one axis only, and vertical-first.
        let cases = [
            ((13, 9), (40, 31)),
            ((61, 47), (17, 12)),
            ((30, 20), (45, 20)),
            ((30, 20), (30, 7)),
            ((600, 400), (590, 37)),
            ((20, 200), (33, 25)),
            ((1, 7), (5, 35)),
        ];
        for &((iw, ih), (w, h)) in &cases {
            let img = busy(iw, ih);
            for f in filters {
                let whole = resize(&img, w, h, f);
                for (left, top, cw, ch) in [
                    (0, 0, w, h),
                    (0, 0, 1, 1),
                    (w - 1, h - 1, 1, 1),
                    (w / 3, h / 4, w - w / 3, h / 2),
                    (w / 2, 0, w - w / 2, h),
                ] {
                    let cw = cw.max(1);
                    let window = Window {
                        left,
                        top,
                        width: cw,
                        height: ch,
                    };
                    let got = resize_window_f32(&img, (w, h), &window, f);
                    let mut want = Vec::new();
                    for y in top..top + ch {
                        want.extend_from_slice(
                            &whole.data[(y * w + left) * 3..(y * w + left + cw) * 3],
                        );
                    }
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                            && got.len() == want.len(),
                        "{f} {iw}x{ih} -> {w}x{h}, window {window:?}"
                    );
                }
            }
        }
    }

    /// Resize-then-crop, written out, equals the cropping resize for shapes with odd and even
    /// margins (the half-to-even offsets) and both orientations.
    #[test]
    fn crop_first_equals_resize_then_crop() {
        for ((iw, ih), shorter, (cw, ch)) in [
            ((451, 300), 256, (224, 224)),
            ((300, 451), 256, (224, 224)),
            ((97, 50), 31, (31, 20)),
            ((50, 97), 30, (11, 57)),
            ((64, 64), 64, (63, 62)),
        ] {
            let img = busy(iw, ih);
            for f in [
                ResizeFilter::Nearest,
                ResizeFilter::Bilinear,
                ResizeFilter::Bicubic,
            ] {
                let (short, long) = (iw.min(ih), iw.max(ih));
                let new_long = ((shorter * long) as f64 / short as f64) as usize;
                let (nw, nh) = if iw <= ih {
                    (shorter, new_long)
                } else {
                    (new_long, shorter)
                };
                let want = center_crop(&resize(&img, nw, nh, f), cw, ch).unwrap();
                let got = resize_shorter_and_center_crop(&img, shorter, cw, ch, f).unwrap();
                assert_eq!((got.width, got.height), (cw, ch));
                assert!(
                    got.data
                        .iter()
                        .zip(&want.data)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{f} {iw}x{ih} shorter {shorter} crop {cw}x{ch}"
                );
            }
        }
    }

    #[test]
    fn shorter_side_resize() {
        let img = ramp(451, 300);
        let r =
            resize_shorter_and_center_crop(&img, 256, 224, 224, ResizeFilter::Bilinear).unwrap();
        assert_eq!((r.width, r.height), (224, 224));
        let full = resize(&img, 384, 256, ResizeFilter::Bilinear); // int(256*451/300) = 384
        let top = 16;
        let left = 80;
        assert_eq!(r.pixel(0, 0), full.pixel(left, top));
        assert!(resize_shorter_and_center_crop(&img, 0, 1, 1, ResizeFilter::Bilinear).is_err());
    }
}
