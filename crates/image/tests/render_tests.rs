//! Golden-image tests for the renderers.
//!
//! Goldens live in `tests/golden/*.png` and must match **exactly**. After a
//! deliberate rendering change, regenerate them with
//! `CONVSCOPE_UPDATE_GOLDENS=1 cargo test -p convscope-image` and review the
//! new pictures. On a mismatch the actual output is written to
//! `tests/output/<name>.png` for inspection.

use convscope_image::font::{draw_text, text_height, text_width, LABEL_SIZE, TITLE_SIZE};
use convscope_image::{
    channel_grid, channel_large, tile_images, Colormap, GridConfig, Planar, RgbImage, RgbImageF32,
};
use convscope_test_support::Goldens;
use image::Rgb;

/// Compares `img` with `tests/golden/<name>.png`; see [`Goldens`].
#[track_caller]
fn check_golden(name: &str, img: &RgbImage) {
    Goldens::of_crate(env!("CARGO_MANIFEST_DIR")).assert_image(&format!("{name}.png"), img);
}

/// Ten 6×8 synthetic activation channels with different structure.
fn synthetic_maps(c: usize, h: usize, w: usize) -> Planar {
    let mut data = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let (xf, yf) = (x as f32, y as f32);
                let v = match ch % 6 {
                    0 => xf + yf,              // diagonal ramp
                    1 => ((x + y) % 2) as f32, // checkerboard
                    2 => 0.0,                  // dead channel
                    3 => (-((xf - w as f32 / 2.0).powi(2) + (yf - h as f32 / 2.0).powi(2)) / 4.0)
                        .exp(), // blob
                    4 => (xf * 0.9 + ch as f32).sin() * (yf * 0.5).cos(), // waves
                    _ => {
                        if x == 1 && y == 1 {
                            f32::NAN
                        } else {
                            yf * 3.0 - xf
                        }
                    } // NaN pixel
                };
                data.push(v);
            }
        }
    }
    Planar::new(c, h, w, data).unwrap()
}

#[test]
fn golden_channel_grid_small() {
    let maps = synthetic_maps(10, 6, 8);
    let cfg = GridConfig {
        per_row: 4,
        title: Some("block1_conv1  10\u{d7}6\u{d7}8".into()),
        ..GridConfig::default()
    };
    let img = channel_grid(&maps, &cfg).unwrap();
    check_golden("channel_grid_small", &img);
}

#[test]
fn golden_channel_grid_default_layout() {
    // 20 channels of 12×12: cells of 48 px (factor 4), 16 per row, partial second row.
    let maps = synthetic_maps(20, 12, 12);
    let cfg = GridConfig {
        title: Some("conv2  20x12x12".into()),
        ..GridConfig::default()
    };
    let img = channel_grid(&maps, &cfg).unwrap();
    assert_eq!(img.width(), 16 * 48 + 15);
    check_golden("channel_grid_default", &img);
}

#[test]
fn golden_channel_grid_dark_separators() {
    let maps = synthetic_maps(6, 5, 5);
    let cfg = GridConfig {
        per_row: 3,
        cell_min: 20,
        separator: 2,
        separator_color: [40, 40, 40],
        background: [20, 20, 20],
        colormap: Colormap::Magma,
        title: Some("pool1".into()),
    };
    check_golden("channel_grid_dark", &channel_grid(&maps, &cfg).unwrap());
}

fn pattern(i: usize, s: u32) -> RgbImage {
    RgbImage::from_fn(s, s, |x, y| {
        let t = ((x + y * (i as u32 + 1)) % s) as f32 / s as f32;
        let c = Colormap::ALL[i % 5].map(t);
        if (x / 4 + y / 4) % 2 == 0 {
            Rgb(c)
        } else {
            Rgb([c[0] / 2, c[1] / 2, c[2] / 2])
        }
    })
}

