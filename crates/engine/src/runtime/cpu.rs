//! The instruction sets the kernels may use, detected once per process.
//!
//! Every kernel that has a vectorised route takes an [`Isa`] and picks its route from it, so the
//! choice is one value handed down from the run instead of a feature test
//! in every kernel and a process-wide flag to override them.

use std::sync::OnceLock;

/// The x86-64 extensions the kernels may use.
///
/// A value that claims an extension can only come from [`Isa::host`] (which detected it on this
/// CPU) or be narrowed from one ([`Isa::portable`], [`Isa::without_avx512`]): the kernels' vector
/// routes run `#[target_feature]` code on its word, so it must never claim more than the CPU has.
///
/// ```
/// use convscope_engine::Isa;
/// let host = Isa::host();
/// // Narrowing never adds an extension: the portable set claims none.
/// assert!(!Isa::portable().avx512f() && !Isa::portable().avx2_fma());
/// assert_eq!(host.without_avx512().avx2_fma(), host.avx2_fma());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Isa {
    avx512f: bool,
    avx2: bool,
    fma: bool,
}

impl Isa {
    /// The extensions of the CPU this process runs on (detected on the first call).
    pub fn host() -> Isa {
        static HOST: OnceLock<Isa> = OnceLock::new();
        *HOST.get_or_init(Isa::detect)
    }

    /// No extension beyond baseline x86-64: the portable loops every machine runs.
    pub fn portable() -> Isa {
        Isa {
            avx512f: false,
            avx2: false,
            fma: false,
        }
    }

    /// These extensions without AVX-512 (the routes an AVX2 machine takes).
    pub fn without_avx512(self) -> Isa {
        Isa {
            avx512f: false,
            ..self
        }
    }

    /// Whether AVX-512F may be used (the panel, Winograd and depthwise vector kernels).
    #[inline]
    pub fn avx512f(self) -> bool {
        self.avx512f
    }

    /// Whether AVX2 may be used.
    #[inline]
    pub fn avx2(self) -> bool {
        self.avx2
    }

    /// Whether AVX2 and FMA may both be used.
    #[inline]
    pub fn avx2_fma(self) -> bool {
        self.avx2 && self.fma
    }

    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            Isa {
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
                avx2: std::arch::is_x86_feature_detected!("avx2"),
                fma: std::arch::is_x86_feature_detected!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Isa::portable()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detected set agrees with the standard library's own test, and narrowing only ever
    /// removes extensions.
    #[test]
    fn host_matches_the_cpu_and_narrowing_removes() {
        let host = Isa::host();
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                host.avx512f(),
                std::arch::is_x86_feature_detected!("avx512f")
            );
            assert_eq!(host.avx2(), std::arch::is_x86_feature_detected!("avx2"));
        }
        let narrow = host.without_avx512();
        assert!(!narrow.avx512f());
        assert_eq!(
            (narrow.avx2(), narrow.avx2_fma()),
            (host.avx2(), host.avx2_fma())
        );
        assert_eq!(Isa::portable(), Isa::portable().without_avx512());
        assert!(!Isa::portable().avx2());
    }
}
