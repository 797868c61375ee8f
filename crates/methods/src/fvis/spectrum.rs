//! The natural-image magnitude spectrum that MaCo holds fixed while it optimises the phase.
//!
//! convscope measures it itself ([`Spectrum::from_images`]: the mean magnitude of the 2-D FFT
//! of each colour-decorrelated picture, as MaCo's `imagenet_decorrelated.npy` is made) and ships
//! one measured on sample photographs ([`Spectrum::natural`]; how it was made is in
//! docs/design.md, "Feature visualization"). `convscope spectrum --images DIR` makes one from
//! other pictures.

use rustfft::num_complex::Complex32;

use convscope_image::RgbImageF32;

use super::fft::Fft2;
use super::param::COLOR_CORRELATION;
use crate::error::{Error, Result};

/// The shipped spectrum (`3 × 256 × 129` f32 `.npy`, 396,416 bytes).
const NATURAL: &[u8] = include_bytes!("../../assets/natural_spectrum.npy");

/// Side of the square pictures spectra are measured on by default.
pub const SPECTRUM_SIDE: usize = 256;

/// A mean magnitude spectrum of `height × width` pictures (`width` even):
/// `3 × height × (width/2 + 1)`, in the layout of `numpy.fft.rfft2` (rows: frequencies 0, 1,
/// …, −1; columns: 0 ..= width/2), one plane per decorrelated colour.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrum {
    height: usize,
    width: usize,
    data: Vec<f32>,
}

impl Spectrum {
    /// The spectrum shipped with convscope, measured on natural photographs.
    pub fn natural() -> Spectrum {
        Spectrum::from_npy(NATURAL).expect("the shipped spectrum is a valid 3 x H x (W/2+1) array")
    }

    /// Reads a spectrum from `.npy` bytes of shape `3 × H × (W/2 + 1)` (`W` even).
    pub fn from_npy(bytes: &[u8]) -> Result<Spectrum> {
        let (shape, data) = convscope_image::parse_npy_bytes_f32(bytes)?;
        match shape.as_slice() {
            [3, h, wc] if *h >= 2 && *wc >= 2 => {
                if let Some(bad) = data.iter().find(|v| !v.is_finite() || **v < 0.0) {
                    return Err(Error::Config(format!(
                        "a magnitude spectrum holds finite values >= 0, this one holds {bad}"
                    )));
                }
                Ok(Spectrum {
                    height: *h,
                    width: 2 * (wc - 1),
                    data,
                })
            }
            _ => Err(Error::Config(format!(
                "a magnitude spectrum has shape [3, H, W/2+1] (H, W >= 2), this one {shape:?}"
            ))),
        }
    }

    /// The `.npy` bytes of this spectrum.
    pub fn to_npy(&self) -> Vec<u8> {
        convscope_image::npy_bytes_f32(&[3, self.height, self.width / 2 + 1], &self.data)
    }

