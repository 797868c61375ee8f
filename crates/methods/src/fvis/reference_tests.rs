//! Pins against Lucent, horama, kornia, torchvision and torch.optim: the numbers in
//! tests/data/reference/fvis_reference.json come from their own functions
//! (scripts/reference/fvis_reference.py).

use serde_json::Value;

use super::optimizer::{Optimizer, Rule};
use super::param::{recorrelate, Fourier, Maco, Parameterization};
use super::spectrum::Spectrum;
use super::transform::{apply, Step};
use super::Planes;

fn reference() -> Value {
    let text = include_str!("../../../../tests/data/reference/fvis_reference.json");
    serde_json::from_str(text).expect("valid JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0f32, f32::max);
    assert!(worst < tol, "{what}: worst difference {worst}");
}

#[test]
fn fourier_image_and_gradient_equal_lucents() {
    let r = reference();
    for (h, w) in [(6usize, 8usize), (5, 7)] {
        let case = &r[format!("fourier_{h}x{w}")];
        let fourier = Fourier::lucid((h, w));
        let params = floats(&case["params"]);
        let img = fourier.image(&params);
        assert_close(&img.data, &floats(&case["image"]), 2e-6, "image");
        let g = Planes::new(3, h, w, floats(&case["grad_image"]));
        let grad = fourier.pull_back(&params, &g);
        assert_close(&grad, &floats(&case["grad_params"]), 1e-5, "gradient");
    }
}

#[test]
fn decorrelation_equals_lucents() {
    let r = reference();
    let mut x = Planes::new(3, 2, 2, floats(&r["decorrelate"]["input"]));
    recorrelate(&mut x);
    assert_close(
        &x.data,
        &floats(&r["decorrelate"]["output"]),
        1e-6,
        "decorrelate",
    );
}

#[test]
fn maco_image_and_gradient_equal_horamas() {
    let r = reference();
    let case = &r["maco_8x10"];
    let (h, w) = (8, 10);
    // A spectrum measured at this very size resamples to itself.
    let magnitude = floats(&case["magnitude"]);
    let spectrum = Spectrum::from_npy(&convscope_image::npy_bytes_f32(&[3, 8, 6], &magnitude))
        .expect("3 x 8 x 6");
    let maco = Maco::new((h, w), &spectrum);
    assert_eq!(maco.magnitude(), &magnitude[..]);
    let phase = floats(&case["phase"]);
    let img = maco.image(&phase);
    assert_close(&img.data, &floats(&case["image"]), 2e-5, "image");
    let g = Planes::new(3, h, w, floats(&case["grad_image"]));
    let grad = maco.pull_back(&phase, &g);
    assert_close(&grad, &floats(&case["grad_phase"]), 1e-4, "gradient");
}

#[test]
fn transform_geometry_equals_lucent_kornia_torchvision() {
    let r = reference();
    let t = &r["transforms"];
    let (h, w) = (10, 12);
    let x = Planes::new(3, h, w, floats(&t["input"]));
    let check = |steps: &[Step], want: &Value, what: &str| {
        let y = apply(steps, &x);
        assert_close(&y.data, &floats(want), 1e-5, what);
    };
    check(
        &[Step::Pad {
            left: 3,
            right: 3,
            top: 3,
            bottom: 3,
            value: 0.5,
        }],
        &t["pad3"],
        "pad",
    );
    check(
        &[Step::Translate { dy: 3, dx: 2 }],
        &t["translate_dx2_dy3"],
        "translate",
    );
    for (s, key) in [(0.9f32, "scale_0.9"), (1.1, "scale_1.1")] {
        // Lucent's random_scale: resize to ⌈s·d⌉, then pad ⌈(d − s·d)/2⌉ when smaller.
        let (sh, sw) = (
            (s * h as f32).ceil() as usize,
            (s * w as f32).ceil() as usize,
        );
        let mut steps = vec![Step::Resize {
            height: sh,
            width: sw,
        }];
        let (py, px) = (
            ((h as f32 - sh as f32) / 2.0).ceil().max(0.0) as usize,
            ((w as f32 - sw as f32) / 2.0).ceil().max(0.0) as usize,
        );
        if py > 0 || px > 0 {
            steps.push(Step::Pad {
                left: py,
                right: px,
                top: py,
                bottom: px,
                value: 0.0,
            });
        }
        let shape: Vec<usize> = t[key]["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let y = apply(&steps, &x);
        assert_eq!(vec![3, y.height, y.width], shape, "{key} shape");
        check(&steps, &t[key]["values"], key);
    }
    for a in [7.0f32, -10.0] {
        check(
            &[Step::Rotate { degrees: a }],
            &t[format!("rotate_{a}")],
            "rotate",
        );
    }
    let b = floats(&t["roi_align_box"]);
    check(
        &[Step::Crop {
            bbox: [b[0], b[1], b[2], b[3]],
            height: 5,
            width: 4,
        }],
        &t["roi_align_5x4"],
        "roi_align",
    );
    check(
        &[Step::Crop {
            bbox: [0.0, 0.0, 12.0, 10.0],
            height: 3,
            width: 3,
        }],
        &t["roi_align_full_3x3"],
        "roi_align (full)",
    );
}

#[test]
fn optimizers_equal_torch() {
    let r = reference();
    for (key, rule) in [("adam", Rule::Adam), ("nadam", Rule::NAdam)] {
        let case = &r["optimizers"][key];
        let mut x = floats(&case["start"]);
        let lr = case["lr"].as_f64().unwrap() as f32;
        let mut opt = Optimizer::new(rule, lr, x.len());
        for g in case["grads"].as_array().unwrap() {
            opt.ascend(&mut x, &floats(g));
        }
        assert_close(&x, &floats(&case["end"]), 1e-5, key);
    }
}
