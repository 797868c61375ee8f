//! Class activation maps as finished results: heatmaps, overlays, `.npy` and the `index.json`
//! of the `cam` command.

use convscope_image::{heatmap_rgb, superimpose, upsample_bilinear, Colormap};
use convscope_methods::cam::{Cam, CamRun};
use serde::Serialize;

pub use convscope_methods::cam::{method_names, CamConfig};

use crate::error::{Error, Result};
use crate::input::Input;
use crate::labels::{name_of, Labels};
use crate::model::Model;
use crate::output::Sink;
use crate::picture::{Image, Picture, Region};
use crate::size::Size;
use crate::text::file_stem;

/// How a map is laid over an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayStyle {
    /// Heatmap weight: `heatmap·alpha + image`, then rescaled to `0..255` (the walk-through's
    /// `superimposed_img`).
    pub alpha: f32,
    /// Heatmap colours.
    pub colormap: Colormap,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        OverlayStyle {
            alpha: 0.4,
            colormap: Colormap::Jet,
        }
    }
}

impl OverlayStyle {
    /// Checks `alpha` is a finite number ≥ 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Error::Config(format!(
                "--alpha must be a finite number >= 0, got {}",
                self.alpha
            )));
        }
        Ok(())
    }
}

/// One class activation map with what is needed to draw it.
///
/// ```
/// use convscope::prelude::*;
///
/// let model = Model::demo()?;
/// let scene = convscope::demo_scene().image;
/// let cam = model.gradcam(&scene, Class(0))?;
/// assert_eq!(cam.class(), Some(0));
/// let heat = cam.heatmap(Colormap::Jet)?;
/// assert_eq!(heat.size(), scene.size());
/// let norm = cam.normalized(Size::new(10, 5));
/// assert!(norm.iter().all(|v| (0.0..=1.0).contains(v)));
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct CamMap {
    cam: Cam,
    label: String,
    probability: Option<f32>,
    method: &'static str,
    layer: String,
    display: Image,
    original: Image,
    crop: Option<Region>,
}

impl CamMap {
    /// The map at the layer's resolution (after ReLU, ≥ 0).
    pub fn raw(&self) -> &[f32] {
        &self.cam.raw
    }

    /// The layer's feature-map size.
    pub fn size(&self) -> Size {
        Size::new(self.cam.width, self.cam.height)
    }

    /// The size of the model input the map explains (what [`CamMap::heatmap`] is drawn at).
    pub fn input_size(&self) -> Size {
        self.display.size()
    }

    /// The target's name (the class index for a class).
    pub fn target(&self) -> &str {
        &self.cam.target
    }

    /// The class, when the target is one class.
    pub fn class(&self) -> Option<usize> {
        self.cam.class
    }

    /// The class label (or the target's name).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The class probability, when the target is one class of a classifier.
    pub fn probability(&self) -> Option<f32> {
        self.probability
    }

    /// The target's score (the pre-softmax logit for a class, when available).
    pub fn score(&self) -> f32 {
        self.cam.score
    }

    /// True when the map is zero everywhere: no positive evidence at this layer.
    pub fn all_zero(&self) -> bool {
        self.cam.all_zero
    }

    /// `(row, col)` of the strongest evidence at the layer's resolution.
    pub fn peak(&self) -> (usize, usize) {
        self.cam.peak()
    }

    /// The method's registry name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The layer the map was computed at.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// The underlying map.
    pub fn cam(&self) -> &Cam {
        &self.cam
    }

    /// The map scaled to `0..=1` at `size`, exactly as pytorch-grad-cam's output.
    pub fn normalized(&self, size: Size) -> Vec<f32> {
        self.cam.normalized(size.height, size.width)
    }

    /// The heatmap at the model's input size.
    pub fn heatmap(&self, colormap: Colormap) -> Result<Picture> {
        let Size { width, height } = self.display.size();
        let norm = self.cam.normalized(height, width);
        Ok(Picture::new(heatmap_rgb(&norm, height, width, colormap)?))
    }

