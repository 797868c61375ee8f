//! MatMul with NumPy semantics (1-D promotion, broadcast batch dimensions).

use std::collections::HashMap;

use super::binary::broadcast_shape;
use super::{check_size, float_input, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::kernels::gemm::{matmul, Mat};
use crate::tensor::{strides_of, Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("MatMul", |_| Ok(Box::new(MatMulOp)));
}

/// Shapes of one MatMul call after 1-D promotion.
struct Plan {
    m: usize,
    k: usize,
    n: usize,
    batch: Vec<usize>,
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    out_shape: Vec<usize>,
}

impl Plan {
    /// Folds the batch into the rows when `b` has no batch dimensions: `[..., m, k] · [k, n]`
    /// is one `[batch·m, k] · [k, n]` product. A transformer's `Linear` on `[N, T, C]` (or
    /// torchvision's attention input projection on `[T, N, C]` with N = 1, where m is 1) then
    /// packs the weights once instead of once per batch element: ViT-B/16's in-projections
    /// took 200 ms each as 197 one-row products.
    fn folded(mut self) -> Plan {
        if self.b_batch.is_empty() && !self.batch.is_empty() {
            self.m *= self.batch.iter().product::<usize>();
            self.batch.clear();
            self.a_batch.clear();
        }
        self
    }
}

fn plan(a: &[usize], b: &[usize]) -> Result<Plan> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::Shape("MatMul of a scalar".into()));
    }
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(Error::Shape(format!(
            "MatMul of {a:?} and {b:?}: inner sizes {k} and {k2} differ (a layer after a Flatten needs the model's declared input size)"
        )));
    }
    let a_batch = a2[..a2.len() - 2].to_vec();
    let b_batch = b2[..b2.len() - 2].to_vec();
    let batch = broadcast_shape(&a_batch, &b_batch)?;
    let mut out_shape = batch.clone();
    if a.len() > 1 {
        out_shape.push(m);
    }
    if b.len() > 1 {
        out_shape.push(n);
    }
    // An outer product (k = 1) of two large operands is bounded only here.
    check_size(&out_shape, "MatMul")?;
    Ok(Plan {
        m,
        k,
        n,
        batch,
        a_batch,
        b_batch,
        out_shape,
    })
}

/// Offset (in matrices) of batch element `i` of `batch` in a tensor whose batch dims are `own`.
fn batch_offset(i: usize, batch: &[usize], own: &[usize]) -> usize {
    let bs = strides_of(batch);
    let os = strides_of(own);
    let off = batch.len() - own.len();
    let mut o = 0;
    for ax in 0..batch.len() {
        let idx = (i / bs[ax]) % batch[ax];
        if ax >= off && own[ax - off] != 1 {
            o += idx * os[ax - off];
        }
    }
    o
}

struct MatMulOp;

impl Op for MatMulOp {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (a, b) = (float_input(inputs, 0)?, float_input(inputs, 1)?);
        let p = plan(a.shape(), b.shape())?.folded();
        let nb: usize = p.batch.iter().product();
        let (mk, kn, mn) = (p.m * p.k, p.k * p.n, p.m * p.n);
        let mut out = vec![0.0f32; nb * mn];
        for i in 0..nb {
            let ao = batch_offset(i, &p.batch, &p.a_batch) * mk;
            let bo = batch_offset(i, &p.batch, &p.b_batch) * kn;
            matmul(
                &a.data()[ao..ao + mk],
                Mat::row_major(p.m, p.k),
                &b.data()[bo..bo + kn],
                Mat::row_major(p.k, p.n),
                &mut out[i * mn..(i + 1) * mn],
                Mat::row_major(p.m, p.n),
                false,
                0,
            );
        }
        Ok(vec![Tensor::from_parts(p.out_shape, out).into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (a, b, g) = (v.input(0)?, v.input(1)?, v.grad(0)?);
        let p = plan(a.shape(), b.shape())?.folded();
        let nb: usize = p.batch.iter().product();
        let (mk, kn, mn) = (p.m * p.k, p.k * p.n, p.m * p.n);
        let mut da = v.needs[0].then(|| vec![0.0f32; a.len()]);
        let mut db = v.needs[1].then(|| vec![0.0f32; b.len()]);
        for i in 0..nb {
            let ao = batch_offset(i, &p.batch, &p.a_batch) * mk;
            let bo = batch_offset(i, &p.batch, &p.b_batch) * kn;
            let gi = &g.data()[i * mn..(i + 1) * mn];
            if let Some(da) = da.as_mut() {
                // da[m,k] += g[m,n] · bᵀ[n,k]
                matmul(
                    gi,
                    Mat::row_major(p.m, p.n),
                    &b.data()[bo..bo + kn],
                    Mat::row_major(p.k, p.n).t(),
                    &mut da[ao..ao + mk],
                    Mat::row_major(p.m, p.k),
                    true,
                    0,
                );
            }
            if let Some(db) = db.as_mut() {
                // db[k,n] += aᵀ[k,m] · g[m,n]
                matmul(
                    &a.data()[ao..ao + mk],
                    Mat::row_major(p.m, p.k).t(),
                    gi,
                    Mat::row_major(p.m, p.n),
                    &mut db[bo..bo + kn],
                    Mat::row_major(p.k, p.n),
                    true,
                    0,
                );
            }
        }
        Ok(vec![
            da.map(|d| Tensor::from_parts(a.shape().to_vec(), d)),
            db.map(|d| Tensor::from_parts(b.shape().to_vec(), d)),
        ])
    }

    fn flops(&self, inputs: &[Option<&Value>], _outputs: &[&Value]) -> u64 {
        match (float_input(inputs, 0), float_input(inputs, 1)) {
            (Ok(a), Ok(b)) => plan(a.shape(), b.shape()).map_or(0, |p| {
                2 * (p.batch.iter().product::<usize>() * p.m * p.k * p.n) as u64
            }),
            _ => 0,
        }
    }
}
