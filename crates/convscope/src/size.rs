//! One size type for every picture and input: width first, as people write `224x224`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The largest side convscope accepts for an input or a picture, in pixels.
///
/// Memory is checked separately (see [`crate::budget`]); this bound only keeps sizes within
/// what the image codecs and the index arithmetic handle.
pub const MAX_SIDE: usize = 16384;

/// A width and a height in pixels.
///
/// ```
/// use convscope::Size;
///
/// let s: Size = "320x240".parse()?;
/// assert_eq!((s.width, s.height), (320, 240));
/// assert_eq!(Size::square(150), "150".parse()?);
/// assert_eq!(s.to_string(), "320x240");
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Size {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl Size {
    /// A `width × height` size.
    pub const fn new(width: usize, height: usize) -> Size {
        Size { width, height }
    }

    /// An `n × n` size.
    pub const fn square(n: usize) -> Size {
        Size {
            width: n,
            height: n,
        }
    }

    /// `(height, width)`, the order of the lower crates' tensors.
    pub const fn hw(self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// From `(height, width)`.
    pub const fn from_hw((height, width): (usize, usize)) -> Size {
        Size { width, height }
    }

    /// Number of pixels.
    pub fn area(self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// Checks both sides are between 1 and [`MAX_SIDE`]; `what` names the option in the
    /// message.
    pub fn check(self, what: &str) -> Result<Size> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::Config(format!(
                "{what} {self} is empty: both sides must be at least 1"
            )));
        }
        if self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(Error::Config(format!(
                "{what} {self} exceeds the limit of {MAX_SIDE} pixels per side"
            )));
        }
        Ok(self)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = Error;

    /// Parses `N` (square) or `WxH`; sides beyond [`MAX_SIDE`] are refused with the limit
    /// named.
    fn from_str(s: &str) -> Result<Size> {
        let side = |v: &str| -> Result<usize> {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Config(format!(
                    "'{s}' is not a size; use N or WxH, e.g. 150 or 224x224"
                )));
            }
            // Digits only: the parse fails only on overflow, which is past the limit anyway.
            Ok(v.parse::<usize>().unwrap_or(usize::MAX))
        };
        let size = match s.split_once(['x', 'X']) {
            Some((w, h)) => Size::new(side(w)?, side(h)?),
            None => Size::square(side(s)?),
        };
        if size.width > MAX_SIDE || size.height > MAX_SIDE {
            return Err(Error::Config(format!(
                "size '{s}' exceeds the limit of {MAX_SIDE} pixels per side"
            )));
        }
        if size.width == 0 || size.height == 0 {
            return Err(Error::Config(format!(
                "'{s}' is not a size: both sides must be at least 1"
            )));
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_what_is_wrong() {
        assert_eq!("224".parse::<Size>().unwrap(), Size::square(224));
        assert_eq!("320X240".parse::<Size>().unwrap(), Size::new(320, 240));
        assert_eq!(Size::new(320, 240).hw(), (240, 320));
        let e = "20000x20000".parse::<Size>().unwrap_err().to_string();
        assert!(e.contains("exceeds the limit of 16384"), "{e}");
        let e = "99999999999999999999999"
            .parse::<Size>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("exceeds the limit"), "{e}");
        for bad in ["", "x", "12x", "-3", "1.5", "axb", "3x4x5"] {
            let e = bad.parse::<Size>().unwrap_err().to_string();
            assert!(e.contains("is not a size"), "{bad}: {e}");
        }
        let e = "0x5".parse::<Size>().unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
    }
}
