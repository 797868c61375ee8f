//! Where results go: a [`Sink`] takes named files; [`OutputDir`] makes them appear in a folder
//! all together, and [`Files`] keeps them in memory (for a server or a notebook).
//!
//! An [`OutputDir`] writes everything into a hidden staging folder inside the target folder
//! (`.convscope-staging-<pid>`) and moves it into place in [`OutputDir::commit`]. Before the
//! first move, every destination is checked, so a run that fails leaves the folder as it was. A
//! run that owns its folder ([`OutputDir::create`]) also replaces the whole set of files the
//! previous run wrote there (listed in `.convscope-files`), so the new `index.json` describes
//! exactly what is in the folder. Staging folders of a process that was killed are removed by the
//! next run in the same folder, and [`remove_live_staging`] removes this process's own (the
//! binary calls it on SIGINT/SIGTERM).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::picture::Picture;

/// Prefix of staging folders.
pub const STAGING_PREFIX: &str = ".convscope-staging-";

/// Name of the file that lists what the last run wrote in a folder it owns.
pub const MANIFEST: &str = ".convscope-files";

/// Staging folders of this process that are not committed or dropped yet.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Held while files move into place, so a signal handler waits for a commit to finish instead
/// of leaving half a set behind.
static COMMITTING: Mutex<()> = Mutex::new(());

/// Something that takes named output files.
pub trait Sink {
    /// Stores `bytes` as `name` (a plain file name, no folders).
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()>;

    /// Stores a picture as PNG.
    fn put_picture(&mut self, name: &str, picture: &Picture) -> Result<()> {
        self.put(name, &picture.png_bytes()?)
    }

    /// Stores `f32` values as a NumPy `.npy` array of `shape`.
    fn put_npy(&mut self, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        self.put(name, &convscope_image::npy_bytes_f32(shape, data))
    }

    /// Stores a value as pretty-printed JSON.
    fn put_json(&mut self, name: &str, value: &impl serde::Serialize) -> Result<()>
    where
        Self: Sized,
    {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::Config(format!("cannot encode {name}: {e}")))?;
        self.put(name, text.as_bytes())
    }
}

/// Files kept in memory, by name.
///
/// ```
/// use convscope::output::{Files, Sink};
///
/// let mut files = Files::default();
/// files.put("a.txt", b"hello")?;
/// assert_eq!(files.get("a.txt"), Some(&b"hello"[..]));
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files(BTreeMap<String, Vec<u8>>);

impl Files {
    /// The bytes of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(Vec::as_slice)
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Sink for Files {
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        check_name(name)?;
        self.0.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }
}

/// A folder whose new files appear all together (see the module documentation).
///
/// ```
/// use convscope::output::{OutputDir, Sink};
///
/// let dir = std::env::temp_dir().join(format!("convscope-doc-{}", std::process::id()));
/// let mut out = OutputDir::create(&dir)?;
/// out.put("index.json", b"{}")?;
/// assert!(!dir.join("index.json").exists()); // staged, not yet visible
/// out.commit()?;
/// assert!(dir.join("index.json").exists());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Debug)]
pub struct OutputDir {
    dir: PathBuf,
    staging: PathBuf,
    files: Vec<String>,
    /// Whether this run owns the folder's convscope files (replaces the previous run's set).
    owns_folder: bool,
    committed: bool,
    /// Whether this run created the folder (then a failed run removes it again).
    created: bool,
}

impl OutputDir {
    /// An output folder this run owns: committing replaces every file the previous run wrote
    /// there. Creates the folder when needed.
    pub fn create(dir: impl AsRef<Path>) -> Result<OutputDir> {
        OutputDir::open(dir.as_ref(), true)
    }

    /// A folder that receives some files beside whatever else is there (e.g. one PNG named by
    /// the user): nothing but the files written is touched.
    pub fn beside(dir: impl AsRef<Path>) -> Result<OutputDir> {
        OutputDir::open(dir.as_ref(), false)
    }

