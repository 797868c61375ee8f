//! Ablation-CAM (Desai and Ramaswamy, 2020): a channel's weight is how much the score drops
//! when the channel is removed. No gradients.

use super::{CamContext, CamMethod};
use crate::error::Result;

/// Ablation-CAM as pytorch-grad-cam's `AblationCAM` (all channels ablated).
///
/// For each channel `k`, `A_k` is replaced by 0 (or, when the layer's smallest activation is
/// not 0, by that minimum − 1e7, as pytorch-grad-cam's `AblationLayer`) and only the part of
/// the graph after the layer is rerun ([`convscope_engine::Model::run_from`], in batches of
/// [`CamContext::batch_size`]; once for all the targets of a call), giving `s_k`. The weight
/// is the relative drop `w_k = (s − s_k) / s`, and the map `relu(Σ_k w_k A_k)`. A score of
/// exactly 0 gives the absolute drop `s − s_k` instead of a division by zero.
///
/// The layer must cut the graph: every path from the input to the class scores goes through
/// it (true of the last feature map of VGG or EfficientNet; not inside a residual block).
#[derive(Clone, Copy, Debug, Default)]
pub struct AblationCam;

impl CamMethod for AblationCam {
    fn name(&self) -> &'static str {
        "ablationcam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let min = ctx
            .activations
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min);
        let value = if min == 0.0 { 0.0 } else { min - 1e7 };
        let p = ctx.plane();
        let fill = |k: usize, item: &mut [f32]| {
            item.copy_from_slice(ctx.activations);
            item[k * p..(k + 1) * p].fill(value);
        };
        let scores = ctx.scores_for_activations("ablationcam-channels", ctx.channels, &fill)?;
        let s = ctx.score;
        let denom = if s == 0.0 { 1.0 } else { s };
        Ok(scores.iter().map(|&sk| (s - sk) / denom).collect())
    }
}
