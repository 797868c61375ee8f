//! Small text helpers: file-name-safe names, column fitting, HTML escaping, index lists.

use crate::error::{Error, Result};

/// A file-name-safe version of a layer or class name (at most 80 characters).
///
/// ```
/// assert_eq!(convscope::text::file_stem("/_blocks.0/_conv/Conv"), "blocks.0__conv_Conv");
/// assert_eq!(convscope::text::file_stem("tabby cat"), "tabby_cat");
/// assert_eq!(convscope::text::file_stem("///"), "value");
/// ```
pub fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches(|c| c == '_' || c == '.').to_string();
    if s.is_empty() {
        "value".into()
    } else {
        s.chars().take(80).collect()
    }
}

/// `text` shortened to `width` characters with an ellipsis when longer (for table columns:
/// a name of any length never breaks the layout).
///
/// ```
/// assert_eq!(convscope::text::fit_width("block1_conv1", 8), "block1_…");
/// assert_eq!(convscope::text::fit_width("conv", 8), "conv");
/// ```
pub fn fit_width(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Parses `0..64`, `3,7,9`, `2..=4`, `..5`, `10..`, `all` into indices below `n`.
///
/// ```
/// use convscope::text::parse_indices;
///
/// assert_eq!(parse_indices("0..3,7", 10, "filter")?, vec![0, 1, 2, 7]);
/// assert_eq!(parse_indices("8..", 10, "filter")?, vec![8, 9]);
/// assert!(parse_indices("12", 10, "filter").unwrap_err().to_string().contains("out of range"));
/// # Ok::<(), convscope::Error>(())
/// ```
pub fn parse_indices(spec: &str, n: usize, what: &str) -> Result<Vec<usize>> {
    let bad = |item: &str, form: &str| Error::Config(format!("'{item}' is not a {form}"));
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            out.extend(0..n);
        } else if let Some((a, b)) = item.split_once("..") {
            let a: usize = if a.is_empty() {
                0
            } else {
                a.parse().map_err(|_| bad(item, "range like 0..64"))?
            };
            let b: usize = if b.is_empty() {
                n
            } else if let Some(e) = b.strip_prefix('=') {
                e.parse::<usize>()
                    .map_err(|_| bad(item, "range like 2..=4"))?
                    .saturating_add(1)
            } else {
                b.parse().map_err(|_| bad(item, "range like 0..64"))?
            };
            if a >= b {
                return Err(Error::Config(format!("{what} range '{item}' is empty")));
            }
            if b > n {
                return Err(Error::Config(format!(
                    "{what} index {} is out of range: there are {n} (0..{n})",
                    b - 1
                )));
            }
            out.extend(a..b);
        } else {
            out.push(
                item.parse()
                    .map_err(|_| bad(item, &format!("{what} index")))?,
            );
        }
    }
    if let Some(&bad) = out.iter().find(|&&i| i >= n) {
        return Err(Error::Config(format!(
            "{what} index {bad} is out of range: there are {n} (0..{n})"
        )));
    }
    if out.is_empty() {
        return Err(Error::Config(format!("no {what} selected by '{spec}'")));
    }
    Ok(out)
}
