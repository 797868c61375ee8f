//! The HTTP API under `/api/` (the page uses nothing else): parameters, errors and handlers.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use convscope::cam::method_names;
use convscope::saliency::saliency_method_names;
use convscope::{
    examples::{ExamplesConfig, ExamplesRun},
    ActivationsConfig, CamConfig, Class, Colormap, FilterSet, FiltersConfig, GridStyle, Input,
    InputConfig, OverlayStyle, Preprocess, Recipe, ResizeFilter, SaliencyConfig, Size, TileStyle,
    VisualizeConfig,
};
use serde::Serialize;

use crate::cache::OwnedPass;
use crate::images::clip;
use crate::App;

/// A refused or failed request: an HTTP status and a one-line message, sent as
/// `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// One line naming the problem.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> ApiError {
        let message: String = message.into();
        // One line, whatever the message was made of.
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        ApiError { status, message }
    }

    /// 400: a parameter is missing or wrong.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// 403: outside what the server shows.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    /// 413: over a size limit.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(413, message)
    }

    /// 500: the server's own fault.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, message)
    }
}

impl From<convscope::Error> for ApiError {
    fn from(e: convscope::Error) -> ApiError {
        use convscope::Error as E;
        let status = match &e {
            // The engine refuses names and shapes a request chose: the request's fault.
            E::Config(_) | E::Method(_) | E::Engine(_) | E::Image(_) | E::Keras(_) => 400,
            E::Memory { .. } => 413,
            E::Cancelled => 409,
            E::NonFinite(_) => 422,
            E::Io { .. } => 500,
        };
        ApiError::new(status, convscope::error::one_line(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        json_response(status, &serde_json::json!({ "error": self.message }))
    }
}

/// The result of a handler.
pub type ApiResult = Result<Response, ApiError>;

fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

fn json(value: &impl Serialize) -> ApiResult {
    Ok(json_response(StatusCode::OK, value))
}

fn png(bytes: Vec<u8>) -> ApiResult {
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=600"),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn npy(bytes: Vec<u8>, name: &str) -> ApiResult {
    let disposition = format!("attachment; filename=\"{name}.npy\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Query parameters, percent-decoded, with errors that name the parameter.
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parses a raw query string; `known` are the names the endpoint takes (`token` is always
    /// allowed). An unknown name is refused, so a typo does not silently change nothing.
    pub fn parse(query: Option<&str>, known: &[&str]) -> Result<Params, ApiError> {
        let mut values = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if k != "token" && !known.contains(&k.as_str()) {
                return Err(ApiError::bad(format!(
                    "unknown parameter '{}'; this endpoint takes: {}",
                    clip(&k),
                    known.join(", ")
                )));
            }
            values.insert(k, v);
        }
        Ok(Params { values })
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name`, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad(format!("missing parameter '{name}'")))
    }

    /// `name` parsed, or `None` when absent.
    pub fn parse_opt<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<T>().map_err(|e| {
                    ApiError::bad(format!(
                        "parameter '{name}' = '{}' is not {what}: {e}",
                        clip(v)
                    ))
                })
            })
            .transpose()
    }

    /// A whole number `<= max`.
    pub fn number(&self, name: &str, max: usize) -> Result<Option<usize>, ApiError> {
        let v: Option<usize> = self.parse_opt(name, "a whole number")?;
        match v {
            Some(n) if n > max => Err(ApiError::bad(format!(
                "parameter '{name}' = {n} is over the limit of {max}"
            ))),
            _ => Ok(v),
        }
    }

    /// A flag: `1`, `true`, `yes` or `0`, `false`, `no`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(None),
            Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad(format!(
                "parameter '{name}' = '{}' is not 1/0 or true/false",
                clip(other)
            ))),
        }
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad(format!("bad percent-encoding in '{}'", clip(s)))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad(format!("parameter '{}' is not UTF-8", clip(s))))
}

/// Input option parameters every per-image endpoint takes.
const INPUT_PARAMS: &[&str] = &["image", "size", "crop", "preprocess", "resize"];

/// The input options of a request: the server's defaults with the request's changes.
fn input_config(app: &App, p: &Params) -> Result<InputConfig, ApiError> {
    let mut cfg = app.default_input.clone();
    if let Some(size) = p.parse_opt::<Size>("size", "a size like 224 or 224x224")? {
        cfg.size = Some(size);
    }
    if let Some(crop) = p.flag("crop")? {
        cfg.crop = crop;
    }
    if let Some(pre) = p.parse_opt::<Preprocess>("preprocess", "a preprocessing preset")? {
        cfg.preprocess = pre;
    }
    if let Some(r) = p.parse_opt::<ResizeFilter>("resize", "a resampling filter")? {
        cfg.resize = r;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `f` on a blocking thread once a compute place is free (as many places as cores), so
/// many requests queue instead of all computing at once; a panic becomes a 500, not a crash.
pub(crate) async fn compute<T, F>(app: &Arc<App>, f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let _place = app
        .places
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the server is stopping"))?;
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(ApiError::internal("the request failed unexpectedly")))
}

/// The kept pass of the request's image and input options.
async fn pass_of(app: &Arc<App>, p: &Params) -> Result<Arc<OwnedPass>, ApiError> {
    let id = p.require("image")?.to_string();
    let cfg = input_config(app, p)?;
    let key = format!(
        "{id}|{:?}|{}|{}|{}",
        cfg.size,
        cfg.crop,
        cfg.preprocess,
        cfg.resize.name()
    );
    let app2 = app.clone();
    app.passes
        .get(&key, move || async move {
            let worker = app2.clone();
            compute(&app2, move || {
                let image = worker.images.load(&id)?;
                let model = worker.model.clone();
                OwnedPass::try_new(model, |m| {
                    let input = Input::from_image_with(m, &image, &cfg)?.with_source(&id);
                    m.pass(input)
                })
                .map_err(ApiError::from)
            })
            .await
        })
        .await
}

/// `GET /api/model`: the `summary --json` document.
pub(crate) async fn model(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    Params::parse(req.uri().query(), &[])?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        app.summary_json.clone(),
    )
        .into_response())
}

/// `GET /api/info`: what the page needs besides the summary.
pub(crate) async fn info(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    Params::parse(req.uri().query(), &[])?;
    let cfg = &app.default_input;
    let limits = app.images.limits();
    json(&serde_json::json!({
        "model": app.model.source(),
        "input": {
            "size": cfg.size.map(|s| s.to_string()),
            "model_size": app.model.input_size().ok().map(|s| s.to_string()),
            "crop": cfg.crop,
            "preprocess": cfg.preprocess.name(),
            "resize": cfg.resize.name(),
        },
        "presets": ["unit", "imagenet", "caffe", "tf", "raw"],
        "resize_filters": ["bilinear", "bicubic", "nearest"],
        "colormaps": Colormap::ALL.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "cam_methods": method_names(),
        "saliency_methods": saliency_method_names(),
        "labels": app.model.labels().map(|l| l.names().to_vec()),
        "limits": {
            "upload_bytes": limits.max_bytes,
            "upload_pixels": limits.max_pixels,
        },
        "images_folder": app.has_folder,
    }))
}

/// `GET /api/images`: the known images.
pub(crate) async fn list_images(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    Params::parse(req.uri().query(), &[])?;
    json(&app.images.list())
}

/// `POST /api/images[?name=N]`: stores the body (an encoded image); returns its id.
pub(crate) async fn upload(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query(), &["name"])?;
    let name = p.get("name").map(str::to_string);
    let limit = app.images.limits().max_bytes;
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::too_large(format!(
                "the upload is over the limit of {limit} bytes (or was cut off)"
            ))
        })?;
    let worker = app.clone();
    let info = compute(&app, move || {
        worker.images.upload(bytes.to_vec(), name.as_deref())
    })
    .await?;
    Ok((StatusCode::CREATED, json(&info)?).into_response())
}

/// `GET /api/input?image=ID`: the image as the model sees it (resized, cropped).
pub(crate) async fn input(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query(), INPUT_PARAMS)?;
    let pass = pass_of(&app, &p).await?;
    let bytes = compute(&app, move || {
        Ok(pass
            .pass()
            .input()
            .display()
            .to_picture()
            .png_bytes_fast()?)
    })
    .await?;
    png(bytes)
}

/// Largest side of a channel's large view.
const MAX_SIDE: usize = 2048;

/// `GET /api/activations?image=ID&layer=NAME[&channel=K][&format=png|npy|json]`, the grid
/// drawn with `[&per_row=N][&cell=PX][&title=0|1][&colormap=C]`.
pub(crate) async fn activations(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let known = [
        INPUT_PARAMS,
        &[
            "layer", "channel", "format", "colormap", "side", "per_row", "cell", "title",
        ],
    ]
    .concat();
    let p = Params::parse(req.uri().query(), &known)?;
    let layer = p.require("layer")?.to_string();
    let channel = p.number("channel", usize::MAX)?;
    let format = p.get("format").unwrap_or("png").to_ascii_lowercase();
    if !["png", "npy", "json"].contains(&format.as_str()) {
        return Err(ApiError::bad(format!(
            "format '{}' is not png, npy or json",
            clip(&format)
        )));
    }
    let colormap = p
        .parse_opt::<Colormap>("colormap", "a colormap")?
        .unwrap_or(Colormap::Viridis);
    let side = p.number("side", MAX_SIDE)?.unwrap_or(480).max(16);
    let style = GridStyle {
        per_row: p.number("per_row", 1024)?.unwrap_or(16).max(1),
        cell: p.number("cell", 1024)?.unwrap_or(48).max(1),
        colormap,
        title: p.flag("title")?.unwrap_or(true),
        ..GridStyle::default()
    };
    // The layer is checked before any pass, so a wrong name costs nothing.
    app.model.select_one(&layer)?;
    let pass = pass_of(&app, &p).await?;
    compute(&app, move || {
        let acts = pass
            .pass()
            .activations(&ActivationsConfig::layers(&layer))?;
        let a = &acts.layers()[0];
        let name = convscope::text::file_stem(&a.selected.label);
        let spatial = a.spatial();
        if let Some(k) = channel {
            let Some((c, h, w)) = spatial else {
                return Err(ApiError::bad(format!(
                    "layer '{}' has no spatial feature map (shape {:?}), so no channel view",
                    a.selected.label,
                    a.values.shape()
                )));
            };
            let values = a.channel(k).ok_or_else(|| {
                ApiError::bad(format!(
                    "channel {k} is out of range: '{}' has {c} channels (0..{c})",
                    a.selected.label
                ))
            })?;
            return match format.as_str() {
                "npy" => npy(
                    convscope::lower::image::npy_bytes_f32(&[h, w], values),
                    &format!("{name}_ch{k}"),
                ),
                "json" => {
                    let (x, y, bw, bh) = convscope::activations::channel_large_box(h, w, side);
                    let finite = values.iter().copied().filter(|v| v.is_finite());
                    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                        (a.min(v), b.max(v))
                    });
                    json(&serde_json::json!({
                        "layer": a.selected.label,
                        "channel": k,
                        "channels": c,
                        "height": h,
                        "width": w,
                        "min": lo,
                        "max": hi,
                        "mean": values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64,
                        "zero_fraction": values.iter().filter(|&&v| v == 0.0).count() as f64 / values.len().max(1) as f64,
                        "blank": values.iter().all(|&v| v == 0.0),
                        "side": side,
                        "map_box": [x, y, bw, bh],
                    }))
                }
                _ => png(acts.channel(0, k, colormap, side)?.png_bytes_fast()?),
            };
        }
        match format.as_str() {
            "npy" => npy(
                convscope::lower::image::npy_bytes_f32(a.values.shape(), a.values.data()),
                &name,
            ),
            "json" => {
                let s = &a.stats;
                let layout = spatial
                    .map(|_| acts.grid_layout(0, &style))
                    .transpose()?
                    .map(|l| {
                        serde_json::json!({
                            "width": l.width, "height": l.height, "x0": l.x0, "y0": l.y0,
                            "columns": l.columns, "rows": l.rows,
                            "cell_width": l.cell_width, "cell_height": l.cell_height,
                            "separator": l.separator,
                        })
                    });
                let blank: Vec<usize> = match spatial {
                    Some((c, ..)) => (0..c)
                        .filter(|&k| a.channel(k).is_some_and(|v| v.iter().all(|&x| x == 0.0)))
                        .collect(),
                    None => Vec::new(),
                };
                json(&serde_json::json!({
                    "layer": a.selected.label,
                    "value": a.value_name,
                    "shape": a.values.shape(),
                    "stats": {
                        "mean": s.mean, "std": s.std, "min": s.min, "max": s.max,
                        "zero_fraction": s.zero_fraction,
                        "blank_channels": s.blank_channels, "channels": s.channels,
                    },
                    "blank": blank,
                    "grid": layout,
                }))
            }
            _ => {
                // At one pixel per value (the page's grids, enlarged by the browser) fast
                // compression saved 23 % of the bytes for 17× the time; enlarged cells repeat
                // rows and pixels, which it shrinks 2.6× (docs/design.md, "Viewer grids").
                let one_to_one = acts.grid_layout(0, &style)?.scale == 1;
                let grid = acts.grid(0, &style)?;
                if one_to_one {
                    png(grid.png_bytes_stored()?)
                } else {
                    png(grid.png_bytes_fast()?)
                }
            }
        }
    })
    .await
}

/// `GET /api/predictions?image=ID[&top=K]`.
pub(crate) async fn predictions(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let known = [INPUT_PARAMS, &["top"]].concat();
    let p = Params::parse(req.uri().query(), &known)?;
    let top = p.number("top", 1000)?.unwrap_or(5).max(1);
    let pass = pass_of(&app, &p).await?;
    let result = compute(&app, move || {
        let pred = pass.pass().predictions()?;
        Ok(serde_json::json!({
            "classes": pred.classes(),
            "score_is_logit": pred.score_is_logit(),
            "top": pred.top(top).into_iter().map(|(class, label, probability)| {
                serde_json::json!({"class": class, "label": label, "probability": probability})
            }).collect::<Vec<_>>(),
        }))
    })
    .await?;
    json(&result)
}

/// The class of a request: `class=K` (an index) or a label; `None` when absent.
fn class_of(app: &App, p: &Params) -> Result<Option<usize>, ApiError> {
    let Some(v) = p.get("class").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(k) = v.parse::<usize>() {
        return Ok(Some(k));
    }
    match app.model.labels() {
        Some(labels) => Ok(Some(labels.index_of(v)?)),
        None => Err(ApiError::bad(format!(
            "class '{}' is not a class index (the model has no labels)",
            clip(v)
        ))),
    }
}

/// `GET /api/cam?image=ID&class=K&method=gradcam[&layer=L][&format=png|heatmap|npy|json]`.
pub(crate) async fn cam(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let known = [
        INPUT_PARAMS,
        &["class", "method", "layer", "format", "alpha", "colormap"],
    ]
    .concat();
    let p = Params::parse(req.uri().query(), &known)?;
    let method = p.get("method").unwrap_or("gradcam").to_ascii_lowercase();
    if !method_names().contains(&method.as_str()) {
        return Err(ApiError::bad(format!(
            "unknown CAM method '{}'; methods: {}",
            clip(&method),
            method_names().join(", ")
        )));
    }
    let format = p.get("format").unwrap_or("png").to_ascii_lowercase();
    if !["png", "heatmap", "npy", "json"].contains(&format.as_str()) {
        return Err(ApiError::bad(format!(
            "format '{}' is not png, heatmap, npy or json",
            clip(&format)
        )));
    }
    let style = OverlayStyle {
        alpha: p.parse_opt::<f32>("alpha", "a number")?.unwrap_or(0.4),
        colormap: p
            .parse_opt::<Colormap>("colormap", "a colormap")?
            .unwrap_or(Colormap::Jet),
    };
    style.validate()?;
    let class = class_of(&app, &p)?;
    let layer = p.get("layer").filter(|l| !l.is_empty()).map(str::to_string);
    if let Some(l) = &layer {
        app.model.select_one(l)?;
    }
    let pass = pass_of(&app, &p).await?;
    compute(&app, move || {
        let pass = pass.pass();
        let class = match class {
            Some(k) => k,
            None => pass.predictions()?.best(),
        };
        let config = CamConfig {
            method: method.clone(),
            layer,
            targets: vec![Arc::new(Class(class))],
            ..CamConfig::default()
        };
        let set = pass.cam(&config)?;
        let map = &set.maps[0];
        match format.as_str() {
            "npy" => {
                let s = map.size();
                npy(
                    convscope::lower::image::npy_bytes_f32(&[s.height, s.width], map.raw()),
                    &map.file_stem(),
                )
            }
            "json" => json(&serde_json::json!({
                "class": map.class(),
                "label": map.label(),
                "probability": map.probability(),
                "score": map.score(),
                "method": map.method(),
                "layer": map.layer(),
                "size": [map.size().height, map.size().width],
                "peak": [map.peak().0, map.peak().1],
                "all_zero": map.all_zero(),
                "map_rule": set.map_rule,
            })),
            "heatmap" => png(map.heatmap(style.colormap)?.png_bytes_fast()?),
            _ => png(map.overlay_input(&style)?.png_bytes_fast()?),
        }
    })
    .await
}

/// `GET /api/saliency?image=ID[&class=K][&method=gradient][&format=png|npy]`.
pub(crate) async fn saliency(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let known = [INPUT_PARAMS, &["class", "method", "format", "colormap"]].concat();
    let p = Params::parse(req.uri().query(), &known)?;
    let method = p.get("method").unwrap_or("gradient").to_ascii_lowercase();
    let format = p.get("format").unwrap_or("png").to_ascii_lowercase();
    if !["png", "npy"].contains(&format.as_str()) {
        return Err(ApiError::bad(format!(
            "format '{}' is not png or npy",
            clip(&format)
        )));
    }
    let colormap = p
        .parse_opt::<Colormap>("colormap", "a colormap")?
        .unwrap_or(Colormap::Inferno);
    let class = class_of(&app, &p)?;
    let config = SaliencyConfig {
        method,
        target: class.map(|k| Arc::new(Class(k)) as convscope::TargetRef),
        ..SaliencyConfig::default()
    };
    config.validate()?;
    let pass = pass_of(&app, &p).await?;
    let model = app.model.clone();
    compute(&app, move || {
        let map = model.saliency(pass.pass().input(), &config)?;
        match format.as_str() {
            "npy" => {
                let s = map.size();
                npy(
                    convscope::lower::image::npy_bytes_f32(&[s.height, s.width], map.magnitudes()),
                    &map.file_stem(),
                )
            }
            _ => png(map.picture(colormap)?.png_bytes_fast()?),
        }
    })
    .await
}

/// `GET /api/filter?layer=NAME&channel=K[&recipe=lucid|maco|walkthrough][&size=S][&steps=N][&preprocess=P][&wait=1][&format=png|json]`
/// and `DELETE` of the same URL (cancels). Lucid's recipe by default (128 steps), the
/// walk-through's gradient ascent (40 steps) with `recipe=walkthrough`.
pub(crate) async fn filter(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let known = [
        "layer",
        "channel",
        "size",
        "steps",
        "preprocess",
        "recipe",
        "wait",
        "format",
    ];
    let p = Params::parse(req.uri().query(), &known)?;
    let layer = p.require("layer")?.to_string();
    let channel = p
        .number("channel", usize::MAX)?
        .ok_or_else(|| ApiError::bad("missing parameter 'channel'"))?;
    let size = p.number("size", 512)?.unwrap_or(128).max(16);
    let recipe = p
        .parse_opt::<Recipe>("recipe", "a recipe (lucid, maco, walkthrough)")?
        .unwrap_or(Recipe::Lucid);
    let default_steps = match recipe {
        Recipe::Walkthrough => 40,
        _ => convscope::report::REPORT_STEPS,
    };
    let steps = p.number("steps", 1000)?.unwrap_or(default_steps).max(1);
    let preprocess = p
        .parse_opt::<Preprocess>("preprocess", "a preprocessing preset")?
        .unwrap_or(app.default_input.preprocess);
    let wait = p.flag("wait")?.unwrap_or(false);
    let format = p.get("format").unwrap_or("png").to_ascii_lowercase();
    if !["png", "json"].contains(&format.as_str()) {
        return Err(ApiError::bad(format!(
            "format '{}' is not png or json",
            clip(&format)
        )));
    }
    let selected = app.model.select_one(&layer)?;
    if let Some(c) = app.channels_of(&selected.label) {
        if channel >= c {
            return Err(ApiError::bad(format!(
                "channel {channel} is out of range: '{}' has {c} channels (0..{c})",
                selected.label
            )));
        }
    }
    let key = format!(
        "filter|{}|{channel}|{}|{size}|{steps}|{}",
        selected.label,
        recipe.name(),
        preprocess.name()
    );
    if req.method() == axum::http::Method::DELETE {
        if let Some(job) = app.jobs.get(&key) {
            job.cancel();
        }
        return json(&serde_json::json!({"job": key, "cancelled": true}));
    }
    if let Some(done) = app.jobs.result(&key) {
        return match format.as_str() {
            "json" => json(&serde_json::json!({"job": key, "state": "done"})),
            _ => png(done.to_vec()),
        };
    }
    let model = app.model.clone();
    let what = format!("filter {channel} of {}", selected.label);
    let job = app.jobs.start(&key, &what, move |progress| {
        let only = FilterSet::Indices(vec![channel]);
        if recipe == Recipe::Walkthrough {
            let config = FiltersConfig {
                filters: only,
                size: Size::square(size),
                steps,
                preprocess,
                ..FiltersConfig::default()
            };
            let grid = model.filters_with_progress(&layer, &config, progress)?;
            return Ok(grid.picture(&TileStyle::default())?.png_bytes_fast()?);
        }
        // The network sees the picture at its own size, as the report's filter sections do.
        let config = VisualizeConfig {
            recipe,
            steps: Some(steps),
            size: Some(Size::square(size)),
            view: Some(Size::square(size)),
            preprocess: Some(preprocess),
            ..VisualizeConfig::filters(&model, &layer, &only)?
        };
        let vis = model.visualize_with_progress(&config, progress)?;
        let first = vis
            .pictures
            .first()
            .ok_or_else(|| convscope::Error::Config("the visualization made no picture".into()))?;
        Ok(first.picture.png_bytes_fast()?)
    });
    job.touch();
    if wait {
        return match job.finished().await {
            crate::jobs::JobState::Done(bytes) => match format.as_str() {
                "json" => json(&job.status()),
                _ => png(bytes.to_vec()),
            },
            crate::jobs::JobState::Failed(e) => Err(e),
            _ => Err(ApiError::new(409, "the job was cancelled")),
        };
    }
    match job.state() {
        crate::jobs::JobState::Done(bytes) if format == "png" => png(bytes.to_vec()),
        crate::jobs::JobState::Failed(e) => Err(e),
        _ => Ok(json_response(StatusCode::ACCEPTED, &job.status())),
    }
}

/// What an examples job keeps: one layer's rankings over the folder.
#[derive(Serialize, serde::Deserialize)]
struct FolderExamples {
    images_used: usize,
    skipped: Vec<convscope::examples::Skipped>,
    layer: convscope::examples::LayerExamples,
}

/// The examples job of `layer`, started if needed.
fn examples_job(app: &Arc<App>, label: &str) -> Result<Arc<crate::jobs::Job>, ApiError> {
    let Some(dir) = app.images.folder().map(std::path::Path::to_path_buf) else {
        return Err(ApiError::bad(
            "dataset examples need an images folder: start convscope serve with --images DIR",
        ));
    };
    let key = examples_key(label);
    let (shared, layer) = (app.clone(), label.to_string());
    let what = format!("examples of {label} over the images folder");
    let job = app.jobs.start(&key, &what, move |progress| {
        // Listed here, once per job, not on every poll of a page.
        let files = shared.images.example_files();
        let model = &shared.model;
        let config = ExamplesConfig {
            layers: layer,
            ..ExamplesConfig::default()
        };
        let index = ExamplesRun::over(model, &dir, files, &config, None)?.run(progress)?;
        let mut layers = index.layers;
        let found = FolderExamples {
            images_used: index.images_used,
            skipped: index.skipped,
            layer: layers
                .pop()
                .ok_or_else(|| ApiError::internal("the examples job found no layer"))?,
        };
        serde_json::to_vec(&found).map_err(|e| ApiError::internal(e.to_string()))
    });
    job.touch();
    Ok(job)
}

/// The job key of a layer's dataset examples.
fn examples_key(label: &str) -> String {
    format!("examples|{label}")
}

/// The ranking of `end` (`top` or `bottom`) of one channel, from a finished job's bytes.
fn unit_of(bytes: &[u8], channel: usize) -> Result<(FolderExamples, usize), ApiError> {
    let found: FolderExamples =
        serde_json::from_slice(bytes).map_err(|e| ApiError::internal(e.to_string()))?;
    let index = found
        .layer
        .units
        .iter()
        .position(|u| u.channel == channel)
        .ok_or_else(|| ApiError::bad(format!("channel {channel} is out of range")))?;
    Ok((found, index))
}

/// `GET /api/examples?layer=NAME&channel=K[&wait=1]` (and `DELETE`, which cancels): the images
/// of the `--images` folder that channel K of the layer responds to most and least, computed
/// over the whole folder once per layer in the background (the server's input options). 202
/// with the job's progress while it runs; then `{"layer", "channel", "images_used", "skipped",
/// "top": [...], "bottom": [...]}`, each entry `{"image", "score", "x", "y", "box"}` as in
/// `convscope examples`' `index.json`, `image` being the id of a folder image.
pub(crate) async fn examples(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query(), &["layer", "channel", "wait"])?;
    let (label, channel) = examples_unit(&app, &p)?;
    if req.method() == axum::http::Method::DELETE {
        let key = examples_key(&label);
        if let Some(job) = app.jobs.get(&key) {
            job.cancel();
        }
        return json(&serde_json::json!({"job": key, "cancelled": true}));
    }
    let wait = p.flag("wait")?.unwrap_or(false);
    // A finished layer is answered from its kept result, without touching the folder.
    let bytes = match app.jobs.result(&examples_key(&label)) {
        Some(done) => done,
        None => {
            let job = examples_job(&app, &label)?;
            let state = if wait {
                job.finished().await
            } else {
                job.state()
            };
            match state {
                crate::jobs::JobState::Done(bytes) => bytes,
                crate::jobs::JobState::Failed(e) => return Err(e),
                _ if wait => return Err(ApiError::new(409, "the job was cancelled")),
                _ => return Ok(json_response(StatusCode::ACCEPTED, &job.status())),
            }
        }
    };
    let (found, index) = unit_of(&bytes, channel)?;
    let unit = &found.layer.units[index];
    json(&serde_json::json!({
        "layer": label,
        "channel": channel,
        "state": "done",
        "images_used": found.images_used,
        "skipped": found.skipped.len(),
        "top": unit.top,
        "bottom": unit.bottom,
    }))
}

/// The layer (its summary label) and channel a request names, checked.
fn examples_unit(app: &App, p: &Params) -> Result<(String, usize), ApiError> {
    let selected = app.model.select_one(p.require("layer")?)?;
    let channel = p
        .number("channel", usize::MAX)?
        .ok_or_else(|| ApiError::bad("missing parameter 'channel'"))?;
    match app.channels_of(&selected.label) {
        Some(c) if channel >= c => Err(ApiError::bad(format!(
            "channel {channel} is out of range: '{}' has {c} channels (0..{c})",
            selected.label
        ))),
        Some(_) => Ok((selected.label, channel)),
        None => Err(ApiError::bad(format!(
            "'{}' is not a spatial feature map; dataset examples need a convolution or pooling layer",
            selected.label
        ))),
    }
}

/// `GET /api/examples/crop?layer=NAME&channel=K&end=top|bottom&rank=R`: the receptive field
/// of an entry cut from its image (PNG), once the layer's examples are done (404 before).
pub(crate) async fn example_crop(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query(), &["layer", "channel", "end", "rank"])?;
    let (label, channel) = examples_unit(&app, &p)?;
    let end = p.require("end")?.to_string();
    if end != "top" && end != "bottom" {
        return Err(ApiError::bad(format!(
            "end '{}' is not top or bottom",
            clip(&end)
        )));
    }
    let rank = p
        .number("rank", usize::MAX)?
        .ok_or_else(|| ApiError::bad("missing parameter 'rank'"))?;
    let bytes = app.jobs.result(&examples_key(&label)).ok_or_else(|| {
        ApiError::not_found(format!(
            "the examples of '{label}' are not computed yet; ask /api/examples first"
        ))
    })?;
    let (found, index) = unit_of(&bytes, channel)?;
    let unit = &found.layer.units[index];
    let list = if end == "top" {
        &unit.top
    } else {
        &unit.bottom
    };
    let entry = list.get(rank).cloned().ok_or_else(|| {
        ApiError::not_found(format!(
            "channel {channel} of '{label}' has {} {end} examples (rank 0..{})",
            list.len(),
            list.len()
        ))
    })?;
    let app2 = app.clone();
    compute(&app, move || {
        let image = app2.images.load(&entry.image)?;
        Ok(image.crop(entry.region).to_picture().png_bytes_fast()?)
    })
    .await
    .and_then(png)
}

/// `GET /api/jobs`: every job's status.
pub(crate) async fn jobs(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    Params::parse(req.uri().query(), &[])?;
    let (kept, bytes) = app.passes.usage();
    json(&serde_json::json!({
        "jobs": app.jobs.list(),
        "passes_kept": kept,
        "pass_bytes": bytes,
    }))
}

/// Any other path under `/api/`.
pub(crate) async fn unknown(req: Request) -> ApiResult {
    Err(ApiError::not_found(format!(
        "no endpoint {} {}; see the README's API table",
        req.method(),
        clip(req.uri().path())
    )))
}
