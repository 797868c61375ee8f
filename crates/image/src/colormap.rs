//! Colormaps: matplotlib's viridis, magma, inferno, jet and gray.
//!
//! All five are 256-entry lookup tables generated from matplotlib (see
//! `crates/image/scripts/gen_colormap_tables.py`), so colours are identical to
//! matplotlib's `imshow`/`matshow` output. `Jet` is **matplotlib's** jet, not
//! OpenCV's `COLORMAP_JET` (which some Grad-CAM tutorials use; the two are
//! similar but not identical — OpenCV's is slightly darker at the ends).

use std::fmt;
use std::str::FromStr;

use crate::colormap_tables as tables;
use crate::{Error, Result};

/// A colormap from scalars in `0..=1` to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Colormap {
    /// matplotlib `viridis` (perceptually uniform, dark purple → yellow).
    #[default]
    Viridis,
    /// matplotlib `jet` (blue → cyan → yellow → red).
    Jet,
    /// matplotlib `gray` (black → white).
    Gray,
    /// matplotlib `magma` (black → purple → light yellow).
    Magma,
    /// matplotlib `inferno` (black → purple → orange → light yellow).
    Inferno,
}

impl Colormap {
    /// Every colormap, in a stable order.
    pub const ALL: [Colormap; 5] = [
        Colormap::Viridis,
        Colormap::Jet,
        Colormap::Gray,
        Colormap::Magma,
        Colormap::Inferno,
    ];

    const VALID: &'static str = "viridis, jet, gray, magma, inferno";

    /// The lowercase name accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Viridis => "viridis",
            Colormap::Jet => "jet",
            Colormap::Gray => "gray",
            Colormap::Magma => "magma",
            Colormap::Inferno => "inferno",
        }
    }

    /// The 256-entry lookup table.
    pub fn table(self) -> &'static [[u8; 3]; 256] {
        match self {
            Colormap::Viridis => &tables::VIRIDIS,
            Colormap::Jet => &tables::JET,
            Colormap::Gray => &tables::GRAY,
            Colormap::Magma => &tables::MAGMA,
            Colormap::Inferno => &tables::INFERNO,
        }
    }

    /// Maps `t` in `0..=1` to a colour the way matplotlib does: index
    /// `floor(t * 256)`, with `t == 1` → entry 255. Values below 0 give the
    /// first entry, above 1 the last; NaN gives black.
    pub fn map(&self, t: f32) -> [u8; 3] {
        if t.is_nan() {
            return [0, 0, 0];
        }
        self.table()[Self::index(t)]
    }

    /// Maps an 8-bit level directly to its table entry.
    pub fn map_u8(&self, v: u8) -> [u8; 3] {
        self.table()[v as usize]
    }

    fn index(t: f32) -> usize {
        let x = t * 256.0;
        if x < 0.0 {
            0
        } else if x >= 255.0 {
            255
        } else {
            x as usize
        }
    }
}

impl fmt::Display for Colormap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Colormap {
    type Err = Error;

    /// Parses a colormap name case-insensitively (`grey` is accepted too).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viridis" => Ok(Colormap::Viridis),
            "jet" => Ok(Colormap::Jet),
            "gray" | "grey" => Ok(Colormap::Gray),
            "magma" => Ok(Colormap::Magma),
            "inferno" => Ok(Colormap::Inferno),
            _ => Err(Error::UnknownName {
                kind: "colormap",
                value: s.to_string(),
                valid: Self::VALID,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matplotlib_reference_values() {
        // python3 -c "import matplotlib as m; c=m.colormaps['viridis']; print(c(0.0,bytes=True), c(0.5,bytes=True), c(1.0,bytes=True))"
        assert_eq!(Colormap::Viridis.map(0.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.map(0.5), [32, 144, 140]);
        assert_eq!(Colormap::Viridis.map(1.0), [253, 231, 36]);
        assert_eq!(Colormap::Viridis.map(2.0), [253, 231, 36]);
        assert_eq!(Colormap::Viridis.map(-1.0), [68, 1, 84]);
        assert_eq!(Colormap::Gray.map(0.0), [0, 0, 0]);
        assert_eq!(Colormap::Gray.map(1.0), [255, 255, 255]);
        assert_eq!(Colormap::Jet.map(0.0), [0, 0, 127]);
        assert_eq!(Colormap::Jet.map(1.0), [127, 0, 0]);
        assert_eq!(Colormap::Magma.map(0.0), [0, 0, 3]);
        assert_eq!(Colormap::Inferno.map(1.0), [252, 254, 164]);
        assert_eq!(Colormap::Viridis.map(f32::NAN), [0, 0, 0]);
    }

    #[test]
    fn index_rule() {
        assert_eq!(Colormap::index(0.999), 255);
        assert_eq!(Colormap::index(0.99), 253);
        assert_eq!(Colormap::index(1.0 / 256.0), 1);
        assert_eq!(Colormap::index(0.0039), 0);
    }

    #[test]
    fn parse() {
        for c in Colormap::ALL {
            assert_eq!(c.name().parse::<Colormap>().unwrap(), c);
            assert_eq!(c.to_string().to_uppercase().parse::<Colormap>().unwrap(), c);
        }
        let e = "rainbow".parse::<Colormap>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown colormap 'rainbow' (valid: viridis, jet, gray, magma, inferno)"
        );
    }
}
