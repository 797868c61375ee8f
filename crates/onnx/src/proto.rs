//! The ONNX message types this crate models, with their protobuf decoding and encoding.
//!
//! Field numbers follow `onnx/onnx.proto` (checked against onnx 1.23). Only the fields a CNN
//! visualizer needs are modelled; everything else (doc strings, metadata, functions, sparse
//! tensors, training info, ...) is skipped when reading and therefore not written back.

use std::path::Path;

use crate::error::{Error, Result};
use crate::wire::{Reader, WireType, Writer};

/// Deepest message nesting accepted. Real models nest a handful of levels (control-flow
/// subgraphs add a few each); the cap only exists so hostile input cannot exhaust the stack.
const MAX_DEPTH: u32 = 64;

fn enter(depth: u32, context: &'static str) -> Result<u32> {
    if depth >= MAX_DEPTH {
        return Err(Error::Malformed {
            context,
            detail: format!("messages are nested deeper than {MAX_DEPTH} levels"),
        });
    }
    Ok(depth + 1)
}

/// A whole ONNX model (`onnx.ModelProto`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelProto {
    /// ONNX IR version the model was written for.
    pub ir_version: i64,
    /// Tool that produced the model, e.g. `pytorch` or `tf2onnx`.
    pub producer_name: String,
    /// Version of the producing tool.
    pub producer_version: String,
    /// Reverse-DNS namespace of the model, often empty.
    pub domain: String,
    /// Version of the model itself.
    pub model_version: i64,
    /// Free-form documentation.
    pub doc_string: String,
    /// Operator sets the graph uses; the default domain is the empty string.
    pub opset_import: Vec<OperatorSetId>,
    /// The computation graph.
    pub graph: GraphProto,
}

/// One imported operator set (`onnx.OperatorSetIdProto`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperatorSetId {
    /// Operator domain; empty (or `ai.onnx`) for the standard operators.
    pub domain: String,
    /// Opset version.
    pub version: i64,
}

/// A computation graph (`onnx.GraphProto`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphProto {
    /// Graph name.
    pub name: String,
    /// Nodes in topological order.
    pub node: Vec<NodeProto>,
    /// Constant tensors (weights), referenced by name from node inputs.
    pub initializer: Vec<TensorProto>,
    /// Graph inputs. Older exporters also list initializers here.
    pub input: Vec<ValueInfo>,
    /// Graph outputs.
    pub output: Vec<ValueInfo>,
    /// Optional type and shape information for intermediate values.
    pub value_info: Vec<ValueInfo>,
}

/// One operator invocation (`onnx.NodeProto`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeProto {
    /// Node name; may be empty.
    pub name: String,
    /// Operator name, e.g. `Conv`.
    pub op_type: String,
    /// Operator domain; empty for standard operators.
    pub domain: String,
    /// Input value names; an empty string marks an omitted optional input.
    pub input: Vec<String>,
    /// Output value names.
    pub output: Vec<String>,
    /// Operator attributes.
    pub attribute: Vec<AttributeProto>,
}

/// A named operator attribute (`onnx.AttributeProto`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeProto {
    /// Attribute name, e.g. `kernel_shape`.
    pub name: String,
    /// Attribute value.
    pub value: AttributeValue,
}

/// The value of an attribute. Sparse-tensor and type-proto attributes are not supported and
/// are dropped when decoding.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// A single float (`f`).
    Float(f32),
    /// A single integer (`i`).
    Int(i64),
    /// A byte string (`s`), usually UTF-8.
    String(Vec<u8>),
    /// A tensor (`t`), e.g. the value of a `Constant` node.
    Tensor(TensorProto),
    /// A subgraph (`g`), e.g. a branch of `If`.
    Graph(Box<GraphProto>),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A list of integers, e.g. `pads`.
    Ints(Vec<i64>),
    /// A list of byte strings.
    Strings(Vec<Vec<u8>>),
    /// A list of tensors.
    Tensors(Vec<TensorProto>),
    /// A list of subgraphs.
    Graphs(Vec<GraphProto>),
}

