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

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// In a child process (this test binary run again), allocating past the ceiling ends the
    /// process with one error line and exit code 2 instead of an abort, and removes the staging
    /// folders of the run.
    #[test]
    fn allocation_past_the_ceiling_is_one_error_line_and_exit_2() {
        if std::env::var_os("CONVSCOPE_ALLOC_CHILD").is_some() {
            let dir = std::env::temp_dir().join(format!("convscope-alloc-{}", std::process::id()));
            let out = convscope::output::OutputDir::create(&dir).unwrap();
            std::fs::write(dir.join("staged-marker"), dir.display().to_string()).unwrap();
            super::set_limit(1 << 20);
            let v = vec![1u8; 512 << 20];
            println!("allocated {} bytes", v.len());
            drop(out);
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let o = Command::new(exe)
            .args([
                "--exact",
                "alloc::tests::allocation_past_the_ceiling_is_one_error_line_and_exit_2",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("CONVSCOPE_ALLOC_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains("out of memory") && errors[0].contains("--memory-limit"));
        assert!(!String::from_utf8_lossy(&o.stdout).contains("allocated"));
        // The child's output folder has no staging folder left.
        let marker_dirs: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("convscope-alloc-")
            })
            .collect();
        for d in marker_dirs {
            let left: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(".convscope-staging-")
                })
                .collect();
            assert!(left.is_empty(), "{:?}", d.path());
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
}
