//! Progress of long jobs, for a bar on a terminal or a status in a web page.

/// Receives the progress of a long job.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use convscope::progress::Progress;
///
/// #[derive(Default)]
/// struct Count(AtomicU64);
/// impl Progress for Count {
///     fn set(&self, done: u64) {
///         self.0.store(done, Ordering::Relaxed);
///     }
/// }
/// let c = Count::default();
/// c.start(40, "ascent");
/// c.set(12);
/// assert_eq!(c.0.load(Ordering::Relaxed), 12);
/// ```
pub trait Progress: Send + Sync {
    /// A new stage of `len` steps begins.
    fn start(&self, _len: u64, _what: &str) {}

    /// `done` steps of the current stage are finished.
    fn set(&self, done: u64);

    /// The stage is over.
    fn finish(&self) {}

    /// Whether the job should stop early (e.g. the page that asked for it went away).
    fn cancelled(&self) -> bool {
        false
    }
}

/// Progress that goes nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set(&self, _done: u64) {}
}
