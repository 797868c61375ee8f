//! # convscope-methods
//!
//! The visualization methods of convscope, on top of the differentiable engine:
//! intermediate activations, filter patterns by gradient ascent in input space, and class
//! activation maps.
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod activations;
pub mod cam;
mod error;
pub mod filters;
pub mod input;
pub mod saliency;
pub mod select;
pub mod transform;

pub use error::{Error, Result};
