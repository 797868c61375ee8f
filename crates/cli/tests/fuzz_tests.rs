//! A short fuzz pass of the command line, as `cargo test` runs it: random commands, flags and
//! hostile values on tiny generated models, and models with random layer names for the summary
//! printer. Every run must exit 0, or 2 with exactly one `error:` line (the last line of
//! stderr); never a panic (101), an abort or another signal, never a hang.
//!
//! `CONVSCOPE_FUZZ_RUNS` (default 150) and `CONVSCOPE_FUZZ_SEED` (default 1) widen or vary the
//! pass; a failure prints the command line to replay.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, TensorProto};
use util::*;

/// xorshift64*: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Any value of `v`.
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }

    /// Four times in five one of the values before the `"!"` marker, else one after it.
    fn value<'a>(&mut self, v: &[&'a str]) -> &'a str {
        let split = v.iter().position(|x| *x == "!").unwrap_or(v.len());
        let (good, bad) = (&v[..split], &v[(split + 1).min(v.len())..]);
        if bad.is_empty() || (!good.is_empty() && self.below(5) != 0) {
            self.pick(good)
        } else {
            self.pick(bad)
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// Value lists: well-formed values, then "!", then hostile ones.
const SIZES: &[&str] = &[
    "12",
    "16",
    "16x8",
    "8x16",
    "7",
    "!",
    "0",
    "0x4",
    "-3",
    "abc",
    "",
    "1x",
    "x1",
    "1.5",
    "20000",
    "20000x1",
    "99999999999999999999",
    "3x4x5",
];
const FLOATS: &[&str] = &[
    "0.5", "1", "0.1", "!", "0", "-1", "nan", "NaN", "inf", "-inf", "1e40", "abc", "", "1e-30",
];
const INTS: &[&str] = &[
    "1",
    "2",
    "3",
    "!",
    "0",
    "-1",
    "18446744073709551616",
    "abc",
    "",
    "64",
];
const LAYERS: &[&str] = &[
    "conv1", "conv2", "pool1", "conv*", "0..2", "all", "!", "fc", "nope", "", "*", "0..99", "../x",
    "ü", "2..=1", "relu1", "gap",
];
const MODELS: &[&str] = &[
    "features.onnx",
    "classifier.onnx",
    "!",
    "missing.onnx",
    "folder",
    "notes.txt",
    "input.npy",
];
const INPUTS: &[&str] = &[
    "picture.png",
    "!",
    "input.npy",
    "cls.npy",
    "missing.png",
    "notes.txt",
    "folder",
    "features.onnx",
];

/// One random command line.
fn command(r: &mut Rng) -> Vec<String> {
    let cmd = r.pick(&[
        "summary",
        "activations",
        "filters",
        "cam",
        "saliency",
        "report",
        "bench",
        "nosuch",
    ]);
    let mut args = vec![cmd.to_string()];
    match cmd {
        "bench" => {
            args.extend(["--models".into(), "nothere".into()]);
            if r.below(2) == 0 {
                args.extend(["--runs".into(), r.value(INTS).into()]);
            }
            return args;
        }
        "nosuch" => return args,
        _ => {}
    }
    let model = r.value(MODELS);
    args.push(model.into());
    if matches!(cmd, "activations" | "cam" | "saliency" | "report") {
        // The tensor that fits the model, or any input.
        let fitting = if model == "features.onnx" {
            "input.npy"
        } else {
            "cls.npy"
        };
        let input = if r.below(2) == 0 {
            fitting
        } else {
            r.value(INPUTS)
        };
        args.push(input.into());
    }
    let flags: &[(&str, &[&str])] = match cmd {
        "summary" => &[("--json", &[]), ("--size", SIZES)],
        "activations" => &[
            ("--layers", LAYERS),
            ("--size", SIZES),
            ("--per-row", INTS),
            ("--cell", INTS),
            ("--channel", INTS),
            ("--colormap", &["viridis", "jet", "!", "nope", ""]),
            ("--npy", &[]),
            ("--crop", &[]),
            (
                "--preprocess",
                &["unit", "imagenet", "caffe", "tf", "raw", "!", "nope"],
            ),
            ("--mean", &["0.5,0.5,0.5", "!", "nan,0,0", "1,2", ""]),
            ("--std", &["0.5,0.5,0.5", "!", "0,0,0", "inf,1,1"]),
            ("--resize", &["bilinear", "bicubic", "nearest", "!", "nope"]),
            (
                "--memory-limit",
                &["1G", "none", "50%", "!", "1", "-1", "abc", "0"],
            ),
        ],
        "filters" => &[
            ("--layer", LAYERS),
            (
                "--filters",
                &[
                    "0..2", "0", "1,3", "!", "all", "9", "1..0", "0..99", "a", "",
                ],
            ),
            ("--steps", &["1", "2", "!", "0", "-1"]),
            ("--step", FLOATS),
            ("--size", &["16", "8x12", "!", "0", "20000", "abc"]),
            ("--grid", &["2x1", "!", "1x1", "0x0", "9"]),
            ("--margin", &["0", "5", "!", "-1"]),
            ("--labels", &[]),
            ("--optimizer", &["sgd", "adam", "!", "nope"]),
            ("--jitter", &["0", "2", "!", "-1"]),
            ("--scale", FLOATS),
            ("--rotate", FLOATS),
            ("--tv", FLOATS),
            ("--l2", FLOATS),
            ("--octaves", &["1", "2", "!", "0", "99"]),
            ("--octave-scale", FLOATS),
            ("--chunk", &["1", "!", "0", "abc"]),
            ("--seed", INTS),
            ("--json", &["curves.json", "!", "folder", ""]),
        ],
        "cam" => &[
            (
                "--class",
                &["0", "1", "0,1", "0+1", "!", "99", "red", "", "-1"],
            ),
            ("--top", INTS),
            ("--layer", LAYERS),
            (
                "--method",
                &[
                    "gradcam",
                    "gradcam++",
                    "scorecam",
                    "ablationcam",
                    "eigencam",
                    "!",
                    "nope",
                ],
            ),
            ("--alpha", FLOATS),
            ("--npy", &[]),
            ("--labels", &["labels.txt", "!", "missing.txt", "folder"]),
            ("--size", SIZES),
        ],
        "saliency" => &[
            (
                "--method",
                &[
                    "gradient",
                    "smoothgrad",
                    "all",
                    "guided-gradcam",
                    "!",
                    "nope",
                ],
            ),
            ("--class", INTS),
            ("--samples", &["1", "2", "!", "0"]),
            ("--noise", FLOATS),
            ("--steps", &["1", "2", "!", "0"]),
            ("--layer", LAYERS),
            ("--npy", &[]),
        ],
        "report" => &[
            ("--filters", &["1", "2", "!", "0"]),
            ("--filter-size", &["16", "!", "0", "99999999"]),
            ("--steps", &["1", "2", "!", "0"]),
            ("--top", INTS),
            ("--filter-layers", LAYERS),
        ],
        _ => &[],
    };
    for _ in 0..r.below(4) {
        let (flag, values) = flags[r.below(flags.len())];
        args.push(flag.into());
        if !values.is_empty() {
            args.push(r.value(values).into());
        }
    }
    if cmd != "summary" && r.below(4) != 0 {
        args.extend([
            "--out".into(),
            r.value(&["out", "out2", "folder", "!", "notes.txt"]).into(),
        ]);
    }
    if cmd == "report" {
        args.extend([
            "--steps".into(),
            "1".into(),
            "--filter-size".into(),
            "16".into(),
        ]);
    }
    args
}

/// Runs `args`, killing it after `limit`; returns (exit code or None when killed, stderr).
fn run_bounded(dir: &std::path::Path, args: &[String], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start convscope");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "timed out".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn check(args: &[String], code: Option<i32>, stderr: &str) {
    let replay = format!("convscope {}", args.join(" "));
    match code {
        Some(0) => assert!(
            !stderr.lines().any(|l| l.starts_with("error")),
            "`{replay}` succeeded but printed an error:\n{stderr}"
        ),
        Some(2) => {
            let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
            assert_eq!(errors.len(), 1, "`{replay}`: not one error line:\n{stderr}");
            assert!(
                stderr
                    .lines()
                    .last()
                    .is_some_and(|l| l.starts_with("error: ")),
                "`{replay}`: the error is not the last line:\n{stderr}"
            );
        }
        other => panic!("`{replay}` ended with {other:?} (a panic, an abort or a hang):\n{stderr}"),
    }
}

#[test]
fn random_command_lines_end_in_success_or_one_error_line() {
    let td = TestDir::new("fuzz-cli");
    td.model("features.onnx", &features_model());
    td.model("classifier.onnx", &classifier_model());
    td.npy("input.npy", &[1, 3, 12, 12], &features_input());
    td.npy("cls.npy", &[1, 3, 16, 16], &classifier_input());
    td.write("picture.png", &classifier_png(20, 20));
    td.write("notes.txt", b"not a model\n");
    td.write("labels.txt", b"red\ngreen\n");
    std::fs::create_dir_all(td.path("folder")).unwrap();
    let runs = env_or("CONVSCOPE_FUZZ_RUNS", 150);
    let mut r = Rng(env_or("CONVSCOPE_FUZZ_SEED", 1).max(1));
    let mut succeeded = 0;
    for _ in 0..runs {
        let args = command(&mut r);
        let (code, stderr) = run_bounded(td.root(), &args, Duration::from_secs(60));
        check(&args, code, &stderr);
        succeeded += usize::from(code == Some(0));
    }
    eprintln!("{runs} command lines: {succeeded} succeeded, the rest refused in one line");
    // The pass must reach the work, not only the argument checks.
    assert!(
        succeeded * 10 >= runs as usize,
        "only {succeeded} of {runs} runs succeeded"
    );
    // Nothing was ever left half-written.
    for dir in ["out", "out2", "folder"] {
        let left: Vec<String> = list(&td.path(dir))
            .into_iter()
            .filter(|f| f.starts_with(".convscope-staging"))
            .collect();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
}

/// A layer name of random length and characters (control characters, wide and combining
/// characters, quotes, HTML).
fn random_name(r: &mut Rng) -> String {
    let len = match r.below(5) {
        0 => 0,
        1 => r.below(8),
        2 => r.below(300),
        3 => 60_000 + r.below(20_000),
        // Long names without separators survive the exporter-noise stripping whole.
        _ => return "ab".repeat(33_000 + r.below(10_000)),
    };
    let pool = [
        "a", "Z", "_", "/", ".", ":", " ", "\t", "\n", "\u{7}", "ü", "漢", "\u{301}", "😀", "<b>",
        "\"", "%", "{}", "\u{200b}",
    ];
    (0..len).map(|_| pool[r.below(pool.len())]).collect()
}

#[test]
fn the_summary_printer_survives_any_layer_names() {
    let td = TestDir::new("fuzz-summary");
    let runs = env_or("CONVSCOPE_FUZZ_RUNS", 150) / 5;
    let mut r = Rng(env_or("CONVSCOPE_FUZZ_SEED", 1).max(1) ^ 0x5eed);
    for i in 0..runs {
        let (conv, relu, pool) = (
            random_name(&mut r),
            random_name(&mut r),
            random_name(&mut r),
        );
        let mut g = GraphBuilder::new(&random_name(&mut r));
        g.input(
            "x",
            &[Dim::Value(1), Dim::Value(3), Dim::Value(8), Dim::Value(8)],
        )
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[2, 3, 3, 3], &[0.1; 54]))
        .node(
            "Conv",
            &conv,
            &["x", "w"],
            &["c"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", &relu, &["c"], &["r"], vec![])
        .node(
            "MaxPool",
            &pool,
            &["r"],
            &["y"],
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("strides", &[2, 2]),
            ],
        );
        let name = format!("m{i}.onnx");
        td.model(&name, &g.build(13));
        for extra in [&[][..], &["--json"][..]] {
            let mut args = vec!["summary".to_string(), name.clone()];
            args.extend(extra.iter().map(|s| s.to_string()));
            let (code, stderr) = run_bounded(td.root(), &args, Duration::from_secs(30));
            check(&args, code, &stderr);
            assert_eq!(code, Some(0), "`convscope {}`: {stderr}", args.join(" "));
        }
    }
}
