//! Text in pictures: titles, labels and colour-bar values, drawn with a real font.
//!
//! The text is rasterised with [`ab_glyph`] from DejaVu Sans Mono 2.37 (Bitstream Vera licence,
//! DejaVu changes in the public domain; `fonts/LICENSE`), which is compiled into the crate
//! (`fonts/DejaVuSansMono.ttf`, 343 KB): nothing is read or downloaded at run time. Glyphs are
//! anti-aliased and legible at any size. A size is the height in pixels of a line of text, from
//! the font's ascender to its descender ([`text_height`]); the em square is 86% of it.
//! Characters the font lacks are drawn as `?`.
//!
//! ```
//! use convscope_image::font::{draw_text, text_height, text_width, LABEL_SIZE};
//! use convscope_image::RgbImage;
//!
//! let mut img = RgbImage::from_pixel(120, 24, image::Rgb([255, 255, 255]));
//! draw_text(&mut img, 2, 2, "conv1 4×6×6", [0, 0, 0], LABEL_SIZE);
//! assert!(text_width("conv1 4×6×6", LABEL_SIZE) < 118);
//! assert!(text_height(LABEL_SIZE) < 22);
//! assert!(img.pixels().any(|p| p.0 == [0, 0, 0]));
//! ```

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use image::RgbImage;

/// Size of small text (grid cell labels, colour-bar values, narrow titles): a 13-pixel line,
/// 6.7 pixels per character, capitals 8 pixels tall.
pub const LABEL_SIZE: f32 = 13.0;

/// Size of large text (grid titles, the values of large colour bars): a 22-pixel line,
/// 11.4 pixels per character, capitals 14 pixels tall.
pub const TITLE_SIZE: f32 = 22.0;

/// The bundled font file (DejaVu Sans Mono 2.37, from Debian's `fonts-dejavu-core`).
const FONT_DATA: &[u8] = include_bytes!("../fonts/DejaVuSansMono.ttf");

/// The parsed bundled font.
fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        // The file is part of the crate, not input; the unit tests parse it.
        FontRef::try_from_slice(FONT_DATA).expect("the bundled font is a valid TrueType file")
    })
}

/// The glyph drawn for `c`: its own, or `?` when the font has none.
fn glyph_id(c: char) -> GlyphId {
    let f = font();
    match f.glyph_id(c) {
        GlyphId(0) => f.glyph_id('?'),
        id => id,
    }
}

/// Sizes below one pixel draw nothing useful; non-finite sizes are treated as one pixel.
fn px(size: f32) -> PxScale {
    PxScale::from(if size.is_finite() { size.max(1.0) } else { 1.0 })
}

/// Horizontal advance of every glyph of `text` at `size`, kerning included, in pixels.
fn advances(text: &str, size: f32) -> impl Iterator<Item = f32> + '_ {
    let f = font().as_scaled(px(size));
    let mut previous: Option<GlyphId> = None;
    text.chars().map(move |c| {
        let id = glyph_id(c);
        let kern = previous.map_or(0.0, |p| f.kern(p, id));
        previous = Some(id);
        kern + f.h_advance(id)
    })
}

/// Width in pixels of `text` drawn at `size`.
pub fn text_width(text: &str, size: f32) -> u32 {
    advances(text, size).sum::<f32>().ceil() as u32
}

/// Height in pixels of a line of text drawn at `size` (ascender to descender).
pub fn text_height(size: f32) -> u32 {
    let f = font().as_scaled(px(size));
    // The line is `size` pixels by construction; the slack absorbs float rounding.
    (f.ascent() - f.descent() - 0.01).ceil() as u32
}

