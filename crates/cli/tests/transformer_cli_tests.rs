//! The command line on transformer-era models (the methods tests' ViT-style and
//! ConvNeXt-style builders): `cam` and `activations` print the token rule, `--tokens`
//! overrides it, and a malformed `--tokens` is a one-line error.

#[path = "../../methods/tests/transformer_models/mod.rs"]
mod transformer_models;
mod util;

use transformer_models::{convnext_style, input, vit_style, SIDE};
use util::*;

fn setup(name: &str) -> TestDir {
    let dir = TestDir::new(name);
    dir.model("vit.onnx", &vit_style());
    dir.model("convnext.onnx", &convnext_style());
    dir.npy("x.npy", &[1, 3, SIDE, SIDE], &input());
    dir
}

#[test]
fn cam_on_a_vit_prints_the_token_rule_and_writes_a_grid_map() {
    let dir = setup("vit-cam");
    let out = dir
        .run(["cam", "vit.onnx", "x.npy", "--out", "cam", "--npy"])
        .success();
    assert!(
        out.stdout.contains("layer: blocks.1.norm1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("map: tokens: class token dropped, 4x4 grid"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("of 4x4"), "{}", out.stdout);
    // The override, as pytorch-grad-cam's reshape_transform would give it.
    let out = dir
        .run([
            "cam",
            "vit.onnx",
            "x.npy",
            "--out",
            "cam2",
            "--tokens",
            "grid=2x8,skip=1",
        ])
        .success();
    assert!(
        out.stdout
            .contains("map: tokens: class token dropped, 2x8 grid"),
        "{}",
        out.stdout
    );
}

#[test]
fn activations_of_a_vit_are_grids_with_the_rule_printed() {
    let dir = setup("vit-acts");
    let out = dir
        .run([
            "activations",
            "vit.onnx",
            "x.npy",
            "--layers",
            "blocks.0.norm1,norm",
            "--out",
            "acts",
        ])
        .success();
    assert!(
        out.stdout
            .contains("tokens: class token dropped, 4x4 grid (2 layer(s) read this way)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[1, 8, 4, 4]"), "{}", out.stdout);
}

#[test]
fn convnext_cam_and_activations_run() {
    let dir = setup("convnext");
    let out = dir
        .run(["cam", "convnext.onnx", "x.npy", "--out", "cam"])
        .success();
    assert!(
        out.stdout.contains("layer: features.1.0_2"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("map: "), "{}", out.stdout);
    let out = dir
        .run(["activations", "convnext.onnx", "x.npy", "--out", "acts"])
        .success();
    assert!(
        out.stdout.contains("channels last: 4x4 grid"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_malformed_tokens_option_is_a_one_line_error() {
    let dir = setup("tokens-bad");
    for bad in ["grid=14", "skip=one", "rows=3"] {
        let out = dir.run(["cam", "vit.onnx", "x.npy", "--out", "cam", "--tokens", bad]);
        let line = out.one_line_error();
        assert!(line.contains("--tokens"), "{bad}: {line}");
    }
    // Well-formed but not this model's grid: refused, naming the option.
    let out = dir.run([
        "cam",
        "vit.onnx",
        "x.npy",
        "--out",
        "cam",
        "--layer",
        "blocks.1.norm1",
        "--tokens",
        "grid=3x3,skip=1",
    ]);
    let line = out.one_line_error();
    assert!(line.contains("grid=3x3,skip=1"), "{line}");
}
