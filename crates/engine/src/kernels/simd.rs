//! One vector interface over the instruction sets, so each fast kernel is written once and
//! compiled for every path: AVX-512 (16 lanes), AVX2 + FMA (8 lanes) and NEON (4 lanes).
//!
//! A kernel is a generic `#[inline(always)]` function over [`Simd`]; [`multiversion!`] makes
//! one `#[target_feature]` copy of it per path and a dispatcher that picks the copy for a
//! [`Path`] ([`Path::of`] an [`Isa`], chosen once per run). The trait's methods are
//! `#[inline(always)]` wrappers of `core::arch` intrinsics: inlined into the feature-enabled
//! copy, they become single instructions (a wrapper left out of line would be a call per
//! vector operation). Kernels pick their register blocking from [`Simd::LANES`] and
//! [`Simd::REGISTERS`], the only things that differ between the paths besides the
//! instructions. The data layouts the kernels share (16-channel cells of the depthwise
//! strips, 8-row weight panels, Winograd blocks of 16 tiles) do not depend on the path, so
//! weights packed once serve every path.
//!
//! The portable path runs the kernels' own scalar loops (or the `gemm` crate), not an
//! instantiation of this trait.

use crate::runtime::cpu::Isa;

/// The vector path a run's kernels take, from its [`Isa`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Path {
    /// AVX-512F (with AVX2 and FMA): 16 lanes, 32 registers.
    Avx512,
    /// AVX2 and FMA: 8 lanes, 16 registers.
    Avx2,
    /// aarch64 Advanced SIMD: 4 lanes, 32 registers.
    Neon,
    /// No vector kernel: portable loops.
    Portable,
}

impl Path {
    /// The widest path `isa` allows on this target.
    pub(crate) fn of(isa: Isa) -> Path {
        if cfg!(target_arch = "x86_64") && isa.avx512f() && isa.avx2_fma() {
            Path::Avx512
        } else if cfg!(target_arch = "x86_64") && isa.avx2_fma() {
            Path::Avx2
        } else if cfg!(target_arch = "aarch64") && isa.neon() {
            Path::Neon
        } else {
            Path::Portable
        }
    }

    /// Whether the vector kernels run (any path but [`Path::Portable`]).
    pub(crate) fn vector(self) -> bool {
        self != Path::Portable
    }
}

/// The vector operations the kernels use, on vectors of [`Simd::LANES`] `f32`.
///
/// # Safety
/// Every method is `unsafe`: it may only run on a CPU with the path's extensions (the
/// dispatchers of [`multiversion!`] guarantee it), and the pointer methods read or write
/// `LANES` values (the masked ones only the lanes of their mask).
pub(crate) trait Simd: Copy + 'static {
    /// A vector of `LANES` floats.
    type V: Copy;
    /// Which lanes a masked load or store touches.
    type M: Copy;
    /// Floats per vector.
    const LANES: usize;
    /// Architectural vector registers (the kernels size their accumulator blocks by it).
    const REGISTERS: usize;

    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The lanes `l` with `lo ≤ l < hi`.
    unsafe fn mask(lo: isize, hi: isize) -> Self::M;
    /// The masked lanes from `p` (the others are not read), zero elsewhere.
    unsafe fn load_masked(m: Self::M, p: *const f32) -> Self::V;
    /// Stores the masked lanes of `v` at `p` (the others are not written).
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V);
    /// `a · b + c` (one rounding).
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `max(a, lo)` that returns `lo` where `a` is NaN (as `Clamp::apply`).
    unsafe fn max(a: Self::V, lo: Self::V) -> Self::V;
    /// `min(a, hi)`.
    unsafe fn min(a: Self::V, hi: Self::V) -> Self::V;
    /// `v` where `lo < s < hi` (ordered: NaN fails), 0 elsewhere.
    unsafe fn keep_between(v: Self::V, s: Self::V, lo: Self::V, hi: Self::V) -> Self::V;
    /// A hint to bring the line at `p` into L1 (never faults, any address).
    unsafe fn prefetch(p: *const f32);
    /// A hint to bring the line at `p` into L2 (never faults, any address).
    unsafe fn prefetch_l2(p: *const f32);
    /// Transposes one `LANES × LANES` tile: row `r < read.0` at `src + r·src_stride`, its
    /// first `read.1` values read (the rest of the tile is zero); row `j < write.0` of the
    /// transpose goes to `dst + j·dst_stride`, its first `write.1` values written.
    unsafe fn transpose_tile(
        src: *const f32,
        src_stride: usize,
        read: (usize, usize),
        dst: *mut f32,
        dst_stride: usize,
        write: (usize, usize),
    );
}

