//! Compares `Model::estimate_forward_bytes` with the memory a pass really takes:
//! `cargo run --release -p convscope-engine --example memory_estimate -- MODEL PASS SHAPE`
//! with PASS one of `inference`, `tape`, `gradient` and SHAPE like `1,3,224,224`.
//!
//! Linux only: the peak resident set (`VmHWM`) is reset through `/proc/self/clear_refs` after
//! loading and read after the pass; the pass runs twice (the first also builds the kernels'
//! weight caches). Run it with `MALLOC_MMAP_THRESHOLD_=131072` so that glibc returns every
//! large tensor to the kernel when freed instead of keeping it for reuse.
use std::path::Path;

use convscope_engine::{Model, Pass, Tensor};

/// A `kB` field of `/proc/self/status`, in bytes.
fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a kB field")
        * 1024
}

/// Resets `VmHWM` to the current resident set.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs (Linux 4.0+)");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: memory_estimate MODEL inference|tape|gradient SHAPE (e.g. 1,3,224,224)");
        std::process::exit(2);
    }
    let model = Model::load(Path::new(&args[0])).expect("a loadable model");
    let pass = match args[1].as_str() {
        "inference" => Pass::Inference,
        "tape" => Pass::Tape,
        "gradient" => Pass::Gradient,
        other => panic!("unknown pass {other}"),
    };
    let shape: Vec<usize> = args[2]
        .split(',')
        .map(|v| v.parse().expect("a shape of comma-separated sizes"))
        .collect();
    let out = model.outputs().to_vec();
    let estimate = model
        .estimate_forward_bytes(&shape, &out, pass)
        .expect("an estimate");
    let x = Tensor::full(&shape, 0.5);
    let run = || match pass {
        Pass::Inference => {
            model.run(&x, &out).expect("a pass");
        }
        Pass::Tape => {
            let tape = model.forward(&x, &out).expect("a pass");
            std::hint::black_box(tape.memory_bytes());
        }
        Pass::Gradient => {
            let tape = model.forward(&x, &out).expect("a pass");
            let y = tape.value(out[0]).expect("the output");
            let seed = Tensor::full(y.shape(), 1.0);
            tape.backward(vec![(out[0], seed)], &[])
                .expect("a gradient");
        }
    };
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{} {pass:?} {shape:?}: estimate {:.1} MB (values on a tape {:.1} MB), model resident {:.1} MB",
        args[0],
        mb(estimate.peak_bytes),
        mb(estimate.total_bytes),
        mb(status("VmRSS:"))
    );
    for round in ["first pass (builds weight caches)", "second pass"] {
        let before = status("VmRSS:");
        reset_peak();
        run();
        let peak = status("VmHWM:");
        println!(
            "  {round}: peak {:.1} MB above the {:.1} MB before it ({:.2} x estimate); {:.1} MB stay after it",
            mb(peak - before),
            mb(before),
            (peak - before) as f64 / estimate.peak_bytes as f64,
            mb(status("VmRSS:").saturating_sub(before))
        );
    }
}
