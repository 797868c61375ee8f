//! `convscope examples` and `convscope merge` as a cluster runs them: shards from the
//! scheduler's environment (Kubernetes Indexed Jobs, Slurm arrays, the shipped sbatch script),
//! a run killed with SIGKILL and resumed, all equal to one run byte for byte.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::*;

/// A folder of `n` generated demo scenes (PNG) and the demo model as an ONNX file.
fn setup(td: &TestDir, n: usize) {
    td.write("demo.onnx", convscope_demo::demo_model_bytes());
    for i in 0..n {
        let s = convscope_demo::scene::Sample::generate(7_000 + i as u64);
        let img =
            image::RgbImage::from_raw(s.image.width as u32, s.image.height as u32, s.image.data)
                .unwrap();
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        td.write(&format!("images/{}/s{i:04}.png", i % 3), &bytes);
    }
}

const ARGS: &[&str] = &[
    "examples",
    "demo.onnx",
    "--images",
    "images",
    "--layers",
    "conv2,conv4",
    "--size",
    "64",
    "--top",
    "5",
];

fn run_env(td: &TestDir, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convscope"));
    cmd.args(ARGS).args(extra).current_dir(td.root());
    for var in [
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    Output {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        cmd: format!("convscope {} {}", ARGS.join(" "), extra.join(" ")),
    }
}

fn index(td: &TestDir, dir: &str) -> String {
    std::fs::read_to_string(td.path(&format!("{dir}/index.json"))).unwrap()
}

#[test]
fn shards_from_the_schedulers_merge_into_one_run() {
    let td = TestDir::new("examples-cluster");
    setup(&td, 60);
    run_env(&td, &["--out", "whole"], &[]).success();
    let whole = index(&td, "whole");
    // Kubernetes Indexed Job: JOB_COMPLETION_INDEX and --shards.
    for i in 0..3 {
        let out = format!("k8s/shard-{i}");
        let o = run_env(
            &td,
            &["--shards", "3", "--out", &out],
            &[("JOB_COMPLETION_INDEX", &i.to_string())],
        )
        .success();
        assert!(o.stderr.contains(&format!("shard {i}/3")), "{}", o.stderr);
    }
    td.run([
        "merge",
        "k8s/merged",
        "k8s/shard-0",
        "k8s/shard-1",
        "k8s/shard-2",
    ])
    .success();
    assert_eq!(index(&td, "k8s/merged"), whole);
    // Slurm array with ids 1..=4: SLURM_ARRAY_TASK_MIN makes them shards 0..3.
    for id in 1..=4 {
        let out = format!("slurm/shard-{id}");
        run_env(
            &td,
            &["--out", &out],
            &[
                ("SLURM_ARRAY_TASK_ID", &id.to_string()),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
        )
        .success();
    }
    let shards: Vec<String> = (1..=4).map(|id| format!("slurm/shard-{id}")).collect();
    let mut args = vec!["merge".to_string(), "slurm/merged".to_string()];
    args.extend(shards);
    td.run(&args).success();
    assert_eq!(index(&td, "slurm/merged"), whole);
    // An index out of range is one clear line.
    let line = run_env(&td, &["--shards", "3"], &[("JOB_COMPLETION_INDEX", "3")]).one_line_error();
    assert!(line.contains("shard 3/3"), "{line}");
}

#[test]
fn the_shipped_slurm_script_runs_as_slurm_would_run_it() {
    if !cfg!(unix) {
        return;
    }
    let td = TestDir::new("examples-sbatch");
    setup(&td, 24);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/slurm/examples-array.sbatch"
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_convscope"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for id in 0..2 {
        let o = Command::new("bash")
            .arg(script)
            .current_dir(td.root())
            .env("PATH", &path)
            .env("SLURM_ARRAY_TASK_ID", id.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "0")
            .env("SLURM_ARRAY_TASK_COUNT", "2")
            .env("MODEL", "demo.onnx")
            .env("LAYERS", "conv3")
            .env("PREPROCESS", "unit")
            .env("EXTRA", "--size 64")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    td.run([
        "merge",
        "results/merged",
        "results/shard-0",
        "results/shard-1",
        "--crops",
    ])
    .success();
    let merged = read_json(&td.path("results/merged/index.json"));
    assert_eq!(merged["images_used"], 24);
    // With --crops the merge cuts every entry's field out of its image.
    let first = &merged["layers"][0]["units"][0]["top"][0];
    assert!(first["box"]["width"].as_u64().unwrap() >= 1);
    assert!(td.path("results/merged/crop_conv3_0000_top0.png").exists());
}

#[test]
fn a_killed_run_resumes_and_ends_with_the_same_result() {
    if !cfg!(unix) {
        return;
    }
    let td = TestDir::new("examples-kill");
    setup(&td, 240);
    run_env(&td, &["--out", "whole"], &[]).success();
    let whole = index(&td, "whole");
    let mut child = Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args(ARGS)
        .args(["--checkpoint-every", "0", "--out", "killed"])
        .current_dir(td.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = td.path("killed/.convscope-examples-checkpoint.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["done"].as_u64())
            .unwrap_or(0);
        if done >= 40 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !td.path("killed/index.json").exists(),
        "killed before the end"
    );
    let o = run_env(&td, &["--resume", "--out", "killed"], &[]).success();
    assert!(o.stderr.contains("resuming after"), "{}", o.stderr);
    assert_eq!(index(&td, "killed"), whole);
    assert!(
        !checkpoint.exists(),
        "the checkpoint goes with the finished run"
    );
}

/// `convscope atlas` as a user runs it: Lucid's recipe by default, the walk-through's one flag
/// away, each unit page saying which made its picture; an unknown recipe is one line, exit 2.
#[test]
fn the_atlas_command_draws_units_by_the_chosen_recipe() {
    let td = TestDir::new("atlas-cli");
    setup(&td, 6);
    let atlas = |recipe: &[&str], out: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convscope"));
        cmd.args([
            "atlas",
            "demo.onnx",
            "--images",
            "images",
            "--layers",
            "conv4",
            "--size",
            "64",
            "--top",
            "2",
            "--picture-size",
            "32",
            "--steps",
            "3",
            "--out",
            out,
        ])
        .args(recipe)
        .current_dir(td.root());
        cmd.output().unwrap()
    };
    let mut pictures = Vec::new();
    for (recipe, out, says) in [
        (&[][..], "lucid", "3 steps of Lucid"),
        (
            &["--recipe", "walkthrough"][..],
            "walk",
            "3 steps of gradient ascent",
        ),
    ] {
        let o = atlas(recipe, out);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let unit =
            std::fs::read_to_string(td.path(&format!("{out}/unit_conv4_0003.html"))).unwrap();
        assert!(unit.contains(says), "{out}: {unit}");
        let wants = std::fs::read_dir(td.path(out))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("wants_conv4_"))
            .count();
        assert_eq!(wants, 64, "{out}: one picture per unit of conv4");
        pictures.push(std::fs::read(td.path(&format!("{out}/wants_conv4_0003.png"))).unwrap());
    }
    assert_ne!(
        pictures[0], pictures[1],
        "the recipes draw different pictures"
    );
    let o = atlas(&["--recipe", "deepdream"], "bad");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("deepdream"), "{err}");
    assert!(!td.path("bad").exists(), "no half-written site");
}
