//! # convscope
//!
//! See what a trained convolutional network has learned, from its ONNX file: every channel of
//! every layer for an image, the input pattern each filter responds to, and where the evidence
//! for a class is (Grad-CAM and its family, saliency), as finished pictures and
//! machine-readable files.
//!
//! One [`Model`] does it all. Load it, then ask:
//!
//! ```no_run
//! use convscope::prelude::*;
//!
//! let model = Model::load("efficientnet_lite0.onnx")?.with_input(InputConfig::imagenet());
//! let image = Image::open("chelsea.png")?;
//! let top = model.predict(&image)?.best();
//! model.gradcam(&image, Class(top))?.overlay(&image)?.save("cam.png")?;
//! let acts = model.activations(&image, &ActivationsConfig::layers("0"))?;
//! acts.grid(0, &GridStyle::default())?.save("stem.png")?;
//! let filters = model.filters("0", &FiltersConfig::first(16))?;
//! filters.picture(&TileStyle::default())?.save("filters.png")?;
//! # Ok::<(), convscope::Error>(())
//! ```
//!
//! The embedded demo model runs without any file:
//!
//! ```
//! use convscope::prelude::*;
//!
//! let model = Model::demo()?;
//! let scene = convscope::demo_scene().image;
//! let prediction = model.predict(&scene)?;
//! let (class, label, p) = &prediction.top(1)[0];
//! let cam = model.gradcam(&scene, Class(*class))?;
//! assert!(!cam.all_zero(), "{label} (p {p}) has evidence somewhere");
//! # Ok::<(), convscope::Error>(())
//! ```
//!
//! Results write themselves into a [`output::Sink`]: an [`output::OutputDir`] (files appear all
//! together, atomically) or [`output::Files`] in memory. Every job checks its memory need
//! against a limit first ([`budget`]) and every shown value for NaN or infinity.
//!
//! The layers below are their own crates: `convscope-onnx` (reading ONNX), `convscope-engine`
//! (differentiable execution), `convscope-methods` (the visualization methods) and
//! `convscope-image` (images and rendering); [`Model::engine`] reaches the engine for work this
//! facade does not cover.
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod activations;
pub mod atlas;
pub mod budget;
pub mod cam;
pub mod error;
pub mod examples;
pub mod filters;
mod html;
pub mod input;
mod keras;
mod labels;
mod model;
pub mod output;
mod pass;
mod picture;
pub mod progress;
pub mod report;
pub mod saliency;
mod size;
pub mod summary;
pub mod text;
pub mod visualize;

pub use activations::{Activations, ActivationsConfig, GridStyle};
pub use cam::{CamConfig, CamMap, CamSet, OverlayStyle};
pub use convscope_engine::LoadOptions;
pub use convscope_image::Colormap;
pub use convscope_methods::target::{
    Class, Classes, OutputElement, Target, TargetRef, TargetSource,
};
pub use convscope_methods::tokens::{MapLayout, TokenConfig};
pub use error::{Error, Result};
pub use filters::{FilterGrid, FilterSet, FiltersConfig, Optimizer, TileStyle};
pub use input::{Input, InputConfig, Preprocess, ResizeFilter, ToInput};
pub use labels::Labels;
pub use model::{demo_scene, DemoScene, Model, Predictions};
pub use pass::ForwardPass;
pub use picture::{Image, Picture, Region};
pub use saliency::{SaliencyConfig, SaliencyMap};
pub use size::{Size, MAX_SIDE};
pub use visualize::{Recipe, VisualPicture, Visualization, VisualizeConfig};

/// Re-exports of the lower crates, for work below the facade.
pub mod lower {
    pub use convscope_engine as engine;
    pub use convscope_image as image;
    pub use convscope_methods as methods;
    pub use convscope_onnx as onnx;
}

/// Everything a typical program needs: `use convscope::prelude::*;`.
pub mod prelude {
    pub use crate::progress::{NoProgress, Progress};
    pub use crate::{
        Activations, ActivationsConfig, CamConfig, CamMap, Class, Classes, Colormap, Error,
        FilterGrid, FilterSet, FiltersConfig, GridStyle, Image, Input, InputConfig, Labels, Model,
        OutputElement, OverlayStyle, Picture, Preprocess, Recipe, Result, SaliencyConfig, Size,
        Target, TileStyle, Visualization, VisualizeConfig,
    };
}
