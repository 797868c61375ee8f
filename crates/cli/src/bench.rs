//! `convscope bench`: medians and GFLOP/s of the engine's standard jobs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use convscope::lower::engine::{Model, Tensor};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Folder with vgg16_tumor.onnx and efficientnet_lite0.onnx.
    #[arg(long, default_value = "../shared/models")]
    models: PathBuf,
    /// Timed runs per job (after one warm-up).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Only jobs whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Print where the time goes, per op and direction, after each job.
    #[arg(long)]
    profile: bool,
}

/// Deterministic pseudo-random input in [0, 1).
fn noise(shape: &[usize], seed: u64) -> Tensor {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::new(shape.to_vec(), data).expect("shape matches")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn time(runs: usize, mut f: impl FnMut() -> Result<u64>) -> Result<(f64, u64)> {
    let flops = f()?;
    // The profile covers the timed runs only (a first call allocates and packs weights).
    let _ = convscope::lower::engine::take_profile();
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(t), flops))
}

fn report(name: &str, (ms, flops): (f64, u64)) {
    println!(
        "convscope {name:<26} median_ms={ms:.2} gflops={:.1}",
        flops as f64 / ms / 1e6
    );
    for (op, total, calls) in convscope::lower::engine::take_profile()
        .into_iter()
        .take(80)
    {
        println!(
            "    {op:<28} {:>9.1} ms total  {calls:>5} calls",
            total.as_secs_f64() * 1e3
        );
    }
}

/// Times the inference pass ([`Model::run`]: each value is freed after its last reader, as
/// onnxruntime does), the job the forward comparisons measure. The flop count comes from one
/// taped pass beforehand (a tape keeps every value, so it is not what is timed).
fn time_inference(
    model: &Model,
    x: &Tensor,
    out: &[convscope::lower::engine::ValueId],
    runs: usize,
) -> Result<(f64, u64)> {
    let flops = model.forward(x, out)?.flops();
    time(runs, || {
        model.run(x, out)?;
        Ok(flops)
    })
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let want = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    println!(
        "# threads={} runs={} isa={}",
        rayon::current_num_threads(),
        args.runs,
        convscope::lower::engine::Isa::host().name()
    );
    convscope::lower::engine::set_profiling(args.profile);
    let vgg_path = args.models.join("vgg16_tumor.onnx");
    if [
        "vgg16_forward_240",
        "vgg16_b3c1_grad_150",
        "vgg16_b1c1_grad_b64_64",
    ]
    .iter()
    .any(|j| want(j))
    {
        let vgg = Model::load(&vgg_path)
            .with_context(|| format!("cannot load {}", vgg_path.display()))?;
        if want("vgg16_forward_240") {
            let x = noise(&[1, 240, 240, 3], 1);
            let out = vgg.outputs().to_vec();
            report(
                "vgg16_forward_240",
                time_inference(&vgg, &x, &out, args.runs)?,
            );
        }
        let grad_job = |name: &str, layer: &str, shape: [usize; 4]| -> Result<()> {
            if !want(name) {
                return Ok(());
            }
            let id = vgg.resolve(layer)?;
            let x = noise(&shape, 2);
            report(
                name,
                time(args.runs, || {
                    let tape = vgg.forward(&x, &[id])?;
                    let a = tape.value(id)?;
                    let [n, c, h, w] = *a.shape() else {
                        anyhow::bail!("not a feature map")
                    };
                    // Item i maximises the mean of channel i (mod C): one batched backward.
                    let mut seed = Tensor::zeros(a.shape());
                    for i in 0..n {
                        let ch = i % c;
                        seed.data_mut()[(i * c + ch) * h * w..(i * c + ch + 1) * h * w]
                            .fill(1.0 / (h * w) as f32);
                    }
                    let fwd = tape.flops();
                    tape.backward(vec![(id, seed)], &[])?;
                    // The input gradient costs about as much as the forward (no weight gradients).
                    Ok(2 * fwd)
                })?,
            );
            Ok(())
        };
        grad_job("vgg16_b3c1_grad_150", "block3_conv1", [1, 150, 150, 3])?;
        grad_job("vgg16_b1c1_grad_b64_64", "block1_conv1", [64, 64, 64, 3])?;
    }
    if ["effnet_forward_224", "effnet_logit285_grad_224"]
        .iter()
        .any(|j| want(j))
    {
        let path = args.models.join("efficientnet_lite0.onnx");
        let eff = Model::load(&path).with_context(|| format!("cannot load {}", path.display()))?;
        let x = noise(&[1, 3, 224, 224], 3);
        let out = eff.outputs().to_vec();
        if want("effnet_forward_224") {
            report(
                "effnet_forward_224",
                time_inference(&eff, &x, &out, args.runs)?,
            );
        }
        if want("effnet_logit285_grad_224") {
            report(
                "effnet_logit285_grad_224",
                time(args.runs, || {
                    let tape = eff.forward(&x, &out)?;
                    let mut seed = Tensor::zeros(tape.value(out[0])?.shape());
                    seed.data_mut()[285] = 1.0;
                    let f = tape.flops();
                    tape.backward(vec![(out[0], seed)], &[])?;
                    Ok(2 * f)
                })?,
            );
        }
    }
    Ok(())
}
