//! Input preparation on unlucky inputs (issue #22): typed model inputs, non-finite values,
//! unusable normalisation statistics, absurd declared sizes. Each is either fed as the model
//! means it or refused with one line that names the problem.

use std::path::PathBuf;

use convscope_engine::Model;
use convscope_image::{save_npy_f32, Normalize, RgbImageF32};
use convscope_methods::input::{
    prepare_image, prepare_image_with, prepare_input, prepare_input_with, target_size, InputConfig,
};
use convscope_onnx::{data_type, AttributeProto, Dim, GraphBuilder, TensorProto};

fn dims(v: &[i64]) -> Vec<Dim> {
    v.iter().map(|&d| Dim::Value(d)).collect()
}

/// `elem_type` input [1,3,4,4] → Cast to float → 1×1 Conv summing the channels → y.
fn typed_model(elem_type: i32) -> Model {
    let mut g = GraphBuilder::new("typed");
    g.typed_input("pixels", elem_type, &dims(&[1, 3, 4, 4]))
        .initializer(TensorProto::from_f32("w", &[1, 3, 1, 1], &[1.0, 1.0, 1.0]))
        .node(
            "Cast",
            "to_float",
            &["pixels"],
            &["f"],
            vec![AttributeProto::int("to", 1)],
        )
        .node("Conv", "sum", &["f", "w"], &["y"], vec![])
        .output("y", &[]);
    Model::from_proto(g.build(13)).unwrap()
}

/// A 4×4 image with fractional pixel values (as a resize leaves them), one above 255.
fn image() -> RgbImageF32 {
    let data = (0..48)
        .map(|i| if i == 5 { 255.7 } else { i as f32 * 5.3 })
        .collect();
    RgbImageF32::new(4, 4, data).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convscope-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A UINT8 input gets whole pixel values 0..=255 (before: floats in 0..1 from the default
/// `unit` normalisation, which a uint8 model reads as almost black).
#[test]
fn a_uint8_input_takes_raw_whole_pixels() {
    let model = typed_model(data_type::UINT8);
    assert_eq!(
        model.input_spec().elem_type,
        convscope_engine::ElemType::Uint8
    );
    for normalize in [Normalize::Unit, Normalize::Raw] {
        let cfg = InputConfig {
            normalize,
            ..InputConfig::default()
        };
        let p = prepare_image(&model, image(), &cfg).unwrap();
        let t = p.tensor.data();
        assert!(
            t.iter()
                .all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v)),
            "{t:?}"
        );
        // Pixel 1, channel 2 (sample 5) was 255.7: clamped; pixel 3, channel 0 was 47.7.
        assert_eq!(t[2 * 16 + 1], 255.0);
        assert_eq!(t[3], 48.0);
        let y = model.resolve("y").unwrap();
        let out = model.run_float(&p.tensor, &[y]).unwrap().remove(0);
        assert_eq!(out.data()[3], t[3] + t[16 + 3] + t[32 + 3]);
    }
    // Any other normalisation contradicts the model.
    for normalize in [Normalize::Imagenet, Normalize::Caffe, Normalize::Tf] {
        let cfg = InputConfig {
            normalize,
            ..InputConfig::default()
        };
        let msg = prepare_image(&model, image(), &cfg)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("'pixels' is UINT8") && msg.contains(normalize.name()),
            "{msg}"
        );
    }
    // A float input keeps the normalisation asked for.
    let float = typed_model(data_type::FLOAT);
    let p = prepare_image(&float, image(), &InputConfig::default()).unwrap();
    assert!(p.tensor.data().iter().all(|v| (0.0..=1.01).contains(v)));
}

/// Other integer types have no standard meaning for an image: refused, naming the type.
#[test]
fn other_integer_inputs_are_refused() {
    for (dt, name) in [
        (data_type::INT64, "INT64"),
        (data_type::INT8, "INT8"),
        (data_type::BOOL, "BOOL"),
    ] {
        let model = typed_model(dt);
        let msg = prepare_image(&model, image(), &InputConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("'pixels' is {name}")),
            "{name}: {msg}"
        );
    }
}

