//! Turning an RGB image into a CHW model input, and back.
//!
//! Every [`Normalize`] mode is a per-channel affine map from a pixel value in
//! `0..=255` to a model value, optionally preceded by an RGB→BGR channel swap.
//! [`normalize_scale`] exposes that map so that a caller optimising *pixels*
//! (filter visualisation by gradient ascent: the optimised pixel image passes
//! through [`normalize`] before reaching the model) can chain the gradient:
//! `d loss / d pixel[src(c)] = mul[c] * d loss / d input[c]`.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Planar, Result, RgbImageF32};

/// How pixel values (`0..=255`, RGB) are mapped to model input values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Normalize {
    /// `x / 255` → `0..=1`.
    Unit,
    /// `(x / 255 - mean) / std` with the ImageNet statistics
    /// mean `[0.485, 0.456, 0.406]`, std `[0.229, 0.224, 0.225]` (torchvision).
    #[default]
    Imagenet,
    /// Caffe / Keras `preprocess_input(mode="caffe")`: RGB→BGR, then subtract
    /// `[103.939, 116.779, 123.68]` (B, G, R means) from the `0..=255` values.
    Caffe,
    /// Keras `mode="tf"`: `x / 127.5 - 1` → `-1..=1`.
    Tf,
    /// Values unchanged, `0..=255`.
    Raw,
    /// `(x / 255 - mean) / std` with caller-supplied RGB statistics.
    Custom {
        /// Per-channel (R, G, B) mean of `0..1` values.
        mean: [f32; 3],
        /// Per-channel (R, G, B) standard deviation of `0..1` values.
        std: [f32; 3],
    },
}

/// ImageNet mean (RGB, `0..1` scale).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation (RGB, `0..1` scale).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Caffe means, in **BGR** order, on the `0..255` scale.
pub const CAFFE_MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];

impl Normalize {
    const VALID: &'static str = "unit, imagenet, caffe, tf, raw";

    /// Checks that the mode is a usable map: for [`Normalize::Custom`], every `mean` must be
    /// finite and every `std` finite and positive (a zero std divides by zero, a NaN one makes
    /// every input NaN). The built-in modes always pass.
    ///
    /// ```
    /// use convscope_image::Normalize;
    /// let bad = Normalize::Custom { mean: [0.5; 3], std: [0.2, 0.0, 0.2] };
    /// let msg = bad.validate().unwrap_err().to_string();
    /// assert!(msg.contains("std must be a finite number > 0 for every channel, got 0 for channel 1"));
    /// assert!(Normalize::Imagenet.validate().is_ok());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field (`mean` or `std`), the value and the channel.
    pub fn validate(&self) -> Result<()> {
        let Normalize::Custom { mean, std } = self else {
            return Ok(());
        };
        if let Some((c, m)) = mean.iter().enumerate().find(|(_, m)| !m.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "mean must be a finite number for every channel, got {m} for channel {c}"
            )));
        }
        if let Some((c, s)) = std
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(Error::InvalidArgument(format!(
                "std must be a finite number > 0 for every channel, got {s} for channel {c}"
            )));
        }
        Ok(())
    }

    /// The name accepted by [`FromStr`] (`"custom"` for [`Normalize::Custom`]).
    pub fn name(&self) -> &'static str {
        match self {
            Normalize::Unit => "unit",
            Normalize::Imagenet => "imagenet",
            Normalize::Caffe => "caffe",
            Normalize::Tf => "tf",
            Normalize::Raw => "raw",
            Normalize::Custom { .. } => "custom",
        }
    }
}

impl fmt::Display for Normalize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Normalize::Custom { mean, std } => write!(f, "custom(mean={mean:?}, std={std:?})"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Normalize {
    type Err = Error;

    /// Parses `unit`, `imagenet`, `caffe`, `tf` or `raw` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unit" => Ok(Normalize::Unit),
            "imagenet" | "torch" => Ok(Normalize::Imagenet),
            "caffe" => Ok(Normalize::Caffe),
            "tf" => Ok(Normalize::Tf),
            "raw" => Ok(Normalize::Raw),
            _ => Err(Error::UnknownName {
                kind: "normalization",
                value: s.to_string(),
                valid: Self::VALID,
            }),
        }
    }
}

