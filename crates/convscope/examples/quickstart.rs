//! The README's Rust example: the walk-through's three pictures of a real network.
//!
//! ```sh
//! cargo run --release -p convscope --example quickstart -- \
//!     ../shared/models/efficientnet_lite0.onnx ../shared/images/chelsea.png
//! ```
//!
//! Writes `cam.png` (Grad-CAM of the top class laid over the image), `stem.png` (every channel
//! of the first convolution) and `filters.png` (what its first 16 filters respond to).

use convscope::prelude::*;

fn main() -> convscope::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (model_path, image_path) = match args.as_slice() {
        [_, m, i] => (m.as_str(), i.as_str()),
        _ => (
            "../shared/models/efficientnet_lite0.onnx",
            "../shared/images/chelsea.png",
        ),
    };
    // README: begin
    let model = Model::load(model_path)?.with_input(InputConfig::imagenet());
    let image = Image::open(image_path)?;
    let top = model.predict(&image)?.best();
    model
        .gradcam(&image, Class(top))?
        .overlay(&image)?
        .save("cam.png")?;
    let acts = model.activations(&image, &ActivationsConfig::layers("0"))?;
    acts.grid(0, &GridStyle::default())?.save("stem.png")?;
    let filters = model.filters("0", &FiltersConfig::first(16))?;
    filters
        .picture(&TileStyle::default())?
        .save("filters.png")?;
    // README: end
    println!("class {top}: wrote cam.png, stem.png and filters.png");
    Ok(())
}
