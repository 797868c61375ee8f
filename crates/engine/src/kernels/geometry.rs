//! The geometry of a 2-D convolution, one struct for every kernel: the batch, the channels,
//! the groups and, per spatial axis, its [`Axis`] (input and output sizes, kernel, stride,
//! dilation, leading pad). Ops build it once from the ONNX attributes and the input shape
//! (validated there); kernels only read it.

/// Convolution (or pooling) geometry along one spatial axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Axis {
    pub input: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_begin: usize,
}

impl Axis {
    /// Input coordinate read by output `o` at kernel tap `k`, if inside the input.
    #[inline]
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        let i = (o * self.stride + k * self.dilation) as isize - self.pad_begin as isize;
        (i >= 0 && (i as usize) < self.input).then_some(i as usize)
    }

    /// A 1-wide, stride-1, unpadded axis whose output is its input.
    pub fn is_identity(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad_begin == 0 && self.output == self.input
    }
}

/// Range `lo..hi` of outputs `o` whose tap `k` reads inside the input along `a`.
#[inline]
pub(crate) fn valid_outputs(a: &Axis, k: usize) -> (usize, usize) {
    let off = (k * a.dilation) as isize - a.pad_begin as isize;
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(a.stride)
    };
    let last = a.input as isize - 1 - off;
    if last < 0 {
        return (0, 0);
    }
    let hi = ((last as usize) / a.stride + 1).min(a.output);
    (lo.min(hi), hi)
}

/// `(begin, end)` padding of ONNX's `SAME_UPPER` (`upper`) or `SAME_LOWER` along one axis: the
/// output has `ceil(input / stride)` positions and the odd pixel goes at the end (upper) or the
/// beginning (lower). Shared by convolution and pooling.
pub(crate) fn same_pads(input: usize, stride: usize, span: usize, upper: bool) -> (usize, usize) {
    let out = input.div_ceil(stride).max(1);
    let total = ((out - 1) * stride + span).saturating_sub(input);
    if upper {
        (total / 2, total - total / 2)
    } else {
        (total - total / 2, total / 2)
    }
}

/// One 2-D convolution: `n` images of `c` channels (`h.input × w.input`) to `m` channels
/// (`h.output × w.output`), in `groups` groups (weights `[m, c/groups, h.kernel, w.kernel]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub groups: usize,
    pub h: Axis,
    pub w: Axis,
}

impl ConvGeometry {
    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    pub fn mg(&self) -> usize {
        self.m / self.groups
    }
    /// Kernel taps per output channel: one filter's kernel area.
    pub fn taps(&self) -> usize {
        self.h.kernel * self.w.kernel
    }
    /// Length of one filter: the inner dimension of the convolution's matrix product.
    pub fn k(&self) -> usize {
        self.cg() * self.taps()
    }
    /// One filter per channel (group = C = M).
    pub fn depthwise(&self) -> bool {
        self.groups == self.c && self.m == self.c
    }
    /// A 1×1, stride-1, unpadded convolution: its input planes are already the GEMM operand.
    pub fn pointwise(&self) -> bool {
        self.h.is_identity() && self.w.is_identity()
    }
    /// Input values per plane.
    pub fn plane_in(&self) -> usize {
        self.h.input * self.w.input
    }
    /// Output values per plane.
    pub fn plane_out(&self) -> usize {
        self.h.output * self.w.output
    }
    /// Values of the whole output (`n·m` planes).
    pub fn output_len(&self) -> usize {
        self.n * self.m * self.plane_out()
    }
    /// The output's shape, NCHW.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.m, self.h.output, self.w.output]
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> u64 {
        (self.n * self.m * self.plane_out() * self.k()) as u64
    }

    /// The stride-1 convolution that computes this one's input gradient (with flipped,
    /// transposed weights), when one exists: ungrouped or depthwise, undilated, stride 1, pads
    /// within the kernel.
    pub fn transposed(&self) -> Option<ConvGeometry> {
        let t = |a: &Axis| -> Option<Axis> {
            if a.stride != 1 || a.dilation != 1 || a.pad_begin > a.kernel - 1 {
                return None;
            }
            let pb = a.kernel - 1 - a.pad_begin;
            (a.input + a.kernel > a.output + pb).then_some(Axis {
                input: a.output,
                output: a.input,
                kernel: a.kernel,
                stride: 1,
                dilation: 1,
                pad_begin: pb,
            })
        };
        // A depthwise convolution's transpose is depthwise too (each channel's filter flipped).
        (self.groups == 1 || self.depthwise()).then_some(())?;
        Some(ConvGeometry {
            n: self.n,
            c: self.m,
            m: self.c,
            groups: self.groups,
            h: t(&self.h)?,
            w: t(&self.w)?,
        })
    }
}
