//! A from-scratch trainer for the demo CNN: forward and backward passes (weight gradients
//! included), softmax cross-entropy, Adam, the items of a batch processed in parallel with
//! rayon.
//!
//! The exported network, in NCHW, for an input of `3×H×W` with values in `[0, 1]`:
//!
//! ```text
//! conv1 3→16 3×3 pad 1, ReLU, MaxPool 2      H/2
//! conv2 16→32 3×3 pad 1, ReLU, MaxPool 2     H/4
//! conv3 32→32 3×3 pad 1, ReLU, MaxPool 2     H/8
//! conv4 32→64 3×3 pad 1, ReLU                H/8   (the Grad-CAM layer)
//! GlobalAveragePool → Gemm 64→4 → Softmax
//! ```
//!
//! Channel counts come from [`Architecture`]; every conv but the last is followed by a 2×2
//! max-pool. The global average pool makes the model independent of the image size.
//!
//! While training, every convolution is followed by batch normalisation
//! ([`TrainingNetwork`]): without it the network sat at chance level for hundreds of steps.
//! [`TrainingNetwork::fold`] folds the normalisation (with its running statistics) into the
//! convolution weights and biases, which gives the plain [`Network`] that is evaluated and
//! exported: the ONNX graph has no normalisation node.
//!
//! Everything is plain loops over `f32` slices, except the three matrix products of a
//! convolution (forward, weight gradient, input gradient), which use the `gemm` crate's
//! CPU-specific kernels (the engine's dependency too): that makes training several times
//! faster than autovectorised loops. All reductions over a batch run in a fixed order, so
//! training is bit-for-bit reproducible whatever the number of threads.
//!
//! ```
//! use convscope_demo_train::train::{Architecture, Network};
//!
//! let arch = Architecture { channels: vec![3, 4, 4, 4, 8], classes: 4 };
//! let net = Network::new(arch, 1);
//! let image = vec![0.5; 3 * 32 * 32];
//! let p = net.probabilities(&image, 32, 32);
//! assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! ```

use std::time::Instant;

use rayon::prelude::*;

use convscope_demo::scene::{derive_seed, Sample, IMAGE_SIZE};

mod bn;
mod kernels;
mod network;

pub use bn::{BatchResult, TrainingNetwork, BN_EPSILON, BN_MOMENTUM};
pub use network::Network;

/// Channel counts of the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Architecture {
    /// `channels[0]` is the input (3); `channels[l + 1]` is the output of conv `l + 1`. Every
    /// conv but the last is followed by a 2×2 max-pool.
    pub channels: Vec<usize>,
    /// Number of output classes.
    pub classes: usize,
}

impl Default for Architecture {
    /// The demo model: 3→16→32→32→64 channels, 4 classes.
    fn default() -> Self {
        Architecture {
            channels: vec![3, 16, 32, 32, 64],
            classes: 4,
        }
    }
}

impl Architecture {
    /// Number of 3×3 convolutions.
    pub fn convs(&self) -> usize {
        self.channels.len() - 1
    }

    /// Channels of the last conv (the features the classifier reads).
    pub fn features(&self) -> usize {
        *self.channels.last().expect("at least one conv")
    }

    /// Number of parameters of the inference (exported) network.
    pub fn parameter_count(&self) -> usize {
        network::parameter_count(self)
    }

    /// Spatial size of the last conv's output for an input side of `side` pixels.
    pub fn feature_side(&self, side: usize) -> usize {
        (0..self.convs() - 1).fold(side, |s, _| s / 2)
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// The Adam optimiser (Kingma & Ba, 2015) over a flat parameter vector.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Step size.
    pub learning_rate: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub epsilon: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    /// Adam with the usual defaults (β₁ 0.9, β₂ 0.999, ε 1e-8) for `n` parameters.
    pub fn new(n: usize, learning_rate: f32) -> Adam {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One update of `params` along `grads`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(params.len(), self.m.len());
        assert_eq!(grads.len(), self.m.len());
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        let lr = self.learning_rate * c2.sqrt() / c1;
        for i in 0..params.len() {
            let g = grads[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            params[i] -= lr * self.m[i] / (self.v[i].sqrt() + self.epsilon);
        }
    }
}

/// Training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Channel counts.
    pub architecture: Architecture,
    /// Seed of the weight initialisation and of the training scenes.
    pub seed: u64,
    /// Number of epochs.
    pub epochs: usize,
    /// Batches per epoch (every batch is freshly generated).
    pub batches_per_epoch: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Peak Adam learning rate; it decays along a cosine to 5 % of this by the last step.
    pub learning_rate: f32,
    /// Number of held-out images evaluated after each epoch.
    pub eval_images: usize,
    /// Seed of the held-out scenes (must differ from `seed`).
    pub eval_seed: u64,
}

impl Default for TrainConfig {
    /// The settings the committed demo model was trained with.
    fn default() -> Self {
        TrainConfig {
            architecture: Architecture::default(),
            seed: 20_240_601,
            epochs: 10,
            batches_per_epoch: 80,
            batch_size: 64,
            learning_rate: 3e-3,
            eval_images: 2000,
            eval_seed: 77_000_001,
        }
    }
}

/// Progress after one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f32,
    /// Training accuracy over the epoch (while the weights were changing).
    pub train_accuracy: f32,
    /// Accuracy on the held-out set after the epoch.
    pub heldout_accuracy: f32,
    /// Wall-clock seconds since training started.
    pub seconds: f64,
}

