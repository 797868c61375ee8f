//! Running many modified copies of one input in batches: the one loop behind Score-CAM,
//! Ablation-CAM, SmoothGrad and Integrated Gradients.

use convscope_engine::Tensor;

use crate::error::{Error, Result};

/// Runs `n` items built by `fill(i, item)` through `run`, `chunk` at a time.
///
/// `item_shape` is the shape of one batch-of-one tensor (its first axis is replaced by the batch
/// size). `run(start, batch)` gets the index of the batch's first item and returns `Ok(None)`
/// when the batch's result does not have one row per item. Some graphs only take one image
/// (e.g. a Reshape to the constant shape `[1, -1]`): when a batch fails or comes back with the
/// wrong shape, the rest runs one item at a time; a single item that still does not fit is the
/// error `mismatch`.
pub(crate) fn in_batches(
    item_shape: &[usize],
    n: usize,
    chunk: usize,
    fill: &dyn Fn(usize, &mut [f32]),
    run: &mut dyn FnMut(usize, &Tensor) -> Result<Option<()>>,
    mismatch: &dyn Fn() -> String,
) -> Result<()> {
    let item: usize = item_shape[1..].iter().product();
    let mut chunk = chunk.max(1);
    let mut start = 0;
    while start < n {
        let m = chunk.min(n - start);
        let mut data = vec![0.0f32; m * item];
        for (i, buf) in data.chunks_mut(item.max(1)).enumerate() {
            fill(start + i, buf);
        }
        let mut shape = item_shape.to_vec();
        shape[0] = m;
        match run(start, &Tensor::new(shape, data)?) {
            Ok(Some(())) => start += m,
            Ok(None) | Err(_) if m > 1 => chunk = 1,
            Ok(None) => return Err(Error::Config(mismatch())),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a batch result of `m` items holds `per_item` values for each.
pub(crate) fn fits(t: &Tensor, m: usize, per_item: usize) -> bool {
    t.len() == m * per_item && (m == 1 || t.shape().first() == Some(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_single_items_when_a_batch_does_not_fit() {
        let mut seen = Vec::new();
        in_batches(
            &[1, 2],
            5,
            4,
            &|i, item| item.fill(i as f32),
            &mut |start, t| {
                if t.shape()[0] > 1 {
                    return Ok(None);
                }
                seen.push((start, t.data().to_vec()));
                Ok(Some(()))
            },
            &|| "never".into(),
        )
        .unwrap();
        let starts: Vec<usize> = seen.iter().map(|s| s.0).collect();
        assert_eq!(starts, vec![0, 1, 2, 3, 4]);
        assert_eq!(seen[3].1, vec![3.0, 3.0]);
        let e = in_batches(&[1, 1], 1, 1, &|_, _| {}, &mut |_, _| Ok(None), &|| {
            "one item does not fit".into()
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "one item does not fit");
    }
}