/// Defines `$name(path, args…)`, which runs the generic `$generic::<S>(args…)` compiled for
/// the [`Path`]'s instruction set (one `#[target_feature]` copy per path of this target).
///
/// The generic function and everything it calls on `S` must be `#[inline(always)]`, so that
/// the whole kernel is compiled inside the feature-enabled copy.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis unsafe fn $name:ident$(<$lt:lifetime>)?(
        $($arg:ident: $ty:ty),* $(,)?
    ) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name$(<$lt>)?(
            path: $crate::kernels::simd::Path,
            $($arg: $ty),*
        ) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512$(<$lt>)?($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: forwarded from the dispatcher's caller.
                unsafe { $generic::<$crate::kernels::simd::Avx512>($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2$(<$lt>)?($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: forwarded from the dispatcher's caller.
                unsafe { $generic::<$crate::kernels::simd::Avx2>($($arg),*) }
            }
            #[cfg(target_arch = "aarch64")]
            #[target_feature(enable = "neon")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn neon$(<$lt>)?($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: forwarded from the dispatcher's caller.
                unsafe { $generic::<$crate::kernels::simd::Neon>($($arg),*) }
            }
            // SAFETY (every arm): the path came from an `Isa` that claims only what the CPU
            // has, so its copy's extensions are there; the rest is the caller's contract.
            match path {
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::simd::Path::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::simd::Path::Avx2 => unsafe { avx2($($arg),*) },
                #[cfg(target_arch = "aarch64")]
                $crate::kernels::simd::Path::Neon => unsafe { neon($($arg),*) },
                other => unreachable!("no vector kernel for {other:?} on this target"),
            }
        }
    };
}
pub(crate) use multiversion;

/// The peak multiply-add rate of `isa`'s vector path on this machine, in GFLOP/s (one
/// multiply-add = 2 flops), on every thread of the engine's pool at once: twelve independent
/// chains of vector multiply-adds per thread, enough to keep two FMA units busy through their
/// latency, for about `seconds`. What the kernels' speeds are fractions of (docs/benchmarks.md).
/// The portable path has no vector kernel: it reports the same chains in plain arithmetic.
///
/// ```
/// use convscope_engine::{peak_fma_gflops, Isa};
/// assert!(peak_fma_gflops(Isa::host(), 0.01) > 0.0);
/// ```
pub fn peak_fma_gflops(isa: Isa, seconds: f64) -> f64 {
    let threads = rayon::current_num_threads().max(1);
    // Calibrate the iterations on one thread, then time all threads together.
    let mut iters = 1 << 14;
    let lanes = loop {
        let start = std::time::Instant::now();
        let lanes = peak_loop(isa, iters);
        if start.elapsed().as_secs_f64() > seconds / 4.0 || iters > 1 << 34 {
            break lanes;
        }
        iters *= 2;
    };
    let start = std::time::Instant::now();
    crate::runtime::pool::for_each_task(threads, |_| {
        std::hint::black_box(peak_loop(isa, iters));
    });
    let flops = (threads * iters * PEAK_CHAINS * lanes * 2) as f64;
    flops / start.elapsed().as_secs_f64() / 1e9
}

/// Independent multiply-add chains of [`peak_fma_gflops`].
const PEAK_CHAINS: usize = 12;

