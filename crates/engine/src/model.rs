//! A loaded ONNX model: nodes in execution order, constants folded, the input described, and the
//! graph's feature-producing steps grouped into named layers.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use convscope_onnx::{Dim, ModelProto, NodeProto, TensorProto, TensorValues};

use crate::error::{Error, Result, UnsupportedOp};
use crate::layers::{build_layers, Layer};
use crate::ops::{registry, BuildCtx, Op};
use crate::tensor::{IntTensor, Tensor, Value};

/// Index of a value (an edge of the graph).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Memory layout of the image input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Batch, channels, height, width (PyTorch exports).
    Nchw,
    /// Batch, height, width, channels (Keras exports through tf2onnx).
    Nhwc,
}

/// What the model expects as input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// ONNX name of the input.
    pub name: String,
    /// Channel order of the 4-D input.
    pub layout: Layout,
    /// Number of channels.
    pub channels: usize,
    /// Declared height, if fixed.
    pub height: Option<usize>,
    /// Declared width, if fixed.
    pub width: Option<usize>,
    /// Declared batch size, if fixed.
    pub batch: Option<usize>,
    /// The declared element type (what the values mean; the tensor is `f32` in any case).
    pub elem_type: crate::ElemType,
    /// The dimensions exactly as the file declares them, in the file's order (`None` where
    /// symbolic or unknown). Unlike `height` and `width`, sizes outside
    /// `1..=`[`MAX_INPUT_SIDE`](crate::MAX_INPUT_SIDE) are kept here, so a refusal can say
    /// what the model declared.
    pub declared_dims: Vec<Option<i64>>,
}

impl InputSpec {
    /// Shape of a batch of `n` images of `h`×`w` in this layout.
    pub fn shape(&self, n: usize, h: usize, w: usize) -> Vec<usize> {
        match self.layout {
            Layout::Nchw => vec![n, self.channels, h, w],
            Layout::Nhwc => vec![n, h, w, self.channels],
        }
    }

    /// `(height, width)` of an input tensor of this layout.
    pub fn spatial(&self, shape: &[usize]) -> (usize, usize) {
        match self.layout {
            Layout::Nchw => (shape[2], shape[3]),
            Layout::Nhwc => (shape[1], shape[2]),
        }
    }
}

pub(crate) enum Source {
    Input,
    Const(Value),
    Node(usize),
}

pub(crate) struct ValueInfo {
    pub name: String,
    pub source: Source,
    /// Whether the value depends on the model input (and so may carry a gradient).
    pub varies: bool,
}

pub(crate) struct Node {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
    pub op: Box<dyn Op>,
    /// The node's ONNX attributes, for shape inference without running the op (`infer.rs`).
    pub attrs: Vec<convscope_onnx::AttributeProto>,
}

/// A model ready to run and differentiate.
pub struct Model {
    pub(crate) values: Vec<ValueInfo>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) by_name: HashMap<String, ValueId>,
    pub(crate) input: ValueId,
    pub(crate) outputs: Vec<ValueId>,
    pub(crate) consumers: Vec<Vec<usize>>,
    input_spec: InputSpec,
    layers: Vec<Layer>,
    producer: String,
    opset: i64,
}

/// Converts an ONNX tensor to a [`Value`].
pub(crate) fn value_from_proto(t: &TensorProto) -> Result<Value> {
    let shape = t.shape()?;
    Ok(match t.values()? {
        TensorValues::Float(v) => Value::Float(Tensor::new(shape, v)?),
        TensorValues::Int(v) => Value::Int(IntTensor::new(shape, v)?),
    })
}

/// Refuses folded constants larger than this many elements (keeps loading bounded).
const MAX_FOLD_ELEMENTS: usize = 1 << 26;

impl Model {
    /// Loads an ONNX file (weights inside it or in external-data files beside it).
    ///
    /// ```no_run
    /// let model = convscope_engine::Model::load("model.onnx".as_ref())?;
    /// println!("{} layers", model.layers().len());
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn load(path: &Path) -> Result<Model> {
        Model::from_proto(ModelProto::load(path)?)
    }

