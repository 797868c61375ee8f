//! Finding each layer's weights in the HDF5 data, in Keras's order for that layer (a Conv2D's
//! kernel then bias, a BatchNormalization's gamma, beta, moving mean, moving variance).
//!
//! Two layouts exist:
//! - Keras 3 (`model.weights.h5` in a `.keras` zip): `layers/<auto name>/vars/0, 1, ...`, the
//!   auto name being the class in snake case with a counter; the `vars` group's `name`
//!   attribute holds the layer's real name. A nested model's layers sit under
//!   `layers/<auto name>/layers/...`.
//! - Legacy `.h5` (Keras 2, and Keras 3's `model.save("m.h5")`): `model_weights/<layer>/` with
//!   a `weight_names` attribute listing dataset paths relative to that group, in order. A nested
//!   model's group holds all its layers' weights, named `<inner layer>/<weight>`.

use std::collections::HashMap;

use crate::error::Result;
use crate::h5::{Array, H5};

/// Every layer's weights, keyed by layer path (`outer/inner` for nested models).
#[derive(Debug, Default)]
pub(crate) struct Weights {
    /// Keras 3: path → arrays in order.
    by_path: HashMap<String, Vec<Array>>,
    /// Legacy: top-level layer → (weight name, array) in order.
    legacy: HashMap<String, Vec<(String, Array)>>,
}

/// Nesting deeper than this is refused (a hostile file could loop its groups).
const MAX_DEPTH: usize = 16;

impl Weights {
    /// Reads a Keras 3 weights file.
    pub(crate) fn keras3(h5: &H5) -> Result<Weights> {
        let mut w = Weights::default();
        if h5.has_group("layers") {
            read_keras3(h5, "layers", "", &mut w.by_path, 0)?;
        }
        Ok(w)
    }

    /// Reads the legacy layout under `root` (`model_weights`, or `/` for a weights-only file).
    pub(crate) fn legacy(h5: &H5, root: &str) -> Result<Weights> {
        let mut w = Weights::default();
        let mut names = h5.attr_strings(root, "layer_names")?;
        if names.is_empty() {
            names = h5.members(root)?.0;
        }
        for layer in names {
            // Every listed layer has a group; one that cannot be read means a damaged file.
            let group = format!("{root}/{layer}");
            let mut list = Vec::new();
            for wn in h5.attr_strings(&group, "weight_names")? {
                list.push((wn.clone(), h5.read(&format!("{group}/{wn}"))?));
            }
            w.legacy.insert(layer, list);
        }
        Ok(w)
    }

    /// Every weight value in the file (each array once): the count Keras's `model.summary()`
    /// prints as "Total params", non-trainable statistics included.
    pub(crate) fn element_count(&self) -> usize {
        let keras3: usize = self
            .by_path
            .values()
            .flatten()
            .map(|a| a.values.len())
            .sum();
        let legacy: usize = self
            .legacy
            .values()
            .flatten()
            .map(|(_, a)| a.values.len())
            .sum();
        keras3 + legacy
    }

    /// Every weight value of the top-level layer `name`, a nested model's inner layers
    /// included: what Keras's `layer.count_params()` counts.
    pub(crate) fn count_of(&self, name: &str) -> usize {
        let inner = format!("{name}/");
        let keras3: usize = self
            .by_path
            .iter()
            .filter(|(path, _)| *path == name || path.starts_with(&inner))
            .flat_map(|(_, arrays)| arrays)
            .map(|a| a.values.len())
            .sum();
        let legacy: usize = self
            .legacy
            .get(name)
            .into_iter()
            .flatten()
            .map(|(_, a)| a.values.len())
            .sum();
        keras3 + legacy
    }

    /// The weights of the layer at `path` (`["block1_conv1"]` or `["vgg16", "block1_conv1"]`),
    /// or `None` when the file has none for it.
    pub(crate) fn get(&self, path: &[String]) -> Option<Vec<Array>> {
        if let Some(v) = self.by_path.get(&path.join("/")) {
            return Some(v.clone());
        }
        let top = self.legacy.get(path.first()?)?;
        if path.len() == 1 {
            return Some(top.iter().map(|(_, a)| a.clone()).collect());
        }
        // Inside a nested model: weights named `.../<inner layer>/<weight>`.
        let inner = path.last()?;
        let picked: Vec<Array> = top
            .iter()
            .filter(|(n, _)| {
                let parts: Vec<&str> = n.split('/').collect();
                parts.len() >= 2 && parts[parts.len() - 2] == inner
            })
            .map(|(_, a)| a.clone())
            .collect();
        (!picked.is_empty()).then_some(picked)
    }
}

fn read_keras3(
    h5: &H5,
    group: &str,
    prefix: &str,
    out: &mut HashMap<String, Vec<Array>>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let (children, _) = h5.members(group)?;
    for child in children {
        let at = format!("{group}/{child}");
        let vars = format!("{at}/vars");
        // The real layer name; files written before Keras stored it only have the auto name.
        let name = if h5.has_group(&vars) {
            h5.attr_string(&vars, "name")?
                .unwrap_or_else(|| child.clone())
        } else {
            child.clone()
        };
        let path = format!("{prefix}{name}");
        if h5.has_group(&vars) {
            let (_, datasets) = h5.members(&vars)?;
            let mut numbered: Vec<(usize, String)> = datasets
                .into_iter()
                .filter_map(|d| Some((d.parse().ok()?, d)))
                .collect();
            numbered.sort();
            let mut arrays = Vec::new();
            for (_, d) in numbered {
                arrays.push(h5.read(&format!("{vars}/{d}"))?);
            }
            if !arrays.is_empty() {
                out.insert(path.clone(), arrays);
            }
        }
        let inner = format!("{at}/layers");
        if h5.has_group(&inner) {
            read_keras3(h5, &inner, &format!("{path}/"), out, depth + 1)?;
        }
    }
    Ok(())
}
