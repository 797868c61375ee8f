//! The library as a Rust user calls it: the demo model with no files, the README's example on
//! the shared EfficientNet checked against pytorch-grad-cam's numbers, and results written into
//! memory and into folders.

use std::sync::Arc;

use convscope::output::{Files, OutputDir, Sink};
use convscope::prelude::*;
use convscope::{Region, TargetRef};
use convscope_test_support::{pearson_f32 as pearson, shared, TempDir};

#[test]
fn the_demo_model_shows_everything_without_files() {
    let model = Model::demo().unwrap();
    let demo = convscope::demo_scene();
    let scene = demo.image.clone();
    let prediction = model.predict(&scene).unwrap();
    assert_eq!(prediction.classes(), 4);
    let sum: f32 = prediction.probabilities().iter().sum();
    assert!((sum - 1.0).abs() < 1e-4);
    // Every class of the demo scene has evidence somewhere, and its map peaks on its shape.
    for (class, (name, b)) in demo.shapes.iter().enumerate() {
        let cam = model.gradcam(&scene, Class(class)).unwrap();
        assert_eq!(cam.label(), name);
        assert!(!cam.all_zero());
        let (row, col) = cam.peak();
        let size = cam.size();
        let (y, x) = (
            (row as f64 + 0.5) * 160.0 / size.height as f64,
            (col as f64 + 0.5) * 160.0 / size.width as f64,
        );
        let margin = 160.0 / size.width as f64;
        assert!(
            x + margin >= b.x as f64
                && x - margin <= (b.x + b.width) as f64
                && y + margin >= b.y as f64
                && y - margin <= (b.y + b.height) as f64,
            "class {class}: peak at ({x}, {y}), shape at {b:?}"
        );
        let overlay = cam.overlay(&scene).unwrap();
        assert_eq!(overlay.size(), scene.size());
    }
    let acts = model
        .activations(&scene, &ActivationsConfig::default())
        .unwrap();
    assert!(acts.layers().len() >= 4);
    let mut files = Files::default();
    let index = acts
        .write(&mut files, &GridStyle::default(), &NoProgress)
        .unwrap();
    assert_eq!(index.layers.len(), acts.layers().len());
    for layer in &index.layers {
        for f in &layer.files {
            assert!(files.get(f).is_some(), "{f} listed but not written");
        }
    }
    assert!(files.get("index.html").is_some() && files.get("input.png").is_some());
}

