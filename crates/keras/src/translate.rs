//! Keras layers → ONNX nodes the engine already runs.
//!
//! The image input stays NHWC as in Keras; a leading `Transpose` makes everything after it
//! NCHW, as tf2onnx does, so the engine's kernels and layer grouping apply unchanged. Flatten
//! and Reshape transpose back to NHWC first, so values keep Keras's order.
//!
//! Names: each Keras layer's output value is named by its path (`block1_conv1`, or
//! `vgg16/block1_conv1` inside a nested model), and the node that heads it (the engine names
//! layers after head nodes) gets the layer's own name when no other layer shares it, else
//! `/vgg16/block1_conv1/Conv`, which the engine shows as `vgg16.block1_conv1`. Helper nodes are
//! named `<path>:<role>`.

use std::collections::{HashMap, HashSet};

use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, ModelProto, TensorProto};
use serde_json::Value;

use crate::config::{Graph, LayerSpec, TensorRef};
use crate::error::{Error, Result, Unsupported};
use crate::h5::Array;
use crate::weights::Weights;

/// The opset of the generated graph.
const OPSET: i64 = 13;

/// A translated model.
#[derive(Debug, Clone)]
pub(crate) struct Translation {
    pub proto: ModelProto,
    /// `(scale, offset)` of a `Rescaling` layer applied straight to the input.
    pub input_rescaling: Option<(f32, f32)>,
}

/// A Keras tensor in the ONNX graph.
#[derive(Debug, Clone)]
struct T {
    value: String,
    /// Keras rank, batch included.
    rank: usize,
    /// A 4-D image tensor, held NCHW (Keras NHWC).
    image: bool,
    /// Whether it holds the model input's own pixel values: the input itself, or the input
    /// resized (a `Rescaling` meeting it means the model wants raw pixels).
    is_input: bool,
}

struct Node {
    op: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<A>,
}

struct Tx<'a> {
    weights: &'a Weights,
    keras2: bool,
    nodes: Vec<Node>,
    inits: Vec<TensorProto>,
    inputs: Vec<(String, Vec<Dim>)>,
    outputs: Vec<String>,
    unsupported: Vec<Unsupported>,
    /// Short layer names used more than once across all nesting levels.
    ambiguous: HashSet<String>,
    used: HashSet<String>,
    /// Node names given so far (a separate namespace from values).
    node_names: HashSet<String>,
    counter: usize,
    input_rescaling: Option<(f32, f32)>,
    /// The layer being translated: its path and the name its head node gets.
    path: String,
    head: String,
    class: String,
}

fn collect_names(g: &Graph, counts: &mut HashMap<String, usize>) {
    for l in &g.layers {
        match &l.nested {
            Some(n) => collect_names(n, counts),
            None => *counts.entry(l.name.clone()).or_insert(0) += 1,
        }
    }
}

/// Translates a parsed model with its weights.
pub(crate) fn translate(graph: &Graph, weights: &Weights, keras2: bool) -> Result<Translation> {
    let mut counts = HashMap::new();
    collect_names(graph, &mut counts);
    let mut tx = Tx {
        weights,
        keras2,
        nodes: Vec::new(),
        inits: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        unsupported: Vec::new(),
        ambiguous: counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k)
            .collect(),
        used: HashSet::new(),
        node_names: HashSet::new(),
        counter: 0,
        input_rescaling: None,
        path: String::new(),
        head: String::new(),
        class: String::new(),
    };
    let outs = tx.graph(graph, &[], None)?;
    if !tx.unsupported.is_empty() {
        return Err(Error::Unsupported(tx.unsupported));
    }
    for o in outs {
        let name = if o.image {
            tx.path = o.value.clone();
            tx.head = format!("{}:to_nhwc", o.value);
            let out = format!("{}:nhwc", o.value);
            tx.push(
                "Transpose",
                vec![o.value.clone()],
                &out,
                vec![A::ints("perm", &[0, 2, 3, 1])],
            );
            out
        } else {
            o.value
        };
        tx.outputs.push(name);
    }
    let mut g = GraphBuilder::new(&graph.name);
    for (name, dims) in &tx.inputs {
        g.input(name, dims);
    }
    for t in tx.inits.drain(..) {
        g.initializer(t);
    }
    for n in &tx.nodes {
        let ins: Vec<&str> = n.inputs.iter().map(String::as_str).collect();
        let outs: Vec<&str> = n.outputs.iter().map(String::as_str).collect();
        g.node(&n.op, &n.name, &ins, &outs, n.attrs.clone());
    }
    for o in &tx.outputs {
        g.output(o, &[]);
    }
    let mut proto = g.build(OPSET);
    proto.producer_name = "convscope-keras".into();
    Ok(Translation {
        proto,
        input_rescaling: tx.input_rescaling,
    })
}

// --- config helpers --------------------------------------------------------------------------

fn cfg<'v>(l: &'v LayerSpec, key: &str) -> Option<&'v Value> {
    l.config.get(key).filter(|v| !v.is_null())
}

fn cfg_f32(l: &LayerSpec, key: &str, default: f32) -> f32 {
    cfg(l, key)
        .and_then(Value::as_f64)
        .map_or(default, |v| v as f32)
}

fn cfg_bool(l: &LayerSpec, key: &str, default: bool) -> bool {
    cfg(l, key).and_then(Value::as_bool).unwrap_or(default)
}

fn cfg_str<'v>(l: &'v LayerSpec, key: &str, default: &'v str) -> &'v str {
    cfg(l, key).and_then(Value::as_str).unwrap_or(default)
}

/// An int or a pair of ints (`3` or `[3, 3]`), as a pair.
fn cfg_pair(l: &LayerSpec, key: &str, default: Option<[i64; 2]>) -> Result<[i64; 2]> {
    let bad = || Error::Config(format!("layer '{}': bad {key}", l.name));
    match cfg(l, key) {
        None => default.ok_or_else(bad),
        Some(Value::Number(n)) => {
            let v = n.as_i64().ok_or_else(bad)?;
            Ok([v, v])
        }
        Some(Value::Array(a)) if a.len() == 2 => {
            let v: Option<Vec<i64>> = a.iter().map(Value::as_i64).collect();
            let v = v.ok_or_else(bad)?;
            Ok([v[0], v[1]])
        }
        Some(_) => Err(bad()),
    }
}

