//! # convscope-test-support
//!
//! Helpers that convscope's integration tests share, so each lives once instead of being
//! copied into every `tests/` folder. Use it as a dev-dependency only:
//!
//! ```toml
//! [dev-dependencies]
//! convscope-test-support = { path = "../test-support" }
//! ```
//!
//! * [`shared`] finds a file in the `shared/` folder beside the repository (real models and
//!   images): a missing file skips the test with a message, or fails it when `CI=true`;
//!   [`reference()`] and [`reference_json`] read the committed `tests/data/reference/` data.
//! * [`Goldens`] compares pictures pixel for pixel with a crate's `tests/golden/` PNGs
//!   (`CONVSCOPE_UPDATE_GOLDENS=1` rewrites them).
//! * [`TempDir`] is a fresh folder removed on drop.
//! * [`Rng`] is a seeded SplitMix64 for test data; [`seed_of`] turns a case name into a seed.
//! * [`argmax`], [`pearson`], [`pearson_f32`] and [`spearman`] compare results;
//!   [`json`] reads numbers out of JSON arrays; [`chelsea_crop`] and [`hwc_to_chw`] build the
//!   reference scripts' inputs.
//! * [`browser`] opens pages in headless Chromium and checks every image rendered.
//! * [`protobuf`] makes malformed protobuf (structure-aware mutants, noise) for fuzzing.
//!
//! The crate depends on no convscope crate (only `image` and `serde_json`), so every crate,
//! the engine included, can use it without a dependency cycle. Helpers panic with a message
//! naming the problem: in a test that is the failure report.

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod browser;
mod golden;
pub mod json;
mod paths;
pub mod protobuf;
mod rng;
mod stats;
mod temp;

pub use golden::Goldens;
pub use paths::{
    chelsea_crop, hwc_to_chw, reference, reference_json, shared, shared_bytes, workspace_root,
};
pub use rng::{seed_of, Rng};
pub use stats::{argmax, pearson, pearson_f32, spearman};
pub use temp::TempDir;
