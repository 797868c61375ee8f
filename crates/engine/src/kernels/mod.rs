//! Numeric kernels on slices: matrix products ([`gemm`], [`panel`]), convolution routes
//! ([`im2col`], [`winograd`], [`depthwise`]), pooling planes ([`pooling`]), with the one
//! convolution geometry ([`geometry::ConvGeometry`]) and the one [`epilogue::Epilogue`] they
//! share.
//!
//! Kernels know nothing of ops, tensors or graphs: they take slices, a geometry and the
//! [`Isa`](crate::runtime::cpu::Isa) to run on, and use the runtime's threads.

pub(crate) mod depthwise;
pub(crate) mod epilogue;
pub(crate) mod gemm;
pub(crate) mod geometry;
pub(crate) mod im2col;
pub(crate) mod panel;
pub(crate) mod pooling;
pub(crate) mod simd;
pub(crate) mod winograd;

/// Bits of the 16 vector lanes `l` with `lo ≤ base + l < hi`: the mask of a masked load or
/// store of 16 values starting at index `base` that may touch only indices `lo..hi`.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn lane_mask(lo: isize, hi: isize, base: isize) -> u16 {
    let lo = (lo - base).clamp(0, 16);
    let hi = (hi - base).clamp(0, 16);
    if hi <= lo {
        return 0;
    }
    let bits = |n: isize| if n >= 16 { u32::MAX } else { (1u32 << n) - 1 };
    (bits(hi) & !bits(lo)) as u16
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
