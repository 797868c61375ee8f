//! End-to-end tests of the `convscope` binary: every subcommand is run the way a user runs it, on
//! tiny models generated here with the project's own ONNX builder (plus the real VGG16 when
//! `../shared` is present), and its files, JSON and exit codes are checked.
//!
//! Golden images live in `tests/golden/` (see the README there); set
//! `CONVSCOPE_UPDATE_GOLDENS=1` to rewrite them after a deliberate rendering change.

mod util;

use std::path::{Path, PathBuf};

use convscope_engine::{Model, Tensor};
use serde_json::Value as Json;
use util::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Writes the generated feature model and its `.npy` input into `td`.
fn features(td: &TestDir) -> (PathBuf, PathBuf) {
    (
        td.model("features.onnx", &features_model()),
        td.npy("input.npy", &[1, 3, 12, 12], &features_input()),
    )
}

/// Runs `model` (a file) on `input` with the engine directly and returns the named values.
fn engine_values(model: &Path, shape: &[usize], input: Vec<f32>, names: &[&str]) -> Vec<Tensor> {
    let m = Model::load(model).expect("load model");
    let ids: Vec<_> = names
        .iter()
        .map(|n| m.resolve(n).expect("value exists"))
        .collect();
    let x = Tensor::new(shape.to_vec(), input).expect("input shape");
    m.run_float(&x, &ids).expect("engine run")
}

/// Fraction of exact zeros in the first (only) item.
fn zero_fraction(v: &[f32]) -> f64 {
    v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64
}

/// Channels (planes of `plane` values) that are zero everywhere.
fn blank_channels(v: &[f32], plane: usize) -> usize {
    v.chunks(plane)
        .filter(|c| c.iter().all(|&x| x == 0.0))
        .count()
}

