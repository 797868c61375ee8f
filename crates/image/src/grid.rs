//! Grids and single-channel views of activations and filter patterns.

use image::{Rgb, RgbImage};

use crate::channel::standardize_channel;
use crate::colormap::Colormap;
use crate::font::{draw_text, text_height, text_width, LABEL_SIZE, TITLE_SIZE};
use crate::resize::nearest_indices;
use crate::{Error, Planar, Result};

/// Layout options for [`channel_grid`].
#[derive(Debug, Clone, PartialEq)]
pub struct GridConfig {
    /// Channels per row (the last row may be partial). Default 16.
    pub per_row: usize,
    /// Minimum size in pixels of the longer side of each channel cell; maps
    /// are enlarged by the smallest integer factor reaching it. Default 48.
    pub cell_min: usize,
    /// Width in pixels of the lines between cells. Default 1.
    pub separator: usize,
    /// Colour of the lines between cells. Default white.
    pub separator_color: [u8; 3],
    /// Colour of the title bar and of unused space (e.g. after the last
    /// cell of a partial row). Default white.
    pub background: [u8; 3],
    /// Colormap applied to each standardised channel. Default viridis.
    pub colormap: Colormap,
    /// Optional title drawn in a bar above the grid, e.g.
    /// `"block1_conv1  64x240x240"`. Text is black or white, whichever
    /// contrasts with `background`.
    pub title: Option<String>,
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig {
            per_row: 16,
            cell_min: 48,
            separator: 1,
            separator_color: [255, 255, 255],
            background: [255, 255, 255],
            colormap: Colormap::Viridis,
            title: None,
        }
    }
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::InvalidArgument(format!("{what} {v} is too large for an image")))
}

fn fill_rect(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
    let (iw, ih) = img.dimensions();
    for yy in y..y.saturating_add(h).min(ih) {
        for xx in x..x.saturating_add(w).min(iw) {
            img.put_pixel(xx, yy, Rgb(color));
        }
    }
}

/// Black or white, whichever reads better on `bg`.
fn contrast_text(bg: [u8; 3]) -> [u8; 3] {
    let lum = 0.299 * bg[0] as f32 + 0.587 * bg[1] as f32 + 0.114 * bg[2] as f32;
    if lum > 140.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// `n` cells of `cell` pixels with `gap` pixels between them (`n >= 1`).
fn span(n: usize, cell: usize, gap: usize) -> Option<usize> {
    n.checked_mul(cell)?.checked_add((n - 1).checked_mul(gap)?)
}

/// Guards against absurd canvas sizes (a single image over 2^28 pixels).
fn check_canvas(w: usize, h: usize) -> Result<(u32, u32)> {
    if w.checked_mul(h).is_none_or(|n| n > 1 << 28) {
        return Err(Error::InvalidArgument(format!(
            "output image {w}x{h} is too large"
        )));
    }
    Ok((to_u32(w, "width")?, to_u32(h, "height")?))
}

/// Where [`channel_grid`] puts each channel: the canvas size and the cell rectangles, so a
/// viewer can tell which channel a click on the picture falls on.
///
/// ```
/// use convscope_image::{grid_layout, GridConfig};
///
/// let cfg = GridConfig { per_row: 4, ..GridConfig::default() };
/// let layout = grid_layout(6, 12, 12, &cfg)?; // 6 channels of 12×12, enlarged 4× to 48 px
/// assert_eq!((layout.columns, layout.rows, layout.cell_width), (4, 2, 48));
/// assert_eq!(layout.cell(5), Some((49, 49, 48, 48)));
/// assert_eq!(layout.channel_at(50, 10), Some(1));
/// assert_eq!(layout.channel_at(48, 10), None); // on the separator line
/// # Ok::<(), convscope_image::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GridLayout {
    /// Channels drawn.
    pub channels: usize,
    /// Cells per row.
    pub columns: usize,
    /// Rows of cells.
    pub rows: usize,
    /// Integer enlargement of each map.
    pub scale: usize,
    /// Width of one cell in pixels.
    pub cell_width: usize,
    /// Height of one cell in pixels.
    pub cell_height: usize,
    /// Pixels between cells.
    pub separator: usize,
    /// Left edge of the first cell.
    pub x0: usize,
    /// Top edge of the first cell (below the title bar).
    pub y0: usize,
    /// Width of the whole picture.
    pub width: usize,
    /// Height of the whole picture.
    pub height: usize,
    /// The title with its font size and padding, when drawn.
    title: Option<(String, f32, usize)>,
}

