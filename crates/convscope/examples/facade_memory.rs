//! How close the memory estimate is: prints the estimate for the activations of every layer of
//! MODEL at SIZE, runs the job, and prints the process's peak resident memory.
//!
//! ```sh
//! cargo run --release -p convscope --example facade_memory -- MODEL IMAGE SIZE
//! ```
//! Run once per size (the peak is the process's).

use convscope::prelude::*;

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn main() -> convscope::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, image, size] = args.as_slice() else {
        eprintln!("usage: memory_estimate MODEL IMAGE SIZE");
        std::process::exit(2);
    };
    let size: Size = size.parse()?;
    let model = Model::load(model)?
        .with_input(InputConfig::imagenet().with_size(size))
        .with_memory_limit(convscope::budget::MemoryLimit::unlimited());
    let image = Image::open(image)?;
    let input = model.input(&image)?;
    let before = peak_rss().unwrap_or(0);
    let values: Vec<_> = model.layers().iter().map(|l| l.value).collect();
    let pass = convscope::lower::engine::Pass::Inference;
    let estimate = model.estimate_bytes(size, 1, &values, pass)?.unwrap_or(0);
    let acts = model.activations(&input, &ActivationsConfig::layers("all"))?;
    let kept: usize = acts.layers().iter().map(|a| a.values.len() * 4).sum();
    let after = peak_rss().unwrap_or(0);
    println!(
        "size {size}: estimate {} | values kept {} | peak RSS {} (before the job {})",
        convscope::budget::human_bytes(estimate),
        convscope::budget::human_bytes(kept as u64),
        convscope::budget::human_bytes(after),
        convscope::budget::human_bytes(before),
    );
    Ok(())
}
