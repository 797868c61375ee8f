//! Golden images: pictures compared pixel for pixel with committed PNGs.

use std::path::{Path, PathBuf};

use image::RgbImage;

/// The environment variable that makes [`Goldens`] rewrite the goldens instead of comparing.
pub const UPDATE_VAR: &str = "CONVSCOPE_UPDATE_GOLDENS";

/// The golden PNGs of one crate: expected pictures in `tests/golden/`, and `tests/output/`
/// (ignored by git) where a mismatching picture is written for inspection.
///
/// Comparisons are exact (every RGB value of every pixel). With `CONVSCOPE_UPDATE_GOLDENS=1`
/// the golden is (re)written instead: only after a deliberate rendering change, and then every
/// changed PNG must be looked at before it is committed (see the crate's
/// `tests/golden/README.md`).
///
/// ```no_run
/// use convscope_test_support::Goldens;
/// let goldens = Goldens::of_crate(env!("CARGO_MANIFEST_DIR"));
/// let picture = image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]));
/// goldens.assert_image("flat.png", &picture);
/// ```
#[derive(Clone, Debug)]
pub struct Goldens {
    golden_dir: PathBuf,
    output_dir: PathBuf,
}

impl Goldens {
    /// The goldens of the crate whose manifest folder is `manifest_dir` (pass
    /// `env!("CARGO_MANIFEST_DIR")`): `tests/golden/` and `tests/output/` below it.
    pub fn of_crate(manifest_dir: &str) -> Goldens {
        let tests = Path::new(manifest_dir).join("tests");
        Goldens {
            golden_dir: tests.join("golden"),
            output_dir: tests.join("output"),
        }
    }

    /// Where the golden `name` lives.
    pub fn golden_path(&self, name: &str) -> PathBuf {
        self.golden_dir.join(name)
    }

    /// Compares the PNG file at `actual` with the golden `name` (e.g. `"grid.png"`).
    ///
    /// Returns a one-paragraph description of the difference instead of panicking, so a test
    /// can check every picture of a run and report (and save) all mismatches at once.
    pub fn check_file(&self, actual: &Path, name: &str) -> Result<(), String> {
        let bytes = std::fs::read(actual)
            .map_err(|e| format!("{name}: cannot read output {}: {e}", actual.display()))?;
        self.check_png(name, &bytes)
    }

    /// Compares encoded PNG `bytes` with the golden `name`; see [`Goldens::check_file`].
    pub fn check_png(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let golden = self.golden_path(name);
        if std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1") {
            write(&golden, bytes);
            eprintln!("updated golden {}", golden.display());
            return Ok(());
        }
        let got = image::load_from_memory(bytes)
            .map_err(|e| format!("{name}: output is not a readable PNG: {e}"))?
            .to_rgb8();
        let save_actual = || {
            let out = self.output_dir.join(name);
            write(&out, bytes);
            out
        };
        let want = match image::open(&golden) {
            Ok(img) => img.to_rgb8(),
            Err(e) => {
                let out = save_actual();
                return Err(format!(
                    "{name}: no readable golden at {} ({e}); actual image written to {}. \
                     Run with {UPDATE_VAR}=1 to create it (see tests/golden/README.md)",
                    golden.display(),
                    out.display()
                ));
            }
        };
        match difference(&got, &want) {
            None => Ok(()),
            Some(diff) => {
                let out = save_actual();
                Err(format!(
                    "{name}: {diff}. Actual image written to {}; compare it with {}",
                    out.display(),
                    golden.display()
                ))
            }
        }
    }

    /// Compares an in-memory picture with the golden `name`, panicking with the description
    /// of any difference.
    #[track_caller]
    pub fn assert_image(&self, name: &str, img: &RgbImage) {
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode PNG");
        if let Err(e) = self.check_png(name, &bytes) {
            panic!("{e}");
        }
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// How `got` differs from `want`, or `None` when every pixel is equal.
fn difference(got: &RgbImage, want: &RgbImage) -> Option<String> {
    if got.dimensions() != want.dimensions() {
        return Some(format!(
            "size {}x{} differs from the golden's {}x{}",
            got.width(),
            got.height(),
            want.width(),
            want.height()
        ));
    }
    let mut count = 0usize;
    let mut first = None;
    let mut worst = 0u8;
    for (x, y, p) in got.enumerate_pixels() {
        let q = want.get_pixel(x, y);
        if p != q {
            count += 1;
            first.get_or_insert((x, y, p.0, q.0));
            for c in 0..3 {
                worst = worst.max(p.0[c].abs_diff(q.0[c]));
            }
        }
    }
    let (x, y, p, q) = first?;
    Some(format!(
        "{count} of {} pixels differ (largest channel difference {worst}); first at ({x},{y}): \
         got {p:?}, golden {q:?}",
        got.width() * got.height()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_counted_and_located() {
        let a = RgbImage::from_pixel(3, 2, image::Rgb([10, 10, 10]));
        assert_eq!(difference(&a, &a), None);
        let mut b = a.clone();
        b.put_pixel(2, 1, image::Rgb([10, 13, 10]));
        let d = difference(&b, &a).unwrap();
        assert!(
            d.starts_with("1 of 6 pixels differ (largest channel difference 3)"),
            "{d}"
        );
        assert!(d.contains("first at (2,1)"), "{d}");
        let c = RgbImage::new(2, 3);
        assert!(difference(&c, &a).unwrap().contains("size 2x3"));
    }

    #[test]
    fn a_mismatch_is_reported_and_saved() {
        if std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1") {
            return; // Updating writes instead of comparing.
        }
        let dir = crate::TempDir::new("goldens");
        let goldens = Goldens {
            golden_dir: dir.path("golden"),
            output_dir: dir.path("output"),
        };
        let img = RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]));
        let e = goldens.check_png("a.png", b"not a png").unwrap_err();
        assert!(e.contains("not a readable PNG"), "{e}");
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let e = goldens.check_png("a.png", &png).unwrap_err();
        assert!(e.contains("no readable golden"), "{e}");
        assert!(dir.path("output/a.png").is_file());
        write(&dir.path("golden/a.png"), &png);
        goldens.check_png("a.png", &png).unwrap();
        goldens.assert_image("a.png", &img);
        let other = RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 4]));
        let e = std::panic::catch_unwind(|| goldens.assert_image("a.png", &other)).unwrap_err();
        let msg = e.downcast_ref::<String>().unwrap();
        assert!(msg.contains("4 of 4 pixels differ"), "{msg}");
    }
}
