//! Where test inputs live: `../shared` beside the repository and `tests/data/reference`.

use std::path::{Path, PathBuf};

/// The workspace root (the folder with the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate is `crates/test-support`, two levels below the root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the environment says this is a CI run (`CI=true`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Path of `rel` under the `shared/` folder beside the repository (`../shared` from the root:
/// real models in `models/`, images in `images/`).
///
/// A missing file skips the test: the function prints `skipping: … not found` and returns
/// `None`, and the caller returns. When `CI=true` a missing file panics instead, so CI never
/// passes by skipping.
///
/// ```no_run
/// let Some(model) = convscope_test_support::shared("models/vgg16_tumor.onnx") else {
///     return;
/// };
/// assert!(model.is_file());
/// ```
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = workspace_root().join("../shared").join(rel);
    if p.exists() {
        return Some(p);
    }
    if in_ci() {
        panic!("required test input {} is missing (CI=true)", p.display());
    }
    eprintln!("skipping: {} not found", p.display());
    None
}

/// The bytes of [`shared`]`(rel)`, with the same skipping rule.
pub fn shared_bytes(rel: &str) -> Option<Vec<u8>> {
    let p = shared(rel)?;
    Some(std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

/// Path of a file in the repository's `tests/data/reference/` (data written by
/// `scripts/reference/make_reference.py`, committed).
pub fn reference(name: &str) -> PathBuf {
    workspace_root().join("tests/data/reference").join(name)
}

/// [`reference()`]`(name)` parsed as JSON.
pub fn reference_json(name: &str) -> serde_json::Value {
    crate::json::read_json(&reference(name))
}

/// The reference scripts' crop of `shared/images/chelsea.png`: rows `r0..r1`, columns
/// `c0..c1`, values `u8 / 255` as `f32`, HWC (bit-exact with the scripts' inputs). `None`
/// (skipped) when the image is absent, as [`shared`].
///
/// The VGG16 input is `chelsea_crop(30, 270, 105, 345)` (NHWC); EfficientNet's is
/// `chelsea_crop(38, 262, 113, 337)`, then [`hwc_to_chw`] and the ImageNet normalisation.
pub fn chelsea_crop(r0: usize, r1: usize, c0: usize, c1: usize) -> Option<Vec<f32>> {
    let path = shared("images/chelsea.png")?;
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("decode {}: {e}", path.display()))
        .to_rgb8();
    let mut out = Vec::with_capacity((r1 - r0) * (c1 - c0) * 3);
    for y in r0..r1 {
        for x in c0..c1 {
            out.extend(
                img.get_pixel(x as u32, y as u32)
                    .0
                    .iter()
                    .map(|&v| v as f32 / 255.0),
            );
        }
    }
    Some(out)
}

/// HWC → CHW for an `h`×`w` image of `c` channels.
///
/// ```
/// // 1×2 pixels, 3 channels: RGB RGB → RR GG BB.
/// let chw = convscope_test_support::hwc_to_chw(&[1., 2., 3., 4., 5., 6.], 1, 2, 3);
/// assert_eq!(chw, [1., 4., 2., 5., 3., 6.]);
/// ```
pub fn hwc_to_chw(hwc: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    assert_eq!(
        hwc.len(),
        h * w * c,
        "hwc_to_chw: {h}x{w}x{c} values expected"
    );
    let mut out = vec![0.0; hwc.len()];
    for y in 0..h {
        for x in 0..w {
            for k in 0..c {
                out[(k * h + y) * w + x] = hwc[(y * w + x) * c + k];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
        assert!(reference("").ends_with("tests/data/reference"));
    }

    #[test]
    fn a_missing_shared_file_skips_or_fails_in_ci() {
        let rel = "no/such/file-for-convscope-tests";
        if in_ci() {
            assert!(std::panic::catch_unwind(|| shared(rel)).is_err());
        } else {
            assert_eq!(shared(rel), None);
        }
    }
}
