//! Every Conv, activation and pool output of the two real models against onnxruntime, and input
//! gradients against PyTorch autograd (values from `scripts/reference/make_reference.py`).

mod common;

use common::*;
use convscope_engine::{Model, Tensor};

/// Checks one forward reference file: every tensor's channel sums and patches within
/// `1e-4 × max|reference|`.
fn check_forward(model_file: &str, json: &str, input: Tensor) {
    let Some(path) = shared(model_file) else {
        return;
    };
    let model = Model::load(&path).expect("load model");
    let reference = load_json(json);
    let tensors = reference["tensors"].as_array().unwrap();
    let ids: Vec<_> = tensors
        .iter()
        .map(|t| {
            model
                .resolve(t["name"].as_str().unwrap())
                .expect("value exists")
        })
        .collect();
    let values = model.run_float(&input, &ids).expect("run");
    let mut worst = 0.0f64;
    for (t, v) in tensors.iter().zip(&values) {
        let name = t["name"].as_str().unwrap();
        assert_eq!(v.shape(), usizes(&t["shape"]).as_slice(), "{name} shape");
        let max_abs = t["max_abs"].as_f64().unwrap().max(1e-12);
        let tol = 1e-4 * max_abs;
        if v.rank() == 4 {
            let [_, c, h, w] = *v.shape() else {
                unreachable!()
            };
            let sums = f32s(&t["channel_sums"]);
            for (k, &want) in sums.iter().enumerate() {
                let got: f64 = v.data()[k * h * w..(k + 1) * h * w]
                    .iter()
                    .map(|&x| x as f64)
                    .sum();
                // A sum of h·w values may drift by at most h·w times the element tolerance.
                assert!(
                    (got - want as f64).abs() <= tol * (h * w) as f64 + 1e-6 * want.abs() as f64,
                    "{name} channel {k} sum {got} vs {want}"
                );
            }
            for p in t["patches"].as_array().unwrap() {
                let (ch, r0, c0) = (
                    p["channel"].as_u64().unwrap() as usize,
                    p["row0"].as_u64().unwrap() as usize,
                    p["col0"].as_u64().unwrap() as usize,
                );
                let (rows, cols) = (
                    p["rows"].as_u64().unwrap() as usize,
                    p["cols"].as_u64().unwrap() as usize,
                );
                assert!(ch < c);
                let want = f32s(&p["values"]);
                for r in 0..rows {
                    for cc in 0..cols {
                        let got = v.data()[(ch * h + r0 + r) * w + c0 + cc] as f64;
                        let diff = (got - want[r * cols + cc] as f64).abs();
                        worst = worst.max(diff / max_abs);
                        assert!(
                            diff <= tol,
                            "{name} ch {ch} ({},{}) {got} vs {}",
                            r0 + r,
                            c0 + cc,
                            want[r * cols + cc]
                        );
                    }
                }
            }
        } else if !t["values"].is_null() {
            let want = f32s(&t["values"]);
            for (i, (&g, &w)) in v.data().iter().zip(&want).enumerate() {
                let diff = (g as f64 - w as f64).abs();
                worst = worst.max(diff / max_abs);
                assert!(diff <= tol, "{name}[{i}] {g} vs {w}");
            }
        }
    }
    eprintln!(
        "{model_file}: {} tensors agree; worst patch error {worst:.2e} × max|ref|",
        tensors.len()
    );
}

#[test]
fn vgg16_forward_matches_onnxruntime() {
    let Some(x) = vgg_input() else { return };
    check_forward("models/vgg16_tumor.onnx", "vgg16_tumor_forward.json", x);
}

#[test]
fn efficientnet_forward_matches_onnxruntime() {
    let Some(x) = effnet_input() else { return };
    check_forward(
        "models/efficientnet_lite0.onnx",
        "efficientnet_lite0_forward.json",
        x.clone(),
    );
    // Asked for the logits alone, the inference pass fuses each residual Add into the
    // projection before it (the layer outputs asked for above are never fused away), so the
    // fused path meets onnxruntime here: its five largest logits.
    let model = Model::load(&shared("models/efficientnet_lite0.onnx").unwrap()).unwrap();
    let logits = model.resolve("logits").unwrap();
    let got = model.run_float(&x, &[logits]).unwrap().remove(0);
    let reference = load_json("efficientnet_lite0_forward.json");
    let top5 = reference["classification"]["top5"].as_array().unwrap();
    let largest = top5
        .iter()
        .map(|e| e["logit"].as_f64().unwrap().abs())
        .fold(0.0, f64::max);
    for entry in top5 {
        let (i, want) = (
            entry["index"].as_u64().unwrap() as usize,
            entry["logit"].as_f64().unwrap(),
        );
        let diff = (got.data()[i] as f64 - want).abs();
        assert!(
            diff <= 1e-4 * largest,
            "logit {i}: {} vs onnxruntime's {want}",
            got.data()[i]
        );
    }
}