/// The affine map of a [`Normalize`] mode: `(mul, add, bgr)`.
///
/// For output channel `c` of the model input,
/// `input[c] = pixel[src(c)] * mul[c] + add[c]`, where `pixel` is the RGB
/// value in `0..=255` and `src(c) = 2 - c` if `bgr` (channels reversed, Caffe)
/// else `c`. `mul` and `add` are indexed by **output** channel.
///
/// ```
/// use convscope_image::{normalize_scale, Normalize};
/// let (mul, add, bgr) = normalize_scale(&Normalize::Tf);
/// assert_eq!((mul, add, bgr), ([1.0 / 127.5; 3], [-1.0; 3], false));
/// ```
pub fn normalize_scale(n: &Normalize) -> ([f32; 3], [f32; 3], bool) {
    let from_stats = |mean: [f32; 3], std: [f32; 3]| {
        let mut mul = [0.0; 3];
        let mut add = [0.0; 3];
        for c in 0..3 {
            // Computed in f64 and rounded once.
            mul[c] = (1.0 / (255.0 * std[c] as f64)) as f32;
            add[c] = (-(mean[c] as f64) / std[c] as f64) as f32;
        }
        (mul, add, false)
    };
    match n {
        Normalize::Unit => ([1.0 / 255.0; 3], [0.0; 3], false),
        Normalize::Imagenet => from_stats(IMAGENET_MEAN, IMAGENET_STD),
        Normalize::Caffe => ([1.0; 3], CAFFE_MEAN_BGR.map(|m| -m), true),
        Normalize::Tf => ([1.0 / 127.5; 3], [-1.0; 3], false),
        Normalize::Raw => ([1.0; 3], [0.0; 3], false),
        Normalize::Custom { mean, std } => from_stats(*mean, *std),
    }
}

/// Converts an HWC `0..=255` image into a `3×H×W` model input.
///
/// Applies the map documented at [`normalize_scale`].
///
/// # Panics
/// If `img.data.len() != img.width * img.height * 3`.
pub fn normalize(img: &RgbImageF32, n: &Normalize) -> Planar {
    assert_eq!(
        img.data.len(),
        img.width * img.height * 3,
        "inconsistent RgbImageF32"
    );
    let (mul, add, bgr) = normalize_scale(n);
    let plane = img.width * img.height;
    let mut data = vec![0.0f32; plane * 3];
    for c in 0..3 {
        let src = if bgr { 2 - c } else { c };
        let out = &mut data[c * plane..(c + 1) * plane];
        for (i, o) in out.iter_mut().enumerate() {
            *o = img.data[i * 3 + src] * mul[c] + add[c];
        }
    }
    Planar {
        channels: 3,
        height: img.height,
        width: img.width,
        data,
    }
}

