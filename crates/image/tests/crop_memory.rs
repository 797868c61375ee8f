//! Memory of the cropping resize: a 20000×1 image cropped to 224×224 used to be resized
//! whole to 4,480,000×224 first (12 GB, and the process aborted). This test binary counts every
//! allocation and refuses any above 1 GiB, so the old behaviour fails here instead of swapping.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use convscope_image::{resize_shorter_and_center_crop, ResizeFilter, RgbImageF32};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Larger requests fail (the process then aborts with "memory allocation failed").
const REFUSE_ABOVE: usize = 1 << 30;

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

#[test]
fn cropping_a_long_thin_image_takes_memory_for_the_crop_only() {
    for (w, h) in [(20_000, 1), (1, 20_000), (20_000, 3)] {
        let data = (0..w * h * 3).map(|i| (i % 251) as f32).collect();
        let img = RgbImageF32::new(w, h, data).unwrap();
        for filter in [
            ResizeFilter::Bilinear,
            ResizeFilter::Bicubic,
            ResizeFilter::Nearest,
        ] {
            let before = LIVE.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
            let out = resize_shorter_and_center_crop(&img, 224, 224, 224, filter).unwrap();
            assert_eq!((out.width, out.height), (224, 224));
            let extra = PEAK.load(Ordering::Relaxed) - before;
            // The crop is 602 KB; the taps and one band of rows add a few MB at most.
            assert!(
                extra < 16 << 20,
                "{w}x{h} {filter}: {extra} bytes at the peak"
            );
            eprintln!("{w}x{h} {filter}: peak {:.1} MB", extra as f64 / 1e6);
        }
    }
}
