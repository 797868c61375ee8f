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

// --- every command on a Keras file, as a user runs it ---------------------------------------

/// A 33×33 picture for `mobilenet_like.keras` (33×33 input, five classes): smooth colours that
/// differ with `seed`, so the pictures of a folder excite the units differently.
fn picture(seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(33, 33, |x, y| {
        let v = |k: u32| ((x * (3 + seed + k) + y * (5 + 2 * seed + k) + 40 * k) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    });
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes
}

/// The Keras fixture the command tests run on, loaded through the library as the CLI loads it.
fn library_model() -> convscope::Model {
    convscope::Model::load(fixture("mobilenet_like.keras")).unwrap()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()))
}

/// `saliency` on a `.keras` file writes the input gradient the library computes for the same
/// model and picture, in Keras's NHWC input layout.
#[test]
fn saliency_on_a_keras_file_equals_the_library() {
    let td = TestDir::new("keras-saliency");
    let model = fixture("mobilenet_like.keras");
    let png = td.write("pic.png", &picture(1));
    td.run([
        "saliency".as_ref(),
        model.as_os_str(),
        png.as_os_str(),
        "--method".as_ref(),
        "gradient".as_ref(),
        "--npy".as_ref(),
        "--out".as_ref(),
        "sal".as_ref(),
    ])
    .success();
    let npy = list(&td.path("sal"))
        .into_iter()
        .find(|f| f.ends_with(".npy"))
        .expect("an .npy file");
    let (shape, cli) = convscope_image::read_npy_f32(&td.path("sal").join(npy)).unwrap();
    assert_eq!(
        shape,
        [1, 33, 33, 3],
        "the attribution in Keras's input layout"
    );
    let lib = library_model();
    let want = lib
        .saliency(
            convscope::Image::open(&png).unwrap(),
            &convscope::SaliencyConfig {
                method: "gradient".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let want = want.raw().data();
    let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.0);
    assert!(max_difference(&cli, want) <= 1e-6 * max);
}

/// `report` on a `.keras` file: one page with Keras's layer names, its parameter count, the
/// filter patterns of the layers asked for and a Grad-CAM, every picture it links present.
#[test]
fn report_on_a_keras_file() {
    let td = TestDir::new("keras-report");
    let model = fixture("mobilenet_like.keras");
    let png = td.write("pic.png", &picture(2));
    td.run([
        "report".as_ref(),
        model.as_os_str(),
        png.as_os_str(),
        "--filter-layers".as_ref(),
        "b2_project".as_ref(),
        "--filters".as_ref(),
        "2".as_ref(),
        "--filter-size".as_ref(),
        "32".as_ref(),
        "--steps".as_ref(),
        "4".as_ref(),
        "--top".as_ref(),
        "2".as_ref(),
        "--out".as_ref(),
        "rep".as_ref(),
    ])
    .success();
    let html = std::fs::read_to_string(td.path("rep/index.html")).unwrap();
    for want in [
        "stem_conv",
        "b1_dw",
        "b2_project",
        "Total parameters: 1,029",
        "Grad-CAM",
    ] {
        assert!(html.contains(want), "the report lacks {want}");
    }
    let files = list(&td.path("rep"));
    let mut linked = 0;
    for src in html.split("src=\"").skip(1) {
        let src = &src[..src.find('"').unwrap()];
        if src.starts_with("data:") || src.starts_with("http") {
            continue;
        }
        assert!(
            files.iter().any(|f| f == src),
            "{src} is linked but missing"
        );
        linked += 1;
    }
    assert!(
        linked >= 9,
        "{linked} pictures: input, 7 activation grids, filters, Grad-CAM"
    );
}

/// `examples` on a `.keras` file over a folder of pictures: each unit's best picture is the one
/// where the library finds that channel's largest value.
#[test]
fn examples_on_a_keras_file_rank_the_pictures_the_library_ranks() {
    let td = TestDir::new("keras-examples");
    let model = fixture("mobilenet_like.keras");
    let names = ["a.png", "b.png", "c.png", "d.png"];
    for (i, n) in names.iter().enumerate() {
        td.write(&format!("images/{n}"), &picture(3 + 4 * i as u32));
    }
    td.run([
        "examples".as_ref(),
        model.as_os_str(),
        "--images".as_ref(),
        "images".as_ref(),
        "--layers".as_ref(),
        "b2_project".as_ref(),
        "--top".as_ref(),
        "2".as_ref(),
        "--out".as_ref(),
        "ex".as_ref(),
    ])
    .success();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td.path("ex/index.json")).unwrap()).unwrap();
    assert_eq!(index["images_used"], 4);
    let layer = &index["layers"][0];
    let units = layer["units"].as_array().unwrap();
    assert_eq!(units.len(), 16, "b2_project has 16 channels");
    // The library's per-picture maxima of every channel.
    let lib = library_model();
    let id = lib.engine().layer("b2_project").unwrap().value;
    let maxima: Vec<Vec<f32>> = names
        .iter()
        .map(|n| {
            let input = lib.input(td.path(&format!("images/{n}"))).unwrap();
            let v = lib
                .engine()
                .run_float(input.tensor(), &[id])
                .unwrap()
                .remove(0);
            let hw = v.shape()[2] * v.shape()[3];
            v.data()
                .chunks(hw)
                .map(|c| c.iter().fold(f32::MIN, |m, &x| m.max(x)))
                .collect()
        })
        .collect();
    let mut distinct = std::collections::HashSet::new();
    for (u, unit) in units.iter().enumerate() {
        let top = unit["top"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        let best = (0..names.len())
            .map(|i| maxima[i][u])
            .fold(f32::MIN, f32::max);
        let image = top[0]["image"].as_str().unwrap();
        let chosen = names
            .iter()
            .position(|n| image.ends_with(n))
            .unwrap_or_else(|| panic!("unit {u}: {image} is not one of the pictures"));
        // Ties (a unit that is zero on every picture) may pick any of the tied pictures.
        let tol = 1e-5 * best.abs().max(1.0);
        assert!(
            (maxima[chosen][u] - best).abs() <= tol,
            "unit {u}: {image} has {} but the best picture {best}",
            maxima[chosen][u]
        );
        let score = top[0]["score"].as_f64().unwrap() as f32;
        assert!(
            (score - best).abs() <= tol,
            "unit {u}: score {score} vs {best}"
        );
        distinct.insert(chosen);
    }
    assert!(distinct.len() > 1, "the units prefer different pictures");
}

/// `visualize` on a `.keras` file: a picture per channel objective of a Keras layer name, and a
/// class objective through the Softmax, each file present with the size asked for.
#[test]
fn visualize_on_a_keras_file() {
    let td = TestDir::new("keras-visualize");
    let model = fixture("mobilenet_like.keras");
    td.run([
        "visualize".as_ref(),
        model.as_os_str(),
        "--objective".as_ref(),
        "b2_project:0..2".as_ref(),
        "--objective".as_ref(),
        "class:3".as_ref(),
        "--steps".as_ref(),
        "6".as_ref(),
        "--out".as_ref(),
        "vis".as_ref(),
    ])
    .success();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td.path("vis/index.json")).unwrap()).unwrap();
    let pictures = index["pictures"].as_array().unwrap();
    let objectives: Vec<&str> = pictures
        .iter()
        .map(|p| p["objective"].as_str().unwrap())
        .collect();
    assert_eq!(objectives, ["b2_project:0", "b2_project:1", "class:3"]);
    for p in pictures {
        let file = td.path("vis").join(p["file"].as_str().unwrap());
        let img = image::open(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(img.width() > 0 && img.height() > 0);
        assert!(p["value"].as_f64().unwrap().is_finite());
    }
}
