//! `convscope visualize`, `convscope spectrum` and `convscope filters --recipe` run the way a
//! user runs them, on small models generated here: the files and `index.json` they write, and
//! the one-line errors (exit code 2, nothing written) for bad objectives.

mod util;

use serde_json::Value as Json;
use util::*;

#[test]
fn visualize_writes_pictures_grid_and_index() {
    let td = TestDir::new("visualize");
    let model = td.model("features.onnx", &features_model());
    let classifier = td.model("classifier.onnx", &classifier_model());
    td.run([
        "visualize",
        model.to_str().unwrap(),
        "--objective",
        "conv2:0..3",
        "--objective",
        "conv2:1 - 0.5*conv1:2",
        "--recipe",
        "lucid",
        "--steps",
        "12",
        "--out",
        "out",
    ])
    .success();
    let index: Json =
        serde_json::from_str(&std::fs::read_to_string(td.path("out/index.json")).unwrap()).unwrap();
    let pictures = index["pictures"].as_array().unwrap();
    let objectives: Vec<&str> = pictures
        .iter()
        .map(|p| p["objective"].as_str().unwrap())
        .collect();
    assert_eq!(
        objectives,
        ["conv2:0", "conv2:1", "conv2:2", "conv2:1 - 0.5*conv1:2"]
    );
    for p in pictures {
        assert!(td.path("out").join(p["file"].as_str().unwrap()).is_file());
        assert!(p["value"].as_f64().unwrap().is_finite());
    }
    assert!(td.path("out/grid.png").is_file());
    // A class of a model that ends in Softmax: its input (the logits) is maximised.
    td.run([
        "visualize",
        classifier.to_str().unwrap(),
        "--objective",
        "class:1",
        "--recipe",
        "maco",
        "--steps",
        "8",
        "--out",
        "classes",
    ])
    .success();
    assert!(td.path("classes/index.json").is_file());
}

#[test]
fn visualize_bad_objectives_are_one_line_errors() {
    let td = TestDir::new("visualize-errors");
    let model = td.model("features.onnx", &features_model());
    let m = model.to_str().unwrap();
    for (objective, needle) in [
        ("conv9:0", "conv9"),
        ("conv2:77", "out of range"),
        ("conv2:dir=missing.npy", "missing.npy"),
        ("conv2:1 + nonsense", "not an objective"),
    ] {
        let o = td.run([
            "visualize",
            m,
            "--objective",
            objective,
            "--steps",
            "2",
            "--out",
            "bad",
        ]);
        let line = o.one_line_error();
        assert!(line.contains(needle), "{objective}: {line}");
        assert!(!td.path("bad").exists(), "{objective} left a folder");
    }
    let o = td.run([
        "visualize",
        m,
        "--objective",
        "conv2:0",
        "--recipe",
        "deepdream",
    ]);
    assert_eq!(o.code, 2);
    let o = td.run([
        "visualize",
        m,
        "--objective",
        "conv2:0",
        "--diversity",
        "1",
        "--out",
        "bad",
    ]);
    assert!(o.one_line_error().contains("--batch 2"));
}

#[test]
fn spectrum_and_filters_recipe() {
    let td = TestDir::new("spectrum");
    std::fs::create_dir_all(td.path("pictures")).unwrap();
    std::fs::write(td.path("pictures/a.png"), classifier_png(40, 30)).unwrap();
    td.run([
        "spectrum", "--images", "pictures", "--side", "32", "--out", "s.npy",
    ])
    .success();
    let (shape, data) = convscope_image::read_npy_f32(&td.path("s.npy")).unwrap();
    assert_eq!(shape, [3, 32, 17]);
    assert!(data.iter().all(|v| v.is_finite() && *v >= 0.0));
    let model = td.model("features.onnx", &features_model());
    let m = model.to_str().unwrap();
    td.run([
        "visualize",
        m,
        "--objective",
        "conv2:1",
        "--recipe",
        "maco",
        "--spectrum-from",
        "pictures",
        "--steps",
        "4",
        "--out",
        "maco",
    ])
    .success();
    assert!(td.path("maco/index.json").is_file());
    let o = td.run(["spectrum", "--images", "nowhere", "--out", "x.npy"]);
    assert!(o.one_line_error().contains("nowhere"));
    td.run([
        "filters",
        m,
        "--layer",
        "conv2",
        "--filters",
        "0..2",
        "--recipe",
        "lucid",
        "--steps",
        "6",
        "--out",
        "filters",
    ])
    .success();
    let index: Json =
        serde_json::from_str(&std::fs::read_to_string(td.path("filters/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["recipe"], "lucid");
    assert_eq!(index["pictures"].as_array().unwrap().len(), 2);
    // Without --filters a recipe takes the first 64 filters: all 5 of conv2 (the literal
    // "conv2:0..64" it used to ask for was refused as out of range).
    td.run([
        "filters", m, "--layer", "conv2", "--recipe", "lucid", "--steps", "2", "--out", "all",
    ])
    .success();
    let index: Json =
        serde_json::from_str(&std::fs::read_to_string(td.path("all/index.json")).unwrap()).unwrap();
    assert_eq!(index["pictures"].as_array().unwrap().len(), 5);
    let o = td.run([
        "filters",
        m,
        "--layer",
        "conv2",
        "--recipe",
        "lucid",
        "--filters",
        "5",
        "--out",
        "f3",
    ]);
    assert!(
        o.one_line_error().contains("out of range"),
        "{}",
        o.one_line_error()
    );
    let o = td.run([
        "filters", m, "--layer", "conv2", "--recipe", "lucid", "--tv", "0.1", "--out", "f2",
    ]);
    assert!(o.one_line_error().contains("--tv"));
}
