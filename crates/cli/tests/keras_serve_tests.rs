//! `convscope serve` on a Keras file over real HTTP: the layer list is Keras's, activations
//! equal the CLI's `.npy` files and Grad-CAM equals the library's map for the same picture.

mod serve_util;

use convscope_test_support::TempDir;
use serve_util::Served;

fn fixture(name: &str) -> std::path::PathBuf {
    convscope_test_support::workspace_root()
        .join("crates/keras/tests/data")
        .join(name)
}

/// A 33×33 picture for `mobilenet_like.keras` (33×33 input, five classes).
fn picture() -> Vec<u8> {
    let img = image::RgbImage::from_fn(33, 33, |x, y| {
        let v = |k: u32| ((x * (4 + k) + y * (7 + k) + 40 * k) % 256) as u8;
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

#[test]
fn serve_reads_a_keras_file() {
    let dir = TempDir::new("keras-serve");
    let model = fixture("mobilenet_like.keras");
    let pic = dir.write("images/pic.png", &picture());
    let images = dir.path("images");
    // The CLI's activations of one layer, to compare the server's with.
    let out = dir.path("act");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_convscope"))
        .arg("activations")
        .arg(&model)
        .arg(&pic)
        .args(["--layers", "b2_project", "--npy", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let npy = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "npy"))
        .expect("an .npy file");
    let s = Served::start(&[
        model.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
    ]);
    let doc = s.get("/api/model").json();
    assert_eq!(doc["layers"][0]["name"], "stem_pad");
    assert_eq!(doc["total_params"], 1029);
    assert_eq!(doc["keras_layers"][0]["class"], "InputLayer");
    let r = s.get("/api/activations?image=pic.png&layer=b2_project&format=npy");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, std::fs::read(&npy).unwrap(), "the CLI's .npy");
    let r = s.get("/api/cam?image=pic.png&class=2&format=npy");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let lib = convscope::Model::load(&model).unwrap();
    let want = lib
        .gradcam(convscope::Image::open(&pic).unwrap(), convscope::Class(2))
        .unwrap();
    let served = dir.write("cam.npy", &r.body);
    let (shape, got) = convscope_image::read_npy_f32(&served).unwrap();
    assert_eq!(shape, [want.size().height, want.size().width]);
    let max = want.raw().iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.0, "a map with something in it");
    for (a, b) in got.iter().zip(want.raw()) {
        assert!((a - b).abs() <= 1e-5 * max, "{a} vs {b}");
    }
    let r = s.get("/api/cam?image=pic.png&class=2&format=json");
    assert_eq!(r.json()["layer"], want.layer());
}
