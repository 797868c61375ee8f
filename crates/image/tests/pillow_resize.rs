//! Compares the resize implementations with reference data produced by
//! Pillow (`crates/image/scripts/pillow_reference.py`).

use std::path::PathBuf;

use convscope_image::{load_rgb, resize, resize_u8_like_pillow, ResizeFilter, RgbImageF32};
use convscope_test_support::shared;
use serde_json::Value;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared test image, or `None` (after a skip message) when it is absent
/// outside CI. In CI (`CI=true`) a missing image is a hard failure (see [`shared`]).
fn chelsea() -> Option<RgbImageF32> {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(manifest().join("tests/data/pillow_resize.json")).unwrap(),
    )
    .unwrap();
    // `source` is relative to the workspace root: `../shared/<rel>`.
    let rel = reference["source"].as_str().unwrap();
    let in_shared = rel
        .strip_prefix("../shared/")
        .expect("the Pillow reference image lives in ../shared");
    let path = shared(in_shared)?;
    let img = load_rgb(&path).unwrap();
    let size = &reference["source_size"];
    assert_eq!(
        (img.width as u64, img.height as u64),
        (size[0].as_u64().unwrap(), size[1].as_u64().unwrap())
    );
    Some(img)
}

fn results() -> Vec<Value> {
    let text = std::fs::read_to_string(manifest().join("tests/data/pillow_resize.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["results"].as_array().unwrap().clone()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// Compares one result; returns the largest absolute patch difference.
fn compare(out: &RgbImageF32, r: &Value, patch_tol: f64, mean_tol: f64) -> f64 {
    let (w, h) = (
        r["width"].as_u64().unwrap() as usize,
        r["height"].as_u64().unwrap() as usize,
    );
    assert_eq!((out.width, out.height), (w, h));
    let label = format!("{} {}", r["kind"], r["filter"]);
    let n = (w * h) as f64;
    for c in 0..3 {
        let ours: f64 = out
            .data
            .iter()
            .skip(c)
            .step_by(3)
            .map(|&v| v as f64)
            .sum::<f64>()
            / n;
        let theirs = f(&r["channel_sums"][c]) / n;
        assert!(
            (ours - theirs).abs() <= mean_tol,
            "{label}: channel {c} mean {ours} vs Pillow {theirs}"
        );
    }
    let mut worst = 0.0f64;
    for p in r["patches"].as_array().unwrap() {
        let (px, py) = (
            p["x"].as_u64().unwrap() as usize,
            p["y"].as_u64().unwrap() as usize,
        );
        for dy in 0..4 {
            for dx in 0..4 {
                let ours = out.pixel(px + dx, py + dy);
                for c in 0..3 {
                    let theirs = f(&p["data"][dy][dx][c]);
                    let d = (ours[c] as f64 - theirs).abs();
                    worst = worst.max(d);
                    assert!(
                        d <= patch_tol,
                        "{label}: pixel ({}, {}) channel {c}: ours {} vs Pillow {theirs}",
                        px + dx,
                        py + dy,
                        ours[c]
                    );
                }
            }
        }
    }
    worst
}

#[test]
fn u8_resize_matches_pillow() {
    let Some(img) = chelsea() else { return };
    for r in results().iter().filter(|r| r["kind"] == "u8") {
        let filter: ResizeFilter = r["filter"].as_str().unwrap().parse().unwrap();
        let (w, h) = (
            r["width"].as_u64().unwrap() as usize,
            r["height"].as_u64().unwrap() as usize,
        );
        let out = resize_u8_like_pillow(&img, w, h, filter);
        let worst = compare(&out, r, 1.0, 0.5);
        eprintln!("u8 {filter}: worst patch difference {worst}");
    }
}

#[test]
fn float_resize_matches_pillow_mode_f() {
    let Some(img) = chelsea() else { return };
    for r in results().iter().filter(|r| r["kind"] == "float") {
        let filter: ResizeFilter = r["filter"].as_str().unwrap().parse().unwrap();
        let (w, h) = (
            r["width"].as_u64().unwrap() as usize,
            r["height"].as_u64().unwrap() as usize,
        );
        let out = resize(&img, w, h, filter);
        let worst = compare(&out, r, 1e-3, 1e-3);
        eprintln!("float {filter}: worst patch difference {worst}");
    }
    // Nearest is identical in both flavours.
    let r = results()
        .into_iter()
        .find(|r| r["filter"] == "nearest")
        .unwrap();
    compare(&resize(&img, 64, 64, ResizeFilter::Nearest), &r, 0.0, 0.0);
}
