//! The two plain-data image/tensor types used throughout the crate.

use crate::{Error, Result};

/// A `C×H×W` tensor of `f32` in planar (channel-major, "CHW") layout.
///
/// Element `(c, y, x)` is at `data[(c * height + y) * width + x]`.
/// Fields are public; functions that consume a `Planar` check that
/// `data.len() == channels * height * width` and return [`Error::Shape`]
/// otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Planar {
    /// Number of channels (`C`).
    pub channels: usize,
    /// Height of every channel plane (`H`).
    pub height: usize,
    /// Width of every channel plane (`W`).
    pub width: usize,
    /// The values, CHW order, length `C*H*W`.
    pub data: Vec<f32>,
}

impl Planar {
    /// Builds a `Planar`, checking that `data` has exactly `C*H*W` values.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self> {
        let p = Planar {
            channels,
            height,
            width,
            data,
        };
        p.check()?;
        Ok(p)
    }

    /// A `Planar` filled with zeros.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Planar {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    /// Number of values in one channel plane (`H*W`).
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// Returns [`Error::Shape`] unless `data.len() == C*H*W` (without overflow).
    pub fn check(&self) -> Result<()> {
        let n = self
            .channels
            .checked_mul(self.height)
            .and_then(|v| v.checked_mul(self.width))
            .ok_or_else(|| Error::Shape("Planar dimensions overflow".into()))?;
        if n != self.data.len() {
            return Err(Error::Shape(format!(
                "Planar {}x{}x{} needs {} values, has {}",
                self.channels,
                self.height,
                self.width,
                n,
                self.data.len()
            )));
        }
        Ok(())
    }

    /// The `H*W` values of channel `c` (row-major).
    ///
    /// # Panics
    /// If `c >= channels` or the data is shorter than the declared shape.
    pub fn channel(&self, c: usize) -> &[f32] {
        assert!(
            c < self.channels,
            "channel {c} out of range ({})",
            self.channels
        );
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }
}

/// An RGB image with `f32` samples in interleaved `H×W×3` ("HWC") layout.
///
/// Loaded images hold values in `0.0..=255.0`; after resampling, values may
/// slightly overshoot that range (bicubic ringing) — [`RgbImageF32::to_rgb8`]
/// rounds and clamps.
/// Pixel `(x, y)` channel `c` is `data[(y * width + x) * 3 + c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImageF32 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Samples, HWC order, length `width * height * 3`.
    pub data: Vec<f32>,
}

impl RgbImageF32 {
    /// Builds an image, checking that `data.len() == width * height * 3`.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        let n = width
            .checked_mul(height)
            .and_then(|v| v.checked_mul(3))
            .ok_or_else(|| Error::Shape("image dimensions overflow".into()))?;
        if n != data.len() {
            return Err(Error::Shape(format!(
                "RGB image {width}x{height} needs {n} values, has {}",
                data.len()
            )));
        }
        Ok(RgbImageF32 {
            width,
            height,
            data,
        })
    }

    /// An all-black image.
    pub fn zeros(width: usize, height: usize) -> Self {
        RgbImageF32 {
            width,
            height,
            data: vec![0.0; width * height * 3],
        }
    }

    /// The three samples of pixel `(x, y)`.
    ///
    /// # Panics
    /// If `(x, y)` is outside the image.
    pub fn pixel(&self, x: usize, y: usize) -> [f32; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x},{y}) out of range"
        );
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Converts an 8-bit [`image::RgbImage`] (values become `0.0..=255.0`).
    pub fn from_rgb_image(img: &image::RgbImage) -> Self {
        RgbImageF32 {
            width: img.width() as usize,
            height: img.height() as usize,
            data: img.as_raw().iter().map(|&v| v as f32).collect(),
        }
    }

    /// Rounds half away from zero and clamps every sample to `0..=255`
    /// (NaN becomes 0), producing an 8-bit [`image::RgbImage`].
    ///
    /// # Panics
    /// If `data.len() != width * height * 3` (a hand-built, inconsistent value).
    pub fn to_rgb8(&self) -> image::RgbImage {
        let raw: Vec<u8> = self.data.iter().map(|&v| f32_to_u8(v)).collect();
        image::RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .expect("RgbImageF32 data length matches its dimensions")
    }
}

/// Round half away from zero, clamp to `0..=255`, NaN → 0.
pub(crate) fn f32_to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        v.round().clamp(0.0, 255.0) as u8
    }
}