/// A tensor (`onnx.TensorProto`): shape, element type and data in one of several encodings.
///
/// Use [`TensorProto::values`] rather than reading the data fields directly: it picks the
/// field that actually holds the data and converts it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TensorProto {
    /// Tensor name, matching the value name used by nodes.
    pub name: String,
    /// Dimensions; empty for a scalar.
    pub dims: Vec<i64>,
    /// Element type, one of the [`data_type`](crate::data_type) constants.
    pub data_type: i32,
    /// Data as little-endian bytes; when non-empty it takes precedence over typed fields.
    pub raw_data: Vec<u8>,
    /// Data of FLOAT tensors.
    pub float_data: Vec<f32>,
    /// Data of INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16 and BFLOAT16 tensors (the
    /// 16-bit float types store their bit patterns).
    pub int32_data: Vec<i32>,
    /// Data of INT64 tensors.
    pub int64_data: Vec<i64>,
    /// Data of DOUBLE tensors.
    pub double_data: Vec<f64>,
    /// Data of UINT32 and UINT64 tensors.
    pub uint64_data: Vec<u64>,
    /// Key/value pairs (`location`, `offset`, `length`, ...) locating data stored in a
    /// separate file. [`ModelProto::load`] resolves them.
    pub external_data: Vec<(String, String)>,
    /// 0 = data is in this message, 1 = data is external.
    pub data_location: i32,
}

/// Name, element type and shape of a graph value (`onnx.ValueInfoProto` with a
/// `TypeProto.tensor_type`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValueInfo {
    /// Value name.
    pub name: String,
    /// Element type, one of the [`data_type`](crate::data_type) constants; 0 when the value is
    /// not a tensor or its type is unknown.
    pub elem_type: i32,
    /// Dimensions, or `None` when even the rank is unknown.
    pub shape: Option<Vec<Dim>>,
}

/// One dimension of a [`ValueInfo`] shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Value(i64),
    /// A symbolic size, such as a dynamic batch dimension `N`.
    Param(String),
    /// Neither size nor name is known.
    Unknown,
}