    /// The map laid over `image` with the default style (jet, alpha 0.4).
    ///
    /// Pass the image the map was computed for: the original (with a centre crop, the map
    /// covers the cropped part of it, and that part is returned) or
    /// [`Input::display`], the image as the model saw it.
    pub fn overlay(&self, image: &Image) -> Result<Picture> {
        self.overlay_with(image, &OverlayStyle::default())
    }

    /// [`CamMap::overlay`] with a chosen style.
    pub fn overlay_with(&self, image: &Image, style: &OverlayStyle) -> Result<Picture> {
        style.validate()?;
        let cropped;
        let image = match self.crop {
            Some(region) if image.size() == self.original.size() => {
                cropped = image.crop(region);
                &cropped
            }
            _ => image,
        };
        let Size { width, height } = image.size();
        let (h, w) = (self.cam.height, self.cam.width);
        let up = upsample_bilinear(&self.cam.normalized(h, w), h, w, height, width)?;
        let heat = heatmap_rgb(&up, height, width, style.colormap)?;
        Ok(Picture::new(superimpose(
            image.pixels(),
            &heat,
            style.alpha,
        )?))
    }

    /// The overlay on the picture the map belongs to: the original image, or with a centre
    /// crop the image as the model saw it.
    pub fn overlay_input(&self, style: &OverlayStyle) -> Result<Picture> {
        let backdrop = if self.crop.is_some() {
            &self.display
        } else {
            &self.original
        };
        self.overlay_with(backdrop, style)
    }

    /// File stem used by the `cam` command: `<method>_<target>_<label>`.
    pub fn file_stem(&self) -> String {
        format!(
            "{}_{}_{}",
            self.method.replace('+', "p"),
            file_stem(self.target()),
            file_stem(&self.label)
        )
    }
}

/// The maps of one [`Model::cam`] call, with the prediction they came with.
#[derive(Clone, Debug)]
pub struct CamSet {
    /// One map per target, in order.
    pub maps: Vec<CamMap>,
    /// The top classes as `(class, label, probability)` (empty without a classifier).
    pub top: Vec<(usize, String, f32)>,
    /// Number of classes (0 without a classifier).
    pub classes: usize,
    /// The method's registry name.
    pub method: &'static str,
    /// The layer's friendly name.
    pub layer: String,
    /// The layer's ONNX value name.
    pub layer_value: String,
    /// Whether the scores are pre-softmax logits.
    pub score_is_logit: bool,
    /// How a token layer was read as a map, in words (e.g. `tokens: class token dropped, 14x14
    /// grid`); `None` for a plain feature map.
    pub map_rule: Option<String>,
    model_source: String,
    input_source: String,
}

impl CamSet {
    pub(crate) fn new(model: &Model, input: &Input, run: CamRun) -> CamSet {
        let labels = model.labels();
        let probs = run.prediction.as_ref().map(|p| p.probs.clone());
        let layer_value = model.engine().value_name(run.layer).to_string();
        let maps = run
            .cams
            .into_iter()
            .map(|cam| CamMap {
                label: match cam.class {
                    Some(c) => name_of(labels, c),
                    None => cam.target.clone(),
                },
                probability: cam
                    .class
                    .and_then(|c| probs.as_ref().and_then(|p| p.get(c).copied())),
                cam,
                method: run.method,
                layer: run.layer_label.clone(),
                display: input.display().clone(),
                original: input.original().clone(),
                crop: input.crop(),
            })
            .collect();
        let (top, classes) = match &run.prediction {
            Some(p) => (
                p.top(5.min(p.classes()))
                    .into_iter()
                    .map(|(c, pr)| (c, name_of(labels, c), pr))
                    .collect(),
                p.classes(),
            ),
            None => (Vec::new(), 0),
        };
        CamSet {
            maps,
            top,
            classes,
            method: run.method,
            layer: run.layer_label,
            layer_value,
            score_is_logit: run.classifier.as_ref().is_some_and(|c| c.score_is_logit()),
            map_rule: run.layout.describe(),
            model_source: model.source().to_string(),
            input_source: input.source().to_string(),
        }
    }