/// Padding/cropping specs: `n`, `[a, b]` (symmetric per axis) or `[[t, b], [l, r]]`.
fn cfg_box(l: &LayerSpec, key: &str) -> Result<[i64; 4]> {
    let bad = || Error::Config(format!("layer '{}': bad {key}", l.name));
    let v = cfg(l, key).ok_or_else(bad)?;
    let ints =
        |v: &Value| -> Option<Vec<i64>> { v.as_array()?.iter().map(Value::as_i64).collect() };
    let (t, b, le, r) = if let Some(n) = v.as_i64() {
        (n, n, n, n)
    } else {
        let a = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
        match (a[0].as_i64(), a[1].as_i64()) {
            (Some(h), Some(w)) => (h, h, w, w),
            _ => {
                let (h, w) = (ints(&a[0]).ok_or_else(bad)?, ints(&a[1]).ok_or_else(bad)?);
                if h.len() != 2 || w.len() != 2 {
                    return Err(bad());
                }
                (h[0], h[1], w[0], w[1])
            }
        }
    };
    if [t, b, le, r].iter().any(|&x| !(0..=1 << 16).contains(&x)) {
        return Err(bad());
    }
    Ok([t, b, le, r])
}

/// `[y][x][a][b]` → `[b][a][y][x]` (Keras kernel → ONNX weight order).
fn kernel_to_onnx(k: &Array) -> (Vec<i64>, Vec<f32>) {
    let (kh, kw, a, b) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3]);
    let mut out = vec![0.0; k.values.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..a {
                for o in 0..b {
                    out[((o * a + i) * kh + y) * kw + x] = k.values[((y * kw + x) * a + i) * b + o];
                }
            }
        }
    }
    (vec![b as i64, a as i64, kh as i64, kw as i64], out)
}

