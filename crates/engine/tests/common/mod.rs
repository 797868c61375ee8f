//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

pub mod grad;

use std::path::PathBuf;

use convscope_engine::Tensor;

/// Path of a file under the workspace's sibling `shared/` folder.
///
/// Missing files fail the test when `CI=true` and skip it (returning `None`) elsewhere.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("required test input {} is missing (CI=true)", p.display());
    }
    eprintln!("skipping: {} not found", p.display());
    None
}

/// Path of a file in the repository's `tests/data/reference/`.
pub fn reference(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/reference")
        .join(name)
}

pub fn load_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(reference(name)).expect("reference JSON is committed");
    serde_json::from_str(&text).expect("valid JSON")
}

/// The reference scripts' crop of chelsea.png: rows `r0..r1`, cols `c0..c1`, values /255, HWC.
pub fn chelsea_crop(r0: usize, r1: usize, c0: usize, c1: usize) -> Option<Vec<f32>> {
    let path = shared("images/chelsea.png")?;
    let img = image::open(path).expect("decode chelsea.png").to_rgb8();
    let mut out = Vec::with_capacity((r1 - r0) * (c1 - c0) * 3);
    for y in r0..r1 {
        for x in c0..c1 {
            for c in 0..3 {
                out.push(img.get_pixel(x as u32, y as u32)[c] as f32 / 255.0);
            }
        }
    }
    Some(out)
}

/// HWC → CHW.
pub fn hwc_to_chw(hwc: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
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

pub fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

pub fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

/// The VGG16 reference input: 240×240 centre crop, NHWC.
pub fn vgg_input() -> Option<Tensor> {
    Some(Tensor::new(vec![1, 240, 240, 3], chelsea_crop(30, 270, 105, 345)?).unwrap())
}

/// The EfficientNet reference input: 224×224 centre crop, ImageNet-normalised, NCHW.
pub fn effnet_input() -> Option<Tensor> {
    let hwc = chelsea_crop(38, 262, 113, 337)?;
    let mut chw = hwc_to_chw(&hwc, 224, 224, 3);
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    for (i, v) in chw.iter_mut().enumerate() {
        let c = i / (224 * 224);
        *v = (*v - mean[c]) / std[c];
    }
    Some(Tensor::new(vec![1, 3, 224, 224], chw).unwrap())
}