/// A `count`-image batch of 64×64 scenes: planar images back to back (values in `[0, 1]`) and
/// their class indices. Item `i` is `Sample::generate(derive_seed(seed, first + i))`.
pub fn batch(seed: u64, first: u64, count: usize) -> (Vec<f32>, Vec<usize>) {
    let samples: Vec<Sample> = (0..count as u64)
        .into_par_iter()
        .map(|i| Sample::generate(derive_seed(seed, first + i)))
        .collect();
    let mut images = Vec::with_capacity(count * 3 * IMAGE_SIZE * IMAGE_SIZE);
    for s in &samples {
        images.extend(s.image.to_chw_unit());
    }
    (images, samples.iter().map(|s| s.class.index()).collect())
}

/// Accuracy of `net` on `count` scenes of the stream `seed`.
pub fn evaluate(net: &Network, seed: u64, count: usize) -> f32 {
    let mut correct = 0;
    for start in (0..count).step_by(256) {
        let n = 256.min(count - start);
        let (x, y) = batch(seed, start as u64, n);
        let p = net.predict(&x, IMAGE_SIZE, IMAGE_SIZE);
        correct += p.iter().zip(&y).filter(|(a, b)| a == b).count();
    }
    correct as f32 / count as f32
}

/// Trains a network from scratch (with batch normalisation) and returns the folded inference
/// network; `progress` is called after every epoch.
pub fn train(
    cfg: &TrainConfig,
    mut progress: impl FnMut(&EpochStats),
) -> (Network, Vec<EpochStats>) {
    assert_ne!(
        cfg.seed, cfg.eval_seed,
        "held-out scenes must not be training scenes"
    );
    let start = Instant::now();
    let mut net = TrainingNetwork::new(cfg.architecture.clone(), cfg.seed);
    let mut adam = Adam::new(net.parameters().len(), cfg.learning_rate);
    let total_steps = cfg.epochs * cfg.batches_per_epoch;
    let mut history = Vec::new();
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for _ in 0..cfg.batches_per_epoch {
            let progress = step as f32 / total_steps.max(1) as f32;
            let cosine = 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
            adam.learning_rate = cfg.learning_rate * (0.05 + 0.95 * cosine);
            let first = (step * cfg.batch_size) as u64;
            let (x, y) = batch(cfg.seed, first, cfg.batch_size);
            let r = net.loss_and_gradient(&x, &y, IMAGE_SIZE, IMAGE_SIZE);
            adam.step(net.parameters_mut(), &r.gradient);
            net.update_statistics(&r);
            loss += f64::from(r.loss);
            correct += r.correct;
            step += 1;
        }
        let stats = EpochStats {
            epoch,
            loss: (loss / cfg.batches_per_epoch as f64) as f32,
            train_accuracy: correct as f32 / (cfg.batches_per_epoch * cfg.batch_size) as f32,
            heldout_accuracy: evaluate(&net.fold(), cfg.eval_seed, cfg.eval_images),
            seconds: start.elapsed().as_secs_f64(),
        };
        progress(&stats);
        history.push(stats);
    }
    (net.fold(), history)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_architecture_counts() {
        let a = Architecture::default();
        let expected = (3 * 16 * 9 + 16)
            + (16 * 32 * 9 + 32)
            + (32 * 32 * 9 + 32)
            + (32 * 64 * 9 + 64)
            + (64 * 4 + 4);
        assert_eq!(a.parameter_count(), expected);
        assert_eq!(
            a.parameter_count(),
            Network::new(a.clone(), 0).parameters().len()
        );
        assert_eq!((a.convs(), a.features(), a.feature_side(64)), (4, 64, 8));
    }

    #[test]
    fn batches_are_deterministic_and_labelled() {
        let (x, y) = batch(3, 10, 5);
        assert_eq!(x.len(), 5 * 3 * IMAGE_SIZE * IMAGE_SIZE);
        let s = Sample::generate(derive_seed(3, 12));
        assert_eq!(y[2], s.class.index());
        let plane = 3 * IMAGE_SIZE * IMAGE_SIZE;
        assert_eq!(x[2 * plane..3 * plane], s.image.to_chw_unit()[..]);
    }

    #[test]
    fn softmax_and_argmax() {
        let p = softmax(&[1000.0, 1000.0, f32::NEG_INFINITY]);
        assert_eq!(p, [0.5, 0.5, 0.0]);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn a_tiny_training_run_completes() {
        let cfg = TrainConfig {
            architecture: Architecture {
                channels: vec![3, 4, 4, 4, 8],
                classes: 4,
            },
            epochs: 2,
            batches_per_epoch: 2,
            batch_size: 8,
            eval_images: 16,
            ..TrainConfig::default()
        };
        let mut seen = Vec::new();
        let (net, history) = train(&cfg, |s| seen.push(s.epoch));
        assert_eq!(seen, [1, 2]);
        assert_eq!(history.len(), 2);
        assert!(history.iter().all(|s| s.loss.is_finite()));
        assert_eq!(net.architecture(), &cfg.architecture);
        // Reproducible.
        let (again, _) = train(&cfg, |_| {});
        assert_eq!(net, again);
    }
}
