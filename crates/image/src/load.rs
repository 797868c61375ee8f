//! Decoding image files into [`RgbImageF32`].

use std::io::ErrorKind;
use std::path::Path;

use image::DynamicImage;

use crate::{Error, Result, RgbImageF32};

/// Decodes an image file into an RGB float image with values in `0.0..=255.0`.
///
/// The format is detected from the file contents (not the extension); PNG,
/// JPEG, WebP, BMP and TIFF are supported. Conversions:
///
/// * grayscale → the gray value replicated to R, G and B;
/// * an alpha channel is dropped (not composited);
/// * 16-bit samples are scaled by `255 / 65535` (kept fractional, no rounding);
/// * float samples (e.g. 32-bit TIFF) are taken as `0..1` and scaled by 255.
///
/// EXIF orientation is **not** applied, matching `PIL.Image.open`, Keras'
/// `load_img` and torchvision, so that inputs match reference pipelines.
///
/// # Errors
/// [`Error::NotFound`] if the file does not exist, [`Error::Io`] if it cannot
/// be read, [`Error::Decode`] if it is not a decodable image.
pub fn load_rgb(path: &Path) -> Result<RgbImageF32> {
    let reader = image::ImageReader::open(path).map_err(|e| io_error(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| io_error(path, e))?;
    let dynamic = reader.decode().map_err(|e| match e {
        image::ImageError::IoError(io) => io_error(path, io),
        other => Error::Decode {
            path: path.to_path_buf(),
            message: one_line(&other.to_string()),
        },
    })?;
    Ok(from_dynamic(&dynamic))
}

/// Converts an already decoded [`image::DynamicImage`] with the same rules as
/// [`load_rgb`].
pub fn from_dynamic(img: &DynamicImage) -> RgbImageF32 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<f32> = match img {
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().flat_map(|&v| [v as f32; 3]).collect(),
        DynamicImage::ImageLumaA8(b) => b
            .as_raw()
            .chunks_exact(2)
            .flat_map(|p| [p[0] as f32; 3])
            .collect(),
        DynamicImage::ImageRgb8(b) => b.as_raw().iter().map(|&v| v as f32).collect(),
        DynamicImage::ImageRgba8(b) => b
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0] as f32, p[1] as f32, p[2] as f32])
            .collect(),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().flat_map(|&v| [scale16(v); 3]).collect(),
        DynamicImage::ImageLumaA16(b) => b
            .as_raw()
            .chunks_exact(2)
            .flat_map(|p| [scale16(p[0]); 3])
            .collect(),
        DynamicImage::ImageRgb16(b) => b.as_raw().iter().map(|&v| scale16(v)).collect(),
        DynamicImage::ImageRgba16(b) => b
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [scale16(p[0]), scale16(p[1]), scale16(p[2])])
            .collect(),
        DynamicImage::ImageRgb32F(b) => b.as_raw().iter().map(|&v| v * 255.0).collect(),
        DynamicImage::ImageRgba32F(b) => b
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0] * 255.0, p[1] * 255.0, p[2] * 255.0])
            .collect(),
        // `DynamicImage` is non-exhaustive: convert anything new through RGB32F.
        other => other
            .to_rgb32f()
            .as_raw()
            .iter()
            .map(|&v| v * 255.0)
            .collect(),
    };
    RgbImageF32 {
        width: w,
        height: h,
        data,
    }
}

/// Builds an [`RgbImageF32`] from interleaved 8-bit RGB bytes (`w*h*3` of them).
///
/// # Errors
/// [`Error::Shape`] if `rgb.len() != w * h * 3`.
pub fn from_rgb8(w: usize, h: usize, rgb: &[u8]) -> Result<RgbImageF32> {
    RgbImageF32::new(w, h, rgb.iter().map(|&v| v as f32).collect())
}

fn scale16(v: u16) -> f32 {
    (v as f64 * 255.0 / 65535.0) as f32
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        Error::Io {
            path: path.to_path_buf(),
            error: e,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "convscope-image-load-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_file_is_not_found() {
        let p = Path::new("/definitely/not/here.png");
        let e = load_rgb(p).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }));
        assert_eq!(e.to_string(), "/definitely/not/here.png: no such file");
    }

    #[test]
    fn garbage_is_decode_error_one_line() {
        let d = tmpdir("garbage");
        let p = d.join("x.png");
        std::fs::write(&p, b"this is not\nan image at all").unwrap();
        let e = load_rgb(&p).unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'));
        assert!(
            msg.contains("x.png") && msg.contains("not a decodable image"),
            "{msg}"
        );
        // A truncated PNG.
        let mut png = Vec::new();
        let img: ImageBuffer<Rgb<u8>, _> = ImageBuffer::from_pixel(8, 8, Rgb([1, 2, 3]));
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        std::fs::write(&p, &png[..png.len() / 2]).unwrap();
        assert!(load_rgb(&p).is_err());
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn conversions() {
        let d = tmpdir("conv");
        // Grayscale 8-bit, saved as PNG with a misleading extension.
        let g: ImageBuffer<Luma<u8>, _> =
            ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 10 + y) as u8]));
        let p = d.join("gray.jpg");
        g.save_with_format(&p, image::ImageFormat::Png).unwrap();
        let im = load_rgb(&p).unwrap();
        assert_eq!((im.width, im.height), (3, 2));
        assert_eq!(im.pixel(2, 1), [21.0, 21.0, 21.0]);

        // RGBA: alpha dropped.
        let a: ImageBuffer<Rgba<u8>, _> = ImageBuffer::from_pixel(2, 2, Rgba([10, 20, 30, 0]));
        let p = d.join("rgba.png");
        a.save(&p).unwrap();
        assert_eq!(load_rgb(&p).unwrap().pixel(1, 1), [10.0, 20.0, 30.0]);

        // 16-bit gray + alpha.
        let g16: ImageBuffer<LumaA<u16>, _> = ImageBuffer::from_pixel(2, 1, LumaA([65535, 7]));
        let p = d.join("g16.png");
        g16.save(&p).unwrap();
        assert_eq!(load_rgb(&p).unwrap().pixel(0, 0), [255.0, 255.0, 255.0]);

        // 16-bit RGB.
        let c16: ImageBuffer<Rgb<u16>, _> = ImageBuffer::from_pixel(1, 1, Rgb([0, 32768, 65535]));
        let p = d.join("c16.png");
        c16.save(&p).unwrap();
        let px = load_rgb(&p).unwrap().pixel(0, 0);
        assert_eq!(px[0], 0.0);
        assert!((px[1] - 127.50195).abs() < 1e-3, "{px:?}");
        assert_eq!(px[2], 255.0);

        // BMP and TIFF round-trips.
        let rgb: ImageBuffer<Rgb<u8>, _> =
            ImageBuffer::from_fn(4, 3, |x, y| Rgb([x as u8, y as u8, 200]));
        for (name, fmt) in [
            ("a.bmp", image::ImageFormat::Bmp),
            ("a.tiff", image::ImageFormat::Tiff),
        ] {
            let p = d.join(name);
            rgb.save_with_format(&p, fmt).unwrap();
            let im = load_rgb(&p).unwrap();
            assert_eq!(im.pixel(3, 2), [3.0, 2.0, 200.0], "{name}");
        }
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn from_rgb8_checks_length() {
        assert!(from_rgb8(2, 2, &[0; 12]).is_ok());
        assert!(matches!(from_rgb8(2, 2, &[0; 11]), Err(Error::Shape(_))));
    }
}
