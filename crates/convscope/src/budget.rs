//! The memory budget: every job estimates its peak before it allocates, and is refused with one
//! line (naming the option that lowers the need) when the estimate exceeds the limit.
//!
//! The default limit is 80 % of the memory the operating system reports as available when the
//! model is loaded (`MemAvailable` on Linux), or 8 GiB where that cannot be read. The estimates
//! are upper bounds built from the shapes of a probe pass (see [`crate::Model`]), so a job that
//! passes the check can still run out of memory only when something else takes the machine's
//! memory meanwhile; the binary turns that last case into an error line too.

use crate::error::{Error, Result};

/// Fraction of the available memory a job may plan to use by default.
pub const DEFAULT_FRACTION: f64 = 0.8;

/// Limit used when the available memory cannot be read.
pub const FALLBACK_LIMIT: u64 = 8 << 30;

/// A memory limit in bytes.
///
/// ```
/// use convscope::budget::MemoryLimit;
///
/// let limit: MemoryLimit = "2G".parse()?;
/// assert_eq!(limit.bytes(), 2 << 30);
/// assert!(limit.check(1 << 30, "a job", "use less").is_ok());
/// let e = limit.check(3 << 30, "a job", "use a smaller --size").unwrap_err();
/// assert!(e.to_string().contains("3.0 GiB"));
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimit(u64);

impl MemoryLimit {
    /// A limit of `bytes`.
    pub const fn new(bytes: u64) -> MemoryLimit {
        MemoryLimit(bytes)
    }

    /// No limit (estimates are still computed, never refused).
    pub const fn unlimited() -> MemoryLimit {
        MemoryLimit(u64::MAX)
    }

    /// [`DEFAULT_FRACTION`] of the available memory now.
    pub fn from_available() -> MemoryLimit {
        let avail = available_memory().unwrap_or(FALLBACK_LIMIT);
        MemoryLimit((avail as f64 * DEFAULT_FRACTION) as u64)
    }

    /// The limit in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Refuses a job whose estimated peak `needed` exceeds the limit.
    pub fn check(self, needed: u64, what: &str, hint: &str) -> Result<()> {
        if needed > self.0 {
            return Err(Error::Memory {
                what: what.to_string(),
                needed,
                limit: self.0,
                hint: hint.to_string(),
            });
        }
        Ok(())
    }
}

impl Default for MemoryLimit {
    fn default() -> Self {
        MemoryLimit::from_available()
    }
}

impl std::str::FromStr for MemoryLimit {
    type Err = Error;

    /// Parses `512M`, `4G`, `1.5G`, `800000000` (bytes), `none`, or a percentage of the
    /// available memory, `50%`.
    fn from_str(s: &str) -> Result<MemoryLimit> {
        let t = s.trim();
        let bad = || {
            Error::Config(format!(
                "'{s}' is not a memory limit; use e.g. 4G, 512M, 50% or none"
            ))
        };
        if t.eq_ignore_ascii_case("none") {
            return Ok(MemoryLimit::unlimited());
        }
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p.is_finite() && p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            let avail = available_memory().unwrap_or(FALLBACK_LIMIT);
            return Ok(MemoryLimit((avail as f64 * p / 100.0) as u64));
        }
        let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
            Some((i, _)) => (&t[..i], t[i..].to_ascii_lowercase()),
            None => (t, String::new()),
        };
        let scale: u64 = match unit.as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(bad()),
        };
        let v: f64 = num.trim().parse().map_err(|_| bad())?;
        if !(v.is_finite() && v > 0.0) {
            return Err(bad());
        }
        Ok(MemoryLimit((v * scale as f64).min(u64::MAX as f64) as u64))
    }
}

/// The memory the operating system can give without swapping, when it says.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// `1.5 GiB`, `340 MiB`, `12 KiB`, `100 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if v >= 100.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// Bytes of `n` `f32` values, saturating.
pub(crate) fn f32_bytes(n: u64) -> u64 {
    n.saturating_mul(4)
}

/// Bytes of an RGB picture (`u8`) and its PNG encoding (at most about the raw size again).
pub(crate) fn picture_bytes(width: u64, height: u64) -> u64 {
    width
        .saturating_mul(height)
        .saturating_mul(3)
        .saturating_mul(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_units_and_refuse_nonsense() {
        assert_eq!("512M".parse::<MemoryLimit>().unwrap().bytes(), 512 << 20);
        assert_eq!("1.5g".parse::<MemoryLimit>().unwrap().bytes(), 3 << 29);
        assert_eq!("1000".parse::<MemoryLimit>().unwrap().bytes(), 1000);
        assert_eq!(
            "none".parse::<MemoryLimit>().unwrap(),
            MemoryLimit::unlimited()
        );
        assert!("50%".parse::<MemoryLimit>().unwrap().bytes() > 0);
        for bad in ["", "x", "-1G", "nanG", "infG", "0", "150%", "4Q", "0%"] {
            let e = bad.parse::<MemoryLimit>().unwrap_err().to_string();
            assert!(e.contains("is not a memory limit"), "{bad}: {e}");
        }
    }

    #[test]
    fn human_bytes_reads_naturally() {
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(12 << 10), "12.0 KiB");
        assert_eq!(human_bytes(340 << 20), "340 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn the_machine_reports_available_memory() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|b| b > 0));
        }
        assert!(MemoryLimit::from_available().bytes() > 0);
    }
}