#[test]
fn golden_tile_images_with_labels() {
    let images: Vec<RgbImage> = (0..5).map(|i| pattern(i, 24)).collect();
    let labels: Vec<String> = (0..5).map(|i| format!("{}", i * 7)).collect();
    let img = tile_images(&images, 3, 2, 3, [0, 0, 0], Some(&labels)).unwrap();
    assert_eq!(img.dimensions(), (3 * 24 + 2 * 3, 2 * 24 + 3));
    check_golden("tile_images_labels", &img);
}

#[test]
fn keras_filter_grid_is_547_square() {
    let images: Vec<RgbImage> = (0..64).map(|i| pattern(i, 64)).collect();
    let img = tile_images(&images, 8, 8, 5, [0, 0, 0], None).unwrap();
    assert_eq!(img.dimensions(), (547, 547));
    // Cell (row 1, col 2) starts at 2*(64+5), 1*(64+5); margins are background.
    assert_eq!(img.get_pixel(138, 69), images[10].get_pixel(0, 0));
    assert_eq!(img.get_pixel(64, 0).0, [0, 0, 0]);
    assert_eq!(img.get_pixel(546, 546), images[63].get_pixel(63, 63));
}

#[test]
fn golden_channel_large() {
    let (h, w) = (7, 5);
    let map: Vec<f32> = (0..h * w)
        .map(|i| ((i % w) as f32 - 2.0) * 0.25 + (i / w) as f32 * 0.031)
        .collect();
    let img = channel_large(&map, h, w, Colormap::Viridis, 140).unwrap();
    check_golden("channel_large", &img);
    let img = channel_large(&map, h, w, Colormap::Inferno, 280).unwrap();
    check_golden("channel_large_x2", &img);
}

#[test]
fn golden_gradcam_overlay() {
    let mut base = RgbImageF32::zeros(48, 32);
    for (i, v) in base.data.iter_mut().enumerate() {
        let p = i / 3;
        *v = [((p % 48) * 5) as f32, ((p / 48) * 7) as f32, 90.0][i % 3];
    }
    // A map already scaled to 0..1 at 3×4, upsampled, coloured and superimposed as every
    // convscope overlay is (`heatmap·0.4 + image`, rescaled to 0..255).
    let cam = [0.0, 0.1, 0.2, 0.1, 0.3, 1.0, 0.6, 0.2, 0.1, 0.4, 0.3, 0.0];
    let up = convscope_image::upsample_bilinear(&cam, 3, 4, 32, 48).unwrap();
    let heat = convscope_image::heatmap_rgb(&up, 32, 48, Colormap::Jet).unwrap();
    let blended = convscope_image::superimpose(&base, &heat, 0.4).unwrap();
    let both = tile_images(&[heat, blended], 2, 1, 4, [255, 255, 255], None).unwrap();
    check_golden("gradcam_overlay", &both);
}

/// Printable ASCII and the few other characters the pictures use, at three sizes.
#[test]
fn golden_font_sheet() {
    let mut lines: Vec<String> = (32u8..=126)
        .map(|b| b as char)
        .collect::<Vec<_>>()
        .chunks(32)
        .map(|c| c.iter().collect())
        .collect();
    lines.push("64\u{d7}240\u{d7}240  \u{2212}0.5  \u{e9}\u{b5}\u{3c3}  1.50e-5".into());
    let sizes = [8.0, LABEL_SIZE, TITLE_SIZE];
    let width = 4 + sizes
        .iter()
        .map(|&s| text_width(&lines[0], s))
        .max()
        .unwrap();
    let height: u32 = 4 + sizes.iter().map(|&s| (text_height(s) + 2) * 4).sum::<u32>();
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let mut y = 2;
    for size in sizes {
        for line in &lines {
            draw_text(&mut img, 2, y, line, [0, 0, 0], size);
            y += text_height(size) + 2;
        }
    }
    check_golden("font_sheet", &img);
}