    /// `(height, width)` of the pictures it was measured on.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The values, `3 × height × (width/2+1)`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The mean magnitude spectrum of `images`. Five squares are read from each picture (the
    /// centred square of its shorter side, and the four corner squares of ¾ of it, so a few
    /// photographs give a smooth mean); each is resized to `side × side` (bilinear,
    /// antialiased), put on the unit scale, its colours decorrelated (the inverse of
    /// [`COLOR_CORRELATION`]), its mean taken away (no DC term: the mean colour is the
    /// sigmoid's centre), and each colour's `|rfft2|` averaged over all squares.
    pub fn from_images(images: &[RgbImageF32], side: usize) -> Result<Spectrum> {
        if images.is_empty() {
            return Err(Error::Config("no images to measure a spectrum on".into()));
        }
        if !(2..=4096).contains(&side) || side % 2 == 1 {
            return Err(Error::Config(format!(
                "spectrum side must be even and 2..=4096, got {side}"
            )));
        }
        let inv = invert3(COLOR_CORRELATION);
        let wc = side / 2 + 1;
        let plan = Fft2::new(side, side);
        let mut sum = vec![0.0f64; 3 * side * wc];
        let mut squares = 0usize;
        for square in images.iter().flat_map(five_squares) {
            squares += 1;
            let small = convscope_image::resize(
                &square,
                side,
                side,
                convscope_image::ResizeFilter::Bilinear,
            );
            let p = side * side;
            let mut planes = vec![0.0f32; 3 * p];
            for j in 0..p {
                let rgb = [0, 1, 2].map(|k| small.data[j * 3 + k] / 255.0);
                for (c, row) in inv.iter().enumerate() {
                    planes[c * p + j] = row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2];
                }
            }
            // Without its mean each plane has no DC term: measured with it, the DC is ~15x
            // the lowest frequency and, after MaCo's standardisation, turns most of a
            // picture's contrast into one colour cast (docs/design.md).
            for plane in planes.chunks_mut(p) {
                let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / p as f64;
                plane.iter_mut().for_each(|v| *v -= mean as f32);
            }
            let mut spec = vec![Complex32::default(); side * wc];
            for c in 0..3 {
                plan.forward(&planes[c * p..(c + 1) * p], &mut spec);
                for (s, v) in sum[c * side * wc..(c + 1) * side * wc]
                    .iter_mut()
                    .zip(&spec)
                {
                    *s += v.norm() as f64;
                }
            }
        }
        if squares == 0 {
            return Err(Error::Config(
                "the pictures to measure a spectrum on are empty".into(),
            ));
        }
        let n = squares as f64;
        Ok(Spectrum {
            height: side,
            width: side,
            data: sum.into_iter().map(|v| (v / n) as f32).collect(),
        })
    }

    /// The magnitude for `h × w` pictures (`3 × h × (w/2+1)`): each entry is read, bilinearly,
    /// at the same frequency in cycles per picture (a frequency index `k` of an `n`-pixel side
    /// reads index `k · side / n`, negative frequencies from the negative half), so a spectrum
    /// measured at one size serves any other.
    pub fn resampled(&self, h: usize, w: usize) -> Vec<f32> {
        let (s, sw) = (self.height, self.width);
        let swc = sw / 2 + 1;
        let wc = w / 2 + 1;
        let signed = |k: usize, n: usize| -> f64 {
            if k < n.div_ceil(2) {
                k as f64
            } else {
                k as f64 - n as f64
            }
        };
        let mut out = Vec::with_capacity(3 * h * wc);
        for c in 0..3 {
            let plane = &self.data[c * s * swc..(c + 1) * s * swc];
            let at =
                |row: isize, col: usize| plane[row.rem_euclid(s as isize) as usize * swc + col];
            for y in 0..h {
                let fy = signed(y, h) * s as f64 / h as f64;
                let y0 = fy.floor();
                let ty = (fy - y0) as f32;
                for x in 0..wc {
                    let fx = (x as f64 * sw as f64 / w as f64).min((swc - 1) as f64);
                    let x0 = fx.floor() as usize;
                    let x1 = (x0 + 1).min(swc - 1);
                    let tx = (fx - x0 as f64) as f32;
                    let r0 = y0 as isize;
                    let top = at(r0, x0) * (1.0 - tx) + at(r0, x1) * tx;
                    let bottom = at(r0 + 1, x0) * (1.0 - tx) + at(r0 + 1, x1) * tx;
                    out.push(top * (1.0 - ty) + bottom * ty);
                }
            }
        }
        out
    }
}

/// The centred square of `img`'s shorter side and the four corner squares of ¾ of it.
fn five_squares(img: &RgbImageF32) -> Vec<RgbImageF32> {
    let side = img.width.min(img.height);
    if side == 0 {
        return Vec::new();
    }
    let corner = (side * 3 / 4).max(1);
    let crop = |left: usize, top: usize, n: usize| {
        let mut data = Vec::with_capacity(n * n * 3);
        for y in top..top + n {
            let s = (y * img.width + left) * 3;
            data.extend_from_slice(&img.data[s..s + n * 3]);
        }
        RgbImageF32 {
            width: n,
            height: n,
            data,
        }
    };
    let (right, bottom) = (img.width - corner, img.height - corner);
    vec![
        crop((img.width - side) / 2, (img.height - side) / 2, side),
        crop(0, 0, corner),
        crop(right, 0, corner),
        crop(0, bottom, corner),
        crop(right, bottom, corner),
    ]
}

