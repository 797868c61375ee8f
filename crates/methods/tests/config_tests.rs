//! Options that mean nothing (NaN, infinity, zero where a positive number is needed, sizes that
//! wrap) are refused with one line naming the option, before any work: they used to run and
//! draw NaN pictures, or print "input size 18446744073709551615" (`--octave-scale 0`).

use convscope_engine::{Model, Tensor};
use convscope_image::Normalize;
use convscope_methods::filters::{visualize_filters, FiltersConfig};
use convscope_methods::saliency::{compute_saliency, SaliencyConfig};
use convscope_onnx::{data_type, AttributeProto, Dim, GraphBuilder, TensorProto};

fn dims(v: &[i64]) -> Vec<Dim> {
    v.iter().map(|&d| Dim::Value(d)).collect()
}

/// x [1,3,12,12] (of `elem_type`) → Conv 3×3 (2 filters) → Relu → GlobalAveragePool →
/// Flatten → Gemm (3 classes).
fn model(elem_type: i32) -> Model {
    let w: Vec<f32> = (0..54).map(|i| ((i % 7) as f32 - 3.0) / 10.0).collect();
    let fc: Vec<f32> = (0..6).map(|i| i as f32 * 0.3 - 0.7).collect();
    let mut g = GraphBuilder::new("small");
    g.typed_input("x", elem_type, &dims(&[1, 3, 12, 12]))
        .initializer(TensorProto::from_f32("w", &[2, 3, 3, 3], &w))
        .initializer(TensorProto::from_f32("fc", &[3, 2], &fc))
        .node(
            "Conv",
            "conv",
            &["x", "w"],
            &["c"],
            vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", "relu", &["c"], &["r"], vec![])
        .node("GlobalAveragePool", "gap", &["r"], &["p"], vec![])
        .node("Flatten", "flat", &["p"], &["f"], vec![])
        .node(
            "Gemm",
            "head",
            &["f", "fc"],
            &["y"],
            vec![AttributeProto::int("transB", 1)],
        )
        .output("y", &[]);
    Model::from_proto(g.build(13)).unwrap()
}

fn small() -> FiltersConfig {
    FiltersConfig {
        filters: vec![0, 1],
        steps: 2,
        size: (12, 12),
        ..FiltersConfig::default()
    }
}

#[test]
fn meaningless_filter_options_are_refused_naming_the_option() {
    let m = model(data_type::FLOAT);
    let layer = m.resolve("r").unwrap();
    let cases: Vec<(FiltersConfig, &str)> = vec![
        (
            FiltersConfig {
                step: f32::NAN,
                ..small()
            },
            "step must be a finite number > 0, got NaN",
        ),
        (
            FiltersConfig {
                step: f32::INFINITY,
                ..small()
            },
            "step must be a finite number > 0, got inf",
        ),
        (
            FiltersConfig {
                step: 0.0,
                ..small()
            },
            "step must be a finite number > 0, got 0",
        ),
        (
            FiltersConfig {
                rotate: f32::NAN,
                ..small()
            },
            "rotate must be a finite number >= 0, got NaN",
        ),
        (
            FiltersConfig {
                scale: -0.1,
                ..small()
            },
            "scale must be a finite number in 0..1, got -0.1",
        ),
        (
            FiltersConfig {
                scale: 1.0,
                ..small()
            },
            "scale must be a finite number in 0..1, got 1",
        ),
        (
            FiltersConfig {
                tv: -1.0,
                ..small()
            },
            "tv must be a finite number >= 0, got -1",
        ),
        (
            FiltersConfig {
                l2: f32::NAN,
                ..small()
            },
            "l2 must be a finite number >= 0, got NaN",
        ),
        (
            FiltersConfig {
                octaves: 3,
                octave_scale: 0.0,
                ..small()
            },
            "octave-scale must be a finite number >= 1, got 0",
        ),
        (
            FiltersConfig {
                octaves: 3,
                octave_scale: f32::NAN,
                ..small()
            },
            "octave-scale must be a finite number >= 1, got NaN",
        ),
        (
            FiltersConfig {
                steps: 0,
                ..small()
            },
            "steps must be 1..=1000000, got 0",
        ),
        (
            FiltersConfig {
                octaves: 0,
                ..small()
            },
            "octaves must be 1..=16, got 0",
        ),
        (
            FiltersConfig {
                octaves: 1 << 40,
                ..small()
            },
            "octaves must be 1..=16",
        ),
        (
            FiltersConfig {
                size: (0, 12),
                ..small()
            },
            "size must be 1..=65536 pixels per side, got 12x0",
        ),
        (
            FiltersConfig {
                size: (12, 1 << 20),
                ..small()
            },
            "size must be 1..=65536 pixels per side",
        ),
        (
            FiltersConfig {
                jitter: usize::MAX,
                ..small()
            },
            "jitter must be at most 65536 pixels",
        ),
        (
            FiltersConfig {
                chunk: Some(0),
                ..small()
            },
            "chunk must be at least 1",
        ),
        (
            FiltersConfig {
                normalize: Normalize::Custom {
                    mean: [0.5; 3],
                    std: [0.0; 3],
                },
                ..small()
            },
            "std must be a finite number > 0",
        ),
    ];
    for (cfg, words) in cases {
        let msg = visualize_filters(&m, layer, &cfg, &mut |_| {})
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("accepted: {words}"));
        assert!(msg.contains(words), "{msg}");
        assert!(!msg.contains('\n'));
    }
    // The defaults and the walk-through's options stay accepted.
    assert!(small().validate().is_ok());
    let lucid = FiltersConfig {
        jitter: 4,
        scale: 0.1,
        rotate: 10.0,
        tv: 0.5,
        l2: 0.1,
        octaves: 3,
        ..small()
    };
    assert!(visualize_filters(&m, layer, &lucid, &mut |_| {}).is_ok());
}