fn png_size(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a command that must fail; checks the one-line error, that it mentions every `needle`,
/// and that `out` (the output folder the command was given) is absent or empty.
#[track_caller]
fn expect_error(td: &TestDir, args: &[&str], out: &Path, needles: &[&str]) -> String {
    let o = td.run(args);
    let line = o.one_line_error();
    for n in needles {
        assert!(
            line.contains(n),
            "`{}`: the error should mention '{n}': {line}",
            o.cmd
        );
    }
    assert!(
        list(out).is_empty(),
        "`{}` failed but left files in {}: {:?}",
        o.cmd,
        out.display(),
        list(out)
    );
    line
}

// ---------------------------------------------------------------------------------------------
// 1. activations: golden images, index.json, index.html
// ---------------------------------------------------------------------------------------------

#[test]
fn activations_match_goldens_and_index_describes_every_layer() {
    let td = TestDir::new("act-golden");
    let (model, _) = features(&td);
    let o = td
        .run([
            "activations",
            "features.onnx",
            "input.npy",
            "--out",
            "out",
            "--per-row",
            "2",
            "--cell",
            "24",
            "--channel",
            "1",
        ])
        .success();
    let dir = td.path("out");
    let expected = [
        "00_conv1.png",
        "00_conv1_ch1.png",
        "01_pool1.png",
        "01_pool1_ch1.png",
        "02_conv2.png",
        "02_conv2_ch1.png",
        "index.html",
        "index.json",
        "input.png",
    ];
    assert_eq!(outputs(&dir), expected, "files written (and nothing else)");

    // Every picture, pixel for pixel.
    let errors: Vec<String> = expected
        .iter()
        .filter(|f| f.ends_with(".png"))
        .filter_map(|f| check_golden(&dir.join(f), &format!("activations_{f}")).err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} image(s) differ from the goldens (see crates/cli/tests/golden/README.md):\n{}",
        errors.len(),
        errors.join("\n")
    );

    // index.json against values and statistics computed here.
    let values = engine_values(
        &model,
        &[1, 3, 12, 12],
        features_input(),
        &["r1", "p1", "y"],
    );
    let idx = read_json(&dir.join("index.json"));
    assert_eq!(idx["model"], "features.onnx");
    assert_eq!(idx["input"], "input.npy");
    assert_eq!(idx["input_image"], "input.png");
    assert_eq!(idx["preprocess"], "unit");
    let layers = idx["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 3);
    let want = [
        // name, value, op, shape, blank channels (known from the weights), files
        (
            "conv1",
            "r1",
            "Conv+Relu",
            vec![1, 4, 12, 12],
            1,
            ["00_conv1.png", "00_conv1_ch1.png"],
        ),
        (
            "pool1",
            "p1",
            "MaxPool",
            vec![1, 4, 6, 6],
            1,
            ["01_pool1.png", "01_pool1_ch1.png"],
        ),
        (
            "conv2",
            "y",
            "Conv+Relu",
            vec![1, 5, 6, 6],
            1,
            ["02_conv2.png", "02_conv2_ch1.png"],
        ),
    ];
    for ((l, v), (name, value, op, shape, blank, files)) in layers.iter().zip(&values).zip(&want) {
        assert_eq!(l["name"], *name);
        assert_eq!(l["layer"], *name);
        assert_eq!(l["value"], *value, "{name} value");
        assert_eq!(l["op"], *op, "{name} op");
        assert_eq!(usizes(&l["shape"]), *shape, "{name} shape");
        assert_eq!(v.shape(), shape.as_slice(), "{name} engine shape");
        assert_eq!(strs(&l["files"]), files, "{name} files");
        let s = &l["stats"];
        let plane = shape[2] * shape[3];
        let data = v.data();
        assert_eq!(s["channels"], shape[1], "{name} channels");
        assert_eq!(
            blank_channels(data, plane),
            *blank,
            "{name}: blank channels by construction"
        );
        assert_eq!(s["blank_channels"], *blank, "{name} blank_channels");
        let zf = s["zero_fraction"].as_f64().expect("zero_fraction");
        assert!(
            (zf - zero_fraction(data)).abs() < 1e-12,
            "{name} zero_fraction {zf} vs {}",
            zero_fraction(data)
        );
        let mean = data.iter().map(|&x| x as f64).sum::<f64>() / data.len() as f64;
        let got_mean = s["mean"].as_f64().expect("mean");
        assert!(
            (got_mean - mean).abs() < 1e-9,
            "{name} mean {got_mean} vs {mean}"
        );
        let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(s["max"].as_f64().expect("max") as f32, max, "{name} max");
        assert_eq!(
            s["min"].as_f64().expect("min"),
            0.0,
            "{name} min (after ReLU)"
        );
    }

    // index.html shows every picture written, and every picture it shows exists.
    let html = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    for f in expected.iter().filter(|f| f.ends_with(".png")) {
        assert!(
            html.contains(&format!("src=\"{f}\"")),
            "index.html does not show {f}"
        );
    }
    for src in html.split("src=\"").skip(1) {
        let f = &src[..src.find('"').expect("closing quote")];
        assert!(dir.join(f).exists(), "index.html shows missing {f}");
    }

    // The table: a header and one row per layer.
    let rows: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(rows.len(), 4, "table:\n{}", o.stdout);
    assert!(rows[0].starts_with("layer"));
    for (row, name) in rows[1..].iter().zip(["conv1", "pool1", "conv2"]) {
        assert!(row.starts_with(name), "row {row:?}");
    }
    assert!(o.stderr.contains("wrote 3 layers"), "stderr: {}", o.stderr);

    // Without --channel: the same grids, byte for byte, and no single-channel views.
    td.run([
        "activations",
        "features.onnx",
        "input.npy",
        "--out",
        "plain",
        "--per-row",
        "2",
        "--cell",
        "24",
    ])
    .success();
    let plain = td.path("plain");
    assert_eq!(
        outputs(&plain),
        [
            "00_conv1.png",
            "01_pool1.png",
            "02_conv2.png",
            "index.html",
            "index.json",
            "input.png"
        ]
    );
    for f in outputs(&plain).iter().filter(|f| f.ends_with(".png")) {
        assert_eq!(
            std::fs::read(plain.join(f)).unwrap(),
            std::fs::read(dir.join(f)).unwrap(),
            "{f} differs between runs with and without --channel"
        );
    }
}

/// Regression: `index.json` once said `"input_shape": 4` (the rank) instead of the shape of
/// the tensor fed to the model.
#[test]
fn activations_index_has_the_input_shape() {
    let td = TestDir::new("act-input-shape");
    features(&td);
    td.run(["activations", "features.onnx", "input.npy", "--out", "out"])
        .success();
    let idx = read_json(&td.path("out/index.json"));
    assert_eq!(usizes(&idx["input_shape"]), [1, 3, 12, 12]);
}

// ---------------------------------------------------------------------------------------------
// 2. activations --npy: exactly the engine's values
// ---------------------------------------------------------------------------------------------

#[test]
fn activations_npy_equals_engine_values() {
    let td = TestDir::new("act-npy");
    let (model, _) = features(&td);
    // Friendly names, plus a raw ONNX value (the Conv output before its ReLU, with negatives).
    td.run([
        "activations",
        "features.onnx",
        "input.npy",
        "--layers",
        "conv1,pool1,conv2,c1",
        "--npy",
        "--out",
        "out",
    ])
    .success();
    let dir = td.path("out");
    let values = engine_values(
        &model,
        &[1, 3, 12, 12],
        features_input(),
        &["conv1", "pool1", "conv2", "c1"],
    );
    let stems = ["00_conv1", "01_pool1", "02_conv2", "03_c1"];
    for (stem, v) in stems.iter().zip(&values) {
        assert!(dir.join(format!("{stem}.png")).exists(), "{stem}.png");
        let (shape, data) =
            convscope_image::read_npy_f32(&dir.join(format!("{stem}.npy"))).expect("read npy");
        assert_eq!(shape, v.shape(), "{stem} shape");
        assert_eq!(data.len(), v.len());
        let bad = data
            .iter()
            .zip(v.data())
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            bad.is_none(),
            "{stem}.npy differs from the engine at {bad:?}: {} vs {}",
            data[bad.unwrap_or(0)],
            v.data()[bad.unwrap_or(0)]
        );
    }
    assert!(
        values[3].data().iter().any(|&x| x < 0.0),
        "c1 is the pre-ReLU value"
    );
    let idx = read_json(&dir.join("index.json"));
    let names: Vec<&str> = idx["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["conv1", "pool1", "conv2", "c1"]);
    assert_eq!(idx["layers"][3]["value"], "c1");
    assert_eq!(
        strs(&idx["layers"][0]["files"]),
        ["00_conv1.png", "00_conv1.npy"]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The real VGG16 against onnxruntime's reference values
// ---------------------------------------------------------------------------------------------

#[test]
fn vgg16_activations_match_onnxruntime() {
    let Some(vgg) = shared("models/vgg16_tumor.onnx") else {
        return;
    };
    let Some(chelsea) = shared("images/chelsea.png") else {
        return;
    };
    // The reference script's VGG input: chelsea.png rows 30..270, cols 105..345, /255, NHWC.
    let Some(x) = chelsea_crop(30, 270, 105, 345) else {
        return;
    };
    let reference = read_json(&reference("vgg16_tumor_forward.json"));
    let td = TestDir::new("vgg");
    // The input is the one the reference was computed from.
    let stats = &reference["input_stats"];
    for (i, (&got, want)) in x.iter().zip(f32s(&stats["first8"])).enumerate() {
        assert_eq!(got.to_bits(), want.to_bits(), "input[{i}]");
    }
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let want_sum = stats["sum"].as_f64().unwrap();
    assert!((sum - want_sum).abs() < 1e-6 * want_sum, "input sum {sum}");
    td.npy("input.npy", &[1, 240, 240, 3], &x);

    let vgg_arg = vgg.to_str().expect("utf-8 path");
    td.run([
        "activations",
        vgg_arg,
        "input.npy",
        "--layers",
        "block1_conv1,block1_pool",
        "--npy",
        "--out",
        "out",
    ])
    .success();
    let dir = td.path("out");
    let idx = read_json(&dir.join("index.json"));
    let cases = [
        ("00_block1_conv1.npy", "functional_1/block1_conv1_1/Relu:0"),
        (
            "01_block1_pool.npy",
            "functional_1/block1_pool_1/MaxPool2d:0",
        ),
    ];
    for (i, (file, name)) in cases.iter().enumerate() {
        assert_eq!(idx["layers"][i]["value"], *name);
        let t = reference["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == *name)
            .unwrap_or_else(|| panic!("reference has {name}"));
        let (shape, data) = convscope_image::read_npy_f32(&dir.join(file)).expect("read npy");
        assert_eq!(shape, usizes(&t["shape"]), "{name} shape");
        let [_, c, h, w] = shape[..] else {
            panic!("{name} is 4-D")
        };
        let max_abs = t["max_abs"].as_f64().unwrap();
        let tol = 1e-4 * max_abs;
        for (k, want) in f32s(&t["channel_sums"]).into_iter().enumerate() {
            let got: f64 = data[k * h * w..(k + 1) * h * w]
                .iter()
                .map(|&v| v as f64)
                .sum();
            assert!(
                (got - want as f64).abs() <= tol * (h * w) as f64 + 1e-6 * want.abs() as f64,
                "{name} channel {k} sum {got} vs {want}"
            );
        }
        let patches = t["patches"].as_array().unwrap();
        assert!(!patches.is_empty());
        for p in patches {
            let at = |k: &str| p[k].as_u64().unwrap() as usize;
            let (ch, r0, c0, rows, cols) = (
                at("channel"),
                at("row0"),
                at("col0"),
                at("rows"),
                at("cols"),
            );
            assert!(ch < c);
            let want = f32s(&p["values"]);
            for r in 0..rows {
                for cc in 0..cols {
                    let got = data[(ch * h + r0 + r) * w + c0 + cc] as f64;
                    let expect = want[r * cols + cc] as f64;
                    assert!(
                        (got - expect).abs() <= tol,
                        "{name} ch {ch} ({},{}) {got} vs {expect}",
                        r0 + r,
                        c0 + cc
                    );
                }
            }
        }
    }

    // The same model on the PNG itself, first 8 layers.
    let chelsea_arg = chelsea.to_str().expect("utf-8 path");
    let o = td
        .run([
            "activations",
            vgg_arg,
            chelsea_arg,
            "--layers",
            "0..8",
            "--out",
            "png",
        ])
        .success();
    let files = outputs(&td.path("png"));
    let grids: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(".png") && *f != "input.png")
        .collect();
    assert_eq!(grids.len(), 8, "grids: {files:?}");
    for f in ["input.png", "index.json", "index.html"] {
        assert!(files.iter().any(|g| g == f), "{f} missing from {files:?}");
    }
    assert_eq!(files.len(), 11, "nothing else written: {files:?}");
    assert_eq!(png_size(&td.path("png/input.png")), (240, 240));
    let rows = o.stdout.lines().count();
    assert_eq!(rows, 1 + 8, "header and 8 rows:\n{}", o.stdout);
    assert!(o.stdout.lines().nth(1).unwrap().starts_with("block1_conv1"));
}

// ---------------------------------------------------------------------------------------------
// 4. Bad input: one line on stderr, exit code 2, nothing written
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_model_files_fail_cleanly() {
    let td = TestDir::new("bad-model");
    let (_, _) = features(&td);
    let out = td.path("out");
    let out_s = out.to_str().unwrap();

    let line = expect_error(
        &td,
        &["activations", "missing.onnx", "input.npy", "--out", out_s],
        &out,
        &["missing.onnx"],
    );
    assert!(
        line.contains("No such file") || line.contains("not found"),
        "{line}"
    );

    td.write("picture.png", &classifier_png(8, 8));
    expect_error(
        &td,
        &["activations", "picture.png", "input.npy", "--out", out_s],
        &out,
        &["picture.png", "not an ONNX model"],
    );

    let bytes = features_model().encode();
    td.write("truncated.onnx", &bytes[..bytes.len() / 2]);
    expect_error(
        &td,
        &["activations", "truncated.onnx", "input.npy", "--out", out_s],
        &out,
        &["truncated.onnx", "truncated"],
    );

    td.model("unsupported.onnx", &unsupported_model());
    let line = expect_error(
        &td,
        &[
            "activations",
            "unsupported.onnx",
            "input.npy",
            "--out",
            out_s,
        ],
        &out,
        &["unsupported", "FooBar", "Loop", "foo1", "foo2", "loop1"],
    );
    assert!(!line.contains("Relu"), "{line}");
    // summary reports the same.
    let o = td.run(["summary", "unsupported.onnx"]);
    assert!(o.one_line_error().contains("FooBar"));
}

/// `CONVSCOPE_ISA` narrows the kernels' path: a name this CPU cannot run, or no name at all,
/// stops the binary with one error line and exit code 2 before any work; `portable` (which every
/// CPU has) runs and writes what the default path writes.
#[test]
fn convscope_isa_narrows_or_fails_cleanly() {
    let td = TestDir::new("isa");
    let (model, input) = features(&td);
    let run = |isa: &str, out: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_convscope"))
            .arg("activations")
            .args([&model, &input])
            .args(["--npy", "--out", out])
            .current_dir(td.root())
            .env("CONVSCOPE_ISA", isa)
            .output()
            .unwrap();
        Output {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            cmd: format!("CONVSCOPE_ISA={isa} convscope activations"),
        }
    };
    let line = run("sse9", "bad").one_line_error();
    assert!(
        line.contains("CONVSCOPE_ISA=sse9") && line.contains("unknown instruction set"),
        "{line}"
    );
    assert!(!td.root().join("bad").exists(), "nothing written on error");
    if !convscope_engine::Isa::detected().avx512f() {
        let line = run("avx512", "bad").one_line_error();
        assert!(line.contains("lacks AVX-512F"), "{line}");
    }
    run("portable", "portable").success();
    run("", "default").success();
    let files = |dir: &str| list(&td.root().join(dir));
    assert!(!files("default").is_empty());
    assert_eq!(files("default"), files("portable"));
}

/// On a CPU without AVX-512 the binary takes the AVX2 path by its own detection, and refuses
/// `CONVSCOPE_ISA=avx512`. Shown on this machine by running it as the benchmarks do under
/// `scripts/bench/avx2_only.sh`, which builds and preloads a library that hides AVX-512 from
/// CPUID. Skipped, with a note, where there is nothing to hide, the CPU cannot make CPUID trap,
/// or there is no C compiler to build the library.
#[test]
fn a_cpu_without_avx512_gets_the_avx2_path() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |flag: &str| cpuinfo.split_whitespace().any(|w| w == flag);
    if !(cfg!(target_arch = "x86_64") && has("avx512f") && has("avx2") && has("cpuid_fault")) {
        eprintln!("skipped: needs an x86-64 CPU with AVX-512 and CPUID faulting");
        return;
    }
    let cc = std::process::Command::new("cc").arg("--version").output();
    if !cc.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no C compiler for scripts/bench/hide_avx512");
        return;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/avx2_only.sh");
    let bench = |isa: Option<&str>| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg(&script)
            .arg(env!("CARGO_BIN_EXE_convscope"))
            .args(["bench", "--runs", "1", "--only", "no-such-job"])
            .env_remove("CONVSCOPE_ISA");
        if let Some(isa) = isa {
            cmd.env("CONVSCOPE_ISA", isa);
        }
        let o = cmd.output().unwrap();
        Output {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            cmd: format!("CONVSCOPE_ISA={isa:?} avx2_only.sh convscope bench"),
        }
    };
    let o = bench(None).success();
    assert!(o.stdout.contains("isa=avx2"), "{}", o.stdout);
    let line = bench(Some("avx512")).one_line_error();
    assert!(line.contains("lacks AVX-512F"), "{line}");
}

