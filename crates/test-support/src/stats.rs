//! Small statistics for comparing maps and predictions.

/// Index of the largest value (the first one on ties; NaN never wins). 0 for an empty slice.
///
/// ```
/// assert_eq!(convscope_test_support::argmax(&[0.1, 0.7, 0.7, f32::NAN]), 1);
/// ```
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// Pearson correlation of two equally long series; 0 when either is constant.
///
/// ```
/// use convscope_test_support::pearson;
/// assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.9986).abs() < 1e-3);
/// assert_eq!(pearson(&[1.0, 1.0], &[0.0, 5.0]), 0.0);
/// ```
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "pearson: series of different lengths");
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// [`pearson`] of `f32` series (computed in `f64`).
pub fn pearson_f32(a: &[f32], b: &[f32]) -> f64 {
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    pearson(&wide(a), &wide(b))
}

/// Spearman rank correlation (average ranks for ties; 0 when either side is constant).
///
/// ```
/// use convscope_test_support::spearman;
/// // Monotone but not linear: rank correlation 1.
/// assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]) - 1.0).abs() < 1e-12);
/// ```
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    fn ranks(v: &[f32]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    pearson(&ranks(a), &ranks(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlations_know_their_extremes() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[-1.0, -2.0, -3.0, -4.0]) + 1.0).abs() < 1e-12);
        assert!((pearson_f32(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[3.0, 1.0, 2.0], &[30.0, 10.0, 20.0]) - 1.0).abs() < 1e-12);
        // Ties get the average rank: [1, 1, 2] ranks to [0.5, 0.5, 2].
        assert!(spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]) > 0.8);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[-3.0, -1.0, -2.0]), 1);
    }
}
