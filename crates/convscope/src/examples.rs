//! Dataset examples: for every channel of chosen layers, the real images of a folder that excite
//! it most (and least), with where in the image and the receptive field there.
//!
//! Every image is run through the model once; each channel keeps a running top-K and bottom-K,
//! so memory stays flat whatever the number of images. Entries are ordered by score, then by the
//! image's relative path, a total order: the result is a function of the set of images, not of
//! the order they were seen in. That is what makes a run resumable ([`ExamplesRun`] checkpoints
//! its state) and shardable ([`Shard`]: each shard keeps the top-K of its own images, and
//! [`merge`] of all shards' results equals one run over every image, byte for byte in
//! `index.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convscope_engine::{Pass, Tensor, ValueId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::Input;
use crate::model::Model;
use crate::output::Sink;
use crate::picture::{Image, Region};
use crate::progress::Progress;
use crate::size::Size;
use crate::text::file_stem;

/// File extensions of the images a folder scan picks up (as `activations` reads them).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"];

/// Images per pass unless the job says otherwise.
pub const DEFAULT_BATCH: usize = 16;

/// How a channel's map becomes one score per image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Score {
    /// The largest value of the map (where the unit fires hardest).
    Max,
    /// The mean of the map (how much of the image the unit likes).
    Mean,
}

impl std::str::FromStr for Score {
    type Err = Error;
    fn from_str(s: &str) -> Result<Score> {
        match s.to_ascii_lowercase().as_str() {
            "max" => Ok(Score::Max),
            "mean" => Ok(Score::Mean),
            _ => Err(Error::Config(format!(
                "'{s}' is not a score; use max or mean"
            ))),
        }
    }
}

/// One part of a job split over several processes: a contiguous run of the job's batches (the
/// images in sorted order of their relative paths, cut into batches of the job's batch size;
/// part `index` takes batches `index·B/count .. (index+1)·B/count` of the `B`). Every image is
/// thus computed in exactly the batch it has in a run over the whole folder, so the shards'
/// numbers are the whole run's numbers, bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This part, `0..count`.
    pub index: usize,
    /// Number of parts.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;
    /// Parses `I/N` (e.g. `3/8`).
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::Config(format!("'{s}' is not a shard; use I/N with 0 <= I < N"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let shard = Shard {
            index: i.trim().parse().map_err(|_| bad())?,
            count: n.trim().parse().map_err(|_| bad())?,
        };
        shard.check().map_err(|_| bad())?;
        Ok(shard)
    }
}

impl Shard {
    /// Checks `index < count` and `count >= 1`.
    pub fn check(self) -> Result<Shard> {
        if self.count == 0 || self.index >= self.count {
            return Err(Error::Config(format!(
                "shard {}/{} does not exist: use 0 <= I < N",
                self.index, self.count
            )));
        }
        Ok(self)
    }

    /// The shard the cluster scheduler assigned to this process, from its environment:
    /// Kubernetes Indexed Jobs set `JOB_COMPLETION_INDEX` (the count is `shards`, the Job's
    /// `completions`); Slurm job arrays set `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN` and
    /// `SLURM_ARRAY_TASK_COUNT`. `None` when neither is set.
    ///
    /// ```
    /// use convscope::examples::Shard;
    ///
    /// let env = |k: &str| match k {
    ///     "SLURM_ARRAY_TASK_ID" => Some("5".to_string()),
    ///     "SLURM_ARRAY_TASK_MIN" => Some("1".to_string()),
    ///     "SLURM_ARRAY_TASK_COUNT" => Some("8".to_string()),
    ///     _ => None,
    /// };
    /// assert_eq!(Shard::from_env(&env, None)?, Some(Shard { index: 4, count: 8 }));
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        shards: Option<usize>,
    ) -> Result<Option<Shard>> {
        let num = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::Config(format!("{name}={v} is not a whole number"))),
            }
        };
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = shards.ok_or_else(|| {
                Error::Config(
                    "JOB_COMPLETION_INDEX is set: pass --shards N (the Job's completions)".into(),
                )
            })?;
            return Shard { index, count }.check().map(Some);
        }
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = match shards {
                Some(n) => n,
                None => num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                    Error::Config("SLURM_ARRAY_TASK_COUNT is not set: pass --shards N".into())
                })?,
            };
            let index = id.checked_sub(min).ok_or_else(|| {
                Error::Config(format!(
                    "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
                ))
            })?;
            return Shard { index, count }.check().map(Some);
        }
        Ok(None)
    }
}