impl ValueInfo {
    /// A tensor value with the given element type and shape.
    pub fn new(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfo {
        ValueInfo {
            name: name.to_string(),
            elem_type,
            shape: Some(dims.to_vec()),
        }
    }
}

impl NodeProto {
    /// The attribute called `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&AttributeValue> {
        self.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// An integer attribute; `None` if absent or of another kind.
    pub fn attr_int(&self, name: &str) -> Option<i64> {
        match self.attr(name)? {
            AttributeValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// A float attribute; `None` if absent or of another kind.
    pub fn attr_float(&self, name: &str) -> Option<f32> {
        match self.attr(name)? {
            AttributeValue::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// An integer-list attribute; `None` if absent or of another kind.
    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        match self.attr(name)? {
            AttributeValue::Ints(v) => Some(v),
            _ => None,
        }
    }

    /// A float-list attribute; `None` if absent or of another kind.
    pub fn attr_floats(&self, name: &str) -> Option<&[f32]> {
        match self.attr(name)? {
            AttributeValue::Floats(v) => Some(v),
            _ => None,
        }
    }

    /// A string attribute, with invalid UTF-8 replaced; `None` if absent or of another kind.
    pub fn attr_string(&self, name: &str) -> Option<String> {
        match self.attr(name)? {
            AttributeValue::String(v) => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        }
    }

    /// A tensor attribute; `None` if absent or of another kind.
    pub fn attr_tensor(&self, name: &str) -> Option<&TensorProto> {
        match self.attr(name)? {
            AttributeValue::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

impl AttributeProto {
    /// An integer attribute.
    pub fn int(name: &str, value: i64) -> Self {
        Self::new(name, AttributeValue::Int(value))
    }

    /// A float attribute.
    pub fn float(name: &str, value: f32) -> Self {
        Self::new(name, AttributeValue::Float(value))
    }

    /// An integer-list attribute.
    pub fn ints(name: &str, values: &[i64]) -> Self {
        Self::new(name, AttributeValue::Ints(values.to_vec()))
    }

    /// A float-list attribute.
    pub fn floats(name: &str, values: &[f32]) -> Self {
        Self::new(name, AttributeValue::Floats(values.to_vec()))
    }

    /// A string attribute.
    pub fn string(name: &str, value: &str) -> Self {
        Self::new(name, AttributeValue::String(value.as_bytes().to_vec()))
    }

    /// A tensor attribute.
    pub fn tensor(name: &str, value: TensorProto) -> Self {
        Self::new(name, AttributeValue::Tensor(value))
    }

    fn new(name: &str, value: AttributeValue) -> Self {
        AttributeProto {
            name: name.to_string(),
            value,
        }
    }
}

// --- model-level entry points --------------------------------------------------------------

/// Magic numbers of formats people commonly confuse with ONNX, for a better error message.
const FOREIGN_FORMATS: &[(&[u8], &str)] = &[
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (
        b"PK\x03\x04",
        "a ZIP archive (PyTorch .pt/.pth checkpoints are ZIP files)",
    ),
    (b"\x89HDF", "an HDF5 file (Keras .h5 models are HDF5)"),
    (b"\x1f\x8b", "a gzip-compressed file"),
];

/// ModelProto fields with the wire type they must have. A real model starts with one of these;
/// checking the first key rejects most non-ONNX files before any real parsing.
const MODEL_FIELDS: &[(u32, WireType)] = &[
    (1, WireType::Varint),
    (2, WireType::Len),
    (3, WireType::Len),
    (4, WireType::Len),
    (5, WireType::Varint),
    (6, WireType::Len),
    (7, WireType::Len),
    (8, WireType::Len),
    (14, WireType::Len),
    (20, WireType::Len),
    (25, WireType::Len),
    (26, WireType::Len),
];

impl ModelProto {
    /// Decodes a serialized `ModelProto`.
    ///
    /// Tensors with external data keep their `external_data` references; use
    /// [`ModelProto::load`] to resolve them.
    ///
    /// # Errors
    ///
    /// [`Error::NotOnnx`] when the bytes are clearly some other format or contain no graph,
    /// [`Error::Truncated`] or [`Error::Malformed`] when they are a damaged model.
    pub fn decode(bytes: &[u8]) -> Result<ModelProto> {
        if bytes.is_empty() {
            return Err(Error::NotOnnx("the input is empty".into()));
        }
        if let Some((_, kind)) = FOREIGN_FORMATS.iter().find(|(m, _)| bytes.starts_with(m)) {
            return Err(Error::NotOnnx(format!("this looks like {kind}")));
        }
        let first = Reader::new(bytes, "ModelProto").key().ok().flatten();
        if !first.is_some_and(|key| MODEL_FIELDS.contains(&key)) {
            return Err(Error::NotOnnx(
                "the data does not start like a protobuf ModelProto; is this an ONNX model?".into(),
            ));
        }
        let (model, has_graph) = decode_model(bytes)?;
        if !has_graph {
            return Err(Error::NotOnnx(
                "no graph found; is this an ONNX model?".into(),
            ));
        }
        Ok(model)
    }

    /// Reads and decodes the model at `path`, then loads external tensor data.
    ///
    /// External data (of initializers and of tensor attributes, including those inside
    /// subgraphs) is read from files relative to the model's directory and moved into
    /// `raw_data`, so afterwards every tensor is self-contained.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the model file cannot be read, the errors of
    /// [`ModelProto::decode`], and [`Error::ExternalData`] when an external reference is
    /// absolute, contains `..`, leads outside the model's folder through a symlink (every
    /// location is resolved, symlinks included, and must stay inside the resolved folder), is
    /// not a regular file, points past the end of its file, or cannot be read.
    pub fn load(path: &Path) -> Result<ModelProto> {
        let bytes = std::fs::read(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let mut model = Self::decode(&bytes)?;
        drop(bytes);
        let base_dir = path.parent().unwrap_or(Path::new(""));
        model
            .graph
            .for_each_tensor_mut(&mut |t| t.resolve_external_data(base_dir))?;
        Ok(model)
    }

    /// Serializes the model to protobuf bytes that `onnx.load` and onnxruntime accept.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.int64_nonzero(1, self.ir_version);
        w.string_nonempty(2, &self.producer_name);
        w.string_nonempty(3, &self.producer_version);
        w.string_nonempty(4, &self.domain);
        w.int64_nonzero(5, self.model_version);
        w.string_nonempty(6, &self.doc_string);
        // Always written, even when empty: a model without graph field is not a model.
        w.message(7, |w| self.graph.encode_into(w));
        for o in &self.opset_import {
            w.message(8, |w| {
                // onnx.helper.make_opsetid writes the empty default domain explicitly.
                w.bytes(1, o.domain.as_bytes());
                w.int64(2, o.version);
            });
        }
        w.into_bytes()
    }
}

impl GraphProto {
    /// Visits every tensor stored in the graph: initializers and tensor attributes, recursing
    /// into subgraphs. Recursion depth is bounded by the decoder's nesting cap.
    pub(crate) fn for_each_tensor_mut(
        &mut self,
        f: &mut dyn FnMut(&mut TensorProto) -> Result<()>,
    ) -> Result<()> {
        for t in &mut self.initializer {
            f(t)?;
        }
        for node in &mut self.node {
            for attr in &mut node.attribute {
                match &mut attr.value {
                    AttributeValue::Tensor(t) => f(t)?,
                    AttributeValue::Tensors(ts) => ts.iter_mut().try_for_each(&mut *f)?,
                    AttributeValue::Graph(g) => g.for_each_tensor_mut(f)?,
                    AttributeValue::Graphs(gs) => {
                        for g in gs {
                            g.for_each_tensor_mut(f)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

// --- decoding ------------------------------------------------------------------------------

fn decode_model(bytes: &[u8]) -> Result<(ModelProto, bool)> {
    const CTX: &str = "ModelProto";
    let depth = enter(0, CTX)?;
    let mut r = Reader::new(bytes, CTX);
    let mut m = ModelProto::default();
    let mut has_graph = false;
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => m.ir_version = r.int64(field, wt)?,
            2 => m.producer_name = r.string(field, wt)?,
            3 => m.producer_version = r.string(field, wt)?,
            4 => m.domain = r.string(field, wt)?,
            5 => m.model_version = r.int64(field, wt)?,
            6 => m.doc_string = r.string(field, wt)?,
            7 => {
                m.graph = decode_graph(r.bytes(field, wt)?, depth)?;
                has_graph = true;
            }
            8 => m
                .opset_import
                .push(decode_opset(r.bytes(field, wt)?, depth)?),
            _ => r.skip(wt)?,
        }
    }
    Ok((m, has_graph))
}

fn decode_opset(buf: &[u8], depth: u32) -> Result<OperatorSetId> {
    const CTX: &str = "OperatorSetIdProto";
    enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut o = OperatorSetId::default();
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => o.domain = r.string(field, wt)?,
            2 => o.version = r.int64(field, wt)?,
            _ => r.skip(wt)?,
        }
    }
    Ok(o)
}

fn decode_graph(buf: &[u8], depth: u32) -> Result<GraphProto> {
    const CTX: &str = "GraphProto";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut g = GraphProto::default();
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => g.node.push(decode_node(r.bytes(field, wt)?, depth)?),
            2 => g.name = r.string(field, wt)?,
            5 => g
                .initializer
                .push(decode_tensor(r.bytes(field, wt)?, depth)?),
            11 => g.input.push(decode_value_info(r.bytes(field, wt)?, depth)?),
            12 => g
                .output
                .push(decode_value_info(r.bytes(field, wt)?, depth)?),
            13 => g
                .value_info
                .push(decode_value_info(r.bytes(field, wt)?, depth)?),
            _ => r.skip(wt)?,
        }
    }
    Ok(g)
}

fn decode_node(buf: &[u8], depth: u32) -> Result<NodeProto> {
    const CTX: &str = "NodeProto";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut n = NodeProto::default();
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => n.input.push(r.string(field, wt)?),
            2 => n.output.push(r.string(field, wt)?),
            3 => n.name = r.string(field, wt)?,
            4 => n.op_type = r.string(field, wt)?,
            5 => {
                if let Some(a) = decode_attribute(r.bytes(field, wt)?, depth)? {
                    n.attribute.push(a);
                }
            }
            7 => n.domain = r.string(field, wt)?,
            _ => r.skip(wt)?,
        }
    }
    Ok(n)
}

/// Every value field of an AttributeProto, collected before deciding which one counts.
#[derive(Default)]
struct AttributeFields {
    ty: i32,
    f: Option<f32>,
    i: Option<i64>,
    s: Option<Vec<u8>>,
    t: Option<TensorProto>,
    g: Option<GraphProto>,
    floats: Vec<f32>,
    ints: Vec<i64>,
    strings: Vec<Vec<u8>>,
    tensors: Vec<TensorProto>,
    graphs: Vec<GraphProto>,
}

/// `Ok(None)` means the attribute is of a kind this crate does not model (sparse tensors,
/// type protos, or a type code from a newer ONNX); dropping it keeps the rest of the model
/// usable.
fn decode_attribute(buf: &[u8], depth: u32) -> Result<Option<AttributeProto>> {
    const CTX: &str = "AttributeProto";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut name = String::new();
    let mut a = AttributeFields::default();
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => name = r.string(field, wt)?,
            2 => a.f = Some(r.float(field, wt)?),
            3 => a.i = Some(r.int64(field, wt)?),
            4 => a.s = Some(r.bytes(field, wt)?.to_vec()),
            5 => a.t = Some(decode_tensor(r.bytes(field, wt)?, depth)?),
            6 => a.g = Some(decode_graph(r.bytes(field, wt)?, depth)?),
            7 => r.push_fixed32(field, wt, &mut a.floats, f32::from_bits)?,
            8 => r.push_varints(field, wt, &mut a.ints, |v| v as i64)?,
            9 => a.strings.push(r.bytes(field, wt)?.to_vec()),
            10 => a.tensors.push(decode_tensor(r.bytes(field, wt)?, depth)?),
            11 => a.graphs.push(decode_graph(r.bytes(field, wt)?, depth)?),
            20 => a.ty = r.int32(field, wt)?,
            _ => r.skip(wt)?,
        }
    }
    let value = match a.ty {
        0 => match infer_attribute_value(a) {
            Some(v) => v,
            None => {
                return Err(
                    r.malformed(format!("attribute `{name}` has neither a type nor a value"))
                )
            }
        },
        1 => AttributeValue::Float(a.f.unwrap_or_default()),
        2 => AttributeValue::Int(a.i.unwrap_or_default()),
        3 => AttributeValue::String(a.s.unwrap_or_default()),
        4 => AttributeValue::Tensor(a.t.unwrap_or_default()),
        5 => AttributeValue::Graph(Box::new(a.g.unwrap_or_default())),
        6 => AttributeValue::Floats(a.floats),
        7 => AttributeValue::Ints(a.ints),
        8 => AttributeValue::Strings(a.strings),
        9 => AttributeValue::Tensors(a.tensors),
        10 => AttributeValue::Graphs(a.graphs),
        _ => return Ok(None),
    };
    Ok(Some(AttributeProto { name, value }))
}

/// Models written before IR version 0.0.2 have no `type` field; the value field that is set
/// tells the kind instead.
fn infer_attribute_value(a: AttributeFields) -> Option<AttributeValue> {
    use AttributeValue as V;
    let v = if let Some(f) = a.f {
        V::Float(f)
    } else if let Some(i) = a.i {
        V::Int(i)
    } else if let Some(s) = a.s {
        V::String(s)
    } else if let Some(t) = a.t {
        V::Tensor(t)
    } else if let Some(g) = a.g {
        V::Graph(Box::new(g))
    } else if !a.floats.is_empty() {
        V::Floats(a.floats)
    } else if !a.ints.is_empty() {
        V::Ints(a.ints)
    } else if !a.strings.is_empty() {
        V::Strings(a.strings)
    } else if !a.tensors.is_empty() {
        V::Tensors(a.tensors)
    } else if !a.graphs.is_empty() {
        V::Graphs(a.graphs)
    } else {
        return None;
    };
    Some(v)
}

fn decode_tensor(buf: &[u8], depth: u32) -> Result<TensorProto> {
    const CTX: &str = "TensorProto";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut t = TensorProto::default();
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => r.push_varints(field, wt, &mut t.dims, |v| v as i64)?,
            2 => t.data_type = r.int32(field, wt)?,
            4 => r.push_fixed32(field, wt, &mut t.float_data, f32::from_bits)?,
            5 => r.push_varints(field, wt, &mut t.int32_data, |v| v as i32)?,
            7 => r.push_varints(field, wt, &mut t.int64_data, |v| v as i64)?,
            8 => t.name = r.string(field, wt)?,
            9 => t.raw_data = r.bytes(field, wt)?.to_vec(),
            10 => r.push_fixed64(field, wt, &mut t.double_data, f64::from_bits)?,
            11 => r.push_varints(field, wt, &mut t.uint64_data, |v| v)?,
            13 => t
                .external_data
                .push(decode_entry(r.bytes(field, wt)?, depth)?),
            14 => t.data_location = r.int32(field, wt)?,
            _ => r.skip(wt)?,
        }
    }
    Ok(t)
}

fn decode_entry(buf: &[u8], depth: u32) -> Result<(String, String)> {
    const CTX: &str = "StringStringEntryProto";
    enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let (mut key, mut value) = (String::new(), String::new());
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => key = r.string(field, wt)?,
            2 => value = r.string(field, wt)?,
            _ => r.skip(wt)?,
        }
    }
    Ok((key, value))
}