/// `iters` steps of the chains on `isa`'s path; returns the lanes per vector.
fn peak_loop(isa: Isa, iters: usize) -> usize {
    let path = Path::of(isa);
    if !path.vector() {
        // Plain arithmetic, as the compiler vectorises it for the baseline target (SSE2 on
        // x86-64: a multiply and an add per step, 4 lanes).
        let mut acc = [1.0f32; PEAK_CHAINS];
        let (a, b) = std::hint::black_box((0.999_999f32, 1e-7f32));
        for _ in 0..iters {
            for x in &mut acc {
                *x = *x * a + b;
            }
        }
        std::hint::black_box(acc);
        return 1;
    }
    // SAFETY: a vector path of this CPU.
    unsafe { peak_on(path, iters) }
}

multiversion! {
    /// The vector chains of [`peak_loop`].
    unsafe fn peak_on(iters: usize) -> usize => peak_generic
}

#[inline(always)]
unsafe fn peak_generic<S: Simd>(iters: usize) -> usize {
    // SAFETY: `S`'s extensions (the dispatcher's contract); stores into a local array.
    unsafe {
        let (a, b) = (S::splat(0.999_999), S::splat(1e-7));
        let mut acc = [S::splat(1.0); PEAK_CHAINS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = S::fmadd(*x, a, b);
            }
        }
        let mut out = [0.0f32; 16];
        for x in acc {
            S::store(out.as_mut_ptr(), x);
            std::hint::black_box(&out);
        }
    }
    S::LANES
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "aarch64")]
pub(crate) use arm::Neon;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// The AVX-512F path.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx512;

    /// The AVX2 + FMA path.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx2;

    /// Bits of the lanes `l < 16` with `lo ≤ l < hi`.
    #[inline(always)]
    fn bits16(lo: isize, hi: isize) -> u16 {
        crate::kernels::lane_mask(lo, hi, 0)
    }

    impl Simd for Avx512 {
        type V = __m512;
        type M = __mmask16;
        const LANES: usize = 16;
        const REGISTERS: usize = 32;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn mask(lo: isize, hi: isize) -> __mmask16 {
            bits16(lo, hi)
        }
        #[inline(always)]
        unsafe fn load_masked(m: __mmask16, p: *const f32) -> __m512 {
            unsafe { _mm512_maskz_loadu_ps(m, p) }
        }
        #[inline(always)]
        unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
            unsafe { _mm512_mask_storeu_ps(p, m, v) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: __m512, lo: __m512) -> __m512 {
            // vmaxps returns its second operand when either is NaN.
            unsafe { _mm512_max_ps(a, lo) }
        }
        #[inline(always)]
        unsafe fn min(a: __m512, hi: __m512) -> __m512 {
            unsafe { _mm512_min_ps(a, hi) }
        }
        #[inline(always)]
        unsafe fn keep_between(v: __m512, s: __m512, lo: __m512, hi: __m512) -> __m512 {
            unsafe {
                let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, lo)
                    & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(s, hi);
                _mm512_maskz_mov_ps(keep, v)
            }
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        #[inline(always)]
        unsafe fn prefetch_l2(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
        }
        #[inline(always)]
        unsafe fn transpose_tile(
            src: *const f32,
            src_stride: usize,
            read: (usize, usize),
            dst: *mut f32,
            dst_stride: usize,
            write: (usize, usize),
        ) {
            unsafe {
                let rm = bits16(0, read.1 as isize);
                let mut r: [__m512; 16] = std::array::from_fn(|i| {
                    if i < read.0 {
                        _mm512_maskz_loadu_ps(rm, src.add(i * src_stride))
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                transpose16(&mut r);
                let wm = bits16(0, write.1 as isize);
                // Every row tested against `write.0` in a loop of constant length, so that it
                // unrolls and each store names its register: `take(write.0)` indexed the tile
                // at run time, which sent it through the stack (a store and a reload per row,
                // half of the depthwise strips' transposes back into planes).
                for (j, v) in r.iter().enumerate() {
                    if j < write.0 {
                        _mm512_mask_storeu_ps(dst.add(j * dst_stride), wm, *v);
                    }
                }
            }
        }
    }

    /// Transposes the 16×16 block held in `r` (row i = `r[i]`) in place: 64 shuffles.
    #[inline(always)]
    pub(crate) unsafe fn transpose16(r: &mut [__m512; 16]) {
        unsafe {
            // Stage 1: interleave 32-bit pairs of rows 2i, 2i+1.
            let mut a = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // Stage 2: interleave 64-bit pairs; b[4i + q], 128-bit lane k = column 4k + q of
            // rows 4i .. 4i + 4.
            let mut b = [_mm512_setzero_ps(); 16];
            let lo = |x: __m512, y: __m512| {
                _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)))
            };
            let hi = |x: __m512, y: __m512| {
                _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)))
            };
            for i in 0..4 {
                b[4 * i] = lo(a[4 * i], a[4 * i + 2]);
                b[4 * i + 1] = hi(a[4 * i], a[4 * i + 2]);
                b[4 * i + 2] = lo(a[4 * i + 1], a[4 * i + 3]);
                b[4 * i + 3] = hi(a[4 * i + 1], a[4 * i + 3]);
            }
            // Stages 3 and 4: for each q, a 4×4 transpose of 128-bit lanes across b[q],
            // b[4 + q], b[8 + q], b[12 + q]; its lane-row k is output row 4k + q.
            for q in 0..4 {
                let c0 = _mm512_shuffle_f32x4::<0x88>(b[q], b[4 + q]);
                let c1 = _mm512_shuffle_f32x4::<0xDD>(b[q], b[4 + q]);
                let c2 = _mm512_shuffle_f32x4::<0x88>(b[8 + q], b[12 + q]);
                let c3 = _mm512_shuffle_f32x4::<0xDD>(b[8 + q], b[12 + q]);
                r[q] = _mm512_shuffle_f32x4::<0x88>(c0, c2);
                r[4 + q] = _mm512_shuffle_f32x4::<0x88>(c1, c3);
                r[8 + q] = _mm512_shuffle_f32x4::<0xDD>(c0, c2);
                r[12 + q] = _mm512_shuffle_f32x4::<0xDD>(c1, c3);
            }
        }
    }

    impl Simd for Avx2 {
        type V = __m256;
        type M = __m256i;
        const LANES: usize = 8;
        const REGISTERS: usize = 16;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn mask(lo: isize, hi: isize) -> __m256i {
            unsafe {
                let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let lo = _mm256_set1_epi32(lo.clamp(-1, 9) as i32 - 1);
                let hi = _mm256_set1_epi32(hi.clamp(-1, 9) as i32);
                _mm256_and_si256(_mm256_cmpgt_epi32(iota, lo), _mm256_cmpgt_epi32(hi, iota))
            }
        }
        #[inline(always)]
        unsafe fn load_masked(m: __m256i, p: *const f32) -> __m256 {
            // vmaskmovps does not fault on masked-off lanes.
            unsafe { _mm256_maskload_ps(p, m) }
        }
        #[inline(always)]
        unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
            unsafe { _mm256_maskstore_ps(p, m, v) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: __m256, lo: __m256) -> __m256 {
            // vmaxps returns its second operand when either is NaN.
            unsafe { _mm256_max_ps(a, lo) }
        }
        #[inline(always)]
        unsafe fn min(a: __m256, hi: __m256) -> __m256 {
            unsafe { _mm256_min_ps(a, hi) }
        }
        #[inline(always)]
        unsafe fn keep_between(v: __m256, s: __m256, lo: __m256, hi: __m256) -> __m256 {
            unsafe {
                let keep = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(s, lo),
                    _mm256_cmp_ps::<_CMP_LT_OQ>(s, hi),
                );
                _mm256_and_ps(v, keep)
            }
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        #[inline(always)]
        unsafe fn prefetch_l2(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
        }
        #[inline(always)]
        unsafe fn transpose_tile(
            src: *const f32,
            src_stride: usize,
            read: (usize, usize),
            dst: *mut f32,
            dst_stride: usize,
            write: (usize, usize),
        ) {
            unsafe {
                let full_read = read.1 >= 8;
                let rm = Self::mask(0, read.1 as isize);
                let r: [__m256; 8] = std::array::from_fn(|i| {
                    if i >= read.0 {
                        _mm256_setzero_ps()
                    } else if full_read {
                        _mm256_loadu_ps(src.add(i * src_stride))
                    } else {
                        _mm256_maskload_ps(src.add(i * src_stride), rm)
                    }
                });
                let t = transpose8(r);
                let wm = Self::mask(0, write.1 as isize);
                // Constant indices, as on AVX-512 (the tile stays in registers).
                for (j, v) in t.iter().enumerate() {
                    if j >= write.0 {
                        continue;
                    }
                    if write.1 >= 8 {
                        _mm256_storeu_ps(dst.add(j * dst_stride), *v);
                    } else {
                        _mm256_maskstore_ps(dst.add(j * dst_stride), wm, *v);
                    }
                }
            }
        }
    }

    /// The transpose of the 8×8 block `r` (row i = `r[i]`): 24 shuffles.
    #[inline(always)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ]
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::Simd;

    /// The aarch64 Advanced SIMD path.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Neon;

    impl Simd for Neon {
        type V = float32x4_t;
        /// Lanes `lo..hi` (NEON has no masked loads: the masked methods go lane by lane).
        type M = (u8, u8);
        const LANES: usize = 4;
        const REGISTERS: usize = 32;

        #[inline(always)]
        unsafe fn splat(x: f32) -> float32x4_t {
            unsafe { vdupq_n_f32(x) }
        }
        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn mask(lo: isize, hi: isize) -> (u8, u8) {
            (lo.clamp(0, 4) as u8, hi.clamp(0, 4) as u8)
        }
        #[inline(always)]
        unsafe fn load_masked(m: (u8, u8), p: *const f32) -> float32x4_t {
            let mut v = [0.0f32; 4];
            for (l, x) in v
                .iter_mut()
                .enumerate()
                .take(m.1 as usize)
                .skip(m.0 as usize)
            {
                // SAFETY: a lane of the mask (the caller's contract).
                *x = unsafe { *p.add(l) };
            }
            unsafe { vld1q_f32(v.as_ptr()) }
        }
        #[inline(always)]
        unsafe fn store_masked(p: *mut f32, m: (u8, u8), v: float32x4_t) {
            let mut a = [0.0f32; 4];
            unsafe { vst1q_f32(a.as_mut_ptr(), v) };
            for (l, x) in a.iter().enumerate().take(m.1 as usize).skip(m.0 as usize) {
                // SAFETY: a lane of the mask (the caller's contract).
                unsafe { *p.add(l) = *x };
            }
        }
        #[inline(always)]
        unsafe fn fmadd(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vaddq_f32(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vmulq_f32(a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: float32x4_t, lo: float32x4_t) -> float32x4_t {
            // `lo` where `a` is NaN or below it (fmax would return the number, not `lo`).
            unsafe { vbslq_f32(vcgtq_f32(a, lo), a, lo) }
        }
        #[inline(always)]
        unsafe fn min(a: float32x4_t, hi: float32x4_t) -> float32x4_t {
            unsafe { vbslq_f32(vcltq_f32(a, hi), a, hi) }
        }
        #[inline(always)]
        unsafe fn keep_between(
            v: float32x4_t,
            s: float32x4_t,
            lo: float32x4_t,
            hi: float32x4_t,
        ) -> float32x4_t {
            unsafe {
                let keep = vandq_u32(vcgtq_f32(s, lo), vcltq_f32(s, hi));
                vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), keep))
            }
        }
        #[inline(always)]
        unsafe fn prefetch(_p: *const f32) {}
        #[inline(always)]
        unsafe fn prefetch_l2(_p: *const f32) {}
        #[inline(always)]
        unsafe fn transpose_tile(
            src: *const f32,
            src_stride: usize,
            read: (usize, usize),
            dst: *mut f32,
            dst_stride: usize,
            write: (usize, usize),
        ) {
            unsafe {
                let rm = Self::mask(0, read.1 as isize);
                let r: [float32x4_t; 4] = std::array::from_fn(|i| {
                    if i < read.0 {
                        Self::load_masked(rm, src.add(i * src_stride))
                    } else {
                        Self::zero()
                    }
                });
                // Pairs of rows interleaved, then 64-bit halves swapped across the pairs.
                let a = vtrnq_f32(r[0], r[1]);
                let b = vtrnq_f32(r[2], r[3]);
                let half = |x: float32x4_t| vreinterpretq_f64_f32(x);
                let t = [
                    vreinterpretq_f32_f64(vtrn1q_f64(half(a.0), half(b.0))),
                    vreinterpretq_f32_f64(vtrn1q_f64(half(a.1), half(b.1))),
                    vreinterpretq_f32_f64(vtrn2q_f64(half(a.0), half(b.0))),
                    vreinterpretq_f32_f64(vtrn2q_f64(half(a.1), half(b.1))),
                ];
                let wm = Self::mask(0, write.1 as isize);
                // Constant indices, as on AVX-512 (the tile stays in registers).
                for (j, v) in t.iter().enumerate() {
                    if j < write.0 {
                        Self::store_masked(dst.add(j * dst_stride), wm, *v);
                    }
                }
            }
        }
    }
}

