//! Hostile and unlucky inputs (issue #22), as a user meets them at the command line: every one
//! ends in one `error:` line and exit code 2 (or a warning and success where the input is
//! usable), never a panic, an abort, a half-written folder or a silent NaN.
//!
//! Each numbered test is the regression test of the item of the same number in the issue.

mod util;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, ModelProto, TensorProto};
use util::*;

/// A fully convolutional model of any input size: `x [N,3,H,W]` → `convs` 3×3 convolutions of
/// `width` channels with ReLU, named `conv1`, `conv2`, ...
fn conv_model(convs: usize, width: usize) -> ModelProto {
    let mut g = GraphBuilder::new("fcn");
    g.input(
        "x",
        &[
            Dim::Param("N".into()),
            Dim::Value(3),
            Dim::Param("H".into()),
            Dim::Param("W".into()),
        ],
    )
    .output(&format!("r{convs}"), &[]);
    let mut prev = "x".to_string();
    let mut cin = 3;
    for i in 1..=convs {
        let w: Vec<f32> = (0..width * cin * 9)
            .map(|k| ((k * 7 + i) % 11) as f32 / 30.0 - 0.15)
            .collect();
        g.initializer(TensorProto::from_f32(
            &format!("w{i}"),
            &[width, cin, 3, 3],
            &w,
        ))
        .node(
            "Conv",
            &format!("conv{i}"),
            &[&prev, &format!("w{i}")],
            &[&format!("c{i}")],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node(
            "Relu",
            &format!("relu{i}"),
            &[&format!("c{i}")],
            &[&format!("r{i}")],
            vec![],
        );
        prev = format!("r{i}");
        cin = width;
    }
    g.build(13)
}

/// An RGB PNG of `w`×`h` pixels (a gradient).
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .expect("encode png");
    bytes
}