#[test]
fn bad_inputs_and_options_fail_cleanly() {
    let td = TestDir::new("bad-input");
    features(&td);
    td.model("classifier.onnx", &classifier_model());
    td.npy("cls.npy", &[1, 3, 16, 16], &classifier_input());
    td.write("notes.txt", b"these are not pixels\n");
    td.write("notes.png", b"these are not pixels either\n");
    let out = td.path("out");
    let out_s = out.to_str().unwrap();

    expect_error(
        &td,
        &[
            "activations",
            "features.onnx",
            "missing.png",
            "--out",
            out_s,
        ],
        &out,
        &["missing.png"],
    );
    expect_error(
        &td,
        &["activations", "features.onnx", "notes.txt", "--out", out_s],
        &out,
        &["notes.txt"],
    );
    expect_error(
        &td,
        &["activations", "features.onnx", "notes.png", "--out", out_s],
        &out,
        &["notes.png"],
    );
    expect_error(
        &td,
        &[
            "activations",
            "features.onnx",
            "input.npy",
            "--layers",
            "block9_conv1",
            "--out",
            out_s,
        ],
        &out,
        &["block9_conv1", "closest"],
    );
    expect_error(
        &td,
        &[
            "activations",
            "features.onnx",
            "input.npy",
            "--channel",
            "99",
            "--out",
            out_s,
        ],
        &out,
        &["99", "out of range"],
    );
    expect_error(
        &td,
        &[
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--filters",
            "0..999",
            "--out",
            out_s,
        ],
        &out,
        &["out of range", "conv1"],
    );
    expect_error(
        &td,
        &[
            "filters",
            "classifier.onnx",
            "--layer",
            "fc",
            "--out",
            out_s,
        ],
        &out,
        &["fc", "spatial"],
    );
    expect_error(
        &td,
        &[
            "cam",
            "classifier.onnx",
            "cls.npy",
            "--class",
            "99",
            "--out",
            out_s,
        ],
        &out,
        &["99"],
    );
    expect_error(
        &td,
        &[
            "cam",
            "classifier.onnx",
            "cls.npy",
            "--method",
            "nosuchcam",
            "--out",
            out_s,
        ],
        &out,
        &["nosuchcam", "gradcam"],
    );
    expect_error(
        &td,
        &[
            "saliency",
            "classifier.onnx",
            "cls.npy",
            "--method",
            "nosuchmap",
            "--out",
            out_s,
        ],
        &out,
        &["nosuchmap"],
    );
    // A .npy of the wrong shape.
    td.npy("wrong.npy", &[1, 5, 12, 12], &[0.5; 5 * 144]);
    expect_error(
        &td,
        &["activations", "features.onnx", "wrong.npy", "--out", out_s],
        &out,
        &["wrong.npy"],
    );
    assert!(!out.exists(), "no output folder is created for failed runs");

    // saliency opens its output folder before computing, so this failure happens after the
    // staging folder exists: it must be removed again, with nothing moved into place.
    let sal = td.path("sal");
    expect_error(
        &td,
        &[
            "saliency",
            "classifier.onnx",
            "cls.npy",
            "--class",
            "99",
            "--out",
            sal.to_str().unwrap(),
        ],
        &sal,
        &["99"],
    );
    // (The now empty folder itself is left behind: `Staged::new` creates it up front.)
}

