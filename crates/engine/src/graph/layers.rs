//! Layers as a Keras user thinks of them: a feature-producing node together with the bias,
//! normalisation and activation nodes fused after it, named from the exporter's node names.

use super::{Graph, Source, ValueId};

/// One named layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Position in execution order (what `--layers 0..8` counts).
    pub index: usize,
    /// Friendly name, e.g. `block1_conv1` or `_blocks.0._depthwise_conv`.
    pub name: String,
    /// The ops fused into the layer, e.g. `Conv+Relu`.
    pub ops: String,
    /// ONNX name of the head node.
    pub node: String,
    /// The value the layer produces (after its fused activation).
    pub value: ValueId,
    /// The head's own output (before bias/activation nodes that follow it).
    pub raw_value: ValueId,
    /// Number of learned parameters in the layer's nodes.
    pub params: usize,
}

/// Ops that only move or reinterpret data; they never start a layer.
const PLUMBING: &[&str] = &[
    "Transpose",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Dropout",
    "Cast",
    "Shape",
    "Gather",
    "Slice",
    "Constant",
    "ConstantOfShape",
    "Split",
];

/// Element-wise ops that fuse into the layer before them.
const FUSABLE_UNARY: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Clip",
    "Softmax",
    "LogSoftmax",
    "BatchNormalization",
    "Erf",
];

pub(crate) fn build_layers(model: &Graph) -> Vec<Layer> {
    let is_const = |id: ValueId| matches!(model.values[id.0].source, Source::Const(_));
    let params_of = |ni: usize| -> usize {
        let node = &model.nodes[ni];
        node.inputs
            .iter()
            .enumerate()
            .filter_map(|(slot, id)| Some(model.parameter_elements(&node.op_type, slot, (*id)?)))
            .sum()
    };
    let mut absorbed = vec![false; model.nodes.len()];
    let mut raw: Vec<(usize, String, ValueId, usize, Vec<String>)> = Vec::new();
    for (ni, node) in model.nodes.iter().enumerate() {
        if absorbed[ni]
            || PLUMBING.contains(&node.op_type.as_str())
            || !model.values[node.outputs[0].0].varies
        {
            continue;
        }
        let mut ops = vec![node.op_type.clone()];
        let mut value = node.outputs[0];
        let mut params = params_of(ni);
        // Follow single-consumer chains of fusable element-wise nodes.
        loop {
            let cons = &model.consumers[value.0];
            if cons.len() != 1 || model.outputs.contains(&value) {
                break;
            }
            let c = cons[0];
            let cn = &model.nodes[c];
            let others_const = cn
                .inputs
                .iter()
                .flatten()
                .filter(|&&id| id != value)
                .all(|&id| is_const(id));
            let fusable = FUSABLE_UNARY.contains(&cn.op_type.as_str())
                || (matches!(cn.op_type.as_str(), "Add" | "Sub" | "Mul" | "Div") && others_const);
            if !fusable || !others_const || cn.outputs.len() != 1 {
                break;
            }
            absorbed[c] = true;
            ops.push(cn.op_type.clone());
            params += params_of(c);
            value = cn.outputs[0];
        }
        raw.push((ni, ops.join("+"), value, params, Vec::new()));
    }
    let names = friendly_names(
        raw.iter()
            .map(|r| {
                (
                    model.nodes[r.0].name.as_str(),
                    model.nodes[r.0].op_type.as_str(),
                )
            })
            .collect(),
    );
    raw.into_iter()
        .zip(names)
        .enumerate()
        .map(|(index, ((ni, ops, value, params, _), name))| Layer {
            index,
            name,
            ops,
            node: model.nodes[ni].name.clone(),
            value,
            raw_value: model.nodes[ni].outputs[0],
            params,
        })
        .collect()
}

/// The module path (`features.3.1.block`) of a TorchScript exporter's scope, whose levels
/// repeat their parent's name: `/features/features.3/features.3.1/block/...` names
/// `model.features[3][1].block`. A level that extends the one before it (`features.3` after
/// `features`) replaces it; any other level (an attribute such as `block`) is appended.
fn module_path(scope: &[&str]) -> String {
    let mut path: Vec<&str> = Vec::with_capacity(scope.len());
    for &level in scope {
        match path.last_mut() {
            Some(last)
                if level.len() > last.len()
                    && level.starts_with(*last)
                    && level.as_bytes()[last.len()] == b'.' =>
            {
                *last = level
            }
            _ => path.push(level),
        }
    }
    path.join(".")
}

fn is_keras_scope(s: &str) -> bool {
    ["functional", "sequential", "model"].iter().any(|p| {
        s.strip_prefix(p).is_some_and(|rest| {
            rest.is_empty()
                || (rest.starts_with('_') && rest[1..].chars().all(|c| c.is_ascii_digit()))
        })
    })
}

