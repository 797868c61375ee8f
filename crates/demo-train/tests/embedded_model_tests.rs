//! The embedded demo model of `convscope-demo`, checked through the engine: it loads,
//! classifies fresh scenes, and its Grad-CAM maps point at the shapes.

use convscope_demo::scene::{derive_seed, scene_with_all_classes, BBox, Sample};
use convscope_demo::{
    demo_model_bytes, demo_model_json, demo_scene, CAM_LAYER, CAM_VALUE, CLASSES, DEMO_SCENE_SEED,
    DEMO_SCENE_SIZE, INPUT_SIZE, LOGITS, OUTPUT,
};
use convscope_demo_train::{demo_model, image_tensor};
use convscope_engine::{Model, Tensor, ValueId};
use convscope_test_support::argmax;

/// Seeds of the test scenes: neither the training (20 240 601) nor the held-out stream.
const ACCURACY_SEED: u64 = 4_242_424;
const CAM_SEED: u64 = 5_151_515;

/// Pixels by which a shape's box is grown before testing whether a Grad-CAM peak is inside.
const CAM_MARGIN: usize = 4;

fn batch_tensor(samples: &[Sample]) -> Tensor {
    let mut data = Vec::with_capacity(samples.len() * 3 * INPUT_SIZE * INPUT_SIZE);
    for s in samples {
        data.extend(s.image.to_chw_unit());
    }
    Tensor::new(vec![samples.len(), 3, INPUT_SIZE, INPUT_SIZE], data).unwrap()
}

#[test]
fn embedded_model_loads_and_reads_like_its_architecture() {
    let bytes = demo_model_bytes();
    assert!(
        bytes.len() > 10_000 && bytes.len() < 300_000,
        "{} bytes",
        bytes.len()
    );
    let model = Model::from_bytes(bytes).unwrap();
    let names: Vec<&str> = model.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1",
            "pool1",
            "conv2",
            "pool2",
            "conv3",
            "pool3",
            "conv4",
            "gap",
            "classifier"
        ]
    );
    let spec = model.input_spec();
    assert_eq!((spec.name.as_str(), spec.channels), ("image", 3));
    assert_eq!(model.value_name(model.outputs()[0]), OUTPUT);
    assert_eq!(
        model.value_name(model.layer(CAM_LAYER).unwrap().value),
        CAM_VALUE
    );

    let meta: serde_json::Value = serde_json::from_str(demo_model_json()).unwrap();
    assert_eq!(meta["classes"], serde_json::json!(CLASSES));
    assert_eq!(meta["preprocessing"], "unit");
    assert_eq!(meta["input"]["height"], INPUT_SIZE);
    assert_eq!(meta["architecture"]["parameters"], model.parameter_count());
    assert!(meta["heldout"]["accuracy"].as_f64().unwrap() >= 0.95);
    assert_eq!(meta["demo_scene"]["seed"], DEMO_SCENE_SEED);
}

#[test]
fn embedded_model_classifies_fresh_scenes() {
    let model = demo_model().unwrap();
    let out = model.outputs()[0];
    let n = 300;
    let samples: Vec<Sample> = (0..n)
        .map(|i| Sample::generate(derive_seed(ACCURACY_SEED, i)))
        .collect();
    let mut correct = 0;
    let mut confusion = [[0usize; 4]; 4];
    for chunk in samples.chunks(50) {
        let probs = model
            .run_float(&batch_tensor(chunk), &[out])
            .unwrap()
            .remove(0);
        assert_eq!(probs.shape(), &[chunk.len(), 4]);
        for (s, p) in chunk.iter().zip(probs.data().chunks(4)) {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            let best = argmax(p);
            confusion[s.class.index()][best] += 1;
            correct += usize::from(best == s.class.index());
        }
    }
    let accuracy = correct as f64 / n as f64;
    eprintln!("accuracy on {n} fresh scenes: {accuracy:.3}; confusion {confusion:?}");
    assert!(
        accuracy >= 0.95,
        "accuracy {accuracy:.3}; confusion (true × predicted) {confusion:?}"
    );
}

