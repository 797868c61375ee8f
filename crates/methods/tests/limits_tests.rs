//! Jobs beyond the engine's limits are refused before anything of their size is allocated:
//! `filters --size 16384` used to take 13 s and 6.2 GB before the refusal. This test binary
//! counts every allocation and refuses any above 256 MiB (the process then aborts, failing the
//! test), so a check that allocates first cannot pass here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use convscope_engine::Model;
use convscope_methods::filters::{check_layer, visualize_filters, FiltersConfig};
use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
const REFUSE_ABOVE: usize = 256 << 20;

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A VGG-like first block at a dynamic size: 3 → 64 channels.
fn model() -> Model {
    let w: Vec<f32> = (0..64 * 27)
        .map(|i| ((i % 13) as f32 - 6.0) / 50.0)
        .collect();
    let mut g = GraphBuilder::new("vgg_block");
    g.input(
        "x",
        &[
            Dim::Value(1),
            Dim::Value(3),
            Dim::Param("H".into()),
            Dim::Param("W".into()),
        ],
    )
    .initializer(TensorProto::from_f32("w", &[64, 3, 3, 3], &w))
    .node(
        "Conv",
        "block1_conv1",
        &["x", "w"],
        &["c"],
        vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
    )
    .node("Relu", "relu", &["c"], &["y"], vec![])
    .output("y", &[]);
    Model::from_proto(g.build(13)).unwrap()
}

#[test]
fn oversized_filter_jobs_are_refused_before_allocating() {
    let m = model();
    let layer = m.resolve("y").unwrap();
    for size in [16384, 8192] {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let err = check_layer(&m, layer, "block1_conv1", &[], (size, size)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("limit"), "{size}: {msg}");
        let cfg = FiltersConfig {
            filters: vec![0],
            size: (size, size),
            steps: 1,
            ..FiltersConfig::default()
        };
        let msg = visualize_filters(&m, layer, &cfg, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(msg.contains("limit"), "{size}: {msg}");
        let extra = PEAK.load(Ordering::Relaxed) - before;
        assert!(extra < 1 << 20, "{size}: {extra} bytes allocated to refuse");
        eprintln!("{size}: refused with {extra} bytes at the peak: {msg}");
    }
    // 16 filters at once at 2048 px: one image fits, the batch does not.
    let cfg = FiltersConfig {
        filters: (0..16).collect(),
        size: (2048, 2048),
        chunk: Some(16),
        steps: 1,
        ..FiltersConfig::default()
    };
    let msg = visualize_filters(&m, layer, &cfg, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[16, 64, 2048, 2048]") && msg.contains("limit"),
        "{msg}"
    );
    // A size that fits is accepted by the check (and the probe allocates nothing big).
    assert_eq!(
        check_layer(&m, layer, "block1_conv1", &[], (256, 256)).unwrap(),
        64
    );
}
