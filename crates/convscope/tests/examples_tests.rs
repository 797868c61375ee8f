//! Dataset examples on generated scenes, where the right answer is known: the demo model's
//! "circle" channels must pick circles. Shards merged and killed-and-resumed runs equal one
//! run exactly.

use std::sync::atomic::{AtomicU64, Ordering};

use convscope::examples::{merge, ExamplesConfig, ExamplesIndex, ExamplesRun, Shard};
use convscope::lower::engine::Tensor;
use convscope::prelude::*;
use convscope_demo::scene::Sample;
use convscope_test_support::TempDir;

/// `n` generated 64×64 scenes of one shape each, written as PNGs into `dir` under a folder per
/// hundred (so the scan recurses); returns each relative path with its class.
fn scenes(dir: &TempDir, n: usize) -> Vec<(String, usize)> {
    (0..n)
        .map(|i| {
            let s = Sample::generate(9_000 + i as u64);
            let rel = format!("part{}/scene{i:05}.png", i / 100);
            let img =
                Image::from_rgb8(Size::new(s.image.width, s.image.height), &s.image.data).unwrap();
            let path = dir.path(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            img.to_picture().save(&path).unwrap();
            (rel, s.class.index())
        })
        .collect()
}

fn demo_at_64() -> Model {
    Model::demo()
        .unwrap()
        .with_input(InputConfig::default().with_size(Size::square(64)))
}

fn config(layers: &str) -> ExamplesConfig {
    ExamplesConfig {
        layers: layers.into(),
        batch: 16,
        ..ExamplesConfig::default()
    }
}

/// The channels of `layer` that Grad-CAM weighs most for each class: the mean gradient of the
/// class logit over positions and over a few scenes of the class.
fn gradcam_channels(model: &Model, layer: &str, per_class: usize) -> Vec<Vec<usize>> {
    let engine = model.engine();
    let value = engine.resolve(layer).unwrap();
    let logits = engine.resolve(convscope_demo::LOGITS).unwrap();
    (0..4)
        .map(|class| {
            let mut weights: Vec<f64> = Vec::new();
            for seed in 0..8u64 {
                let s = Sample::with_class(
                    500 + seed,
                    convscope_demo::scene::Shape::from_index(class).unwrap(),
                );
                let x = Tensor::new(vec![1, 3, 64, 64], s.image.to_chw_unit()).unwrap();
                let tape = engine.forward(&x, &[value, logits]).unwrap();
                let mut seedt = Tensor::zeros(tape.value(logits).unwrap().shape());
                seedt.data_mut()[class] = 1.0;
                let g = tape.backward_to(vec![(logits, seedt)], &[value]).unwrap();
                let g = &g[&value];
                let [_, c, h, w] = g.shape()[..] else {
                    panic!()
                };
                weights.resize(c, 0.0);
                for (k, wk) in weights.iter_mut().enumerate() {
                    *wk += g.data()[k * h * w..(k + 1) * h * w]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>();
                }
            }
            let mut order: Vec<usize> = (0..weights.len()).collect();
            order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
            order.truncate(per_class);
            order
        })
        .collect()
}

#[test]
fn the_channels_gradcam_uses_for_a_class_pick_that_class() {
    // 400 scenes here; CONVSCOPE_EXAMPLES_SCENES=2000 for the figure in docs/design.md.
    let n = std::env::var("CONVSCOPE_EXAMPLES_SCENES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let dir = TempDir::new("examples-demo");
    let labels = scenes(&dir, n);
    let model = demo_at_64();
    let index = model
        .examples(dir.path(""), &config(convscope_demo::CAM_LAYER))
        .unwrap();
    assert_eq!(index.images_used, n);
    let layer = &index.layers[0];
    let class_of = |p: &str| labels.iter().find(|(r, _)| r == p).unwrap().1;
    let mut hits = 0;
    let mut total = 0;
    for (class, channels) in gradcam_channels(&model, convscope_demo::CAM_LAYER, 3)
        .iter()
        .enumerate()
    {
        for &ch in channels {
            let top = &layer.units[ch].top;
            assert_eq!(top.len(), 9);
            hits += top.iter().filter(|e| class_of(&e.image) == class).count();
            total += top.len();
        }
    }
    let fraction = hits as f64 / total as f64;
    eprintln!("top-9 examples of the 3 Grad-CAM channels per class: {hits}/{total} = {fraction:.3} of the class's shape");
    assert!(fraction >= 0.6, "{fraction}");
}

#[test]
fn four_shards_merged_equal_one_run_byte_for_byte() {
    let dir = TempDir::new("examples-shards");
    scenes(&dir, 150);
    let model = demo_at_64();
    let cfg = config("conv1,conv3");
    let whole = model.examples(dir.path(""), &cfg).unwrap();
    let parts: Vec<ExamplesIndex> = (0..4)
        .map(|index| {
            let c = ExamplesConfig {
                shard: Shard { index, count: 4 },
                ..cfg.clone()
            };
            model.examples(dir.path(""), &c).unwrap()
        })
        .collect();
    assert!(parts.iter().all(|p| p.images_used < 150));
    assert_eq!(parts.iter().map(|p| p.images_used).sum::<usize>(), 150);
    let merged = merge(&parts).unwrap();
    assert_eq!(
        serde_json::to_string_pretty(&merged).unwrap(),
        serde_json::to_string_pretty(&whole).unwrap()
    );
    // Shards of another job do not merge.
    let other = model.examples(dir.path(""), &config("conv2")).unwrap();
    assert!(merge(&[parts[0].clone(), other]).is_err());
}

/// Cancels the run once `after` images are done.
struct StopAfter {
    after: u64,
    done: AtomicU64,
}

impl Progress for StopAfter {
    fn set(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.done.load(Ordering::Relaxed) >= self.after
    }
}

#[test]
fn a_run_stopped_halfway_and_resumed_equals_one_run() {
    let dir = TempDir::new("examples-resume");
    scenes(&dir, 120);
    let model = demo_at_64();
    let cfg = ExamplesConfig {
        checkpoint_every: std::time::Duration::ZERO,
        ..config("conv2")
    };
    let whole = model.examples(dir.path(""), &cfg).unwrap();
    let ckpt = dir.path("checkpoint.json");
    let stop = StopAfter {
        after: 60,
        done: AtomicU64::new(0),
    };
    let first = ExamplesRun::new(&model, &dir.path(""), &cfg, Some(&ckpt)).unwrap();
    assert!(first.run(&stop).is_err(), "stopped");
    let second = ExamplesRun::new(&model, &dir.path(""), &cfg, Some(&ckpt)).unwrap();
    assert_eq!(second.done(), 64, "continues after the last saved batch");
    let resumed = second.run(&NoProgress).unwrap();
    assert_eq!(
        serde_json::to_string(&resumed).unwrap(),
        serde_json::to_string(&whole).unwrap()
    );
    // A checkpoint of another job is refused, not silently mixed in.
    let e = ExamplesRun::new(&model, &dir.path(""), &config("conv1"), Some(&ckpt))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("another job"), "{e}");
}

#[test]
fn unreadable_images_are_listed_and_skipped() {
    let dir = TempDir::new("examples-bad");
    scenes(&dir, 40);
    // One in the first batch (decoded on every thread), one in the third (read ahead on a
    // thread of its own while the second runs through the model).
    std::fs::write(dir.path("part0/broken.png"), b"not a png").unwrap();
    std::fs::write(dir.path("part0/zz-broken.png"), b"not a png either").unwrap();
    std::fs::write(dir.path("notes.txt"), b"not an image name").unwrap();
    let index = demo_at_64()
        .examples(dir.path(""), &config("conv1"))
        .unwrap();
    assert_eq!(index.images_used, 40);
    let skipped: Vec<&str> = index.skipped.iter().map(|s| s.image.as_str()).collect();
    assert_eq!(skipped, ["part0/broken.png", "part0/zz-broken.png"]);
    assert!(index
        .skipped
        .iter()
        .all(|s| s.reason.contains("not a decodable image")));
}

#[test]
fn receptive_fields_cover_what_a_position_sees() {
    let model = demo_at_64();
    let engine = model.engine();
    for (layer, min) in [("conv1", 3.0), ("conv2", 8.0), ("conv4", 20.0)] {
        let value = engine.resolve(layer).unwrap();
        let rf = convscope::examples::receptive_field(&model, value, Size::square(64)).unwrap();
        assert!(rf.width >= min && rf.height >= min, "{layer}: {rf:?}");
        assert!(rf.width <= 64.0 + rf.stride_x, "{layer}: {rf:?}");
    }
}