/// `.npy` inputs: NaN and infinity are refused naming the element (before: fed to the model,
/// which then drew blank pictures), and a UINT8 model only takes whole numbers 0..=255.
#[test]
fn npy_inputs_must_be_finite_and_fit_the_type() {
    let dir = temp_dir("npy-inputs");
    let path = dir.join("x.npy");
    let float = typed_model(data_type::FLOAT);
    let u8_model = typed_model(data_type::UINT8);
    let good: Vec<f32> = (0..48).map(|i| i as f32).collect();
    save_npy_f32(&path, &[1, 3, 4, 4], &good).unwrap();
    assert!(prepare_input(&float, &path, &InputConfig::default()).is_ok());
    assert!(prepare_input(&u8_model, &path, &InputConfig::default()).is_ok());
    for (at, bad, words) in [
        (
            21,
            f32::NAN,
            "element 21 (index [0, 1, 1, 1] of shape [1, 3, 4, 4]) is NaN",
        ),
        (
            47,
            f32::INFINITY,
            "element 47 (index [0, 2, 3, 3] of shape [1, 3, 4, 4]) is inf",
        ),
    ] {
        let mut data = good.clone();
        data[at] = bad;
        save_npy_f32(&path, &[1, 3, 4, 4], &data).unwrap();
        let msg = prepare_input(&float, &path, &InputConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(words) && msg.contains("must be finite"),
            "{msg}"
        );
    }
    // Let through on request (debugging a model on such an input).
    let mut data = good.clone();
    data[21] = f32::NAN;
    save_npy_f32(&path, &[1, 3, 4, 4], &data).unwrap();
    let p = prepare_input_with(&float, &path, &InputConfig::default(), true).unwrap();
    assert!(p.tensor.data()[21].is_nan());
    let mut data = good.clone();
    data[7] = 0.5;
    save_npy_f32(&path, &[3, 4, 4], &data).unwrap();
    let msg = prepare_input(&u8_model, &path, &InputConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("element 7 (index [0, 1, 3] of shape [3, 4, 4]) is 0.5")
            && msg.contains("UINT8"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Normalisation statistics that divide by zero or carry NaN are refused naming the field
/// (before: every input value became inf or NaN); so are non-finite pixels of an image in
/// memory.
#[test]
fn unusable_statistics_and_pixels_are_refused() {
    let model = typed_model(data_type::FLOAT);
    for (mean, std, words) in [
        (
            [0.5; 3],
            [0.2, 0.0, 0.2],
            "std must be a finite number > 0 for every channel, got 0 for channel 1",
        ),
        (
            [0.5; 3],
            [f32::NAN; 3],
            "std must be a finite number > 0 for every channel, got NaN for channel 0",
        ),
        (
            [0.5, 0.5, f32::INFINITY],
            [0.2; 3],
            "mean must be a finite number for every channel, got inf for channel 2",
        ),
    ] {
        let cfg = InputConfig {
            normalize: Normalize::Custom { mean, std },
            ..InputConfig::default()
        };
        let msg = prepare_image(&model, image(), &cfg)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(words), "{msg}");
        assert!(cfg.validate().is_err());
    }
    let mut img = image();
    img.data[4 * 3 + 1] = f32::NAN;
    assert!(prepare_image_with(&model, img.clone(), &InputConfig::default(), true).is_ok());
    let msg = prepare_image(&model, img, &InputConfig::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("pixel (0, 1) holds NaN in channel 1"), "{msg}");
    let cfg = InputConfig {
        size: Some((0, 10)),
        ..InputConfig::default()
    };
    assert!(prepare_image(&model, image(), &cfg)
        .unwrap_err()
        .to_string()
        .contains("size must be 1..=65536 pixels per side, got 10x0"));
}

/// A model declaring an input far beyond what convscope runs is told what it declares (it
/// used to hear that it "does not declare an input size").
#[test]
fn an_absurd_declared_size_is_named() {
    let mut g = GraphBuilder::new("huge");
    g.input("x", &dims(&[1, 3, 1_000_000, 2_000_000]))
        .node("Relu", "r", &["x"], &["y"], vec![])
        .output("y", &[]);
    let model = Model::from_proto(g.build(13)).unwrap();
    let spec = model.input_spec();
    assert_eq!((spec.height, spec.width), (None, None));
    assert_eq!(
        spec.declared_dims,
        [Some(1), Some(3), Some(1_000_000), Some(2_000_000)]
    );
    let msg = target_size(spec, None).unwrap_err().to_string();
    assert!(
        msg.contains("declares input 'x' as 2000000x1000000")
            && msg.contains("65536")
            && msg.contains("--size"),
        "{msg}"
    );
    assert_eq!(target_size(spec, Some((32, 48))).unwrap(), (32, 48));
    // A model that really declares nothing still hears that.
    let mut g = GraphBuilder::new("free");
    g.input(
        "x",
        &[
            Dim::Value(1),
            Dim::Value(3),
            Dim::Param("H".into()),
            Dim::Param("W".into()),
        ],
    )
    .node("Relu", "r", &["x"], &["y"], vec![])
    .output("y", &[]);
    let model = Model::from_proto(g.build(13)).unwrap();
    let msg = target_size(model.input_spec(), None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("does not declare an input size"), "{msg}");
}
