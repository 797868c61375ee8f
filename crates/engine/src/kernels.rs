//! Low-level numeric kernels shared by the ops: a safe matrix-multiply wrapper over the `gemm`
//! crate, and the im2col / col2im loops of convolution.

use gemm::Parallelism;

pub(crate) use crate::runtime::pool::SharedOut;

/// A strided 2-D view: element `(r, c)` is at `offset + r*rs + c*cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    /// A row-major matrix.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            rs: cols as isize,
            cs: 1,
        }
    }
    /// The same storage read as its transpose.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
    /// Highest element index touched, plus one.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        ((self.rows - 1) as isize * self.rs + (self.cols - 1) as isize * self.cs) as usize + 1
    }
}

/// `c = a·b` (or `c += a·b` with `accumulate`), all views checked against their slices.
///
/// `threads == 1` runs on the calling thread; anything else lets `gemm` use the rayon pool.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    a: &[f32],
    am: Mat,
    b: &[f32],
    bm: Mat,
    c: &mut [f32],
    cm: Mat,
    accumulate: bool,
    threads: usize,
) {
    assert_eq!(am.cols, bm.rows, "inner dimensions");
    assert_eq!(am.rows, cm.rows, "rows");
    assert_eq!(bm.cols, cm.cols, "cols");
    assert!(am.rs >= 0 && am.cs >= 0 && bm.rs >= 0 && bm.cs >= 0 && cm.rs >= 0 && cm.cs >= 0);
    assert!(am.extent() <= a.len() && bm.extent() <= b.len() && cm.extent() <= c.len());
    if cm.rows == 0 || cm.cols == 0 {
        return;
    }
    if am.cols == 0 {
        if !accumulate {
            for r in 0..cm.rows {
                for col in 0..cm.cols {
                    c[(r as isize * cm.rs + col as isize * cm.cs) as usize] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: `c` is exclusively borrowed and `cm` was checked to stay inside it above.
    unsafe { matmul_raw(a, am, b, bm, c.as_mut_ptr(), cm, accumulate, threads) }
}

/// `(begin, end)` padding of ONNX's `SAME_UPPER` (`upper`) or `SAME_LOWER` along one axis: the
/// output has `ceil(input / stride)` positions and the odd pixel goes at the end (upper) or the
/// beginning (lower). Shared by convolution and pooling.
pub(crate) fn same_pads(input: usize, stride: usize, span: usize, upper: bool) -> (usize, usize) {
    let out = input.div_ceil(stride).max(1);
    let total = ((out - 1) * stride + span).saturating_sub(input);
    if upper {
        (total / 2, total - total / 2)
    } else {
        (total - total / 2, total / 2)
    }
}

/// Convolution geometry along one spatial axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Axis {
    pub input: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_begin: usize,
}

impl Axis {
    /// Input coordinate read by output `o` at kernel tap `k`, if inside the input.
    #[inline]
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        let i = (o * self.stride + k * self.dilation) as isize - self.pad_begin as isize;
        (i >= 0 && (i as usize) < self.input).then_some(i as usize)
    }
}

/// Range `lo..hi` of outputs `o` whose tap `k` reads inside the input along `a`.
#[inline]
pub(crate) fn valid_outputs(a: &Axis, k: usize) -> (usize, usize) {
    let off = (k * a.dilation) as isize - a.pad_begin as isize;
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(a.stride)
    };
    let last = a.input as isize - 1 - off;
    if last < 0 {
        return (0, 0);
    }
    let hi = ((last as usize) / a.stride + 1).min(a.output);
    (lo.min(hi), hi)
}

/// Fills `col` (rows `c·kh·kw`, `cols` columns starting at output position `p0`) from one image
/// `x` of `channels × h.input × w.input`.
///
/// Each row is built from runs of one output row: the valid middle is a copy (contiguous for
/// stride 1) and the padded ends are zeros, so the loop has no per-element bounds test.
pub(crate) fn im2col_tile(
    x: &[f32],
    channels: usize,
    h: &Axis,
    w: &Axis,
    p0: usize,
    cols: usize,
    col: &mut [f32],
) {
    let kk = h.kernel * w.kernel;
    let ranges: Vec<(usize, usize)> = (0..w.kernel).map(|kj| valid_outputs(w, kj)).collect();
    for c in 0..channels {
        let xc = &x[c * h.input * w.input..(c + 1) * h.input * w.input];
        for ki in 0..h.kernel {
            for (kj, &(lo, hi)) in ranges.iter().enumerate() {
                let row = (c * kk + ki * w.kernel + kj) * cols;
                let dst = &mut col[row..row + cols];
                let (mut oh, mut ow) = (p0 / w.output, p0 % w.output);
                let mut t = 0;
                while t < cols {
                    let run = (w.output - ow).min(cols - t);
                    let out = &mut dst[t..t + run];
                    match h.source(oh, ki) {
                        None => out.fill(0.0),
                        Some(ih) => {
                            // Outputs ow..ow+run of this row; valid ones are lo..hi.
                            let (a, b) = (lo.clamp(ow, ow + run), hi.clamp(ow, ow + run));
                            out[..a - ow].fill(0.0);
                            out[b - ow..].fill(0.0);
                            if a < b {
                                let base = ih * w.input + kj * w.dilation;
                                let first = base + a * w.stride - w.pad_begin;
                                let seg = &mut out[a - ow..b - ow];
                                if w.stride == 1 {
                                    seg.copy_from_slice(&xc[first..first + (b - a)]);
                                } else if w.stride == 2 {
                                    let n = b - a;
                                    copy_stride2(&xc[first..first + 2 * n - 1], seg);
                                } else {
                                    for (u, d) in seg.iter_mut().enumerate() {
                                        *d = xc[first + u * w.stride];
                                    }
                                }
                            }
                        }
                    }
                    t += run;
                    ow = 0;
                    oh += 1;
                }
            }
        }
    }
}

/// Bits of the 16 vector lanes `l` with `lo ≤ base + l < hi`: the mask of a masked load or
/// store of 16 values starting at index `base` that may touch only indices `lo..hi`.
#[inline(always)]
pub(crate) fn lane_mask(lo: isize, hi: isize, base: isize) -> u16 {
    let lo = (lo - base).clamp(0, 16);
    let hi = (hi - base).clamp(0, 16);
    if hi <= lo {
        return 0;
    }
    let bits = |n: isize| if n >= 16 { u32::MAX } else { (1u32 << n) - 1 };
    (bits(hi) & !bits(lo)) as u16
}

/// `dst[u] = src[2u]` for every `u` (`src` holds `2·dst.len() − 1` values or more): the
/// stride-2 rows of [`im2col_tile`], 16 values per permute on AVX-512 (a scalar loop made the
/// im2col of EfficientNet's stride-2 stem slower than its product).
pub(crate) fn copy_stride2(src: &[f32], dst: &mut [f32]) {
    assert!(
        dst.is_empty() || src.len() > 2 * (dst.len() - 1),
        "stride-2 source"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::runtime::cpu::Isa::host().avx512f() {
        // SAFETY: the CPU has AVX-512F (checked just above); sizes asserted above.
        return unsafe { copy_stride2_avx512(src, dst) };
    }
    for (u, d) in dst.iter_mut().enumerate() {
        *d = src[2 * u];
    }
}

/// [`copy_stride2`] on AVX-512: masked loads of the 32 source values under 16 outputs, the even
/// ones kept by one permute, a masked store.
///
/// # Safety
/// AVX-512F; `src.len() ≥ 2·dst.len() − 1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn copy_stride2_avx512(src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let lanes = |n: usize| lane_mask(0, n as isize, 0);
    let (n, len) = (dst.len(), src.len());
    for u in (0..n).step_by(16) {
        let avail = len - 2 * u;
        // SAFETY: lanes past `src`'s end are masked off (not read); the store covers outputs
        // u .. min(u + 16, n) only.
        unsafe {
            let a0 = _mm512_maskz_loadu_ps(lanes(avail), src.as_ptr().add(2 * u));
            let a1 = _mm512_maskz_loadu_ps(
                lanes(avail.saturating_sub(16)),
                src.as_ptr().add(2 * u).wrapping_add(16),
            );
            let v = _mm512_permutex2var_ps(a0, even, a1);
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(u), lanes(n - u), v);
        }
    }
}

