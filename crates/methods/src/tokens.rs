//! Token sequences read as spatial maps: how a transformer layer's value becomes the
//! `channels × height × width` map that activation grids and the CAM family work on.
//!
//! A vision transformer's layers hold tokens, not feature maps: ViT and DeiT give
//! `[N, 1 + H·W, C]` (a class token, for DeiT also a distillation token, before the patch
//! tokens), some models `[N, H·W, C]`, and Swin and the channels-last parts of ConvNeXt
//! `[N, H, W, C]`. pytorch-grad-cam asks its user for a `reshape_transform` that drops the
//! leading tokens and folds the rest into a grid; here the rule is worked out from the value's
//! shape and the input's aspect ratio ([`map_layout`]), printed ([`MapLayout::describe`]),
//! and can be overridden ([`TokenConfig`], the command line's `--tokens grid=14x14,skip=1`).
//!
//! The rule, in order:
//! 1. `[1, C, H, W]` whose `H:W` matches the input's aspect: a feature map, as is.
//! 2. `[1, H, W, C]` whose `H:W` matches (and rule 1 did not): channels last.
//! 3. Any other `[1, C, H, W]`: a feature map (what every CNN layer was before tokens).
//! 4. `[1, T, C]`: the fewest leading tokens (0, 1 or 2) whose removal leaves a grid `H × W`
//!    of the input's aspect with `H, W ≥ 2` (for a square input, `T − skip` a square).
//!
//! ```
//! use convscope_methods::tokens::{map_layout, MapLayout, TokenConfig};
//! // ViT-B/16 at 224×224: 197 tokens of 768 channels.
//! let l = map_layout(&[1, 197, 768], (224, 224), &TokenConfig::default()).unwrap();
//! assert_eq!(l, MapLayout::Tokens { skip: 1, height: 14, width: 14 });
//! assert_eq!(l.describe().unwrap(), "tokens: class token dropped, 14x14 grid");
//! // The command line's override.
//! let cfg: TokenConfig = "grid=14x14,skip=1".parse().unwrap();
//! assert_eq!(map_layout(&[1, 197, 768], (224, 224), &cfg), Some(l));
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// How to read token sequences: the `--tokens` option. Fields left `None` are worked out from
/// the value's shape ([`map_layout`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenConfig {
    /// The patch grid, `(height, width)`.
    pub grid: Option<(usize, usize)>,
    /// How many leading tokens (class, distillation) to drop.
    pub skip: Option<usize>,
}

impl FromStr for TokenConfig {
    type Err = Error;

    /// Parses `grid=14x14,skip=1` (either part may be left out).
    fn from_str(s: &str) -> Result<TokenConfig> {
        let mut cfg = TokenConfig::default();
        let bad = |what: &str| {
            Error::Config(format!(
                "--tokens {what}: expected e.g. grid=14x14,skip=1 (grid HxW, skip the leading tokens to drop)"
            ))
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(part))?;
            match key.trim() {
                "grid" => {
                    let (h, w) = value.split_once(['x', 'X']).ok_or_else(|| bad(part))?;
                    let h: usize = h.trim().parse().map_err(|_| bad(part))?;
                    let w: usize = w.trim().parse().map_err(|_| bad(part))?;
                    if h == 0 || w == 0 {
                        return Err(bad(part));
                    }
                    cfg.grid = Some((h, w));
                }
                "skip" => cfg.skip = Some(value.trim().parse().map_err(|_| bad(part))?),
                _ => return Err(bad(part)),
            }
        }
        Ok(cfg)
    }
}

impl fmt::Display for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some((h, w)) = self.grid {
            parts.push(format!("grid={h}x{w}"));
        }
        if let Some(s) = self.skip {
            parts.push(format!("skip={s}"));
        }
        f.write_str(&parts.join(","))
    }
}

/// How one value is read as `channels × height × width` maps (for its first image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapLayout {
    /// `[N, C, H, W]`: a feature map, read as is.
    Nchw,
    /// `[N, H, W, C]`: channels last (Swin, ConvNeXt's LayerNorm layers).
    Nhwc {
        /// Grid height.
        height: usize,
        /// Grid width.
        width: usize,
    },
    /// `[N, skip + H·W, C]`: tokens, the first `skip` dropped, the rest a row-major grid.
    Tokens {
        /// Leading tokens dropped (1 for a class token).
        skip: usize,
        /// Grid height.
        height: usize,
        /// Grid width.
        width: usize,
    },
}