#[test]
fn gradcam_through_the_facade_equals_pytorch_grad_cam() {
    let (Some(model_path), Some(image_path)) = (
        shared("models/efficientnet_lite0.onnx"),
        shared("images/chelsea.png"),
    ) else {
        return;
    };
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/reference/gradcam_efficientnet_lite0.json"
        ))
        .unwrap(),
    )
    .unwrap();
    // The reference's input: a 224×224 crop of the image (no resampling), ImageNet statistics.
    let image = Image::open(&image_path).unwrap().crop(Region {
        x: 113,
        y: 38,
        width: 224,
        height: 224,
    });
    let model = Model::load(&model_path).unwrap().with_input(InputConfig {
        preprocess: Preprocess::Imagenet,
        ..InputConfig::default()
    });
    let input = model.input(&image).unwrap();
    let first8: Vec<f32> = reference["input_stats"]["first8"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    // The same input up to float rounding (convscope folds /255, −mean, /std into one affine
    // map; the reference does three float32 operations).
    for (a, b) in input.tensor().data().iter().zip(&first8) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    for rec in reference["methods"]["gradcam"].as_array().unwrap() {
        let class = rec["target"].as_u64().unwrap() as usize;
        let cam = model.gradcam(&input, Class(class)).unwrap();
        assert_eq!(cam.layer(), "_conv_head");
        let want: Vec<f32> = rec["cam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let r = pearson(cam.raw(), &want);
        let max = want.iter().copied().fold(0.0f32, f32::max);
        let diff = cam
            .raw()
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(r >= 0.999, "class {class}: r = {r}");
        assert!(diff <= 1e-2 * max, "class {class}: {diff} of {max}");
    }
}

#[test]
fn the_readme_example_runs_on_a_real_model() {
    let (Some(model_path), Some(image_path)) = (
        shared("models/efficientnet_lite0.onnx"),
        shared("images/chelsea.png"),
    ) else {
        return;
    };
    let tmp = TempDir::new("readme");
    let dir = tmp.path("");
    // The example's own lines (examples/quickstart.rs, between its README markers).
    let model = Model::load(&model_path)
        .unwrap()
        .with_input(InputConfig::imagenet());
    let image = Image::open(&image_path).unwrap();
    let top = model.predict(&image).unwrap().best();
    assert_eq!(top, 285, "Egyptian cat");
    let cam = model.gradcam(&image, Class(top)).unwrap();
    // With the centre crop, the overlay on the original covers the part the model saw.
    let overlay = cam.overlay(&image).unwrap();
    assert_eq!(overlay.size(), Size::new(300, 300));
    overlay.save(dir.join("cam.png")).unwrap();
    let acts = model
        .activations(&image, &ActivationsConfig::layers("0"))
        .unwrap();
    let grid = acts.grid(0, &GridStyle::default()).unwrap();
    assert!(grid.size().width >= 16 * 48, "{:?}", grid.size());
    let filters = model.filters("0", &FiltersConfig::first(16)).unwrap();
    let picture = filters.picture(&TileStyle::default()).unwrap();
    assert_eq!(picture.size(), Size::square(4 * 150 + 3 * 5));
    picture.save(dir.join("filters.png")).unwrap();
    assert!(dir.join("cam.png").exists() && dir.join("filters.png").exists());
}

#[test]
fn the_readme_shows_the_example_that_runs() {
    let example = include_str!("../examples/quickstart.rs");
    let readme = include_str!("../../../README.md");
    let body: Vec<&str> = example
        .lines()
        .skip_while(|l| !l.contains("README: begin"))
        .skip(1)
        .take_while(|l| !l.contains("README: end"))
        .map(str::trim)
        .collect();
    assert!(body.len() >= 5 && body.len() < 15, "{} lines", body.len());
    let lib = include_str!("../src/lib.rs");
    for line in body {
        let line = line
            .replace("model_path", "\"efficientnet_lite0.onnx\"")
            .replace("image_path", "\"chelsea.png\"");
        assert!(readme.contains(&line), "the README lacks `{line}`");
        assert!(lib.contains(&line), "the crate docs lack `{line}`");
    }
}

#[test]
fn targets_beyond_one_class_reach_the_facade() {
    let model = Model::demo().unwrap();
    let scene = convscope::demo_scene().image;
    let both: TargetRef = Arc::new(Classes(vec![0, 1]));
    let set = model
        .cam(
            &scene,
            &CamConfig {
                method: "hirescam".into(),
                targets: vec![both, Arc::new(Class(0)), Arc::new(Class(1))],
                ..CamConfig::default()
            },
        )
        .unwrap();
    let [sum, a, b] = &set.maps[..] else {
        panic!("three maps")
    };
    assert_eq!(sum.target(), "0+1");
    assert!((sum.score() - (a.score() + b.score())).abs() < 1e-4);
    assert_eq!(sum.class(), None);
    assert_eq!(sum.probability(), None);
}

#[test]
fn results_write_into_folders_atomically() {
    let model = Model::demo().unwrap();
    let scene = convscope::demo_scene().image;
    let tmp = TempDir::new("facade");
    let dir = tmp.path("out");
    let set = model.cam(&scene, &CamConfig::default()).unwrap();
    let mut out = OutputDir::create(&dir).unwrap();
    let index = set.write(&mut out, &OverlayStyle::default(), true).unwrap();
    assert!(
        !dir.join("index.json").exists(),
        "nothing visible before commit"
    );
    out.commit().unwrap();
    for f in &index.targets[0].files {
        assert!(dir.join(f).exists(), "{f}");
    }
    // A failing style is refused before anything is written.
    let mut out = OutputDir::create(&dir).unwrap();
    let bad = OverlayStyle {
        alpha: f32::NAN,
        ..OverlayStyle::default()
    };
    assert!(set.write(&mut out, &bad, false).is_err());
    assert!(out.files().is_empty());
    drop(out);
    let mut files = Files::default();
    files.put_json("x.json", &index).unwrap();
    assert!(files.get("x.json").is_some());
}