impl GridLayout {
    /// Width of the cells and the lines between them.
    pub fn grid_width(&self) -> usize {
        self.columns * self.cell_width + (self.columns - 1) * self.separator
    }

    /// Height of the cells and the lines between them.
    pub fn grid_height(&self) -> usize {
        self.rows * self.cell_height + (self.rows - 1) * self.separator
    }

    /// `(x, y, width, height)` of channel `k`'s cell, when there is one.
    pub fn cell(&self, k: usize) -> Option<(usize, usize, usize, usize)> {
        (k < self.channels).then(|| {
            let (col, row) = (k % self.columns, k / self.columns);
            (
                self.x0 + col * (self.cell_width + self.separator),
                self.y0 + row * (self.cell_height + self.separator),
                self.cell_width,
                self.cell_height,
            )
        })
    }

    /// The channel whose cell holds pixel `(x, y)` of the picture (`None` on a line, the
    /// title or empty space).
    pub fn channel_at(&self, x: usize, y: usize) -> Option<usize> {
        let (dx, dy) = (x.checked_sub(self.x0)?, y.checked_sub(self.y0)?);
        let (pitch_x, pitch_y) = (
            self.cell_width + self.separator,
            self.cell_height + self.separator,
        );
        let (col, row) = (dx / pitch_x, dy / pitch_y);
        let inside = dx % pitch_x < self.cell_width && dy % pitch_y < self.cell_height;
        let k = row * self.columns + col;
        (inside && col < self.columns && k < self.channels).then_some(k)
    }
}

/// The layout [`channel_grid`] draws `c` maps of `h×w` with `cfg` in.
///
/// # Errors
/// As [`channel_grid`]: an empty map, or a canvas that would be too large.
pub fn grid_layout(c: usize, h: usize, w: usize, cfg: &GridConfig) -> Result<GridLayout> {
    if c == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "cannot draw a grid of {c}x{h}x{w} activations"
        )));
    }
    let k = cfg.cell_min.div_ceil(h.max(w)).max(1);
    let cols = cfg.per_row.max(1).min(c);
    let rows = c.div_ceil(cols);
    let sep = cfg.separator;
    let too_big = || Error::InvalidArgument(format!("grid of {c} channels {h}x{w} is too large"));
    let (cw, ch) = (
        w.checked_mul(k).ok_or_else(too_big)?,
        h.checked_mul(k).ok_or_else(too_big)?,
    );
    let grid_w = span(cols, cw, sep).ok_or_else(too_big)?;
    let grid_h = span(rows, ch, sep).ok_or_else(too_big)?;

    let title = cfg.title.as_deref().filter(|t| !t.is_empty());
    let (mut size, mut pad) = (TITLE_SIZE, 6usize);
    if let Some(t) = title {
        if text_width(t, size) as usize + 2 * pad > grid_w {
            (size, pad) = (LABEL_SIZE, 4);
        }
    }
    let (title_w, title_h) = match title {
        Some(t) => (
            text_width(t, size) as usize + 2 * pad,
            text_height(size) as usize + 2 * pad,
        ),
        None => (0, 0),
    };
    let width = grid_w.max(title_w);
    let height = grid_h.checked_add(title_h).ok_or_else(too_big)?;
    check_canvas(width, height)?;
    Ok(GridLayout {
        channels: c,
        columns: cols,
        rows,
        scale: k,
        cell_width: cw,
        cell_height: ch,
        separator: sep,
        x0: (width - grid_w) / 2,
        y0: title_h,
        width,
        height,
        title: title.map(|t| (t.to_string(), size, pad)),
    })
}

