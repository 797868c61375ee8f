//! Grad-CAM++ (Chattopadhyay et al., 2018): positive gradients weighted per position by the
//! closed-form α of the paper's equation 19.

use super::{CamContext, CamMethod};
use crate::error::Result;

/// Grad-CAM++ as pytorch-grad-cam's `GradCAMPlusPlus`:
/// `α = g² / (2g² + (Σ_{h,w} A_k)·g³ + 1e-6)` (0 where `g = 0`), `w_k = Σ_{h,w} relu(g)·α`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GradCamPlusPlus;

impl CamMethod for GradCamPlusPlus {
    fn name(&self) -> &'static str {
        "gradcam++"
    }

    fn weights(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        ctx.require_grads(self.name())?;
        Ok((0..ctx.channels)
            .map(|k| {
                let a = ctx.activation(k);
                let g = ctx.grad(k).expect("gradients checked above");
                let sum_a: f64 = a.iter().map(|&v| v as f64).sum();
                let w: f64 = g
                    .iter()
                    .filter(|&&gv| gv != 0.0)
                    .map(|&gv| {
                        let g = gv as f64;
                        let g2 = g * g;
                        let alpha = g2 / (2.0 * g2 + sum_a * g2 * g + 1e-6);
                        g.max(0.0) * alpha
                    })
                    .sum();
                w as f32
            })
            .collect())
    }
}
