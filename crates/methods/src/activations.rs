//! Intermediate activations: every channel of the selected layers for one input, with the
//! statistics behind the walk-through's "sparsity increases with depth".

use convscope_engine::{Model, Tensor};
use convscope_image::channel::sum_f64;

use crate::error::{Error, Result};
use crate::select::Selected;
use crate::tokens::{map_layout, MapLayout, TokenConfig};

/// Summary numbers of one layer's output for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStats {
    /// Mean of all values.
    pub mean: f64,
    /// Standard deviation of all values.
    pub std: f64,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Fraction of values that are exactly zero.
    pub zero_fraction: f64,
    /// Channels whose values are all zero (the walk-through's "blank" filters).
    pub blank_channels: usize,
    /// Number of channels.
    pub channels: usize,
}

/// One layer's activations.
#[derive(Clone, Debug)]
pub struct LayerActivation {
    /// What was selected.
    pub selected: Selected,
    /// ONNX name of the value.
    pub value_name: String,
    /// The value for the (single) input image, batch axis included; a token layer's value
    /// read as `[1, C, H, W]` maps by [`LayerActivation::layout`].
    pub values: Tensor,
    /// How `values` was formed from the layer's value ([`MapLayout::Nchw`]: as it is).
    pub layout: MapLayout,
    /// Statistics over the first image.
    pub stats: LayerStats,
}

impl LayerActivation {
    /// The activation of `selected` from its value in a pass of `input`: a token sequence or
    /// a channels-last value is read as NCHW maps ([`crate::tokens`]), statistics are taken.
    pub fn from_value(
        model: &Model,
        input: &Tensor,
        selected: Selected,
        value: Tensor,
        tokens: &TokenConfig,
    ) -> LayerActivation {
        let input_hw = model.input_spec().spatial(input.shape());
        let layout = match map_layout(value.shape(), input_hw, tokens) {
            Some(l) if value.shape().first() == Some(&1) => l,
            _ => MapLayout::Nchw,
        };
        let values = match layout {
            MapLayout::Nchw => value,
            _ => {
                let (c, h, w) = layout.dims(value.shape());
                let maps = layout.to_chw(value.shape(), value.data());
                Tensor::new(vec![1, c, h, w], maps).expect("c·h·w maps")
            }
        };
        LayerActivation {
            value_name: model.value_name(selected.value).to_string(),
            stats: layer_stats(&values),
            values,
            layout,
            selected,
        }
    }

    /// `(channels, height, width)` when the value is a spatial NCHW feature map.
    pub fn spatial(&self) -> Option<(usize, usize, usize)> {
        match *self.values.shape() {
            [_, c, h, w] if h > 1 || w > 1 => Some((c, h, w)),
            _ => None,
        }
    }

    /// Channel `k` of the first image of a spatial map.
    pub fn channel(&self, k: usize) -> Option<&[f32]> {
        let (c, h, w) = self.spatial()?;
        (k < c).then(|| &self.values.data()[k * h * w..(k + 1) * h * w])
    }
}

/// Statistics of the first item of `t` (channels on axis 1).
pub fn layer_stats(t: &Tensor) -> LayerStats {
    let s = t.shape();
    let n = s.first().copied().unwrap_or(1).max(1);
    let item = &t.data()[..t.len() / n];
    let channels = s.get(1).copied().unwrap_or(1).max(1);
    let plane = item.len() / channels;
    let count = item.len().max(1) as f64;
    // Lane sums (`sum_f64`) and one sweep for zeros, min and max: a viewer's click reads a
    // layer's statistics, and one running `f64` sum per pass over 188k values was a
    // third of that click's time.
    let mean = sum_f64(item, |v| v as f64) / count;
    let var = sum_f64(item, |v| (v as f64 - mean).powi(2)) / count;
    // Zeros, min and max in eight lanes too (min and max skip NaN in any order).
    let mut zeros = [0usize; 8];
    let mut min = [f32::INFINITY; 8];
    let mut max = [f32::NEG_INFINITY; 8];
    let mut chunks = item.chunks_exact(8);
    for c in &mut chunks {
        for (j, &v) in c.iter().enumerate() {
            zeros[j] += usize::from(v == 0.0);
            min[j] = min[j].min(v);
            max[j] = max[j].max(v);
        }
    }
    for &v in chunks.remainder() {
        zeros[0] += usize::from(v == 0.0);
        min[0] = min[0].min(v);
        max[0] = max[0].max(v);
    }
    let zeros: usize = zeros.iter().sum();
    let min = min.iter().copied().fold(f32::INFINITY, f32::min);
    let max = max.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let blank = if plane == 0 {
        0
    } else {
        item.chunks(plane)
            .filter(|c| c.iter().all(|&v| v == 0.0))
            .count()
    };
    LayerStats {
        mean,
        std: var.sqrt(),
        min,
        max,
        zero_fraction: zeros as f64 / count,
        blank_channels: blank,
        channels,
    }
}

