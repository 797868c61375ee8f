//! The numeric building blocks of the trainer: 3×3 patch matrices (im2col) and their adjoint,
//! 2×2 max-pooling, dot products and a strided matrix product.

/// `cols[(ci*9 + ky*3 + kx) * h*w + y*w + x] = input[ci, y + ky - 1, x + kx - 1]` (zero
/// outside the image): the 3×3, padding 1 patch matrix.
pub(crate) fn im2col(input: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
    let hw = h * w;
    for ci in 0..c {
        let plane = &input[ci * hw..(ci + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut cols[((ci * 9) + ky * 3 + kx) * hw..][..hw];
                for y in 0..h {
                    let out = &mut row[y * w..(y + 1) * w];
                    let sy = y as isize + ky as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                    // Output x reads source x + kx - 1.
                    match kx {
                        0 => {
                            out[0] = 0.0;
                            out[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => out.copy_from_slice(src),
                        _ => {
                            out[..w - 1].copy_from_slice(&src[1..]);
                            out[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every patch entry back to the pixel it was read from.
pub(crate) fn col2im(cols: &[f32], c: usize, h: usize, w: usize, out: &mut [f32]) {
    let hw = h * w;
    for ci in 0..c {
        let plane = &mut out[ci * hw..(ci + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &cols[((ci * 9) + ky * 3 + kx) * hw..][..hw];
                for y in 0..h {
                    let sy = y as isize + ky as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    let src = &row[y * w..(y + 1) * w];
                    let dst = &mut plane[sy as usize * w..(sy as usize + 1) * w];
                    match kx {
                        0 => dst[..w - 1]
                            .iter_mut()
                            .zip(&src[1..])
                            .for_each(|(d, s)| *d += s),
                        1 => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
                        _ => dst[1..]
                            .iter_mut()
                            .zip(&src[..w - 1])
                            .for_each(|(d, s)| *d += s),
                    }
                }
            }
        }
    }
}

/// 2×2, stride 2 max-pool (floor mode) of `[c, h, w]`; returns the pooled map, the index of
/// each pooled value's source and the pooled size.
pub(crate) fn maxpool2(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
) -> (Vec<f32>, Vec<u32>, usize, usize) {
    let (ph, pw) = (h / 2, w / 2);
    let mut out = vec![0.0; c * ph * pw];
    let mut idx = vec![0u32; c * ph * pw];
    for (row, (o, ix)) in out
        .chunks_exact_mut(pw.max(1))
        .zip(idx.chunks_exact_mut(pw.max(1)))
        .enumerate()
    {
        let (ci, py) = (row / ph, row % ph);
        let base = ci * h * w + 2 * py * w;
        let (r0, r1) = x[base..base + 2 * w].split_at(w);
        // Branch-free selects (the data is unpredictable); the first maximum in row-major
        // window order wins ties.
        for px in 0..pw {
            let (a, b) = (r0[2 * px], r0[2 * px + 1]);
            let (c, d) = (r1[2 * px], r1[2 * px + 1]);
            let (top, ti) = if b > a { (b, 1) } else { (a, 0) };
            let (bottom, bi) = if d > c { (d, w + 1) } else { (c, w) };
            let (v, i) = if bottom > top {
                (bottom, bi)
            } else {
                (top, ti)
            };
            o[px] = v;
            ix[px] = (base + 2 * px + i) as u32;
        }
    }
    (out, idx, ph, pw)
}

/// Dot product with eight independent accumulators (vectorisable).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A strided matrix view: element `(r, c)` is at `r*rs + c*cs` of its slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat {
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl Mat {
    /// A row-major `rows×cols` matrix.
    pub(crate) fn rm(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The same storage read as its transpose.
    pub(crate) fn t(self) -> Mat {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the highest index touched.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `c += a · b` on the calling thread (batch items are what runs in parallel), with the
/// `gemm` crate's kernels (picked at run time for the CPU: AVX-512, AVX2+FMA, ...).
pub(crate) fn matmul_acc(c: &mut [f32], cm: Mat, a: &[f32], am: Mat, b: &[f32], bm: Mat) {
    assert!(
        am.cols == bm.rows && am.rows == cm.rows && bm.cols == cm.cols,
        "shapes"
    );
    assert!(am.extent() <= a.len() && bm.extent() <= b.len() && cm.extent() <= c.len());
    if cm.rows == 0 || cm.cols == 0 || am.cols == 0 {
        return;
    }
    // SAFETY: every view was checked above to stay inside its slice, and `c` is borrowed
    // mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            cm.rows,
            cm.cols,
            am.cols,
            c.as_mut_ptr(),
            cm.cs as isize,
            cm.rs as isize,
            true,
            a.as_ptr(),
            am.cs as isize,
            am.rs as isize,
            b.as_ptr(),
            bm.cs as isize,
            bm.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The adjoint of [`maxpool2`]: routes each pooled gradient back to the value it came from,
/// in a zeroed map of `len` values.
pub(crate) fn maxpool2_backward(grad: &[f32], idx: &[u32], len: usize) -> Vec<f32> {
    let mut out = vec![0.0; len];
    for (g, &i) in grad.iter().zip(idx) {
        out[i as usize] += g;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use convscope_demo::scene::SplitMix64;

    #[test]
    fn im2col_and_col2im_are_adjoint() {
        let (c, h, w) = (2, 5, 4);
        let mut rng = SplitMix64::new(3);
        let x: Vec<f32> = (0..c * h * w).map(|_| rng.normal()).collect();
        let y: Vec<f32> = (0..c * 9 * h * w).map(|_| rng.normal()).collect();
        let mut cols = vec![0.0; c * 9 * h * w];
        im2col(&x, c, h, w, &mut cols);
        // Centre tap is the image itself; top-left tap of pixel (0, 0) is padding.
        assert_eq!(cols[4 * h * w..5 * h * w], x[..h * w]);
        assert_eq!(cols[0], 0.0);
        assert_eq!(cols[h * w + w + 1], x[1]); // tap (0, 1) of pixel (1, 1) reads (0, 1)
        let mut back = vec![0.0; c * h * w];
        col2im(&y, c, h, w, &mut back);
        let lhs: f32 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0), "{lhs} {rhs}");
    }

    #[test]
    fn maxpool_floors_and_routes_gradients() {
        // 1 channel, 3×5: the last row and column are dropped (floor mode).
        let x = [
            1.0, 5.0, 2.0, 0.0, 9.0, //
            3.0, 4.0, 7.0, 1.0, 9.0, //
            9.0, 9.0, 9.0, 9.0, 9.0,
        ];
        let (p, idx, ph, pw) = maxpool2(&x, 1, 3, 5);
        assert_eq!((ph, pw), (1, 2));
        assert_eq!(p, [5.0, 7.0]);
        assert_eq!(idx, [1, 7]);
        let g = maxpool2_backward(&[1.0, 2.0], &idx, x.len());
        assert_eq!(g.iter().sum::<f32>(), 3.0);
        assert_eq!((g[1], g[7]), (1.0, 2.0));
    }

    #[test]
    fn matrix_products_match_naive_loops() {
        let mut rng = SplitMix64::new(4);
        let (m, k, n) = (7, 5, 600);
        let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
        let mut c = vec![1.0; m * n];
        matmul_acc(&mut c, Mat::rm(m, n), &a, Mat::rm(m, k), &b, Mat::rm(k, n));
        for i in 0..m {
            for j in (0..n).step_by(37) {
                let r: f32 = 1.0 + (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
                assert!((c[i * n + j] - r).abs() < 1e-4);
            }
        }
        // aᵀ · c: (k×m) · (m×n).
        let mut ct = vec![0.0; k * n];
        matmul_acc(
            &mut ct,
            Mat::rm(k, n),
            &a,
            Mat::rm(m, k).t(),
            &c,
            Mat::rm(m, n),
        );
        let r: f32 = (0..m).map(|i| a[i * k + 2] * c[i * n + 9]).sum();
        assert!((ct[2 * n + 9] - r).abs() < 1e-3);
        // c · bᵀ: (m×n) · (n×k).
        let mut d = vec![0.0; m * k];
        matmul_acc(
            &mut d,
            Mat::rm(m, k),
            &c,
            Mat::rm(m, n),
            &b,
            Mat::rm(k, n).t(),
        );
        let r: f32 = (0..n).map(|j| c[3 * n + j] * b[4 * n + j]).sum();
        assert!((d[3 * k + 4] - r).abs() < 1e-2 * r.abs().max(1.0));
        assert!(
            (dot(&b[..n], &b[n..2 * n]) - (0..n).map(|j| b[j] * b[n + j]).sum::<f32>()).abs()
                < 1e-3
        );
    }
}
