//! Feature visualization through the facade (`Model::visualize`), as a Rust user calls it: every
//! objective kind improves under every recipe it is meant for, the same seed gives the same
//! bytes, `index.json` lists every picture, and bad specs are one-line errors. On the embedded
//! demo model (no files), plus EfficientNet-Lite0 from `../shared` for a class objective through
//! a graph that fixes its batch at 1.

use convscope::output::Files;
use convscope::prelude::*;
use convscope::visualize::spectrum_from_dir;
use convscope_test_support::{shared, TempDir};

/// Small and quick: a 64-pixel picture seen at the demo model's 160, few steps. MaCo keeps its
/// own shape, a picture twice the view whose crops are seen at or below their resolution: its
/// crops of a small picture, blown up to the view, move an objective that compares positions
/// (caricature) too little to see in 64 steps.
fn quick(spec: &str, recipe: Recipe, steps: usize) -> VisualizeConfig {
    VisualizeConfig {
        recipe,
        steps: Some(steps),
        size: (recipe != Recipe::Maco).then_some(Size::square(64)),
        ..VisualizeConfig::objective(spec)
    }
}

/// The objective rises during the optimisation: its mean over the last quarter of the steps
/// (each under that step's random transformations) is above the first quarter's; with no
/// transformations (walkthrough) the finished picture is also above the first step.
#[track_caller]
fn improves(model: &Model, cfg: &VisualizeConfig) -> Visualization {
    let vis = model.visualize(cfg).unwrap();
    for p in &vis.pictures {
        let q = (p.curve.len() / 4).max(1);
        let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
        let (first, last) = (mean(&p.curve[..q]), mean(&p.curve[p.curve.len() - q..]));
        assert!(
            last > first && last - first > 1e-3 * first.abs(),
            "{} under {}: first quarter {first}, last quarter {last}",
            p.objective,
            vis.recipe.name(),
        );
        if vis.recipe == Recipe::Walkthrough {
            assert!(
                p.value > p.curve[0],
                "{}: {} -> {}",
                p.objective,
                p.curve[0],
                p.value
            );
        }
    }
    vis
}

#[test]
fn every_objective_kind_improves() {
    let model = Model::demo().unwrap();
    let td = TempDir::new("fvis-objectives");
    // A direction in conv2's channel space from a .npy the test writes; an image for
    // inversion, caricature and a direction read at a point of a real picture.
    let acts = model
        .activations(
            &convscope::demo_scene().image,
            &ActivationsConfig::layers("conv2"),
        )
        .unwrap();
    let (channels, _, _) = acts.layers()[0].spatial().unwrap();
    let dir: Vec<f32> = (0..channels).map(|k| ((k * 7) % 5) as f32 - 2.0).collect();
    let npy = td.path("dir.npy");
    std::fs::write(
        &npy,
        convscope::lower::image::npy_bytes_f32(&[channels], &dir),
    )
    .unwrap();
    let scene = td.path("scene.png");
    convscope::demo_scene()
        .image
        .to_picture()
        .save(&scene)
        .unwrap();
    let (npy, scene) = (npy.display().to_string(), scene.display().to_string());
    let specs = [
        "conv2:3".to_string(),
        "conv2:3@5,6".to_string(),
        format!("conv2:dir={npy}"),
        format!("conv2:dir={scene}@10,10"),
        "class:1".to_string(),
        "class:circle".to_string(),
        "-conv2:3".to_string(),
        "conv2:1 + 0.5*conv3:2 - conv1:0".to_string(),
        format!("invert={scene}@conv2"),
        format!("caricature={scene}@conv2"),
    ];
    for spec in &specs {
        for recipe in [Recipe::Walkthrough, Recipe::Lucid, Recipe::Maco] {
            // MaCo turns only phases: it needs more steps to move an objective as far.
            let steps = if recipe == Recipe::Maco { 64 } else { 24 };
            improves(&model, &quick(spec, recipe, steps));
        }
    }
}

/// Under MaCo, objectives that read positions get crops that keep positions in place, the
/// others MaCo's own, picture by picture in one pass: each picture of a mixed call is byte for
/// byte the one a call of only its kind makes at the same index.
#[test]
fn maco_crops_each_picture_of_a_mixed_call_by_its_own_kind() {
    let model = Model::demo().unwrap();
    let run = |specs: &[&str]| {
        let cfg = VisualizeConfig {
            objectives: specs.iter().map(|s| s.to_string()).collect(),
            ..quick("conv2:3", Recipe::Maco, 3)
        };
        model.visualize(&cfg).unwrap().pictures
    };
    let mixed = run(&["conv2:3@5,6", "conv2:3"]);
    let positional = run(&["conv2:3@5,6", "conv2:1@2,2"]);
    let plain = run(&["conv2:1", "conv2:3"]);
    let bytes = |p: &convscope::VisualPicture| p.picture.rgb().as_raw().clone();
    assert_eq!(bytes(&mixed[0]), bytes(&positional[0]));
    assert_eq!(bytes(&mixed[1]), bytes(&plain[1]));
    assert_eq!(mixed[0].curve, positional[0].curve);
    assert_eq!(mixed[1].curve, plain[1].curve);
}

