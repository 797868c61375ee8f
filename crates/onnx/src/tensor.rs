//! Interpreting tensor data: shapes, element decoding, and external data files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::proto::TensorProto;

/// `TensorProto.DataType` values (see `onnx.proto`).
pub mod data_type {
    /// 32-bit IEEE float.
    pub const FLOAT: i32 = 1;
    /// Unsigned 8-bit integer.
    pub const UINT8: i32 = 2;
    /// Signed 8-bit integer.
    pub const INT8: i32 = 3;
    /// Unsigned 16-bit integer.
    pub const UINT16: i32 = 4;
    /// Signed 16-bit integer.
    pub const INT16: i32 = 5;
    /// Signed 32-bit integer.
    pub const INT32: i32 = 6;
    /// Signed 64-bit integer.
    pub const INT64: i32 = 7;
    /// Byte string; not numeric, so [`TensorProto::values`](crate::TensorProto::values)
    /// rejects it.
    pub const STRING: i32 = 8;
    /// Boolean, one byte per element.
    pub const BOOL: i32 = 9;
    /// 16-bit IEEE half-precision float.
    pub const FLOAT16: i32 = 10;
    /// 64-bit IEEE float.
    pub const DOUBLE: i32 = 11;
    /// Unsigned 32-bit integer.
    pub const UINT32: i32 = 12;
    /// Unsigned 64-bit integer.
    pub const UINT64: i32 = 13;
    /// Brain float: the upper 16 bits of a 32-bit float.
    pub const BFLOAT16: i32 = 16;

    /// Upper-case ONNX name of a data type, e.g. `"FLOAT16"`, or `"UNKNOWN"`.
    pub fn name(data_type: i32) -> &'static str {
        match data_type {
            0 => "UNDEFINED",
            FLOAT => "FLOAT",
            UINT8 => "UINT8",
            INT8 => "INT8",
            UINT16 => "UINT16",
            INT16 => "INT16",
            INT32 => "INT32",
            INT64 => "INT64",
            STRING => "STRING",
            BOOL => "BOOL",
            FLOAT16 => "FLOAT16",
            DOUBLE => "DOUBLE",
            UINT32 => "UINT32",
            UINT64 => "UINT64",
            14 => "COMPLEX64",
            15 => "COMPLEX128",
            BFLOAT16 => "BFLOAT16",
            17 => "FLOAT8E4M3FN",
            18 => "FLOAT8E4M3FNUZ",
            19 => "FLOAT8E5M2",
            20 => "FLOAT8E5M2FNUZ",
            21 => "UINT4",
            22 => "INT4",
            23 => "FLOAT4E2M1",
            24 => "FLOAT8E8M0",
            25 => "UINT2",
            26 => "INT2",
            27 => "FLOAT6E2M3",
            28 => "FLOAT6E3M2",
            _ => "UNKNOWN",
        }
    }
}

/// Decoded numeric contents of a tensor, converted to one of two element kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValues {
    /// FLOAT, FLOAT16, BFLOAT16 and DOUBLE tensors (doubles are rounded to `f32`).
    Float(Vec<f32>),
    /// Integer and BOOL tensors (booleans as 0 and 1). UINT64 values above `i64::MAX` wrap
    /// around to negative numbers.
    Int(Vec<i64>),
}

