//! Options every command shares, and turning them into a [`convscope::Model`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use convscope::budget::MemoryLimit;
use convscope::prelude::*;
use convscope::{ResizeFilter, TokenConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How an image becomes the model input.
#[derive(Args, Clone, Debug)]
pub(crate) struct InputArgs {
    /// Input size WxH (default: the size the model declares).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<Size>,
    /// Resampling filter: bilinear, bicubic (Pillow's default), nearest.
    #[arg(long, default_value = "bilinear")]
    pub resize: ResizeFilter,
    /// Resize the shorter side and crop the centre instead of stretching.
    #[arg(long)]
    pub crop: bool,
    /// Pixel normalisation: unit (/255), imagenet, caffe, tf ([-1,1]), raw (0..255). Default:
    /// unit, or raw for a Keras model that rescales its input itself.
    #[arg(long)]
    pub preprocess: Option<Preprocess>,
    /// Custom per-channel mean on the 0..1 scale, e.g. 0.5,0.5,0.5 (needs --std).
    #[arg(long, value_parser = parse_triple, requires = "std")]
    pub mean: Option<[f32; 3]>,
    /// Custom per-channel std on the 0..1 scale (needs --mean).
    #[arg(long, value_parser = parse_triple, requires = "mean")]
    pub std: Option<[f32; 3]>,
}

impl InputArgs {
    /// The normalisation asked for, if any.
    pub fn preprocess(&self) -> Option<Preprocess> {
        match (self.mean, self.std) {
            (Some(mean), Some(std)) => Some(Preprocess::Custom { mean, std }),
            _ => self.preprocess,
        }
    }

    /// These options over the model's own (`own`): the normalisation stays the model's unless
    /// one is asked for.
    pub fn config(&self, own: &InputConfig) -> InputConfig {
        InputConfig {
            size: self.size,
            resize: self.resize,
            crop: self.crop,
            preprocess: self.preprocess().unwrap_or(own.preprocess),
        }
    }
}

/// Options of every command that loads a model.
#[derive(Args, Clone, Debug)]
pub(crate) struct RunArgs {
    /// Refuse jobs whose estimated memory exceeds this: 4G, 512M, 50% (of available), none.
    /// Default: 80% of the memory available at start.
    #[arg(long, value_parser = parse_memory)]
    pub memory_limit: Option<MemoryLimit>,
    /// Show NaN and infinity instead of stopping at the first node that produces them.
    #[arg(long)]
    pub allow_nonfinite: bool,
    /// How transformer token layers become maps, e.g. grid=14x14,skip=1 (patch grid, leading
    /// class/distillation tokens to drop). Default: worked out from each layer's shape.
    #[arg(long, value_parser = parse_tokens)]
    pub tokens: Option<TokenConfig>,
}

fn parse_tokens(s: &str) -> std::result::Result<TokenConfig, String> {
    s.parse()
        .map_err(|e: convscope::lower::methods::Error| e.to_string())
}

impl RunArgs {
    pub fn limit(&self) -> MemoryLimit {
        self.memory_limit.unwrap_or_default()
    }
}

/// Loads `path` with the shared options applied; `input` makes the input options from the
/// model's own, which hold what the file implies (a Keras model with a `Rescaling` layer after
/// its input wants raw pixels), so that only the options given on the command line change them.
pub(crate) fn open_model(
    path: &Path,
    run: &RunArgs,
    input: impl FnOnce(&InputConfig) -> InputConfig,
) -> Result<Model> {
    let limit = run.limit();
    crate::alloc::set_limit(limit.bytes());
    let options = convscope::LoadOptions {
        allow_nonfinite: run.allow_nonfinite,
    };
    let model = Model::load_with(path, &options)
        .with_context(|| format!("cannot load {}", path.display()))?;
    let input = input(model.input_config());
    input.validate()?;
    Ok(model
        .with_input(input)
        .with_memory_limit(limit)
        .allow_nonfinite(run.allow_nonfinite)
        .with_tokens(run.tokens.unwrap_or_default()))
}

/// The input options of a command whose only input option is `--preprocess`: the model's own
/// normalisation unless one is given.
pub(crate) fn model_input(own: &InputConfig, preprocess: Option<Preprocess>) -> InputConfig {
    InputConfig {
        preprocess: preprocess.unwrap_or(own.preprocess),
        ..InputConfig::default()
    }
}

/// Reads a labels file and attaches it.
pub(crate) fn with_labels(model: Model, labels: Option<&PathBuf>) -> Result<Model> {
    Ok(match labels {
        Some(path) => model.with_labels(Labels::read(path)?),
        None => model,
    })
}

/// Parses `N` or `WxH`.
pub(crate) fn parse_size(s: &str) -> Result<Size, String> {
    s.parse::<Size>().map_err(|e| e.to_string())
}

fn parse_memory(s: &str) -> Result<MemoryLimit, String> {
    s.parse::<MemoryLimit>().map_err(|e| e.to_string())
}

fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let bad = || format!("'{s}' is not three finite numbers like 0.5,0.5,0.5");
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    match v.as_slice() {
        [a, b, c] if v.iter().all(|x| x.is_finite()) => Ok([*a, *b, *c]),
        _ => Err(bad()),
    }
}

/// A finite float (NaN and infinity are refused at parse time, naming the option's value).
pub(crate) fn finite(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("'{s}' is not a finite number ({v})")),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub(crate) struct Bar(ProgressBar);

impl Bar {
    pub fn new() -> Bar {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:40}] {pos}/{len} {per_sec} {elapsed_precise} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Bar(bar)
    }
}

impl Progress for Bar {
    fn start(&self, len: u64, what: &str) {
        self.0.reset();
        self.0.set_length(len);
        self.0.set_message(what.to_string());
    }

    fn set(&self, done: u64) {
        self.0.set_position(done);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
