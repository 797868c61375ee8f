//! Score-CAM (Wang et al., 2020): each channel, upsampled and scaled to `0..1`, masks the
//! input; the channel's weight comes from the score of the masked image. No gradients.

use super::{CamContext, CamMethod};
use crate::error::Result;

/// Score-CAM as pytorch-grad-cam's `ScoreCAM`.
///
/// For each channel `k`: upsample `A_k` to the input size (bilinear with
/// `align_corners = True`, as `torch.nn.UpsamplingBilinear2d`), scale it to `0..1`
/// (`(u − min) / (max − min + 1e-8)`), multiply every input channel by it and read the target
/// score `s_k` of the masked image (forward passes of [`CamContext::batch_size`] images).
/// The weights are the softmax of the scores over the channels, `w = softmax(s)`, and the map
/// `relu(Σ_k w_k A_k)`.
///
/// pytorch-grad-cam takes the softmax across channels of the target's score (the model output,
/// a logit for its classifiers), not the class probability of the original paper; this follows
/// pytorch-grad-cam, with the pre-softmax logit as the score also for models that end in a
/// Softmax. One forward pass per channel (1280 for EfficientNet's head), shared by all the
/// targets of one [`super::compute_cams`] call.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScoreCam;

impl CamMethod for ScoreCam {
    fn name(&self) -> &'static str {
        "scorecam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let spec = ctx.model.input_spec();
        let (ih, iw) = spec.spatial(ctx.input.shape());
        let nhwc = spec.layout == convscope_engine::Layout::Nhwc;
        let x = ctx.input.data();
        let pixels = ih * iw;
        let ch = x.len() / pixels.max(1);
        let fill = |k: usize, item: &mut [f32]| {
            let mut mask = upsample_align_corners(ctx.activation(k), ctx.height, ctx.width, ih, iw);
            let (lo, hi) = mask
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            mask.iter_mut()
                .for_each(|v| *v = (*v - lo) / (hi - lo + 1e-8));
            for c in 0..ch {
                for (i, &m) in mask.iter().enumerate() {
                    let j = if nhwc { i * ch + c } else { c * pixels + i };
                    item[j] = x[j] * m;
                }
            }
        };
        let scores = ctx.scores_for_inputs("scorecam-masks", ctx.channels, &fill)?;
        Ok(super::predict::softmax(&scores))
    }
}

/// Bilinear resize of an `h × w` map with `align_corners = True` (source coordinate
/// `i · (in − 1) / (out − 1)`), as `torch.nn.UpsamplingBilinear2d`.
pub(crate) fn upsample_align_corners(
    map: &[f32],
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|i| {
                let src = if n_out > 1 {
                    i as f64 * (n_in - 1) as f64 / (n_out - 1) as f64
                } else {
                    0.0
                };
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, (src - i0 as f64) as f32)
            })
            .collect()
    };
    let (ys, xs) = (taps(h, oh), taps(w, ow));
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bot = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torch.nn.UpsamplingBilinear2d(size=(3, 4))(torch.tensor([[[[0., 10.], [20., 30.]]]]))
    /// = [[0, 3.3333, 6.6667, 10], [10, 13.333, 16.667, 20], [20, 23.333, 26.667, 30]].
    #[test]
    fn align_corners_matches_torch() {
        let out = upsample_align_corners(&[0.0, 10.0, 20.0, 30.0], 2, 2, 3, 4);
        let want = [
            0.0, 3.3333333, 6.6666665, 10.0, 10.0, 13.333333, 16.666666, 20.0, 20.0, 23.333334,
            26.666666, 30.0,
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{out:?}");
        }
        assert_eq!(upsample_align_corners(&[5.0], 1, 1, 2, 2), vec![5.0; 4]);
    }
}
