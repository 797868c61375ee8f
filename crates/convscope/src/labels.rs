//! Class names: one per line, in index order.

use std::path::Path;

use crate::error::{Error, Result};

/// The names of a classifier's classes.
///
/// ```
/// use convscope::Labels;
///
/// let labels = Labels::new(["cat", "dog"]);
/// assert_eq!(labels.name(1), "dog");
/// assert_eq!(labels.name(7), "class 7");
/// assert_eq!(labels.index_of("Dog")?, 1);
/// assert!(labels.index_of("cta").unwrap_err().to_string().contains("closest: cat"));
/// assert!(labels.check_count(3).unwrap().contains("2 names for 3 classes"));
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Labels {
    names: Vec<String>,
}

impl Labels {
    /// Labels from names in index order.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Labels {
        Labels {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Reads a text file with one class name per line (surrounding spaces trimmed; a trailing
    /// empty line ignored).
    pub fn read(path: impl AsRef<Path>) -> Result<Labels> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io("read labels", path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Config(format!(
                "labels {} is not UTF-8 text (one class name per line)",
                path.display()
            ))
        })?;
        Ok(Labels::new(text.lines().map(str::trim)))
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name of class `i`, or `class i` when the file has none for it.
    pub fn name(&self, i: usize) -> String {
        self.names
            .get(i)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("class {i}"))
    }

    /// The index of the class called `name` (case-insensitive); the error lists the closest
    /// names.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        if let Some(i) = self.names.iter().position(|l| l.eq_ignore_ascii_case(name)) {
            return Ok(i);
        }
        let close = convscope_engine::closest(name, self.names.iter().map(String::as_str), 5);
        Err(Error::Config(format!(
            "no class named '{name}'; closest: {}",
            close.join(", ")
        )))
    }

    /// A warning when the file does not name every one of `classes` classes (or names more).
    pub fn check_count(&self, classes: usize) -> Option<String> {
        (self.names.len() != classes).then(|| {
            format!(
                "the labels file has {} names for {classes} classes; {}",
                self.names.len(),
                if self.names.len() < classes {
                    "classes without a name are shown as 'class N'"
                } else {
                    "the extra names are not used"
                }
            )
        })
    }
}

/// The name of class `i` with optional labels.
pub(crate) fn name_of(labels: Option<&Labels>, i: usize) -> String {
    labels.map_or_else(|| format!("class {i}"), |l| l.name(i))
}
