//! Pieces every subcommand shares: input options, the staged output folder, progress bars.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use convscope_image::{Normalize, ResizeFilter};
use convscope_methods::input::InputConfig;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How an image becomes the model input.
#[derive(Args, Clone, Debug)]
pub(crate) struct InputArgs {
    /// Input size WxH (default: the size the model declares).
    #[arg(long, value_parser = crate::parse_size)]
    pub size: Option<(usize, usize)>,
    /// Resampling filter: bilinear, bicubic (Pillow's default), nearest.
    #[arg(long, default_value = "bilinear")]
    pub resize: ResizeFilter,
    /// Resize the shorter side and crop the centre instead of stretching.
    #[arg(long)]
    pub crop: bool,
    /// Pixel normalisation: unit (/255), imagenet, caffe, tf ([-1,1]), raw (0..255).
    #[arg(long, default_value = "unit")]
    pub preprocess: Normalize,
    /// Custom per-channel mean on the 0..1 scale, e.g. 0.5,0.5,0.5 (needs --std).
    #[arg(long, value_parser = parse_triple, requires = "std")]
    pub mean: Option<[f32; 3]>,
    /// Custom per-channel std on the 0..1 scale (needs --mean).
    #[arg(long, value_parser = parse_triple, requires = "mean")]
    pub std: Option<[f32; 3]>,
}

fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{s}' is not three numbers like 0.5,0.5,0.5"))?;
    match v.as_slice() {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(format!("'{s}' is not three numbers like 0.5,0.5,0.5")),
    }
}

impl InputArgs {
    pub fn normalize(&self) -> Normalize {
        match (self.mean, self.std) {
            (Some(mean), Some(std)) => Normalize::Custom { mean, std },
            _ => self.preprocess,
        }
    }

    pub fn config(&self) -> InputConfig {
        InputConfig {
            size: self.size,
            filter: self.resize,
            center_crop: self.crop,
            normalize: self.normalize(),
        }
    }
}

/// An output folder whose files appear all together: everything is written to a hidden staging
/// folder inside it and moved into place by [`Staged::commit`]. Dropping it uncommitted removes
/// the staging folder, so a failure leaves no half-written files.
pub(crate) struct Staged {
    dir: PathBuf,
    staging: PathBuf,
    files: Vec<String>,
    committed: bool,
    /// Whether this run created the folder (then a failed run removes it again).
    created: bool,
}

impl Staged {
    pub fn new(dir: &Path) -> Result<Staged> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
        let staging = dir.join(format!(".convscope-staging-{}", std::process::id()));
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot write to output folder {}", dir.display()))?;
        Ok(Staged {
            dir: dir.to_path_buf(),
            staging,
            files: Vec::new(),
            committed: false,
            created,
        })
    }

    /// Writes `name` (a plain file name) into the staging folder.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        std::fs::write(self.staging.join(name), bytes)
            .with_context(|| format!("cannot write {}", self.dir.join(name).display()))?;
        self.files.push(name.to_string());
        Ok(())
    }

    pub fn write_png(&mut self, name: &str, img: &convscope_image::RgbImage) -> Result<()> {
        let bytes = convscope_image::png_bytes(img)?;
        self.write(name, &bytes)
    }

    pub fn write_npy(&mut self, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        self.write(name, &convscope_image::npy_bytes_f32(shape, data))
    }

    /// Moves every staged file into the folder (each rename is atomic).
    pub fn commit(mut self) -> Result<PathBuf> {
        for f in &self.files {
            std::fs::rename(self.staging.join(f), self.dir.join(f)).with_context(|| {
                format!("cannot move {} into place", self.dir.join(f).display())
            })?;
        }
        self.committed = true;
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(self.dir.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
            if self.created {
                // Only succeeds when empty: never removes anything that was there before.
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A file-name-safe version of a layer name.
pub(crate) fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches(|c| c == '_' || c == '.').to_string();
    if s.is_empty() {
        "value".into()
    } else {
        s.chars().take(80).collect()
    }
}

/// Parses `0..64`, `3,7,9`, `all` into indices below `n`.
pub(crate) fn parse_indices(spec: &str, n: usize, what: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            out.extend(0..n);
        } else if let Some((a, b)) = item.split_once("..") {
            let a: usize = if a.is_empty() {
                0
            } else {
                a.parse()
                    .with_context(|| format!("'{item}' is not a range like 0..64"))?
            };
            let b: usize = if b.is_empty() {
                n
            } else if let Some(e) = b.strip_prefix('=') {
                e.parse::<usize>()
                    .with_context(|| format!("'{item}' is not a range"))?
                    + 1
            } else {
                b.parse()
                    .with_context(|| format!("'{item}' is not a range like 0..64"))?
            };
            if a >= b {
                bail!("{what} range '{item}' is empty");
            }
            out.extend(a..b);
        } else {
            out.push(
                item.parse()
                    .with_context(|| format!("'{item}' is not a {what} index"))?,
            );
        }
    }
    if let Some(&bad) = out.iter().find(|&&i| i >= n) {
        bail!("{what} index {bad} is out of range: there are {n} (0..{n})");
    }
    if out.is_empty() {
        bail!("no {what} selected by '{spec}'");
    }
    Ok(out)
}

/// Escapes text for HTML.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The shared look of convscope's HTML pages.
pub(crate) const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222;background:#fafafa}\
img{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em}\
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}\
.caption{color:#555;font-size:.9em}section{margin-bottom:2em}";