/// Renders all channels of one image's activations as a tiled grid.
///
/// Each channel is standardised with [`standardize_channel`], enlarged by an
/// integer factor `k = max(1, ceil(cell_min / max(H, W)))` with nearest
/// neighbour, coloured with `cfg.colormap`, and placed left to right,
/// `cfg.per_row` per row, with `cfg.separator`-pixel lines between cells (not
/// around the grid). If `cfg.title` is set, a title bar (bundled font,
/// [`TITLE_SIZE`], or [`LABEL_SIZE`] when the grid is narrow) is drawn above;
/// the canvas is widened if the title is wider than the grid, and the grid
/// centred.
///
/// # Errors
/// [`Error::Shape`] if `maps` is inconsistent or has no channels or an empty
/// plane; [`Error::InvalidArgument`] if the output would be too large.
pub fn channel_grid(maps: &Planar, cfg: &GridConfig) -> Result<RgbImage> {
    maps.check()?;
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    let layout = grid_layout(c, h, w, cfg)?;
    let GridLayout {
        columns: cols,
        rows,
        scale: k,
        cell_width: cw,
        cell_height: ch,
        separator: sep,
        x0,
        y0,
        ..
    } = layout;
    let (grid_w, grid_h) = (layout.grid_width(), layout.grid_height());
    let (cw32, ch32) = check_canvas(layout.width, layout.height)?;
    let mut img = RgbImage::from_pixel(cw32, ch32, Rgb(cfg.background));
    if let Some((t, size, pad)) = &layout.title {
        let color = contrast_text(cfg.background);
        draw_text(&mut img, *pad as u32, *pad as u32, t, color, *size);
    }

    // Separator lines: fill the grid area, then paint cells over it.
    fill_rect(
        &mut img,
        x0 as u32,
        y0 as u32,
        grid_w as u32,
        grid_h as u32,
        cfg.separator_color,
    );
    let last_row_cells = c - (rows - 1) * cols;
    if last_row_cells < cols {
        let xs = x0 + last_row_cells * (cw + sep) - sep;
        let ys = y0 + (rows - 1) * (ch + sep);
        fill_rect(
            &mut img,
            xs as u32,
            ys as u32,
            (x0 + grid_w - xs) as u32,
            ch as u32,
            cfg.background,
        );
    }
    // Each source row is coloured and widened once, then copied into the `k` canvas rows it
    // covers (per-pixel `put_pixel` made drawing a 240-channel grid cost as much as a
    // forward pass of the layer).
    let stride = layout.width * 3;
    let canvas: &mut [u8] = &mut img;
    let mut row = vec![0u8; cw * 3];
    let table = cfg.colormap.table();
    for i in 0..c {
        let bytes = standardize_channel(maps.channel(i));
        let cx = x0 + (i % cols) * (cw + sep);
        let cy = y0 + (i / cols) * (ch + sep);
        for (sy, src_row) in bytes.chunks_exact(w).enumerate() {
            // Each source pixel's colour is looked up once and written `k` times.
            for (&v, out) in src_row.iter().zip(row.chunks_exact_mut(3 * k)) {
                let rgb = table[v as usize];
                for px in out.chunks_exact_mut(3) {
                    px.copy_from_slice(&rgb);
                }
            }
            for yy in sy * k..((sy + 1) * k).min(ch) {
                let at = (cy + yy) * stride + cx * 3;
                canvas[at..at + cw * 3].copy_from_slice(&row);
            }
        }
    }
    Ok(img)
}