/// Whether an `h × w` grid has the aspect of an `input_h × input_w` image (within one cell).
fn same_aspect(h: usize, w: usize, (ih, iw): (usize, usize)) -> bool {
    (h * iw).abs_diff(w * ih) <= iw.max(ih)
}

/// The grid of `n` tokens with the input's aspect, both sides ≥ 2.
fn grid_of(n: usize, input: (usize, usize)) -> Option<(usize, usize)> {
    (2..=n / 2)
        .filter(|h| n.is_multiple_of(*h))
        .map(|h| (h, n / h))
        .filter(|&(h, w)| w >= 2 && same_aspect(h, w, input))
        .min_by_key(|&(h, w)| (h * input.1).abs_diff(w * input.0))
}

/// How a value of `shape` is read as spatial maps for an input image of `input_hw`
/// (`(height, width)`), following the module's rule; `None` when it cannot be (a vector, a
/// batch other than the first axis, a grid that does not fit).
pub fn map_layout(
    shape: &[usize],
    input_hw: (usize, usize),
    cfg: &TokenConfig,
) -> Option<MapLayout> {
    match *shape {
        [_, c, h, w] => {
            let (spatial, channels_last) = (h * w > 1, h * c > 1);
            if let Some((gh, gw)) = cfg.grid {
                return if (gh, gw) == (h, w) {
                    Some(MapLayout::Nchw)
                } else if (gh, gw) == (c, h) {
                    Some(MapLayout::Nhwc {
                        height: c,
                        width: h,
                    })
                } else {
                    None
                };
            }
            if spatial && same_aspect(h, w, input_hw) {
                Some(MapLayout::Nchw)
            } else if channels_last && c > 1 && h > 1 && same_aspect(c, h, input_hw) {
                Some(MapLayout::Nhwc {
                    height: c,
                    width: h,
                })
            } else if spatial {
                Some(MapLayout::Nchw)
            } else {
                None
            }
        }
        [_, t, _] => {
            let skips: Vec<usize> = match cfg.skip {
                Some(s) => vec![s],
                None => vec![0, 1, 2],
            };
            skips.into_iter().find_map(|skip| {
                let n = t.checked_sub(skip)?;
                let (height, width) = match cfg.grid {
                    Some((h, w)) if h * w == n => (h, w),
                    Some(_) => return None,
                    None => grid_of(n, input_hw)?,
                };
                Some(MapLayout::Tokens {
                    skip,
                    height,
                    width,
                })
            })
        }
        _ => None,
    }
}

impl MapLayout {
    /// `(channels, height, width)` of the maps of a value of `shape`.
    pub fn dims(&self, shape: &[usize]) -> (usize, usize, usize) {
        match *self {
            MapLayout::Nchw => (shape[1], shape[2], shape[3]),
            MapLayout::Nhwc { height, width } => (shape[3], height, width),
            MapLayout::Tokens { height, width, .. } => (shape[2], height, width),
        }
    }

    /// The rule in words, for the output (`None` for a plain feature map).
    pub fn describe(&self) -> Option<String> {
        match *self {
            MapLayout::Nchw => None,
            MapLayout::Nhwc { height, width } => {
                Some(format!("channels last: {height}x{width} grid"))
            }
            MapLayout::Tokens {
                skip,
                height,
                width,
            } => Some(match skip {
                0 => format!("tokens: {height}x{width} grid"),
                1 => format!("tokens: class token dropped, {height}x{width} grid"),
                n => format!("tokens: {n} leading tokens dropped, {height}x{width} grid"),
            }),
        }
    }

    /// Index in one image's value of element `(k, y, x)` of the maps.
    fn source(&self, k: usize, pos: usize, channels: usize, plane: usize) -> usize {
        match *self {
            MapLayout::Nchw => k * plane + pos,
            MapLayout::Nhwc { .. } => pos * channels + k,
            MapLayout::Tokens { skip, .. } => (skip + pos) * channels + k,
        }
    }

