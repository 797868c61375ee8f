//! The binary's allocator: the engine's caching allocator, plus a hard ceiling on live memory
//! and an out-of-memory handler that ends the process with one error line and exit code 2
//! instead of Rust's abort (SIGABRT).
//!
//! Jobs are checked against the memory limit before they start (`convscope::budget`); this is
//! the backstop for what an estimate missed. The ceiling sits a quarter above the limit, so a
//! job the estimate let through is not stopped for a small miss, and a runaway one is stopped
//! before the machine swaps.

use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use convscope::lower::engine::CachingAlloc;

/// Live bytes handed out and not yet freed.
static LIVE: AtomicU64 = AtomicU64::new(0);
/// The ceiling on [`LIVE`]; `u64::MAX` until a command sets its limit.
static CEILING: AtomicU64 = AtomicU64::new(u64::MAX);
/// Set once the process is failing: later allocations (of the cleanup) bypass the ceiling.
static DYING: AtomicBool = AtomicBool::new(false);

/// Sets the ceiling from a memory limit in bytes.
pub(crate) fn set_limit(limit: u64) {
    let ceiling = limit.saturating_add(limit / 4).saturating_add(64 << 20);
    CEILING.store(ceiling, Ordering::Relaxed);
}

pub(crate) struct GuardedAlloc;

impl GuardedAlloc {
    /// Counts `size` bytes in; false when they would pass the ceiling.
    fn admit(size: usize) -> bool {
        let size = size as u64;
        let before = LIVE.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > CEILING.load(Ordering::Relaxed)
            && !DYING.load(Ordering::Relaxed)
        {
            LIVE.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Ends the process: one error line, the staging folders removed, exit code 2.
    #[cold]
    fn out_of_memory(size: usize, refused_by_ceiling: bool) -> ! {
        if DYING.swap(true, Ordering::SeqCst) {
            // A failure inside the cleanup: nothing more can be done cleanly.
            std::process::abort();
        }
        let mut buf = [0u8; 320];
        let mut w = Cursor {
            buf: &mut buf,
            len: 0,
        };
        let live = LIVE.load(Ordering::Relaxed);
        let _ = if refused_by_ceiling {
            writeln!(
                w,
                "error: out of memory: {} more bytes would pass the memory limit's ceiling of {} bytes \
                 ({} in use); use a smaller --size, fewer --layers or a smaller --batch, or raise \
                 --memory-limit",
                size,
                CEILING.load(Ordering::Relaxed),
                live
            )
        } else {
            writeln!(
                w,
                "error: out of memory: the system refused {size} bytes ({live} in use); use a \
                 smaller --size, fewer --layers or a smaller --batch"
            )
        };
        let len = w.len;
        let _ = std::io::stderr().write_all(&buf[..len]);
        convscope::output::remove_live_staging();
        std::process::exit(2);
    }
}

/// A formatter into a fixed buffer (formatting must not allocate here).
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

// SAFETY: every call is forwarded to `CachingAlloc` with the caller's layout; the counters
// only decide whether to forward an allocation at all.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            Self::out_of_memory(layout.size(), true);
        }
        let p = CachingAlloc.alloc(layout);
        if p.is_null() {
            Self::out_of_memory(layout.size(), false);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            Self::out_of_memory(layout.size(), true);
        }
        let p = CachingAlloc.alloc_zeroed(layout);
        if p.is_null() {
            Self::out_of_memory(layout.size(), false);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        CachingAlloc.dealloc(ptr, layout)
    }
}