/// Options of [`Model::examples`].
#[derive(Clone, Debug, PartialEq)]
pub struct ExamplesConfig {
    /// The layers (see [`Model::select`]); every selected value must be a spatial map.
    pub layers: String,
    /// Images kept per channel, at each end.
    pub top: usize,
    /// How a map becomes a score.
    pub score: Score,
    /// Also cut the receptive field of each entry out of its image.
    pub crops: bool,
    /// Images per pass. Part of the job's identity: shards and resumed runs must use the same
    /// batch size (the numbers of an image can depend on the batch it is computed in).
    pub batch: usize,
    /// The part of the folder this run covers.
    pub shard: Shard,
    /// Write a checkpoint at least this often.
    pub checkpoint_every: Duration,
}

impl Default for ExamplesConfig {
    fn default() -> Self {
        ExamplesConfig {
            layers: String::new(),
            top: 9,
            score: Score::Max,
            crops: false,
            batch: DEFAULT_BATCH,
            shard: Shard::default(),
            checkpoint_every: Duration::from_secs(30),
        }
    }
}

/// One image's place in a channel's ranking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The image, relative to the folder (`/`-separated).
    pub image: String,
    /// The channel's score on it.
    pub score: f32,
    /// Column of the map's maximum.
    pub x: usize,
    /// Row of the map's maximum.
    pub y: usize,
    /// The receptive field of that position, in the original image's pixels.
    #[serde(rename = "box")]
    pub region: Region,
}

/// An entry's place in the orders: its score and image.
type Key<'a> = (f32, &'a str);

impl Entry {
    fn key(&self) -> Key<'_> {
        (self.score, &self.image)
    }
}

/// Best first: higher score, then the path (a total order, so rankings do not depend on the
/// order images were seen in).
fn better(a: Key, b: Key) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

/// Worst first: lower score, then the path.
fn worse(a: Key, b: Key) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1))
}

/// One of the two orders of a channel's list.
type Order = fn(Key, Key) -> std::cmp::Ordering;

/// Keeps the `k` first entries under `order`.
fn keep(list: &mut Vec<Entry>, k: usize, order: Order) {
    list.sort_by(|a, b| order(a.key(), b.key()));
    list.dedup_by(|a, b| a.image == b.image && a.score == b.score);
    list.truncate(k);
}

/// The examples of one channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitExamples {
    /// The channel.
    pub channel: usize,
    /// The images it likes most, best first.
    pub top: Vec<Entry>,
    /// The images it likes least, worst first.
    pub bottom: Vec<Entry>,
}

/// Where a position of a layer's map looks in the model's input.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceptiveField {
    /// Input pixels per map column.
    pub stride_x: f64,
    /// Input pixels per map row.
    pub stride_y: f64,
    /// Left edge of position 0's field (may be negative: padding).
    pub offset_x: f64,
    /// Top edge of position 0's field.
    pub offset_y: f64,
    /// Width of the field.
    pub width: f64,
    /// Height of the field.
    pub height: f64,
}

impl ReceptiveField {
    /// The field of position `(x, y)` in input pixels, clipped to `input`.
    pub fn at(&self, x: usize, y: usize, input: Size) -> (f64, f64, f64, f64) {
        let x0 = (self.offset_x + x as f64 * self.stride_x).max(0.0);
        let y0 = (self.offset_y + y as f64 * self.stride_y).max(0.0);
        let x1 = (self.offset_x + x as f64 * self.stride_x + self.width).min(input.width as f64);
        let y1 = (self.offset_y + y as f64 * self.stride_y + self.height).min(input.height as f64);
        (x0, y0, x1.max(x0 + 1.0), y1.max(y0 + 1.0))
    }
}

/// The examples of one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerExamples {
    /// The layer's name.
    pub name: String,
    /// Its ONNX value name.
    pub value: String,
    /// `[channels, height, width]` of its map at the input size.
    pub shape: [usize; 3],
    /// Where each position of the map looks.
    pub receptive_field: ReceptiveField,
    /// One entry per channel.
    pub units: Vec<UnitExamples>,
}

/// An image that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The image, relative to the folder.
    pub image: String,
    /// Why.
    pub reason: String,
}

