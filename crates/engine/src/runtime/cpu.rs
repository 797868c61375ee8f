//! The instruction sets the kernels may use, detected once per process.
//!
//! Every kernel that has a vectorised route takes an [`Isa`] and picks its route from it, so the
//! choice is one value handed down from the run instead of a feature test
//! in every kernel and a process-wide flag to override them.
//!
//! `CONVSCOPE_ISA=avx512|avx2|portable` narrows the set a process uses by default
//! ([`Isa::host`]), read once: a path can then be tested and timed on a machine that has more.
//! It only narrows: asking for an extension this CPU lacks, or for an unknown path, is an error
//! from [`Isa::requested`] (the `convscope` binary stops with it, exit code 2), and
//! [`Isa::host`] (which cannot fail) falls back to the detected set after one line on stderr.

use std::sync::OnceLock;

use crate::error::Error;

/// The vector extensions the kernels may use.
///
/// A value that claims an extension can only come from [`Isa::detected`] (which detected it on
/// this CPU) or be narrowed from one ([`Isa::portable`], [`Isa::without_avx512`],
/// [`Isa::narrowed_to`]): the kernels' vector routes run `#[target_feature]` code on its word,
/// so it must never claim more than the CPU has.
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
    /// Advanced SIMD on aarch64 (part of its baseline, so present on every aarch64 CPU).
    neon: bool,
}

impl Isa {
    /// The set this process runs with by default: [`Isa::detected`], narrowed as
    /// `CONVSCOPE_ISA` asks ([`Isa::requested`]). When that variable asks for something this
    /// CPU cannot do, one line on stderr says so and the detected set is used.
    pub fn host() -> Isa {
        static HOST: OnceLock<Isa> = OnceLock::new();
        *HOST.get_or_init(|| {
            Isa::requested().unwrap_or_else(|e| {
                eprintln!("warning: {e}; using {}", Isa::detected().name());
                Isa::detected()
            })
        })
    }

    /// The extensions of the CPU this process runs on (detected on the first call), whatever
    /// `CONVSCOPE_ISA` says.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(Isa::detect)
    }

    /// [`Isa::detected`] narrowed by the `CONVSCOPE_ISA` environment variable (read once;
    /// unset or empty: not narrowed).
    ///
    /// # Errors
    /// [`Error::Isa`] when the value names no path, or a path this CPU cannot run.
    pub fn requested() -> Result<Isa, Error> {
        static REQUESTED: OnceLock<Result<Isa, String>> = OnceLock::new();
        REQUESTED
            .get_or_init(|| match std::env::var("CONVSCOPE_ISA") {
                Ok(v) if !v.trim().is_empty() => Isa::detected()
                    .narrowed_to(&v)
                    .map_err(|e| format!("CONVSCOPE_ISA={v}: {e}")),
                Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Isa::detected()),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err("CONVSCOPE_ISA is not valid Unicode".to_string())
                }
            })
            .clone()
            .map_err(Error::Isa)
    }

    /// This set narrowed to the path `name` names: `avx512` (AVX-512F with AVX2 and FMA),
    /// `avx2` (AVX2 and FMA), `neon`, or `portable` (no vector extension).
    ///
    /// ```
    /// use convscope_engine::Isa;
    /// assert_eq!(Isa::detected().narrowed_to("portable").unwrap(), Isa::portable());
    /// assert!(Isa::portable().narrowed_to("avx2").is_err());
    /// assert!(Isa::detected().narrowed_to("sse9").is_err());
    /// ```
    ///
    /// # Errors
    /// A message naming the problem when `name` is no path, or when this set lacks an
    /// extension the path needs (narrowing never adds one).
    pub fn narrowed_to(self, name: &str) -> Result<Isa, String> {
        let have = self.name();
        let lacks = |what: &str| Err(format!("this CPU lacks {what} (its path is {have})"));
        match name.trim().to_ascii_lowercase().as_str() {
            "portable" => Ok(Isa::portable()),
            "avx512" if !(self.avx512f && self.avx2_fma()) => lacks("AVX-512F"),
            "avx512" => Ok(self),
            "avx2" if !self.avx2_fma() => lacks("AVX2 and FMA"),
            "avx2" => Ok(self.without_avx512()),
            "neon" if !self.neon => lacks("NEON"),
            "neon" => Ok(self),
            other => Err(format!(
                "unknown instruction set '{other}' (expected avx512, avx2, neon or portable)"
            )),
        }
    }

    /// The name of the widest path this set runs: `avx512`, `avx2`, `neon` or `portable`
    /// (what `CONVSCOPE_ISA` takes, and what benchmark figures are labelled with).
    pub fn name(self) -> &'static str {
        if self.avx512f && self.avx2_fma() {
            "avx512"
        } else if self.avx2_fma() {
            "avx2"
        } else if self.neon {
            "neon"
        } else {
            "portable"
        }
    }

    /// No vector extension: the portable loops every machine runs.
    pub fn portable() -> Isa {
        Isa {
            avx512f: false,
            avx2: false,
            fma: false,
            neon: false,
        }
    }

    /// These extensions without AVX-512 (the routes an AVX2 machine takes).
    pub fn without_avx512(self) -> Isa {
        Isa {
            avx512f: false,
            ..self
        }
    }

    /// Whether AVX-512F may be used.
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

    /// Whether NEON (aarch64's Advanced SIMD) may be used.
    #[inline]
    pub fn neon(self) -> bool {
        self.neon
    }

    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            Isa {
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
                avx2: std::arch::is_x86_feature_detected!("avx2"),
                fma: std::arch::is_x86_feature_detected!("fma"),
                neon: false,
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            Isa {
                neon: std::arch::is_aarch64_feature_detected!("neon"),
                ..Isa::portable()
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
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
        let host = Isa::detected();
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

    /// Every name narrows to the set it names, or is refused with the reason; none adds an
    /// extension the set lacks.
    #[test]
    fn names_narrow_or_are_refused() {
        let cpu = Isa::detected();
        assert_eq!(cpu.narrowed_to("portable"), Ok(Isa::portable()));
        assert_eq!(cpu.narrowed_to(cpu.name()), Ok(cpu));
        let avx2 = Isa {
            avx512f: false,
            avx2: true,
            fma: true,
            neon: false,
        };
        let avx512 = Isa {
            avx512f: true,
            ..avx2
        };
        assert_eq!(avx512.narrowed_to("AVX2"), Ok(avx2));
        assert_eq!(avx512.narrowed_to("avx512"), Ok(avx512));
        assert_eq!(avx2.name(), "avx2");
        let e = avx2.narrowed_to("avx512").unwrap_err();
        assert!(e.contains("lacks AVX-512F") && e.contains("avx2"), "{e}");
        let e = Isa::portable().narrowed_to("avx2").unwrap_err();
        assert!(e.contains("lacks AVX2"), "{e}");
        assert!(avx2.narrowed_to("neon").is_err());
        let e = avx2.narrowed_to("sse4").unwrap_err();
        assert!(e.contains("unknown instruction set 'sse4'"), "{e}");
    }
}