    /// Decodes and prepares a model held in memory (external data is not resolved).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Model::from_proto(ModelProto::decode(bytes)?)
    }

    /// Prepares a decoded model: checks every op, sorts the nodes, folds constants.
    ///
    /// Weights that hold NaN or infinity are refused ([`Error::NonFiniteWeight`]; see
    /// [`Model::from_proto_with`] to load them anyway).
    pub fn from_proto(proto: ModelProto) -> Result<Model> {
        Model::from_proto_with(proto, &crate::LoadOptions::default())
    }

    /// [`Model::from_proto`] after the checks of its [`crate::LoadOptions`].
    pub(crate) fn from_checked_proto(proto: ModelProto) -> Result<Model> {
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
                let outs = op
                    .forward(&consts)
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
        let mut model = Model {
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
        model.layers = build_layers(&model);
        Ok(model)
    }

    /// The model's image input.
    pub fn input_spec(&self) -> &InputSpec {
        &self.input_spec
    }

    /// Named layers in execution order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The program that wrote the file (e.g. `tf2onnx 1.17.0`).
    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// The `ai.onnx` opset version.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The graph outputs.
    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    /// The op type and inputs of the node that produces `id`; `None` for the model input and
    /// constants.
    pub fn producer_of(&self, id: ValueId) -> Option<(&str, &[Option<ValueId>])> {
        match self.values.get(id.0)?.source {
            Source::Node(n) => Some((
                self.nodes[n].op_type.as_str(),
                self.nodes[n].inputs.as_slice(),
            )),
            _ => None,
        }
    }

    /// The ONNX name of a value.
    pub fn value_name(&self, id: ValueId) -> &str {
        &self.values[id.0].name
    }

    /// Number of learned parameters (elements of float initializers and folded constants).
    pub fn parameter_count(&self) -> usize {
        self.values
            .iter()
            .map(|v| match &v.source {
                Source::Const(Value::Float(t)) if t.len() > 1 => t.len(),
                _ => 0,
            })
            .sum()
    }

    /// The layer with this friendly name, if any.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Resolves a friendly layer name, a raw ONNX value name or a node name to a value.
    ///
    /// Unknown names give [`Error::UnknownName`] with the closest existing names.
    pub fn resolve(&self, name: &str) -> Result<ValueId> {
        if let Some(l) = self.layer(name) {
            return Ok(l.value);
        }
        if let Some(&id) = self.by_name.get(name) {
            return Ok(id);
        }
        if let Some(n) = self.nodes.iter().find(|n| n.name == name) {
            return Ok(n.outputs[0]);
        }
        let candidates = self
            .layers
            .iter()
            .map(|l| l.name.as_str())
            .chain(self.values.iter().map(|v| v.name.as_str()));
        Err(Error::UnknownName {
            name: name.to_string(),
            closest: crate::layers::closest(name, candidates, 5),
        })
    }

    /// Checks that `x` can be fed to the model, with a one-line explanation when not.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let s = &self.input_spec;
        let want = s.shape(0, 0, 0);
        if x.rank() != 4 {
            return Err(Error::Input(format!(
                "'{}' takes a 4-D {} tensor, got shape {:?}",
                s.name,
                layout_name(s.layout),
                x.shape()
            )));
        }
        let ch_axis = want.iter().position(|&d| d == s.channels).unwrap_or(1);
        if x.shape()[ch_axis] != s.channels {
            return Err(Error::Input(format!(
                "'{}' takes {} channels ({}), got shape {:?}",
                s.name,
                s.channels,
                layout_name(s.layout),
                x.shape()
            )));
        }
        if let Some(b) = s.batch.filter(|&b| b != x.shape()[0]) {
            if b != 1 {
                return Err(Error::Input(format!(
                    "'{}' has a fixed batch of {b}, got {}",
                    s.name,
                    x.shape()[0]
                )));
            }
        }
        if x.is_empty() {
            return Err(Error::Input(format!("empty input tensor {:?}", x.shape())));
        }
        Ok(())
    }
}

fn layout_name(l: Layout) -> &'static str {
    match l {
        Layout::Nchw => "NCHW",
        Layout::Nhwc => "NHWC",
    }
}

pub(crate) fn node_error(node: &str, op: &str, e: Error) -> Error {
    Error::Node {
        node: node.to_string(),
        op: op.to_string(),
        error: Box::new(e),
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

fn describe_input(
    info: &convscope_onnx::ValueInfo,
    nodes: &[Node],
    consumers: &[usize],
) -> Result<InputSpec> {
    let dims: Vec<Option<usize>> = match &info.shape {
        Some(d) => d
            .iter()
            .map(|d| {
                // Declared sizes beyond 65536 are corrupt; treat them as unknown.
                if let Dim::Value(v) = d {
                    (1..=crate::MAX_INPUT_SIDE as i64)
                        .contains(v)
                        .then_some(*v as usize)
                } else {
                    None
                }
            })
            .collect(),
        None => vec![None; 4],
    };
    if dims.len() != 4 {
        return Err(Error::InvalidModel(format!(
            "input '{}' has rank {}; convscope handles image models with a 4-D input",
            info.name,
            dims.len()
        )));
    }
    let small = |d: Option<usize>| matches!(d, Some(1..=4));
    // A leading Transpose [0,3,1,2] is what tf2onnx emits for NHWC Keras models.
    let transposed = consumers.iter().any(|&c| {
        // The perm is checked with a probe shape: NHWC→NCHW maps [1,2,3,4] to [1,4,2,3].
        let probe = Value::Float(Tensor::zeros(&[1, 2, 3, 4]));
        nodes[c].op_type == "Transpose"
            && matches!(nodes[c].op.forward(&[Some(&probe)]), Ok(v) if v[0].shape() == [1, 4, 2, 3])
    });
    let layout = if transposed || (small(dims[3]) && !small(dims[1])) {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    let (c, h, w) = match layout {
        Layout::Nchw => (dims[1], dims[2], dims[3]),
        Layout::Nhwc => (dims[3], dims[1], dims[2]),
    };
    let channels = c.ok_or_else(|| {
        Error::InvalidModel(format!(
            "input '{}' does not declare its channel count",
            info.name
        ))
    })?;
    Ok(InputSpec {
        name: info.name.clone(),
        layout,
        channels,
        height: h,
        width: w,
        batch: dims[0],
        elem_type: crate::ElemType::from_onnx(info.elem_type),
        declared_dims: crate::input::declared_dims(info),
    })
}