/// The result of [`Model::examples`]: what `index.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExamplesIndex {
    /// The model.
    pub model: String,
    /// The folder of images, as given.
    pub images: String,
    /// The model's input size.
    pub input_size: Size,
    /// The score.
    pub score: Score,
    /// Entries per channel at each end.
    pub top: usize,
    /// Images used.
    pub images_used: usize,
    /// Images that could not be used.
    pub skipped: Vec<Skipped>,
    /// Per layer.
    pub layers: Vec<LayerExamples>,
}

/// Progress of a run, written as a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    /// What the run is (a resumed run must be the same job).
    job: String,
    /// Images of the shard's list done so far.
    done: usize,
    index: ExamplesIndex,
}

/// The images of a folder (recursively) with a readable extension, as sorted `/`-separated
/// paths relative to it.
pub fn scan_images(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "--images {} is not a folder",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let entries = std::fs::read_dir(&full).map_err(|e| Error::io("read folder", &full, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let rel_child = rel.join(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                // Hidden folders (staging, VCS) are not images.
                if !name.to_string_lossy().starts_with('.') {
                    stack.push(rel_child);
                }
            } else if Path::new(&name)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                let parts: Vec<String> = rel_child
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// An image made ready for the model, or why it could not be (one line).
type Decoded = std::result::Result<Input, String>;

/// A run of [`Model::examples`] over a folder, resumable from its checkpoint.
pub struct ExamplesRun<'m> {
    model: &'m Model,
    config: ExamplesConfig,
    dir: PathBuf,
    values: Vec<(ValueId, String, String)>,
    images: Vec<String>,
    state: State,
    checkpoint: Option<PathBuf>,
}

impl<'m> ExamplesRun<'m> {
    /// Prepares a run over `dir` (the folder is scanned, the layers resolved, the receptive
    /// fields measured). With `checkpoint`, progress is saved there and a run started again
    /// with the same file continues where the last one stopped.
    pub fn new(
        model: &'m Model,
        dir: &Path,
        config: &ExamplesConfig,
        checkpoint: Option<&Path>,
    ) -> Result<ExamplesRun<'m>> {
        let all = scan_images(dir)?;
        ExamplesRun::over(model, dir, all, config, checkpoint)
    }

    /// Like [`ExamplesRun::new`], over the listed images of `dir` (`/`-separated paths relative
    /// to it) instead of every image found in it: for callers that decide which files may be
    /// read, such as the viewer, which offers only the files directly inside its folder.
    pub fn over(
        model: &'m Model,
        dir: &Path,
        mut all: Vec<String>,
        config: &ExamplesConfig,
        checkpoint: Option<&Path>,
    ) -> Result<ExamplesRun<'m>> {
        all.sort();
        all.dedup();
        if config.top == 0 {
            return Err(Error::Config("--top must be at least 1".into()));
        }
        config.shard.check()?;
        let size = model.input_size()?;
        let selection = model.select(&config.layers)?;
        let engine = model.engine();
        let spec = engine.input_spec();
        let mut layers = Vec::new();
        let mut values = Vec::new();
        for s in &selection {
            let shape = engine.value_shape(&spec.shape(1, size.height, size.width), s.value)?;
            let [_, c, h, w] = shape[..] else {
                return Err(Error::Config(format!(
                    "'{}' is not a spatial feature map (shape {shape:?}); pick convolution or pooling layers",
                    s.label
                )));
            };
            let name = engine.value_name(s.value).to_string();
            layers.push(LayerExamples {
                name: s.label.clone(),
                value: name.clone(),
                shape: [c, h, w],
                receptive_field: receptive_field(model, s.value, size)?,
                units: (0..c)
                    .map(|channel| UnitExamples {
                        channel,
                        ..UnitExamples::default()
                    })
                    .collect(),
            });
            values.push((s.value, s.label.clone(), name));
        }
        if config.batch == 0 {
            return Err(Error::Config("--batch must be at least 1".into()));
        }
        let ids: Vec<ValueId> = values.iter().map(|v| v.0).collect();
        model.check_memory(
            size,
            config.batch,
            &ids,
            Pass::Inference,
            &format!("batches of {} images at {size}", config.batch),
            "use a smaller --batch or --size, or fewer --layers",
        )?;
        let batches = all.len().div_ceil(config.batch);
        let (first, last) = (
            config.shard.index * batches / config.shard.count,
            (config.shard.index + 1) * batches / config.shard.count,
        );
        let images: Vec<String> = all
            [(first * config.batch).min(all.len())..(last * config.batch).min(all.len())]
            .to_vec();
        let job = format!(
            "{} | {} | {:?} | {} | {:?} | {} | batch {} | {}/{} | {} images",
            model.source(),
            dir.display(),
            model.input_config(),
            config.layers,
            config.score,
            config.top,
            config.batch,
            config.shard.index,
            config.shard.count,
            images.len()
        );
        let fresh = State {
            job: job.clone(),
            done: 0,
            index: ExamplesIndex {
                model: model.source().to_string(),
                images: dir.display().to_string(),
                input_size: size,
                score: config.score,
                top: config.top,
                images_used: 0,
                skipped: Vec::new(),
                layers,
            },
        };
        let state = match checkpoint.and_then(|p| std::fs::read(p).ok()) {
            Some(bytes) => {
                let saved: State = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Config(format!(
                        "the checkpoint cannot be read ({e}); remove it to start over"
                    ))
                })?;
                if saved.job != job {
                    return Err(Error::Config(
                        "the checkpoint is of another job (model, images, layers or options differ); \
                         remove it to start over"
                            .into(),
                    ));
                }
                saved
            }
            None => fresh,
        };
        Ok(ExamplesRun {
            model,
            config: config.clone(),
            dir: dir.to_path_buf(),
            values,
            images,
            state,
            checkpoint: checkpoint.map(Path::to_path_buf),
        })
    }

    /// Images this run covers (its shard of the folder).
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether the shard is empty.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Images already done (from a checkpoint).
    pub fn done(&self) -> usize {
        self.state.done
    }

    /// Runs the remaining images, reporting images done to `progress` and saving checkpoints;
    /// returns the result.
    pub fn run(mut self, progress: &dyn Progress) -> Result<ExamplesIndex> {
        let batch = self.config.batch;
        let ids: Vec<ValueId> = self.values.iter().map(|v| v.0).collect();
        progress.start(self.images.len() as u64, "images");
        progress.set(self.state.done as u64);
        let (model, dir) = (self.model, self.dir.clone());
        let decode = |p: &String| -> Decoded {
            model
                .input(dir.join(p))
                .map_err(|e| crate::error::one_line(&e))
        };
        let decode = &decode;
        std::thread::scope(|scope| -> Result<()> {
            let mut last_save = Instant::now();
            // The next batch, decoding on a thread of its own while this one runs through the
            // model (design.md, "Dataset examples: speed").
            let mut ahead: Option<std::thread::ScopedJoinHandle<'_, Vec<Decoded>>> = None;
            while self.state.done < self.images.len() {
                if progress.cancelled() {
                    return Err(Error::Cancelled);
                }
                let end = (self.state.done + batch).min(self.images.len());
                let paths: Vec<String> = self.images[self.state.done..end].to_vec();
                let inputs = match ahead.take() {
                    Some(handle) => handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    // The first batch: nothing else runs yet, so every thread decodes.
                    None => {
                        use rayon::prelude::*;
                        paths.par_iter().map(decode).collect()
                    }
                };
                if end < self.images.len() {
                    let next = self.images[end..(end + batch).min(self.images.len())].to_vec();
                    ahead = Some(scope.spawn(move || next.iter().map(decode).collect()));
                }
                let mut ok: Vec<(String, Input)> = Vec::new();
                for (p, r) in paths.into_iter().zip(inputs) {
                    match r {
                        Ok(input) => ok.push((p, input)),
                        Err(reason) => self.state.index.skipped.push(Skipped { image: p, reason }),
                    }
                }
                if !ok.is_empty() {
                    self.process(&ok, &ids)?;
                }
                self.state.done = end;
                progress.set(end as u64);
                if last_save.elapsed() >= self.config.checkpoint_every {
                    self.save()?;
                    last_save = Instant::now();
                }
            }
            Ok(())
        })?;
        progress.finish();
        self.state
            .index
            .skipped
            .sort_by(|a, b| a.image.cmp(&b.image));
        Ok(self.state.index)
    }

    /// Writes the checkpoint (atomically).
    fn save(&self) -> Result<()> {
        if let Some(path) = &self.checkpoint {
            let bytes = serde_json::to_vec(&self.state).expect("the state encodes");
            convscope_image::write_atomic(path, &bytes)?;
        }
        Ok(())
    }

    /// One pass over a batch of inputs: every channel's score and peak for each image.
    fn process(&mut self, batch: &[(String, Input)], ids: &[ValueId]) -> Result<()> {
        let first = batch[0].1.tensor();
        let item = first.len();
        let mut data = Vec::with_capacity(item * batch.len());
        for (_, input) in batch {
            data.extend_from_slice(input.tensor().data());
        }
        let mut shape = first.shape().to_vec();
        shape[0] = batch.len();
        let x = Tensor::new(shape, data)?;
        let outs = self.model.engine().run_float(&x, ids)?;
        let size = self.state.index.input_size;
        let k = self.config.top;
        for (layer, out) in self.state.index.layers.iter_mut().zip(&outs) {
            let [c, h, w] = layer.shape;
            let plane = h * w;
            if out.len() != batch.len() * c * plane {
                return Err(Error::Config(format!(
                    "'{}' has shape {:?} in a batch, expected [{}, {c}, {h}, {w}]",
                    layer.name,
                    out.shape(),
                    batch.len()
                )));
            }
            for (n, (path, input)) in batch.iter().enumerate() {
                for (ch, unit) in layer.units.iter_mut().enumerate() {
                    let map = &out.data()[(n * c + ch) * plane..(n * c + ch + 1) * plane];
                    let (mut best, mut at, mut sum) = (f32::NEG_INFINITY, 0usize, 0.0f64);
                    for (i, &v) in map.iter().enumerate() {
                        sum += v as f64;
                        if v > best {
                            best = v;
                            at = i;
                        }
                    }
                    let score = match self.config.score {
                        Score::Max => best,
                        Score::Mean => (sum / plane as f64) as f32,
                    };
                    let key = (score, path.as_str());
                    let (top, bottom) = (
                        enters(&unit.top, key, k, better),
                        enters(&unit.bottom, key, k, worse),
                    );
                    // Most (image, channel) pairs enter neither list once they are full: the
                    // entry (two copies of the path) is built only for those that do (building
                    // it for every pair allocated 2 × 1280 paths per image on EfficientNet's head).
                    if !(top || bottom) {
                        continue;
                    }
                    let (x, y) = (at % w, at / w);
                    let region = original_region(input, layer.receptive_field.at(x, y, size), size);
                    let entry = Entry {
                        image: path.clone(),
                        score,
                        x,
                        y,
                        region,
                    };
                    if top && bottom {
                        push(&mut unit.top, entry.clone(), k, better);
                        push(&mut unit.bottom, entry, k, worse);
                    } else if top {
                        push(&mut unit.top, entry, k, better);
                    } else {
                        push(&mut unit.bottom, entry, k, worse);
                    }
                }
            }
        }
        self.state.index.images_used += batch.len();
        Ok(())
    }
}

