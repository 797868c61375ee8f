//! Helpers for running the real `convscope` binary in a scratch folder, ripgrep-style, plus the
//! tiny models, inputs and golden-image checks the integration tests share.
#![allow(dead_code, unused_imports)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, ModelProto, TensorProto};
pub use convscope_test_support::json::{f32s, read_json, strs, usizes};
pub use convscope_test_support::{chelsea_crop, reference, shared, Goldens, TempDir};

// ---------------------------------------------------------------------------------------------
// Scratch folders and running the binary
// ---------------------------------------------------------------------------------------------

/// A scratch folder ([`TempDir`], removed on drop) that also writes models and `.npy` inputs
/// and runs the binary inside itself.
pub struct TestDir(TempDir);

impl std::ops::Deref for TestDir {
    type Target = TempDir;

    fn deref(&self) -> &TempDir {
        &self.0
    }
}

impl TestDir {
    /// A new, empty folder whose name includes `name`.
    pub fn new(name: &str) -> TestDir {
        TestDir(TempDir::new(&format!("cli-{name}")))
    }

    /// Writes an ONNX model to `rel`.
    pub fn model(&self, rel: &str, proto: &ModelProto) -> PathBuf {
        self.write(rel, &proto.encode())
    }

    /// Writes a float32 `.npy` file to `rel`.
    pub fn npy(&self, rel: &str, shape: &[usize], data: &[f32]) -> PathBuf {
        self.write(rel, &convscope_image::npy_bytes_f32(shape, data))
    }

    /// Runs `convscope ARGS` with this folder as the working directory.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_in(self.root(), args)
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub cmd: String,
}

