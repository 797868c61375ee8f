//! The model configuration (`config.json` of a `.keras` file, the `model_config` attribute of
//! an `.h5` file) as a graph of layer calls, for Keras 3 and Keras 2 alike.

use serde_json::Value;

use crate::error::{Error, Result};

/// A reference to a tensor: the output `tensor` of call `node` of layer `layer`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TensorRef {
    pub layer: String,
    pub node: usize,
    pub tensor: usize,
}

/// A layer of a model, with every call of it (a shared layer is called more than once).
#[derive(Debug, Clone)]
pub(crate) struct LayerSpec {
    pub name: String,
    pub class: String,
    /// The registered name of a custom class (`package>Class`), when the file gives one.
    pub registered: Option<String>,
    pub config: Value,
    /// The input tensors of each call, in call order.
    pub calls: Vec<Vec<TensorRef>>,
    /// A nested model's own graph.
    pub nested: Option<Box<Graph>>,
}

/// A Functional (or Sequential, turned into a chain) model.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub name: String,
    /// A Sequential model (Keras's summary leaves out its InputLayer).
    pub sequential: bool,
    pub layers: Vec<LayerSpec>,
    pub inputs: Vec<TensorRef>,
    pub outputs: Vec<TensorRef>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// Model classes whose config holds a `layers` list.
pub(crate) fn is_model_class(class: &str) -> bool {
    matches!(class, "Sequential" | "Functional" | "Model")
}

/// Parses a model config (`{"class_name": ..., "config": ...}`).
pub(crate) fn parse_model(v: &Value) -> Result<Graph> {
    parse_model_depth(v, 0)
}

fn parse_model_depth(v: &Value, depth: usize) -> Result<Graph> {
    if depth > 16 {
        return Err(bad("models nested more than 16 deep"));
    }
    let class = v
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the model has no class_name"))?;
    let config = v
        .get("config")
        .ok_or_else(|| bad("the model has no config"))?;
    match class {
        "Sequential" => parse_sequential(config, depth),
        "Functional" | "Model" => parse_functional(config, depth),
        other => Err(bad(format!(
            "the top-level object is a {other}, not a Sequential or Functional model"
        ))),
    }
}