/// Whether an entry of `key` would enter a list kept at its `k` first under `order`.
fn enters(list: &[Entry], key: Key, k: usize, order: Order) -> bool {
    list.len() < k
        || list
            .last()
            .is_none_or(|last| order(key, last.key()) == std::cmp::Ordering::Less)
}

/// Adds `entry` to a list kept at its `k` first under `order` (re-sorted only when full).
fn push(list: &mut Vec<Entry>, entry: Entry, k: usize, order: Order) {
    if !enters(list, entry.key(), k, order) {
        return;
    }
    let at = list.partition_point(|e| order(e.key(), entry.key()) == std::cmp::Ordering::Less);
    list.insert(at, entry);
    list.truncate(k);
}

/// A field in model-input pixels as a region of the original image (undoing the resize and the
/// crop).
fn original_region(input: &Input, (x0, y0, x1, y1): (f64, f64, f64, f64), size: Size) -> Region {
    let base = input.crop().unwrap_or(Region {
        x: 0,
        y: 0,
        width: input.original().size().width,
        height: input.original().size().height,
    });
    let sx = base.width as f64 / size.width as f64;
    let sy = base.height as f64 / size.height as f64;
    let left = (base.x as f64 + x0 * sx).floor() as usize;
    let top = (base.y as f64 + y0 * sy).floor() as usize;
    let right = ((base.x as f64 + x1 * sx).ceil() as usize).max(left + 1);
    let bottom = ((base.y as f64 + y1 * sy).ceil() as usize).max(top + 1);
    Region {
        x: left,
        y: top,
        width: right - left,
        height: bottom - top,
    }
}