impl TensorValues {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorValues::Float(v) => v.len(),
            TensorValues::Int(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How one element type is stored: its size in `raw_data`, how to decode a raw element, and
/// which typed field holds it otherwise.
enum Layout {
    Float {
        size: usize,
        raw: fn(&[u8]) -> f32,
        typed: fn(&TensorProto) -> Vec<f32>,
    },
    Int {
        size: usize,
        raw: fn(&[u8]) -> i64,
        typed: fn(&TensorProto) -> Vec<i64>,
    },
}

fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(b);
    a
}

fn layout(data_type: i32) -> Option<Layout> {
    use data_type::*;
    use Layout::{Float as F, Int as I};
    Some(match data_type {
        FLOAT => F {
            size: 4,
            raw: |b| f32::from_le_bytes(le(b)),
            typed: |t| t.float_data.clone(),
        },
        FLOAT16 => F {
            size: 2,
            raw: |b| f16_to_f32(u16::from_le_bytes(le(b))),
            typed: |t| t.int32_data.iter().map(|&v| f16_to_f32(v as u16)).collect(),
        },
        BFLOAT16 => F {
            size: 2,
            raw: |b| bf16_to_f32(u16::from_le_bytes(le(b))),
            typed: |t| {
                t.int32_data
                    .iter()
                    .map(|&v| bf16_to_f32(v as u16))
                    .collect()
            },
        },
        DOUBLE => F {
            size: 8,
            raw: |b| f64::from_le_bytes(le(b)) as f32,
            typed: |t| t.double_data.iter().map(|&v| v as f32).collect(),
        },
        // Narrow integers live in int32_data; casting through the element type keeps
        // out-of-range garbage from producing values the type cannot hold.
        INT8 => I {
            size: 1,
            raw: |b| i64::from(b[0] as i8),
            typed: |t| t.int32_data.iter().map(|&v| i64::from(v as i8)).collect(),
        },
        UINT8 => I {
            size: 1,
            raw: |b| i64::from(b[0]),
            typed: |t| t.int32_data.iter().map(|&v| i64::from(v as u8)).collect(),
        },
        BOOL => I {
            size: 1,
            raw: |b| i64::from(b[0] != 0),
            typed: |t| t.int32_data.iter().map(|&v| i64::from(v != 0)).collect(),
        },
        INT16 => I {
            size: 2,
            raw: |b| i64::from(i16::from_le_bytes(le(b))),
            typed: |t| t.int32_data.iter().map(|&v| i64::from(v as i16)).collect(),
        },
        UINT16 => I {
            size: 2,
            raw: |b| i64::from(u16::from_le_bytes(le(b))),
            typed: |t| t.int32_data.iter().map(|&v| i64::from(v as u16)).collect(),
        },
        INT32 => I {
            size: 4,
            raw: |b| i64::from(i32::from_le_bytes(le(b))),
            typed: |t| t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        },
        UINT32 => I {
            size: 4,
            raw: |b| i64::from(u32::from_le_bytes(le(b))),
            typed: |t| t.uint64_data.iter().map(|&v| i64::from(v as u32)).collect(),
        },
        INT64 => I {
            size: 8,
            raw: |b| i64::from_le_bytes(le(b)),
            typed: |t| t.int64_data.clone(),
        },
        UINT64 => I {
            size: 8,
            raw: |b| u64::from_le_bytes(le(b)) as i64,
            typed: |t| t.uint64_data.iter().map(|&v| v as i64).collect(),
        },
        _ => return None,
    })
}

/// IEEE 754 half precision to single precision; exact for every input.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match exp {
        0 => {
            // Subnormal (or zero): mant * 2^-24 is exactly representable in f32.
            let magnitude = mant as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -magnitude } else { magnitude };
        }
        // Infinity or NaN; the payload is kept.
        0x1f => sign | 0x7f80_0000 | (mant << 13),
        // Rebias the exponent from 15 to 127.
        _ => sign | ((exp + 112) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 is the upper half of an f32.
pub(crate) fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

impl TensorProto {
    fn malformed(&self, detail: String) -> Error {
        Error::Malformed {
            context: "TensorProto",
            detail: format!("tensor `{}`: {detail}", self.name),
        }
    }

    /// The dimensions as sizes.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] if a dimension is negative (or does not fit in `usize`).
    pub fn shape(&self) -> Result<Vec<usize>> {
        self.dims
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| self.malformed(format!("invalid dimension {d}")))
            })
            .collect()
    }

    /// Number of elements implied by the dims (1 for a scalar), checked for overflow.
    fn element_count(&self) -> Result<usize> {
        self.shape()?
            .into_iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d))
            .ok_or_else(|| self.malformed(format!("dims {:?} overflow", self.dims)))
    }

    /// Decodes the tensor's elements in row-major order.
    ///
    /// `raw_data` (little endian) is used when non-empty, otherwise the typed field that
    /// `onnx.proto` assigns to the element type.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedDataType`] for strings, complex numbers and 8/6/4/2-bit types;
    /// [`Error::ExternalData`] if the data lives in an external file that has not been loaded
    /// (use [`ModelProto::load`](crate::ModelProto::load)); [`Error::Malformed`] if the number
    /// of elements does not match the dims.
    pub fn values(&self) -> Result<TensorValues> {
        let Some(layout) = layout(self.data_type) else {
            return Err(Error::UnsupportedDataType {
                tensor: self.name.clone(),
                data_type: self.data_type,
            });
        };
        if self.data_location == 1 && self.raw_data.is_empty() {
            return Err(Error::ExternalData {
                tensor: self.name.clone(),
                detail: "the data is stored in an external file and was not loaded; \
                         read the model with ModelProto::load"
                    .into(),
            });
        }
        let count = self.element_count()?;
        let values = match layout {
            Layout::Float { size, raw, typed } => {
                TensorValues::Float(if self.raw_data.is_empty() {
                    typed(self)
                } else {
                    self.check_raw_len(count, size)?;
                    self.raw_data.chunks_exact(size).map(raw).collect()
                })
            }
            Layout::Int { size, raw, typed } => TensorValues::Int(if self.raw_data.is_empty() {
                typed(self)
            } else {
                self.check_raw_len(count, size)?;
                self.raw_data.chunks_exact(size).map(raw).collect()
            }),
        };
        if values.len() != count {
            return Err(self.malformed(format!(
                "dims {:?} need {count} elements but the data has {}",
                self.dims,
                values.len()
            )));
        }
        Ok(values)
    }

    /// The first element that is NaN or infinite once converted to `f32` (the precision the
    /// engine computes in; a DOUBLE beyond `f32::MAX` counts as infinite), as its row-major
    /// index and converted value. `None` for integer tensors, for finite data, and for data
    /// that is not loaded or not decodable (which [`TensorProto::values`] reports).
    ///
    /// Reads the stored bytes in place, without decoding the tensor into a new buffer.
    ///
    /// ```
    /// use convscope_onnx::TensorProto;
    /// let t = TensorProto::from_f32("w", &[3], &[1.0, f32::NAN, f32::INFINITY]);
    /// let (index, value) = t.first_nonfinite().unwrap();
    /// assert_eq!(index, 1);
    /// assert!(value.is_nan());
    /// assert_eq!(TensorProto::from_f32("w", &[1], &[2.0]).first_nonfinite(), None);
    /// ```
    pub fn first_nonfinite(&self) -> Option<(usize, f32)> {
        let Some(Layout::Float { size, raw, .. }) = layout(self.data_type) else {
            return None;
        };
        let first = |values: &mut dyn Iterator<Item = f32>| {
            values.enumerate().find(|(_, v)| !v.is_finite())
        };
        if !self.raw_data.is_empty() {
            return first(&mut self.raw_data.chunks_exact(size).map(raw));
        }
        match self.data_type {
            data_type::FLOAT => first(&mut self.float_data.iter().copied()),
            data_type::DOUBLE => first(&mut self.double_data.iter().map(|&v| v as f32)),
            data_type::FLOAT16 => first(&mut self.int32_data.iter().map(|&v| f16_to_f32(v as u16))),
            data_type::BFLOAT16 => {
                first(&mut self.int32_data.iter().map(|&v| bf16_to_f32(v as u16)))
            }
            _ => None,
        }
    }

    /// Checked before converting, so a bogus dims product never drives an allocation.
    fn check_raw_len(&self, count: usize, size: usize) -> Result<()> {
        let expected = count.checked_mul(size);
        if expected != Some(self.raw_data.len()) {
            return Err(self.malformed(format!(
                "dims {:?} of {} need {count} elements of {size} bytes but raw_data has {} bytes",
                self.dims,
                data_type::name(self.data_type),
                self.raw_data.len()
            )));
        }
        Ok(())
    }

    /// A FLOAT tensor stored as `raw_data`.
    ///
    /// `data.len()` should equal the product of `dims`; a mismatch is reported by
    /// [`TensorProto::values`].
    pub fn from_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
        TensorProto {
            name: name.to_string(),
            dims: dims_to_i64(dims),
            data_type: data_type::FLOAT,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    /// An INT64 tensor stored as `raw_data`.
    ///
    /// `data.len()` should equal the product of `dims`; a mismatch is reported by
    /// [`TensorProto::values`].
    pub fn from_i64(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
        TensorProto {
            name: name.to_string(),
            dims: dims_to_i64(dims),
            data_type: data_type::INT64,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    /// Moves externally stored data into `raw_data`. Tensors without external data are left
    /// alone.
    pub(crate) fn resolve_external_data(&mut self, base_dir: &Path) -> Result<()> {
        if self.data_location != 1 {
            return Ok(());
        }
        let fail = |detail: String| Error::ExternalData {
            tensor: self.name.clone(),
            detail,
        };
        let mut location = None;
        let mut offset = 0u64;
        let mut length = None;
        for (key, value) in &self.external_data {
            let number = || {
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| fail(format!("`{key}` is not a byte count: {value:?}")))
            };
            match key.as_str() {
                "location" => location = Some(value.as_str()),
                "offset" => offset = number()?,
                "length" => length = Some(number()?),
                _ => {}
            }
        }
        let location = location.ok_or_else(|| fail("no `location` key".into()))?;
        check_location(location).map_err(fail)?;
        let path = resolve_inside(base_dir, location).map_err(fail)?;
        let describe = |e: std::io::Error| fail(format!("cannot read {}: {e}", path.display()));
        // Checked before opening: opening a FIFO or device planted next to a model would block
        // or stream forever.
        let meta = std::fs::metadata(&path).map_err(describe)?;
        if !meta.is_file() {
            return Err(fail(format!(
                "location {location:?} is not a regular file ({})",
                path.display()
            )));
        }
        let file_len = meta.len();
        let mut file = File::open(&path).map_err(describe)?;
        if offset > file_len {
            return Err(fail(format!(
                "offset {offset} is past the end of {} ({file_len} bytes)",
                path.display()
            )));
        }
        let length = length.unwrap_or(file_len - offset);
        if length > file_len - offset {
            return Err(fail(format!(
                "offset {offset} + length {length} is past the end of {} ({file_len} bytes)",
                path.display()
            )));
        }
        // Bounded by the file's real size, checked above.
        let len = usize::try_from(length).map_err(|_| fail("length too large".into()))?;
        let mut data = vec![0u8; len];
        file.seek(SeekFrom::Start(offset)).map_err(describe)?;
        file.read_exact(&mut data).map_err(describe)?;
        self.raw_data = data;
        self.external_data.clear();
        self.data_location = 0;
        Ok(())
    }
}

/// The real path of `location` inside `base_dir`, with every symlink resolved, when it stays
/// inside the (equally resolved) model folder.
///
/// [`check_location`] only judges the text of the location; a symlink planted beside the model
/// (`link.bin -> /etc/passwd`) or a symlinked folder on the way (`dirlink/x.bin`) would still lead
/// elsewhere. Symlinks that stay inside the folder are fine. The file is then opened by its
/// resolved path, so no symlink is followed after this check.
fn resolve_inside(base_dir: &Path, location: &str) -> std::result::Result<PathBuf, String> {
    // `Path::new("model.onnx").parent()` is the empty path: the current folder.
    let base_dir = if base_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base_dir
    };
    let base = base_dir.canonicalize().map_err(|e| {
        format!(
            "cannot resolve the model's folder {}: {e}",
            base_dir.display()
        )
    })?;
    let joined = base_dir.join(location);
    let real = joined.canonicalize().map_err(|e| {
        format!(
            "location {location:?}: cannot read {}: {e}",
            joined.display()
        )
    })?;
    if !real.starts_with(&base) {
        return Err(format!(
            "location {location:?} leads outside the model's folder {} (it resolves to {}, through a symlink)",
            base.display(),
            real.display()
        ));
    }
    Ok(real)
}