/// Names of staging folders left in `dir`.
fn staging_left(dir: &Path) -> Vec<String> {
    list(dir)
        .into_iter()
        .filter(|f| f.starts_with(".convscope-staging-"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Memory: a budget checked before the work, and out of memory as an error line, not SIGABRT
// ---------------------------------------------------------------------------------------------

#[test]
fn huge_activation_jobs_are_refused_before_they_allocate() {
    let td = TestDir::new("mem-acts");
    td.model("fcn.onnx", &conv_model(3, 64));
    td.write("small.png", &png(40, 30));
    let start = Instant::now();
    let o = td.run([
        "activations",
        "fcn.onnx",
        "small.png",
        "--layers",
        "all",
        "--size",
        "2000x2000",
        "--memory-limit",
        "2G",
        "--out",
        "out",
    ]);
    let line = o.one_line_error();
    for needle in [
        "needs about",
        "memory limit is 2.0 GiB",
        "--size",
        "--memory-limit",
    ] {
        assert!(line.contains(needle), "{line}");
    }
    // Refused from a probe at a small size: well under the seconds a real pass would take.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(list(&td.path("out")).is_empty());
}

#[test]
fn filter_patterns_of_a_huge_size_are_refused_at_once() {
    let td = TestDir::new("mem-filters");
    td.model("fcn.onnx", &conv_model(2, 16));
    let o = td.run([
        "filters",
        "fcn.onnx",
        "--layer",
        "conv2",
        "--filters",
        "0..2",
        "--size",
        "16384",
        "--memory-limit",
        "1G",
        "--out",
        "out",
    ]);
    let line = o.one_line_error();
    assert!(
        line.contains("16384x16384") && line.contains("--size"),
        "{line}"
    );
}

#[test]
fn a_very_long_thin_image_with_crop_does_not_abort() {
    let td = TestDir::new("mem-crop");
    td.model("fcn.onnx", &conv_model(1, 4));
    td.write("thin.png", &png(20000, 1));
    td.write("tall.png", &png(1, 20000));
    for img in ["thin.png", "tall.png"] {
        let o = td.run([
            "activations",
            "fcn.onnx",
            img,
            "--size",
            "224",
            "--crop",
            "--memory-limit",
            "1G",
            "--out",
            "out",
        ]);
        // It works in little memory: only the crop is resampled (before: 12 GB and SIGABRT).
        assert_eq!(o.code, 0, "{img}: {}", o.stderr);
        assert!(staging_left(&td.path("out")).is_empty());
    }
}

/// Pictures too large for the limit are refused before they are drawn (the allocator's own
/// backstop, for what an estimate misses, is tested in the binary's `alloc` module).
#[test]
fn grids_too_large_for_the_limit_are_refused_before_drawing() {
    let td = TestDir::new("mem-grids");
    td.model("wide.onnx", &conv_model(1, 512));
    td.write("small.png", &png(16, 16));
    let o = td.run([
        "activations",
        "wide.onnx",
        "small.png",
        "--size",
        "64",
        "--cell",
        "1024",
        "--memory-limit",
        "256M",
        "--out",
        "out",
    ]);
    let line = o.one_line_error();
    assert!(
        line.contains("drawing the activation grids") && line.contains("--cell"),
        "{line}"
    );
    assert!(!td.path("out").exists());
}

// ---------------------------------------------------------------------------------------------
// 3. Panics reachable from input
// ---------------------------------------------------------------------------------------------

#[test]
fn bench_with_zero_runs_is_refused() {
    let td = TestDir::new("bench0");
    let line = td.run(["bench", "--runs", "0"]).one_line_error();
    assert!(line.contains("--runs"), "{line}");
}

#[test]
fn very_long_layer_names_print_without_panicking() {
    let td = TestDir::new("long-names");
    let long = "n".repeat(70_000);
    let mut g = GraphBuilder::new("long");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(3), Dim::Value(8), Dim::Value(8)],
    )
    .output("y", &[])
    .initializer(TensorProto::from_f32("w", &[2, 3, 3, 3], &[0.1; 54]))
    .node(
        "Conv",
        &long,
        &["x", "w"],
        &["c"],
        vec![A::ints("pads", &[1, 1, 1, 1])],
    )
    .node("Relu", "relu", &["c"], &["y"], vec![]);
    td.model("long.onnx", &g.build(13));
    td.npy("x.npy", &[1, 3, 8, 8], &[0.5; 192]);
    td.run(["summary", "long.onnx"]).success();
    td.run(["summary", "long.onnx", "--json"]).success();
    let o = td
        .run(["activations", "long.onnx", "x.npy", "--out", "out"])
        .success();
    // The table stays a table: the name column is cut, not 70,000 characters wide.
    assert!(
        o.stdout.lines().all(|l| l.chars().count() < 200),
        "{}",
        o.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Signals: the staging folder goes with the process
// ---------------------------------------------------------------------------------------------

/// Starts a long `filters` run, waits for its staging folder, sends `signal`, and checks the
/// exit code and that nothing is left behind.
fn interrupt(signal: &str, expected: i32) {
    let td = TestDir::new(&format!("signal-{signal}"));
    td.model("fcn.onnx", &conv_model(2, 16));
    td.write("img.png", &png(32, 32));
    let out = td.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "the user's").unwrap();
    // A report runs long enough (many filter steps) to be interrupted while staged.
    let mut child = Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args([
            "report", "fcn.onnx", "img.png", "--size", "64", "--steps", "100000", "--out",
        ])
        .arg(&out)
        .current_dir(td.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start convscope");
    let deadline = Instant::now() + Duration::from_secs(60);
    while staging_left(&out).is_empty() {
        assert!(Instant::now() < deadline, "no staging folder appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = child.wait().expect("wait").code();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(expected), "stderr: {err}");
    assert_eq!(list(&out), ["keep.txt"], "the staging folder is removed");
}

#[test]
fn sigterm_and_sigint_remove_the_staging_folder() {
    if !cfg!(unix) {
        return;
    }
    interrupt("TERM", 143);
    interrupt("INT", 130);
}

#[test]
fn staging_folders_of_dead_processes_are_removed_by_the_next_run() {
    let td = TestDir::new("stale-staging");
    features(&td);
    let out = td.path("out");
    let dead = out.join(".convscope-staging-4000000000");
    std::fs::create_dir_all(dead.join("x")).unwrap();
    std::fs::write(dead.join("x/big.png"), vec![0u8; 1000]).unwrap();
    td.run(["activations", "features.onnx", "input.npy", "--out", "out"])
        .success();
    assert!(!dead.exists());
    assert!(staging_left(&out).is_empty());
}

fn features(td: &TestDir) {
    td.model("features.onnx", &features_model());
    td.npy("input.npy", &[1, 3, 12, 12], &features_input());
}

// ---------------------------------------------------------------------------------------------
// 5. NaN and infinity are never turned into confident numbers
// ---------------------------------------------------------------------------------------------

#[test]
fn nonfinite_inputs_are_refused_naming_where() {
    let td = TestDir::new("nan-input");
    features(&td);
    let mut x = features_input();
    x[17] = f32::NAN;
    td.npy("nan.npy", &[1, 3, 12, 12], &x);
    let line = td
        .run(["activations", "features.onnx", "nan.npy", "--out", "out"])
        .one_line_error();
    assert!(
        line.contains("NaN") && line.contains("element 17"),
        "{line}"
    );
    assert!(line.contains("--allow-nonfinite"), "{line}");
    // The debugging switch lets it through.
    td.run([
        "activations",
        "features.onnx",
        "nan.npy",
        "--allow-nonfinite",
        "--out",
        "out",
    ])
    .success();
}

#[test]
fn values_that_overflow_name_the_first_node() {
    // Finite weights so large that conv2 overflows to infinity: not caught at load, caught
    // where it is shown, and the first node that produced it is named.
    let td = TestDir::new("inf-node");
    let mut m = conv_model(3, 4);
    // conv1's outputs are about 1e30, conv2's would be about 1e61: infinity in f32.
    for init in &mut m.graph.initializer {
        let shape: Vec<usize> = init.dims.iter().map(|&d| d as usize).collect();
        let n: usize = shape.iter().product();
        if init.name == "w1" || init.name == "w2" {
            *init = TensorProto::from_f32(&init.name.clone(), &shape, &vec![1e30; n]);
        }
    }
    td.model("inf.onnx", &m);
    td.write("img.png", &png(16, 16));
    let line = td
        .run([
            "activations",
            "inf.onnx",
            "img.png",
            "--size",
            "16",
            "--out",
            "out",
        ])
        .one_line_error();
    assert!(line.contains("NaN or infinity"), "{line}");
    assert!(line.contains("node 'conv2'"), "{line}");
    let line = td
        .run(["cam", "inf.onnx", "img.png", "--size", "16", "--out", "out"])
        .one_line_error();
    assert!(
        line.contains("conv2") || line.contains("classifier"),
        "{line}"
    );
}

#[test]
fn nonfinite_normalisation_is_refused() {
    let td = TestDir::new("nan-norm");
    td.model("fcn.onnx", &conv_model(1, 4));
    td.write("img.png", &png(16, 16));
    for (flag, value) in [("--mean", "nan,0,0"), ("--std", "inf,1,1")] {
        let other = if flag == "--mean" { "--std" } else { "--mean" };
        let line = td
            .run([
                "activations",
                "fcn.onnx",
                "img.png",
                flag,
                value,
                other,
                "0.5,0.5,0.5",
                "--out",
                "out",
            ])
            .one_line_error();
        assert!(line.contains("finite"), "{flag}: {line}");
    }
    let line = td
        .run([
            "activations",
            "fcn.onnx",
            "img.png",
            "--mean",
            "0.5,0.5,0.5",
            "--std",
            "0,0,0",
            "--out",
            "out",
        ])
        .one_line_error();
    assert!(line.contains("--std") && line.contains("> 0"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// 6. and 11. Output folders: all moves checked first; a run replaces the previous run's set
// ---------------------------------------------------------------------------------------------

#[test]
fn filters_json_into_an_existing_folder_moves_nothing() {
    let td = TestDir::new("json-dir");
    features(&td);
    std::fs::create_dir_all(td.path("curves.json")).unwrap();
    let line = td
        .run([
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
            "--json",
            "curves.json",
            "--out",
            "D",
        ])
        .one_line_error();
    assert!(line.contains("curves.json"), "{line}");
    assert!(list(&td.path("D")).is_empty(), "{:?}", list(&td.path("D")));
}

#[test]
fn a_new_run_replaces_the_files_of_the_previous_one() {
    let td = TestDir::new("replace");
    features(&td);
    td.run([
        "activations",
        "features.onnx",
        "input.npy",
        "--npy",
        "--out",
        "out",
    ])
    .success();
    std::fs::write(td.path("out/notes.txt"), "mine").unwrap();
    td.run([
        "activations",
        "features.onnx",
        "input.npy",
        "--layers",
        "conv2",
        "--out",
        "out",
    ])
    .success();
    let files = outputs_except(&td.path("out"), "notes.txt");
    assert_eq!(
        files,
        ["00_conv2.png", "index.html", "index.json", "input.png"],
        "only the new run's files (and the user's own)"
    );
    let index = read_json(&td.path("out/index.json"));
    assert_eq!(index["layers"].as_array().unwrap().len(), 1);
    assert!(td.path("out/notes.txt").exists());
}

/// [`outputs`] of `dir` without one file the user put there.
fn outputs_except(dir: &Path, user_file: &str) -> Vec<String> {
    let moved = dir.join(user_file);
    let tmp = dir.with_extension("user-file");
    std::fs::rename(&moved, &tmp).unwrap();
    let files = outputs(dir);
    std::fs::rename(&tmp, &moved).unwrap();
    files
}

// ---------------------------------------------------------------------------------------------
// 7. and 8. Messages that say what was wrong; meaningless numbers refused
// ---------------------------------------------------------------------------------------------

#[test]
fn limits_are_named_not_misreported() {
    let td = TestDir::new("messages");
    features(&td);
    let line = td
        .run([
            "activations",
            "features.onnx",
            "input.npy",
            "--size",
            "20000x20000",
        ])
        .one_line_error();
    assert!(line.contains("exceeds the limit of 16384"), "{line}");
    let line = td
        .run([
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--octaves",
            "2",
            "--octave-scale",
            "0",
        ])
        .one_line_error();
    assert!(
        line.contains("--octave-scale") && !line.contains("18446744073709551615"),
        "{line}"
    );
}

#[test]
fn meaningless_numbers_are_refused() {
    let td = TestDir::new("floats");
    td.model("classifier.onnx", &classifier_model());
    td.npy("cls.npy", &[1, 3, 16, 16], &classifier_input());
    features(&td);
    let cases: Vec<Vec<&str>> = vec![
        vec!["cam", "classifier.onnx", "cls.npy", "--alpha", "NaN"],
        vec!["cam", "classifier.onnx", "cls.npy", "--alpha=-1"],
        vec!["saliency", "classifier.onnx", "cls.npy", "--noise", "inf"],
        vec!["saliency", "classifier.onnx", "cls.npy", "--noise", "nan"],
        vec!["saliency", "classifier.onnx", "cls.npy", "--noise=-1"],
        vec![
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--step",
            "nan",
        ],
        vec![
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--step",
            "inf",
            "--optimizer",
            "adam",
        ],
        vec![
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--rotate",
            "nan",
        ],
        vec![
            "filters",
            "features.onnx",
            "--layer",
            "conv1",
            "--step",
            "0",
        ],
        vec!["filters", "features.onnx", "--layer", "conv1", "--tv=-1"],
    ];
    for args in cases {
        let mut args = args.clone();
        args.extend(["--out", "out"]);
        let o = td.run(&args);
        let line = o.one_line_error();
        let flag = args.iter().find(|a| a.starts_with("--")).unwrap();
        let flag = flag.split('=').next().unwrap();
        assert!(
            line.contains(flag.trim_start_matches('-')) || line.contains("finite"),
            "`{}`: {line}",
            o.cmd
        );
        assert!(!td.path("out").exists());
    }
}

// ---------------------------------------------------------------------------------------------
// 10. A labels file shorter than the classes
// ---------------------------------------------------------------------------------------------

#[test]
fn short_labels_files_get_a_warning_with_the_counts() {
    let td = TestDir::new("labels");
    td.model("classifier.onnx", &classifier_model());
    td.npy("cls.npy", &[1, 3, 16, 16], &classifier_input());
    td.write("labels.txt", b"red\ngreen\n");
    let o = td
        .run([
            "cam",
            "classifier.onnx",
            "cls.npy",
            "--labels",
            "labels.txt",
            "--top",
            "3",
            "--out",
            "out",
        ])
        .success();
    assert!(
        o.stderr
            .contains("warning: the labels file has 2 names for 3 classes"),
        "{}",
        o.stderr
    );
    assert!(o.stdout.contains("class 2"), "{}", o.stdout);
}

// ---------------------------------------------------------------------------------------------
// Concurrency: runs writing into the same folder at once
// ---------------------------------------------------------------------------------------------

#[test]
fn concurrent_runs_into_one_folder_leave_one_runs_set() {
    let td = TestDir::new("concurrent");
    features(&td);
    let layers = ["conv1", "pool1", "conv2", "0..2", "all", "conv2,conv1"];
    let children: Vec<_> = layers
        .iter()
        .map(|l| {
            Command::new(env!("CARGO_BIN_EXE_convscope"))
                .args([
                    "activations",
                    "features.onnx",
                    "input.npy",
                    "--npy",
                    "--layers",
                    l,
                    "--out",
                    "out",
                ])
                .current_dir(td.root())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start convscope")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Whatever the order, the folder holds exactly one run's files, and its index describes
    // them.
    let files = outputs(&td.path("out"));
    let index = read_json(&td.path("out/index.json"));
    let mut described: Vec<String> =
        vec!["index.html".into(), "index.json".into(), "input.png".into()];
    for layer in index["layers"].as_array().unwrap() {
        for f in layer["files"].as_array().unwrap() {
            described.push(f.as_str().unwrap().to_string());
        }
    }
    described.sort();
    assert_eq!(files, described);
    assert!(staging_left(&td.path("out")).is_empty());
}
