//! # convscope-image
//!
//! Image input/output and every picture that `convscope` renders:
//!
//! * [`mod@load`]: decode PNG/JPEG/WebP/BMP/TIFF files into [`RgbImageF32`]
//!   (HWC, values in `0..=255` as `f32`).
//! * [`mod@resize`]: Pillow-exact `Image.resize` (nearest / bilinear / bicubic,
//!   antialiased when shrinking), in float or in Pillow's 8-bit fixed point.
//! * [`preprocess`]: turn an image into a CHW model input ([`Planar`]) with the
//!   usual normalisations (ImageNet, Caffe, TF, ...) and back again.
//! * [`colormap`]: matplotlib's viridis / magma / inferno / jet / gray tables.
//! * [`channel`]: the "standardise one activation channel to `u8`" step.
//! * [`grid`]: activation grids, filter-pattern tiles and a single large
//!   channel with a colour bar.
//! * [`mod@overlay`]: Grad-CAM upsampling, heatmaps and blending.
//! * [`font`]: text in pictures (titles, labels), rasterised from the bundled DejaVu Sans
//!   Mono with `ab_glyph`.
//! * [`save`]: atomic file writes, PNG saving and a small NumPy `.npy` reader
//!   and writer.
//!
//! Tensors are plain data here: a [`Planar`] holds a `C×H×W` `f32` array.
//!
//! ```
//! use convscope_image::{
//!     channel_grid, from_rgb8, normalize, resize, GridConfig, Normalize, ResizeFilter,
//! };
//!
//! // A tiny 4×2 RGB image (HWC, u8).
//! let pixels: Vec<u8> = (0..4 * 2 * 3).map(|v| (v * 10) as u8).collect();
//! let img = from_rgb8(4, 2, &pixels).unwrap();
//!
//! // Resize like Pillow's `Image.resize((8, 4), Image.BICUBIC)` (float math).
//! let big = resize(&img, 8, 4, ResizeFilter::Bicubic);
//! assert_eq!((big.width, big.height), (8, 4));
//!
//! // Normalise into a CHW model input.
//! let input = normalize(&big, &Normalize::Imagenet);
//! assert_eq!((input.channels, input.height, input.width), (3, 4, 8));
//!
//! // Render the three planes as an activation grid.
//! let cfg = GridConfig { title: Some("input 3x4x8".into()), ..GridConfig::default() };
//! let picture = channel_grid(&input, &cfg).unwrap();
//! assert!(picture.width() >= 3 * 48);
//! ```
#![warn(missing_docs)]

pub mod channel;
pub mod colormap;
mod colormap_tables;
mod error;
pub mod font;
pub mod grid;
pub mod load;
pub mod overlay;
pub mod preprocess;
pub mod resize;
pub mod save;
mod types;

pub use channel::standardize_channel;
pub use colormap::Colormap;
pub use error::{Error, Result};
pub use grid::{
    channel_grid, channel_large, channel_large_box, grid_layout, tile_images, GridConfig,
    GridLayout,
};
pub use load::{from_dynamic, from_rgb8, load_rgb};
pub use overlay::{heatmap_rgb, superimpose, upsample_bilinear};
pub use preprocess::{denormalize, normalize, normalize_scale, Normalize};
pub use resize::{
    center_crop, resize, resize_rgb8_like_pillow, resize_shorter_and_center_crop,
    resize_u8_like_pillow, ResizeFilter,
};
pub use save::{
    npy_bytes_f32, parse_npy_bytes_f32, png_bytes, png_bytes_fast, png_bytes_stored, read_npy_f32,
    save_npy_f32, save_png, write_atomic,
};
pub use types::{Planar, RgbImageF32};

/// Re-export of the `image` crate, so callers use the same `RgbImage` type.
pub use image;
/// The 8-bit RGB picture type produced by all rendering functions.
pub use image::RgbImage;