/// Inverts [`normalize`]: a `3×H×W` model input back to an HWC RGB image in
/// pixel units, for saving a preprocessed input as `input.png`.
///
/// Values are **not** clamped (use [`RgbImageF32::to_rgb8`], which clamps).
///
/// # Errors
/// [`Error::Shape`] unless `p` has exactly 3 channels and consistent data.
pub fn denormalize(p: &Planar, n: &Normalize) -> Result<RgbImageF32> {
    p.check()?;
    if p.channels != 3 {
        return Err(Error::Shape(format!(
            "denormalize needs 3 channels, got {}",
            p.channels
        )));
    }
    let (mul, add, bgr) = normalize_scale(n);
    let plane = p.plane_len();
    let mut data = vec![0.0f32; plane * 3];
    for c in 0..3 {
        let dst = if bgr { 2 - c } else { c };
        for (i, &v) in p.channel(c).iter().enumerate() {
            data[i * 3 + dst] = (v - add[c]) / mul[c];
        }
    }
    Ok(RgbImageF32 {
        width: p.width,
        height: p.height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> RgbImageF32 {
        RgbImageF32 {
            width: 2,
            height: 1,
            data: vec![0.0, 127.5, 255.0, 10.0, 20.0, 30.0],
        }
    }

    #[test]
    fn parse() {
        for s in ["unit", "imagenet", "caffe", "tf", "raw"] {
            assert_eq!(s.parse::<Normalize>().unwrap().name(), s);
        }
        let e = "zscore".parse::<Normalize>().unwrap_err().to_string();
        assert!(e.contains("unit, imagenet, caffe, tf, raw"), "{e}");
    }

    #[test]
    fn modes() {
        let p = normalize(&img(), &Normalize::Unit);
        assert_eq!((p.channels, p.height, p.width), (3, 1, 2));
        let expect = [0.0, 10.0 / 255.0, 0.5, 20.0 / 255.0, 1.0, 30.0 / 255.0];
        for (a, b) in p.data.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{:?}", p.data);
        }

        let p = normalize(&img(), &Normalize::Tf);
        assert_eq!(p.data[0], -1.0);
        assert_eq!(p.data[4], 1.0);

        let p = normalize(&img(), &Normalize::Caffe);
        // Channel 0 is blue: pixel 0 has B=255, pixel 1 has B=30.
        assert!((p.data[0] - (255.0 - 103.939)).abs() < 1e-4);
        assert!((p.data[1] - (30.0 - 103.939)).abs() < 1e-4);
        assert!((p.data[4] - (0.0 - 123.68)).abs() < 1e-4);

        let p = normalize(&img(), &Normalize::Imagenet);
        let expect = ((127.5f64 / 255.0 - 0.456) / 0.224) as f32;
        assert!(
            (p.data[2] - expect).abs() < 1e-6,
            "{} vs {expect}",
            p.data[2]
        );

        let custom = Normalize::Custom {
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        };
        assert_eq!(normalize(&img(), &custom), p);
    }

    #[test]
    fn custom_statistics_must_be_usable() {
        let custom = |mean: [f32; 3], std: [f32; 3]| Normalize::Custom { mean, std };
        for (n, words) in [
            (
                custom([0.5; 3], [0.2, 0.0, 0.2]),
                "std must be a finite number > 0 for every channel, got 0 for channel 1",
            ),
            (
                custom([0.5; 3], [f32::NAN, 0.2, 0.2]),
                "got NaN for channel 0",
            ),
            (custom([0.5; 3], [0.2, 0.2, -0.1]), "got -0.1 for channel 2"),
            (
                custom([0.5; 3], [0.2, f32::INFINITY, 0.2]),
                "got inf for channel 1",
            ),
            (
                custom([0.5, f32::NAN, 0.5], [0.2; 3]),
                "mean must be a finite number for every channel, got NaN for channel 1",
            ),
            (
                custom([f32::NEG_INFINITY, 0.5, 0.5], [0.2; 3]),
                "got -inf for channel 0",
            ),
        ] {
            let msg = n.validate().unwrap_err().to_string();
            assert!(msg.contains(words), "{msg}");
        }
        for ok in [
            Normalize::Unit,
            Normalize::Imagenet,
            Normalize::Caffe,
            Normalize::Tf,
            Normalize::Raw,
            custom([0.0, -1.0, 2.0], [1e-6, 1.0, 1e6]),
        ] {
            assert!(ok.validate().is_ok(), "{ok}");
        }
    }

    #[test]
    fn round_trip() {
        let modes = [
            Normalize::Unit,
            Normalize::Imagenet,
            Normalize::Caffe,
            Normalize::Tf,
            Normalize::Raw,
            Normalize::Custom {
                mean: [0.5; 3],
                std: [0.25, 0.5, 1.0],
            },
        ];
        for n in modes {
            let back = denormalize(&normalize(&img(), &n), &n).unwrap();
            for (a, b) in back.data.iter().zip(&img().data) {
                assert!((a - b).abs() < 1e-3, "{n}: {a} vs {b}");
            }
        }
        let bad = Planar::zeros(1, 2, 2);
        assert!(denormalize(&bad, &Normalize::Unit).is_err());
    }
}
