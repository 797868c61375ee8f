//! Grad-CAM (Selvaraju et al., 2017): channel weights are the spatial mean of the gradient.

use super::{CamContext, CamMethod};
use crate::error::Result;

/// Grad-CAM: `w_k = mean_{h,w} dScore/dA_k`, map `relu(Σ_k w_k A_k)` (pytorch-grad-cam's
/// `GradCAM`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GradCam;

impl CamMethod for GradCam {
    fn name(&self) -> &'static str {
        "gradcam"
    }

    fn weights(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let g = ctx.require_grads(self.name())?;
        let p = ctx.plane();
        Ok(g.chunks(p)
            .map(|c| (c.iter().map(|&v| v as f64).sum::<f64>() / p as f64) as f32)
            .collect())
    }
}