/// Draws `text` in `color` with the top-left corner of its line box at `(x, y)`, blending the
/// glyphs' anti-aliased edges into the pixels below. Parts falling outside the image are
/// skipped.
pub fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, color: [u8; 3], size: f32) {
    let f = font();
    let scale = px(size);
    let scaled = f.as_scaled(scale);
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    // Whole-pixel baseline and pen positions keep every copy of a glyph identical.
    let baseline = y as f32 + scaled.ascent().round();
    let mut pen = x as f32;
    for (c, advance) in text.chars().zip(advances(text, size)) {
        if pen >= w as f32 {
            break;
        }
        let glyph = glyph_id(c).with_scale_and_position(scale, point(pen.round(), baseline));
        if let Some(outline) = f.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i64, bounds.min.y as i64);
            outline.draw(|gx, gy, coverage| {
                let (px, py) = (left + i64::from(gx), top + i64::from(gy));
                if (0..w).contains(&px) && (0..h).contains(&py) {
                    let alpha = coverage.clamp(0.0, 1.0);
                    let p = img.get_pixel_mut(px as u32, py as u32);
                    for (channel, &target) in p.0.iter_mut().zip(&color) {
                        let old = f32::from(*channel);
                        *channel = (old + (f32::from(target) - old) * alpha).round() as u8;
                    }
                }
            });
        }
        pen += advance;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// The bounding box `(x0, y0, x1, y1)` (end exclusive) of pixels that differ from white.
    fn ink(img: &RgbImage) -> Option<(u32, u32, u32, u32)> {
        let mut b: Option<(u32, u32, u32, u32)> = None;
        for (x, y, p) in img.enumerate_pixels() {
            if p.0 != [255, 255, 255] {
                let (x0, y0, x1, y1) = b.unwrap_or((x, y, x + 1, y + 1));
                b = Some((x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)));
            }
        }
        b
    }

    #[test]
    fn the_bundled_font_is_monospaced_and_scales() {
        assert_eq!(text_width("", LABEL_SIZE), 0);
        // A 100-pixel line has an 86-pixel em; DejaVu Sans Mono advances 0.6 em.
        let one = text_width("m", 100.0);
        assert!((50..=54).contains(&one), "advance {one}");
        assert_eq!(text_width("iiii", 100.0), text_width("WWWW", 100.0));
        assert!(text_width("abc", TITLE_SIZE) > text_width("abc", LABEL_SIZE));
        assert_eq!(text_height(LABEL_SIZE), 13);
        assert_eq!(text_height(TITLE_SIZE), 22);
        assert!(text_height(TITLE_SIZE) > text_height(LABEL_SIZE));
        // Odd sizes do not break anything.
        assert_eq!(text_width("a", f32::NAN), text_width("a", 1.0));
        assert_eq!(text_height(0.0), text_height(1.0));
    }

    #[test]
    fn text_is_drawn_inside_its_line_box() {
        for size in [6.0, LABEL_SIZE, TITLE_SIZE, 48.0] {
            let mut img = RgbImage::from_pixel(400, 100, Rgb([255, 255, 255]));
            let text = "Ag|j×0";
            draw_text(&mut img, 10, 5, text, [0, 0, 0], size);
            let (x0, y0, x1, y1) = ink(&img).expect("something is drawn");
            assert!(
                x0 >= 10 && x1 <= 10 + text_width(text, size) + 1,
                "size {size}"
            );
            assert!(y0 >= 5 && y1 <= 5 + text_height(size) + 1, "size {size}");
            // Strokes are dark at readable sizes (unhinted, so a thin stem may straddle two
            // pixels and reach the full colour in neither).
            let darkest = img.pixels().map(|p| p.0[0]).min().unwrap();
            if size >= LABEL_SIZE {
                assert!(darkest < 60, "size {size}: darkest {darkest}");
            }
        }
    }

    #[test]
    fn missing_glyphs_are_question_marks_and_clipping_is_safe() {
        let draw = |text: &str| {
            let mut img = RgbImage::from_pixel(40, 20, Rgb([255, 255, 255]));
            draw_text(&mut img, 1, 1, text, [0, 0, 0], LABEL_SIZE);
            img
        };
        // U+E000 is a private-use character no font of this kind has.
        assert_eq!(draw("\u{E000}"), draw("?"));
        assert_ne!(draw("x"), draw("?"));
        let mut img = RgbImage::new(8, 8);
        draw_text(&mut img, 6, 6, "W\u{d7}\u{e9}\u{1F600}", [1, 2, 3], 40.0);
        draw_text(&mut img, 100, 100, "x", [1, 2, 3], 12.0);
        draw_text(&mut img, u32::MAX, u32::MAX, "x", [1, 2, 3], 12.0);
        draw_text(&mut RgbImage::new(0, 0), 0, 0, "x", [1, 2, 3], 12.0);
    }

    #[test]
    fn coverage_blends_with_the_background() {
        let mut img = RgbImage::from_pixel(60, 30, Rgb([200, 0, 0]));
        draw_text(&mut img, 2, 2, "O", [0, 0, 200], TITLE_SIZE);
        // Edge pixels mix the two colours; none has a channel outside both.
        let mixed = img
            .pixels()
            .filter(|p| p.0[0] > 0 && p.0[0] < 200 && p.0[2] > 0 && p.0[2] < 200)
            .count();
        assert!(mixed > 4, "{mixed} anti-aliased pixels");
        assert!(img.pixels().all(|p| p.0[1] == 0));
    }
}