    /// Writes what the `cam` command writes: per map `<stem>_heatmap.png` (at the input
    /// size), `<stem>_overlay.png`, with `npy` the raw and normalised maps, and `index.json`.
    pub fn write(&self, sink: &mut dyn Sink, style: &OverlayStyle, npy: bool) -> Result<CamIndex> {
        style.validate()?;
        let mut targets = Vec::with_capacity(self.maps.len());
        for map in &self.maps {
            let stem = map.file_stem();
            let mut files = vec![format!("{stem}_heatmap.png"), format!("{stem}_overlay.png")];
            sink.put(&files[0], &map.heatmap(style.colormap)?.png_bytes()?)?;
            sink.put(&files[1], &map.overlay_input(style)?.png_bytes()?)?;
            if npy {
                let (h, w) = (map.cam.height, map.cam.width);
                files.push(format!("{stem}_raw.npy"));
                sink.put(
                    &files[2],
                    &convscope_image::npy_bytes_f32(&[h, w], &map.cam.raw),
                )?;
                let size = map.display.size();
                files.push(format!("{stem}_normalized.npy"));
                sink.put(
                    &files[3],
                    &convscope_image::npy_bytes_f32(
                        &[size.height, size.width],
                        &map.normalized(size),
                    ),
                )?;
            }
            let peak = map.peak();
            targets.push(CamTargetIndex {
                class: map.class(),
                target: map.target().to_string(),
                label: map.label.clone(),
                score: map.score(),
                probability: map.probability.unwrap_or(0.0),
                all_zero: map.all_zero(),
                peak: [peak.0, peak.1],
                files,
            });
        }
        let first = self.maps.first();
        let index = CamIndex {
            model: self.model_source.clone(),
            input: self.input_source.clone(),
            method: self.method.to_string(),
            layer: self.layer.clone(),
            layer_value: self.layer_value.clone(),
            layer_shape: [
                first.map_or(0, |m| m.cam.height),
                first.map_or(0, |m| m.cam.width),
            ],
            score_is_logit: self.score_is_logit,
            top: self
                .top
                .iter()
                .map(|(c, l, p)| TopIndex {
                    class: *c,
                    label: l.clone(),
                    probability: *p,
                })
                .collect(),
            targets,
        };
        let json = serde_json::to_string_pretty(&index).expect("the index encodes");
        sink.put("index.json", json.as_bytes())?;
        Ok(index)
    }

    /// A warning when the labels do not name every class.
    pub fn label_warning(&self, labels: Option<&Labels>) -> Option<String> {
        match labels {
            Some(l) if self.classes > 0 => l.check_count(self.classes),
            _ => None,
        }
    }
}

/// The `index.json` of the `cam` command.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CamIndex {
    /// The model file.
    pub model: String,
    /// The input file.
    pub input: String,
    /// The method.
    pub method: String,
    /// The layer's friendly name.
    pub layer: String,
    /// The layer's ONNX value name.
    pub layer_value: String,
    /// `[height, width]` of the layer's feature map.
    pub layer_shape: [usize; 2],
    /// Whether scores are pre-softmax logits.
    pub score_is_logit: bool,
    /// The most probable classes.
    pub top: Vec<TopIndex>,
    /// One entry per map.
    pub targets: Vec<CamTargetIndex>,
}

/// One of the top classes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopIndex {
    /// Class index.
    pub class: usize,
    /// Its label.
    pub label: String,
    /// Its probability.
    pub probability: f32,
}

/// One map of a [`CamIndex`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CamTargetIndex {
    /// The class, when the target is one class.
    pub class: Option<usize>,
    /// The target's name.
    pub target: String,
    /// The class label or target name.
    pub label: String,
    /// The target's score.
    pub score: f32,
    /// The class probability (0 for targets that are not one class).
    pub probability: f32,
    /// Whether the map is zero everywhere.
    pub all_zero: bool,
    /// `[row, col]` of the peak at the layer's resolution.
    pub peak: [usize; 2],
    /// The files written.
    pub files: Vec<String>,
}