fn decode_value_info(buf: &[u8], depth: u32) -> Result<ValueInfo> {
    const CTX: &str = "ValueInfoProto";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut v = ValueInfo::default();
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => v.name = r.string(field, wt)?,
            2 => (v.elem_type, v.shape) = decode_type(r.bytes(field, wt)?, depth)?,
            _ => r.skip(wt)?,
        }
    }
    Ok(v)
}

/// Only `TypeProto.tensor_type` is modelled; sequences, maps and the like come back as
/// element type 0 with unknown shape.
fn decode_type(buf: &[u8], depth: u32) -> Result<(i32, Option<Vec<Dim>>)> {
    const CTX: &str = "TypeProto";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut out = (0, None);
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => out = decode_tensor_type(r.bytes(field, wt)?, depth)?,
            _ => r.skip(wt)?,
        }
    }
    Ok(out)
}

fn decode_tensor_type(buf: &[u8], depth: u32) -> Result<(i32, Option<Vec<Dim>>)> {
    const CTX: &str = "TypeProto.Tensor";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let (mut elem_type, mut shape) = (0, None);
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => elem_type = r.int32(field, wt)?,
            2 => shape = Some(decode_shape(r.bytes(field, wt)?, depth)?),
            _ => r.skip(wt)?,
        }
    }
    Ok((elem_type, shape))
}

