//! Dense row-major tensors: `f32` for data, `i64` for shape arithmetic.

use crate::error::{Error, Result};

/// A dense, row-major (C order) tensor of `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorOf<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

/// The `f32` tensor every differentiable value is stored in.
pub type Tensor = TensorOf<f32>;
/// Integer tensors carry shapes, indices and axes (ONNX `int64`, `int32`, `bool`, ...).
pub type IntTensor = TensorOf<i64>;

impl<T: Copy + Default> TensorOf<T> {
    /// Wraps `data` with `shape`; fails when the element count does not match.
    ///
    /// ```
    /// use convscope_engine::Tensor;
    /// let t = Tensor::new(vec![2, 3], vec![0.0; 6])?;
    /// assert_eq!(t.shape(), &[2, 3]);
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Shape(format!(
                "shape {shape:?} needs {n} elements but {} were given",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// Like [`TensorOf::new`] for internal callers that computed the shape themselves.
    pub(crate) fn from_parts(shape: Vec<usize>, data: Vec<T>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// A tensor of `shape` filled with `T::default()` (zero).
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::default())
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: T) -> Self {
        let n = shape.iter().product();
        Self {
            shape: shape.to_vec(),
            data: vec![value; n],
        }
    }

    /// A scalar (rank 0) tensor.
    pub fn scalar(value: T) -> Self {
        Self {
            shape: vec![],
            data: vec![value],
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no element (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The elements, mutably.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes the tensor and returns its elements.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// The same elements viewed with another shape of equal size.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Self::new(shape, self.data)
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        strides_of(&self.shape)
    }

    /// Permutes the axes (`perm[i]` is the source axis of output axis `i`).
    pub fn permute(&self, perm: &[usize]) -> Self {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let src_strides = self.strides();
        let strides: Vec<usize> = perm.iter().map(|&p| src_strides[p]).collect();
        let mut out = Vec::with_capacity(self.data.len());
        gather_strided(&self.data, &shape, &strides, 0, 0, &mut out);
        Self { shape, data: out }
    }
}

/// Elements tested per branch-free block by [`TensorOf::first_nonfinite`].
const BLOCK: usize = 256;

impl TensorOf<f32> {
    /// The first element that is NaN or ±infinity, as its row-major index and value.
    ///
    /// Blocks of elements are tested without branching (the loop vectorises) and only a block
    /// that holds one is searched, so a finite tensor costs one read.
    ///
    /// ```
    /// use convscope_engine::Tensor;
    /// let t = Tensor::new(vec![2, 2], vec![0.0, 1.0, f32::INFINITY, f32::NAN])?;
    /// assert_eq!(t.first_nonfinite(), Some((2, f32::INFINITY)));
    /// assert_eq!(Tensor::zeros(&[3]).first_nonfinite(), None);
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn first_nonfinite(&self) -> Option<(usize, f32)> {
        let data = self.data();
        data.chunks(BLOCK).enumerate().find_map(|(b, block)| {
            let any = block.iter().fold(false, |acc, v| acc | !v.is_finite());
            if !any {
                return None;
            }
            let i = block.iter().position(|v| !v.is_finite())?;
            Some((b * BLOCK + i, block[i]))
        })
    }

    /// How many elements are NaN or ±infinity.
    pub fn count_nonfinite(&self) -> usize {
        self.data().iter().filter(|v| !v.is_finite()).count()
    }
}

/// Row-major strides of `shape`.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Appends, in row-major order of `shape`, the elements of `src` found at `offset + Σ idx·strides`.
pub(crate) fn gather_strided<T: Copy>(
    src: &[T],
    shape: &[usize],
    strides: &[usize],
    axis: usize,
    offset: usize,
    out: &mut Vec<T>,
) {
    if axis == shape.len() {
        out.push(src[offset]);
        return;
    }
    if axis + 1 == shape.len() {
        let s = strides[axis];
        if s == 1 {
            out.extend_from_slice(&src[offset..offset + shape[axis]]);
        } else {
            out.extend((0..shape[axis]).map(|i| src[offset + i * s]));
        }
        return;
    }
    for i in 0..shape[axis] {
        gather_strided(
            src,
            shape,
            strides,
            axis + 1,
            offset + i * strides[axis],
            out,
        );
    }
}

/// A value flowing through the graph: float data or integer metadata.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Floating point data (every ONNX float type is computed in `f32`).
    Float(Tensor),
    /// Integer or boolean data (shapes, indices).
    Int(IntTensor),
}

impl Value {
    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Float(t) => t.shape(),
            Value::Int(t) => t.shape(),
        }
    }

    /// The float tensor, or an error naming `what` if this is an integer value.
    pub fn as_float(&self, what: &str) -> Result<&Tensor> {
        match self {
            Value::Float(t) => Ok(t),
            Value::Int(_) => Err(Error::Type(format!("{what} must be a float tensor"))),
        }
    }

    /// The integer tensor, or an error naming `what` if this is a float value.
    pub fn as_int(&self, what: &str) -> Result<&IntTensor> {
        match self {
            Value::Int(t) => Ok(t),
            Value::Float(_) => Err(Error::Type(format!("{what} must be an integer tensor"))),
        }
    }

    /// The elements as `i64`, converting floats by truncation (for shape-like inputs).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self {
            Value::Int(t) => t.data().to_vec(),
            Value::Float(t) => t.data().iter().map(|&v| v as i64).collect(),
        }
    }

    /// True for float values.
    pub fn is_float(&self) -> bool {
        matches!(self, Value::Float(_))
    }
}

/// Converts an ONNX tensor (an initializer or a `Constant`'s value) to a [`Value`].
pub(crate) fn value_from_proto(t: &convscope_onnx::TensorProto) -> Result<Value> {
    let shape = t.shape()?;
    Ok(match t.values()? {
        convscope_onnx::TensorValues::Float(v) => Value::Float(Tensor::new(shape, v)?),
        convscope_onnx::TensorValues::Int(v) => Value::Int(IntTensor::new(shape, v)?),
    })
}

impl From<Tensor> for Value {
    fn from(t: Tensor) -> Self {
        Value::Float(t)
    }
}

impl From<IntTensor> for Value {
    fn from(t: IntTensor) -> Self {
        Value::Int(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_matches_manual_transpose() {
        let t = Tensor::new(vec![2, 3], (0..6).map(|v| v as f32).collect()).unwrap();
        let p = t.permute(&[1, 0]);
        assert_eq!(p.shape(), &[3, 2]);
        assert_eq!(p.data(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn new_rejects_wrong_count() {
        assert!(Tensor::new(vec![2, 2], vec![0.0; 3]).is_err());
    }

    #[test]
    fn first_nonfinite_finds_the_first_in_any_block() {
        for len in [1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 3] {
            for at in [0, len / 2, len - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut v = vec![1.0f32; len];
                    v[at] = bad;
                    if at + 1 < len {
                        v[len - 1] = f32::NAN; // a later one is not reported
                    }
                    let t = Tensor::new(vec![len], v).unwrap();
                    let (i, e) = t.first_nonfinite().unwrap();
                    assert_eq!(i, at, "len {len}");
                    assert_eq!(e.to_bits(), bad.to_bits());
                }
            }
            assert_eq!(Tensor::full(&[len], f32::MAX).first_nonfinite(), None);
        }
        assert_eq!(Tensor::zeros(&[0]).first_nonfinite(), None);
    }
}