/// Ops whose layers make spatial feature maps (the default selection).
const SPATIAL_HEADS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "AveragePool",
    "BatchNormalization",
    "Add",
    "Mul",
    "Concat",
    "Resize",
    "Relu",
    "Clip",
    "Upsample",
    "Pad",
    "Sub",
    "Div",
    "LayerNormalization",
];

/// Every layer that produces a spatial feature map (height or width > 1), or a token sequence
/// that reads as one ([`crate::tokens`]), for `input`.
pub fn default_selection(model: &Model, input: &Tensor) -> Result<Vec<Selected>> {
    let candidates: Vec<Selected> = model
        .layers()
        .iter()
        .filter(|l| SPATIAL_HEADS.contains(&l.ops.split('+').next().unwrap_or("")))
        .map(|l| Selected {
            label: l.name.clone(),
            value: l.value,
            layer: Some(l.clone()),
        })
        .collect();
    if candidates.is_empty() {
        return Err(Error::Layer(
            "the model has no layer with a spatial feature map".into(),
        ));
    }
    let ids: Vec<_> = candidates.iter().map(|s| s.value).collect();
    let values = model.run(input, &ids)?;
    let input_hw = model.input_spec().spatial(input.shape());
    Ok(candidates
        .into_iter()
        .zip(values)
        .filter(|(_, v)| {
            v.is_float() && map_layout(v.shape(), input_hw, &TokenConfig::default()).is_some()
        })
        .map(|(s, _)| s)
        .collect())
}

/// Runs the model once up to the deepest selected value and returns each value with statistics
/// (token layers read as maps by the default rule).
pub fn compute_activations(
    model: &Model,
    input: &Tensor,
    selection: &[Selected],
) -> Result<Vec<LayerActivation>> {
    compute_activations_with(model, input, selection, &TokenConfig::default())
}

/// [`compute_activations`] with token layers read by `tokens`.
pub fn compute_activations_with(
    model: &Model,
    input: &Tensor,
    selection: &[Selected],
    tokens: &TokenConfig,
) -> Result<Vec<LayerActivation>> {
    let ids: Vec<_> = selection.iter().map(|s| s.value).collect();
    let values = model.run_float(input, &ids)?;
    Ok(selection
        .iter()
        .zip(values)
        .map(|(s, values)| LayerActivation::from_value(model, input, s.clone(), values, tokens))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane-parallel statistics equal straightforward running ones, for lengths that
    /// do and do not fill the lanes, with zeros and a NaN (which min and max skip).
    #[test]
    fn stats_equal_running_statistics() {
        for n in [1usize, 7, 8, 13, 800, 1003] {
            let data: Vec<f32> = (0..n)
                .map(|i| match i % 7 {
                    0 => 0.0,
                    3 if i == 3 => f32::NAN,
                    k => (k as f32 - 3.3) * (i as f32 * 0.37).sin() * 5.0,
                })
                .collect();
            let t = Tensor::new(vec![1, 1, 1, n], data.clone()).unwrap();
            let s = layer_stats(&t);
            let finite: Vec<f32> = data.iter().copied().filter(|v| !v.is_nan()).collect();
            let min = finite.iter().copied().fold(f32::INFINITY, f32::min);
            let max = finite.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!((s.min, s.max), (min, max), "n = {n}");
            let zeros = data.iter().filter(|&&v| v == 0.0).count();
            assert_eq!(s.zero_fraction, zeros as f64 / n as f64);
            if n > 3 {
                assert!(s.mean.is_nan(), "a NaN makes the mean NaN, as before");
            } else {
                let mean = data.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
                assert!((s.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0));
                assert!((s.std - var.sqrt()).abs() <= 1e-12 * var.sqrt().max(1.0));
            }
        }
        let data: Vec<f32> = (0..1003)
            .map(|i| (i as f32 * 0.11).cos() * 2.0 - 0.5)
            .collect();
        let s = layer_stats(&Tensor::new(vec![1, 1, 1, 1003], data.clone()).unwrap());
        let mean = data.iter().map(|&v| v as f64).sum::<f64>() / 1003.0;
        let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 1003.0;
        assert!((s.mean - mean).abs() <= 1e-12);
        assert!((s.std - var.sqrt()).abs() <= 1e-12);
    }

    #[test]
    fn stats_count_blank_channels() {
        let t = Tensor::new(vec![1, 3, 1, 2], vec![0.0, 0.0, 1.0, 3.0, 0.0, 0.0]).unwrap();
        let s = layer_stats(&t);
        assert_eq!(s.blank_channels, 2);
        assert!((s.zero_fraction - 4.0 / 6.0).abs() < 1e-12);
        assert!((s.mean - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.max, 3.0);
    }
}
