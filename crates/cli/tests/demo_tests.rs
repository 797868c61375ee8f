//! `convscope demo` as a new user runs it: no files, one report page whose images all render.

use std::path::Path;
use std::process::Command;

use convscope_test_support::TempDir;

/// The `src` of every `<img>` in an HTML page.
fn image_sources(html: &str) -> Vec<String> {
    html.split("<img src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(String::from))
        .collect()
}

#[test]
fn demo_writes_a_report_whose_images_render() {
    let dir = TempDir::new("demo-report");
    let out = dir.path("report");
    let status = Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args(["demo", "--out"])
        .arg(&out)
        .output()
        .expect("run convscope");
    assert!(
        status.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let html = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    for section in [
        "The model",
        "The input and the prediction",
        "Intermediate activations",
        "What the filters respond to",
        "Grad-CAM",
    ] {
        assert!(
            html.contains(section),
            "report lacks the section '{section}'"
        );
    }
    for (i, class) in ["circle", "square", "triangle", "stripes"]
        .iter()
        .enumerate()
    {
        let overlay = format!("gradcam_{i}_{class}.png");
        assert!(
            html.contains(&overlay),
            "no Grad-CAM overlay {overlay} for {class}"
        );
    }
    let images = image_sources(&html);
    // input, 7 activation grids, 4 filter grids, 4 Grad-CAM overlays.
    assert!(
        images.len() >= 16,
        "only {} images in the report",
        images.len()
    );
    for src in &images {
        let p = out.join(src);
        let img =
            image::open(&p).unwrap_or_else(|e| panic!("{} does not decode: {e}", p.display()));
        assert!(img.width() > 0 && img.height() > 0);
    }
    check_in_browser(&out.join("index.html"), images.len());
}

/// Opens the page in headless Chromium and reads back how many images loaded.
fn check_in_browser(page: &Path, expected: usize) {
    convscope_test_support::browser::check_images_loaded(page, expected);
}
