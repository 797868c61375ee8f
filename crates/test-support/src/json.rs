//! Reading JSON files and the arrays of numbers and strings in them.

use std::path::Path;

use serde_json::Value;

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not an array"))
}

/// An array of numbers as `f32`.
///
/// ```
/// use convscope_test_support::json::{f32s, strs, usizes};
/// let v = serde_json::json!({"x": [0.5, 2], "n": [1, 3], "s": ["a"]});
/// assert_eq!(f32s(&v["x"]), [0.5, 2.0]);
/// assert_eq!(usizes(&v["n"]), [1, 3]);
/// assert_eq!(strs(&v["s"]), ["a"]);
/// ```
pub fn f32s(v: &Value) -> Vec<f32> {
    array(v)
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("{x} is not a number")) as f32)
        .collect()
}

/// An array of non-negative integers as `usize`.
pub fn usizes(v: &Value) -> Vec<usize> {
    array(v)
        .iter()
        .map(|x| {
            x.as_u64()
                .unwrap_or_else(|| panic!("{x} is not an integer")) as usize
        })
        .collect()
}

/// An array of strings.
pub fn strs(v: &Value) -> Vec<String> {
    array(v)
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("{x} is not a string"))
                .to_string()
        })
        .collect()
}