/// The inverse of a 3×3 matrix (the colour matrix is well conditioned).
fn invert3(m: [[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let m = m.map(|r| r.map(|v| v as f64));
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    adj.map(|r| r.map(|v| (v / det) as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_colour_matrix() {
        let inv = invert3(COLOR_CORRELATION);
        for (i, row) in COLOR_CORRELATION.iter().enumerate() {
            for j in 0..3 {
                let v: f32 = row.iter().zip(&inv).map(|(a, b)| a * b[j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
            }
        }
    }

    /// Resampling to the measured size gives the spectrum back; at half the size, frequency
    /// k reads frequency 2k.
    #[test]
    fn resampling_reads_the_same_frequency() {
        let side = 8;
        let wc = side / 2 + 1;
        let data: Vec<f32> = (0..3 * side * wc).map(|i| i as f32).collect();
        let s = Spectrum {
            height: side,
            width: side,
            data: data.clone(),
        };
        assert_eq!(s.resampled(side, side), data);
        let half = s.resampled(4, 4);
        // row 1 (frequency +1 of 4) reads row 2 of 8; row 3 (frequency −1) reads row 6 (−2).
        assert_eq!(half[3 + 1], data[2 * wc + 2]);
        assert_eq!(half[3 * 3 + 1], data[6 * wc + 2]);
    }

    /// A measured spectrum of natural pictures falls with frequency (roughly 1/f).
    #[test]
    fn shipped_spectrum_falls_with_frequency() {
        let s = Spectrum::natural();
        let (h, w) = s.size();
        let wc = w / 2 + 1;
        let low = s.data()[wc + 1];
        let high = s.data()[(h / 4) * wc + w / 4];
        assert!(low > 10.0 * high, "{low} vs {high}");
    }

    /// A measured spectrum has no DC term, and stripes show at their frequency.
    #[test]
    fn measured_spectrum_has_no_dc_and_finds_stripes() {
        let (w, h) = (64, 48);
        // Vertical stripes: 12 cycles across the 48-pixel centred square.
        let data: Vec<f32> = (0..w * h * 3)
            .map(|i| {
                let x = (i / 3) % w;
                128.0 + 100.0 * (2.0 * std::f32::consts::PI * 12.0 * x as f32 / 48.0).sin()
            })
            .collect();
        let img = RgbImageF32 {
            width: w,
            height: h,
            data,
        };
        let s = Spectrum::from_images(&[img], 48).unwrap();
        let wc = 25;
        let plane = &s.data()[..48 * wc];
        let peak = plane.iter().copied().fold(0.0f32, f32::max);
        assert!(plane[0] < 1e-3 * peak, "DC {} vs peak {peak}", plane[0]);
        // Row 0 (no vertical frequency): the centred square's 12 cycles and the corner
        // squares' 9 are the two largest columns.
        let mut cols: Vec<usize> = (0..wc).collect();
        cols.sort_by(|a, b| plane[*b].total_cmp(&plane[*a]));
        let mut top = [cols[0], cols[1]];
        top.sort();
        assert_eq!(top, [9, 12]);
        let empty = RgbImageF32 {
            width: 0,
            height: 0,
            data: vec![],
        };
        assert!(Spectrum::from_images(&[empty], 8).is_err());
    }

    #[test]
    fn refuses_bad_arrays() {
        let bytes = convscope_image::npy_bytes_f32(&[3, 4, 1], &[1.0; 12]);
        assert!(Spectrum::from_npy(&bytes)
            .unwrap_err()
            .to_string()
            .contains("[3, H, W/2+1]"));
        let bytes = convscope_image::npy_bytes_f32(&[3, 4, 3], &[-1.0; 36]);
        assert!(Spectrum::from_npy(&bytes).is_err());
    }
}