/// Tiles equally sized images into a `cols×rows` grid with `margin` pixels
/// between cells and **none around** the grid, like the filter-pattern grid
/// of *Deep Learning with Python*: for 8×8 cells of 64 px and margin 5 the
/// result is `8*64 + 7*5 = 547` pixels square.
///
/// Images fill the grid row by row; unused cells and margins are
/// `background`. With `labels`, `labels[i]` is drawn in a small dark box at
/// the top-left corner of cell `i` (white, [`LABEL_SIZE`]).
///
/// # Errors
/// [`Error::InvalidArgument`] if `cols` or `rows` is 0, there are more
/// images than cells, the images differ in size, or `labels` has a different
/// length than `images`.
pub fn tile_images(
    images: &[RgbImage],
    cols: usize,
    rows: usize,
    margin: usize,
    background: [u8; 3],
    labels: Option<&[String]>,
) -> Result<RgbImage> {
    if cols == 0 || rows == 0 {
        return Err(Error::InvalidArgument(format!(
            "tile grid must be at least 1x1, got {cols}x{rows}"
        )));
    }
    if cols.checked_mul(rows).is_none_or(|n| images.len() > n) {
        return Err(Error::InvalidArgument(format!(
            "{} images do not fit in a {cols}x{rows} grid",
            images.len()
        )));
    }
    if let Some(l) = labels {
        if l.len() != images.len() {
            return Err(Error::InvalidArgument(format!(
                "{} labels for {} images",
                l.len(),
                images.len()
            )));
        }
    }
    let (sw, sh) = images
        .first()
        .map_or((0, 0), |i| (i.width() as usize, i.height() as usize));
    if let Some((i, im)) = images
        .iter()
        .enumerate()
        .find(|(_, im)| (im.width() as usize, im.height() as usize) != (sw, sh))
    {
        return Err(Error::InvalidArgument(format!(
            "image {i} is {}x{}, expected {sw}x{sh} like image 0",
            im.width(),
            im.height()
        )));
    }
    let too_big = || {
        Error::InvalidArgument(format!(
            "{cols}x{rows} grid of {sw}x{sh} images is too large"
        ))
    };
    let out_w = span(cols, sw, margin).ok_or_else(too_big)?;
    let out_h = span(rows, sh, margin).ok_or_else(too_big)?;
    let (w32, h32) = check_canvas(out_w, out_h)?;
    let mut out = RgbImage::from_pixel(w32, h32, Rgb(background));
    for (i, im) in images.iter().enumerate() {
        // Within the canvas, so no overflow: col * sw + col * margin <= out_w.
        let (col, row) = (i % cols, i / cols);
        let x = (col * sw + col * margin) as u32;
        let y = (row * sh + row * margin) as u32;
        image::imageops::replace(&mut out, im, x as i64, y as i64);
        if let Some(label) = labels.map(|l| l[i].as_str()).filter(|l| !l.is_empty()) {
            let tw = text_width(label, LABEL_SIZE);
            fill_rect(
                &mut out,
                x,
                y,
                (tw + 3).min(sw as u32),
                (text_height(LABEL_SIZE) + 3).min(sh as u32),
                [0, 0, 0],
            );
            draw_text(&mut out, x + 2, y + 2, label, [255, 255, 255], LABEL_SIZE);
        }
    }
    Ok(out)
}

