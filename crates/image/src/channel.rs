//! Post-processing of one activation channel for display.

/// The sum of `f(v)` over `values` in `f64`, accumulated in eight interleaved lanes: the
/// compiler vectorises it, where one running sum waits on each addition (a layer's
/// statistics and its grid's standardisation were both bound by that latency). The order
/// differs from a running sum only in the last bits of the `f64`.
///
/// ```
/// use convscope_image::channel::sum_f64;
/// assert_eq!(sum_f64(&[1.0, 2.0, 3.5], |v| v as f64), 6.5);
/// assert_eq!(sum_f64(&[], |v| v as f64), 0.0);
/// ```
#[inline]
pub fn sum_f64(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    lanes.iter().sum::<f64>() + tail
}

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
    // The common case, every value finite, runs as straight-line loops the compiler
    // vectorises (the checks per value below kept a 240-channel grid's standardisation at
    // a quarter of its drawing time).
    if values.iter().fold(true, |all, v| all & v.is_finite()) {
        let n = values.len();
        if n == 0 {
            return Vec::new();
        }
        let mean = sum_f64(values, |v| v as f64) / n as f64;
        let var = sum_f64(values, |v| {
            let d = v as f64 - mean;
            d * d
        }) / n as f64;
        let std = var.sqrt();
        if !(std.is_finite() && std > 0.0) {
            return vec![0; n];
        }
        return values
            .iter()
            .map(|&v| {
                let x = ((v as f64 - mean) / std * 64.0 + 128.0).clamp(0.0, 255.0);
                // SAFETY: `v`, `mean` and `std` are finite and `std > 0`, so `x` is a
                // number (never NaN) clamped to 0..=255, which fits an `i32`. The checked
                // `as u8` kept this loop scalar: 0.36 ms of a 188k-value grid.
                unsafe { x.to_int_unchecked::<i32>() as u8 }
            })
            .collect();
    }
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

    /// Values of a layer-like spread (mostly small, some zero, a few large), `n` of them.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                if i % 5 == 0 {
                    0.0
                } else {
                    (u - 0.3) * if i % 17 == 0 { 40.0 } else { 3.0 }
                }
            })
            .collect()
    }

    #[test]
    fn lane_sums_equal_a_running_sum() {
        for n in [0, 1, 7, 8, 9, 63, 784, 1001] {
            let v = values(n, n as u64);
            let running: f64 = v.iter().map(|&x| x as f64).sum();
            let squares: f64 = v.iter().map(|&x| (x as f64).powi(2)).sum();
            assert!((sum_f64(&v, |x| x as f64) - running).abs() <= 1e-12 * running.abs().max(1.0));
            assert!((sum_f64(&v, |x| (x as f64).powi(2)) - squares).abs() <= 1e-12 * squares);
        }
    }

    /// The all-finite fast path and the general path (taken when one value is not finite)
    /// give the same bytes for the same finite values.
    #[test]
    fn the_fast_path_agrees_with_the_general_path() {
        for (n, seed) in [(784, 1), (196, 2), (3136, 3), (50, 4)] {
            let v = values(n, seed);
            let fast = standardize_channel(&v);
            let mut with_nan = v.clone();
            with_nan.push(f32::NAN);
            let general = standardize_channel(&with_nan);
            assert_eq!(general[n], 0, "NaN shows as 0");
            assert_eq!(fast[..], general[..n], "n = {n}");
            assert!(fast.iter().any(|&b| b > 200) && fast.iter().any(|&b| b < 60));
        }
    }

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