    fn open(dir: &Path, owns_folder: bool) -> Result<OutputDir> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Config(format!(
                "output folder {} is a file",
                dir.display()
            )));
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create output folder", dir, e))?;
        remove_stale_staging(dir);
        let staging = dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        // A folder of our own pid is a leftover of an earlier OutputDir of this process.
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(|e| Error::io("write to output folder", dir, e))?;
        LIVE.lock().expect("staging registry").push(staging.clone());
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            staging,
            files: Vec::new(),
            owns_folder,
            committed: false,
            created,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Names written so far.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Moves every staged file into the folder (each rename is atomic), after checking every
    /// destination; then removes the files of the previous run that this one did not write.
    pub fn commit(self) -> Result<PathBuf> {
        let dir = self.dir.clone();
        OutputDir::commit_all(vec![self])?;
        Ok(dir)
    }

    /// Commits several folders as one: every destination of every folder is checked before the
    /// first file moves.
    pub fn commit_all(mut sets: Vec<OutputDir>) -> Result<()> {
        // Two runs committing into the same folder at once take turns (an advisory lock on the
        // folder itself, so no lock file appears in it): the folder ends as one run's set.
        let mut folders: Vec<PathBuf> = sets.iter().map(|s| s.dir.clone()).collect();
        folders.sort();
        folders.dedup();
        let _locks: Vec<std::fs::File> = folders.iter().filter_map(|d| lock_folder(d)).collect();
        for set in &sets {
            set.check_destinations()?;
        }
        let _moving = COMMITTING.lock().unwrap_or_else(|p| p.into_inner());
        for set in &mut sets {
            set.move_into_place()?;
        }
        Ok(())
    }

    fn check_destinations(&self) -> Result<()> {
        for f in &self.files {
            let dest = self.dir.join(f);
            if dest.is_dir() {
                return Err(Error::Config(format!(
                    "cannot write {}: a folder of that name is in the way",
                    dest.display()
                )));
            }
            if !self.staging.join(f).is_file() {
                return Err(Error::Config(format!(
                    "cannot write {}: the staged file disappeared",
                    dest.display()
                )));
            }
        }
        Ok(())
    }

    fn move_into_place(&mut self) -> Result<()> {
        let previous = if self.owns_folder {
            read_manifest(&self.dir)
        } else {
            Vec::new()
        };
        for f in &self.files {
            let dest = self.dir.join(f);
            std::fs::rename(self.staging.join(f), &dest)
                .map_err(|e| Error::io("move into place", &dest, e))?;
        }
        if self.owns_folder {
            for stale in previous.iter().filter(|p| !self.files.contains(p)) {
                if check_name(stale).is_ok() {
                    let _ = std::fs::remove_file(self.dir.join(stale));
                }
            }
            let list = serde_json::to_vec_pretty(&self.files).expect("strings encode");
            convscope_image::write_atomic(&self.dir.join(MANIFEST), &list)?;
        }
        self.committed = true;
        self.discard_staging();
        Ok(())
    }

    fn discard_staging(&self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        LIVE.lock()
            .expect("staging registry")
            .retain(|p| p != &self.staging);
    }
}

impl Sink for OutputDir {
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        check_name(name)?;
        let path = self.staging.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io("write", &self.dir.join(name), e))?;
        if !self.files.iter().any(|f| f == name) {
            self.files.push(name.to_string());
        }
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            self.discard_staging();
            if self.created {
                // Only succeeds when empty: never removes anything that was there before.
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
    }
}

/// Removes the staging folders of this process that are still open (for a signal handler:
/// the process is about to exit without running destructors). Returns how many it removed.
pub fn remove_live_staging() -> usize {
    // Not while files are moving: a commit takes milliseconds, so wait for it (but never
    // forever: the caller may be the committing thread itself, out of memory).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let _moving = loop {
        match COMMITTING.try_lock() {
            Ok(g) => break Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(std::sync::TryLockError::WouldBlock) => break None,
        }
    };
    let live = match LIVE.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    live.iter()
        .filter(|p| std::fs::remove_dir_all(p).is_ok())
        .count()
}

