//! Scratch folders for tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty folder under the system temp dir, removed with its contents on drop.
///
/// ```
/// let dir = convscope_test_support::TempDir::new("doc");
/// let file = dir.write("sub/a.txt", b"hi");
/// assert_eq!(std::fs::read(&file).unwrap(), b"hi");
/// let root = dir.root().to_path_buf();
/// drop(dir);
/// assert!(!root.exists());
/// ```
#[derive(Debug)]
pub struct TempDir {
    root: PathBuf,
}

impl TempDir {
    /// A new folder whose name holds `name`, the process id and a counter: unique even when
    /// tests run in parallel or several test binaries run at once.
    pub fn new(name: &str) -> TempDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("convscope-test-{name}-{}-{n}", std::process::id()));
        if root.exists() {
            // Left over by an earlier process with the same id.
            std::fs::remove_dir_all(&root)
                .unwrap_or_else(|e| panic!("remove stale {}: {e}", root.display()));
        }
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
        TempDir { root }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the folder (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `bytes` to `rel` inside the folder (creating parent folders) and returns the
    /// full path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
