//! Parsing `--layers` selections: names, raw ONNX value names, indices, ranges, globs, `all`.

use convscope_engine::{Layer, Model, ValueId};

use crate::error::{Error, Result};

/// One selected value with the name to show for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Selected {
    /// Friendly layer name, or the raw ONNX name when the value is not a layer output.
    pub label: String,
    /// The value.
    pub value: ValueId,
    /// The layer, when the value is a layer's output.
    pub layer: Option<Layer>,
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], text) || (!text.is_empty() && glob_match(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob_match(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// Parses a layer index no larger than `max` (`n` layers exist).
fn parse_index(s: &str, max: usize, n: usize) -> Result<usize> {
    let i: usize = s
        .trim()
        .parse()
        .map_err(|_| Error::Layer(format!("'{s}' is not a layer index")))?;
    if i > max {
        return Err(Error::Layer(format!(
            "layer index {i} is out of range: the model has {n} layers (0..{n})"
        )));
    }
    Ok(i)
}

/// Resolves a comma-separated selection against the model's layers, in the order given.
///
/// Items: `all`; an index `3`; a range `0..8`, `2..=4`, `..5`, `10..`; a glob `block3_*`; a
/// friendly layer name; any raw ONNX value or node name.
pub fn select_layers(model: &Model, spec: &str) -> Result<Vec<Selected>> {
    let layers = model.layers();
    let n = layers.len();
    let mut out: Vec<Selected> = Vec::new();
    let push = |out: &mut Vec<Selected>, s: Selected| {
        if !out.iter().any(|o| o.value == s.value) {
            out.push(s);
        }
    };
    let of_layer = |l: &Layer| Selected {
        label: l.name.clone(),
        value: l.value,
        layer: Some(l.clone()),
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            layers.iter().for_each(|l| push(&mut out, of_layer(l)));
        } else if let Some((a, b)) = item.split_once("..").filter(|(a, b)| {
            let num = |s: &str| {
                s.is_empty()
                    || s.trim_start_matches('=')
                        .chars()
                        .all(|c| c.is_ascii_digit())
            };
            num(a) && num(b) && !(a.is_empty() && b.is_empty())
        }) {
            let start = if a.is_empty() {
                0
            } else {
                parse_index(a, n, n)?
            };
            let end = match b.strip_prefix('=') {
                Some(e) => parse_index(e, n.saturating_sub(1), n)? + 1,
                None if b.is_empty() => n,
                None => parse_index(b, n, n)?,
            };
            if start >= end {
                return Err(Error::Layer(format!("layer range '{item}' is empty")));
            }
            layers[start..end]
                .iter()
                .for_each(|l| push(&mut out, of_layer(l)));
        } else if item.chars().all(|c| c.is_ascii_digit()) {
            let i = parse_index(item, n.saturating_sub(1), n)?;
            push(&mut out, of_layer(&layers[i]));
        } else if item.contains(['*', '?']) {
            let matched: Vec<&Layer> = layers
                .iter()
                .filter(|l| glob_match(item.as_bytes(), l.name.as_bytes()))
                .collect();
            if matched.is_empty() {
                let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
                return Err(Error::Layer(format!(
                    "no layer matches '{item}'; layers are: {}",
                    names
                        .iter()
                        .take(12)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            matched
                .into_iter()
                .for_each(|l| push(&mut out, of_layer(l)));
        } else {
            let value = model.resolve(item)?;
            match layers.iter().find(|l| l.name == item || l.value == value) {
                Some(l) if l.name == item => push(&mut out, of_layer(l)),
                _ => push(
                    &mut out,
                    Selected {
                        label: item.to_string(),
                        value,
                        layer: layers.iter().find(|l| l.value == value).cloned(),
                    },
                ),
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Layer(format!(
            "the selection '{spec}' names no layer"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"block3_*", b"block3_conv1"));
        assert!(!glob_match(b"block3_*", b"block4_conv1"));
        assert!(glob_match(b"*conv?", b"block1_conv2"));
    }
}