/// Strips one `_<digits>` suffix.
fn strip_counter(s: &str) -> Option<&str> {
    let (head, tail) = s.rsplit_once('_')?;
    (!tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) && !head.is_empty())
        .then_some(head)
}

/// Friendly names for layer heads given `(node name, op type)`, unique and in order.
pub(crate) fn friendly_names(heads: Vec<(&str, &str)>) -> Vec<String> {
    let mut tf_style = Vec::new();
    let mut names: Vec<String> = heads
        .iter()
        .enumerate()
        .map(|(i, &(name, op))| {
            if let Some(rest) = name.strip_prefix('/') {
                // PyTorch: "/_blocks.0/_depthwise_conv/Conv" → "_blocks.0._depthwise_conv".
                let parts: Vec<&str> = rest.split('/').collect();
                let scope = &parts[..parts.len().saturating_sub(1)];
                if !scope.is_empty() {
                    return module_path(scope);
                }
            } else if name.contains('/') {
                // tf2onnx: "functional_1/block1_conv1_1/BiasAdd" → "block1_conv1".
                let parts: Vec<&str> = name.split('/').collect();
                let start = usize::from(parts.len() > 2 && is_keras_scope(parts[0]));
                tf_style.push(i);
                return parts[start].to_string();
            } else if !name.is_empty() {
                return name.to_string();
            }
            format!("{}_{i}", op.to_ascii_lowercase())
        })
        .collect();
    // Keras 3 adds a `_1` counter to every scope in functional models; drop it when it is on every
    // tf-style name and dropping it creates no clash.
    if !tf_style.is_empty() && tf_style.iter().all(|&i| strip_counter(&names[i]).is_some()) {
        let stripped: Vec<String> = tf_style
            .iter()
            .map(|&i| strip_counter(&names[i]).unwrap_or_default().to_string())
            .collect();
        let unique: std::collections::HashSet<&String> = stripped.iter().collect();
        if unique.len() == stripped.len() {
            for (k, &i) in tf_style.iter().enumerate() {
                names[i] = stripped[k].clone();
            }
        }
    }
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    names
        .into_iter()
        .map(|n| {
            let count = seen.entry(n.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                n
            } else {
                format!("{n}_{count}")
            }
        })
        .collect()
}

/// Edit distance, for "did you mean" suggestions.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The `k` candidates closest to `name` (substring matches first, then by edit distance).
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>, k: usize) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, usize, &str)> = candidates
        .map(|c| {
            let contains =
                c.to_ascii_lowercase().contains(&lower) || lower.contains(&c.to_ascii_lowercase());
            (
                usize::from(!contains),
                levenshtein(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .collect();
    scored.sort();
    let mut out: Vec<String> = Vec::new();
    for (_, _, c) in scored {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
        if out.len() == k {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_strip_exporter_noise() {
        let n = friendly_names(vec![
            ("functional_1/block1_conv1_1/BiasAdd", "Conv"),
            ("functional_1/block1_pool_1/MaxPool2d", "MaxPool"),
            ("functional_1/dense_1/MatMul", "MatMul"),
            ("functional_1/dense_1_2/MatMul", "MatMul"),
        ]);
        assert_eq!(n, ["block1_conv1", "block1_pool", "dense", "dense_1"]);
        let p = friendly_names(vec![
            ("/_blocks.0/_depthwise_conv/Conv", "Conv"),
            ("", "Relu"),
            ("conv1", "Conv"),
            ("conv1", "Conv"),
        ]);
        assert_eq!(
            p,
            ["_blocks.0._depthwise_conv", "relu_1", "conv1", "conv1_2"]
        );
        // torchvision's nested Sequentials and attributes: the module paths a PyTorch user
        // types (`model.features[3][1].block[0]`, `model.encoder.layers.encoder_layer_11`).
        let t = friendly_names(vec![
            (
                "/features/features.3/features.3.1/block/block.0/Conv",
                "Conv",
            ),
            (
                "/encoder/layers/encoder_layer_11/ln_1/LayerNormalization",
                "LayerNormalization",
            ),
            ("/features/features.3/features.3.1/Add", "Add"),
            // Not an extension of "layer": only a whole dotted level counts.
            ("/layer/layer1/Conv", "Conv"),
        ]);
        assert_eq!(
            t,
            [
                "features.3.1.block.0",
                "encoder.layers.encoder_layer_11.ln_1",
                "features.3.1",
                "layer.layer1"
            ]
        );
    }

    #[test]
    fn closest_prefers_substrings() {
        let c = closest(
            "block1_conv",
            ["block1_conv1", "block1_conv2", "dense", "block1_pool"].into_iter(),
            2,
        );
        assert_eq!(c, ["block1_conv1", "block1_conv2"]);
    }
}