#[test]
fn diversity_makes_the_pictures_of_one_objective_differ() {
    let model = Model::demo().unwrap();
    let run = |diversity: f32| {
        let cfg = VisualizeConfig {
            batch: 2,
            diversity,
            ..quick("conv2:3", Recipe::Lucid, 32)
        };
        let vis = model.visualize(&cfg).unwrap();
        assert_eq!(vis.pictures.len(), 2);
        let (a, b) = (
            vis.pictures[0].picture.rgb().as_raw(),
            vis.pictures[1].picture.rgb().as_raw(),
        );
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>()
            / a.len() as f64
    };
    let (plain, diverse) = (run(0.0), run(100.0));
    assert!(
        diverse > plain,
        "mean |a-b|: {plain} without, {diverse} with"
    );
}

#[test]
fn same_seed_same_bytes_and_index_lists_every_picture() {
    let model = Model::demo().unwrap();
    let cfg = |seed| VisualizeConfig {
        seed,
        ..quick("conv1:0..3", Recipe::Lucid, 8)
    };
    let write = |seed| {
        let mut files = Files::default();
        model
            .visualize(&cfg(seed))
            .unwrap()
            .write(&mut files)
            .unwrap();
        files
    };
    let (a, b, c) = (write(7), write(7), write(8));
    assert_eq!(a, b);
    assert_ne!(a.get("000_conv1_0.png"), c.get("000_conv1_0.png"));
    let index: serde_json::Value =
        serde_json::from_slice(a.get("index.json").expect("index.json")).unwrap();
    let pictures = index["pictures"].as_array().unwrap();
    assert_eq!(pictures.len(), 3);
    for (k, p) in pictures.iter().enumerate() {
        assert_eq!(p["objective"], format!("conv1:{k}"));
        let file = p["file"].as_str().unwrap();
        assert!(a.get(file).is_some(), "{file} is listed but not written");
        assert!(p["value"].as_f64().unwrap().is_finite());
    }
    assert!(a.get("grid.png").is_some());
    assert_eq!(index["recipe"], "lucid");
}

#[test]
fn bad_objectives_are_one_line_errors() {
    let model = Model::demo().unwrap();
    for (spec, needle) in [
        ("nosuchlayer:0", "nosuchlayer"),
        ("conv2:999", "out of range"),
        ("conv2:1@500,1", "outside"),
        ("class:99", "out of range"),
        ("class:unicorn", "unicorn"),
        ("conv2:dir=/no/such.npy", "/no/such.npy"),
        ("invert=/no/such.png@conv2", "/no/such.png"),
        ("conv2", "not an objective"),
        ("", "empty"),
        ("conv2:0..4 + conv1:0", "one channel per term"),
    ] {
        let err = model
            .visualize(&quick(spec, Recipe::Walkthrough, 2))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(needle) && !err.contains('\n'),
            "{spec:?}: {err}"
        );
    }
    let bad = [
        VisualizeConfig {
            batch: 0,
            ..quick("conv1:0", Recipe::Lucid, 2)
        },
        VisualizeConfig {
            diversity: 1.0,
            ..quick("conv1:0", Recipe::Lucid, 2)
        },
        VisualizeConfig {
            diversity: f32::NAN,
            batch: 2,
            ..quick("conv1:0", Recipe::Lucid, 2)
        },
        VisualizeConfig {
            steps: Some(0),
            ..quick("conv1:0", Recipe::Lucid, 2)
        },
        VisualizeConfig {
            lr: Some(-1.0),
            ..quick("conv1:0", Recipe::Lucid, 2)
        },
    ];
    for cfg in bad {
        assert!(model.visualize(&cfg).is_err(), "{cfg:?}");
    }
    assert!("lucent".parse::<Recipe>().is_err());
    assert_eq!("MaCo".parse::<Recipe>().unwrap(), Recipe::Maco);
}

/// `--spectrum-from`: a spectrum measured on the user's pictures, and refusals for a folder
/// without any.
#[test]
fn spectrum_from_a_folder() {
    let td = TempDir::new("fvis-spectrum");
    let empty = td.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = spectrum_from_dir(&empty, 64).unwrap_err().to_string();
    assert!(err.contains("no pictures"), "{err}");
    let pictures = td.path("pictures");
    std::fs::create_dir_all(&pictures).unwrap();
    convscope::demo_scene()
        .image
        .to_picture()
        .save(pictures.join("scene.png"))
        .unwrap();
    let spectrum = spectrum_from_dir(&pictures, 64).unwrap();
    assert_eq!(spectrum.size(), (64, 64));
    let model = Model::demo().unwrap();
    let cfg = VisualizeConfig {
        spectrum: Some(std::sync::Arc::new(spectrum)),
        ..quick("conv2:3", Recipe::Maco, 16)
    };
    improves(&model, &cfg);
}

/// EfficientNet-Lite0's exported Flatten reshapes to `[1, -1]`, so its logits run one picture
/// per pass; a class objective still improves (before the fix: "Gemm of [16, ...]").
#[test]
fn class_logits_of_a_fixed_batch_graph() {
    let Some(path) = shared("models/efficientnet_lite0.onnx") else {
        return;
    };
    let model = Model::load(&path).unwrap().with_input(InputConfig {
        preprocess: Preprocess::Imagenet,
        ..InputConfig::default()
    });
    let cfg = VisualizeConfig {
        objectives: vec!["class:309".into(), "class:1".into()],
        steps: Some(6),
        size: Some(Size::square(224)),
        ..VisualizeConfig::default()
    };
    let vis = improves(&model, &cfg);
    assert_eq!(vis.pictures.len(), 2);
    let err = model
        .visualize(&VisualizeConfig {
            batch: 2,
            diversity: 1.0,
            ..cfg
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("fixes its batch"), "{err}");
}
