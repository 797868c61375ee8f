//! Pictures in and out: [`Image`] is what you feed the model, [`Picture`] what convscope draws.

use std::path::{Path, PathBuf};

use convscope_image::{RgbImage, RgbImageF32};

use crate::error::{Error, Result};
use crate::size::Size;

/// An RGB image to feed a model: pixel values `0..=255`, as loaded from a file (PNG, JPEG,
/// WebP, BMP, TIFF; grey, RGBA and 16-bit handled) or built from memory.
///
/// ```
/// use convscope::{Image, Size};
///
/// let red: Vec<u8> = [255, 0, 0].repeat(4 * 3);
/// let img = Image::from_rgb8(Size::new(4, 3), &red)?;
/// assert_eq!(img.size(), Size::new(4, 3));
/// assert_eq!(img.pixels().pixel(0, 0), [255.0, 0.0, 0.0]);
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pixels: RgbImageF32,
    source: Option<PathBuf>,
}

impl Image {
    /// Decodes an image file.
    pub fn open(path: impl AsRef<Path>) -> Result<Image> {
        let path = path.as_ref();
        Ok(Image {
            pixels: convscope_image::load_rgb(path)?,
            source: Some(path.to_path_buf()),
        })
    }

    /// Decodes an image from encoded bytes (PNG, JPEG, ...), e.g. an upload.
    pub fn decode(bytes: &[u8]) -> Result<Image> {
        let dynamic = convscope_image::image::load_from_memory(bytes).map_err(|e| {
            Error::Config(format!(
                "not a readable image: {}",
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
        Ok(Image::from_pixels(convscope_image::from_dynamic(&dynamic)))
    }

    /// An image from interleaved 8-bit RGB bytes (`width × height × 3`); an empty size (a
    /// side of 0) or one beyond [`crate::MAX_SIDE`] is refused.
    pub fn from_rgb8(size: Size, rgb: &[u8]) -> Result<Image> {
        size.check("the image")?;
        Ok(Image::from_pixels(convscope_image::from_rgb8(
            size.width,
            size.height,
            rgb,
        )?))
    }

    /// An image from float pixels (`0..=255`).
    pub fn from_pixels(pixels: RgbImageF32) -> Image {
        Image {
            pixels,
            source: None,
        }
    }

    /// Width and height.
    pub fn size(&self) -> Size {
        Size::new(self.pixels.width, self.pixels.height)
    }

    /// The float pixels (`height × width × 3`, `0..=255`).
    pub fn pixels(&self) -> &RgbImageF32 {
        &self.pixels
    }

    /// The file it was read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The image as an 8-bit picture (rounded and clipped).
    pub fn to_picture(&self) -> Picture {
        Picture(self.pixels.to_rgb8())
    }

    /// The part of the image inside `region` (clipped to the image).
    pub fn crop(&self, region: Region) -> Image {
        let x0 = region.x.min(self.pixels.width);
        let y0 = region.y.min(self.pixels.height);
        let w = region.width.min(self.pixels.width - x0).max(1);
        let h = region.height.min(self.pixels.height - y0).max(1);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..(y0 + h).min(self.pixels.height) {
            let row = (y * self.pixels.width + x0) * 3;
            data.extend_from_slice(&self.pixels.data[row..row + w * 3]);
        }
        let h = data.len() / (w * 3);
        Image {
            pixels: RgbImageF32::new(w, h, data).expect("rows of w pixels"),
            source: self.source.clone(),
        }
    }
}

/// A rectangle of pixels: top-left corner and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Region {
    /// Left column.
    pub x: usize,
    /// Top row.
    pub y: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// A finished 8-bit RGB picture: a grid, a heatmap, an overlay.
///
/// ```
/// use convscope::{Picture, Size};
///
/// let p = Picture::filled(Size::new(3, 2), [0, 128, 255]);
/// let png = p.png_bytes()?;
/// assert_eq!(&png[1..4], b"PNG");
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Picture(RgbImage);

impl Picture {
    /// Wraps an `image` crate picture.
    pub fn new(rgb: RgbImage) -> Picture {
        Picture(rgb)
    }

    /// A picture of one colour.
    pub fn filled(size: Size, rgb: [u8; 3]) -> Picture {
        Picture(RgbImage::from_pixel(
            size.width as u32,
            size.height as u32,
            convscope_image::image::Rgb(rgb),
        ))
    }

    /// Width and height.
    pub fn size(&self) -> Size {
        Size::new(self.0.width() as usize, self.0.height() as usize)
    }

    /// The pixels.
    pub fn rgb(&self) -> &RgbImage {
        &self.0
    }

    /// The pixels, by value.
    pub fn into_rgb(self) -> RgbImage {
        self.0
    }

    /// PNG-encoded bytes.
    pub fn png_bytes(&self) -> Result<Vec<u8>> {
        Ok(convscope_image::png_bytes(&self.0)?)
    }

    /// PNG-encoded bytes with the fastest compression (larger, several times faster to make):
    /// for pictures sent right away, e.g. by a viewer.
    ///
    /// ```
    /// use convscope::{Picture, Size};
    ///
    /// let p = Picture::filled(Size::new(64, 64), [0, 128, 255]);
    /// assert_eq!(&p.png_bytes_fast()?[1..4], b"PNG");
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn png_bytes_fast(&self) -> Result<Vec<u8>> {
        Ok(convscope_image::png_bytes_fast(&self.0)?)
    }

    /// PNG-encoded bytes without compression, made at memory speed: for a picture at its
    /// data's own resolution that a browser nearby enlarges (the viewer's grids), where
    /// compression would save little.
    ///
    /// ```
    /// use convscope::{Picture, Size};
    ///
    /// let p = Picture::filled(Size::new(64, 64), [0, 128, 255]);
    /// let png = p.png_bytes_stored()?;
    /// assert!(png.len() > 64 * 64 * 3);
    /// assert_eq!(&png[1..4], b"PNG");
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn png_bytes_stored(&self) -> Result<Vec<u8>> {
        Ok(convscope_image::png_bytes_stored(&self.0)?)
    }

    /// Writes a PNG file atomically (a temporary file renamed into place).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        convscope_image::write_atomic(path, &self.png_bytes()?)?;
        Ok(())
    }
}

impl From<RgbImage> for Picture {
    fn from(rgb: RgbImage) -> Self {
        Picture(rgb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_clip_to_the_image() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|v| v as u8).collect();
        let img = Image::from_rgb8(Size::new(4, 3), &rgb).unwrap();
        let c = img.crop(Region {
            x: 1,
            y: 1,
            width: 2,
            height: 5,
        });
        assert_eq!(c.size(), Size::new(2, 2));
        assert_eq!(c.pixels().pixel(0, 0), img.pixels().pixel(1, 1));
        assert_eq!(c.pixels().pixel(1, 1), img.pixels().pixel(2, 2));
    }

    #[test]
    fn empty_images_are_refused() {
        // A 0x0 image used to be accepted and resized into a picture of nothing.
        let e = Image::from_rgb8(Size::new(0, 0), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty"), "{e}");
        assert!(Image::from_rgb8(Size::new(5, 0), &[]).is_err());
    }

    #[test]
    fn decode_refuses_non_images_in_one_line() {
        let e = Image::decode(b"not an image").unwrap_err().to_string();
        assert!(
            e.starts_with("not a readable image") && !e.contains('\n'),
            "{e}"
        );
        let png = Picture::filled(Size::new(2, 2), [9, 8, 7])
            .png_bytes()
            .unwrap();
        let back = Image::decode(&png).unwrap();
        assert_eq!(back.pixels().pixel(1, 1), [9.0, 8.0, 7.0]);
    }
}
