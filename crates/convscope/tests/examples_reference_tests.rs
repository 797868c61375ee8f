//! Dataset examples against onnxruntime: 64 real pictures (crops and flips of the shared
//! images), the top-5 and bottom-5 of every channel of two EfficientNet-Lite0 layers equal
//! those computed from onnxruntime's activations by `scripts/reference/examples_reference.py`.

use convscope::examples::{Entry, ExamplesConfig};
use convscope::prelude::*;
use convscope_test_support::{reference_json, shared, TempDir};

const CROP: usize = 200;

/// The script's image set: 16 crops of 200×200 of each shared image on a 4×4 grid, each also
/// flipped left-right; written as PNGs into `dir`.
fn image_set(dir: &TempDir) -> Option<usize> {
    let mut n = 0;
    for stem in ["chelsea", "coffee"] {
        let path = shared(&format!("images/{stem}.png"))?;
        let img = image::open(path).unwrap().to_rgb8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        for j in 0..4 {
            for i in 0..4 {
                let x = (i as f64 * (w - CROP) as f64 / 3.0).round() as usize;
                let y = (j as f64 * (h - CROP) as f64 / 3.0).round() as usize;
                let crop =
                    image::imageops::crop_imm(&img, x as u32, y as u32, CROP as u32, CROP as u32)
                        .to_image();
                let flip = image::imageops::flip_horizontal(&crop);
                crop.save(dir.path(&format!("{stem}_x{x:03}_y{y:03}.png")))
                    .unwrap();
                flip.save(dir.path(&format!("{stem}_x{x:03}_y{y:03}_flip.png")))
                    .unwrap();
                n += 2;
            }
        }
    }
    Some(n)
}

/// Compares one ranking with the reference's: the scores rank by rank within `tol`, and every
/// image whose reference score is clear of the cut (by more than `tol`) is ranked the same.
/// Returns how many ranks hold exactly the reference's image.
fn compare(
    ours: &[Entry],
    theirs: &[serde_json::Value],
    names: &[String],
    tol: f64,
    what: &str,
) -> usize {
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let score = |v: &serde_json::Value| v[1].as_f64().unwrap();
    let mut same = 0;
    for (rank, (o, t)) in ours.iter().zip(theirs).enumerate() {
        let name = &names[t[0].as_u64().unwrap() as usize];
        let diff = (o.score as f64 - score(t)).abs();
        assert!(
            diff <= tol,
            "{what} rank {rank}: score {} vs {}",
            o.score,
            score(t)
        );
        if &o.image == name {
            same += 1;
            assert_eq!(
                (o.x as u64, o.y as u64),
                (t[2].as_u64().unwrap(), t[3].as_u64().unwrap()),
                "{what} rank {rank}: peak of {name}"
            );
        } else {
            // A different image only where the reference itself has a near-tie at this rank
            // (another entry within `tol`), or at the cut, where the next image outside the
            // list may be a near-tie.
            let near = rank + 1 == theirs.len()
                || theirs
                    .iter()
                    .enumerate()
                    .any(|(r, u)| r != rank && (score(u) - score(t)).abs() <= tol);
            assert!(near, "{what} rank {rank}: {} instead of {name}", o.image);
        }
    }
    same
}

#[test]
fn top_k_of_every_channel_equals_onnxruntimes() {
    let dir = TempDir::new("examples-reference");
    let Some(n) = image_set(&dir) else { return };
    let Some(model_path) = shared("models/efficientnet_lite0.onnx") else {
        return;
    };
    let reference = reference_json("examples_efficientnet_lite0.json");
    let names: Vec<String> = reference["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), n);
    let model = Model::load(&model_path)
        .unwrap()
        .with_input(InputConfig::imagenet());
    let cfg = ExamplesConfig {
        layers: "_blocks.5._project_conv,_conv_head".into(),
        top: 5,
        ..ExamplesConfig::default()
    };
    let index = model.examples(dir.path(""), &cfg).unwrap();
    assert_eq!(index.images_used, 64);
    let (mut same, mut total) = (0, 0);
    for layer in &index.layers {
        let want = &reference["layers"][&layer.name]["units"];
        let units = want.as_array().unwrap();
        assert_eq!(units.len(), layer.units.len(), "{}", layer.name);
        let max = units
            .iter()
            .flat_map(|u| {
                u["top"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e[1].as_f64().unwrap().abs())
            })
            .fold(0.0f64, f64::max);
        let tol = 1e-4 * max.max(1e-6);
        for (unit, want) in layer.units.iter().zip(units) {
            for (end, list) in [("top", &unit.top), ("bottom", &unit.bottom)] {
                let what = format!("{} channel {} {end}", layer.name, unit.channel);
                same += compare(list, want[end].as_array().unwrap(), &names, tol, &what);
                total += list.len();
            }
        }
    }
    eprintln!("{same} of {total} ranks hold exactly onnxruntime's image; the rest are near-ties");
    assert!(same as f64 >= 0.98 * total as f64, "{same} of {total}");
}