/// Compares a gradient with the reference's fixed positions, patches and totals.
fn check_gradient(grad: &Tensor, reference: &serde_json::Value, rel: f64) {
    let g = &reference["gradient"]["f32"];
    let max_abs = g["max_abs"].as_f64().unwrap();
    let strides = convscope_engine::strides_of(grad.shape());
    for p in reference["positions"].as_array().unwrap() {
        let idx = usizes(&p["index"]);
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        let (got, want) = (grad.data()[off] as f64, p["f64"].as_f64().unwrap());
        assert!(
            (got - want).abs() <= rel * max_abs,
            "gradient at {idx:?}: {got} vs {want}"
        );
    }
    let got_max = grad.data().iter().fold(0.0f32, |m, &v| m.max(v.abs())) as f64;
    assert!(
        (got_max - max_abs).abs() <= rel * max_abs,
        "max |grad| {got_max} vs {max_abs}"
    );
    let got_l1: f64 = grad.data().iter().map(|&v| v.abs() as f64).sum();
    let want_l1 = g["sum_abs"].as_f64().unwrap();
    assert!(
        (got_l1 - want_l1).abs() <= rel * want_l1,
        "sum |grad| {got_l1} vs {want_l1}"
    );
}

#[test]
fn vgg16_block3_conv1_gradient_matches_pytorch() {
    let Some(path) = shared("models/vgg16_tumor.onnx") else {
        return;
    };
    let Some(crop) = chelsea_crop(75, 225, 150, 300) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let reference = load_json("vgg16_block3_conv1_grad.json");
    let layer = model
        .layer("block3_conv1")
        .expect("friendly name block3_conv1");
    assert_eq!(
        model.value_name(layer.value),
        "functional_1/block3_conv1_1/Relu:0"
    );
    let x = Tensor::new(vec![1, 150, 150, 3], crop).unwrap();
    let tape = model.forward(&x, &[layer.value]).unwrap();
    let act = tape.value(layer.value).unwrap();
    let [_, c, h, w] = *act.shape() else { panic!() };
    assert_eq!((c, h, w), (256, 37, 37));
    let objective: f64 =
        act.data()[..h * w].iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64;
    let want = reference["objective"]["value_f64"].as_f64().unwrap();
    assert!(
        (objective - want).abs() <= 1e-5 * want.abs(),
        "objective {objective} vs {want}"
    );
    let mut seed = Tensor::zeros(act.shape());
    seed.data_mut()[..h * w].fill(1.0 / (h * w) as f32);
    let grads = tape.backward(vec![(layer.value, seed)], &[]).unwrap();
    assert_eq!(grads.input.shape(), &[1, 150, 150, 3]);
    check_gradient(&grads.input, &reference, 1e-3);
}

#[test]
fn efficientnet_logit_gradient_and_gradcam_match_pytorch() {
    let Some(path) = shared("models/efficientnet_lite0.onnx") else {
        return;
    };
    let Some(x) = effnet_input() else { return };
    let model = Model::load(&path).unwrap();
    let reference = load_json("efficientnet_lite0_logit285_grad.json");
    let logits = model.resolve("logits").unwrap();
    let feature = model.resolve("/_swish_1/Clip_output_0").unwrap();
    let tape = model.forward(&x, &[logits]).unwrap();
    let y = tape.value(logits).unwrap();
    let want = reference["objective"]["value_f64"].as_f64().unwrap();
    assert!((y.data()[285] as f64 - want).abs() < 1e-4 * want.abs());
    let mut seed = Tensor::zeros(y.shape());
    seed.data_mut()[285] = 1.0;
    let grads = tape.backward(vec![(logits, seed)], &[feature]).unwrap();
    // ReLU6 units near a clip boundary make single elements differ between f32 and f64 runs
    // (the reference notes up to 1e-3 of max|grad|), so positions get a looser bound here.
    check_gradient(&grads.input, &reference, 2e-3);
    // Grad-CAM at the last feature map: weights = spatial mean of the gradient.
    let a = tape.value(feature).unwrap();
    let ga = &grads.values[&feature];
    let [_, c, h, w] = *a.shape() else { panic!() };
    let mut cam = vec![0.0f64; h * w];
    for k in 0..c {
        let wk: f64 = ga.data()[k * h * w..(k + 1) * h * w]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / (h * w) as f64;
        for (c, &av) in cam.iter_mut().zip(&a.data()[k * h * w..(k + 1) * h * w]) {
            *c += wk * av as f64;
        }
    }
    let want = f32s(&reference["gradcam"]["cam"]);
    let peak = want.iter().fold(0.0f32, |m, &v| m.max(v)) as f64;
    for (p, (&got, &w)) in cam.iter().zip(&want).enumerate() {
        assert!(
            (got.max(0.0) - w as f64).abs() <= 1e-3 * peak,
            "cam[{p}] {got} vs {w}"
        );
    }
}
