//! Trains the demo CNN from scratch and writes `crates/demo/assets/demo_model.onnx` and
//! `crates/demo/assets/demo_model.json` (the files `convscope-demo` embeds).
//!
//! ```text
//! cargo run --release -p convscope-demo-train --bin train_demo [-- --out DIR] [--epochs N]
//!     [--batches N] [--seed N] [--lr RATE] [--channels 3,16,32,32,64]
//! ```
//!
//! Training is bit-for-bit reproducible: the same settings give the same ONNX file whatever
//! the number of threads.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use convscope_demo::scene::scene_with_all_classes;
use convscope_demo::{
    CAM_LAYER, CLASSES, DEMO_SCENE_SEED, DEMO_SCENE_SIZE, INPUT_SIZE, PREPROCESSING,
};
use convscope_demo_train::export::{relu_value, to_onnx, INPUT, LOGITS, OPSET, OUTPUT};
use convscope_demo_train::train::{batch, train, TrainConfig, BN_EPSILON, BN_MOMENTUM};
use convscope_engine::{Model, Tensor};
use serde_json::json;

const USAGE: &str = "usage: train_demo [--out DIR] [--epochs N] [--batches N] [--seed N] \
                     [--lr RATE] [--channels 3,16,32,32,64]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut cfg = TrainConfig::default();
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo/assets");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            "--out" => out = PathBuf::from(value()?),
            "--epochs" => cfg.epochs = number(value()?)? as usize,
            "--batches" => cfg.batches_per_epoch = number(value()?)? as usize,
            "--seed" => cfg.seed = number(value()?)?,
            "--batch-size" => cfg.batch_size = number(value()?)? as usize,
            "--lr" => {
                let v = value()?;
                cfg.learning_rate = v.parse().map_err(|e| format!("--lr {v}: {e}"))?;
            }
            "--channels" => {
                let v = value()?;
                cfg.architecture.channels = v
                    .split(',')
                    .map(|c| c.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--channels {v}: {e}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let arch = &cfg.architecture;
    println!(
        "training {:?} channels, {} parameters, {} epochs × {} batches × {} images, {} threads",
        arch.channels,
        arch.parameter_count(),
        cfg.epochs,
        cfg.batches_per_epoch,
        cfg.batch_size,
        rayon::current_num_threads()
    );
    let start = Instant::now();
    let (net, history) = train(&cfg, |s| {
        println!(
            "epoch {:2}  loss {:.4}  train acc {:.2}%  held-out acc {:.2}% ({} images)  {:.0}s",
            s.epoch,
            s.loss,
            100.0 * s.train_accuracy,
            100.0 * s.heldout_accuracy,
            cfg.eval_images,
            s.seconds
        );
    });
    let seconds = start.elapsed().as_secs_f64();
    let accuracy = history.last().map_or(0.0, |s| s.heldout_accuracy);
    println!(
        "trained in {seconds:.0}s; held-out accuracy {:.2}%",
        100.0 * accuracy
    );

    // The doc string still names convscope-demo, where the trainer lived when the committed
    // model was trained: changing it would change the model's bytes.
    let doc = format!(
        "convscope demo: circle / square / triangle / stripes on 64x64 RGB scenes, input \
         values /255. Trained from scratch by convscope-demo (seed {}); held-out accuracy \
         {:.2}%.",
        cfg.seed,
        100.0 * accuracy
    );
    let bytes = to_onnx(&net, &doc).encode();

    // Check the written model with the engine: same logits as the trainer.
    let model = Model::from_bytes(&bytes).map_err(|e| format!("exported model: {e}"))?;
    let (x, _) = batch(cfg.eval_seed, 0, 16);
    let t =
        Tensor::new(vec![16, 3, INPUT_SIZE, INPUT_SIZE], x.clone()).map_err(|e| e.to_string())?;
    let logits_id = model.resolve(LOGITS).map_err(|e| e.to_string())?;
    let engine = model
        .run_float(&t, &[logits_id])
        .map_err(|e| e.to_string())?;
    let mut max_err = 0.0f32;
    for (i, xi) in x.chunks(3 * INPUT_SIZE * INPUT_SIZE).enumerate() {
        for (k, v) in net.logits(xi, INPUT_SIZE, INPUT_SIZE).iter().enumerate() {
            max_err = max_err.max((engine[0].data()[i * 4 + k] - v).abs());
        }
    }
    println!("engine vs trainer: max logit difference {max_err:.2e}");
    if max_err > 1e-3 {
        return Err("the exported model disagrees with the trainer".into());
    }

    let scene = scene_with_all_classes(DEMO_SCENE_SEED, DEMO_SCENE_SIZE);
    let boxes: Vec<_> = scene
        .boxes
        .iter()
        .map(|b| json!([b.x0, b.y0, b.x1, b.y1]))
        .collect();
    let meta = json!({
        "name": "convscope demo shapes CNN",
        "classes": CLASSES,
        "input": {
            "name": INPUT,
            "layout": "NCHW",
            "channels": 3,
            "height": INPUT_SIZE,
            "width": INPUT_SIZE,
            "dynamic_dims": ["N", "H", "W"],
        },
        "preprocessing": PREPROCESSING,
        "output": OUTPUT,
        "logits": LOGITS,
        "cam_layer": CAM_LAYER,
        "cam_value": relu_value(arch.convs()),
        "opset": OPSET,
        "architecture": {
            "channels": arch.channels,
            "classes": arch.classes,
            "parameters": arch.parameter_count(),
            "layers": "conv3x3+ReLU+MaxPool2 ×3, conv3x3+ReLU, GlobalAveragePool, Gemm, Softmax",
        },
        "heldout": {
            "images": cfg.eval_images,
            "seed": cfg.eval_seed,
            "accuracy": round4(accuracy),
        },
        "training": {
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "batches_per_epoch": cfg.batches_per_epoch,
            "batch_size": cfg.batch_size,
            "optimizer": "Adam (beta1 0.9, beta2 0.999, eps 1e-8)",
            "learning_rate": (f64::from(cfg.learning_rate) * 1e6).round() / 1e6,
            "schedule": "cosine decay to 5% of the peak over all steps",
            "init": "He normal convs, LeCun normal classifier, zero biases, BatchNorm gamma 1 beta 0",
            "normalisation": format!(
                "BatchNorm after every conv while training (batch statistics, running statistics \
                 momentum {BN_MOMENTUM}, eps {BN_EPSILON}), folded into the conv weights and \
                 biases for export"
            ),
            "loss": "softmax cross-entropy",
            "data": "fresh procedural 64x64 scenes every batch (convscope_demo::scene::Sample::generate)",
            "history": history.iter().map(|s| json!({
                "epoch": s.epoch,
                "loss": round4(s.loss),
                "train_accuracy": round4(s.train_accuracy),
                "heldout_accuracy": round4(s.heldout_accuracy),
            })).collect::<Vec<_>>(),
        },
        "demo_scene": {
            "seed": DEMO_SCENE_SEED,
            "size": DEMO_SCENE_SIZE,
            "boxes_x0_y0_x1_y1": boxes,
        },
        "regenerate": "cargo run --release -p convscope-demo-train --bin train_demo",
    });

    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let onnx_path = out.join("demo_model.onnx");
    let json_path = out.join("demo_model.json");
    std::fs::write(&onnx_path, &bytes).map_err(|e| format!("{}: {e}", onnx_path.display()))?;
    let text = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&json_path, text).map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!(
        "wrote {} ({} bytes) and {}",
        onnx_path.display(),
        bytes.len(),
        json_path.display()
    );
    Ok(())
}

/// Rounds to 4 decimals so the JSON stays readable.
fn round4(v: f32) -> f64 {
    (f64::from(v) * 10_000.0).round() / 10_000.0
}
