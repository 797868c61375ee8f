//! Runs the Python package's tests (pytest, `tests/python/`) from `cargo test`, so the README's
//! one test command covers the Python package too.
//!
//! Steps: a fresh virtual environment under `target/python-tests/`, `pip install` of the test
//! tools (pytest, onnxruntime, onnx, Pillow, numpy) and of maturin, `pip install` of
//! `crates/python` (maturin builds the extension with cargo, in the `dev` profile, in this
//! workspace's target folder, so later runs only rebuild what changed), then pytest, with the
//! `convscope` binary of the same build for the CLI comparisons.
//!
//! Without Python 3 (with `venv`) or without network access for pip, the test skips with a
//! message, unless `CI=true`: then any missing piece fails it. `CONVSCOPE_PYTHON` picks the
//! interpreter (default `python3`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The cargo profile maturin builds the extension in: `dev`, in the workspace's target folder,
/// so the build shares the third-party crates (`opt-level` 3 in `dev` too) with the rest of the
/// workspace's builds and later runs only rebuild what changed. Not `test`: `cargo rustc
/// --profile test` (what maturin runs) builds a test harness, not a library; not `release`: a
/// second optimised build of everything would add minutes to the suite for seconds of tests
/// (see docs/design.md, "The Python package").
const PROFILE: &str = "dev";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (prints why and returns `None`) or, under `CI=true`, fails.
fn missing(what: &str) -> Option<()> {
    if in_ci() {
        panic!("the Python tests cannot run (CI=true): {what}");
    }
    eprintln!("skipping the Python package tests: {what}");
    None
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let start = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    eprintln!("{what}: {:.1} s", start.elapsed().as_secs_f64());
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh venv with the test tools, or `None` (skipped) where Python or pip is unusable.
fn venv(root: &Path, dir: &Path) -> Option<PathBuf> {
    let python = std::env::var("CONVSCOPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import sys, venv; assert sys.version_info >= (3, 9)"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => missing(&format!("{python} >= 3.9 with venv: {}", text(&o).trim()))?,
        Err(e) => missing(&format!("no {python}: {e}"))?,
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
    }
    let out = run(
        Command::new(&python).args(["-m", "venv"]).arg(dir),
        "python -m venv",
    );
    if !out.status.success() {
        missing(&format!("python -m venv failed: {}", text(&out)))?;
    }
    let py = dir.join("bin/python");
    // The test tools, and maturin so that the package builds without pip's isolated build
    // environment (which would download maturin again on every run).
    let reqs = root.join("crates/python/tests/requirements.txt");
    let out = run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&reqs),
        "pip install the test tools",
    );
    if !out.status.success() {
        missing(&format!(
            "pip install -r {} failed: {}",
            reqs.display(),
            text(&out)
        ))?;
    }
    Some(py)
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest)))
        .expect("PATH entries without separators")
}

#[test]
fn python_package_tests_pass() {
    let root = convscope_test_support::workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let Some(py) = venv(&root, &target.join("python-tests/venv")) else {
        return;
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    // The package, as a user installs it (`pip install ./crates/python`).
    let out = run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--no-build-isolation",
                "--disable-pip-version-check",
            ])
            .arg(root.join("crates/python"))
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO", &cargo)
            // maturin's build hook runs the `maturin` executable of the venv.
            .env("PATH", path_with(py.parent().expect("venv/bin")))
            .env("MATURIN_PEP517_ARGS", format!("--profile {PROFILE}")),
        "pip install crates/python (maturin, cargo build)",
    );
    assert!(out.status.success(), "pip install failed:\n{}", text(&out));

    // The CLI binary that `cargo test --workspace` built for the CLI's own tests, beside this
    // test's executable (target/debug/deps/..): the Grad-CAM tests compare with its .npy files.
    let cli = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("convscope")))
        .filter(|p| p.is_file());
    if cli.is_none() {
        // The pytest tests that need it skip (or fail under CI=true) and say why.
        eprintln!("no convscope binary beside the test executable; run `cargo test --workspace`");
    }

    let out = run(
        Command::new(&py)
            .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
            .arg(root.join("crates/python/tests/python"))
            .env("CONVSCOPE_CLI", cli.unwrap_or_default())
            .env("CONVSCOPE_SHARED", root.join("../shared"))
            .current_dir(&root),
        "pytest",
    );
    let report = text(&out);
    eprintln!("{report}");
    assert!(out.status.success(), "pytest failed (see above)");
    assert!(
        !in_ci() || !report.contains(" skipped"),
        "Python tests were skipped under CI=true"
    );
}
