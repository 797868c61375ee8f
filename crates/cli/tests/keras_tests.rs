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
    // Keras counts 65,521: the engine leaves out one-element constants (it takes them for
    // scalars such as Clip bounds), here the bias of the final Dense(1).
    for name in [
        "conv2d_3",
        "max_pooling2d_3",
        "dense_1",
        "Total params: 65,520",
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