/// Adds the columns of `col` (rows `channels·kh·kw`, one column per output position) back into
/// the image gradient `dx` of one channel `c`: the adjoint of [`im2col_tile`].
pub(crate) fn col2im_channel(col: &[f32], c: usize, h: &Axis, w: &Axis, dx: &mut [f32]) {
    let p = h.output * w.output;
    let kk = h.kernel * w.kernel;
    for ki in 0..h.kernel {
        for kj in 0..w.kernel {
            let row = &col[(c * kk + ki * w.kernel + kj) * p..][..p];
            // Outputs lo..hi read inside the input at this tap: no per-element bounds test.
            let (lo, hi) = valid_outputs(w, kj);
            if lo >= hi {
                continue;
            }
            for oh in 0..h.output {
                let Some(ih) = h.source(oh, ki) else { continue };
                let dxrow = &mut dx[ih * w.input..(ih + 1) * w.input];
                let src = &row[oh * w.output + lo..oh * w.output + hi];
                let first = lo * w.stride + kj * w.dilation - w.pad_begin;
                if w.stride == 1 {
                    for (d, &g) in dxrow[first..first + (hi - lo)].iter_mut().zip(src) {
                        *d += g;
                    }
                } else {
                    for (u, &g) in src.iter().enumerate() {
                        dxrow[first + u * w.stride] += g;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![0.0; m * n];
        matmul(
            &a,
            Mat::row_major(m, k),
            &b,
            Mat::row_major(k, n),
            &mut c,
            Mat::row_major(m, n),
            false,
            1,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
                assert!((c[i * n + j] - want).abs() < 1e-5);
            }
        }
        // Transposed read of `a` (stored k×m) gives the same product.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let mut c2 = vec![0.0; m * n];
        matmul(
            &at,
            Mat::row_major(k, m).t(),
            &b,
            Mat::row_major(k, n),
            &mut c2,
            Mat::row_major(m, n),
            false,
            2,
        );
        for (x, y) in c.iter().zip(&c2) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    /// On the pool, products are split into blocks of columns (or, with few columns, of rows),
    /// each a single-threaded product: blocks of transposed views, accumulating, agree with the
    /// naive sum, inside a pass (the team's loops) and outside one (rayon).
    #[test]
    fn blocked_products_match_naive() {
        for (m, k, n) in [(3, 20, 700), (600, 9, 5), (130, 33, 190)] {
            // `a` stored k×m (read transposed), `b` stored n×k (read transposed).
            let a: Vec<f32> = (0..k * m).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
            let start: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32).collect();
            let want: Vec<f32> = (0..m * n)
                .map(|at| {
                    let (i, j) = (at / n, at % n);
                    start[at] + (0..k).map(|t| a[t * m + i] * b[j * k + t]).sum::<f32>()
                })
                .collect();
            let product = || {
                let mut c = start.clone();
                matmul(
                    &a,
                    Mat::row_major(k, m).t(),
                    &b,
                    Mat::row_major(n, k).t(),
                    &mut c,
                    Mat::row_major(m, n),
                    true,
                    0,
                );
                c
            };
            for got in [product(), crate::runtime::pool::on_pool(product)] {
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{m}×{k}×{n}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// `c = a·b` (+ `c` when `accumulate`) into a raw destination, single-threaded or on the pool.
///
/// # Safety
/// `c` must be valid for writes at every `(r, col)` of `cm`, and no other thread may touch those
/// elements during the call. `a` and `b` views must lie inside their slices (checked).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_raw(
    a: &[f32],
    am: Mat,
    b: &[f32],
    bm: Mat,
    c: *mut f32,
    cm: Mat,
    accumulate: bool,
    threads: usize,
) {
    assert_eq!(am.cols, bm.rows, "inner dimensions");
    assert_eq!(am.rows, cm.rows, "rows");
    assert_eq!(bm.cols, cm.cols, "cols");
    assert!(am.extent() <= a.len() && bm.extent() <= b.len());
    if cm.rows == 0 || cm.cols == 0 || am.cols == 0 {
        return;
    }
    // On the pool: blocks of output columns, each a single-threaded product, handed out as
    // tasks of the pass ([`crate::runtime::pool::for_each_task`]). Each block needs the whole of `a`
    // (the weights, or their transpose), which stays in cache; `gemm`'s own threads would go
    // through rayon's join, whose sleeping waits cost 20–70 µs each here (see `pool`).
    let most = 2 * rayon::current_num_threads();
    let (col_blocks, row_blocks) = if threads == 1 {
        (1, 1)
    } else {
        ((cm.cols / 64).clamp(1, most), (cm.rows / 64).clamp(1, most))
    };
    // Few columns (a dense layer at a small batch, transposed): blocks of rows instead.
    let by_rows = row_blocks > col_blocks;
    let (blocks, extent) = if by_rows {
        (row_blocks, cm.rows)
    } else {
        (col_blocks, cm.cols)
    };
    if blocks > 1 {
        let dst = SharedOut(c);
        crate::runtime::pool::for_each_task(blocks, |block| {
            let first = block * extent / blocks;
            let len = (block + 1) * extent / blocks - first;
            // SAFETY: block `block` covers rows (or columns) first .. first + len of `cm`,
            // inside what the caller promised, and no other block does; `a`'s rows (or `b`'s
            // columns) move with it.
            unsafe {
                if by_rows {
                    matmul_raw(
                        &a[first * am.rs as usize..],
                        Mat { rows: len, ..am },
                        b,
                        bm,
                        dst.get().offset(first as isize * cm.rs),
                        Mat { rows: len, ..cm },
                        accumulate,
                        1,
                    )
                } else {
                    matmul_raw(
                        a,
                        am,
                        &b[first * bm.cs as usize..],
                        Mat { cols: len, ..bm },
                        dst.get().offset(first as isize * cm.cs),
                        Mat { cols: len, ..cm },
                        accumulate,
                        1,
                    )
                }
            }
        });
        return;
    }
    gemm::gemm(
        cm.rows,
        cm.cols,
        am.cols,
        c,
        cm.cs,
        cm.rs,
        accumulate,
        a.as_ptr(),
        am.cs,
        am.rs,
        b.as_ptr(),
        bm.cs,
        bm.rs,
        1.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    );
}

/// `Σ a[i]·b[i]` in 64 partial sums (four 16-lane accumulators on AVX-512), for the matrix-vector
/// products of a classifier's last layer at batch 1.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of unequal lengths");
    #[cfg(target_arch = "x86_64")]
    if crate::runtime::cpu::Isa::host().avx512f() {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { dot_avx512(a, b) };
    }
    dot_generic(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 64];
    let (ca, cb) = (a.chunks_exact(64), b.chunks_exact(64));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..64 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod simd_tests {
    use super::{copy_stride2, dot, lane_mask};

    #[test]
    fn lane_masks_cover_exactly_the_range() {
        for base in [0isize, 16, 32] {
            for lo in -3..40isize {
                for hi in -3..40isize {
                    let m = lane_mask(lo, hi, base);
                    for l in 0..16 {
                        let i = base + l;
                        assert_eq!(
                            m >> l & 1 == 1,
                            lo <= i && i < hi,
                            "{lo}..{hi} @ {base}+{l}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn copy_stride2_takes_every_other_value_at_every_length() {
        for n in 0..50 {
            for extra in 0..2 {
                let src: Vec<f32> = (0..(2 * n as usize).saturating_sub(1) + extra)
                    .map(|i| i as f32)
                    .collect();
                let mut dst = vec![f32::NAN; n + 3];
                copy_stride2(&src, &mut dst[..n]);
                for (u, &d) in dst[..n].iter().enumerate() {
                    assert_eq!(d, (2 * u) as f32, "n {n}, value {u}");
                }
                assert!(
                    dst[n..].iter().all(|v| v.is_nan()),
                    "n {n}: wrote past the end"
                );
            }
        }
    }

    #[test]
    fn dot_matches_f64_on_every_tail_length() {
        for len in [0usize, 1, 15, 63, 64, 65, 130, 1280] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let got = dot(&a, &b) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "len {len}: {got} vs {want}"
            );
        }
    }
}

/// Deterministic values in [-1, 1] for unit tests (xorshift), `seed` picking the sequence.
#[cfg(test)]
pub(crate) fn test_values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}