fn decode_shape(buf: &[u8], depth: u32) -> Result<Vec<Dim>> {
    const CTX: &str = "TensorShapeProto";
    let depth = enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut dims = Vec::new();
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => dims.push(decode_dim(r.bytes(field, wt)?, depth)?),
            _ => r.skip(wt)?,
        }
    }
    Ok(dims)
}

fn decode_dim(buf: &[u8], depth: u32) -> Result<Dim> {
    const CTX: &str = "TensorShapeProto.Dimension";
    enter(depth, CTX)?;
    let mut r = Reader::new(buf, CTX);
    let mut dim = Dim::Unknown;
    // `dim_value` and `dim_param` form a oneof: the last one on the wire wins.
    while let Some((field, wt)) = r.key()? {
        match field {
            1 => dim = Dim::Value(r.int64(field, wt)?),
            2 => dim = Dim::Param(r.string(field, wt)?),
            _ => r.skip(wt)?,
        }
    }
    Ok(dim)
}

// --- encoding ------------------------------------------------------------------------------
//
// Fields are written in field-number order, as the reference C++ implementation does, so
// simple models come out byte-identical to `onnx.save` output.

impl GraphProto {
    fn encode_into(&self, w: &mut Writer) {
        for n in &self.node {
            w.message(1, |w| n.encode_into(w));
        }
        w.string_nonempty(2, &self.name);
        for t in &self.initializer {
            w.message(5, |w| t.encode_into(w));
        }
        for (field, infos) in [
            (11, &self.input),
            (12, &self.output),
            (13, &self.value_info),
        ] {
            for v in infos {
                w.message(field, |w| v.encode_into(w));
            }
        }
    }
}

