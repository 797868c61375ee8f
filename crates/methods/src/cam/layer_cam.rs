//! LayerCAM (Jiang et al., 2021): every position weighted by its own positive gradient.

use super::{CamContext, CamMethod};
use crate::error::{Error, Result};

/// LayerCAM as pytorch-grad-cam's `LayerCAM`: map `relu(Σ_k relu(g_k) ⊙ A_k)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerCam;

impl CamMethod for LayerCam {
    fn name(&self) -> &'static str {
        "layercam"
    }

    /// LayerCAM weights every position separately: there is no weight per channel (error).
    fn weights(&self, _ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        Err(Error::Config(
            "layercam weights every position separately; it has no per-channel weights".into(),
        ))
    }

    fn cam_image(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let g = ctx.require_grads(self.name())?;
        Ok(elementwise_sum(ctx.activations, g, ctx.plane(), |g| {
            g.max(0.0)
        }))
    }
}

/// `relu(Σ_k f(g_k) ⊙ A_k)` over channels of `plane` elements (sums in f64).
pub(super) fn elementwise_sum(
    a: &[f32],
    g: &[f32],
    plane: usize,
    f: impl Fn(f64) -> f64,
) -> Vec<f32> {
    let mut acc = vec![0.0f64; plane];
    for (ac, gc) in a.chunks(plane).zip(g.chunks(plane)) {
        for ((s, &av), &gv) in acc.iter_mut().zip(ac).zip(gc) {
            *s += f(gv as f64) * av as f64;
        }
    }
    acc.into_iter().map(|v| v.max(0.0) as f32).collect()
}
