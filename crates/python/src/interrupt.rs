//! Ctrl-C for long calls: the work runs without the GIL, so Python cannot deliver
//! `KeyboardInterrupt` until it returns. [`Interruptible`] is the job's progress receiver; when
//! the library asks whether to stop, it checks Python's signals (at most every 100 ms) and
//! stops the job on a pending one, which is then raised as the call's exception.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use convscope::progress::Progress;
use pyo3::prelude::*;

use crate::errors::OrRaise;

/// How often at most the GIL is taken to look at pending signals.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// A [`Progress`] that stops the job when Python has a pending signal (Ctrl-C).
pub struct Interruptible {
    last_check: Mutex<Instant>,
    raised: Mutex<Option<PyErr>>,
}

impl Interruptible {
    pub fn new() -> Interruptible {
        Interruptible {
            last_check: Mutex::new(Instant::now()),
            raised: Mutex::new(None),
        }
    }

    /// The job's result as a Python result: the signal's exception (`KeyboardInterrupt`) when
    /// the job stopped for one, the library error's exception otherwise.
    pub fn result<T>(self, result: convscope::Result<T>) -> PyResult<T> {
        match result {
            Err(convscope::Error::Cancelled) => match self.raised.into_inner() {
                Ok(Some(err)) => Err(err),
                _ => Err(convscope::Error::Cancelled).or_raise(),
            },
            other => other.or_raise(),
        }
    }
}

impl Progress for Interruptible {
    fn set(&self, _done: u64) {}

    fn cancelled(&self) -> bool {
        let Ok(mut raised) = self.raised.lock() else {
            return true;
        };
        if raised.is_some() {
            return true;
        }
        {
            let Ok(mut last) = self.last_check.lock() else {
                return false;
            };
            if last.elapsed() < CHECK_EVERY {
                return false;
            }
            *last = Instant::now();
        }
        // Signals are delivered to the main thread only; elsewhere this finds nothing.
        if let Err(err) = Python::attach(|py| py.check_signals()) {
            *raised = Some(err);
            return true;
        }
        false
    }
}