/// The receptive field of `value`'s map at input size `size`: the input pixels the gradient of
/// the centre position (all channels) reaches, over a few random inputs (a ReLU that is off
/// for one input hides part of the field; the union over several does not).
pub fn receptive_field(model: &Model, value: ValueId, size: Size) -> Result<ReceptiveField> {
    let engine = model.engine();
    let spec = engine.input_spec();
    let shape = spec.shape(1, size.height, size.width);
    let map = engine.value_shape(&shape, value)?;
    let [_, c, h, w] = map[..] else {
        return Err(Error::Config(format!(
            "'{}' is not a spatial feature map (shape {map:?})",
            engine.value_name(value)
        )));
    };
    let (cy, cx) = (h / 2, w / 2);
    let mut reached = vec![false; size.height * size.width];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..4 {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        let x = Tensor::new(shape.clone(), data)?;
        let tape = engine.forward(&x, &[value])?;
        let mut seed = Tensor::zeros(tape.value(value)?.shape());
        for ch in 0..c {
            seed.data_mut()[(ch * h + cy) * w + cx] = 1.0;
        }
        let g = tape.backward(vec![(value, seed)], &[])?.input;
        let (gh, gw) = (size.height, size.width);
        let chans = g.len() / (gh * gw);
        for (i, r) in reached.iter_mut().enumerate() {
            let any = (0..chans).any(|k| {
                let v = match spec.layout {
                    convscope_engine::Layout::Nchw => g.data()[k * gh * gw + i],
                    convscope_engine::Layout::Nhwc => g.data()[i * chans + k],
                };
                v != 0.0
            });
            *r |= any;
        }
    }
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, _) in reached.iter().enumerate().filter(|(_, r)| **r) {
        let (y, x) = (i / size.width, i % size.width);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x + 1);
        y1 = y1.max(y + 1);
    }
    let stride_x = size.width as f64 / w as f64;
    let stride_y = size.height as f64 / h as f64;
    if x0 == usize::MAX {
        // No gradient reached the input (a dead unit everywhere): one stride square.
        return Ok(ReceptiveField {
            stride_x,
            stride_y,
            offset_x: 0.0,
            offset_y: 0.0,
            width: stride_x,
            height: stride_y,
        });
    }
    // Extents from the start of the centre position's stride; a side clipped at the image
    // border is restored from the other one (fields are symmetric about the position's centre
    // when the padding is), so every position gets a field of the full size.
    let field = |lo: usize, hi: usize, c: usize, stride: f64, n: usize| -> (f64, f64) {
        let start = c as f64 * stride;
        let (mut left, mut right) = (start - lo as f64, hi as f64 - start);
        if lo == 0 {
            left = left.max(right - stride);
        }
        if hi == n {
            right = right.max(left + stride);
        }
        (0.0 - left, left + right)
    };
    let (offset_x, width) = field(x0, x1, cx, stride_x, size.width);
    let (offset_y, height) = field(y0, y1, cy, stride_y, size.height);
    Ok(ReceptiveField {
        stride_x,
        stride_y,
        offset_x,
        offset_y,
        width,
        height,
    })
}