#[test]
fn meaningless_saliency_options_are_refused_naming_the_option() {
    let m = model(data_type::FLOAT);
    let x = Tensor::full(&[1, 3, 12, 12], 0.5);
    for (cfg, words) in [
        (
            SaliencyConfig {
                noise: f32::INFINITY,
                ..SaliencyConfig::default()
            },
            "noise must be a finite number >= 0, got inf",
        ),
        (
            SaliencyConfig {
                noise: f32::NAN,
                ..SaliencyConfig::default()
            },
            "noise must be a finite number >= 0, got NaN",
        ),
        (
            SaliencyConfig {
                noise: -1.0,
                ..SaliencyConfig::default()
            },
            "noise must be a finite number >= 0, got -1",
        ),
        (
            SaliencyConfig {
                batch_size: 0,
                ..SaliencyConfig::default()
            },
            "batch-size must be at least 1",
        ),
        (
            SaliencyConfig {
                baseline: Some(Tensor::full(&[1, 3, 12, 12], f32::NAN)),
                ..SaliencyConfig::default()
            },
            "baseline element 0 is NaN",
        ),
    ] {
        for method in ["gradient", "smoothgrad", "integrated-gradients"] {
            let msg = compute_saliency(&m, &x, method, &cfg)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{method} accepted: {words}"));
            assert!(msg.starts_with(words), "{method}: {msg}");
        }
    }
    let mut nan = x.clone();
    nan.data_mut()[7] = f32::NAN;
    let msg = compute_saliency(&m, &nan, "gradient", &SaliencyConfig::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("input element 7 is NaN"), "{msg}");
}

/// Filter patterns of a UINT8 model are optimised in raw pixels; a normalisation that
/// contradicts the model is refused.
#[test]
fn filters_of_a_uint8_model_use_raw_pixels() {
    let m = model(data_type::UINT8);
    let layer = m.resolve("r").unwrap();
    assert!(visualize_filters(&m, layer, &small(), &mut |_| {}).is_ok());
    let cfg = FiltersConfig {
        normalize: Normalize::Imagenet,
        ..small()
    };
    let msg = visualize_filters(&m, layer, &cfg, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("'x' is UINT8") && msg.contains("imagenet"),
        "{msg}"
    );
}