    /// The first image of a value of `shape` as `channels × height × width` maps.
    pub fn to_chw(&self, shape: &[usize], data: &[f32]) -> Vec<f32> {
        let (c, h, w) = self.dims(shape);
        let plane = h * w;
        let mut out = vec![0.0; c * plane];
        for k in 0..c {
            for pos in 0..plane {
                out[k * plane + pos] = data[self.source(k, pos, c, plane)];
            }
        }
        out
    }

    /// The inverse of [`MapLayout::to_chw`] for one image: `item` (one image of the value,
    /// holding the original values) gets the maps `chw` written back; dropped tokens keep
    /// their values.
    pub fn from_chw(&self, shape: &[usize], chw: &[f32], item: &mut [f32]) {
        let (c, h, w) = self.dims(shape);
        let plane = h * w;
        for k in 0..c {
            for pos in 0..plane {
                item[self.source(k, pos, c, plane)] = chw[k * plane + pos];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: (usize, usize) = (224, 224);

    #[test]
    fn the_rule_picks_class_tokens_channels_last_and_plain_maps() {
        let auto = TokenConfig::default();
        assert_eq!(
            map_layout(&[1, 196, 384], SQUARE, &auto),
            Some(MapLayout::Tokens {
                skip: 0,
                height: 14,
                width: 14
            })
        );
        // DeiT's class and distillation tokens.
        assert_eq!(
            map_layout(&[1, 198, 384], SQUARE, &auto),
            Some(MapLayout::Tokens {
                skip: 2,
                height: 14,
                width: 14
            })
        );
        assert_eq!(
            map_layout(&[1, 7, 7, 768], SQUARE, &auto),
            Some(MapLayout::Nhwc {
                height: 7,
                width: 7
            })
        );
        assert_eq!(
            map_layout(&[1, 768, 7, 7], SQUARE, &auto),
            Some(MapLayout::Nchw)
        );
        // A 240×320 input: 12×16 patches.
        assert_eq!(
            map_layout(&[1, 193, 64], (240, 320), &auto),
            Some(MapLayout::Tokens {
                skip: 1,
                height: 12,
                width: 16
            })
        );
        assert_eq!(map_layout(&[1, 1000], SQUARE, &auto), None);
        assert_eq!(map_layout(&[1, 768, 1, 1], SQUARE, &auto), None);
        // 197 tokens but no grid of the input's aspect without the class token: refused.
        assert_eq!(
            map_layout(
                &[1, 197, 8],
                SQUARE,
                &TokenConfig {
                    skip: Some(0),
                    grid: None
                }
            ),
            None
        );
    }

    #[test]
    fn overrides_parse_and_apply() {
        let cfg: TokenConfig = "grid=7x28, skip=1".parse().unwrap();
        assert_eq!(cfg.grid, Some((7, 28)));
        assert_eq!(cfg.to_string(), "grid=7x28,skip=1");
        assert_eq!(
            map_layout(&[1, 197, 8], SQUARE, &cfg),
            Some(MapLayout::Tokens {
                skip: 1,
                height: 7,
                width: 28
            })
        );
        for bad in ["grid=14", "skip=x", "grid=0x3", "size=3"] {
            assert!(bad.parse::<TokenConfig>().is_err(), "{bad}");
        }
        let wrong: TokenConfig = "grid=10x10".parse().unwrap();
        assert_eq!(map_layout(&[1, 197, 8], SQUARE, &wrong), None);
    }

    #[test]
    fn tokens_round_trip_through_maps() {
        let layout = MapLayout::Tokens {
            skip: 1,
            height: 2,
            width: 2,
        };
        let shape = [1, 5, 3];
        // Token t, channel k holds 10·t + k.
        let data: Vec<f32> = (0..5)
            .flat_map(|t| (0..3).map(move |k| (10 * t + k) as f32))
            .collect();
        let chw = layout.to_chw(&shape, &data);
        assert_eq!(&chw[..4], &[10.0, 20.0, 30.0, 40.0]);
        assert_eq!(&chw[4..8], &[11.0, 21.0, 31.0, 41.0]);
        let mut back = vec![-1.0; 15];
        back[..3].copy_from_slice(&data[..3]);
        layout.from_chw(&shape, &chw, &mut back);
        assert_eq!(back, data);
    }
}