/// Combines the results of the shards of one job into exactly the result one run over every
/// image gives.
pub fn merge(parts: &[ExamplesIndex]) -> Result<ExamplesIndex> {
    let first = parts
        .first()
        .ok_or_else(|| Error::Config("nothing to merge".into()))?;
    let mut out = first.clone();
    out.images_used = 0;
    out.skipped.clear();
    for layer in &mut out.layers {
        for unit in &mut layer.units {
            unit.top.clear();
            unit.bottom.clear();
        }
    }
    for p in parts {
        let same = p.model == first.model
            && p.input_size == first.input_size
            && p.score == first.score
            && p.top == first.top
            && p.layers.len() == first.layers.len()
            && p.layers.iter().zip(&first.layers).all(|(a, b)| {
                a.name == b.name && a.shape == b.shape && a.receptive_field == b.receptive_field
            });
        if !same {
            return Err(Error::Config(
                "the results are not shards of one job (model, layers, size, score or --top differ)"
                    .into(),
            ));
        }
        out.images_used += p.images_used;
        out.skipped.extend(p.skipped.iter().cloned());
        for (layer, part) in out.layers.iter_mut().zip(&p.layers) {
            for (unit, pu) in layer.units.iter_mut().zip(&part.units) {
                unit.top.extend(pu.top.iter().cloned());
                unit.bottom.extend(pu.bottom.iter().cloned());
            }
        }
    }
    let k = out.top;
    for layer in &mut out.layers {
        for unit in &mut layer.units {
            keep(&mut unit.top, k, better);
            keep(&mut unit.bottom, k, worse);
        }
    }
    out.skipped.sort_by(|a, b| a.image.cmp(&b.image));
    out.skipped.dedup();
    Ok(out)
}