fn name_of(v: &Value) -> Option<String> {
    v.get("config")
        .and_then(|c| c.get("name"))
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn layer_spec(v: &Value, depth: usize) -> Result<LayerSpec> {
    let class = v
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a layer has no class_name"))?
        .to_string();
    let name = name_of(v).ok_or_else(|| bad(format!("a {class} layer has no name")))?;
    let config = v.get("config").cloned().unwrap_or(Value::Null);
    let nested = if is_model_class(&class) && config.get("layers").is_some() {
        Some(Box::new(parse_model_depth(v, depth + 1)?))
    } else {
        None
    };
    let registered = v
        .get("registered_name")
        .and_then(Value::as_str)
        .filter(|r| *r != class && !r.is_empty())
        .map(str::to_string);
    Ok(LayerSpec {
        name,
        class,
        registered,
        config,
        calls: Vec::new(),
        nested,
    })
}

fn layers_of(config: &Value) -> Result<&Vec<Value>> {
    config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the model config has no layers list"))
}

fn parse_sequential(config: &Value, depth: usize) -> Result<Graph> {
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("sequential")
        .to_string();
    let mut layers = Vec::new();
    for l in layers_of(config)? {
        layers.push(layer_spec(l, depth)?);
    }
    if layers.is_empty() {
        return Err(bad(format!("Sequential model '{name}' has no layers")));
    }
    // Keras 2 may leave out the InputLayer and put the shape on the first layer instead.
    if layers[0].class != "InputLayer" {
        let shape = layers[0]
            .config
            .get("batch_input_shape")
            .or_else(|| layers[0].config.get("batch_shape"))
            .cloned()
            .or_else(|| config.get("build_input_shape").cloned())
            .ok_or_else(|| {
                bad(format!(
                    "Sequential model '{name}' does not say its input shape"
                ))
            })?;
        layers.insert(
            0,
            LayerSpec {
                name: format!("{name}_input"),
                class: "InputLayer".into(),
                registered: None,
                config: serde_json::json!({ "batch_shape": shape }),
                calls: Vec::new(),
                nested: None,
            },
        );
    }
    for i in 1..layers.len() {
        let prev = TensorRef {
            layer: layers[i - 1].name.clone(),
            node: 0,
            tensor: 0,
        };
        layers[i].calls.push(vec![prev]);
    }
    let last = layers.last().map(|l| l.name.clone()).unwrap_or_default();
    let first = layers[0].name.clone();
    Ok(Graph {
        name,
        sequential: true,
        layers,
        inputs: vec![TensorRef {
            layer: first,
            node: 0,
            tensor: 0,
        }],
        outputs: vec![TensorRef {
            layer: last,
            node: 0,
            tensor: 0,
        }],
    })
}

/// `[name, node, tensor]` (Keras 3 and 2), with or without a trailing kwargs object.
fn tensor_ref(v: &Value) -> Option<TensorRef> {
    let a = v.as_array()?;
    Some(TensorRef {
        layer: a.first()?.as_str()?.to_string(),
        node: usize::try_from(a.get(1)?.as_u64()?).ok()?,
        tensor: usize::try_from(a.get(2)?.as_u64()?).ok()?,
    })
}

/// `input_layers` / `output_layers`: one reference or a list of them.
fn tensor_refs(v: Option<&Value>, what: &str) -> Result<Vec<TensorRef>> {
    let v = v.ok_or_else(|| bad(format!("the model config has no {what}")))?;
    if let Some(one) = tensor_ref(v) {
        return Ok(vec![one]);
    }
    v.as_array()
        .map(|a| a.iter().filter_map(tensor_ref).collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad(format!("the model's {what} are malformed")))
}

/// Keras 3: every `__keras_tensor__` in a call's args, in order.
fn keras3_tensors(v: &Value, out: &mut Vec<TensorRef>, depth: usize) {
    if depth > 32 {
        return;
    }
    match v {
        Value::Object(o)
            if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
        {
            if let Some(r) = o
                .get("config")
                .and_then(|c| c.get("keras_history"))
                .and_then(tensor_ref)
            {
                out.push(r);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keras3_tensors(x, out, depth + 1)),
        _ => {}
    }
}

fn parse_calls(v: &Value) -> Result<Vec<Vec<TensorRef>>> {
    let Some(nodes) = v.get("inbound_nodes").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut calls = Vec::new();
    for node in nodes {
        let mut inputs = Vec::new();
        if let Some(args) = node.get("args") {
            // Keras 3: {"args": [...], "kwargs": {...}}.
            keras3_tensors(args, &mut inputs, 0);
        } else if let Some(list) = node.as_array() {
            // Keras 2: [["layer", node, tensor, {kwargs}], ...].
            for r in list {
                inputs
                    .push(tensor_ref(r).ok_or_else(|| bad("a Keras 2 inbound node is malformed"))?);
            }
        }
        if inputs.is_empty() {
            return Err(bad(format!(
                "layer '{}' is called without a tensor input",
                name_of(v).unwrap_or_default()
            )));
        }
        calls.push(inputs);
    }
    Ok(calls)
}

fn parse_functional(config: &Value, depth: usize) -> Result<Graph> {
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("model")
        .to_string();
    let mut layers = Vec::new();
    for l in layers_of(config)? {
        let mut spec = layer_spec(l, depth)?;
        spec.calls = parse_calls(l)?;
        layers.push(spec);
    }
    Ok(Graph {
        name,
        sequential: false,
        inputs: tensor_refs(config.get("input_layers"), "input_layers")?,
        outputs: tensor_refs(config.get("output_layers"), "output_layers")?,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras2_and_keras3_calls_parse_alike() {
        let k2 = serde_json::json!({"name": "add", "inbound_nodes": [[["a", 0, 0, {}], ["b", 1, 0, {}]]]});
        let k3 = serde_json::json!({"name": "add", "inbound_nodes": [{"args": [[
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}},
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["b", 1, 0]}}]], "kwargs": {}}]});
        let want = vec![vec![
            TensorRef {
                layer: "a".into(),
                node: 0,
                tensor: 0,
            },
            TensorRef {
                layer: "b".into(),
                node: 1,
                tensor: 0,
            },
        ]];
        assert_eq!(parse_calls(&k2).unwrap(), want);
        assert_eq!(parse_calls(&k3).unwrap(), want);
    }

    #[test]
    fn sequential_without_input_layer_gets_one() {
        let v = serde_json::json!({"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "Dense", "config": {"name": "d", "units": 2, "batch_input_shape": [null, 3]}}]}});
        let g = parse_model(&v).unwrap();
        assert_eq!(g.layers[0].class, "InputLayer");
        assert_eq!(g.layers[1].calls[0][0].layer, "s_input");
        assert_eq!(g.outputs[0].layer, "d");
    }

    #[test]
    fn malformed_configs_are_errors() {
        for v in [
            serde_json::json!({}),
            serde_json::json!({"class_name": "Dense", "config": {}}),
            serde_json::json!({"class_name": "Functional", "config": {"layers": []}}),
            serde_json::json!({"class_name": "Sequential", "config": {"layers": []}}),
            serde_json::json!({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"name": "d"}}]}}),
        ] {
            assert!(parse_model(&v).is_err(), "{v}");
        }
    }
}