impl Tx<'_> {
    // --- graph plumbing ----------------------------------------------------------------------

    fn fresh(&mut self, role: &str) -> String {
        loop {
            self.counter += 1;
            let name = format!("{}:{role}{}", self.path, self.counter);
            if self.used.insert(name.clone()) {
                return name;
            }
        }
    }

    /// Appends a node; the layer's first node gets the head name.
    fn push(&mut self, op: &str, inputs: Vec<String>, output: &str, attrs: Vec<A>) {
        let name = if self.node_names.insert(self.head.clone()) {
            self.head.clone()
        } else {
            self.fresh(&op.to_ascii_lowercase())
        };
        self.nodes.push(Node {
            op: op.into(),
            name,
            inputs,
            outputs: vec![output.to_string()],
            attrs,
        });
    }

    /// Appends a node with a fresh output and returns that output.
    fn op(&mut self, op: &str, inputs: Vec<String>, attrs: Vec<A>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.push(op, inputs, &out, attrs);
        out
    }

    fn init(&mut self, role: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh(role);
        let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        self.inits.push(TensorProto::from_f32(&name, &dims, values));
        name
    }

    fn init_i64(&mut self, role: &str, values: &[i64]) -> String {
        let name = self.fresh(role);
        self.inits
            .push(TensorProto::from_i64(&name, &[values.len()], values));
        name
    }

    fn scalar(&mut self, v: f32) -> String {
        self.init("const", &[], &[v])
    }

    fn unsupported(&mut self, reason: Option<String>) {
        self.unsupported.push(Unsupported {
            layer: self.path.clone(),
            class: self.class.clone(),
            reason,
        });
    }

    fn weights(&self, l: &LayerSpec, want: usize) -> Result<Vec<Array>> {
        let path: Vec<String> = self.path.split('/').map(str::to_string).collect();
        let w = self.weights.get(&path).ok_or_else(|| Error::Weights {
            layer: self.path.clone(),
            class: l.class.clone(),
            problem: "the file has no weights for it".into(),
        })?;
        if w.len() < want {
            return Err(Error::Weights {
                layer: self.path.clone(),
                class: l.class.clone(),
                problem: format!("the file has {} weight arrays for it, not {want}", w.len()),
            });
        }
        Ok(w)
    }

    fn check_shape(&self, a: &Array, rank: usize, what: &str) -> Result<()> {
        if a.shape.len() != rank || a.values.is_empty() {
            return Err(Error::Weights {
                layer: self.path.clone(),
                class: self.class.clone(),
                problem: format!("its {what} has shape {:?}", a.shape),
            });
        }
        Ok(())
    }

    /// The Keras axis `a` of `t` as the ONNX axis.
    fn axis(&self, a: i64, t: &T) -> Option<i64> {
        let r = t.rank as i64;
        let a = if a < 0 { a + r } else { a };
        if !(1..r).contains(&a) {
            return None;
        }
        Some(if t.image { [0, 2, 3, 1][a as usize] } else { a })
    }

    // --- graphs ------------------------------------------------------------------------------

    /// Translates `g` (nested at `prefix`), feeding `inputs` to its InputLayers (`None` at top).
    fn graph(&mut self, g: &Graph, prefix: &[String], inputs: Option<&[T]>) -> Result<Vec<T>> {
        let mut env: HashMap<String, Vec<Vec<T>>> = HashMap::new();
        let by_name: HashMap<&str, &LayerSpec> =
            g.layers.iter().map(|l| (l.name.as_str(), l)).collect();
        for (i, r) in g.inputs.iter().enumerate() {
            let l = by_name.get(r.layer.as_str()).ok_or_else(|| {
                Error::Config(format!("input layer '{}' is not in the model", r.layer))
            })?;
            let t = match inputs {
                Some(given) => given.get(i).cloned().ok_or_else(|| {
                    Error::Config(format!("model '{}' is called with too few inputs", g.name))
                })?,
                None => self.input_layer(l)?,
            };
            env.insert(l.name.clone(), vec![vec![t]]);
        }
        let mut pending: Vec<(usize, usize)> = g
            .layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| (0..l.calls.len()).map(move |c| (i, c)))
            .collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut still = Vec::new();
            for (li, ci) in pending {
                let l = &g.layers[li];
                let ins: Option<Vec<T>> = l.calls[ci].iter().map(|r| lookup(&env, r)).collect();
                let Some(ins) = ins else {
                    still.push((li, ci));
                    continue;
                };
                let mut path: Vec<String> = prefix.to_vec();
                path.push(l.name.clone());
                let outs = match &l.nested {
                    Some(n) => {
                        let outs = self.graph(n, &path, Some(&ins))?;
                        self.name_nested_output(&path, ci, outs)
                    }
                    None => vec![self.layer(l, &path, ci, ins)?],
                };
                env.entry(l.name.clone()).or_default().push(outs);
            }
            if still.len() == before {
                let (li, _) = still[0];
                return Err(Error::Config(format!(
                    "layer '{}' reads a tensor no layer produces (or the graph has a cycle)",
                    g.layers[li].name
                )));
            }
            pending = still;
        }
        g.outputs
            .iter()
            .map(|r| {
                lookup(&env, r).ok_or_else(|| {
                    Error::Config(format!("output layer '{}' is not in the model", r.layer))
                })
            })
            .collect()
    }

    /// A nested model's single output also gets the model's own path (`vgg16`), as Keras
    /// lists the nested model as one layer; an Identity, so the engine shows no extra layer.
    fn name_nested_output(&mut self, path: &[String], call: usize, outs: Vec<T>) -> Vec<T> {
        let [only] = outs.as_slice() else {
            return outs;
        };
        self.path = path.join("/");
        let out = if call == 0 {
            self.path.clone()
        } else {
            format!("{}:call{call}", self.path)
        };
        if !self.used.insert(out.clone()) {
            return outs;
        }
        self.head = format!("{}:output", self.path.replace('/', "."));
        self.push("Identity", vec![only.value.clone()], &out, vec![]);
        vec![T {
            value: out,
            ..only.clone()
        }]
    }

    fn input_layer(&mut self, l: &LayerSpec) -> Result<T> {
        let shape = cfg(l, "batch_shape")
            .or_else(|| cfg(l, "batch_input_shape"))
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Config(format!("input layer '{}' has no shape", l.name)))?;
        if shape.len() != 4 {
            return Err(Error::Config(format!(
                "input '{}' has rank {}; convscope handles image models with a 4-D input",
                l.name,
                shape.len()
            )));
        }
        let dims: Vec<Dim> = shape
            .iter()
            .enumerate()
            .map(|(i, d)| match d.as_i64() {
                Some(v) if v > 0 => Dim::Value(v),
                _ => Dim::Param(["N", "H", "W", "C"][i].into()),
            })
            .collect();
        self.inputs.push((l.name.clone(), dims));
        self.used.insert(l.name.clone());
        self.path = l.name.clone();
        self.head = format!("{}:to_nchw", l.name);
        let out = format!("{}:nchw", l.name);
        self.push(
            "Transpose",
            vec![l.name.clone()],
            &out,
            vec![A::ints("perm", &[0, 3, 1, 2])],
        );
        Ok(T {
            value: out,
            rank: 4,
            image: true,
            is_input: true,
        })
    }

    // --- layers ------------------------------------------------------------------------------

    fn layer(&mut self, l: &LayerSpec, path: &[String], call: usize, ins: Vec<T>) -> Result<T> {
        self.path = path.join("/");
        self.class = match &l.registered {
            Some(r) => format!("custom layer {r}"),
            None => l.class.clone(),
        };
        let short = &l.name;
        self.head = if self.ambiguous.contains(short) || self.node_names.contains(short) {
            format!("/{}/{}", self.path, l.class)
        } else {
            short.clone()
        };
        let out = if call == 0 {
            self.path.clone()
        } else {
            format!("{}:call{call}", self.path)
        };
        if !self.used.insert(out.clone()) {
            return Err(Error::Config(format!(
                "two layers are named '{}'",
                self.path
            )));
        }
        if let Some(f) = cfg(l, "data_format").and_then(Value::as_str) {
            if f != "channels_last" {
                self.unsupported(Some(format!("data_format {f}")));
                return Ok(ins[0].clone());
            }
        }
        let x = ins[0].clone();
        let result = match l.class.as_str() {
            "Conv2D" | "Convolution2D" => self.conv(l, &x, &out, ConvKind::Plain)?,
            "DepthwiseConv2D" => self.conv(l, &x, &out, ConvKind::Depthwise)?,
            "SeparableConv2D" | "SeparableConvolution2D" => {
                self.conv(l, &x, &out, ConvKind::Separable)?
            }
            "Conv2DTranspose" | "Convolution2DTranspose" => {
                self.conv(l, &x, &out, ConvKind::Transpose)?
            }
            "Dense" => self.dense(l, &x, &out)?,
            "BatchNormalization" => self.batchnorm(l, &x, &out)?,
            "MaxPooling2D" | "MaxPool2D" => self.pool(l, &x, &out, "MaxPool")?,
            "AveragePooling2D" | "AvgPool2D" => self.pool(l, &x, &out, "AveragePool")?,
            "GlobalAveragePooling2D" | "GlobalAvgPool2D" => {
                self.global_pool(l, &x, &out, "GlobalAveragePool")?
            }
            "GlobalMaxPooling2D" | "GlobalMaxPool2D" => {
                self.global_pool(l, &x, &out, "GlobalMaxPool")?
            }
            "Flatten" => self.flatten(&x, &out),
            "Reshape" => self.reshape(l, &x, &out)?,
            "Dropout"
            | "SpatialDropout2D"
            | "GaussianDropout"
            | "GaussianNoise"
            | "AlphaDropout"
            | "ActivityRegularization" => {
                self.push("Identity", vec![x.value.clone()], &out, vec![]);
                Some(T {
                    value: out.clone(),
                    ..x.clone()
                })
            }
            "Activation" => {
                let f = match cfg(l, "activation") {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                };
                self.activation(&f, &x, &out)
            }
            "ReLU" => self.relu_layer(l, &x, &out),
            "LeakyReLU" => {
                let slope = cfg(l, "negative_slope")
                    .or_else(|| cfg(l, "alpha"))
                    .and_then(Value::as_f64)
                    .unwrap_or(0.3);
                self.push(
                    "LeakyRelu",
                    vec![x.value.clone()],
                    &out,
                    vec![A::float("alpha", slope as f32)],
                );
                Some(T {
                    value: out.clone(),
                    is_input: false,
                    ..x.clone()
                })
            }
            "ELU" => {
                let alpha = cfg_f32(l, "alpha", 1.0);
                self.push(
                    "Elu",
                    vec![x.value.clone()],
                    &out,
                    vec![A::float("alpha", alpha)],
                );
                Some(T {
                    value: out.clone(),
                    is_input: false,
                    ..x.clone()
                })
            }
            "Softmax" => {
                let axis = cfg(l, "axis")
                    .and_then(|v| v.as_i64().or_else(|| v.as_array()?.first()?.as_i64()))
                    .unwrap_or(-1);
                match self.axis(axis, &x) {
                    Some(a) => {
                        self.push(
                            "Softmax",
                            vec![x.value.clone()],
                            &out,
                            vec![A::int("axis", a)],
                        );
                        Some(T {
                            value: out.clone(),
                            is_input: false,
                            ..x.clone()
                        })
                    }
                    None => None,
                }
            }
            "PReLU" => self.prelu(l, &x, &out)?,
            "Add" | "Subtract" | "Multiply" | "Maximum" | "Minimum" | "Average" => {
                self.merge(l, &ins, &out)
            }
            "Concatenate" => self.concat(l, &ins, &out),
            "ZeroPadding2D" => {
                let [t, b, le, r] = cfg_box(l, "padding")?;
                let pads = self.init_i64("pads", &[0, 0, t, le, 0, 0, b, r]);
                self.image_op(&x, &out, "Pad", vec![x.value.clone(), pads], vec![])
            }
            "Cropping2D" => {
                let [t, b, le, r] = cfg_box(l, "cropping")?;
                let end = |c: i64| if c == 0 { i64::MAX } else { -c };
                let starts = self.init_i64("starts", &[t, le]);
                let ends = self.init_i64("ends", &[end(b), end(r)]);
                let axes = self.init_i64("axes", &[2, 3]);
                self.image_op(
                    &x,
                    &out,
                    "Slice",
                    vec![x.value.clone(), starts, ends, axes],
                    vec![],
                )
            }
            "UpSampling2D" => {
                let [sh, sw] = cfg_pair(l, "size", Some([2, 2]))?;
                let (mode, coord) = match cfg_str(l, "interpolation", "nearest") {
                    "nearest" => ("nearest", "asymmetric"),
                    "bilinear" => ("linear", "half_pixel"),
                    other => {
                        self.unsupported(Some(format!("interpolation {other}")));
                        return Ok(x);
                    }
                };
                let scales = self.init("scales", &[4], &[1.0, 1.0, sh as f32, sw as f32]);
                self.image_op(
                    &x,
                    &out,
                    "Resize",
                    vec![x.value.clone(), String::new(), scales],
                    vec![
                        A::string("mode", mode),
                        A::string("coordinate_transformation_mode", coord),
                        A::string("nearest_mode", "floor"),
                    ],
                )
            }
            "Rescaling" => self.rescaling(l, &x, &out)?,
            "Normalization" => self.normalization(l, &x, &out)?,
            "Resizing" => self.resizing(l, &x, &out)?,
            _ => None,
        };
        match result {
            Some(t) => Ok(t),
            None => {
                if !self.unsupported.iter().any(|u| u.layer == self.path) {
                    self.unsupported(None);
                }
                Ok(x)
            }
        }
    }

    /// An op that needs an image tensor.
    fn image_op(
        &mut self,
        x: &T,
        out: &str,
        op: &str,
        inputs: Vec<String>,
        attrs: Vec<A>,
    ) -> Option<T> {
        if !x.image {
            self.unsupported(Some("the input is not a 4-D image tensor".into()));
            return None;
        }
        self.push(op, inputs, out, attrs);
        Some(T {
            value: out.into(),
            rank: 4,
            image: true,
            is_input: false,
        })
    }

    /// Appends the activation `f` to `x`, ending in `out`. `None` when `f` is unknown.
    fn activation(&mut self, f: &str, x: &T, out: &str) -> Option<T> {
        let v = x.value.clone();
        let unary = |op: &str, attrs: Vec<A>| (op.to_string(), attrs);
        let simple = match f {
            "linear" | "" => Some(unary("Identity", vec![])),
            "relu" => Some(unary("Relu", vec![])),
            "sigmoid" => Some(unary("Sigmoid", vec![])),
            "tanh" => Some(unary("Tanh", vec![])),
            "elu" => Some(unary("Elu", vec![A::float("alpha", 1.0)])),
            "selu" => Some(unary("Selu", vec![])),
            "softplus" => Some(unary("Softplus", vec![])),
            "exponential" => Some(unary("Exp", vec![])),
            "hard_swish" | "hard_silu" => Some(unary("HardSwish", vec![])),
            // Keras 3: relu6(x + 3) / 6; Keras 2: clip(0.2 x + 0.5, 0, 1).
            "hard_sigmoid" => Some(unary(
                "HardSigmoid",
                vec![
                    A::float("alpha", if self.keras2 { 0.2 } else { 1.0 / 6.0 }),
                    A::float("beta", 0.5),
                ],
            )),
            "leaky_relu" => Some(unary("LeakyRelu", vec![A::float("alpha", 0.2)])),
            "softmax" | "log_softmax" => {
                let axis = if x.image { 1 } else { x.rank as i64 - 1 };
                let op = if f == "softmax" {
                    "Softmax"
                } else {
                    "LogSoftmax"
                };
                Some(unary(op, vec![A::int("axis", axis)]))
            }
            _ => None,
        };
        if let Some((op, attrs)) = simple {
            self.push(&op, vec![v], out, attrs);
        } else {
            match f {
                "relu6" => {
                    let (lo, hi) = (self.scalar(0.0), self.scalar(6.0));
                    self.push("Clip", vec![v, lo, hi], out, vec![]);
                }
                "swish" | "silu" => {
                    let s = self.op("Sigmoid", vec![v.clone()], vec![]);
                    self.push("Mul", vec![v, s], out, vec![]);
                }
                "gelu" => {
                    // Exact GELU, Keras's default: x/2 (1 + erf(x/√2)).
                    let c = self.scalar(std::f32::consts::FRAC_1_SQRT_2);
                    let scaled = self.op("Mul", vec![v.clone(), c], vec![]);
                    let e = self.op("Erf", vec![scaled], vec![]);
                    let one = self.scalar(1.0);
                    let e1 = self.op("Add", vec![e, one], vec![]);
                    let half = self.scalar(0.5);
                    let hx = self.op("Mul", vec![v, half], vec![]);
                    self.push("Mul", vec![hx, e1], out, vec![]);
                }
                other => {
                    self.unsupported(Some(format!("activation '{other}'")));
                    return None;
                }
            }
        }
        Some(T {
            value: out.into(),
            is_input: false,
            ..x.clone()
        })
    }

    /// A layer's `activation` option applied to `x` (the layer's main op output).
    fn layer_activation(&mut self, l: &LayerSpec, x: T, out: &str) -> Option<T> {
        let f = match cfg(l, "activation") {
            None => "linear".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => String::new(),
        };
        if f == "linear" {
            // Rename by an Identity only when the main op could not write `out` itself.
            if x.value == out {
                return Some(x);
            }
            self.push("Identity", vec![x.value.clone()], out, vec![]);
            return Some(T {
                value: out.into(),
                ..x
            });
        }
        self.activation(&f, &x, out)
    }

    fn relu_layer(&mut self, l: &LayerSpec, x: &T, out: &str) -> Option<T> {
        let max = cfg(l, "max_value").and_then(Value::as_f64);
        let slope = cfg_f32(l, "negative_slope", 0.0);
        let threshold = cfg_f32(l, "threshold", 0.0);
        let v = x.value.clone();
        if threshold != 0.0 || (max.is_some() && slope != 0.0) {
            self.unsupported(Some(
                "ReLU with a threshold, or both a slope and a maximum".into(),
            ));
            return None;
        }
        match max {
            None if slope == 0.0 => self.push("Relu", vec![v], out, vec![]),
            None => self.push("LeakyRelu", vec![v], out, vec![A::float("alpha", slope)]),
            Some(m) => {
                let (lo, hi) = (self.scalar(0.0), self.scalar(m as f32));
                self.push("Clip", vec![v, lo, hi], out, vec![]);
            }
        }
        Some(T {
            value: out.into(),
            is_input: false,
            ..x.clone()
        })
    }

    fn conv(&mut self, l: &LayerSpec, x: &T, out: &str, kind: ConvKind) -> Result<Option<T>> {
        if !x.image {
            self.unsupported(Some("the input is not a 4-D image tensor".into()));
            return Ok(None);
        }
        let [kh, kw] = cfg_pair(l, "kernel_size", None)?;
        let strides = cfg_pair(l, "strides", Some([1, 1]))?;
        let dil = cfg_pair(l, "dilation_rate", Some([1, 1]))?;
        let padding = cfg_str(l, "padding", "valid").to_ascii_lowercase();
        if padding != "same" && padding != "valid" {
            self.unsupported(Some(format!("padding '{padding}'")));
            return Ok(None);
        }
        if kind == ConvKind::Transpose && cfg(l, "output_padding").is_some() {
            self.unsupported(Some("output_padding".into()));
            return Ok(None);
        }
        if kind == ConvKind::Transpose && padding == "valid" && (kh < strides[0] || kw < strides[1])
        {
            self.unsupported(Some(
                "valid padding with a kernel smaller than the stride".into(),
            ));
            return Ok(None);
        }
        let use_bias = cfg_bool(l, "use_bias", true);
        let n_w = match kind {
            ConvKind::Separable => 2,
            _ => 1,
        } + usize::from(use_bias);
        let w = self.weights(l, n_w)?;
        for a in &w[..n_w - usize::from(use_bias)] {
            self.check_shape(a, 4, "kernel")?;
        }
        if a_bad(&w[0], kh, kw) {
            return Err(Error::Weights {
                layer: self.path.clone(),
                class: l.class.clone(),
                problem: format!(
                    "its kernel has shape {:?} but kernel_size is [{kh}, {kw}]",
                    w[0].shape
                ),
            });
        }
        let mut attrs = vec![
            A::ints("kernel_shape", &[kh, kw]),
            A::ints("strides", &strides),
            A::ints("dilations", &dil),
        ];
        if padding == "same" {
            attrs.push(A::string("auto_pad", "SAME_UPPER"));
        } else {
            attrs.push(A::ints("pads", &[0, 0, 0, 0]));
        }
        let bias = |tx: &mut Self, b: &Array, n: usize| -> Result<String> {
            if b.values.len() != n {
                return Err(Error::Weights {
                    layer: tx.path.clone(),
                    class: tx.class.clone(),
                    problem: format!("its bias has {} values for {n} filters", b.values.len()),
                });
            }
            Ok(tx.init("bias", &[n as i64], &b.values))
        };
        let conv_out = if cfg(l, "activation")
            .and_then(Value::as_str)
            .is_none_or(|a| a == "linear")
        {
            out.to_string()
        } else {
            self.fresh("conv")
        };
        match kind {
            ConvKind::Plain => {
                let groups = cfg(l, "groups").and_then(Value::as_i64).unwrap_or(1).max(1);
                let (dims, values) = kernel_to_onnx(&w[0]);
                let wn = self.init("kernel", &dims, &values);
                let mut ins = vec![x.value.clone(), wn];
                if use_bias {
                    ins.push(bias(self, &w[1], dims[0] as usize)?);
                }
                attrs.push(A::int("group", groups));
                self.push("Conv", ins, &conv_out, attrs);
            }
            ConvKind::Depthwise | ConvKind::Separable => {
                // [kh, kw, cin, mult] → [cin·mult, 1, kh, kw]; output channel c·mult + m.
                let k = &w[0];
                let (cin, mult) = (k.shape[2], k.shape[3]);
                let (khu, kwu) = (k.shape[0], k.shape[1]);
                let mut values = vec![0.0; k.values.len()];
                for y in 0..khu {
                    for xx in 0..kwu {
                        for c in 0..cin {
                            for m in 0..mult {
                                values[((c * mult + m) * khu + y) * kwu + xx] =
                                    k.values[((y * kwu + xx) * cin + c) * mult + m];
                            }
                        }
                    }
                }
                let wn = self.init(
                    "depthwise_kernel",
                    &[(cin * mult) as i64, 1, kh, kw],
                    &values,
                );
                attrs.push(A::int("group", cin as i64));
                if kind == ConvKind::Depthwise {
                    let mut ins = vec![x.value.clone(), wn];
                    if use_bias {
                        ins.push(bias(self, &w[1], cin * mult)?);
                    }
                    self.push("Conv", ins, &conv_out, attrs);
                } else {
                    // The depthwise step is a helper; the pointwise conv heads the layer.
                    let head = std::mem::take(&mut self.head);
                    let dw = self.fresh("depthwise");
                    self.head = format!("{}:depthwise", self.path.replace('/', "."));
                    self.push("Conv", vec![x.value.clone(), wn], &dw, attrs);
                    self.head = head;
                    let (dims, pv) = kernel_to_onnx(&w[1]);
                    let pn = self.init("pointwise_kernel", &dims, &pv);
                    let mut ins = vec![dw, pn];
                    if use_bias {
                        ins.push(bias(self, &w[2], dims[0] as usize)?);
                    }
                    self.push(
                        "Conv",
                        ins,
                        &conv_out,
                        vec![A::ints("kernel_shape", &[1, 1])],
                    );
                }
            }
            ConvKind::Transpose => {
                // [kh, kw, cout, cin] → [cin, cout, kh, kw]: the same permutation.
                let (dims, values) = kernel_to_onnx(&w[0]);
                let wn = self.init("kernel", &dims, &values);
                let mut ins = vec![x.value.clone(), wn];
                if use_bias {
                    ins.push(bias(self, &w[1], dims[1] as usize)?);
                }
                self.push("ConvTranspose", ins, &conv_out, attrs);
            }
        }
        let t = T {
            value: conv_out,
            rank: 4,
            image: true,
            is_input: false,
        };
        Ok(self.layer_activation(l, t, out))
    }

    /// Keras's Dense multiplies the last axis by its kernel, whatever the rank: a `[batch,
    /// features]` tensor takes a Gemm, an image (held NCHW) a 1×1 Conv so it stays an image the
    /// engine groups and maps like any convolution, and any other rank (a token sequence) a
    /// MatMul, which broadcasts over the leading axes, plus the bias.
    fn dense(&mut self, l: &LayerSpec, x: &T, out: &str) -> Result<Option<T>> {
        let use_bias = cfg_bool(l, "use_bias", true);
        let w = self.weights(l, 1 + usize::from(use_bias))?;
        self.check_shape(&w[0], 2, "kernel")?;
        let (fin, units) = (w[0].shape[0], w[0].shape[1]);
        if use_bias && w[1].values.len() != units {
            return Err(Error::Weights {
                layer: self.path.clone(),
                class: l.class.clone(),
                problem: format!(
                    "its bias has {} values for {units} units",
                    w[1].values.len()
                ),
            });
        }
        let lin = if cfg(l, "activation")
            .and_then(Value::as_str)
            .is_none_or(|a| a == "linear")
        {
            out.to_string()
        } else {
            self.fresh("dense")
        };
        if x.image {
            // [fin, units] → [units, fin, 1, 1].
            let mut k = vec![0.0; fin * units];
            for i in 0..fin {
                for o in 0..units {
                    k[o * fin + i] = w[0].values[i * units + o];
                }
            }
            let kn = self.init("kernel", &[units as i64, fin as i64, 1, 1], &k);
            let mut ins = vec![x.value.clone(), kn];
            if use_bias {
                ins.push(self.init("bias", &[units as i64], &w[1].values));
            }
            self.push("Conv", ins, &lin, vec![A::ints("kernel_shape", &[1, 1])]);
        } else {
            let kn = self.init("kernel", &[fin as i64, units as i64], &w[0].values);
            match (use_bias, x.rank) {
                (true, 2) => {
                    let bn = self.init("bias", &[units as i64], &w[1].values);
                    self.push("Gemm", vec![x.value.clone(), kn, bn], &lin, vec![]);
                }
                (true, _) => {
                    let product = self.op("MatMul", vec![x.value.clone(), kn], vec![]);
                    let bn = self.init("bias", &[units as i64], &w[1].values);
                    self.push("Add", vec![product, bn], &lin, vec![]);
                }
                (false, _) => self.push("MatMul", vec![x.value.clone(), kn], &lin, vec![]),
            }
        }
        let t = T {
            value: lin,
            is_input: false,
            ..x.clone()
        };
        Ok(self.layer_activation(l, t, out))
    }

    fn batchnorm(&mut self, l: &LayerSpec, x: &T, out: &str) -> Result<Option<T>> {
        let axis = cfg(l, "axis")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_array().filter(|a| a.len() == 1)?.first()?.as_i64())
            })
            .unwrap_or(-1);
        if self.axis(axis, x) != Some(1) {
            self.unsupported(Some(format!(
                "normalising axis {axis} of a {}-D tensor",
                x.rank
            )));
            return Ok(None);
        }
        let (scale, center) = (cfg_bool(l, "scale", true), cfg_bool(l, "center", true));
        let n = 2 + usize::from(scale) + usize::from(center);
        let w = self.weights(l, n)?;
        let c = w[0].values.len();
        if w[..n].iter().any(|a| a.values.len() != c) {
            return Err(Error::Weights {
                layer: self.path.clone(),
                class: l.class.clone(),
                problem: "its gamma, beta, mean and variance differ in length".into(),
            });
        }
        let mut it = w.into_iter();
        let gamma = if scale {
            it.next().map(|a| a.values)
        } else {
            None
        }
        .unwrap_or_else(|| vec![1.0; c]);
        let beta = if center {
            it.next().map(|a| a.values)
        } else {
            None
        }
        .unwrap_or_else(|| vec![0.0; c]);
        let mean = it.next().map(|a| a.values).unwrap_or_default();
        let var = it.next().map(|a| a.values).unwrap_or_default();
        let eps = cfg_f32(l, "epsilon", 1e-3);
        let ins = vec![
            x.value.clone(),
            self.init("gamma", &[c as i64], &gamma),
            self.init("beta", &[c as i64], &beta),
            self.init("moving_mean", &[c as i64], &mean),
            self.init("moving_variance", &[c as i64], &var),
        ];
        self.push(
            "BatchNormalization",
            ins,
            out,
            vec![A::float("epsilon", eps)],
        );
        Ok(Some(T {
            value: out.into(),
            is_input: false,
            ..x.clone()
        }))
    }

    fn pool(&mut self, l: &LayerSpec, x: &T, out: &str, op: &str) -> Result<Option<T>> {
        let size = cfg_pair(l, "pool_size", Some([2, 2]))?;
        let strides = cfg_pair(l, "strides", Some(size))?;
        let mut attrs = vec![A::ints("kernel_shape", &size), A::ints("strides", &strides)];
        match cfg_str(l, "padding", "valid").to_ascii_lowercase().as_str() {
            "same" => attrs.push(A::string("auto_pad", "SAME_UPPER")),
            "valid" => attrs.push(A::ints("pads", &[0, 0, 0, 0])),
            other => {
                self.unsupported(Some(format!("padding '{other}'")));
                return Ok(None);
            }
        }
        Ok(self.image_op(x, out, op, vec![x.value.clone()], attrs))
    }

    fn global_pool(&mut self, l: &LayerSpec, x: &T, out: &str, op: &str) -> Result<Option<T>> {
        if cfg_bool(l, "keepdims", false) {
            return Ok(self.image_op(x, out, op, vec![x.value.clone()], vec![]));
        }
        let pooled = self.fresh("pooled");
        if self
            .image_op(x, &pooled, op, vec![x.value.clone()], vec![])
            .is_none()
        {
            return Ok(None);
        }
        self.push("Flatten", vec![pooled], out, vec![A::int("axis", 1)]);
        Ok(Some(T {
            value: out.into(),
            rank: 2,
            image: false,
            is_input: false,
        }))
    }

    /// `x` in Keras's element order (image tensors transposed back to NHWC).
    fn keras_order(&mut self, x: &T) -> String {
        if x.image {
            self.op(
                "Transpose",
                vec![x.value.clone()],
                vec![A::ints("perm", &[0, 2, 3, 1])],
            )
        } else {
            x.value.clone()
        }
    }

    fn flatten(&mut self, x: &T, out: &str) -> Option<T> {
        let v = self.keras_order(x);
        self.push("Flatten", vec![v], out, vec![A::int("axis", 1)]);
        Some(T {
            value: out.into(),
            rank: 2,
            image: false,
            is_input: false,
        })
    }

    fn reshape(&mut self, l: &LayerSpec, x: &T, out: &str) -> Result<Option<T>> {
        let target: Vec<i64> = cfg(l, "target_shape")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|d| d.as_i64().or(if d.is_null() { Some(-1) } else { None }))
                    .collect()
            })
            .ok_or_else(|| Error::Config(format!("layer '{}': bad target_shape", l.name)))?;
        let v = self.keras_order(x);
        let mut shape = vec![0];
        shape.extend(&target);
        let s = self.init_i64("shape", &shape);
        if target.len() == 3 {
            let nhwc = self.op("Reshape", vec![v, s], vec![]);
            self.push(
                "Transpose",
                vec![nhwc],
                out,
                vec![A::ints("perm", &[0, 3, 1, 2])],
            );
            return Ok(Some(T {
                value: out.into(),
                rank: 4,
                image: true,
                is_input: false,
            }));
        }
        self.push("Reshape", vec![v, s], out, vec![]);
        Ok(Some(T {
            value: out.into(),
            rank: target.len() + 1,
            image: false,
            is_input: false,
        }))
    }

    fn prelu(&mut self, l: &LayerSpec, x: &T, out: &str) -> Result<Option<T>> {
        let w = self.weights(l, 1)?;
        let a = &w[0];
        let slope = if x.image {
            self.check_shape(a, 3, "alpha")?;
            let (h, wd, c) = (a.shape[0], a.shape[1], a.shape[2]);
            let mut v = vec![0.0; a.values.len()];
            for y in 0..h {
                for xx in 0..wd {
                    for ch in 0..c {
                        v[(ch * h + y) * wd + xx] = a.values[(y * wd + xx) * c + ch];
                    }
                }
            }
            self.init("alpha", &[c as i64, h as i64, wd as i64], &v)
        } else {
            let dims: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
            self.init("alpha", &dims, &a.values)
        };
        self.push("PRelu", vec![x.value.clone(), slope], out, vec![]);
        Ok(Some(T {
            value: out.into(),
            is_input: false,
            ..x.clone()
        }))
    }

    fn merge(&mut self, l: &LayerSpec, ins: &[T], out: &str) -> Option<T> {
        if ins.len() < 2
            || ins
                .iter()
                .any(|t| t.image != ins[0].image || t.rank != ins[0].rank)
        {
            self.unsupported(Some("inputs of different ranks".into()));
            return None;
        }
        let op = match l.class.as_str() {
            "Add" | "Average" => "Add",
            "Subtract" => "Sub",
            "Multiply" => "Mul",
            "Maximum" => "Max",
            _ => "Min",
        };
        if op == "Sub" && ins.len() != 2 {
            self.unsupported(Some("Subtract of more than two inputs".into()));
            return None;
        }
        let n = ins.len();
        let mut acc = ins[0].value.clone();
        for (i, t) in ins.iter().enumerate().skip(1) {
            let last = i == n - 1 && l.class != "Average";
            if last {
                self.push(op, vec![acc.clone(), t.value.clone()], out, vec![]);
                acc = out.to_string();
            } else {
                acc = self.op(op, vec![acc, t.value.clone()], vec![]);
            }
        }
        if l.class == "Average" {
            let k = self.scalar(1.0 / n as f32);
            self.push("Mul", vec![acc, k], out, vec![]);
        }
        Some(T {
            value: out.into(),
            is_input: false,
            ..ins[0].clone()
        })
    }

    fn concat(&mut self, l: &LayerSpec, ins: &[T], out: &str) -> Option<T> {
        let axis = cfg(l, "axis").and_then(Value::as_i64).unwrap_or(-1);
        if ins
            .iter()
            .any(|t| t.image != ins[0].image || t.rank != ins[0].rank)
        {
            self.unsupported(Some("inputs of different ranks".into()));
            return None;
        }
        let Some(a) = self.axis(axis, &ins[0]) else {
            self.unsupported(Some(format!("axis {axis}")));
            return None;
        };
        let values = ins.iter().map(|t| t.value.clone()).collect();
        self.push("Concat", values, out, vec![A::int("axis", a)]);
        Some(T {
            value: out.into(),
            is_input: false,
            ..ins[0].clone()
        })
    }

    /// A scalar for one value, else a per-channel constant shaped to broadcast over `x` along
    /// its channel axis.
    fn channel_const(&mut self, role: &str, x: &T, values: &[f32]) -> String {
        let c = values.len() as i64;
        if values.len() == 1 {
            self.scalar(values[0])
        } else if x.image {
            self.init(role, &[c, 1, 1], values)
        } else {
            self.init(role, &[c], values)
        }
    }

    fn rescaling(&mut self, l: &LayerSpec, x: &T, out: &str) -> Result<Option<T>> {
        let scale = match numbers(l, "scale") {
            Some(Ok(v)) if !v.is_empty() => v,
            _ => {
                self.unsupported(Some(
                    "a scale that is not a number or a list of them".into(),
                ));
                return Ok(None);
            }
        };
        let offset = match numbers(l, "offset") {
            None => vec![0.0],
            Some(Ok(v)) if !v.is_empty() => v,
            Some(_) => {
                self.unsupported(Some(
                    "an offset that is not a number or a list of them".into(),
                ));
                return Ok(None);
            }
        };
        let per_channel = scale.len() > 1 || offset.len() > 1;
        if per_channel && !channels_last_axis(x) {
            self.unsupported(Some(format!(
                "a per-channel scale on a {}-D tensor",
                x.rank
            )));
            return Ok(None);
        }
        // The model rescales raw pixels itself when one scale meets its input.
        if x.is_input && !per_channel {
            self.input_rescaling = Some((scale[0], offset[0]));
        }
        let s = self.channel_const("scale", x, &scale);
        let o = self.channel_const("offset", x, &offset);
        let scaled = self.op("Mul", vec![x.value.clone(), s], vec![]);
        self.push("Add", vec![scaled, o], out, vec![]);
        Ok(Some(T {
            value: out.into(),
            is_input: false,
            ..x.clone()
        }))
    }

    /// Keras's Resizing to a fixed `height` × `width`, as `tf.image.resize` computes it without
    /// antialiasing: bilinear with half-pixel centres, or nearest picking
    /// `floor((x + 0.5) · in / out)` (ONNX's `tf_half_pixel_for_nn`). The output size goes in
    /// as Resize's `sizes`, made of the input's own batch and channel count (Shape → Slice)
    /// and the layer's constants, so any batch size runs. Cropping or padding to the aspect
    /// ratio, antialiasing and the other interpolations are refused.
    fn resizing(&mut self, l: &LayerSpec, x: &T, out: &str) -> Result<Option<T>> {
        let side = |key: &str| {
            cfg(l, key)
                .and_then(Value::as_i64)
                .filter(|v| (1..=1 << 16).contains(v))
                .ok_or_else(|| Error::Config(format!("layer '{}': bad {key}", l.name)))
        };
        let (height, width) = (side("height")?, side("width")?);
        let interpolation = cfg_str(l, "interpolation", "bilinear");
        let (mode, coord, nearest) = match interpolation {
            "bilinear" => ("linear", "half_pixel", "floor"),
            "nearest" => ("nearest", "tf_half_pixel_for_nn", "floor"),
            other => {
                self.unsupported(Some(format!(
                    "interpolation '{other}' (bilinear and nearest are read)"
                )));
                return Ok(None);
            }
        };
        for option in ["crop_to_aspect_ratio", "pad_to_aspect_ratio", "antialias"] {
            if cfg_bool(l, option, false) {
                self.unsupported(Some(format!("{option}=True")));
                return Ok(None);
            }
        }
        if !x.image {
            self.unsupported(Some("the input is not a 4-D image tensor".into()));
            return Ok(None);
        }
        // The size helpers are not the layer: the Resize heads it.
        let head = std::mem::replace(
            &mut self.head,
            format!("{}:size", self.path.replace('/', ".")),
        );
        let shape = self.op("Shape", vec![x.value.clone()], vec![]);
        let starts = self.init_i64("starts", &[0]);
        let ends = self.init_i64("ends", &[2]);
        let batch_channels = self.op("Slice", vec![shape, starts, ends], vec![]);
        let spatial = self.init_i64("size", &[height, width]);
        let sizes = self.op(
            "Concat",
            vec![batch_channels, spatial],
            vec![A::int("axis", 0)],
        );
        self.head = head;
        let resized = self.image_op(
            x,
            out,
            "Resize",
            vec![x.value.clone(), String::new(), String::new(), sizes],
            vec![
                A::string("mode", mode),
                A::string("coordinate_transformation_mode", coord),
                A::string("nearest_mode", nearest),
            ],
        );
        // Resized pixels are still the input's pixels: `Resizing` then `Rescaling(1/255)`, the
        // usual start of a Keras model, wants raw pixels like a `Rescaling` alone.
        Ok(resized.map(|t| T {
            is_input: x.is_input,
            ..t
        }))
    }

    /// Keras's Normalization: `(x - mean) / max(sqrt(variance), 1e-7)` per channel (`invert`:
    /// `mean + x * max(sqrt(variance), 1e-7)`), the statistics from the config when given, else
    /// the adapted weights (mean, variance, count).
    fn normalization(&mut self, l: &LayerSpec, x: &T, out: &str) -> Result<Option<T>> {
        let axis = cfg(l, "axis")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_array().filter(|a| a.len() == 1)?.first()?.as_i64())
            })
            .unwrap_or(-1);
        if self.axis(axis, x) != Some(1) || !channels_last_axis(x) {
            self.unsupported(Some(format!(
                "normalising axis {axis} of a {}-D tensor",
                x.rank
            )));
            return Ok(None);
        }
        let given = (numbers(l, "mean"), numbers(l, "variance"));
        let (mean, variance) = match given {
            (Some(Ok(m)), Some(Ok(v))) => (m, v),
            (None, None) => {
                let w = self.weights(l, 2)?;
                let mut it = w.into_iter();
                let (m, v) = (it.next(), it.next());
                (
                    m.map(|a| a.values).unwrap_or_default(),
                    v.map(|a| a.values).unwrap_or_default(),
                )
            }
            _ => {
                self.unsupported(Some("a mean or variance that is not numbers".into()));
                return Ok(None);
            }
        };
        if mean.is_empty() || mean.len() != variance.len() {
            return Err(Error::Weights {
                layer: self.path.clone(),
                class: l.class.clone(),
                problem: format!(
                    "its mean has {} values and its variance {}",
                    mean.len(),
                    variance.len()
                ),
            });
        }
        let std: Vec<f32> = variance.iter().map(|v| v.sqrt().max(1e-7)).collect();
        let m = self.channel_const("mean", x, &mean);
        let s = self.channel_const("std", x, &std);
        if cfg_bool(l, "invert", false) {
            let scaled = self.op("Mul", vec![x.value.clone(), s], vec![]);
            self.push("Add", vec![scaled, m], out, vec![]);
        } else {
            let centred = self.op("Sub", vec![x.value.clone(), m], vec![]);
            self.push("Div", vec![centred, s], out, vec![]);
        }
        Ok(Some(T {
            value: out.into(),
            is_input: false,
            ..x.clone()
        }))
    }
}

