//! Grad-CAM helpers: upsampling a coarse map, colouring it, blending it over
//! the input image as the walk-through does ([`superimpose`]). The normalisation of a map
//! lives with the map (`convscope_methods::cam::Cam::normalized`), so there is one way to
//! scale it.

use image::RgbImage;

use crate::colormap::Colormap;
use crate::types::f32_to_u8;
use crate::{Error, Result, RgbImageF32};

fn check_map(len: usize, h: usize, w: usize) -> Result<()> {
    if h.checked_mul(w) != Some(len) {
        return Err(Error::Shape(format!("map of {len} values is not {h}x{w}")));
    }
    Ok(())
}

/// Bilinear resize of a single-channel `h×w` map to `out_h×out_w`, with
/// `align_corners = false` semantics as OpenCV's `cv2.resize(...,
/// INTER_LINEAR)` on float data and PyTorch's `F.interpolate(mode="bilinear",
/// align_corners=False)`: source coordinate `(i + 0.5) * in/out - 0.5`,
/// clamped at the borders. No antialiasing when shrinking.
///
/// # Errors
/// [`Error::Shape`] if `map.len() != h * w`, or the input is empty while the
/// output is not.
pub fn upsample_bilinear(
    map: &[f32],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Result<Vec<f32>> {
    check_map(map.len(), h, w)?;
    if out_h == 0 || out_w == 0 {
        return Ok(Vec::new());
    }
    if h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "cannot upsample an empty {h}x{w} map"
        )));
    }
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|i| {
                let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                let f = if i0 == n_in - 1 {
                    0.0
                } else {
                    (src - i0 as f64) as f32
                };
                (i0, i1, f)
            })
            .collect()
    };
    let xs = taps(w, out_w);
    let ys = taps(h, out_h);
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, fy) in &ys {
        let r0 = &map[y0 * w..(y0 + 1) * w];
        let r1 = &map[y1 * w..(y1 + 1) * w];
        for &(x0, x1, fx) in &xs {
            let top = r0[x0] * (1.0 - fx) + r0[x1] * fx;
            let bot = r1[x0] * (1.0 - fx) + r1[x1] * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    Ok(out)
}

/// Colours an `h×w` map whose values are already in `0..=1` (values outside
/// are clamped by [`Colormap::map`]; NaN is black).
///
/// # Errors
/// [`Error::Shape`] if `map01.len() != h * w` or a side exceeds `u32`.
pub fn heatmap_rgb(map01: &[f32], h: usize, w: usize, colormap: Colormap) -> Result<RgbImage> {
    check_map(map01.len(), h, w)?;
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| Error::Shape(format!("width {w} too large")))?,
        u32::try_from(h).map_err(|_| Error::Shape(format!("height {h} too large")))?,
    );
    let mut raw = Vec::with_capacity(map01.len() * 3);
    for &v in map01 {
        raw.extend_from_slice(&colormap.map(v));
    }
    Ok(RgbImage::from_raw(w32, h32, raw).expect("length checked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn solid(w: u32, h: u32, c: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(w, h, Rgb(c))
    }

    #[test]
    fn bilinear_matches_opencv_rule() {
        // cv2.resize(np.array([[0,10],[20,30]],np.float32),(4,4),interpolation=cv2.INTER_LINEAR)
        // = [[0,2.5,7.5,10],[5,7.5,12.5,15],[15,17.5,22.5,25],[20,22.5,27.5,30]]
        let out = upsample_bilinear(&[0.0, 10.0, 20.0, 30.0], 2, 2, 4, 4).unwrap();
        let expect = [
            0.0, 2.5, 7.5, 10.0, 5.0, 7.5, 12.5, 15.0, 15.0, 17.5, 22.5, 25.0, 20.0, 22.5, 27.5,
            30.0,
        ];
        for (a, b) in out.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{out:?}");
        }
        // Identity size.
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(upsample_bilinear(&m, 2, 3, 2, 3).unwrap(), m.to_vec());
        assert!(upsample_bilinear(&m, 2, 2, 4, 4).is_err());
        assert_eq!(upsample_bilinear(&[7.0], 1, 1, 2, 3).unwrap(), vec![7.0; 6]);
    }

    #[test]
    fn heatmap_colours_each_value() {
        let heat = heatmap_rgb(&[0.0, 1.0], 1, 2, Colormap::Jet).unwrap();
        assert_eq!(heat.get_pixel(0, 0).0, Colormap::Jet.map(0.0));
        assert_eq!(heat.get_pixel(1, 0).0, Colormap::Jet.map(1.0));
        assert!(heatmap_rgb(&[0.0], 1, 2, Colormap::Jet).is_err());
        let _ = solid(1, 1, [0; 3]);
    }
}

/// The Keras chapter's overlay: `heat·alpha + image`, then rescaled to `0..255` as
/// `keras.utils.array_to_img` does (`x − min`, `/ max`, `·255`).
///
/// # Errors
/// [`Error::Shape`] if the two images differ in size or `image` is inconsistent.
pub fn superimpose(image: &RgbImageF32, heat: &RgbImage, alpha: f32) -> Result<RgbImage> {
    if image.data.len() != image.width * image.height * 3 {
        return Err(Error::Shape("inconsistent RgbImageF32".into()));
    }
    if (heat.width() as usize, heat.height() as usize) != (image.width, image.height) {
        return Err(Error::Shape(format!(
            "heatmap is {}x{} but image is {}x{}",
            heat.width(),
            heat.height(),
            image.width,
            image.height
        )));
    }
    let a = if alpha.is_finite() {
        alpha.max(0.0)
    } else {
        0.0
    };
    let sum: Vec<f32> = heat
        .as_raw()
        .iter()
        .zip(&image.data)
        .map(|(&h, &i)| h as f32 * a + i)
        .collect();
    let lo = sum.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = sum.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let raw = sum
        .iter()
        .map(|&v| f32_to_u8((v - lo) / span * 255.0))
        .collect();
    Ok(RgbImage::from_raw(heat.width(), heat.height(), raw).expect("length checked"))
}

#[cfg(test)]
mod superimpose_tests {
    use super::*;

    #[test]
    fn superimpose_rescales_to_full_range() {
        let img = RgbImageF32::new(2, 1, vec![0.0, 0.0, 0.0, 100.0, 100.0, 100.0]).unwrap();
        let heat = RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let out = superimpose(&img, &heat, 0.4).unwrap();
        // Sums: [102,0,0] and [100,100,202]; min 0, max 202.
        assert_eq!(
            out.as_raw(),
            &[
                f32_to_u8(102.0 / 202.0 * 255.0),
                0,
                0,
                f32_to_u8(100.0 / 202.0 * 255.0),
                f32_to_u8(100.0 / 202.0 * 255.0),
                255
            ]
        );
    }
}
