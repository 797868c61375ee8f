//! A global allocator that keeps large freed blocks for reuse.
//!
//! A forward or backward pass allocates the same large tensors again and again (same shapes every
//! step of a gradient ascent). The system allocator returns such blocks to the kernel and gets
//! fresh zero pages back on the next request, so every pass pays a page fault per 4 KiB touched;
//! on this project's 2-core machines that was 10–20 % of a VGG16 pass (design.md, "Memory").
//! Caching freed blocks of at least 16 KiB by exact size removes those faults (EfficientNet's
//! 7×7 maps have tensors of 37 KB that glibc's heap trimmed and faulted back in on every pass).
//!
//! Install it in a binary:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks smaller than this go straight to the system allocator.
const MIN_CACHED: usize = 16 << 10;
/// At most this many bytes are kept in the cache.
const MAX_CACHED_BYTES: usize = 4 << 30;
/// At most this many blocks are kept.
const SLOTS: usize = 256;

/// The caching allocator; see the module documentation.
pub struct CachingAlloc;

/// Large blocks start on a cache line. glibc serves them by `mmap` with a 16-byte header, so a
/// tensor's rows started 16 bytes into a line: the column blocks of a convolution that two
/// threads write side by side shared a line at every boundary, and every other 32-byte vector
/// load straddled two lines.
const LINE: usize = 64;

/// The layout a large block is allocated, cached and freed with (the same rule every time, so
/// a block is freed with the layout it was allocated with).
fn lined(layout: Layout) -> Layout {
    // Only a size within 63 bytes of `isize::MAX` cannot be aligned so; it keeps its layout.
    Layout::from_size_align(layout.size(), layout.align().max(LINE)).unwrap_or(layout)
}

struct Cache {
    blocks: [(usize, usize, usize); SLOTS],
    len: usize,
    bytes: usize,
}

static LOCK: AtomicBool = AtomicBool::new(false);
static mut CACHE: Cache = Cache {
    blocks: [(0, 0, 0); SLOTS],
    len: 0,
    bytes: 0,
};

/// Runs `f` on the cache under a spin lock (the allocator must not allocate, so no Mutex).
fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    // SAFETY: the spin lock above gives exclusive access to CACHE until it is released below.
    let r = f(unsafe { &mut *std::ptr::addr_of_mut!(CACHE) });
    LOCK.store(false, Ordering::Release);
    r
}

impl CachingAlloc {
    fn take(layout: Layout) -> Option<*mut u8> {
        with_cache(|c| {
            let i = (0..c.len)
                .rev()
                .find(|&i| c.blocks[i].0 == layout.size() && c.blocks[i].1 == layout.align())?;
            let ptr = c.blocks[i].2 as *mut u8;
            c.bytes -= layout.size();
            c.len -= 1;
            c.blocks[i] = c.blocks[c.len];
            Some(ptr)
        })
    }
}

// SAFETY: every block handed out comes from `System` with the same layout it is later freed
// with; cached blocks are owned by the cache alone until handed out again.
unsafe impl GlobalAlloc for CachingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_CACHED {
            let layout = lined(layout);
            if let Some(p) = Self::take(layout) {
                return p;
            }
            return System.alloc(layout);
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_CACHED {
            let layout = lined(layout);
            if let Some(p) = Self::take(layout) {
                std::ptr::write_bytes(p, 0, layout.size());
                return p;
            }
            return System.alloc_zeroed(layout);
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= MIN_CACHED {
            let layout = lined(layout);
            let evicted = with_cache(|c| {
                if layout.size() > MAX_CACHED_BYTES {
                    return Some((ptr as usize, layout.size(), layout.align()));
                }
                // Make room: drop the oldest blocks first.
                let mut out = None;
                if c.len == SLOTS || c.bytes + layout.size() > MAX_CACHED_BYTES {
                    let (size, align, p) = c.blocks[0];
                    c.blocks.copy_within(1..c.len, 0);
                    c.len -= 1;
                    c.bytes -= size;
                    out = Some((p, size, align));
                }
                if c.bytes + layout.size() <= MAX_CACHED_BYTES {
                    c.blocks[c.len] = (layout.size(), layout.align(), ptr as usize);
                    c.len += 1;
                    c.bytes += layout.size();
                    out
                } else {
                    // Still no room: free this block too (rare; the caller frees `out` first).
                    if let Some((p, size, align)) = out {
                        System
                            .dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, align));
                    }
                    Some((ptr as usize, layout.size(), layout.align()))
                }
            });
            if let Some((p, size, align)) = evicted {
                System.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, align));
            }
            return;
        }
        System.dealloc(ptr, layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large blocks start on a cache line whether they come from the system or from the cache,
    /// zeroed or not, and are freed with the layout they were allocated with (a mismatch
    /// would abort in glibc's `free`).
    #[test]
    fn large_blocks_start_on_a_cache_line() {
        for size in [MIN_CACHED, 100_000, 3 << 20] {
            let layout = Layout::from_size_align(size, 4).unwrap();
            for _ in 0..3 {
                // SAFETY: a non-zero layout; every pointer is freed once, with its layout.
                unsafe {
                    let p = CachingAlloc.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % LINE, 0, "{size} bytes at {p:p}");
                    p.write_bytes(7, size);
                    CachingAlloc.dealloc(p, layout);
                    let z = CachingAlloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % LINE, 0, "{size} zeroed bytes at {z:p}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    CachingAlloc.dealloc(z, layout);
                }
            }
        }
    }
}
