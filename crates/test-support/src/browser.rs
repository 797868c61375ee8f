//! Headless Chromium for page tests: the pages convscope writes are opened the way a person
//! opens them, and a script on each page records how many of its images loaded.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TempDir;

/// Chromium, when installed. When `CI=true` a missing browser fails the test (`.ci/run`
/// installs Debian's `chromium`); elsewhere the caller skips with a message.
pub fn chromium() -> Option<PathBuf> {
    let found = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no Chromium found: .ci/run installs Debian's chromium");
        }
        eprintln!("skipping the browser check: Chromium is not installed");
    }
    found
}

/// The DOM of `page` (a local file) after it loaded and its scripts ran; `None` without a
/// browser (see [`chromium`]).
pub fn dump_dom(page: &Path) -> Option<String> {
    let browser = chromium()?;
    let profile = TempDir::new("chromium-profile");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.root().display()))
        .arg(format!(
            "file://{}",
            page.canonicalize().expect("page exists").display()
        ))
        .output()
        .expect("run chromium");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Opens `page` and checks that all `expected` images rendered: convscope's pages set
/// `data-images="loaded/total"` on `<body>` once loaded.
pub fn check_images_loaded(page: &Path, expected: usize) {
    let Some(dom) = dump_dom(page) else { return };
    let want = format!("data-images=\"{expected}/{expected}\"");
    assert!(
        dom.contains(&want),
        "{}: the browser did not render every image (want {want}); body tag: {:?}",
        page.display(),
        dom.split("<body").nth(1).map(|s| &s[..s.len().min(120)])
    );
}
