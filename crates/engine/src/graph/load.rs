//! Loading: an ONNX graph checked op by op, its nodes sorted so every input is produced before
//! it is read, its ops built, and every node whose inputs are all constants folded away.

use std::collections::{HashMap, HashSet};

use convscope_onnx::{ModelProto, NodeProto};

use super::input::describe_input;
use super::layers::build_layers;
use super::load_options::{check_finite_weights, LoadOptions};
use super::{node_error, Graph, Node, Source, ValueId, ValueInfo};
use crate::error::{Error, Result, UnsupportedOp};
use crate::ops::{registry, BuildCtx, ExecConfig};
use crate::tensor::{value_from_proto, Value};

/// Refuses folded constants larger than this many elements (keeps loading bounded).
const MAX_FOLD_ELEMENTS: usize = 1 << 26;

impl Graph {
    /// Prepares a decoded model: checks every op (and, unless `options` allow them, that no
    /// weight holds NaN or infinity), sorts the nodes, folds constants.
    pub fn from_proto(proto: ModelProto, options: &LoadOptions) -> Result<Graph> {
        if !options.allow_nonfinite {
            check_finite_weights(&proto.graph)?;
        }
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(13, |o| o.version);
        let graph = proto.graph;
        check_supported(&graph.node)?;
        if let Some((i, n)) = graph
            .node
            .iter()
            .enumerate()
            .find(|(_, n)| n.output.iter().all(|o| o.is_empty()))
        {
            return Err(Error::InvalidModel(format!(
                "node '{}' ({}) has no output",
                node_display_name(n, i),
                n.op_type
            )));
        }

        let mut values: Vec<ValueInfo> = Vec::new();
        let mut by_name: HashMap<String, ValueId> = HashMap::new();
        fn add(
            values: &mut Vec<ValueInfo>,
            by_name: &mut HashMap<String, ValueId>,
            name: &str,
            source: Source,
        ) -> ValueId {
            let id = ValueId(values.len());
            values.push(ValueInfo {
                name: name.to_string(),
                source,
                varies: false,
            });
            if !name.is_empty() {
                by_name.insert(name.to_string(), id);
            }
            id
        }
        for t in &graph.initializer {
            let v = value_from_proto(t)
                .map_err(|e| Error::InvalidModel(format!("initializer '{}': {e}", t.name)))?;
            add(&mut values, &mut by_name, &t.name, Source::Const(v));
        }
        let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let real_inputs: Vec<&convscope_onnx::ValueInfo> = graph
            .input
            .iter()
            .filter(|i| !inits.contains(i.name.as_str()))
            .collect();
        let input_info =
            match real_inputs.as_slice() {
                [one] => *one,
                [] => return Err(Error::InvalidModel("the graph has no input".into())),
                many => {
                    return Err(Error::InvalidModel(format!(
                    "the graph has {} inputs ({}); convscope handles models with one image input",
                    many.len(),
                    many.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
                )))
                }
            };
        let input = add(&mut values, &mut by_name, &input_info.name, Source::Input);
        values[input.0].varies = true;

        // Order nodes so that every input is produced before it is read.
        let order = topo_order(&graph.node, &by_name)?;
        let mut nodes: Vec<Node> = Vec::with_capacity(order.len());
        for &ni in &order {
            let n = &graph.node[ni];
            let display = node_display_name(n, ni);
            let inputs: Vec<Option<ValueId>> = n
                .input
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        Ok(None)
                    } else {
                        by_name.get(name).copied().map(Some).ok_or_else(|| {
                            Error::InvalidModel(format!(
                                "node '{display}' reads '{name}', which nothing produces"
                            ))
                        })
                    }
                })
                .collect::<Result<_>>()?;
            let consts: Vec<Option<&Value>> = inputs
                .iter()
                .map(|i| {
                    i.and_then(|id| {
                        if let Source::Const(v) = &values[id.0].source {
                            Some(v)
                        } else {
                            None
                        }
                    })
                })
                .collect();
            let ctx = BuildCtx {
                node: n,
                consts: consts.clone(),
                opset,
            };
            let builder = registry()[n.op_type.as_str()];
            let op = builder(&ctx).map_err(|e| node_error(&display, &n.op_type, e))?;
            let foldable = !n.op_type.eq_ignore_ascii_case("Dropout")
                && inputs
                    .iter()
                    .all(|i| i.is_none_or(|id| matches!(values[id.0].source, Source::Const(_))));
            if foldable {
                // Folded once, at load, on this machine's routes.
                let outs = op
                    .forward(&ExecConfig::default(), &consts)
                    .map_err(|e| node_error(&display, &n.op_type, e))?;
                if outs
                    .iter()
                    .all(|v| v.shape().iter().product::<usize>() <= MAX_FOLD_ELEMENTS)
                {
                    for (name, v) in n.output.iter().zip(outs) {
                        if !name.is_empty() {
                            add(&mut values, &mut by_name, name, Source::Const(v));
                        }
                    }
                    continue;
                }
            }
            // A shape depends on the input's size, not its values: it carries no gradient.
            let varies =
                n.op_type != "Shape" && inputs.iter().flatten().any(|id| values[id.0].varies);
            let idx = nodes.len();
            let outputs: Vec<ValueId> = n
                .output
                .iter()
                .map(|name| {
                    // Unnamed optional outputs still get a slot so positions line up.
                    let id = add(&mut values, &mut by_name, name, Source::Node(idx));
                    values[id.0].varies = varies;
                    id
                })
                .collect();
            nodes.push(Node {
                name: display,
                op_type: n.op_type.clone(),
                inputs,
                outputs,
                op,
                attrs: n.attribute.clone(),
            });
        }
        let outputs = graph
            .output
            .iter()
            .map(|o| {
                by_name.get(&o.name).copied().ok_or_else(|| {
                    Error::InvalidModel(format!("graph output '{}' is never produced", o.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut consumers = vec![Vec::new(); values.len()];
        for (i, n) in nodes.iter().enumerate() {
            for id in n.inputs.iter().flatten() {
                if !consumers[id.0].contains(&i) {
                    consumers[id.0].push(i);
                }
            }
        }
        let input_spec = describe_input(input_info, &nodes, &consumers[input.0])?;
        let mut graph = Graph {
            values,
            nodes,
            by_name,
            input,
            outputs,
            consumers,
            input_spec,
            layers: Vec::new(),
            producer: format!("{} {}", proto.producer_name, proto.producer_version)
                .trim()
                .to_string(),
            opset,
        };
        graph.layers = build_layers(&graph);
        Ok(graph)
    }
}

fn node_display_name(n: &NodeProto, index: usize) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else if let Some(o) = n.output.first().filter(|o| !o.is_empty()) {
        o.clone()
    } else {
        format!("{}_{index}", n.op_type)
    }
}

/// Lists every node whose op the engine does not implement, all at once.
fn check_supported(nodes: &[NodeProto]) -> Result<()> {
    let reg = registry();
    let mut missing: Vec<UnsupportedOp> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        if default_domain && reg.contains_key(n.op_type.as_str()) {
            continue;
        }
        let op_type = if default_domain {
            n.op_type.clone()
        } else {
            format!("{}.{}", n.domain, n.op_type)
        };
        let name = node_display_name(n, i);
        match missing.iter_mut().find(|m| m.op_type == op_type) {
            Some(m) => m.nodes.push(name),
            None => missing.push(UnsupportedOp {
                op_type,
                nodes: vec![name],
            }),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::UnsupportedOps(missing))
    }
}

/// Kahn's algorithm over the node list; keeps file order among ready nodes.
fn topo_order(nodes: &[NodeProto], known: &HashMap<String, ValueId>) -> Result<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if producer.insert(o.as_str(), i).is_some() || known.contains_key(o) {
                return Err(Error::InvalidModel(format!(
                    "value '{o}' is produced twice"
                )));
            }
        }
    }
    let mut pending = vec![0usize; nodes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&p) = producer.get(inp.as_str()) {
                pending[i] += 1;
                dependents[p].push(i);
            } else if !known.contains_key(inp) {
                return Err(Error::InvalidModel(format!(
                    "node '{}' reads '{inp}', which is neither an input, an initializer nor a node output",
                    node_display_name(n, i)
                )));
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..nodes.len()).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() != nodes.len() {
        return Err(Error::InvalidModel("the graph has a cycle".into()));
    }
    Ok(order)
}