/// External data must stay inside the model's directory: a model downloaded from the internet
/// must not be able to make us read arbitrary files.
fn check_location(location: &str) -> std::result::Result<(), String> {
    let path = Path::new(location);
    if location.is_empty() {
        return Err("empty `location`".into());
    }
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("location {location:?} contains `..`"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("location {location:?} is absolute"));
            }
        }
    }
    // Windows-style separators are not components on Unix but would be on Windows; judge
    // them the same way everywhere.
    if location.split(['/', '\\']).any(|part| part == "..") || location.starts_with('\\') {
        return Err(format!("location {location:?} escapes the model directory"));
    }
    Ok(())
}

fn dims_to_i64(dims: &[usize]) -> Vec<i64> {
    // Real dimensions are far below i64::MAX; saturate rather than wrap for absurd inputs.
    dims.iter()
        .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_type::*;

    fn tensor(data_type: i32, dims: &[i64]) -> TensorProto {
        TensorProto {
            name: "t".into(),
            dims: dims.to_vec(),
            data_type,
            ..Default::default()
        }
    }

    /// Independent reference: evaluate the half-precision formula in f64.
    fn f16_reference(h: u16) -> f64 {
        let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let exp = i32::from((h >> 10) & 0x1f);
        let mant = f64::from(h & 0x3ff);
        match exp {
            0 => sign * mant * 2f64.powi(-24),
            0x1f if mant == 0.0 => sign * f64::INFINITY,
            0x1f => f64::NAN,
            _ => sign * (1.0 + mant / 1024.0) * 2f64.powi(exp - 15),
        }
    }

    #[test]
    fn f16_conversion_is_exact_for_all_bit_patterns() {
        for h in 0..=u16::MAX {
            let got = f16_to_f32(h);
            let want = f16_reference(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(f64::from(got), want, "{h:#06x}");
                assert_eq!(got.is_sign_negative(), h & 0x8000 != 0, "{h:#06x}");
            }
        }
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn bf16_conversion() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
        assert_eq!(bf16_to_f32(0x7f80), f32::INFINITY);
    }

    #[test]
    fn raw_and_typed_encodings_agree() {
        let cases: Vec<(i32, Vec<u8>, TensorProto, TensorValues)> = vec![
            (
                FLOAT16,
                vec![0x00, 0x3c, 0x00, 0xc0],
                TensorProto {
                    int32_data: vec![0x3c00, 0xc000],
                    ..tensor(FLOAT16, &[2])
                },
                TensorValues::Float(vec![1.0, -2.0]),
            ),
            (
                BFLOAT16,
                vec![0x80, 0x3f, 0x40, 0xc0],
                TensorProto {
                    int32_data: vec![0x3f80, 0xc040],
                    ..tensor(BFLOAT16, &[2])
                },
                TensorValues::Float(vec![1.0, -3.0]),
            ),
            (
                DOUBLE,
                [0.5f64, -4.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                TensorProto {
                    double_data: vec![0.5, -4.0],
                    ..tensor(DOUBLE, &[2])
                },
                TensorValues::Float(vec![0.5, -4.0]),
            ),
            (
                INT8,
                vec![0xff, 0x7f],
                TensorProto {
                    int32_data: vec![-1, 127],
                    ..tensor(INT8, &[2])
                },
                TensorValues::Int(vec![-1, 127]),
            ),
            (
                UINT8,
                vec![0xff, 0x00],
                TensorProto {
                    int32_data: vec![255, 0],
                    ..tensor(UINT8, &[2])
                },
                TensorValues::Int(vec![255, 0]),
            ),
            (
                BOOL,
                vec![1, 0],
                TensorProto {
                    int32_data: vec![1, 0],
                    ..tensor(BOOL, &[2])
                },
                TensorValues::Int(vec![1, 0]),
            ),
            (
                INT16,
                vec![0x00, 0x80, 0x01, 0x00],
                TensorProto {
                    int32_data: vec![-32768, 1],
                    ..tensor(INT16, &[2])
                },
                TensorValues::Int(vec![-32768, 1]),
            ),
            (
                UINT16,
                vec![0xff, 0xff, 0x01, 0x00],
                TensorProto {
                    int32_data: vec![65535, 1],
                    ..tensor(UINT16, &[2])
                },
                TensorValues::Int(vec![65535, 1]),
            ),
            (
                INT32,
                [-5i32, 7].iter().flat_map(|v| v.to_le_bytes()).collect(),
                TensorProto {
                    int32_data: vec![-5, 7],
                    ..tensor(INT32, &[2])
                },
                TensorValues::Int(vec![-5, 7]),
            ),
            (
                UINT32,
                [u32::MAX, 7].iter().flat_map(|v| v.to_le_bytes()).collect(),
                TensorProto {
                    uint64_data: vec![u32::MAX.into(), 7],
                    ..tensor(UINT32, &[2])
                },
                TensorValues::Int(vec![u32::MAX.into(), 7]),
            ),
            (
                INT64,
                [i64::MIN, 7].iter().flat_map(|v| v.to_le_bytes()).collect(),
                TensorProto {
                    int64_data: vec![i64::MIN, 7],
                    ..tensor(INT64, &[2])
                },
                TensorValues::Int(vec![i64::MIN, 7]),
            ),
            (
                UINT64,
                [3u64, 7].iter().flat_map(|v| v.to_le_bytes()).collect(),
                TensorProto {
                    uint64_data: vec![3, 7],
                    ..tensor(UINT64, &[2])
                },
                TensorValues::Int(vec![3, 7]),
            ),
        ];
        for (dt, raw, typed, want) in cases {
            let from_raw = TensorProto {
                raw_data: raw,
                ..tensor(dt, &[2])
            };
            assert_eq!(
                from_raw.values().unwrap(),
                want,
                "raw {}",
                data_type::name(dt)
            );
            assert_eq!(
                typed.values().unwrap(),
                want,
                "typed {}",
                data_type::name(dt)
            );
        }
    }

    #[test]
    fn constructors_and_scalars() {
        let t = TensorProto::from_f32("w", &[2, 1], &[1.0, 2.0]);
        assert_eq!(t.shape().unwrap(), [2, 1]);
        assert_eq!(t.values().unwrap(), TensorValues::Float(vec![1.0, 2.0]));
        let s = TensorProto::from_i64("s", &[], &[42]);
        assert_eq!(s.values().unwrap(), TensorValues::Int(vec![42]));
        let empty = TensorProto::from_f32("e", &[0, 3], &[]);
        assert_eq!(empty.values().unwrap(), TensorValues::Float(vec![]));
    }

    #[test]
    fn element_count_mismatches_are_malformed() {
        let t = TensorProto::from_f32("w", &[3], &[1.0, 2.0]);
        assert!(matches!(t.values(), Err(Error::Malformed { .. })));
        let t = TensorProto {
            float_data: vec![1.0],
            ..tensor(FLOAT, &[2])
        };
        assert!(matches!(t.values(), Err(Error::Malformed { .. })));
        // No data at all for a non-empty tensor.
        assert!(matches!(
            tensor(FLOAT, &[1]).values(),
            Err(Error::Malformed { .. })
        ));
        // raw_data not a multiple of the element size.
        let t = TensorProto {
            raw_data: vec![0; 5],
            ..tensor(FLOAT, &[1])
        };
        assert!(t.values().is_err());
    }

    #[test]
    fn bad_dims_are_malformed_without_allocating() {
        let t = TensorProto {
            raw_data: vec![0; 4],
            ..tensor(FLOAT, &[-1])
        };
        assert!(matches!(t.shape(), Err(Error::Malformed { .. })));
        assert!(t.values().is_err());
        let huge = TensorProto {
            raw_data: vec![0; 4],
            ..tensor(FLOAT, &[i64::MAX, i64::MAX])
        };
        assert!(matches!(huge.values(), Err(Error::Malformed { .. })));
        let huge = TensorProto {
            raw_data: vec![0; 4],
            ..tensor(FLOAT, &[1 << 62])
        };
        assert!(matches!(huge.values(), Err(Error::Malformed { .. })));
    }

    #[test]
    fn unsupported_and_unloaded_tensors() {
        for dt in [0, STRING, 14, 17, 99, -1] {
            let err = tensor(dt, &[]).values().unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedDataType { data_type, .. } if data_type == dt),
                "{dt}: {err}"
            );
        }
        let external = TensorProto {
            data_location: 1,
            external_data: vec![("location".into(), "w.bin".into())],
            ..tensor(FLOAT, &[1])
        };
        assert!(matches!(external.values(), Err(Error::ExternalData { .. })));
    }

    #[test]
    fn first_nonfinite_reads_every_float_encoding() {
        let nan16 = 0x7e00u16;
        let inf_bf16 = 0x7f80u16;
        let cases: Vec<(TensorProto, Option<usize>)> = vec![
            (
                TensorProto::from_f32("a", &[3], &[1.0, 2.0, f32::NEG_INFINITY]),
                Some(2),
            ),
            (TensorProto::from_f32("a", &[2], &[1.0, 2.0]), None),
            (
                TensorProto {
                    float_data: vec![0.0, f32::NAN],
                    ..tensor(FLOAT, &[2])
                },
                Some(1),
            ),
            (
                TensorProto {
                    // Finite as a double, infinite as the f32 the engine computes in.
                    double_data: vec![1.0, 1e300],
                    ..tensor(DOUBLE, &[2])
                },
                Some(1),
            ),
            (
                TensorProto {
                    raw_data: [f64::NAN, 0.0]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                    ..tensor(DOUBLE, &[2])
                },
                Some(0),
            ),
            (
                TensorProto {
                    int32_data: vec![0x3c00, i32::from(nan16)],
                    ..tensor(FLOAT16, &[2])
                },
                Some(1),
            ),
            (
                TensorProto {
                    raw_data: [0x3f80u16, inf_bf16]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                    ..tensor(BFLOAT16, &[2])
                },
                Some(1),
            ),
            (
                TensorProto::from_i64("i", &[2], &[i64::MAX, i64::MIN]),
                None,
            ),
        ];
        for (t, want) in cases {
            let got = t.first_nonfinite();
            assert_eq!(got.map(|g| g.0), want, "{}", data_type::name(t.data_type));
            assert!(got.is_none_or(|(_, v)| !v.is_finite()));
        }
    }

    #[test]
    fn external_locations_must_stay_inside_the_model_directory() {
        for ok in ["w.bin", "sub/w.bin", "./w.bin", "a..b"] {
            assert!(check_location(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../w.bin",
            "sub/../../w.bin",
            "/etc/passwd",
            "..\\w.bin",
            "\\w.bin",
        ] {
            assert!(check_location(bad).is_err(), "{bad}");
        }
    }
}
