//! The assets agree with each other without running the model: the metadata JSON describes
//! the constants the program relies on, and the demo scene is the one the metadata records.
//! (The model itself is run and checked through the engine in `crates/demo-train/tests`.)

use convscope_demo::scene::scene_with_all_classes;
use convscope_demo::{
    demo_model_bytes, demo_model_json, demo_scene, CAM_LAYER, CAM_VALUE, CLASSES, DEMO_SCENE_SEED,
    DEMO_SCENE_SIZE, INPUT, INPUT_SIZE, LOGITS, OUTPUT, PREPROCESSING,
};
use serde_json::{json, Value};

fn metadata() -> Value {
    serde_json::from_str(demo_model_json()).expect("the embedded metadata is JSON")
}

#[test]
fn metadata_describes_the_constants() {
    let meta = metadata();
    assert_eq!(meta["classes"], json!(CLASSES));
    assert_eq!(meta["preprocessing"], PREPROCESSING);
    assert_eq!(meta["input"]["name"], INPUT);
    assert_eq!(meta["input"]["height"], INPUT_SIZE);
    assert_eq!(meta["input"]["width"], INPUT_SIZE);
    assert_eq!(meta["output"], OUTPUT);
    assert_eq!(meta["logits"], LOGITS);
    assert_eq!(meta["cam_layer"], CAM_LAYER);
    assert_eq!(meta["cam_value"], CAM_VALUE);
    assert!(meta["heldout"]["accuracy"].as_f64().unwrap() >= 0.95);
}

#[test]
fn demo_scene_is_the_one_the_metadata_records() {
    let meta = metadata();
    assert_eq!(meta["demo_scene"]["seed"], DEMO_SCENE_SEED);
    assert_eq!(meta["demo_scene"]["size"], DEMO_SCENE_SIZE);
    let (pixels, width, height, boxes) = demo_scene();
    assert_eq!((width, height), (DEMO_SCENE_SIZE, DEMO_SCENE_SIZE));
    let recorded: Vec<Value> = boxes
        .iter()
        .map(|b| json!([b.x0, b.y0, b.x1, b.y1]))
        .collect();
    assert_eq!(meta["demo_scene"]["boxes_x0_y0_x1_y1"], json!(recorded));
    // Same seed, same pixels: the scene is drawn afresh on every call.
    let again = scene_with_all_classes(DEMO_SCENE_SEED, DEMO_SCENE_SIZE);
    assert_eq!(again.image.data, pixels);
    assert_eq!(again.boxes, boxes);
    // The pixels of the scene every `convscope demo` report shows, pinned (FNV-1a): a change
    // to the generator changes the report.
    let fnv = pixels.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    assert_eq!(fnv, PINNED_SCENE_FNV, "demo scene hash {fnv:#x}");
}

/// FNV-1a of the demo scene's pixels, taken when the report was checked identical before and
/// after the demo crate was split from its trainer.
const PINNED_SCENE_FNV: u64 = 0xda95_c268_9b9d_7f8b;

#[test]
fn model_bytes_are_an_onnx_file_of_the_recorded_size() {
    let bytes = demo_model_bytes();
    assert!(
        bytes.len() > 10_000 && bytes.len() < 300_000,
        "{} bytes",
        bytes.len()
    );
    // ModelProto field 1 (ir_version, varint) comes first, then field 2 (producer_name).
    assert_eq!(&bytes[..2], &[0x08, 0x08]);
    assert_eq!(&bytes[2..4], &[0x12, b"convscope".len() as u8]);
    assert_eq!(&bytes[4..13], b"convscope");
}
