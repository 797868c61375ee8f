//! Keras files at the command line: every command takes a `.keras` / `.h5` file where it takes
//! an ONNX file (they go through `Model::load`), and broken Keras files end in one `error:` line
//! with exit code 2.

mod util;

use std::path::PathBuf;

use util::*;

fn fixture(name: &str) -> PathBuf {
    convscope_test_support::workspace_root()
        .join("crates/keras/tests/data")
        .join(name)
}

#[test]
fn summary_activations_and_cam_take_a_keras2_h5() {
    let td = TestDir::new("keras");
    let model = fixture("catsdogs_k2.h5");
    let out = td.run(["summary".as_ref(), model.as_os_str()]).success();
    // Keras's count, the final Dense(1)'s one-element bias included (65,520 before the engine
    // counted one-element weights of layers).
    for name in [
        "conv2d_3",
        "max_pooling2d_3",
        "dense_1",
        "Total params: 65,521",
    ] {
        assert!(
            out.stdout.contains(name),
            "{name} missing from\n{}",
            out.stdout
        );
    }
    let png = td.write("cat.png", &classifier_png(150, 150));
    td.run([
        "activations".as_ref(),
        model.as_os_str(),
        png.as_os_str(),
        "--out".as_ref(),
        "act".as_ref(),
    ])
    .success();
    assert!(list(&td.root().join("act"))
        .iter()
        .any(|f| f.contains("conv2d_3")));
    td.run([
        "cam".as_ref(),
        model.as_os_str(),
        png.as_os_str(),
        "--out".as_ref(),
        "cam".as_ref(),
    ])
    .success();
    assert!(list(&td.root().join("cam"))
        .iter()
        .any(|f| f.ends_with("overlay.png")));
}

#[test]
fn broken_keras_files_end_in_one_error_line() {
    let td = TestDir::new("keras-bad");
    let zip = std::fs::read(fixture("catsdogs.keras")).unwrap();
    let h5 = std::fs::read(fixture("catsdogs_k2.h5")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "trunc.keras",
            zip[..zip.len() / 2].to_vec(),
            "corrupt .keras archive",
        ),
        ("half.h5", h5[..h5.len() / 2].to_vec(), "corrupt HDF5 data"),
        (
            "custom.keras",
            std::fs::read(fixture("custom_layer.keras")).unwrap(),
            "unsupported Keras layers: doubling",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = td.write(name, &bytes);
        let line = td
            .run(["summary".as_ref(), path.as_os_str()])
            .one_line_error();
        assert!(line.contains(want), "{name}: {line}");
    }
}

/// A Keras model that rescales its input itself (`Rescaling` right after the input) is fed raw
/// pixels unless `--preprocess` says otherwise: the command line's default used to replace the
/// preset the file implies with `/255`.
#[test]
fn a_rescaling_keras_model_gets_raw_pixels_unless_told() {
    let td = TestDir::new("keras-preset");
    let model = fixture("zoo.keras");
    let png = td.write("pic.png", &classifier_png(24, 24));
    let npy = |preprocess: Option<&str>, out: &str| {
        let mut args = vec![
            "activations",
            model.to_str().unwrap(),
            png.to_str().unwrap(),
            "--layers",
            "dilated",
            "--npy",
            "--out",
            out,
        ];
        if let Some(p) = preprocess {
            args.extend(["--preprocess", p]);
        }
        td.run(args).success();
        let dir = td.root().join(out);
        let file = list(&dir)
            .into_iter()
            .find(|f| f.ends_with(".npy"))
            .expect("an .npy file");
        std::fs::read(dir.join(file)).unwrap()
    };
    let default = npy(None, "default");
    assert_eq!(
        default,
        npy(Some("raw"), "raw"),
        "the default is the raw preset"
    );
    assert_ne!(
        default,
        npy(Some("unit"), "unit"),
        "--preprocess unit still applies"
    );
}