impl NodeProto {
    fn encode_into(&self, w: &mut Writer) {
        // Empty value names are meaningful (omitted optional inputs), so always write them.
        for s in &self.input {
            w.bytes(1, s.as_bytes());
        }
        for s in &self.output {
            w.bytes(2, s.as_bytes());
        }
        w.string_nonempty(3, &self.name);
        w.string_nonempty(4, &self.op_type);
        for a in &self.attribute {
            w.message(5, |w| a.encode_into(w));
        }
        w.string_nonempty(7, &self.domain);
    }
}

impl AttributeProto {
    fn encode_into(&self, w: &mut Writer) {
        use AttributeValue as V;
        w.string_nonempty(1, &self.name);
        let ty = match &self.value {
            V::Float(v) => {
                w.float(2, *v);
                1
            }
            V::Int(v) => {
                w.int64(3, *v);
                2
            }
            V::String(v) => {
                w.bytes(4, v);
                3
            }
            V::Tensor(t) => {
                w.message(5, |w| t.encode_into(w));
                4
            }
            V::Graph(g) => {
                w.message(6, |w| g.encode_into(w));
                5
            }
            V::Floats(v) => {
                w.repeated_float(7, v);
                6
            }
            V::Ints(v) => {
                w.repeated_int64(8, v);
                7
            }
            V::Strings(v) => {
                for s in v {
                    w.bytes(9, s);
                }
                8
            }
            V::Tensors(v) => {
                for t in v {
                    w.message(10, |w| t.encode_into(w));
                }
                9
            }
            V::Graphs(v) => {
                for g in v {
                    w.message(11, |w| g.encode_into(w));
                }
                10
            }
        };
        w.int64(20, ty);
    }
}

impl TensorProto {
    fn encode_into(&self, w: &mut Writer) {
        w.repeated_int64(1, &self.dims);
        w.int64_nonzero(2, self.data_type.into());
        w.packed_fixed32(4, self.float_data.iter().map(|v| v.to_bits()));
        // int32 values are sign-extended to 64 bits on the wire.
        w.packed_varints(5, self.int32_data.iter().map(|&v| i64::from(v) as u64));
        w.packed_varints(7, self.int64_data.iter().map(|&v| v as u64));
        w.string_nonempty(8, &self.name);
        if !self.raw_data.is_empty() {
            w.bytes(9, &self.raw_data);
        }
        w.packed_fixed64(10, self.double_data.iter().map(|v| v.to_bits()));
        w.packed_varints(11, self.uint64_data.iter().copied());
        for (k, v) in &self.external_data {
            w.message(13, |w| {
                w.bytes(1, k.as_bytes());
                w.bytes(2, v.as_bytes());
            });
        }
        w.int64_nonzero(14, self.data_location.into());
    }
}

