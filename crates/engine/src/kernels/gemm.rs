//! Matrix products: a safe wrapper over the `gemm` crate that splits large products into
//! single-threaded blocks handed out as tasks of the pass, and the dot product of a classifier
//! head at batch 1.

use gemm::Parallelism;

use crate::kernels::simd::{Path, Simd};
use crate::runtime::cpu::Isa;
use crate::runtime::pool::{for_each_task, SharedOut};

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
    // tasks of the pass ([`for_each_task`]). Each block needs the whole of `a`
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
        for_each_task(blocks, |block| {
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

/// `Σ a[i]·b[i]` in 64 partial sums (four 16-lane accumulators on AVX-512, eight 8-lane on AVX2), for the matrix-vector
/// products of a classifier's last layer at batch 1.
pub(crate) fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of unequal lengths");
    #[cfg(target_arch = "x86_64")]
    if isa.avx512f() {
        // SAFETY: `isa` says the CPU has AVX-512F.
        return unsafe { dot_avx512(a, b) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa.avx2_fma() {
        // SAFETY: `isa` says the CPU has AVX2 and FMA.
        return unsafe { dot_avx2(a, b) };
    }
    let _ = isa;
    dot_generic(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

/// How far ahead [`dot`] prefetches its second operand, in floats (4 KB).
#[cfg(target_arch = "x86_64")]
const PREFETCH_AHEAD: usize = 1024;

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
        // The rows of a classifier's weights come from memory (EfficientNet-Lite0's are 5 MB,
        // read once a pass), and the hardware prefetchers stop at every 4 KB page: ask for
        // the lines a page ahead.
        #[cfg(target_arch = "x86_64")]
        for line in (0..64).step_by(16) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch only hints; it may name any address.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(y.as_ptr().wrapping_add(PREFETCH_AHEAD + line).cast())
            };
        }
        for l in 0..64 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Four dot products of `a` with the consecutive rows `b[r·k..(r+1)·k]`, `r < 4`, into
/// `out`: the matrix-vector product of a classifier head at batch 1 four rows at a time, so
/// that four streams of weights are in flight. Each row's sum runs in 16 partial sums (lane `l`
/// takes the indices `≡ l mod 16`), the same on every vector path.
pub(crate) fn dot4(isa: Isa, a: &[f32], b: &[f32], out: &mut [f32; 4]) {
    let k = a.len();
    assert_eq!(b.len(), 4 * k, "dot4 needs four rows of a's length");
    let path = Path::of(isa);
    if !path.vector() {
        for (r, o) in out.iter_mut().enumerate() {
            *o = dot_generic(a, &b[r * k..(r + 1) * k]);
        }
        return;
    }
    // SAFETY: a vector path of this CPU; `b` holds four rows of `k`.
    unsafe { dot4_on(path, a, b, out) }
}

crate::kernels::simd::multiversion! {
    /// The vector body of [`dot4`].
    unsafe fn dot4_on(a: &[f32], b: &[f32], out: &mut [f32; 4]) => dot4_generic
}

/// Values per partial-sum block of [`dot4`].
const DOT4_BLOCK: usize = 16;

#[inline(always)]
unsafe fn dot4_generic<S: Simd>(a: &[f32], b: &[f32], out: &mut [f32; 4]) {
    let k = a.len();
    let per = DOT4_BLOCK / S::LANES;
    let whole = k / DOT4_BLOCK * DOT4_BLOCK;
    // SAFETY: `S`'s extensions (the dispatcher's contract); every load is below `whole` in a
    // row of `k` (the caller checked `b`'s length); prefetches may name any address.
    unsafe {
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [[S::zero(); 4]; 4];
        let mut t = 0;
        while t < whole {
            for v in 0..per {
                let x = S::load(pa.add(t + v * S::LANES));
                for (r, row) in acc.iter_mut().enumerate() {
                    let y = pb.add(r * k + t + v * S::LANES);
                    row[v] = S::fmadd(x, S::load(y), row[v]);
                }
            }
            for r in 0..4 {
                // The next group of four rows, at this row's place: one line per 16 values.
                S::prefetch(pb.wrapping_add(r * k + t + 4 * k));
            }
            t += DOT4_BLOCK;
        }
        for (r, o) in out.iter_mut().enumerate() {
            let mut lanes = [0.0f32; DOT4_BLOCK];
            for (v, &sum) in acc[r].iter().enumerate().take(per) {
                S::store(lanes.as_mut_ptr().add(v * S::LANES), sum);
            }
            let tail: f32 = a[whole..]
                .iter()
                .zip(&b[r * k + whole..(r + 1) * k])
                .map(|(x, y)| x * y)
                .sum();
            *o = lanes.iter().sum::<f32>() + tail;
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

    #[test]
    fn dot4_matches_f64_on_every_path_and_tail_length() {
        for k in [0usize, 1, 15, 16, 17, 33, 1280, 1283] {
            let a: Vec<f32> = (0..k)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..4 * k)
                .map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0)
                .collect();
            for isa in crate::kernels::simd::test_isas() {
                let mut got = [f32::NAN; 4];
                dot4(isa, &a, &b, &mut got);
                for (r, &g) in got.iter().enumerate() {
                    let want: f64 = a
                        .iter()
                        .zip(&b[r * k..(r + 1) * k])
                        .map(|(&x, &y)| x as f64 * y as f64)
                        .sum();
                    assert!(
                        (g as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{isa:?} k {k} row {r}: {g} vs {want}"
                    );
                }
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
            for isa in crate::kernels::simd::test_isas() {
                let got = dot(isa, &a, &b) as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{isa:?} len {len}: {got} vs {want}"
                );
            }
        }
    }
}