/// A number or a list of numbers in the config, as f32s; `None` when absent.
fn numbers(l: &LayerSpec, key: &str) -> Option<std::result::Result<Vec<f32>, ()>> {
    let v = cfg(l, key)?;
    Some(match v {
        Value::Number(_) => v.as_f64().map(|f| vec![f as f32]).ok_or(()),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or(()),
        _ => Err(()),
    })
}

/// Whether `x`'s channels can take per-channel constants: the last Keras axis of an image or of
/// a `[batch, features]` tensor.
fn channels_last_axis(x: &T) -> bool {
    x.image || x.rank == 2
}

fn a_bad(k: &Array, kh: i64, kw: i64) -> bool {
    k.shape.len() != 4 || k.shape[0] as i64 != kh || k.shape[1] as i64 != kw
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    Plain,
    Depthwise,
    Separable,
    Transpose,
}

/// The output tensor a reference names; a layer called once answers any node index (Keras 2
/// counts a nested model's own creation as node 0).
fn lookup(env: &HashMap<String, Vec<Vec<T>>>, r: &TensorRef) -> Option<T> {
    let calls = env.get(&r.layer)?;
    let call = if calls.len() == 1 {
        &calls[0]
    } else {
        calls
            .get(r.node)
            .or_else(|| calls.get(r.node.checked_sub(1)?))?
    };
    call.get(r.tensor).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequential(layers: serde_json::Value) -> Graph {
        crate::config::parse_model(&serde_json::json!({
            "class_name": "Sequential",
            "config": {"name": "s", "layers": layers}
        }))
        .unwrap()
    }

    /// `Resizing` then `Rescaling`, the start of Keras's own preprocessing examples, wants raw
    /// pixels like a `Rescaling` alone; a `Rescaling` after a convolution does not.
    #[test]
    fn rescaling_after_resizing_the_input_sets_the_raw_pixel_preset() {
        let input = serde_json::json!({"class_name": "InputLayer",
            "config": {"name": "in", "batch_shape": [null, 40, 50, 3]}});
        let resize = serde_json::json!({"class_name": "Resizing",
            "config": {"name": "resize", "height": 20, "width": 25}});
        let rescale = serde_json::json!({"class_name": "Rescaling",
            "config": {"name": "rescale", "scale": 0.00392156862745098, "offset": 0.0}});
        let pool = serde_json::json!({"class_name": "MaxPooling2D", "config": {"name": "pool"}});
        let weights = Weights::default();
        let t = translate(
            &sequential(serde_json::json!([input, resize, rescale])),
            &weights,
            false,
        )
        .unwrap();
        assert_eq!(t.input_rescaling, Some((1.0 / 255.0, 0.0)));
        let t = translate(
            &sequential(serde_json::json!([input, pool, rescale])),
            &weights,
            false,
        )
        .unwrap();
        assert_eq!(t.input_rescaling, None);
    }
}