/// Formats a colour-bar value compactly (about 4 significant digits).
pub(crate) fn format_value(v: f32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// 2 for large views of [`channel_large`] (doubled margins, large text), else 1.
fn large_scale(target: usize) -> usize {
    if target >= 240 {
        2
    } else {
        1
    }
}

/// `(x, y, width, height)` of the map inside the picture [`channel_large`] draws for an `h×w`
/// map at `target` pixels, so a viewer can read the value under the cursor.
///
/// ```
/// use convscope_image::{channel_large, channel_large_box, Colormap};
///
/// let (x, y, w, h) = channel_large_box(3, 4, 100);
/// assert_eq!((x, y, w, h), (8, 8, 100, 75));
/// let img = channel_large(&[0.5; 12], 3, 4, Colormap::Viridis, 100)?;
/// assert!(img.width() as usize > x + w && img.height() as usize >= y + h);
/// # Ok::<(), convscope_image::Error>(())
/// ```
pub fn channel_large_box(h: usize, w: usize, target: usize) -> (usize, usize, usize, usize) {
    let (h, w) = (h.max(1), w.max(1));
    let (out_w, out_h) = if w >= h {
        (
            target,
            ((h as f64 * target as f64 / w as f64).round() as usize).max(1),
        )
    } else {
        (
            ((w as f64 * target as f64 / h as f64).round() as usize).max(1),
            target,
        )
    };
    let margin = 8 * large_scale(target);
    (margin, margin, out_w, out_h)
}

/// One channel drawn large, like `plt.matshow(map, cmap=...)`, with a colour
/// bar on the right labelled with the maximum (top), midpoint and minimum
/// (bottom) values.
///
/// Unlike [`channel_grid`] there is no standardisation: values are mapped
/// linearly from `min..max` of the finite values to `0..1` (a constant map
/// uses colour 0, as matplotlib does). NaN pixels are drawn black. The map is
/// resampled with nearest neighbour (Pillow's rule) so that its longer side
/// is `target` pixels. White background, black text.
///
/// # Errors
/// [`Error::Shape`] if `map.len() != h * w` or the map is empty;
/// [`Error::InvalidArgument`] if `target` is 0 or too large.
pub fn channel_large(
    map: &[f32],
    h: usize,
    w: usize,
    colormap: Colormap,
    target: usize,
) -> Result<RgbImage> {
    if h.checked_mul(w) != Some(map.len()) || map.is_empty() {
        return Err(Error::Shape(format!(
            "map of {} values is not {h}x{w} (or is empty)",
            map.len()
        )));
    }
    if target == 0 || target > 16384 {
        return Err(Error::InvalidArgument(format!(
            "target size {target} must be in 1..=16384"
        )));
    }
    let (_, _, out_w, out_h) = channel_large_box(h, w, target);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in map.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        (lo, hi) = (0.0, 0.0);
    }
    let range = hi as f64 - lo as f64;
    let to_t = |v: f32| -> f32 {
        if range > 0.0 {
            ((v as f64 - lo as f64) / range) as f32
        } else {
            0.0
        }
    };

    // Large views get doubled margins and large text.
    let s = large_scale(target);
    let size = if s == 2 { TITLE_SIZE } else { LABEL_SIZE };
    let margin = 8 * s;
    let gap = 6 * s;
    let bar_w = 10 * s;
    let label_gap = 4 * s;
    let labels = [
        format_value(hi),
        format_value(((lo as f64 + hi as f64) / 2.0) as f32),
        format_value(lo),
    ];
    let label_w = labels
        .iter()
        .map(|l| text_width(l, size) as usize)
        .max()
        .unwrap_or(0);
    let th = text_height(size) as usize;
    let canvas_w = margin + out_w + gap + bar_w + label_gap + label_w + margin;
    let canvas_h = margin + out_h.max(3 * th) + margin;
    let (cw, chh) = check_canvas(canvas_w, canvas_h)?;
    let mut img = RgbImage::from_pixel(cw, chh, Rgb([255, 255, 255]));

    let xs = nearest_indices(w, out_w);
    let ys = nearest_indices(h, out_h);
    for (oy, sy) in ys.iter().enumerate() {
        for (ox, sx) in xs.iter().enumerate() {
            let v = match (sy, sx) {
                (Some(sy), Some(sx)) => map[sy * w + sx],
                _ => f32::NAN,
            };
            let rgb = if v.is_nan() {
                [0, 0, 0]
            } else {
                colormap.map(to_t(v))
            };
            img.put_pixel((margin + ox) as u32, (margin + oy) as u32, Rgb(rgb));
        }
    }

    // Colour bar: top = max, bottom = min, 1-px gray outline.
    let bx = margin + out_w + gap;
    let by = margin;
    for y in 0..out_h {
        let t = 1.0 - (y as f32 + 0.5) / out_h as f32;
        let rgb = colormap.map(t);
        fill_rect(&mut img, bx as u32, (by + y) as u32, bar_w as u32, 1, rgb);
    }
    let gray = [96, 96, 96];
    fill_rect(&mut img, bx as u32, by as u32, bar_w as u32, 1, gray);
    fill_rect(
        &mut img,
        bx as u32,
        (by + out_h - 1) as u32,
        bar_w as u32,
        1,
        gray,
    );
    fill_rect(&mut img, bx as u32, by as u32, 1, out_h as u32, gray);
    fill_rect(
        &mut img,
        (bx + bar_w - 1) as u32,
        by as u32,
        1,
        out_h as u32,
        gray,
    );

    // Labels at top, middle and bottom of the bar (no tick marks: a tick
    // next to a label would read as a minus sign).
    let tx = (bx + bar_w + label_gap) as u32;
    let text_ys = [
        by,
        (by + out_h / 2).saturating_sub(th / 2),
        (by + out_h).saturating_sub(th),
    ];
    for (label, ty) in labels.iter().zip(text_ys) {
        draw_text(&mut img, tx, ty as u32, label, [0, 0, 0], size);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_geometry() {
        let maps = Planar::new(5, 4, 6, (0..120).map(|v| v as f32).collect()).unwrap();
        let cfg = GridConfig {
            per_row: 2,
            cell_min: 12,
            separator: 3,
            ..GridConfig::default()
        };
        let img = channel_grid(&maps, &cfg).unwrap();
        // k = ceil(12/6) = 2: cells 12x8; 2 cols, 3 rows.
        assert_eq!(img.dimensions(), (2 * 12 + 3, 3 * 8 + 2 * 3));
        // Separator column between the two cells is white.
        assert_eq!(img.get_pixel(13, 0).0, [255, 255, 255]);
        // Each channel is a ramp: standardised top-left is dark, bottom-right bright.
        let tl = img.get_pixel(0, 0).0;
        let br = img.get_pixel(11, 7).0;
        assert_eq!(
            tl,
            Colormap::Viridis.map_u8(standardize_channel(maps.channel(0))[0])
        );
        assert!(br[1] > tl[1]);
        // The unused last-row cell is background.
        assert_eq!(img.get_pixel(20, 27).0, [255, 255, 255]);
    }

    #[test]
    fn grid_title_widens_canvas() {
        let maps = Planar::zeros(1, 2, 2);
        let cfg = GridConfig {
            title: Some("a long title for one tiny cell".into()),
            ..GridConfig::default()
        };
        let img = channel_grid(&maps, &cfg).unwrap();
        assert!(img.width() as usize > 48);
        // The title is set small (it is wider than the grid) with a 4-pixel pad.
        assert_eq!(img.height(), 48 + text_height(LABEL_SIZE) + 8);
    }

    #[test]
    fn grid_rejects_bad_shapes() {
        let bad = Planar {
            channels: 2,
            height: 2,
            width: 2,
            data: vec![0.0; 7],
        };
        assert!(channel_grid(&bad, &GridConfig::default()).is_err());
        assert!(channel_grid(&Planar::zeros(0, 2, 2), &GridConfig::default()).is_err());
        let huge = GridConfig {
            cell_min: usize::MAX,
            ..GridConfig::default()
        };
        assert!(channel_grid(&Planar::zeros(2, 3, 3), &huge).is_err());
        let huge = GridConfig {
            separator: usize::MAX,
            ..GridConfig::default()
        };
        assert!(channel_grid(&Planar::zeros(2, 3, 3), &huge).is_err());
    }

    #[test]
    fn tiles() {
        let a = RgbImage::from_pixel(3, 2, Rgb([10, 20, 30]));
        let img =
            tile_images(&[a.clone(), a.clone(), a.clone()], 2, 2, 1, [1, 1, 1], None).unwrap();
        assert_eq!(img.dimensions(), (7, 5));
        assert_eq!(img.get_pixel(3, 0).0, [1, 1, 1]);
        assert_eq!(img.get_pixel(4, 0).0, [10, 20, 30]);
        assert_eq!(img.get_pixel(4, 3).0, [1, 1, 1]); // empty 4th cell
        let b = RgbImage::new(2, 2);
        assert!(tile_images(&[a.clone(), b], 2, 1, 0, [0; 3], None).is_err());
        assert!(tile_images(&[a.clone(), a.clone()], 1, 1, 0, [0; 3], None).is_err());
        assert!(tile_images(std::slice::from_ref(&a), 1, 1, 0, [0; 3], Some(&[])).is_err());
        assert!(tile_images(std::slice::from_ref(&a), 0, 1, 0, [0; 3], None).is_err());
        assert!(tile_images(std::slice::from_ref(&a), usize::MAX, 2, 0, [0; 3], None).is_err());
        assert!(tile_images(&[a], 1, 1, usize::MAX, [0; 3], None).is_ok());
    }

    #[test]
    fn values_format() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(12.3456), "12.35");
        assert_eq!(format_value(-0.5), "-0.5");
        assert_eq!(format_value(1234.6), "1235");
        assert_eq!(format_value(0.0123456), "0.01235");
        assert_eq!(format_value(1.5e-5), "1.50e-5");
        assert_eq!(format_value(2.0e6), "2.00e6");
    }

    #[test]
    fn large_view() {
        let map: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let img = channel_large(&map, 3, 4, Colormap::Viridis, 100).unwrap();
        // 4 wide → 100 px wide, 75 tall, placed at margin 8.
        assert_eq!(img.get_pixel(8, 8).0, Colormap::Viridis.map(0.0));
        assert_eq!(img.get_pixel(8 + 99, 8 + 74).0, Colormap::Viridis.map(1.0));
        assert!(channel_large(&map, 3, 3, Colormap::Viridis, 100).is_err());
        assert!(channel_large(&map, 3, 4, Colormap::Viridis, 0).is_err());
        let flat = vec![f32::NAN, 1.0, 1.0, 1.0];
        let img = channel_large(&flat, 2, 2, Colormap::Gray, 10).unwrap();
        assert_eq!(img.get_pixel(8, 8).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(8 + 9, 8).0, Colormap::Gray.map(0.0));
    }
}
