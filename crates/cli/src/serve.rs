//! `convscope serve`: explore a model in the browser (the server is `convscope-viewer`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use convscope::prelude::*;
use convscope::ResizeFilter;
use convscope_viewer::{ServeConfig, Server};

use crate::args::{open_model, parse_size, with_labels, RunArgs};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The ONNX model (default: the embedded demo model, with its scene).
    pub model: Option<PathBuf>,
    /// A folder whose image files the page may choose (only files directly inside it).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Address to listen on. Anything but 127.0.0.1 exposes the model and the images folder
    /// to the network, behind the token only.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port; 0 picks a free one.
    #[arg(long, default_value_t = 8731)]
    pub port: u16,
    /// Open the page in the default browser.
    #[arg(long)]
    pub open: bool,
    /// Class names, one per line, in index order.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Input size WxH the page starts with (default: the size the model declares).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<Size>,
    /// Centre crop the page starts with (default: guessed from the model).
    #[arg(long)]
    pub crop: Option<bool>,
    /// Preprocessing preset the page starts with: unit, imagenet, caffe, tf, raw (default:
    /// guessed from the model: imagenet for PyTorch exports, else unit).
    #[arg(long)]
    pub preprocess: Option<Preprocess>,
    /// Resampling filter: bilinear, bicubic, nearest.
    #[arg(long)]
    pub resize: Option<ResizeFilter>,
    /// The access token (default: a random one). Letters and digits.
    #[arg(long)]
    pub token: Option<String>,
    /// Largest upload in megabytes.
    #[arg(long, default_value_t = 32)]
    pub max_upload_mb: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

pub(crate) fn run(args: ServeArgs) -> Result<()> {
    let model = match &args.model {
        Some(path) => open_model(path, &args.run, |own| InputConfig {
            size: args.size,
            ..own.clone()
        })?,
        None => {
            let limit = args.run.limit();
            crate::alloc::set_limit(limit.bytes());
            let mut m = Model::demo()?
                .with_memory_limit(limit)
                .allow_nonfinite(args.run.allow_nonfinite);
            if let Some(size) = args.size {
                let cfg = m.input_config().clone().with_size(size);
                m.set_input(cfg);
            }
            m
        }
    };
    let model = with_labels(model, args.labels.as_ref())?;
    let mut input = model.likely_input_config();
    if let Some(crop) = args.crop {
        input.crop = crop;
    }
    if let Some(p) = args.preprocess {
        input.preprocess = p;
    }
    if let Some(r) = args.resize {
        input.resize = r;
    }
    let config = ServeConfig {
        host: args.host.clone(),
        port: args.port,
        images: args.images.clone(),
        token: args.token.clone(),
        input: Some(input),
        max_upload_bytes: args.max_upload_mb.max(1) << 20,
        ..ServeConfig::default()
    };
    let server = Server::start(model, config)?;
    // The URL is the first line on stdout, so scripts and tests can read it.
    let mut out = std::io::stdout();
    writeln!(out, "{}", server.url()).context("cannot write to stdout")?;
    out.flush().ok();
    eprintln!("serving; press Ctrl-C to stop");
    if args.open {
        open_browser(server.url());
    }
    server.wait();
    Ok(())
}

/// Opens `url` in the desktop's browser; a failure is only a message (the URL is printed).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("could not open a browser ({opener}: {e}); open the URL above");
    }
}
