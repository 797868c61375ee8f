//! Post-processing of one activation channel for display.

/// Standardises one activation channel to bytes, as in *Deep Learning with
/// Python* (ch. 9, "visualizing intermediate activations"):
///
/// ```text
/// x -= x.mean(); x /= x.std(); x *= 64; x += 128
/// np.clip(x, 0, 255).astype("uint8")   # truncation after clipping
/// ```
///
/// `mean` and the population `std` (ddof = 0) are computed in `f64` over the
/// **finite** values. Deliberate differences from the book, so that the
/// output never contains garbage:
///
/// * a flat channel (std is 0 or not finite, or no finite values at all)
///   maps every value to **0** rather than NaN — blank channels then look
///   blank (darkest colormap entry). The book special-cases all-zero
///   channels the same way (`if channel_image.sum() != 0`);
/// * NaN inputs map to 0; `+inf` to 255 and `-inf` to 0.
///
/// ```
/// use convscope_image::standardize_channel;
/// assert_eq!(standardize_channel(&[1.0, 2.0, 3.0]), vec![49, 128, 206]);
/// assert_eq!(standardize_channel(&[5.0, 5.0]), vec![0, 0]);
/// ```
pub fn standardize_channel(values: &[f32]) -> Vec<u8> {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for &v in values.iter().filter(|v| v.is_finite()) {
        n += 1;
        sum += v as f64;
    }
    if n == 0 {
        return values
            .iter()
            .map(|&v| if v == f32::INFINITY { 255 } else { 0 })
            .collect();
    }
    let mean = sum / n as f64;
    let var = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| {
            let d = v as f64 - mean;
            d * d
        })
        .sum::<f64>()
        / n as f64;
    let std = var.sqrt();
    let flat = !(std.is_finite() && std > 0.0);
    values
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0
            } else if v == f32::INFINITY {
                255
            } else if v == f32::NEG_INFINITY || flat {
                0
            } else {
                let x = (v as f64 - mean) / std * 64.0 + 128.0;
                // Clip then truncate toward zero, like numpy's astype('uint8').
                x.clamp(0.0, 255.0) as u8
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy() {
        // python3 -c "import numpy as np; x=np.array([0.,1,2,3,10,-4,0.5,7.25]);
        //   x-=x.mean(); x/=x.std(); x*=64; x+=128; print(np.clip(x,0,255).astype('uint8').tolist())"
        // -> [89, 105, 120, 136, 245, 26, 97, 202]
        let v = [0.0, 1.0, 2.0, 3.0, 10.0, -4.0, 0.5, 7.25];
        assert_eq!(
            standardize_channel(&v),
            vec![89, 105, 120, 136, 245, 26, 97, 202]
        );
        // Outliers clip: x = [0]*9 + [100]
        // python3 -c "import numpy as np; x=np.array([0.]*9+[100.]); x-=x.mean(); x/=x.std();
        //   x*=64; x+=128; print(np.clip(x,0,255).astype('uint8').tolist())"
        // -> [106, 106, 106, 106, 106, 106, 106, 106, 106, 255]
        let mut v = vec![0.0f32; 9];
        v.push(100.0);
        assert_eq!(
            standardize_channel(&v),
            vec![106, 106, 106, 106, 106, 106, 106, 106, 106, 255]
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(standardize_channel(&[]), Vec::<u8>::new());
        assert_eq!(standardize_channel(&[0.0; 4]), vec![0; 4]);
        assert_eq!(standardize_channel(&[3.5]), vec![0]);
        assert_eq!(standardize_channel(&[f32::NAN, f32::NAN]), vec![0, 0]);
        assert_eq!(
            standardize_channel(&[1.0, f32::NAN, 3.0, f32::INFINITY, f32::NEG_INFINITY]),
            vec![64, 0, 192, 255, 0]
        );
        // Extreme finite values still standardise (stats are f64).
        assert_eq!(standardize_channel(&[f32::MAX, -f32::MAX]), vec![192, 64]);
    }
}