/// Grad-CAM maps of `class_of(item)` for a batch: weights are the spatial means of
/// d(logit)/d(activation), the map is relu(Σ_k w_k A_k) at the activation's resolution.
fn grad_cam(
    model: &Model,
    x: &Tensor,
    class_of: impl Fn(usize) -> usize,
) -> (Vec<Vec<f32>>, usize, usize) {
    let logits: ValueId = model.resolve(LOGITS).unwrap();
    let act: ValueId = model.layer(CAM_LAYER).unwrap().value;
    let tape = model.forward(x, &[logits, act]).unwrap();
    let a = tape.value(act).unwrap().clone();
    let (n, k, h, w) = (a.shape()[0], a.shape()[1], a.shape()[2], a.shape()[3]);
    let mut seed = Tensor::zeros(tape.value(logits).unwrap().shape());
    for i in 0..n {
        seed.data_mut()[i * 4 + class_of(i)] = 1.0;
    }
    let grads = tape.backward(vec![(logits, seed)], &[act]).unwrap();
    let g = &grads.values[&act];
    let cams = (0..n)
        .map(|i| {
            let mut cam = vec![0.0f32; h * w];
            for c in 0..k {
                let off = (i * k + c) * h * w;
                let weight = g.data()[off..off + h * w].iter().sum::<f32>() / (h * w) as f32;
                for (m, &v) in cam.iter_mut().zip(&a.data()[off..off + h * w]) {
                    *m += weight * v;
                }
            }
            cam.iter_mut().for_each(|v| *v = v.max(0.0));
            cam
        })
        .collect();
    (cams, h, w)
}

/// Bilinear resize (align_corners = false, edges clamped), as ONNX Resize and PyTorch do.
fn upsample(map: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let src = |o: usize, n_in: usize, n_out: usize| {
        let s = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, s - i0 as f32)
    };
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        let (y0, y1, fy) = src(y, h, oh);
        for x in 0..ow {
            let (x0, x1, fx) = src(x, w, ow);
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bottom = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out[y * ow + x] = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

/// `(x, y)` of the largest value (the first one on ties).
fn peak(map: &[f32], w: usize) -> (usize, usize) {
    let i = argmax(map);
    (i % w, i / w)
}

#[test]
fn upsampling_matches_align_corners_false() {
    // 2×2 → 4×4: PyTorch F.interpolate(..., mode="bilinear", align_corners=False).
    let up = upsample(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
    assert_eq!(&up[..4], &[0.0, 0.25, 0.75, 1.0]);
    assert_eq!(&up[4..8], &[0.5, 0.75, 1.25, 1.5]);
}

#[test]
fn grad_cam_peaks_inside_the_shape() {
    let model = demo_model().unwrap();
    let n = 100;
    let samples: Vec<Sample> = (0..n)
        .map(|i| Sample::generate(derive_seed(CAM_SEED, i)))
        .collect();
    let (cams, h, w) = grad_cam(&model, &batch_tensor(&samples), |i| {
        samples[i].class.index()
    });
    assert_eq!((h, w), (INPUT_SIZE / 8, INPUT_SIZE / 8));
    let mut misses: Vec<(u64, &str, (usize, usize), BBox)> = Vec::new();
    let mut strict_hits = 0;
    for (i, (s, cam)) in samples.iter().zip(&cams).enumerate() {
        let up = upsample(cam, h, w, INPUT_SIZE, INPUT_SIZE);
        let (px, py) = peak(&up, INPUT_SIZE);
        strict_hits += usize::from(s.bbox.contains(px, py, 0));
        if !s.bbox.contains(px, py, CAM_MARGIN) {
            misses.push((i as u64, s.class.name(), (px, py), s.bbox));
        }
    }
    let hits = n as usize - misses.len();
    eprintln!(
        "Grad-CAM peak inside the box: {hits}/{n} (grown by {CAM_MARGIN} px), \
         {strict_hits}/{n} (exact box)"
    );
    assert!(
        hits >= 95,
        "{hits}/{n} peaks inside their box; misses: {misses:?}"
    );
}

#[test]
fn grad_cam_finds_every_class_in_the_demo_scene() {
    let model = demo_model().unwrap();
    let (pixels, width, height, boxes) = demo_scene();
    assert_eq!((width, height), (DEMO_SCENE_SIZE, DEMO_SCENE_SIZE));
    let scene = scene_with_all_classes(DEMO_SCENE_SEED, DEMO_SCENE_SIZE);
    assert_eq!(scene.image.data, pixels);
    assert_eq!(scene.boxes, boxes);
    let x = image_tensor(&scene.image);
    for (class, b) in boxes.iter().enumerate() {
        let (cams, h, w) = grad_cam(&model, &x, |_| class);
        assert_eq!((h, w), (height / 8, width / 8));
        let up = upsample(&cams[0], h, w, height, width);
        let (px, py) = peak(&up, width);
        eprintln!(
            "demo scene, {}: peak at ({px}, {py}), box {b:?}",
            CLASSES[class]
        );
        assert!(
            b.contains(px, py, CAM_MARGIN),
            "{}: peak at ({px}, {py}), box {b:?}",
            CLASSES[class]
        );
    }
}