impl Output {
    /// Panics with the full output unless the run succeeded.
    #[track_caller]
    pub fn success(self) -> Output {
        assert_eq!(
            self.code, 0,
            "`{}` failed\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd, self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the run failed the way every convscope error must: exit code 2 and exactly
    /// one line on stderr, starting with `error:`. Returns that line.
    #[track_caller]
    pub fn one_line_error(&self) -> String {
        assert_eq!(
            self.code, 2,
            "`{}` should fail with exit code 2\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd, self.stdout, self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "`{}` should print exactly one line starting with 'error: ' on stderr, got {} line(s):\n{}",
            self.cmd,
            lines.len(),
            self.stderr
        );
        lines[0].to_string()
    }
}

/// Runs `convscope ARGS` in `dir`.
pub fn run_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let cmd = std::iter::once("convscope".to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot start convscope: {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        cmd,
    }
}

/// Sorted names of the entries of `dir` (empty when it does not exist).
pub fn list(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// The files a run wrote into an output folder it owns: every entry of `dir` but the
/// `.convscope-files` manifest, after checking that the manifest lists exactly those entries
/// (so the next run in the folder replaces this run's whole set).
pub fn outputs(dir: &Path) -> Vec<String> {
    let all = list(dir);
    let manifest: Vec<String> = serde_json::from_slice(
        &std::fs::read(dir.join(".convscope-files"))
            .unwrap_or_else(|e| panic!("{} has no .convscope-files: {e}", dir.display())),
    )
    .expect("the manifest is a JSON list of names");
    let mut listed = manifest.clone();
    listed.sort();
    let rest: Vec<String> = all
        .into_iter()
        .filter(|f| f != ".convscope-files")
        .collect();
    assert_eq!(
        listed,
        rest,
        "the manifest of {} lists what is there",
        dir.display()
    );
    rest
}

// ---------------------------------------------------------------------------------------------
// Generated models
// ---------------------------------------------------------------------------------------------

fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Value(d as i64)).collect()
}

/// Conv1 of [`features_model`]: 4 filters over 3 input channels, 3×3.
///
/// * 0: vertical-edge detector (Sobel x) on the red channel;
/// * 1: horizontal-edge detector (Sobel y) on the green channel;
/// * 2: the mean of all 27 inputs (always positive on a positive image);
/// * 3: minus that mean, bias −0.1: never positive on a non-negative image, so it is blank
///   after the ReLU.
pub fn conv1_weights() -> (Vec<f32>, Vec<f32>) {
    let sobel_x = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
    let sobel_y = [-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0];
    let mut w = vec![0.0f32; 4 * 3 * 9];
    w[..9].copy_from_slice(&sobel_x); // filter 0, channel 0
    w[27 + 9..27 + 18].copy_from_slice(&sobel_y); // filter 1, channel 1
    w[54..81].fill(1.0 / 27.0); // filter 2
    w[81..108].fill(-1.0 / 27.0); // filter 3
    (w, vec![0.0, 0.0, 0.0, -0.1])
}

/// Conv2 of [`features_model`]: 5 filters over the 4 pooled maps, 3×3.
///
/// * 0: copies map 0;
/// * 1: map 1 minus map 0;
/// * 2: a Laplacian of map 2;
/// * 3: copies map 3, which is blank, with no bias: blank too;
/// * 4: a diagonal gradient of map 0, bias 0.1.
pub fn conv2_weights() -> (Vec<f32>, Vec<f32>) {
    let mut w = vec![0.0f32; 5 * 4 * 9];
    let at = |f: usize, c: usize, k: usize| (f * 4 + c) * 9 + k;
    w[at(0, 0, 4)] = 1.0;
    w[at(1, 1, 4)] = 1.0;
    w[at(1, 0, 4)] = -1.0;
    for k in 0..9 {
        w[at(2, 2, k)] = if k == 4 { 8.0 } else { -1.0 };
    }
    w[at(3, 3, 4)] = 1.0;
    w[at(4, 0, 0)] = 1.0;
    w[at(4, 0, 8)] = -1.0;
    (w, vec![0.0, 0.0, 0.0, 0.0, 0.1])
}

/// `x [1,3,12,12]` NCHW → `conv1` (3→4, 3×3, pad 1) + Relu → `pool1` (MaxPool 2) → 4×6×6 →
/// `conv2` (4→5, 3×3, pad 1) + Relu → `y [1,5,6,6]`. Three layers: conv1, pool1, conv2.
pub fn features_model() -> ModelProto {
    let (w1, b1) = conv1_weights();
    let (w2, b2) = conv2_weights();
    let mut g = GraphBuilder::new("features");
    g.input("x", &dims(&[1, 3, 12, 12]))
        .output("y", &[])
        .initializer(TensorProto::from_f32("w1", &[4, 3, 3, 3], &w1))
        .initializer(TensorProto::from_f32("b1", &[4], &b1))
        .initializer(TensorProto::from_f32("w2", &[5, 4, 3, 3], &w2))
        .initializer(TensorProto::from_f32("b2", &[5], &b2))
        .node(
            "Conv",
            "conv1",
            &["x", "w1", "b1"],
            &["c1"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", "relu1", &["c1"], &["r1"], vec![])
        .node(
            "MaxPool",
            "pool1",
            &["r1"],
            &["p1"],
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("strides", &[2, 2]),
            ],
        )
        .node(
            "Conv",
            "conv2",
            &["p1", "w2", "b2"],
            &["c2"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", "relu2", &["c2"], &["y"], vec![]);
    g.build(13)
}

/// The deterministic `[1,3,12,12]` input of [`features_model`], values in [0, 1]:
/// red has a vertical edge at column 6, green a bright 6×6 square, blue a diagonal ramp.
pub fn features_input() -> Vec<f32> {
    let mut x = vec![0.0f32; 3 * 12 * 12];
    for y in 0..12 {
        for c in 0..12 {
            x[y * 12 + c] = if c >= 6 { 1.0 } else { 0.1 };
            x[144 + y * 12 + c] = if (3..9).contains(&y) && (3..9).contains(&c) {
                1.0
            } else {
                0.0
            };
            x[288 + y * 12 + c] = (y + c) as f32 / 22.0;
        }
    }
    x
}

/// Number of classes of [`classifier_model`].
pub const CLASSES: usize = 3;

/// `x [1,3,16,16]` → `conv` (3→4, 3×3, pad 1, bias) + Relu → `gap` (GlobalAveragePool) →
/// Flatten → `fc` (Gemm 4→3) + Softmax → `y [1,3]`.
///
/// The filters detect red, green, blue and vertical edges of the mean brightness; class 0 reads
/// red, class 1 green, class 2 (weakly) blue plus edges.
pub fn classifier_model() -> ModelProto {
    let mut w = vec![0.0f32; 4 * 3 * 9];
    let at = |f: usize, c: usize, k: usize| (f * 3 + c) * 9 + k;
    for f in 0..3 {
        w[at(f, f, 4)] = 1.0;
    }
    let sobel_x = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
    for c in 0..3 {
        for (k, &s) in sobel_x.iter().enumerate() {
            w[at(3, c, k)] = s / 3.0;
        }
    }
    let fw = [
        8.0, 0.0, 0.0, 0.0, //
        0.0, 8.0, 0.0, 0.0, //
        0.0, 0.0, 2.0, 0.5,
    ];
    let mut g = GraphBuilder::new("classifier");
    g.input("x", &dims(&[1, 3, 16, 16]))
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[4, 3, 3, 3], &w))
        .initializer(TensorProto::from_f32("b", &[4], &[0.0, 0.0, 0.0, 0.0]))
        .initializer(TensorProto::from_f32("fw", &[3, 4], &fw))
        .initializer(TensorProto::from_f32("fb", &[3], &[0.0, 0.0, 0.0]))
        .node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", "relu", &["c"], &["r"], vec![])
        .node("GlobalAveragePool", "gap", &["r"], &["g"], vec![])
        .node("Flatten", "flat", &["g"], &["f"], vec![])
        .node(
            "Gemm",
            "fc",
            &["f", "fw", "fb"],
            &["z"],
            vec![A::int("transB", 1)],
        )
        .node("Softmax", "prob", &["z"], &["y"], vec![A::int("axis", 1)]);
    g.build(13)
}

/// A `[1,3,16,16]` input for [`classifier_model`]: a big bright red square at the top left
/// (rows/cols 1..7), a smaller green one at the bottom right (rows/cols 10..14), a faint blue
/// wash everywhere.
pub fn classifier_input() -> Vec<f32> {
    let mut x = vec![0.0f32; 3 * 16 * 16];
    for y in 0..16 {
        for c in 0..16 {
            if (1..7).contains(&y) && (1..7).contains(&c) {
                x[y * 16 + c] = 1.0;
            }
            if (10..14).contains(&y) && (10..14).contains(&c) {
                x[256 + y * 16 + c] = 0.9;
            }
            x[512 + y * 16 + c] = 0.05;
        }
    }
    x
}

/// The same scene as [`classifier_input`] as an RGB image of `w`×`h` pixels (drawn at scale).
pub fn classifier_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x * 16 / w, y * 16 / h);
        let r = if (1..7).contains(&u) && (1..7).contains(&v) {
            255
        } else {
            0
        };
        let g = if (10..14).contains(&u) && (10..14).contains(&v) {
            230
        } else {
            0
        };
        image::Rgb([r, g, 13])
    });
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .expect("encode png");
    bytes
}

/// A model with two `FooBar` nodes and one `Loop` node (both unsupported) between Relus.
pub fn unsupported_model() -> ModelProto {
    let mut g = GraphBuilder::new("unsupported");
    g.input("x", &dims(&[1, 1, 4, 4]))
        .output("y", &[])
        .node("Relu", "r0", &["x"], &["a"], vec![])
        .node("FooBar", "foo1", &["a"], &["b"], vec![])
        .node("FooBar", "foo2", &["b"], &["c"], vec![])
        .node("Loop", "loop1", &["c"], &["d"], vec![])
        .node("Relu", "r1", &["d"], &["y"], vec![]);
    g.build(13)
}

// ---------------------------------------------------------------------------------------------
// Golden images
// ---------------------------------------------------------------------------------------------

/// Compares the PNG at `actual` pixel for pixel with `tests/golden/<name>` (see
/// [`Goldens::check_file`]; `CONVSCOPE_UPDATE_GOLDENS=1` rewrites the golden). Returns the
/// difference as an error, so a test can collect (and save) every mismatching image of a run.
pub fn check_golden(actual: &Path, name: &str) -> Result<(), String> {
    Goldens::of_crate(env!("CARGO_MANIFEST_DIR")).check_file(actual, name)
}
