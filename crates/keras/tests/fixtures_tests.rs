//! Every fixture (written by real Keras through `scripts/keras/make_fixtures.py`) loads and
//! runs like Keras: every layer's output equals Keras's on the same input within 1e-4 of the
//! tensor's max, and the input gradient of one channel's mean equals TensorFlow's.

mod common;

use common::*;
use convscope_engine::Tensor;

fn check(file: &str, reference_name: &str) {
    let r = reference(reference_name);
    let model = load_for_values(file);
    let dims: Vec<usize> = r["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let mut x = fixed_input(dims[1], dims[2], dims[3]);
    // A model that wants raw pixels is fed the usual input times 255.
    if let Some(scale) = r.get("input_scale").and_then(|s| s.as_f64()) {
        x = Tensor::new(
            x.shape().to_vec(),
            x.data().iter().map(|v| v * scale as f32).collect(),
        )
        .unwrap();
    }
    let layers = r["layers"].as_array().unwrap();
    let ids: Vec<_> = layers
        .iter()
        .map(|l| {
            model
                .resolve(l["name"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{file}: {e}"))
        })
        .collect();
    let tape = model.forward(&x, &ids).unwrap();
    let mut worst = (0f32, String::new());
    for (l, id) in layers.iter().zip(&ids) {
        let (shape, values) = keras_order(tape.value(*id).unwrap());
        let e = compare(&format!("{file} {}", l["name"]), &shape, &values, l, 1e-4);
        if e >= worst.0 {
            worst = (e, l["name"].to_string());
        }
    }
    // The input gradient of mean(layer[..., channel]), of a channel that is not zero
    // everywhere (a dead ReLU's gradient is zero and would check nothing).
    let g = &r["gradient"];
    assert!(
        g["max_abs"].as_f64().unwrap() > 0.0,
        "{reference_name}: the reference gradient is zero"
    );
    let id = value_of(&model, g["layer"].as_str().unwrap());
    let tape = model.forward(&x, &[id]).unwrap();
    let v = tape.value(id).unwrap();
    let (c, hw) = (v.shape()[1], v.shape()[2] * v.shape()[3]);
    let ch = g["channel"].as_u64().unwrap() as usize;
    let mut seed = vec![0.0; c * hw];
    seed[ch * hw..(ch + 1) * hw].fill(1.0 / hw as f32);
    let seed = Tensor::new(v.shape().to_vec(), seed).unwrap();
    let grads = tape.backward(vec![(id, seed)], &[]).unwrap();
    let gi = &grads.input;
    let ge = compare(&format!("{file} gradient"), gi.shape(), gi.data(), g, 1e-4);
    // Seen with --nocapture: how close to Keras, relative to each tensor's max.
    eprintln!(
        "{file}: worst layer {} at {:.1e} of its max, input gradient {ge:.1e}",
        worst.1, worst.0
    );
}

#[test]
fn catsdogs_keras3_zip() {
    check("catsdogs.keras", "catsdogs.json");
}

#[test]
fn catsdogs_keras3_h5() {
    check("catsdogs_k3.h5", "catsdogs.json");
}

#[test]
fn catsdogs_keras2_h5() {
    check("catsdogs_k2.h5", "catsdogs.json");
}

/// The walk-through's network at full size (Conv2D 32/64/128/128, Dense 512, 3,453,121
/// parameters, 13.8 MB) as Keras 2 wrote it; its weights are quantised and its Dense kernel
/// mostly zero so git stores the file in about 1 MB.
#[test]
fn walkthrough_full_size_keras2_h5() {
    check("walkthrough_full_k2.h5", "walkthrough_full.json");
}

/// An input of any size, resized and rescaled inside the model (`Resizing` then
/// `Rescaling(1/255)`), fed a 26×31 picture of raw pixels.
#[test]
fn any_input_size_resized_inside() {
    check("any_size.keras", "any_size.json");
}

#[test]
fn nested_keras3_zip() {
    check("nested.keras", "nested.json");
}

#[test]
fn nested_keras2_h5() {
    check("nested_k2.h5", "nested.json");
}

#[test]
fn mobilenet_like() {
    check("mobilenet_like.keras", "mobilenet_like.json");
}

/// Rescaling to 0..1, an adapted Normalization, a per-channel Rescaling, and a Normalization
/// given its statistics in the config (keras.applications' EfficientNet starts this way).
#[test]
fn preprocessing_layers_keras3_zip() {
    check("preprocessing.keras", "preprocessing.json");
}

#[test]
fn preprocessing_layers_keras3_h5() {
    check("preprocessing_k3.h5", "preprocessing.json");
}

/// Resizing with a fixed output size (bilinear and nearest, shrinking and growing by factors
/// that are not whole numbers) and Dense on a 4-D map (per pixel) and on a token sequence.
#[test]
fn resizing_and_dense_of_rank_above_two_keras3_zip() {
    check("resize_dense.keras", "resize_dense.json");
}

#[test]
fn resizing_and_dense_of_rank_above_two_keras3_h5() {
    check("resize_dense_k3.h5", "resize_dense.json");
}

/// Two nested models each holding a layer named `conv`: both run like Keras by their full paths.
#[test]
fn same_layer_name_in_two_nested_models() {
    check("clash.keras", "clash.json");
}

/// The short name of a layer two nested models share is refused with one line naming both
/// paths; each full path resolves, to different values.
#[test]
fn a_short_name_two_nested_models_share_is_refused() {
    let model = load("clash.keras");
    let e = model.resolve("conv").unwrap_err().to_string();
    assert_eq!(
        e,
        "'conv' is ambiguous: it names inner_a/conv, inner_b/conv; give the full path"
    );
    let (a, b) = (
        model.resolve("inner_a/conv").unwrap(),
        model.resolve("inner_b/conv").unwrap(),
    );
    assert_ne!(a, b);
    let names: Vec<&str> = model.layers().iter().map(|l| l.name.as_str()).collect();
    assert!(
        names.contains(&"inner_a.conv") && names.contains(&"inner_b.conv"),
        "{names:?}"
    );
}

#[test]
fn zoo_of_other_layers() {
    check("zoo.keras", "zoo.json");
}

/// convscope's layers carry Keras's names, nested models' inner layers included, and the value
/// of a nested layer is also reachable by its full path.
#[test]
fn layer_names_are_keras_names() {
    let names = |file: &str| -> Vec<String> {
        load(file).layers().iter().map(|l| l.name.clone()).collect()
    };
    let cats = [
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "conv2d_2",
        "max_pooling2d_2",
        "conv2d_3",
        "max_pooling2d_3",
        "dense",
        "dense_1",
    ];
    for file in ["catsdogs.keras", "catsdogs_k3.h5", "catsdogs_k2.h5"] {
        assert_eq!(names(file), cats, "{file}");
    }
    let nested = load("nested.keras");
    let inner: Vec<_> = nested
        .layers()
        .iter()
        .map(|l| l.name.as_str())
        .take(5)
        .collect();
    assert_eq!(
        inner,
        [
            "block1_conv1",
            "block1_conv2",
            "block1_pool",
            "block2_conv1",
            "block2_pool"
        ]
    );
    assert!(nested.resolve("base/block2_conv1").is_ok());
    assert!(nested.resolve("base").is_ok());
}
