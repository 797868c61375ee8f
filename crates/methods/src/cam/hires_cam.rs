//! HiResCAM (Draelos and Carin, 2020): the element-wise product of gradient and activation,
//! summed over channels; for a global-average-pooling head it equals Grad-CAM.

use super::layer_cam::elementwise_sum;
use super::{CamContext, CamMethod};
use crate::error::{Error, Result};

/// HiResCAM as pytorch-grad-cam's `HiResCAM`: map `relu(Σ_k g_k ⊙ A_k)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HiResCam;

impl CamMethod for HiResCam {
    fn name(&self) -> &'static str {
        "hirescam"
    }

    /// HiResCAM weights every position separately: there is no weight per channel (error).
    fn weights(&self, _ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        Err(Error::Config(
            "hirescam weights every position separately; it has no per-channel weights".into(),
        ))
    }

    fn cam_image(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let g = ctx.require_grads(self.name())?;
        Ok(elementwise_sum(ctx.activations, g, ctx.plane(), |g| g))
    }
}