/// Every instruction set whose path this CPU has (whatever `CONVSCOPE_ISA` says), widest
/// first, the portable one last: what the kernels' tests run on.
#[cfg(test)]
pub(crate) fn test_isas() -> Vec<Isa> {
    let cpu = Isa::detected();
    let mut out = vec![cpu];
    if Path::of(cpu.without_avx512()) != Path::of(cpu) {
        out.push(cpu.without_avx512());
    }
    if Path::of(cpu) != Path::Portable {
        out.push(Isa::portable());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Vec<Path> {
        test_isas().into_iter().map(Path::of).collect()
    }

    /// A tile of each partial shape through `transpose_tile`: what is read lands transposed,
    /// the rest of a written row is zero, nothing outside the written block is touched.
    #[inline(always)]
    unsafe fn transposes<S: Simd>() -> Vec<String> {
        let l = S::LANES;
        let src: Vec<f32> = (0..l * (l + 3)).map(|i| i as f32 + 1.0).collect();
        let mut bad = Vec::new();
        for (rows, cols) in [(l, l), (l - 1, 3), (1, l), (3, 1)] {
            for (wr, wc) in [(l, l), (cols, rows), (2, l - 1)] {
                let stride = l + 3;
                let mut dst = vec![f32::NAN; l * (l + 2)];
                // SAFETY: `rows` rows of `cols` values at stride l + 3 are inside `src`; `wr`
                // rows of `wc` ≤ l values at stride l + 2 inside `dst`.
                unsafe {
                    S::transpose_tile(
                        src.as_ptr(),
                        stride,
                        (rows, cols),
                        dst.as_mut_ptr(),
                        l + 2,
                        (wr, wc),
                    )
                };
                for j in 0..l {
                    for i in 0..l + 2 {
                        let got = dst[j * (l + 2) + i];
                        let want = if j >= wr || i >= wc {
                            f32::NAN
                        } else if i < rows && j < cols {
                            src[i * stride + j]
                        } else {
                            0.0
                        };
                        if got.to_bits() != want.to_bits() {
                            bad.push(format!("read {rows}x{cols} write {wr}x{wc}: ({j}, {i}) = {got}, want {want}"));
                        }
                    }
                }
            }
        }
        bad
    }

    multiversion! {
        unsafe fn transposes_on() -> Vec<String> => transposes
    }

    #[test]
    fn tiles_transpose_on_every_path() {
        for path in paths().into_iter().filter(|p| p.vector()) {
            // SAFETY: the path is one this CPU has.
            let bad = unsafe { transposes_on(path) };
            assert!(bad.is_empty(), "{path:?}: {}", bad.join("\n"));
        }
    }

    #[test]
    fn paths_follow_the_isa() {
        assert_eq!(Path::of(Isa::portable()), Path::Portable);
        let cpu = Isa::detected();
        if cpu.avx512f() && cpu.avx2_fma() {
            assert_eq!(Path::of(cpu), Path::Avx512);
        }
        if cpu.avx2_fma() {
            assert_eq!(Path::of(cpu.without_avx512()), Path::Avx2);
        }
        assert_eq!(*paths().last().unwrap(), Path::Portable);
    }
}