impl ValueInfo {
    fn encode_into(&self, w: &mut Writer) {
        w.string_nonempty(1, &self.name);
        // Nothing known: leave the type out rather than claim an untyped tensor.
        if self.elem_type == 0 && self.shape.is_none() {
            return;
        }
        w.message(2, |w| {
            w.message(1, |w| {
                w.int64_nonzero(1, self.elem_type.into());
                if let Some(dims) = &self.shape {
                    // Written even when empty: an empty shape means rank 0, not "unknown".
                    w.message(2, |w| {
                        for d in dims {
                            w.message(1, |w| match d {
                                Dim::Value(v) => w.int64(1, *v),
                                Dim::Param(p) => w.bytes(2, p.as_bytes()),
                                Dim::Unknown => {}
                            });
                        }
                    });
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_type;

    fn model_with_graph(graph: GraphProto) -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetId {
                domain: String::new(),
                version: 17,
            }],
            graph,
            ..Default::default()
        }
    }

    fn round_trip(m: &ModelProto) -> ModelProto {
        ModelProto::decode(&m.encode()).expect("decode of our own encoding")
    }

    #[test]
    fn all_attribute_kinds_round_trip() {
        let sub = GraphProto {
            name: "branch".into(),
            node: vec![NodeProto {
                op_type: "Identity".into(),
                input: vec!["a".into()],
                output: vec!["b".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = TensorProto::from_i64("t", &[2], &[-1, i64::MAX]);
        let values = vec![
            AttributeValue::Float(-0.0),
            AttributeValue::Int(0),
            AttributeValue::Int(-7),
            AttributeValue::String(vec![0xff, b'a']),
            AttributeValue::Tensor(t.clone()),
            AttributeValue::Graph(Box::new(sub.clone())),
            AttributeValue::Floats(vec![1.5, f32::INFINITY]),
            AttributeValue::Floats(vec![]),
            AttributeValue::Ints(vec![i64::MIN, 0, 3]),
            AttributeValue::Ints(vec![]),
            AttributeValue::Strings(vec![b"x".to_vec(), vec![]]),
            AttributeValue::Tensors(vec![t.clone(), TensorProto::default()]),
            AttributeValue::Graphs(vec![sub.clone(), GraphProto::default()]),
        ];
        let node = NodeProto {
            op_type: "Custom".into(),
            domain: "test.domain".into(),
            input: vec!["x".into(), String::new()],
            output: vec!["y".into()],
            attribute: values
                .into_iter()
                .enumerate()
                .map(|(i, value)| AttributeProto {
                    name: format!("a{i}"),
                    value,
                })
                .collect(),
            ..Default::default()
        };
        let m = model_with_graph(GraphProto {
            node: vec![node],
            ..Default::default()
        });
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn value_info_shapes_round_trip() {
        let m = model_with_graph(GraphProto {
            input: vec![
                ValueInfo::new(
                    "x",
                    data_type::FLOAT,
                    &[
                        Dim::Param("N".into()),
                        Dim::Value(0),
                        Dim::Unknown,
                        Dim::Value(-1),
                    ],
                ),
                ValueInfo::new("scalar", data_type::INT64, &[]),
                ValueInfo {
                    name: "rank_unknown".into(),
                    elem_type: data_type::FLOAT,
                    shape: None,
                },
                ValueInfo {
                    name: "untyped".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn tensor_fields_round_trip() {
        let t = TensorProto {
            name: "t".into(),
            dims: vec![0, 3],
            data_type: data_type::INT32,
            float_data: vec![1.0, -2.5],
            int32_data: vec![-1, i32::MIN, i32::MAX],
            int64_data: vec![-1],
            double_data: vec![std::f64::consts::PI],
            uint64_data: vec![u64::MAX],
            raw_data: vec![1, 2, 3],
            external_data: vec![("location".into(), "w.bin".into())],
            data_location: 1,
        };
        let m = model_with_graph(GraphProto {
            initializer: vec![t],
            ..Default::default()
        });
        assert_eq!(round_trip(&m), m);
    }

    /// Hand-assembled AttributeProto bytes, as an old or unusual writer might produce them.
    fn decode_attr_bytes(body: &[u8]) -> Result<Option<AttributeProto>> {
        decode_attribute(body, 0)
    }

    #[test]
    fn attribute_kind_is_inferred_without_type_field() {
        // name="k", ints packed [1, 2]
        let a = decode_attr_bytes(&[0x0a, 1, b'k', 0x42, 2, 1, 2])
            .unwrap()
            .unwrap();
        assert_eq!(a.value, AttributeValue::Ints(vec![1, 2]));
        // name="k", f=0.5 (unpacked float)
        let mut b = vec![0x0a, 1, b'k', 0x15];
        b.extend(0.5f32.to_le_bytes());
        let a = decode_attr_bytes(&b).unwrap().unwrap();
        assert_eq!(a.value, AttributeValue::Float(0.5));
        // no value and no type
        assert!(decode_attr_bytes(&[0x0a, 1, b'k']).is_err());
    }

    #[test]
    fn type_field_wins_over_other_fields() {
        // i=5 and ints=[9], type=INTS
        let a = decode_attr_bytes(&[0x18, 5, 0x40, 9, 0xa0, 0x01, 7])
            .unwrap()
            .unwrap();
        assert_eq!(a.value, AttributeValue::Ints(vec![9]));
        // type=INT but no i: proto default
        let a = decode_attr_bytes(&[0xa0, 0x01, 2]).unwrap().unwrap();
        assert_eq!(a.value, AttributeValue::Int(0));
    }

    #[test]
    fn unsupported_attribute_kinds_are_dropped() {
        // type=SPARSE_TENSOR (11) with a sparse_tensor field (22) that is skipped.
        assert_eq!(
            decode_attr_bytes(&[0x0a, 1, b's', 0xb2, 0x01, 0, 0xa0, 0x01, 11]).unwrap(),
            None
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut m = model_with_graph(GraphProto::default());
        m.producer_name = "p".into();
        let mut bytes = m.encode();
        // metadata_props (14), a fixed64 field 30, a fixed32 field 31 and a varint field 32.
        bytes.extend([0x72, 2, 0x0a, 0]);
        bytes.extend([0xf1, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
        bytes.extend([0xfd, 0x01, 1, 2, 3, 4]);
        bytes.extend([0x80, 0x02, 0x96, 0x01]);
        assert_eq!(ModelProto::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn nesting_is_capped() {
        fn nested(levels: usize) -> ModelProto {
            let mut g = GraphProto::default();
            for _ in 0..levels {
                g = GraphProto {
                    node: vec![NodeProto {
                        op_type: "If".into(),
                        attribute: vec![AttributeProto {
                            name: "then_branch".into(),
                            value: AttributeValue::Graph(Box::new(g)),
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
            }
            model_with_graph(g)
        }
        // Each level costs three messages (graph, node, attribute).
        let ok = nested(20);
        assert_eq!(round_trip(&ok), ok);
        let err = ModelProto::decode(&nested(25).encode()).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn missing_graph_and_foreign_data_are_not_onnx() {
        let no_graph = [0x08, 0x07]; // ir_version = 7 only
        assert!(matches!(
            ModelProto::decode(&no_graph),
            Err(Error::NotOnnx(msg)) if msg.contains("no graph")
        ));
        for junk in [
            &b""[..],
            b"hello world",
            b"\x89PNG\r\n\x1a\n",
            b"PK\x03\x04zz",
        ] {
            assert!(
                matches!(ModelProto::decode(junk), Err(Error::NotOnnx(_))),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn node_attribute_accessors() {
        let n = NodeProto {
            attribute: vec![
                AttributeProto::int("group", 32),
                AttributeProto::float("alpha", 0.25),
                AttributeProto::ints("pads", &[0, 0, 1, 1]),
                AttributeProto::floats("scales", &[1.0, 2.0]),
                AttributeProto::string("auto_pad", "NOTSET"),
                AttributeProto::tensor("value", TensorProto::from_f32("", &[], &[1.0])),
            ],
            ..Default::default()
        };
        assert_eq!(n.attr_int("group"), Some(32));
        assert_eq!(n.attr_float("alpha"), Some(0.25));
        assert_eq!(n.attr_ints("pads"), Some(&[0, 0, 1, 1][..]));
        assert_eq!(n.attr_floats("scales"), Some(&[1.0, 2.0][..]));
        assert_eq!(n.attr_string("auto_pad").as_deref(), Some("NOTSET"));
        assert_eq!(n.attr_tensor("value").map(|t| t.raw_data.len()), Some(4));
        assert_eq!(n.attr_int("alpha"), None);
        assert_eq!(n.attr("missing"), None);
    }
}
