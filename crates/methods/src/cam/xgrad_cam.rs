//! XGrad-CAM (Fu et al., 2020): gradients weighted by the normalised activations.

use super::{CamContext, CamMethod};
use crate::error::Result;

/// XGrad-CAM as pytorch-grad-cam's `XGradCAM`: `w_k = Σ_{h,w} g·A_k / (Σ_{h,w} A_k + 1e-7)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct XGradCam;

impl CamMethod for XGradCam {
    fn name(&self) -> &'static str {
        "xgradcam"
    }

    fn weights(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        ctx.require_grads(self.name())?;
        Ok((0..ctx.channels)
            .map(|k| {
                let a = ctx.activation(k);
                let g = ctx.grad(k).expect("gradients checked above");
                let sum_a: f64 = a.iter().map(|&v| v as f64).sum();
                let ga: f64 = a.iter().zip(g).map(|(&a, &g)| a as f64 * g as f64).sum();
                (ga / (sum_a + 1e-7)) as f32
            })
            .collect())
    }
}