#[test]
fn unwritable_output_folders_fail_cleanly() {
    let td = TestDir::new("bad-out");
    features(&td);
    td.model("classifier.onnx", &classifier_model());
    td.npy("cls.npy", &[1, 3, 16, 16], &classifier_input());
    let file = td.write("file.txt", b"keep me\n");
    let under_file = file.join("out");
    let under_s = under_file.to_str().unwrap();
    let proc_dir = Path::new("/proc/convscope-test");
    let commands: Vec<Vec<&str>> = vec![
        vec!["activations", "features.onnx", "input.npy", "--out"],
        vec![
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--filters",
            "0..2",
            "--size",
            "16",
            "--steps",
            "2",
            "--out",
        ],
        vec!["saliency", "classifier.onnx", "cls.npy", "--out"],
    ];
    for cmd in &commands {
        for target in [under_s, "/proc/convscope-test"] {
            let mut args = cmd.clone();
            args.push(target);
            let o = td.run(&args);
            o.one_line_error();
        }
        assert!(!proc_dir.exists());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me\n");
    }
    // cam fails the same way, but prints its "layer: ..." note on stderr first (see
    // `cam_unwritable_output_is_one_line`): check the exit code and the last line only.
    for target in [under_s, "/proc/convscope-test"] {
        let o = td.run(["cam", "classifier.onnx", "cls.npy", "--out", target]);
        assert_eq!(o.code, 2, "{}", o.stderr);
        let last = o.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "{}", o.stderr);
        assert_eq!(o.stderr.matches("error:").count(), 1, "{}", o.stderr);
    }
    // A .png target for filters whose folder cannot be made.
    let o = td.run([
        "filters",
        "features.onnx",
        "--layer",
        "conv1",
        "--filters",
        "0..2",
        "--size",
        "16",
        "--steps",
        "2",
        "--out",
        "/proc/convscope-test/grid.png",
    ]);
    o.one_line_error();
    assert!(!proc_dir.exists());
    assert_eq!(
        list(td.root()),
        [
            "classifier.onnx",
            "cls.npy",
            "features.onnx",
            "file.txt",
            "input.npy"
        ],
        "nothing written anywhere else"
    );
}

