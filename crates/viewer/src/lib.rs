//! # convscope-viewer
//!
//! `convscope serve`: explore any model in the browser. An HTTP server (axum on tokio) that
//! holds one [`convscope::Model`], answers a documented API under `/api/` and serves one page
//! that uses nothing else. Every asset is compiled into the binary.
//!
//! ```no_run
//! use convscope_viewer::{ServeConfig, Server};
//!
//! let server = Server::start(convscope::Model::demo()?, ServeConfig { port: 0, ..ServeConfig::default() })?;
//! println!("{}", server.url()); // http://127.0.0.1:PORT/?token=...
//! server.wait();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Safety follows Jupyter: the server listens on 127.0.0.1 unless told otherwise, and every
//! request, the page and its assets included, must carry the token ([`auth`]). Images come
//! only from the embedded scene, uploads (limited in bytes and pixels) and the files directly
//! inside `--images` ([`images`]). Bad parameters get a 4xx with `{"error": "one line"}`;
//! computations run on blocking threads, as many at once as there are cores, and a panic in
//! one becomes a 500 for that request only.
//!
//! Speed: a forward pass per image and input options is kept ([`cache`]), so a click on
//! another layer costs only the drawing and a click on another class one backward sweep
//! through the classifier head. Filter patterns are background jobs ([`jobs`]) with progress,
//! kept when done and cancelled when no page asks about them any more.
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod api;
pub mod auth;
pub mod cache;
mod error;
pub mod images;
pub mod jobs;
mod page;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use convscope::{InputConfig, Model};
use tokio::sync::Semaphore;

pub use error::{Error, Result};

use crate::api::ApiError;
use crate::cache::PassCache;
use crate::images::{ImageLimits, ImageStore};
use crate::jobs::Jobs;

/// Options of [`Server::start`] (the `convscope serve` flags).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on; anything but a loopback address exposes the model (and the
    /// images folder) to the network, behind the token only.
    pub host: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// A folder whose image files the page may choose (only files directly inside it).
    pub images: Option<PathBuf>,
    /// The access token; `None` makes a random one.
    pub token: Option<String>,
    /// Input options the page starts with; `None` uses [`Model::likely_input_config`].
    pub input: Option<InputConfig>,
    /// Largest upload (and folder file) in bytes.
    pub max_upload_bytes: usize,
    /// Largest upload (and folder file) in pixels.
    pub max_upload_pixels: u64,
    /// Bytes of forward passes kept; `None`: a quarter of the model's memory limit.
    pub cache_bytes: Option<u64>,
    /// A background job nobody waits for or asks about for this long is cancelled.
    pub job_lease: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8731,
            images: None,
            token: None,
            input: None,
            max_upload_bytes: 32 << 20,
            max_upload_pixels: 40_000_000,
            cache_bytes: None,
            job_lease: Duration::from_secs(5),
        }
    }
}

/// What every handler shares.
pub(crate) struct App {
    model: Arc<Model>,
    token: String,
    summary_json: String,
    /// Channels of each layer (axis 1 of a 4-D output), by name.
    channels: std::collections::HashMap<String, usize>,
    default_input: InputConfig,
    images: ImageStore,
    has_folder: bool,
    passes: PassCache,
    jobs: Arc<Jobs>,
    places: Semaphore,
}

impl App {
    /// Channels of layer `name`, when its output is a 4-D map.
    pub(crate) fn channels_of(&self, name: &str) -> Option<usize> {
        self.channels.get(name).copied()
    }
}

/// A running viewer. Dropping it stops the server.
pub struct Server {
    url: String,
    addr: SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Binds the address and starts serving `model` in the background.
    pub fn start(model: Model, config: ServeConfig) -> Result<Server> {
        let has_folder = config.images.is_some();
        if let Some(dir) = &config.images {
            if !dir.is_dir() {
                return Err(Error::Images {
                    path: dir.display().to_string(),
                    reason: "not a folder".into(),
                });
            }
        }
        let images = ImageStore::new(
            config.images.as_deref(),
            ImageLimits {
                max_bytes: config.max_upload_bytes,
                max_pixels: config.max_upload_pixels,
                max_kept_bytes: (config.max_upload_bytes * 8).max(256 << 20),
            },
        )
        .map_err(|e| Error::Images {
            path: config
                .images
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
            reason: e.to_string(),
        })?;
        let token = config.token.clone().unwrap_or_else(auth::new_token);
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Config(
                "the token must be letters and digits, at least one".into(),
            ));
        }
        let default_input = config
            .input
            .clone()
            .unwrap_or_else(|| model.likely_input_config());
        default_input.validate()?;
        let summary = model.summary_at(default_input.size.or(model.input_config().size))?;
        let channels = summary
            .layers
            .iter()
            .filter(|l| l.shape.len() == 4)
            .map(|l| (l.name.clone(), l.shape[1]))
            .collect();
        let summary_json =
            serde_json::to_string(&summary).map_err(|e| Error::Config(e.to_string()))?;
        let cache_bytes = config
            .cache_bytes
            .unwrap_or(model.memory_limit().bytes() / 4);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let app = Arc::new(App {
            model: Arc::new(model),
            token: token.clone(),
            summary_json,
            channels,
            default_input,
            images,
            has_folder,
            passes: PassCache::new(cache_bytes),
            jobs: Arc::new(Jobs::new(config.job_lease)),
            places: Semaphore::new(cores),
        });

        let wanted = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&wanted).map_err(|reason| Error::Bind {
            addr: wanted.clone(),
            reason,
        })?;
        let addr = listener.local_addr().map_err(Error::Runtime)?;
        listener.set_nonblocking(true).map_err(Error::Runtime)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("convscope-serve")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = router(app);
        let listener = {
            let _enter = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(Error::Runtime)?
        };
        runtime.spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                eprintln!("convscope serve: {e}");
            }
        });
        let host = match addr {
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
            SocketAddr::V4(a) => a.ip().to_string(),
        };
        Ok(Server {
            url: format!("http://{host}:{}/?token={token}", addr.port()),
            addr,
            token,
            stop: Some(stop),
            runtime: Some(runtime),
        })
    }

    /// The page's address with the token, e.g. `http://127.0.0.1:8731/?token=…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address listened on (with the port picked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        loop {
            std::thread::park();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/assets/{name}", get(page::asset))
        .route("/api/model", get(api::model))
        .route("/api/info", get(api::info))
        .route("/api/images", get(api::list_images).post(api::upload))
        .route("/api/input", get(api::input))
        .route("/api/activations", get(api::activations))
        .route("/api/predictions", get(api::predictions))
        .route("/api/cam", get(api::cam))
        .route("/api/saliency", get(api::saliency))
        .route("/api/filter", get(api::filter).delete(api::filter))
        .route("/api/jobs", get(api::jobs))
        .route("/api/{*rest}", axum::routing::any(api::unknown))
        .fallback(api::unknown)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(app)
}

/// Refuses a request without the token (401) or with another one (403).
async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let authorization = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth::check(&app.token, req.uri().query(), authorization) {
        Ok(()) => next.run(req).await,
        Err(auth::Refusal::Missing) => ApiError {
            status: 401,
            message: "this server needs its token: open the URL it printed (with ?token=...) \
                      or send Authorization: Bearer <token>"
                .into(),
        }
        .into_response(),
        Err(auth::Refusal::Wrong) => ApiError {
            status: 403,
            message: "wrong token".into(),
        }
        .into_response(),
    }
}
