//! Writes a few scenes and the embedded model's outputs (computed by convscope's engine) as
//! JSON, for `scripts/check_onnxruntime.py` to compare with onnxruntime.
//!
//! ```text
//! cargo run --release -p convscope-demo-train --example reference_io -- OUT.json
//! ```

use convscope_demo::scene::{derive_seed, scene_with_all_classes, Image, Sample};
use convscope_demo::{DEMO_SCENE_SEED, DEMO_SCENE_SIZE};
use convscope_demo_train::export::LOGITS;
use convscope_demo_train::{demo_model, image_tensor};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: reference_io OUT.json")?;
    let model = demo_model()?;
    let ids = [model.outputs()[0], model.resolve(LOGITS)?];
    let mut images: Vec<Image> = (0..8)
        .map(|i| Sample::generate(derive_seed(31_337, i)).image)
        .collect();
    images.push(scene_with_all_classes(DEMO_SCENE_SEED, DEMO_SCENE_SIZE).image);
    let mut cases = Vec::new();
    for image in &images {
        let x = image_tensor(image);
        let y = model.run_float(&x, &ids)?;
        cases.push(json!({
            "shape": x.shape(),
            "input": x.data(),
            "probabilities": y[0].data(),
            "logits": y[1].data(),
        }));
    }
    std::fs::write(&out, serde_json::to_string(&json!({ "cases": cases }))?)?;
    println!("wrote {} cases to {out}", cases.len());
    Ok(())
}
