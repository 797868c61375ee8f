//! Keras files through the facade: `vgg16_tumor.keras` (the same network and weights as
//! `vgg16_tumor.onnx`, rebuilt in Keras 3) gives the ONNX model's activations at every conv
//! layer, its layer names, Keras's own parameter count and the same Grad-CAM; the committed
//! fixtures load by content, whatever their extension.

use convscope::prelude::*;
use convscope_engine::Tensor;
use convscope_test_support::shared;

fn vgg_pair() -> Option<(Model, Model)> {
    let keras = shared("models/vgg16_tumor.keras")?;
    let onnx = shared("models/vgg16_tumor.onnx")?;
    Some((Model::load(keras).unwrap(), Model::load(onnx).unwrap()))
}

/// A smooth, deterministic 240×240 RGB input in `0..1`.
fn vgg_input() -> Tensor {
    let (h, w) = (240, 240);
    let v = (0..h * w * 3)
        .map(|i| {
            let (y, x, c) = (i / (w * 3), (i / 3) % w, i % 3);
            (((y * 7 + x * 3 + c * 50) % 256) as f32) / 255.0
        })
        .collect();
    Tensor::new(vec![1, h, w, 3], v).unwrap()
}

#[test]
fn vgg16_keras_matches_onnx_at_every_conv_layer() {
    let Some((keras, onnx)) = vgg_pair() else {
        return;
    };
    let conv = |m: &Model| -> Vec<String> {
        m.layers()
            .iter()
            .filter(|l| l.ops.starts_with("Conv"))
            .map(|l| l.name.clone())
            .collect()
    };
    let names = conv(&keras);
    assert_eq!(names.len(), 13);
    assert_eq!(names, conv(&onnx), "same conv layer names");
    let all = |m: &Model| {
        m.layers()
            .iter()
            .map(|l| l.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(all(&keras), all(&onnx), "same layer names");
    let x = vgg_input();
    let ids = |m: &Model| -> Vec<_> {
        names
            .iter()
            .map(|n| m.engine().layer(n).unwrap().value)
            .collect()
    };
    let (kv, ov) = (
        keras.engine().run_float(&x, &ids(&keras)).unwrap(),
        onnx.engine().run_float(&x, &ids(&onnx)).unwrap(),
    );
    for ((name, a), b) in names.iter().zip(&kv).zip(&ov) {
        assert_eq!(a.shape(), b.shape(), "{name}");
        let max = b.data().iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a
            .data()
            .iter()
            .zip(b.data())
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(
            worst <= 1e-5 * max,
            "{name}: differs by {worst} (max {max})"
        );
    }
}

#[test]
fn vgg16_keras_summary_counts_keras_parameters() {
    let Some((keras, _)) = vgg_pair() else { return };
    let s = keras.summary().unwrap();
    // Keras's model.summary(): BatchNormalization keeps its moving statistics as weights.
    assert_eq!(s.total_params, 16_363_524);
    let text = keras.summary_text().unwrap();
    assert!(text.contains("block5_conv3"), "{text}");
    assert!(text.contains("16,363,524"), "{text}");
}

#[test]
fn vgg16_keras_gradcam_equals_onnx() {
    let Some((keras, onnx)) = vgg_pair() else {
        return;
    };
    let Some(path) = shared("images/chelsea.png") else {
        return;
    };
    let image = Image::open(path).unwrap();
    let (a, b) = (
        keras.gradcam(&image, Class(0)).unwrap(),
        onnx.gradcam(&image, Class(0)).unwrap(),
    );
    assert_eq!(a.layer(), b.layer());
    assert_eq!(a.size(), b.size());
    let max = b.raw().iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.0);
    for (p, q) in a.raw().iter().zip(b.raw()) {
        assert!((p - q).abs() <= 1e-4 * max, "{p} vs {q} (max {max})");
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    convscope_test_support::workspace_root()
        .join("crates/keras/tests/data")
        .join(name)
}

#[test]
fn keras_files_are_recognised_by_content_not_extension() {
    let dir = std::env::temp_dir().join(format!("convscope-keras-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, renamed) in [("catsdogs.keras", "a.bin"), ("catsdogs_k2.h5", "b.onnx")] {
        let to = dir.join(renamed);
        std::fs::copy(fixture(file), &to).unwrap();
        let m = Model::load(&to).unwrap_or_else(|e| panic!("{file}: {e}"));
        let names: Vec<_> = m.layers().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names[0], "conv2d", "{file}: {names:?}");
        assert!(names.contains(&"dense_1"), "{file}: {names:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rescaling_layer_sets_the_raw_pixel_preset() {
    let zoo = Model::load(fixture("zoo.keras")).unwrap();
    assert_eq!(zoo.input_config().preprocess, Preprocess::Raw);
    // A per-channel Rescaling later on does not change what the input rescaling set.
    let pre = Model::load(fixture("preprocessing.keras")).unwrap();
    assert_eq!(pre.input_config().preprocess, Preprocess::Raw);
    // Resizing then Rescaling at the input (Keras's guides start a model this way).
    let any = Model::load(fixture("any_size.keras")).unwrap();
    assert_eq!(any.input_config().preprocess, Preprocess::Raw);
    let plain = Model::load(fixture("catsdogs.keras")).unwrap();
    assert_eq!(plain.input_config().preprocess, Preprocess::Unit);
}

/// Every fixture's summary counts the parameters Keras's `model.summary()` printed when the
/// fixture was made (recorded as `params` in its JSON by scripts/keras/make_fixtures.py):
/// every weight in the file, an adapted Normalization's count included and a per-channel
/// Rescaling's config constants not.
#[test]
fn fixtures_count_the_parameters_keras_counts() {
    for json in [
        "catsdogs.json",
        "mobilenet_like.json",
        "nested.json",
        "zoo.json",
        "preprocessing.json",
        "resize_dense.json",
        "clash.json",
        "walkthrough_full.json",
        "any_size.json",
    ] {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(json)).unwrap()).unwrap();
        let keras = doc["params"].as_u64().unwrap() as usize;
        for file in doc["files"].as_array().unwrap() {
            let file = file.as_str().unwrap();
            let model = Model::load(fixture(file)).unwrap();
            assert_eq!(model.summary().unwrap().total_params, keras, "{file}");
        }
    }
}

/// Every fixture file's summary carries the rows Keras's own `model.summary()` printed for it
/// (recorded in `<fixture>.summary.json` by `make_fixtures.py --summary-rows`, which loads the
/// committed files back with Keras 3, and tf-keras for the Keras 2 files): per layer the name,
/// class, output shape as Keras prints it and `count_params()`, a nested model as one
/// `Functional` row, Sequential models without their InputLayer; the text shows the same
/// rows, and the selectable layers (`layers`) are still the engine's.
#[test]
fn summary_shows_the_rows_keras_prints() {
    let mut files = 0;
    for json in [
        "any_size",
        "catsdogs",
        "clash",
        "mobilenet_like",
        "nested",
        "preprocessing",
        "resize_dense",
        "walkthrough_full",
        "zoo",
    ] {
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("{json}.summary.json"))).unwrap(),
        )
        .unwrap();
        let rows = want["rows"].as_array().unwrap();
        for file in want["files"].as_array().unwrap() {
            let file = file.as_str().unwrap();
            let model = Model::load(fixture(file)).unwrap();
            let doc = model.summary().unwrap();
            let got = doc
                .keras_layers
                .as_ref()
                .expect("a Keras file has Keras rows");
            let got: Vec<(String, String, String, usize)> = got
                .iter()
                .map(|r| (r.name.clone(), r.class.clone(), r.shape_text(), r.params))
                .collect();
            let want_rows: Vec<(String, String, String, usize)> = rows
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap().to_string(),
                        r["class"].as_str().unwrap().to_string(),
                        r["output_shape"].as_str().unwrap().to_string(),
                        r["params"].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            assert_eq!(got, want_rows, "{file}");
            assert_eq!(
                doc.total_params,
                want["total_params"].as_u64().unwrap() as usize
            );
            let text = model.summary_text().unwrap();
            for (name, class, shape, _) in &want_rows {
                let row = format!("{name} ({class})");
                let line = text
                    .lines()
                    .find(|l| l.starts_with(&format!("{row} ")))
                    .unwrap_or_else(|| panic!("{file}: no row {row} in\n{text}"));
                assert!(line.contains(shape.as_str()), "{file}: {line}");
            }
            // The engine's rows, which --layers selects from, are still there.
            assert!(doc.layers.iter().all(|l| model.select_one(&l.name).is_ok()));
            files += 1;
        }
    }
    assert_eq!(files, 14);
}

/// The summary JSON of an ONNX model has no `keras_layers` field (the viewer and scripts read
/// the same fields as before).
#[test]
fn onnx_summary_json_has_no_keras_rows() {
    let doc = Model::demo().unwrap().summary().unwrap();
    assert!(doc.keras_layers.is_none());
    let json = serde_json::to_value(&doc).unwrap();
    assert!(json.get("keras_layers").is_none());
    for field in ["input", "producer", "opset", "layers", "total_params"] {
        assert!(json.get(field).is_some(), "{field}");
    }
}
