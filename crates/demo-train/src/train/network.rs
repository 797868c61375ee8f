//! The inference network: plain convolutions with biases, exactly what is exported to ONNX.

use rayon::prelude::*;

use super::kernels::{dot, im2col, matmul_acc, maxpool2, Mat};
use super::{argmax, softmax, Architecture};
use convscope_demo::scene::{derive_seed, SplitMix64};

/// The CNN's inference weights (batch normalisation folded into the convolutions), all in one
/// flat vector: for each conv its weight `[out, in, 3, 3]` then its bias `[out]`, then the
/// classifier weight `[classes, features]` and bias `[classes]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    arch: Architecture,
    params: Vec<f32>,
}

/// Offsets of a conv's weight and bias in the flat vector.
fn conv_offsets(arch: &Architecture, l: usize) -> (usize, usize) {
    let mut at = 0;
    for i in 0..l {
        at += arch.channels[i + 1] * (arch.channels[i] * 9 + 1);
    }
    (at, at + arch.channels[l + 1] * arch.channels[l] * 9)
}

/// Number of inference parameters of `arch`.
pub(crate) fn parameter_count(arch: &Architecture) -> usize {
    let (_, last_bias) = conv_offsets(arch, arch.convs() - 1);
    last_bias + arch.features() + arch.classes * (arch.features() + 1)
}

impl Network {
    /// A randomly initialised network (He-normal conv weights, LeCun-normal classifier,
    /// zero biases) from `seed`: for tests and examples of the export.
    pub fn new(arch: Architecture, seed: u64) -> Network {
        let mut params = vec![0.0; parameter_count(&arch)];
        let mut rng = SplitMix64::new(derive_seed(seed, 0x1417_1A11));
        for l in 0..arch.convs() {
            let std = (2.0 / (arch.channels[l] * 9) as f32).sqrt();
            let (w, b) = conv_offsets(&arch, l);
            params[w..b]
                .iter_mut()
                .for_each(|p| *p = rng.normal() * std);
        }
        let (fc_w, fc_b) = (
            params.len() - arch.classes * (arch.features() + 1),
            params.len() - arch.classes,
        );
        let std = (1.0 / arch.features() as f32).sqrt();
        params[fc_w..fc_b]
            .iter_mut()
            .for_each(|p| *p = rng.normal() * std);
        Network { arch, params }
    }

    /// A network from its parts: per conv `(weight, bias)`, then the classifier's.
    ///
    /// Panics when a length does not match `arch`.
    pub fn from_parts(
        arch: Architecture,
        convs: &[(Vec<f32>, Vec<f32>)],
        classifier: (&[f32], &[f32]),
    ) -> Network {
        assert_eq!(convs.len(), arch.convs(), "one (weight, bias) per conv");
        let mut params = Vec::with_capacity(parameter_count(&arch));
        for (l, (w, b)) in convs.iter().enumerate() {
            assert_eq!(
                w.len(),
                arch.channels[l + 1] * arch.channels[l] * 9,
                "conv{} weight",
                l + 1
            );
            assert_eq!(b.len(), arch.channels[l + 1], "conv{} bias", l + 1);
            params.extend_from_slice(w);
            params.extend_from_slice(b);
        }
        assert_eq!(
            classifier.0.len(),
            arch.classes * arch.features(),
            "classifier weight"
        );
        assert_eq!(classifier.1.len(), arch.classes, "classifier bias");
        params.extend_from_slice(classifier.0);
        params.extend_from_slice(classifier.1);
        Network { arch, params }
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// All parameters, flat.
    pub fn parameters(&self) -> &[f32] {
        &self.params
    }

    /// Weight of conv `l` (0-based), `[out, in, 3, 3]` row-major.
    pub fn conv_weight(&self, l: usize) -> &[f32] {
        let (w, b) = conv_offsets(&self.arch, l);
        &self.params[w..b]
    }

    /// Bias of conv `l` (0-based), `[out]`.
    pub fn conv_bias(&self, l: usize) -> &[f32] {
        let (_, b) = conv_offsets(&self.arch, l);
        &self.params[b..b + self.arch.channels[l + 1]]
    }

    /// Classifier weight, `[classes, features]` row-major (ONNX `Gemm` with `transB = 1`).
    pub fn classifier_weight(&self) -> &[f32] {
        let n = self.params.len();
        &self.params[n - self.arch.classes * (self.arch.features() + 1)..n - self.arch.classes]
    }

    /// Classifier bias, `[classes]`.
    pub fn classifier_bias(&self) -> &[f32] {
        &self.params[self.params.len() - self.arch.classes..]
    }

    /// Logits (pre-softmax scores) for one planar `3×h×w` image.
    pub fn logits(&self, image: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (act, fh, fw) = self.last_conv_output(image, h, w);
        let hw = (fh * fw) as f32;
        let features: Vec<f32> = act
            .chunks_exact(fh * fw)
            .map(|c| c.iter().sum::<f32>() / hw)
            .collect();
        let f = self.arch.features();
        let (cw, cb) = (self.classifier_weight(), self.classifier_bias());
        (0..self.arch.classes)
            .map(|k| cb[k] + dot(&cw[k * f..(k + 1) * f], &features))
            .collect()
    }

    /// Class probabilities for one planar `3×h×w` image.
    pub fn probabilities(&self, image: &[f32], h: usize, w: usize) -> Vec<f32> {
        softmax(&self.logits(image, h, w))
    }

    /// The activated output of the last conv (the Grad-CAM layer), `[features, h/8, w/8]`
    /// flattened, with its spatial size.
    pub fn last_conv_output(&self, image: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
        let a = &self.arch;
        assert_eq!(image.len(), a.channels[0] * h * w, "image size");
        let mut x = image.to_vec();
        let (mut h, mut w) = (h, w);
        for l in 0..a.convs() {
            let (cin, cout) = (a.channels[l], a.channels[l + 1]);
            let hw = h * w;
            let mut cols = vec![0.0; cin * 9 * hw];
            im2col(&x, cin, h, w, &mut cols);
            let mut out = vec![0.0; cout * hw];
            for (row, &b) in out.chunks_exact_mut(hw).zip(self.conv_bias(l)) {
                row.fill(b);
            }
            matmul_acc(
                &mut out,
                Mat::rm(cout, hw),
                self.conv_weight(l),
                Mat::rm(cout, cin * 9),
                &cols,
                Mat::rm(cin * 9, hw),
            );
            out.iter_mut().for_each(|v| *v = v.max(0.0));
            if l + 1 == a.convs() {
                return (out, h, w);
            }
            let (pooled, _, ph, pw) = maxpool2(&out, cout, h, w);
            (x, h, w) = (pooled, ph, pw);
        }
        unreachable!("the loop returns at the last conv")
    }

    /// Predicted class of each image of a batch (planar `3×h×w` images back to back),
    /// computed in parallel.
    pub fn predict(&self, images: &[f32], h: usize, w: usize) -> Vec<usize> {
        images
            .par_chunks(self.arch.channels[0] * h * w)
            .map(|x| argmax(&self.logits(x, h, w)))
            .collect()
    }
}
