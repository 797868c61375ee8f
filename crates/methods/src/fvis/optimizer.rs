//! Update rules, each ascending its objective (PyTorch's optimisers minimise the negated
//! objective; the steps are the same).

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// The walk-through's: `x += lr · g / (rms(g) + 1e-5)`.
    NormalizedStep,
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8), as `torch.optim.Adam`.
    Adam,
    /// NAdam (β₁ 0.9, β₂ 0.999, ε 1e-8, momentum decay 0.004), as `torch.optim.NAdam`.
    NAdam,
}

/// One picture's optimiser state.
#[derive(Clone, Debug)]
pub struct Optimizer {
    rule: Rule,
    lr: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    mu_product: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
const MOMENTUM_DECAY: f64 = 0.004;

impl Optimizer {
    /// A fresh state for `n` parameters.
    pub fn new(rule: Rule, lr: f32, n: usize) -> Optimizer {
        let moments = if rule == Rule::NormalizedStep { 0 } else { n };
        Optimizer {
            rule,
            lr,
            m: vec![0.0; moments],
            v: vec![0.0; moments],
            t: 0,
            mu_product: 1.0,
        }
    }

    /// One step up the gradient `g`.
    pub fn ascend(&mut self, x: &mut [f32], g: &[f32]) {
        self.t += 1;
        let t = self.t;
        let lr = self.lr as f64;
        match self.rule {
            Rule::NormalizedStep => {
                let rms = (g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / g.len() as f64)
                    .sqrt() as f32;
                let k = self.lr / (rms + 1e-5);
                x.iter_mut().zip(g).for_each(|(xv, gv)| *xv += gv * k);
            }
            Rule::Adam => {
                let c1 = 1.0 - BETA1.powi(t);
                let c2 = (1.0 - BETA2.powi(t)).sqrt();
                for j in 0..x.len() {
                    let gj = g[j] as f64;
                    let m = BETA1 * self.m[j] as f64 + (1.0 - BETA1) * gj;
                    let v = BETA2 * self.v[j] as f64 + (1.0 - BETA2) * gj * gj;
                    self.m[j] = m as f32;
                    self.v[j] = v as f32;
                    x[j] += (lr / c1 * m / (v.sqrt() / c2 + EPS)) as f32;
                }
            }
            Rule::NAdam => {
                let mu = BETA1 * (1.0 - 0.5 * 0.96f64.powf(t as f64 * MOMENTUM_DECAY));
                let mu_next = BETA1 * (1.0 - 0.5 * 0.96f64.powf((t + 1) as f64 * MOMENTUM_DECAY));
                self.mu_product *= mu;
                let c2 = 1.0 - BETA2.powi(t);
                let k_grad = lr * (1.0 - mu) / (1.0 - self.mu_product);
                let k_mom = lr * mu_next / (1.0 - self.mu_product * mu_next);
                for j in 0..x.len() {
                    let gj = g[j] as f64;
                    let m = BETA1 * self.m[j] as f64 + (1.0 - BETA1) * gj;
                    let v = BETA2 * self.v[j] as f64 + (1.0 - BETA2) * gj * gj;
                    self.m[j] = m as f32;
                    self.v[j] = v as f32;
                    let denom = (v / c2).sqrt() + EPS;
                    x[j] += (k_grad * gj / denom + k_mom * m / denom) as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule climbs a concave bowl.
    #[test]
    fn every_rule_climbs() {
        for rule in [Rule::NormalizedStep, Rule::Adam, Rule::NAdam] {
            let mut x = vec![3.0f32, -2.0];
            let f = |x: &[f32]| -(x[0] * x[0] + 4.0 * x[1] * x[1]);
            let start = f(&x);
            let mut opt = Optimizer::new(rule, 0.1, 2);
            for _ in 0..20 {
                let g = [-2.0 * x[0], -8.0 * x[1]];
                opt.ascend(&mut x, &g);
            }
            assert!(f(&x) > start * 0.5, "{rule:?}: {} vs {start}", f(&x));
        }
    }
}