/// An exclusive advisory lock on `dir`, held until the returned handle is dropped; `None`
/// where folders cannot be locked (then commits are not serialised).
fn lock_folder(dir: &Path) -> Option<std::fs::File> {
    let handle = std::fs::File::open(dir).ok()?;
    handle.lock().ok()?;
    Some(handle)
}

/// A plain file name: no separators, not `.`/`..`, not empty.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(Error::Config(format!("'{name}' is not a plain file name")));
    }
    Ok(())
}

fn read_manifest(dir: &Path) -> Vec<String> {
    std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .unwrap_or_default()
}

/// Removes `.convscope-staging-<pid>` folders in `dir` whose process no longer exists.
fn remove_stale_staging(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && process_is_gone(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether no process `pid` exists. Where that cannot be told (no `/proc`), says no, so
/// nothing is removed that might still be in use.
fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("convscope-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_run_replaces_the_previous_runs_files_and_nothing_else() {
        let d = temp("replace");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("mine.txt"), "user file").unwrap();
        let mut a = OutputDir::create(&d).unwrap();
        a.put("index.json", b"1").unwrap();
        a.put("old.png", b"x").unwrap();
        a.commit().unwrap();
        let mut b = OutputDir::create(&d).unwrap();
        b.put("index.json", b"2").unwrap();
        b.put("new.png", b"y").unwrap();
        b.commit().unwrap();
        assert!(!d.join("old.png").exists(), "the previous run's file stays");
        assert!(d.join("new.png").exists() && d.join("mine.txt").exists());
        assert_eq!(std::fs::read(d.join("index.json")).unwrap(), b"2");
        // A file beside others never removes anything.
        let mut c = OutputDir::beside(&d).unwrap();
        c.put("grid.png", b"z").unwrap();
        c.commit().unwrap();
        assert!(d.join("new.png").exists() && d.join("grid.png").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn nothing_moves_when_one_destination_is_blocked() {
        let d = temp("blocked");
        let j = temp("blocked-json");
        std::fs::create_dir_all(j.join("curves.json")).unwrap();
        let mut grid = OutputDir::create(&d).unwrap();
        grid.put("grid.png", b"x").unwrap();
        let mut json = OutputDir::beside(&j).unwrap();
        json.put("curves.json", b"{}").unwrap();
        let e = OutputDir::commit_all(vec![grid, json])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a folder of that name is in the way"), "{e}");
        assert!(!d.join("grid.png").exists());
        // The staging folders are gone and the folder this run created is removed again.
        assert!(!d.exists());
        let left: Vec<_> = std::fs::read_dir(&j).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        std::fs::remove_dir_all(&j).unwrap();
    }

    #[test]
    fn stale_staging_of_dead_processes_is_removed() {
        let d = temp("stale");
        // A pid far above any pid_max is never alive.
        let dead = d.join(format!("{STAGING_PREFIX}4000000000"));
        std::fs::create_dir_all(dead.join("x")).unwrap();
        let foreign = d.join(".convscope-staging-notapid");
        std::fs::create_dir_all(&foreign).unwrap();
        let out = OutputDir::create(&d).unwrap();
        assert!(!dead.exists());
        assert!(foreign.exists(), "only pid-named folders are touched");
        // (remove_live_staging is tested by the binary's signal tests: called here, it would
        // remove the staging folders of the tests running beside this one.)
        assert!(LIVE.lock().unwrap().contains(&out.staging));
        drop(out);
        assert!(!LIVE.lock().unwrap().iter().any(|p| p.starts_with(&d)));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn names_must_be_plain() {
        let mut f = Files::default();
        for bad in ["", "..", "a/b", "../x", "a\\b"] {
            assert!(f.put(bad, b"").is_err(), "{bad}");
        }
    }
}
