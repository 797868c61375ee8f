//! Forward passes kept per image and input options, least recently used first out, within a
//! byte budget: a click on another layer or class of the same image reuses the pass.
//!
//! Concurrent requests for the same image wait for one pass instead of each running their own.

use std::sync::{Arc, Mutex};

use convscope::{ForwardPass, Model};
use tokio::sync::OnceCell;

use crate::api::ApiError;

self_cell::self_cell!(
    /// A [`ForwardPass`] together with the model it borrows, so the cache can own both.
    pub struct OwnedPass {
        owner: Arc<Model>,
        #[covariant]
        dependent: ForwardPass,
    }
    impl {Debug}
);

impl OwnedPass {
    /// The pass.
    pub fn pass(&self) -> &ForwardPass<'_> {
        self.borrow_dependent()
    }
}

struct Entry {
    key: String,
    slot: Arc<OnceCell<Arc<OwnedPass>>>,
    bytes: u64,
}

/// The kept passes.
pub struct PassCache {
    budget: u64,
    entries: Mutex<Vec<Entry>>,
}

impl PassCache {
    /// A cache that keeps passes up to `budget` bytes (always the newest one).
    pub fn new(budget: u64) -> PassCache {
        PassCache {
            budget,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The pass for `key`, made by `make` (on a blocking thread) when not kept.
    pub async fn get<F, Fut>(&self, key: &str, make: F) -> Result<Arc<OwnedPass>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<OwnedPass, ApiError>>,
    {
        let slot = {
            let mut entries = self.lock();
            let slot = match entries.iter().position(|e| e.key == key) {
                Some(i) => {
                    // Most recently used last.
                    let e = entries.remove(i);
                    let slot = e.slot.clone();
                    entries.push(e);
                    slot
                }
                None => {
                    let slot = Arc::new(OnceCell::new());
                    entries.push(Entry {
                        key: key.to_string(),
                        slot: slot.clone(),
                        bytes: 0,
                    });
                    slot
                }
            };
            slot
        };
        let made = slot
            .get_or_try_init(|| async move { make().await.map(Arc::new) })
            .await;
        let pass = match made {
            Ok(p) => p.clone(),
            Err(e) => {
                // Not kept: the next request tries again.
                self.lock()
                    .retain(|e| !(e.key == key && e.slot.get().is_none()));
                return Err(e);
            }
        };
        self.account(key, pass.pass().memory_bytes());
        Ok(pass)
    }

    /// Records the bytes of `key` and forgets the least recently used passes over budget.
    fn account(&self, key: &str, bytes: u64) {
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            e.bytes = bytes;
        }
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        while total > self.budget && entries.len() > 1 {
            let Some(i) = entries.iter().position(|e| e.key != key && e.bytes > 0) else {
                break;
            };
            total -= entries.remove(i).bytes;
        }
    }

    /// `(passes kept, bytes)`.
    pub fn usage(&self) -> (usize, u64) {
        let entries = self.lock();
        let kept = entries.iter().filter(|e| e.slot.get().is_some()).count();
        (kept, entries.iter().map(|e| e.bytes).sum())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
