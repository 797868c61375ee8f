//! Speed of feature visualization (docs/benchmarks.md, "Feature visualization"): the lucid recipe
//! on one class of EfficientNet-Lite0 at 224 px, then a batch of 16 pictures, printing seconds per
//! picture and pictures per minute. Run beside `scripts/reference/lucent_classes.py --size 224`
//! with the same steps and threads.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release -p convscope --example visualize_bench -- \
//!     ../shared/models/efficientnet_lite0.onnx 512
//! ```

use std::time::Instant;

use convscope::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "../shared/models/efficientnet_lite0.onnx".into());
    let steps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(512);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let model = Model::load(&path)?.with_input(InputConfig {
        preprocess: Preprocess::Imagenet,
        ..InputConfig::default()
    });
    let config = |objectives: Vec<String>| VisualizeConfig {
        objectives,
        recipe: Recipe::Lucid,
        steps: Some(steps),
        size: Some(Size::square(224)),
        ..VisualizeConfig::default()
    };
    let start = Instant::now();
    let one = model.visualize(&config(vec!["class:1".into()]))?;
    let single = start.elapsed().as_secs_f64();
    println!(
        "lucid, {steps} steps, 224 px, class 1: {single:.1} s per picture (objective {:.2})",
        one.pictures[0].value
    );
    let classes: Vec<String> = (0..batch)
        .map(|k| format!("class:{}", k * 61 % 1000))
        .collect();
    let start = Instant::now();
    let many = model.visualize(&config(classes))?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "lucid, {steps} steps, 224 px, batch of {}: {seconds:.1} s, {:.2} pictures per minute",
        many.pictures.len(),
        many.pictures.len() as f64 * 60.0 / seconds
    );
    Ok(())
}