/// File name of the crop of entry `rank` of a unit (`top` or `bottom`).
pub fn crop_name(layer: &str, channel: usize, end: &str, rank: usize) -> String {
    format!("crop_{}_{channel:04}_{end}{rank}.png", file_stem(layer))
}

/// Writes `index.json` and, with `crops`, the receptive field of every entry cut out of its
/// image (read from `images`) into `sink`.
pub fn write_examples(
    index: &ExamplesIndex,
    images: &Path,
    crops: bool,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<()> {
    if crops {
        // Each image is decoded once, however many units chose it.
        let mut wanted: BTreeMap<&str, Vec<(String, Region)>> = BTreeMap::new();
        for layer in &index.layers {
            for unit in &layer.units {
                for (end, list) in [("top", &unit.top), ("bottom", &unit.bottom)] {
                    for (rank, e) in list.iter().enumerate() {
                        wanted
                            .entry(e.image.as_str())
                            .or_default()
                            .push((crop_name(&layer.name, unit.channel, end, rank), e.region));
                    }
                }
            }
        }
        progress.start(wanted.len() as u64, "crops");
        let wanted: Vec<(&str, Vec<(String, Region)>)> = wanted.into_iter().collect();
        // A few images at a time: decoded in parallel, then every crop of them encoded in
        // parallel (PNG encoding dominates), the files written in order.
        use rayon::prelude::*;
        for (done, chunk) in wanted.chunks(8).enumerate() {
            let decoded: Vec<Image> = chunk
                .par_iter()
                .map(|(image, _)| Image::open(images.join(image)))
                .collect::<Result<_>>()?;
            let jobs: Vec<(&Image, &String, Region)> = chunk
                .iter()
                .zip(&decoded)
                .flat_map(|((_, cuts), picture)| cuts.iter().map(move |(n, r)| (picture, n, *r)))
                .collect();
            let encoded: Vec<(String, Vec<u8>)> = jobs
                .par_iter()
                .map(|(picture, name, region)| {
                    Ok((
                        (*name).clone(),
                        picture.crop(*region).to_picture().png_bytes()?,
                    ))
                })
                .collect::<Result<_>>()?;
            for (name, bytes) in encoded {
                sink.put(&name, &bytes)?;
            }
            progress.set(((done + 1) * 8).min(wanted.len()) as u64);
        }
        progress.finish();
    }
    let json = serde_json::to_string_pretty(index).expect("the index encodes");
    sink.put("index.json", json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(image: &str, score: f32) -> Entry {
        Entry {
            image: image.into(),
            score,
            x: 0,
            y: 0,
            region: Region {
                x: 0,
                y: 0,
                width: 1,
                height: 1,
            },
        }
    }

    #[test]
    fn rankings_do_not_depend_on_the_order_seen() {
        let entries = [
            e("b", 2.0),
            e("a", 2.0),
            e("c", 5.0),
            e("d", -1.0),
            e("e", 2.0),
        ];
        let mut one = Vec::new();
        let mut two = Vec::new();
        for x in &entries {
            push(&mut one, x.clone(), 3, better);
        }
        for x in entries.iter().rev() {
            push(&mut two, x.clone(), 3, better);
        }
        assert_eq!(one, two);
        let names: Vec<&str> = one.iter().map(|e| e.image.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"], "ties broken by path");
        let mut low = Vec::new();
        for x in &entries {
            push(&mut low, x.clone(), 2, worse);
        }
        let names: Vec<&str> = low.iter().map(|e| e.image.as_str()).collect();
        assert_eq!(names, ["d", "a"]);
    }

    #[test]
    fn shards_parse_and_come_from_the_scheduler() {
        assert_eq!(
            "3/8".parse::<Shard>().unwrap(),
            Shard { index: 3, count: 8 }
        );
        for bad in ["8/8", "1/0", "x", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let k8s = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "2".to_string());
        assert_eq!(
            Shard::from_env(&k8s, Some(4)).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        assert!(Shard::from_env(&k8s, None).is_err(), "k8s needs --shards");
        assert_eq!(Shard::from_env(&|_| None, None).unwrap(), None);
    }
}
