//! The training-time network: each convolution is followed by batch normalisation (batch
//! statistics while training, running statistics after), which [`TrainingNetwork::fold`]
//! folds into the convolution's weights and bias for inference and export.
//!
//! Batch normalisation couples the items of a batch, so the passes run layer by layer: the
//! items of a batch are processed in parallel within a layer, and the per-channel statistics
//! are reduced between layers in a fixed order (results do not depend on the thread count).

use rayon::prelude::*;

use super::kernels::{col2im, dot, im2col, matmul_acc, maxpool2, maxpool2_backward, Mat};
use super::{argmax, softmax, Architecture, Network};
use convscope_demo::scene::{derive_seed, SplitMix64};

/// Batch-normalisation epsilon (as in PyTorch).
pub const BN_EPSILON: f32 = 1e-5;

/// Momentum of the running statistics (as in PyTorch).
pub const BN_MOMENTUM: f32 = 0.1;

/// Batch items per parallel task when summing weight gradients.
const GRAD_CHUNK: usize = 4;

/// Where each parameter tensor lives in the flat training parameter vector.
#[derive(Clone, Debug)]
struct Layout {
    conv_w: Vec<usize>,
    gamma: Vec<usize>,
    beta: Vec<usize>,
    fc_w: usize,
    fc_b: usize,
    total: usize,
}

impl Layout {
    fn of(arch: &Architecture) -> Layout {
        assert!(
            arch.channels.len() >= 2,
            "the network needs at least one conv"
        );
        let mut at = 0;
        let (mut conv_w, mut gamma, mut beta) = (Vec::new(), Vec::new(), Vec::new());
        for l in 0..arch.convs() {
            let (cin, cout) = (arch.channels[l], arch.channels[l + 1]);
            conv_w.push(at);
            at += cout * cin * 9;
            gamma.push(at);
            at += cout;
            beta.push(at);
            at += cout;
        }
        let fc_w = at;
        at += arch.classes * arch.features();
        let fc_b = at;
        at += arch.classes;
        Layout {
            conv_w,
            gamma,
            beta,
            fc_w,
            fc_b,
            total: at,
        }
    }
}

/// The network being trained: convolutions without bias, each followed by batch
/// normalisation (scale γ, shift β) and ReLU.
#[derive(Clone, Debug)]
pub struct TrainingNetwork {
    arch: Architecture,
    layout: Layout,
    params: Vec<f32>,
    running_mean: Vec<Vec<f32>>,
    running_var: Vec<Vec<f32>>,
}

/// The outcome of one training pass over a batch.
#[derive(Clone, Debug)]
pub struct BatchResult {
    /// Mean softmax cross-entropy.
    pub loss: f32,
    /// Number of items whose largest logit is the label.
    pub correct: usize,
    /// Gradient of the mean loss with respect to [`TrainingNetwork::parameters`].
    pub gradient: Vec<f32>,
    /// Logits of every item (with batch statistics).
    pub logits: Vec<Vec<f32>>,
    /// Per conv, the batch mean of each channel before normalisation.
    pub batch_mean: Vec<Vec<f32>>,
    /// Per conv, the (biased) batch variance of each channel before normalisation.
    pub batch_var: Vec<Vec<f32>>,
    /// Per conv, the number of values each channel's statistics were taken over.
    pub counts: Vec<usize>,
}

/// Per-item values the backward pass needs.
#[derive(Default)]
struct Item {
    /// im2col matrix of each conv's input.
    cols: Vec<Vec<f32>>,
    /// Normalised pre-activations x̂ of each conv.
    xhat: Vec<Vec<f32>>,
    /// Activated outputs of each conv.
    relu: Vec<Vec<f32>>,
    /// Max-pool source indices of each pooled conv.
    argmax: Vec<Vec<u32>>,
    /// Global-average-pooled features.
    features: Vec<f32>,
}