#[test]
fn usage_errors_exit_2_with_an_error_line() {
    let td = TestDir::new("usage");
    features(&td);
    let out = td.path("out");
    let o = td.run([
        "activations",
        "features.onnx",
        "input.npy",
        "--size",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let first = o.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("'0' is not a size"),
        "{}",
        o.stderr
    );
    assert_eq!(
        o.stderr.lines().filter(|l| l.starts_with("error")).count(),
        1
    );
    assert!(!out.exists());
}

/// Regression: `cam` once printed "layer: ... (chosen automatically ...)" on stderr before it
/// found that the output folder could not be made, so the error was not the only line.
#[test]
fn cam_unwritable_output_is_one_line() {
    let td = TestDir::new("cam-bad-out");
    td.model("classifier.onnx", &classifier_model());
    td.npy("cls.npy", &[1, 3, 16, 16], &classifier_input());
    td.run([
        "cam",
        "classifier.onnx",
        "cls.npy",
        "--out",
        "/proc/convscope-test",
    ])
    .one_line_error();
}

/// Known deviation (see the report): clap's usage errors add a blank line and
/// "For more information, try '--help'." after the `error:` line.
#[test]
fn usage_errors_are_one_line() {
    let td = TestDir::new("usage-strict");
    features(&td);
    td.run(["activations", "features.onnx", "input.npy", "--size", "0"])
        .one_line_error();
}

/// Regression: `filters --json` was once written after the grid was committed, so an
/// unwritable JSON path failed the command after the images were already moved into place.
#[test]
fn filters_failing_json_leaves_nothing_behind() {
    let td = TestDir::new("filters-json-fail");
    features(&td);
    let out = td.path("out");
    expect_error(
        &td,
        &[
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--filters",
            "0..2",
            "--size",
            "16",
            "--steps",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--json",
            "/proc/convscope-test/f.json",
        ],
        &out,
        &["/proc/convscope-test"],
    );
}

// ---------------------------------------------------------------------------------------------
// 5. filters
// ---------------------------------------------------------------------------------------------

/// Luminance of an RGB PNG, row-major, with its width and height.
fn luminance(path: &Path) -> (Vec<f64>, usize, usize) {
    let img = image::open(path).expect("decode PNG").to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let lum = img
        .pixels()
        .map(|p| p.0.iter().map(|&v| v as f64).sum::<f64>() / 3.0)
        .collect();
    (lum, w, h)
}

/// Correlation of each pixel with its right and lower neighbours in `lum[y0..y1, x0..x1]`:
/// about 0 for pixel noise, high for patterns a few pixels wide.
fn neighbour_correlation(
    lum: &[f64],
    w: usize,
    (x0, x1, y0, y1): (usize, usize, usize, usize),
) -> f64 {
    let at = |x: usize, y: usize| lum[y * w + x];
    let n = ((x1 - x0) * (y1 - y0)) as f64;
    let mean = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .map(|(x, y)| at(x, y))
        .sum::<f64>()
        / n;
    let (mut var, mut cov) = (0.0, 0.0);
    for y in y0..y1 - 1 {
        for x in x0..x1 - 1 {
            let d = at(x, y) - mean;
            var += d * d;
            cov += d * ((at(x + 1, y) - mean) + (at(x, y + 1) - mean)) / 2.0;
        }
    }
    cov / var.max(1e-12)
}

/// Mean absolute difference between neighbouring pixels in `lum[y0..y1, x0..x1]`: how much
/// edge and stripe a tile has (a flat colour with faint noise stays near 2.5 on the
/// deprocessed scale).
fn edge_energy(lum: &[f64], w: usize, (x0, x1, y0, y1): (usize, usize, usize, usize)) -> f64 {
    let at = |x: usize, y: usize| lum[y * w + x];
    let mut sum = 0.0;
    for y in y0..y1 - 1 {
        for x in x0..x1 - 1 {
            sum += (at(x + 1, y) - at(x, y)).abs() + (at(x, y + 1) - at(x, y)).abs();
        }
    }
    sum / (2 * (x1 - x0 - 1) * (y1 - y0 - 1)) as f64
}

/// The walk-through's code feeds raw pixel values (uniform·20+128) into VGG16 without the
/// model's preprocessing; `--preprocess raw` does the same, and then its pictures appear:
/// block3_conv1 filter 0 grows a texture and most block1_conv1 patterns are edges and stripes.
/// With this model's own /255 preprocessing filter 0 is dead on grey noise (a finding about the
/// model, which the JSON reports) and the first layer's patterns are mostly flat colours.
#[test]
fn vgg16_filters_with_raw_pixels_show_the_walkthrough_pictures() {
    let Some(vgg) = shared("models/vgg16_tumor.onnx") else {
        return;
    };
    let vgg = vgg.to_str().expect("utf-8 path");
    let td = TestDir::new("vgg-filters");
    for pre in ["raw", "unit"] {
        td.run([
            "filters",
            vgg,
            "--layer",
            "block3_conv1",
            "--filters",
            "0",
            "--size",
            "150",
            "--preprocess",
            pre,
            "--out",
            &format!("b3_{pre}.png"),
            "--json",
            &format!("b3_{pre}.json"),
        ])
        .success();
    }
    let raw = &read_json(&td.path("b3_raw.json"))["filters"][0];
    let (start, end) = (raw["start"].as_f64().unwrap(), raw["end"].as_f64().unwrap());
    assert!(
        raw["rose"] == true && end > 2.0 * start.max(1.0),
        "raw: {start} → {end}"
    );
    let unit = &read_json(&td.path("b3_unit.json"))["filters"][0];
    assert_eq!(
        (unit["start"].as_f64(), unit["end"].as_f64()),
        (Some(0.0), Some(0.0)),
        "dead with /255"
    );
    let (lum, w, h) = luminance(&td.path("b3_raw.png"));
    let textured = neighbour_correlation(&lum, w, (0, w, 0, h));
    let (lum, w, h) = luminance(&td.path("b3_unit.png"));
    let noise = neighbour_correlation(&lum, w, (0, w, 0, h));
    assert!(
        textured > 0.3 && noise.abs() < 0.1,
        "texture {textured}, noise {noise}"
    );

    td.run([
        "filters",
        vgg,
        "--layer",
        "block1_conv1",
        "--filters",
        "0..64",
        "--size",
        "64",
        "--grid",
        "8x8",
        "--preprocess",
        "raw",
        "--out",
        "b1.png",
    ])
    .success();
    let (lum, w, h) = luminance(&td.path("b1.png"));
    assert_eq!((w, h), (547, 547));
    // Tiles of 64 px, 5 px apart; a 2 px border of each is left out.
    let striped = (0..64)
        .filter(|&t| {
            let (x0, y0) = ((t % 8) * 69, (t / 8) * 69);
            edge_energy(&lum, w, (x0 + 2, x0 + 62, y0 + 2, y0 + 62)) > 6.0
        })
        .count();
    assert!(
        striped >= 24,
        "{striped} of 64 block1_conv1 patterns with edges or stripes"
    );
}

fn filters_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "filters",
        "features.onnx",
        "--layer",
        "conv1",
        "--size",
        "16",
        "--steps",
        "5",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn filters_write_grids_patterns_and_curves() {
    let td = TestDir::new("filters");
    features(&td);

    let o = td
        .run(filters_args(&[
            "--filters",
            "0..4",
            "--out",
            "fdir",
            "--json",
            "curves.json",
        ]))
        .success();
    assert!(o.stderr.contains("4 filters of conv1"), "{}", o.stderr);
    let dir = td.path("fdir");
    assert_eq!(
        outputs(&dir),
        [
            "conv1_filter000.png",
            "conv1_filter001.png",
            "conv1_filter002.png",
            "conv1_filter003.png",
            "conv1_grid.png"
        ]
    );
    // Default grid: 2×2 cells of 16 px with 5 px between them.
    assert_eq!(png_size(&dir.join("conv1_grid.png")), (37, 37));
    for k in 0..4 {
        assert_eq!(
            png_size(&dir.join(format!("conv1_filter{k:03}.png"))),
            (16, 16)
        );
    }
    let doc = read_json(&td.path("curves.json"));
    assert_eq!(doc["layer"], "conv1");
    assert_eq!(doc["value"], "r1");
    assert_eq!(doc["steps"], 5);
    assert_eq!(usizes(&doc["size"]), [16, 16]);
    let filters = doc["filters"].as_array().expect("filters");
    assert_eq!(filters.len(), 4);
    for (k, f) in filters.iter().enumerate() {
        assert_eq!(f["filter"], k);
        let curve = f32s(&f["curve"]);
        assert_eq!(
            curve.len(),
            5 + 1,
            "filter {k}: one value per step plus the start"
        );
        assert_eq!(curve[0], f["start"].as_f64().unwrap() as f32);
        assert_eq!(*curve.last().unwrap(), f["end"].as_f64().unwrap() as f32);
        let rose = f["rose"].as_bool().expect("rose is a bool");
        assert_eq!(rose, curve[5] > curve[0], "filter {k}");
        // Filters 0–2 can be driven up; filter 3 is dead (negative weights and bias on a
        // non-negative image) so its objective stays at zero.
        assert_eq!(rose, k < 3, "filter {k} curve {curve:?}");
    }
    assert_eq!(doc["rising"], 3);

    // --out FILE.png writes exactly that file.
    td.run(filters_args(&["--filters", "0..4", "--out", "g/grid.png"]))
        .success();
    assert_eq!(list(&td.path("g")), ["grid.png"]);
    assert_eq!(
        std::fs::read(td.path("g/grid.png")).unwrap(),
        std::fs::read(dir.join("conv1_grid.png")).unwrap(),
        "same grid as the folder output"
    );

    // Explicit grids: columns x rows.
    td.run(filters_args(&[
        "--filters",
        "0..4",
        "--grid",
        "2x2",
        "--margin",
        "5",
        "--out",
        "g22.png",
    ]))
    .success();
    assert_eq!(png_size(&td.path("g22.png")), (37, 37));
    td.run(filters_args(&[
        "--filters",
        "0..4",
        "--grid",
        "4x1",
        "--margin",
        "5",
        "--out",
        "g41.png",
    ]))
    .success();
    assert_eq!(png_size(&td.path("g41.png")), (4 * 16 + 3 * 5, 16));
    td.run(filters_args(&[
        "--filters",
        "0..4",
        "--grid",
        "1x4",
        "--margin",
        "0",
        "--out",
        "g14.png",
    ]))
    .success();
    assert_eq!(png_size(&td.path("g14.png")), (16, 64));
    let o = td.run(filters_args(&[
        "--filters",
        "0..4",
        "--grid",
        "1x2",
        "--out",
        "small.png",
    ]));
    assert!(o.one_line_error().contains("holds 2 filters"));
    assert!(!td.path("small.png").exists());

    // Seeds: same seed → same bytes, another seed → another picture.
    let seeded = |seed: &str, out: &str| {
        td.run(filters_args(&[
            "--filters",
            "0..2",
            "--seed",
            seed,
            "--out",
            out,
        ]))
        .success();
        std::fs::read(td.path(out)).unwrap()
    };
    let a = seeded("7", "s7a.png");
    let b = seeded("7", "s7b.png");
    let c = seeded("8", "s8.png");
    assert_eq!(a, b, "same seed, same image");
    assert_ne!(a, c, "another seed, another image");
    assert!(
        !list(td.root()).iter().any(|f| f.starts_with(".convscope")),
        "no staging folder left: {:?}",
        list(td.root())
    );
}

// ---------------------------------------------------------------------------------------------
// 6. cam and saliency
// ---------------------------------------------------------------------------------------------

/// Class probabilities of the classifier for [`classifier_input`], from the engine.
fn classifier_probs(model: &Path) -> Vec<f32> {
    let v = engine_values(model, &[1, 3, 16, 16], classifier_input(), &["y"]);
    v[0].data().to_vec()
}

#[test]
fn cam_top_classes_write_maps_overlays_and_npy() {
    let td = TestDir::new("cam");
    let model = td.model("classifier.onnx", &classifier_model());
    td.npy("cls.npy", &[1, 3, 16, 16], &classifier_input());
    let probs = classifier_probs(&model);
    let mut order: Vec<usize> = (0..CLASSES).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    assert_eq!(order[..2], [0, 1], "the scene is built so: {probs:?}");

    let o = td
        .run([
            "cam",
            "classifier.onnx",
            "cls.npy",
            "--top",
            "2",
            "--npy",
            "--out",
            "cam",
        ])
        .success();
    let dir = td.path("cam");
    let mut want: Vec<String> = Vec::new();
    for c in &order[..2] {
        for suffix in ["heatmap.png", "overlay.png", "raw.npy", "normalized.npy"] {
            want.push(format!("gradcam_{c}_class_{c}_{suffix}"));
        }
    }
    want.push("index.json".into());
    want.sort();
    assert_eq!(outputs(&dir), want);
    assert!(o.stdout.starts_with("top predictions:"), "{}", o.stdout);

    let idx = read_json(&dir.join("index.json"));
    assert_eq!(idx["method"], "gradcam");
    assert_eq!(idx["layer"], "conv");
    assert_eq!(usizes(&idx["layer_shape"]), [16, 16]);
    let targets = idx["targets"].as_array().expect("targets");
    let classes: Vec<usize> = targets
        .iter()
        .map(|t| t["class"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(classes, order[..2]);
    let top = idx["top"].as_array().expect("top");
    assert_eq!(top.len(), CLASSES);
    for (t, &c) in top.iter().zip(&order) {
        assert_eq!(t["class"], c);
        let p = t["probability"].as_f64().unwrap() as f32;
        assert!(
            (p - probs[c]).abs() < 1e-5,
            "class {c}: {p} vs {}",
            probs[c]
        );
    }
    // Each map points at its own object: red square rows/cols 1..7, green 10..14.
    for (t, region) in targets.iter().zip([1..7, 10..14]) {
        let c = t["class"].as_u64().unwrap();
        let peak = usizes(&t["peak"]);
        assert!(
            region.contains(&peak[0]) && region.contains(&peak[1]),
            "class {c} peak {peak:?} outside {region:?}"
        );
        assert_eq!(t["all_zero"], false);
        let files = strs(&t["files"]);
        assert_eq!(files.len(), 4);
        let (shape, raw) = convscope_image::read_npy_f32(&dir.join(&files[2])).unwrap();
        assert_eq!(shape, [16, 16]);
        let argmax = raw
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > raw[b] { i } else { b });
        assert_eq!(
            raw[argmax],
            raw[peak[0] * 16 + peak[1]],
            "peak is the raw map's max"
        );
        let (shape, norm) = convscope_image::read_npy_f32(&dir.join(&files[3])).unwrap();
        assert_eq!(shape, [16, 16]);
        assert!(norm.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(png_size(&dir.join(&files[0])), (16, 16));
        assert_eq!(png_size(&dir.join(&files[1])), (16, 16));
    }

    // --class picks the classes (by index) in the order given.
    td.run([
        "cam",
        "classifier.onnx",
        "cls.npy",
        "--class",
        "2,0",
        "--out",
        "cam2",
    ])
    .success();
    let idx = read_json(&td.path("cam2/index.json"));
    let classes: Vec<u64> = idx["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["class"].as_u64().unwrap())
        .collect();
    assert_eq!(classes, [2, 0]);
}

#[test]
fn every_cam_method_runs_on_an_image() {
    let td = TestDir::new("cam-methods");
    td.model("classifier.onnx", &classifier_model());
    td.write("scene.png", &classifier_png(40, 32));
    for method in [
        "gradcam",
        "gradcam++",
        "xgradcam",
        "layercam",
        "hirescam",
        "eigencam",
        "scorecam",
        "ablationcam",
    ] {
        let out = format!("cam-{method}");
        td.run([
            "cam",
            "classifier.onnx",
            "scene.png",
            "--method",
            method,
            "--out",
            &out,
        ])
        .success();
        let stem = format!("{}_0_class_0", method.replace('+', "p"));
        let mut want = vec![
            format!("{stem}_heatmap.png"),
            format!("{stem}_overlay.png"),
            "index.json".to_string(),
        ];
        want.sort();
        assert_eq!(outputs(&td.path(&out)), want, "{method}");
        let idx = read_json(&td.path(&out).join("index.json"));
        assert_eq!(idx["method"], method);
        assert_eq!(idx["targets"][0]["class"], 0, "{method}");
        // The heatmap is at the model's input size, the overlay on the original picture.
        assert_eq!(
            png_size(&td.path(&out).join(format!("{stem}_heatmap.png"))),
            (16, 16)
        );
        assert_eq!(
            png_size(&td.path(&out).join(format!("{stem}_overlay.png"))),
            (40, 32)
        );
    }
}

#[test]
fn saliency_all_writes_five_maps() {
    let td = TestDir::new("saliency");
    td.model("classifier.onnx", &classifier_model());
    td.write("scene.png", &classifier_png(40, 32));
    let o = td
        .run([
            "saliency",
            "classifier.onnx",
            "scene.png",
            "--method",
            "all",
            "--samples",
            "8",
            "--steps",
            "8",
            "--npy",
            "--out",
            "sal",
        ])
        .success();
    let methods = [
        "gradient",
        "smoothgrad",
        "integrated-gradients",
        "guided-backprop",
        "guided-gradcam",
    ];
    let mut want: Vec<String> = methods
        .iter()
        .flat_map(|m| [format!("{m}_0.png"), format!("{m}_0.npy")])
        .chain(["index.json".to_string(), "input.png".to_string()])
        .collect();
    want.sort();
    assert_eq!(outputs(&td.path("sal")), want);
    assert_eq!(o.stdout.lines().count(), 5, "{}", o.stdout);
    let idx = read_json(&td.path("sal/index.json"));
    let maps = idx["maps"].as_array().expect("maps");
    let names: Vec<&str> = maps.iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(names, methods);
    for m in maps {
        assert_eq!(m["class"], 0);
        let png = td.path("sal").join(m["files"][0].as_str().unwrap());
        assert_eq!(png_size(&png), (16, 16));
        let (shape, _) =
            convscope_image::read_npy_f32(&td.path("sal").join(m["files"][1].as_str().unwrap()))
                .unwrap();
        assert_eq!(
            shape,
            [1, 3, 16, 16],
            "{}: attribution in the input layout",
            m["method"]
        );
    }
    assert!(
        maps[2]["completeness"].is_object(),
        "integrated gradients reports completeness"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. summary
// ---------------------------------------------------------------------------------------------

#[test]
fn summary_json_lists_layers_shapes_and_params() {
    let td = TestDir::new("summary");
    features(&td);
    td.model("classifier.onnx", &classifier_model());

    let o = td.run(["summary", "features.onnx", "--json"]).success();
    let s: Json = serde_json::from_str(&o.stdout).expect("summary --json prints JSON");
    assert_eq!(s["input"]["name"], "x");
    assert_eq!(usizes(&s["input"]["shape"]), [1, 3, 12, 12]);
    assert_eq!(s["input"]["layout"], "NCHW");
    assert_eq!(s["input"]["declared_size"], true);
    assert_eq!(s["opset"], 13);
    let layers = s["layers"].as_array().expect("layers");
    let want: [(&str, &str, &str, &[usize], usize); 3] = [
        ("conv1", "Conv+Relu", "r1", &[1, 4, 12, 12], 4 * 3 * 9 + 4),
        ("pool1", "MaxPool", "p1", &[1, 4, 6, 6], 0),
        ("conv2", "Conv+Relu", "y", &[1, 5, 6, 6], 5 * 4 * 9 + 5),
    ];
    assert_eq!(layers.len(), want.len());
    for (i, (l, (name, ops, value, shape, params))) in layers.iter().zip(want).enumerate() {
        assert_eq!(l["index"], i);
        assert_eq!(l["name"], name);
        assert_eq!(l["ops"], ops);
        assert_eq!(l["value"], value);
        assert_eq!(usizes(&l["shape"]), shape, "{name}");
        assert_eq!(l["params"], params, "{name}");
    }
    assert_eq!(s["total_params"], 112 + 185);

    let o = td.run(["summary", "classifier.onnx", "--json"]).success();
    let s: Json = serde_json::from_str(&o.stdout).expect("JSON");
    let rows: Vec<(String, String, Vec<usize>, u64)> = s["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["ops"].as_str().unwrap().to_string(),
                usizes(&l["shape"]),
                l["params"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("conv".into(), "Conv+Relu".into(), vec![1, 4, 16, 16], 112),
            (
                "gap".into(),
                "GlobalAveragePool".into(),
                vec![1, 4, 1, 1],
                0
            ),
            ("fc".into(), "Gemm+Softmax".into(), vec![1, 3], 15),
        ]
    );
    assert_eq!(s["total_params"], 112 + 15);

    // The table form, and --size for another input size.
    let o = td.run(["summary", "features.onnx"]).success();
    assert!(o.stdout.contains("Total params: 297"), "{}", o.stdout);
    assert!(o.stdout.contains("conv2"), "{}", o.stdout);
    let o = td
        .run(["summary", "features.onnx", "--json", "--size", "20x16"])
        .success();
    let s: Json = serde_json::from_str(&o.stdout).expect("JSON");
    assert_eq!(usizes(&s["input"]["shape"]), [1, 3, 16, 20]);
    assert_eq!(usizes(&s["layers"][1]["shape"]), [1, 4, 8, 10]);
}

/// Without `--filters`, a layer with fewer than 64 filters shows them all (the walk-through's
/// 8×8 grid is the first 64); before, the default `0..64` refused the demo's 16-filter conv1.
/// An explicit range past the end is still refused.
#[test]
fn filters_default_to_all_of_a_small_layer() {
    let td = TestDir::new("filters-small-layer");
    std::fs::write(
        td.root().join("demo.onnx"),
        convscope_demo::demo_model_bytes(),
    )
    .unwrap();
    let o = run_in(
        td.root(),
        [
            "filters",
            "demo.onnx",
            "--layer",
            "conv1",
            "--steps",
            "2",
            "--size",
            "32",
            "--out",
            "out",
        ],
    );
    assert_eq!(o.code, 0, "{}\n{}", o.cmd, o.stderr);
    // The summary line goes to stderr (stdout stays for machine-readable output).
    assert!(o.stderr.contains("16 filters of conv1"), "{}", o.stderr);
    let o = run_in(
        td.root(),
        [
            "filters",
            "demo.onnx",
            "--layer",
            "conv1",
            "--filters",
            "0..64",
            "--steps",
            "2",
            "--out",
            "out2",
        ],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("out of range"), "{}", o.stderr);
}
