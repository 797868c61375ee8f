//! Transformer-era models end to end: a ViT-style and a ConvNeXt-style model built by
//! `transformer_models` (the way torchvision exports them) load, give their activations as
//! maps and their Grad-CAM family maps, with the token rule applied and checked by hand.

mod transformer_models;

use convscope_engine::{Model, Tensor};
use convscope_methods::activations::{compute_activations, default_selection};
use convscope_methods::cam::{method_names, run_cams, CamConfig};
use convscope_methods::target::classes;
use convscope_methods::tokens::{MapLayout, TokenConfig};
use transformer_models::{convnext_style, input, vit_style, CLASSES, GRID, SIDE, WIDTH};

fn x() -> Tensor {
    Tensor::new(vec![1, 3, SIDE, SIDE], input()).unwrap()
}

fn vit() -> Model {
    Model::from_proto(vit_style()).expect("the ViT-style model loads")
}

fn convnext() -> Model {
    Model::from_proto(convnext_style()).expect("the ConvNeXt-style model loads")
}

#[test]
fn layers_are_named_by_module_path() {
    let names: Vec<String> = vit().layers().iter().map(|l| l.name.clone()).collect();
    for want in [
        "conv_proj",
        "blocks.0.norm1",
        "blocks.1.mlp.fc1",
        "norm",
        "head",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let names: Vec<String> = convnext().layers().iter().map(|l| l.name.clone()).collect();
    for want in [
        "features.0.0",
        "features.1.0.block.0",
        "features.1.0.block.2",
        "classifier.2",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
}

#[test]
fn vit_gradcam_reads_the_last_blocks_norm1_as_a_grid() {
    let model = vit();
    let x = x();
    let run = run_cams(&model, &x, &CamConfig::default()).unwrap();
    // Not the final norm, whose patch tokens get no gradient through the class token.
    assert_eq!(run.layer_label, "blocks.1.norm1");
    assert_eq!(
        run.layout,
        MapLayout::Tokens {
            skip: 1,
            height: GRID,
            width: GRID
        }
    );
    assert_eq!(
        run.layout.describe().unwrap(),
        "tokens: class token dropped, 4x4 grid"
    );
    let cam = &run.cams[0];
    assert_eq!((cam.height, cam.width), (GRID, GRID));
    assert!(!cam.all_zero, "the map has positive evidence");

    // The same map by hand: tokens 1.. of the layer, in row-major grid order, weighted by the
    // mean gradient of each channel over the patch tokens.
    let tape = model.forward(&x, &[model.outputs()[0], run.layer]).unwrap();
    let class = cam.class.unwrap();
    let mut seed = Tensor::zeros(&[1, CLASSES]);
    seed.data_mut()[class] = 1.0;
    let g = tape
        .backward_to(vec![(model.outputs()[0], seed)], &[run.layer])
        .unwrap()
        .remove(&run.layer)
        .unwrap();
    let a = tape.value(run.layer).unwrap();
    assert_eq!(a.shape(), &[1, 1 + GRID * GRID, WIDTH]);
    let (ad, gd) = (a.data(), g.data());
    let n = GRID * GRID;
    let weights: Vec<f64> = (0..WIDTH)
        .map(|k| (1..=n).map(|t| gd[t * WIDTH + k] as f64).sum::<f64>() / n as f64)
        .collect();
    for pos in 0..n {
        let want: f64 = (0..WIDTH)
            .map(|k| weights[k] * ad[(1 + pos) * WIDTH + k] as f64)
            .sum::<f64>()
            .max(0.0);
        assert!(
            (cam.raw[pos] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "position {pos}: {} vs {want}",
            cam.raw[pos]
        );
    }
}

#[test]
fn every_cam_method_runs_on_tokens() {
    let model = vit();
    let x = x();
    for name in method_names() {
        let cfg = CamConfig {
            method: name.into(),
            targets: classes(&[1]),
            ..CamConfig::default()
        };
        let run = run_cams(&model, &x, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cam = &run.cams[0];
        assert_eq!(cam.raw.len(), GRID * GRID, "{name}");
        assert!(cam.raw.iter().all(|v| v.is_finite() && *v >= 0.0), "{name}");
    }
}

#[test]
fn token_overrides_apply_and_wrong_ones_are_refused() {
    let model = vit();
    let x = x();
    let cfg = CamConfig {
        tokens: "grid=2x8,skip=1".parse().unwrap(),
        ..CamConfig::default()
    };
    let run = run_cams(&model, &x, &cfg).unwrap();
    assert_eq!((run.cams[0].height, run.cams[0].width), (2, 8));
    // 17 tokens without dropping the class token are no 4x4 grid.
    let bad = CamConfig {
        layer: Some("blocks.1.norm1".into()),
        tokens: TokenConfig {
            grid: Some((4, 4)),
            skip: Some(0),
        },
        ..CamConfig::default()
    };
    let e = run_cams(&model, &x, &bad).expect_err("refused").to_string();
    assert!(e.contains("--tokens grid=4x4,skip=0"), "{e}");
}

#[test]
fn vit_activations_are_token_grids() {
    let model = vit();
    let x = x();
    let sel = default_selection(&model, &x).unwrap();
    let acts = compute_activations(&model, &x, &sel).unwrap();
    let norm1 = acts
        .iter()
        .find(|a| a.selected.label == "blocks.0.norm1")
        .expect("LayerNorm layers are selected by default");
    assert_eq!(norm1.values.shape(), &[1, WIDTH, GRID, GRID]);
    assert_eq!(
        norm1.layout.describe().unwrap(),
        "tokens: class token dropped, 4x4 grid"
    );
    // Channel 3 at grid position (1, 2) is token 1 + 1·4 + 2 of the layer's value.
    let raw = model
        .run_float(&x, &[model.resolve("blocks.0.norm1").unwrap()])
        .unwrap()
        .remove(0);
    assert_eq!(
        norm1.channel(3).unwrap()[GRID + 2],
        raw.data()[(1 + GRID + 2) * WIDTH + 3]
    );
}

#[test]
fn convnext_runs_end_to_end() {
    let model = convnext();
    let x = x();
    let run = run_cams(&model, &x, &CamConfig::default()).unwrap();
    // The last stage's residual Add, an NCHW feature map.
    assert_eq!(run.layer_label, "features.1.0_2");
    assert_eq!(run.layout, MapLayout::Nchw);
    assert!(!run.cams[0].all_zero);
    let sel = default_selection(&model, &x).unwrap();
    let acts = compute_activations(&model, &x, &sel).unwrap();
    // The LayerNorm inside the block works on NHWC; it is shown as channel maps.
    let ln = acts
        .iter()
        .find(|a| a.selected.label == "features.1.0.block.2")
        .expect("the block's LayerNorm is selected");
    assert_eq!(
        ln.layout,
        MapLayout::Nhwc {
            height: GRID,
            width: GRID
        }
    );
    assert_eq!(ln.values.shape(), &[1, WIDTH, GRID, GRID]);
}