impl TrainingNetwork {
    /// A freshly initialised network: He-normal conv weights, γ = 1, β = 0, LeCun-normal
    /// classifier weights, zero classifier bias, from a SplitMix64 stream seeded with `seed`.
    pub fn new(arch: Architecture, seed: u64) -> TrainingNetwork {
        let layout = Layout::of(&arch);
        let mut params = vec![0.0; layout.total];
        let mut rng = SplitMix64::new(derive_seed(seed, 0x1417_1A11));
        for l in 0..arch.convs() {
            let std = (2.0 / (arch.channels[l] * 9) as f32).sqrt();
            for p in &mut params[layout.conv_w[l]..layout.gamma[l]] {
                *p = rng.normal() * std;
            }
            params[layout.gamma[l]..layout.beta[l]].fill(1.0);
        }
        let std = (1.0 / arch.features() as f32).sqrt();
        for p in &mut params[layout.fc_w..layout.fc_b] {
            *p = rng.normal() * std;
        }
        let running_mean = arch.channels[1..].iter().map(|&c| vec![0.0; c]).collect();
        let running_var = arch.channels[1..].iter().map(|&c| vec![1.0; c]).collect();
        TrainingNetwork {
            arch,
            layout,
            params,
            running_mean,
            running_var,
        }
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// All trainable parameters, flat: per conv its weight, γ and β; then the classifier's
    /// weight and bias.
    pub fn parameters(&self) -> &[f32] {
        &self.params
    }

    /// All trainable parameters, mutable (what an optimiser updates).
    pub fn parameters_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    fn cout(&self, l: usize) -> usize {
        self.arch.channels[l + 1]
    }

    fn weight(&self, l: usize) -> &[f32] {
        &self.params[self.layout.conv_w[l]..self.layout.gamma[l]]
    }

    fn gamma(&self, l: usize) -> &[f32] {
        &self.params[self.layout.gamma[l]..self.layout.beta[l]]
    }

    fn beta(&self, l: usize) -> &[f32] {
        &self.params[self.layout.beta[l]..self.layout.beta[l] + self.cout(l)]
    }

    /// Moves the running statistics towards a batch's (exponential average with
    /// [`BN_MOMENTUM`]; the variance is the unbiased estimate, as in PyTorch).
    pub fn update_statistics(&mut self, batch: &BatchResult) {
        for l in 0..self.arch.convs() {
            let count = batch.counts[l].max(2);
            let unbias = count as f32 / (count - 1) as f32;
            for c in 0..self.cout(l) {
                let m = &mut self.running_mean[l][c];
                *m += BN_MOMENTUM * (batch.batch_mean[l][c] - *m);
                let v = &mut self.running_var[l][c];
                *v += BN_MOMENTUM * (batch.batch_var[l][c] * unbias - *v);
            }
        }
    }

    /// Sets the running statistics (per conv, per channel).
    pub fn set_statistics(&mut self, mean: Vec<Vec<f32>>, var: Vec<Vec<f32>>) {
        assert_eq!(mean.len(), self.arch.convs());
        assert_eq!(var.len(), self.arch.convs());
        self.running_mean = mean;
        self.running_var = var;
    }

    /// The inference network: each batch normalisation (with the running statistics) folded
    /// into the convolution before it, `W' = W·γ/σ`, `b' = β − μ·γ/σ` with
    /// `σ = √(var + ε)`.
    pub fn fold(&self) -> Network {
        let convs: Vec<(Vec<f32>, Vec<f32>)> = (0..self.arch.convs())
            .map(|l| {
                let k = self.arch.channels[l] * 9;
                let scale: Vec<f64> = (0..self.cout(l))
                    .map(|c| {
                        f64::from(self.gamma(l)[c])
                            / (f64::from(self.running_var[l][c]) + f64::from(BN_EPSILON)).sqrt()
                    })
                    .collect();
                let w = self
                    .weight(l)
                    .chunks_exact(k)
                    .zip(&scale)
                    .flat_map(|(row, &s)| row.iter().map(move |&v| (f64::from(v) * s) as f32))
                    .collect();
                let b = (0..self.cout(l))
                    .map(|c| {
                        (f64::from(self.beta(l)[c]) - f64::from(self.running_mean[l][c]) * scale[c])
                            as f32
                    })
                    .collect();
                (w, b)
            })
            .collect();
        let lay = &self.layout;
        Network::from_parts(
            self.arch.clone(),
            &convs,
            (&self.params[lay.fc_w..lay.fc_b], &self.params[lay.fc_b..]),
        )
    }

    /// Forward and backward pass over a batch in training mode (batch statistics): the mean
    /// softmax cross-entropy, its gradient with respect to every parameter, and the batch
    /// statistics.
    ///
    /// `images` holds `labels.len()` planar `3×h×w` images back to back (`h`, `w` divisible by
    /// 2 for every pooling).
    pub fn loss_and_gradient(
        &self,
        images: &[f32],
        labels: &[usize],
        h: usize,
        w: usize,
    ) -> BatchResult {
        let a = &self.arch;
        let lay = &self.layout;
        let n = labels.len();
        let per = a.channels[0] * h * w;
        assert!(n > 0 && images.len() == n * per, "batch size");
        let mut items: Vec<Item> = (0..n).map(|_| Item::default()).collect();
        let mut inputs: Vec<Vec<f32>> = images.chunks_exact(per).map(<[f32]>::to_vec).collect();
        let mut dims = Vec::new();
        let (mut batch_mean, mut batch_var, mut inv_std) = (Vec::new(), Vec::new(), Vec::new());
        let (mut h, mut w) = (h, w);

        // Forward, layer by layer.
        for l in 0..a.convs() {
            let (cin, cout) = (a.channels[l], a.channels[l + 1]);
            let hw = h * w;
            let weight = self.weight(l);
            let mut z: Vec<Vec<f32>> = items
                .par_iter_mut()
                .zip(inputs.par_iter())
                .map(|(it, x)| {
                    let mut cols = vec![0.0; cin * 9 * hw];
                    im2col(x, cin, h, w, &mut cols);
                    let mut z = vec![0.0; cout * hw];
                    matmul_acc(
                        &mut z,
                        Mat::rm(cout, hw),
                        weight,
                        Mat::rm(cout, cin * 9),
                        &cols,
                        Mat::rm(cin * 9, hw),
                    );
                    it.cols.push(cols);
                    z
                })
                .collect();
            // Per-channel statistics over items and positions (two passes, f64 sums).
            let count = (n * hw) as f64;
            let mean: Vec<f64> = channel_sums(&z, hw, |v, _| f64::from(v))
                .into_iter()
                .map(|s| s / count)
                .collect();
            let var: Vec<f64> = channel_sums(&z, hw, |v, c| (f64::from(v) - mean[c]).powi(2))
                .into_iter()
                .map(|s| s / count)
                .collect();
            let istd: Vec<f32> = var
                .iter()
                .map(|&v| (1.0 / (v + f64::from(BN_EPSILON)).sqrt()) as f32)
                .collect();
            let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
            let (gamma, beta) = (self.gamma(l), self.beta(l));
            let last = l + 1 == a.convs();
            inputs = items
                .par_iter_mut()
                .zip(z.par_iter_mut())
                .map(|(it, z)| {
                    let mut relu = vec![0.0; cout * hw];
                    for c in 0..cout {
                        let (zc, rc) = (
                            &mut z[c * hw..(c + 1) * hw],
                            &mut relu[c * hw..(c + 1) * hw],
                        );
                        for (zv, r) in zc.iter_mut().zip(rc.iter_mut()) {
                            *zv = (*zv - mean32[c]) * istd[c];
                            *r = (gamma[c] * *zv + beta[c]).max(0.0);
                        }
                    }
                    let next = if last {
                        Vec::new()
                    } else {
                        let (pooled, idx, _, _) = maxpool2(&relu, cout, h, w);
                        it.argmax.push(idx);
                        pooled
                    };
                    it.xhat.push(std::mem::take(z));
                    it.relu.push(relu);
                    next
                })
                .collect();
            dims.push((h, w));
            batch_mean.push(mean32);
            batch_var.push(var.iter().map(|&v| v as f32).collect());
            inv_std.push(istd);
            if !last {
                (h, w) = (h / 2, w / 2);
            }
        }

        // Head: global average pool, classifier, softmax cross-entropy.
        let f = a.features();
        let hw = h * w;
        let (cw, cb) = (&self.params[lay.fc_w..lay.fc_b], &self.params[lay.fc_b..]);
        let mut grad = vec![0.0f32; lay.total];
        let mut loss = 0.0f64;
        let mut correct = 0;
        let mut all_logits = Vec::with_capacity(n);
        // d loss / d(activated last conv output), per item.
        let mut d_act: Vec<Vec<f32>> = Vec::with_capacity(n);
        for (it, &y) in items.iter_mut().zip(labels) {
            let act = it.relu.last().expect("one conv");
            it.features = act
                .chunks_exact(hw)
                .map(|c| c.iter().sum::<f32>() / hw as f32)
                .collect();
            let logits: Vec<f32> = (0..a.classes)
                .map(|k| cb[k] + dot(&cw[k * f..(k + 1) * f], &it.features))
                .collect();
            let p = softmax(&logits);
            loss -= f64::from(p[y].max(1e-30)).ln();
            correct += usize::from(argmax(&logits) == y);
            let mut dfeat = vec![0.0f32; f];
            for (k, &pk) in p.iter().enumerate() {
                let g = (pk - f32::from(u8::from(k == y))) / n as f32;
                grad[lay.fc_b + k] += g;
                for c in 0..f {
                    grad[lay.fc_w + k * f + c] += g * it.features[c];
                    dfeat[c] += g * cw[k * f + c];
                }
            }
            d_act.push(
                dfeat
                    .iter()
                    .flat_map(|&g| std::iter::repeat_n(g / hw as f32, hw))
                    .collect(),
            );
            all_logits.push(logits);
        }

        // Backward, layer by layer.
        for l in (0..a.convs()).rev() {
            let (cin, cout) = (a.channels[l], a.channels[l + 1]);
            let (h, w) = dims[l];
            let hw = h * w;
            // Through the ReLU (in place): d/d(γ·x̂ + β).
            d_act
                .par_iter_mut()
                .zip(items.par_iter())
                .for_each(|(d, it)| {
                    for (g, &r) in d.iter_mut().zip(&it.relu[l]) {
                        if r <= 0.0 {
                            *g = 0.0;
                        }
                    }
                });
            // γ and β gradients: Σ dy·x̂ and Σ dy per channel.
            let mut dgamma = vec![0.0f64; cout];
            let mut dbeta = vec![0.0f64; cout];
            let parts: Vec<(Vec<f64>, Vec<f64>)> = d_act
                .par_iter()
                .zip(items.par_iter())
                .map(|(d, it)| {
                    let xh = &it.xhat[l];
                    (0..cout)
                        .map(|c| {
                            let (dc, xc) = (&d[c * hw..(c + 1) * hw], &xh[c * hw..(c + 1) * hw]);
                            (f64::from(dot(dc, xc)), f64::from(dc.iter().sum::<f32>()))
                        })
                        .unzip()
                })
                .collect();
            for (g, b) in parts {
                for c in 0..cout {
                    dgamma[c] += g[c];
                    dbeta[c] += b[c];
                }
            }
            for c in 0..cout {
                grad[lay.gamma[l] + c] = dgamma[c] as f32;
                grad[lay.beta[l] + c] = dbeta[c] as f32;
            }
            // d/dz = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)), in place.
            let count = (n * hw) as f64;
            let mean_dy: Vec<f32> = dbeta.iter().map(|&s| (s / count) as f32).collect();
            let mean_dyx: Vec<f32> = dgamma.iter().map(|&s| (s / count) as f32).collect();
            let gamma = self.gamma(l);
            let istd = &inv_std[l];
            d_act
                .par_iter_mut()
                .zip(items.par_iter())
                .for_each(|(d, it)| {
                    let xh = &it.xhat[l];
                    for c in 0..cout {
                        let k = gamma[c] * istd[c];
                        for (g, &x) in d[c * hw..(c + 1) * hw]
                            .iter_mut()
                            .zip(&xh[c * hw..(c + 1) * hw])
                        {
                            *g = k * (*g - mean_dy[c] - x * mean_dyx[c]);
                        }
                    }
                });
            // Weight gradient dW = Σ_items dz · colsᵀ, summed in fixed chunks and order.
            let k = cin * 9;
            let parts: Vec<Vec<f32>> = d_act
                .par_chunks(GRAD_CHUNK)
                .zip(items.par_chunks(GRAD_CHUNK))
                .map(|(ds, its)| {
                    let mut gw = vec![0.0f32; cout * k];
                    for (d, it) in ds.iter().zip(its) {
                        matmul_acc(
                            &mut gw,
                            Mat::rm(cout, k),
                            d,
                            Mat::rm(cout, hw),
                            &it.cols[l],
                            Mat::rm(k, hw).t(),
                        );
                    }
                    gw
                })
                .collect();
            let gw = &mut grad[lay.conv_w[l]..lay.gamma[l]];
            for p in parts {
                gw.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
            }
            if l == 0 {
                break;
            }
            // Back to the previous layer's activated output: Wᵀ·dz, col2im, un-pool.
            let weight = self.weight(l);
            let (ph, pw) = dims[l - 1];
            d_act = d_act
                .par_iter()
                .zip(items.par_iter())
                .map(|(d, it)| {
                    let mut dcols = vec![0.0; k * hw];
                    matmul_acc(
                        &mut dcols,
                        Mat::rm(k, hw),
                        weight,
                        Mat::rm(cout, k).t(),
                        d,
                        Mat::rm(cout, hw),
                    );
                    let mut dx = vec![0.0; cin * hw];
                    col2im(&dcols, cin, h, w, &mut dx);
                    maxpool2_backward(&dx, &it.argmax[l - 1], cin * ph * pw)
                })
                .collect();
        }
        BatchResult {
            loss: (loss / n as f64) as f32,
            correct,
            gradient: grad,
            logits: all_logits,
            batch_mean,
            batch_var,
            counts: dims.iter().map(|(h, w)| n * h * w).collect(),
        }
    }
}

/// Per-channel sums of `f(value, channel)` over all items, reduced in item order.
fn channel_sums(z: &[Vec<f32>], hw: usize, f: impl Fn(f32, usize) -> f64 + Sync) -> Vec<f64> {
    let parts: Vec<Vec<f64>> = z
        .par_iter()
        .map(|zi| {
            zi.chunks_exact(hw)
                .enumerate()
                .map(|(c, row)| row.iter().map(|&v| f(v, c)).sum())
                .collect()
        })
        .collect();
    let mut total = vec![0.0; parts[0].len()];
    for p in parts {
        total.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::batch;

    fn tiny() -> Architecture {
        Architecture {
            channels: vec![3, 3, 4, 2, 5],
            classes: 3,
        }
    }

    fn perturbed(arch: Architecture, seed: u64) -> TrainingNetwork {
        let mut net = TrainingNetwork::new(arch, seed);
        // Move γ, β and the classifier bias off their initial values.
        let mut rng = SplitMix64::new(seed + 1);
        for l in 0..net.arch.convs() {
            for c in 0..net.cout(l) {
                net.params[net.layout.gamma[l] + c] = 1.0 + 0.3 * rng.normal();
                net.params[net.layout.beta[l] + c] = 0.2 * rng.normal();
            }
        }
        let fc_b = net.layout.fc_b;
        net.params[fc_b..]
            .iter_mut()
            .for_each(|p| *p = 0.1 * rng.normal());
        net
    }

    /// Every parameter's analytic gradient against a central finite difference.
    #[test]
    fn gradients_match_finite_differences() {
        let mut net = perturbed(tiny(), 11);
        let mut rng = SplitMix64::new(12);
        let (h, w, n) = (16, 12, 3);
        let x: Vec<f32> = (0..n * 3 * h * w).map(|_| rng.next_f32()).collect();
        let y = vec![0, 2, 1];
        let g = net.loss_and_gradient(&x, &y, h, w).gradient;
        let eps = 1e-3;
        let mut bad = Vec::new();
        for (i, &analytic) in g.iter().enumerate() {
            let orig = net.params[i];
            net.params[i] = orig + eps;
            let lp = net.loss_and_gradient(&x, &y, h, w).loss;
            net.params[i] = orig - eps;
            let lm = net.loss_and_gradient(&x, &y, h, w).loss;
            net.params[i] = orig;
            let numeric = (lp - lm) / (2.0 * eps);
            if (numeric - analytic).abs() > 1e-3 + 2e-2 * numeric.abs() {
                bad.push((i, analytic, numeric));
            }
        }
        // A perturbation can cross a ReLU or max-pool kink; allow a rare miss, no more.
        assert!(
            bad.len() * 100 <= net.params.len(),
            "{} of {} gradients differ: {:?}",
            bad.len(),
            net.params.len(),
            &bad[..bad.len().min(10)]
        );
        assert!(g.iter().filter(|v| v.abs() > 1e-4).count() > net.params.len() / 2);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let arch = Architecture {
            classes: 4,
            ..tiny()
        };
        let net = perturbed(arch, 3);
        let (x, y) = batch(4, 0, 9);
        let a = net.loss_and_gradient(&x, &y, 64, 64);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| net.loss_and_gradient(&x, &y, 64, 64));
        assert_eq!(a.gradient, b.gradient);
        assert_eq!(a.loss, b.loss);
    }

    /// Folding with running statistics equal to a batch's gives the batch-mode logits.
    #[test]
    fn folding_reproduces_batch_normalisation() {
        let mut net = perturbed(Architecture::default(), 5);
        let (x, y) = batch(6, 0, 5);
        let r = net.loss_and_gradient(&x, &y, 64, 64);
        net.set_statistics(r.batch_mean.clone(), r.batch_var.clone());
        let folded = net.fold();
        for (i, xi) in x.chunks(3 * 64 * 64).enumerate() {
            let l = folded.logits(xi, 64, 64);
            for k in 0..4 {
                assert!(
                    (l[k] - r.logits[i][k]).abs() < 1e-3,
                    "{l:?} {:?}",
                    r.logits[i]
                );
            }
        }
    }

    #[test]
    fn a_few_adam_steps_reduce_the_loss() {
        let arch = Architecture {
            channels: vec![3, 8, 8, 8, 16],
            classes: 4,
        };
        let mut net = TrainingNetwork::new(arch, 5);
        let (x, y) = batch(1, 0, 32);
        let mut adam = crate::train::Adam::new(net.params.len(), 3e-3);
        let first = net.loss_and_gradient(&x, &y, 64, 64).loss;
        for _ in 0..15 {
            let g = net.loss_and_gradient(&x, &y, 64, 64).gradient;
            adam.step(net.parameters_mut(), &g);
        }
        let last = net.loss_and_gradient(&x, &y, 64, 64).loss;
        assert!(last < 0.7 * first, "{first} -> {last}");
    }
}
