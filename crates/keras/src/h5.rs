//! A thin layer over `hdf5-pure`: the handful of reads a Keras file needs, with its errors
//! turned into [`Error::Hdf5`].

use std::collections::HashMap;

use hdf5_pure::AttrValue;

use crate::error::{Error, Result};

/// The signature HDF5 files start with (at offset 0, where Keras writes it).
pub(crate) const MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Largest dataset read, in elements: 2^30 floats (4 GiB), far beyond any CNN layer; a
/// corrupt shape beyond it is refused before anything is allocated.
const MAX_ELEMENTS: u64 = 1 << 30;

fn h5err(e: impl std::fmt::Display) -> Error {
    Error::Hdf5(e.to_string())
}

/// An open HDF5 file.
pub(crate) struct H5 {
    file: hdf5_pure::File,
}

/// A float dataset: its shape and values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl H5 {
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<H5> {
        Ok(H5 {
            file: hdf5_pure::File::from_bytes(bytes).map_err(h5err)?,
        })
    }

    fn group(&self, path: &str) -> Result<hdf5_pure::Group> {
        if path.is_empty() || path == "/" {
            Ok(self.file.root())
        } else {
            self.file.group(path).map_err(h5err)
        }
    }

    /// Whether the group exists.
    pub(crate) fn has_group(&self, path: &str) -> bool {
        self.group(path).is_ok()
    }

    /// The attributes of a group.
    pub(crate) fn attrs(&self, path: &str) -> Result<HashMap<String, AttrValue>> {
        self.group(path)?.attrs().map_err(h5err)
    }

    /// A string attribute, `None` when absent.
    pub(crate) fn attr_string(&self, path: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .attrs(path)?
            .remove(name)
            .and_then(|v| as_strings(v).into_iter().next()))
    }

    /// A string-array attribute (empty when absent or an empty array).
    pub(crate) fn attr_strings(&self, path: &str, name: &str) -> Result<Vec<String>> {
        Ok(self
            .attrs(path)?
            .remove(name)
            .map(as_strings)
            .unwrap_or_default())
    }

    /// Names of the subgroups and of the datasets of a group.
    pub(crate) fn members(&self, path: &str) -> Result<(Vec<String>, Vec<String>)> {
        let g = self.group(path)?;
        Ok((g.groups().map_err(h5err)?, g.datasets().map_err(h5err)?))
    }

    /// A float dataset.
    pub(crate) fn read(&self, path: &str) -> Result<Array> {
        let ds = self.file.dataset(path).map_err(h5err)?;
        let dims = ds.shape().map_err(h5err)?;
        let count = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if count.is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(Error::Hdf5(format!(
                "dataset '{path}' claims the impossible shape {dims:?}"
            )));
        }
        let values = ds
            .read_f32()
            .map_err(|e| Error::Hdf5(format!("dataset '{path}': {e}")))?;
        let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        if values.len() != shape.iter().product::<usize>() {
            return Err(Error::Hdf5(format!(
                "dataset '{path}' holds {} values for shape {shape:?}",
                values.len()
            )));
        }
        Ok(Array { shape, values })
    }
}

/// Strings of a string or string-array attribute (nothing for other types).
fn as_strings(v: AttrValue) -> Vec<String> {
    match v {
        AttrValue::String(s)
        | AttrValue::AsciiString(s)
        | AttrValue::VarLenString(s)
        | AttrValue::VarLenAsciiString(s) => {
            vec![s]
        }
        AttrValue::StringSized { value, .. } | AttrValue::AsciiStringSized { value, .. } => {
            vec![value]
        }
        AttrValue::StringArray(a)
        | AttrValue::AsciiStringArray(a)
        | AttrValue::VarLenStringArray(a)
        | AttrValue::VarLenAsciiStringArray(a)
        | AttrValue::VarLenAsciiCharArray(a) => a,
        AttrValue::StringArraySized { values, .. }
        | AttrValue::AsciiStringArraySized { values, .. } => values,
        _ => Vec::new(),
    }
}
