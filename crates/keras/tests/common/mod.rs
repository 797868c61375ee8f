//! Helpers shared by the Keras integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

use convscope_engine::{Model, Tensor, ValueId};
use serde_json::Value;

/// A fixture file of `tests/data` (written by `scripts/keras/make_fixtures.py`).
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The reference JSON of a fixture.
pub fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(data(name)).expect("reference JSON");
    serde_json::from_str(&text).expect("valid JSON")
}

/// The fixtures' input: `x[0,h,w,c] = ((31h + 17w + 7c) mod 255) / 255`, NHWC.
pub fn fixed_input(h: usize, w: usize, c: usize) -> Tensor {
    let mut v = Vec::with_capacity(h * w * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                v.push(((31 * y + 17 * x + 7 * ch) % 255) as f32 / 255.0);
            }
        }
    }
    Tensor::new(vec![1, h, w, c], v).unwrap()
}

/// The engine model of a Keras file.
pub fn load(file: &str) -> Model {
    let keras =
        convscope_keras::KerasModel::load(&data(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    Model::from_proto(keras.proto).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The value a Keras layer outputs, by its path (see [`load_for_values`]).
pub fn value_of(model: &Model, path: &str) -> ValueId {
    let id = model
        .resolve(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        model.value_name(id),
        path,
        "resolved a layer, not the value"
    );
    id
}

/// `t` (NCHW when 4-D, as the engine holds images) in Keras's NHWC element order.
pub fn keras_order(t: &Tensor) -> (Vec<usize>, Vec<f32>) {
    if t.rank() == 4 {
        let p = t.permute(&[0, 2, 3, 1]);
        (p.shape().to_vec(), p.data().to_vec())
    } else {
        (t.shape().to_vec(), t.data().to_vec())
    }
}

/// Checks `got` (Keras order) against a reference summary: shape, max |x| and every sampled
/// value within `tol` of the reference's max |x|. Returns the worst error relative to the max.
pub fn compare(what: &str, shape: &[usize], got: &[f32], want: &Value, tol: f32) -> f32 {
    let want_shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(shape, want_shape.as_slice(), "{what}: shape");
    let max = want["max_abs"].as_f64().unwrap() as f32;
    let scale = max.max(1e-6);
    let got_max = got.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut worst = (got_max - max).abs() / scale;
    for s in want["samples"].as_array().unwrap() {
        let i = s[0].as_u64().unwrap() as usize;
        let v = s[1].as_f64().unwrap() as f32;
        worst = worst.max((got[i] - v).abs() / scale);
    }
    let sum: f64 = got.iter().map(|&v| v as f64).sum();
    let want_sum = want["sum"].as_f64().unwrap();
    let sum_err = ((sum - want_sum).abs() / (scale as f64 * got.len() as f64)) as f32;
    assert!(
        worst <= tol && sum_err <= tol,
        "{what}: worst error {worst:.2e} (sum {sum_err:.2e}) of max {max}, over {tol:.0e}"
    );
    worst
}

/// [`load`] with every node renamed `<name>#node`, so that `Model::resolve(path)` finds the value
/// a Keras layer outputs rather than the engine layer of the same name (whose value is after
/// the ops fused into it, e.g. a Conv2D's BatchNormalization and ReLU).
pub fn load_for_values(file: &str) -> Model {
    let mut keras =
        convscope_keras::KerasModel::load(&data(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    for n in &mut keras.proto.graph.node {
        n.name.push_str("#node");
    }
    Model::from_proto(keras.proto).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A zip archive of stored members, as a `.keras` file is (for tests that rewrite one).
pub fn zip_stored(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut dir) = (Vec::new(), Vec::new());
    let le16 = |v: usize| (v as u16).to_le_bytes();
    let le32 = |v: usize| (v as u32).to_le_bytes();
    for (name, data) in members {
        let crc = crc32(data);
        let offset = out.len();
        out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&le32(data.len()));
        out.extend_from_slice(&le32(data.len()));
        out.extend_from_slice(&le16(name.len()));
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        dir.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0");
        dir.extend_from_slice(&crc.to_le_bytes());
        dir.extend_from_slice(&le32(data.len()));
        dir.extend_from_slice(&le32(data.len()));
        dir.extend_from_slice(&le16(name.len()));
        dir.extend_from_slice(&[0; 12]);
        dir.extend_from_slice(&le32(offset));
        dir.extend_from_slice(name.as_bytes());
    }
    let at = out.len();
    out.extend_from_slice(&dir);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&le16(members.len()));
    out.extend_from_slice(&le16(members.len()));
    out.extend_from_slice(&le32(dir.len()));
    out.extend_from_slice(&le32(at));
    out.extend_from_slice(&[0, 0]);
    out
}

/// Where the parts of a [`zip64_stored`] archive are, for tests that damage them.
#[derive(Debug, Clone, Copy)]
pub struct Zip64Layout {
    /// Offset of the central directory.
    pub directory: usize,
    /// Offset of the ZIP64 end-of-central-directory record (56 bytes).
    pub end64: usize,
    /// Offset of the ZIP64 locator (20 bytes), just before the classic end record.
    pub locator: usize,
}

/// A ZIP64 archive of stored members, as Python's `zipfile` writes one past 4 GiB or 65,535
/// members: every local header carries a ZIP64 extra field (as `force_zip64=True` writes it),
/// every central entry says `0xFFFFFFFF` for both sizes and the local offset and gives them in
/// its ZIP64 extra field, and the classic end record defers to a ZIP64 end record found
/// through its locator. Small data, so readers must take the ZIP64 path, not the 32-bit one.
pub fn zip64_stored(members: &[(&str, Vec<u8>)]) -> (Vec<u8>, Zip64Layout) {
    let (mut out, mut dir) = (Vec::new(), Vec::new());
    let le16 = |v: usize| (v as u16).to_le_bytes();
    let le64 = |v: usize| (v as u64).to_le_bytes();
    let all_ones = u32::MAX.to_le_bytes();
    for (name, data) in members {
        let crc = crc32(data);
        let offset = out.len();
        out.extend_from_slice(b"PK\x03\x04\x2d\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&all_ones);
        out.extend_from_slice(&all_ones);
        out.extend_from_slice(&le16(name.len()));
        out.extend_from_slice(&le16(20));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&[1, 0, 16, 0]);
        out.extend_from_slice(&le64(data.len()));
        out.extend_from_slice(&le64(data.len()));
        out.extend_from_slice(data);
        dir.extend_from_slice(b"PK\x01\x02\x2d\0\x2d\0\0\0\0\0\0\0\0\0");
        dir.extend_from_slice(&crc.to_le_bytes());
        dir.extend_from_slice(&all_ones);
        dir.extend_from_slice(&all_ones);
        dir.extend_from_slice(&le16(name.len()));
        dir.extend_from_slice(&le16(28));
        dir.extend_from_slice(&[0; 10]);
        dir.extend_from_slice(&all_ones);
        dir.extend_from_slice(name.as_bytes());
        dir.extend_from_slice(&[1, 0, 24, 0]);
        dir.extend_from_slice(&le64(data.len()));
        dir.extend_from_slice(&le64(data.len()));
        dir.extend_from_slice(&le64(offset));
    }
    let directory = out.len();
    out.extend_from_slice(&dir);
    let end64 = out.len();
    out.extend_from_slice(b"PK\x06\x06");
    out.extend_from_slice(&le64(44));
    out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&le64(members.len()));
    out.extend_from_slice(&le64(members.len()));
    out.extend_from_slice(&le64(dir.len()));
    out.extend_from_slice(&le64(directory));
    let locator = out.len();
    out.extend_from_slice(b"PK\x06\x07\0\0\0\0");
    out.extend_from_slice(&le64(end64));
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff");
    out.extend_from_slice(&all_ones);
    out.extend_from_slice(&all_ones);
    out.extend_from_slice(&[0, 0]);
    (
        out,
        Zip64Layout {
            directory,
            end64,
            locator,
        },
    )
}

/// CRC-32 (IEEE), bit by bit: test files are small.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The members of a stored `.keras` archive, by name (via the `unzip`-free reader in this file).
pub fn unzip_stored(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while zip.get(at..at + 4) == Some(b"PK\x03\x04") {
        let u16_at = |i: usize| u16::from_le_bytes([zip[i], zip[i + 1]]) as usize;
        let size = u32::from_le_bytes(zip[at + 18..at + 22].try_into().unwrap()) as usize;
        let (n, e) = (u16_at(at + 26), u16_at(at + 28));
        let name = String::from_utf8(zip[at + 30..at + 30 + n].to_vec()).unwrap();
        let start = at + 30 + n + e;
        out.push((name, zip[start..start + size].to_vec()));
        at = start + size;
    }
    out
}
