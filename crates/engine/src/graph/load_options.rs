//! Loading options, and the load-time refusal of weights that hold NaN or infinity.
//!
//! A NaN weight makes NaN of every value computed from it, and every picture of those values
//! comes out blank or as noise with no hint why. So a model whose initializers (or `Constant`
//! nodes) hold NaN or ±infinity is refused at load with one line naming the first such tensor,
//! the element and the nodes that read it. [`LoadOptions::allow_nonfinite`] loads it anyway,
//! for someone debugging that very model (`Model::first_nonfinite` then finds where the
//! first non-finite value appears).
//!
//! One exception: a single ±infinity read only by `Clip`, `Pad`, `Max` or `Min` is a bound or a
//! padding value ("no upper limit", "−∞ padding before a max pool"), not a broken weight.

use convscope_onnx::{AttributeValue, GraphProto, NodeProto, TensorProto};

use crate::error::{Error, Result};

/// How [`Model::load_with`](crate::Model::load_with),
/// [`Model::from_bytes_with`](crate::Model::from_bytes_with) and
/// [`Model::from_proto_with`](crate::Model::from_proto_with) treat a model. The default is
/// what [`Model::load`](crate::Model::load) does.
///
/// ```
/// use convscope_engine::{LoadOptions, Model};
/// use convscope_onnx::{Dim, GraphBuilder, TensorProto};
///
/// let mut g = GraphBuilder::new("nan");
/// g.input("x", &[Dim::Value(1), Dim::Value(2), Dim::Value(1), Dim::Value(1)])
///     .initializer(TensorProto::from_f32("w", &[1, 2, 1, 1], &[1.0, f32::NAN]))
///     .node("Mul", "scale", &["x", "w"], &["y"], vec![])
///     .output("y", &[]);
/// let err = Model::from_proto(g.build(13)).err().unwrap();
/// assert!(err.to_string().contains("weight 'w' holds NaN at element 1"));
///
/// let debug = LoadOptions { allow_nonfinite: true };
/// assert!(Model::from_proto_with(g.build(13), &debug).is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load a model even when a weight holds NaN or ±infinity (refused by default, see
    /// [`Error::NonFiniteWeight`]).
    pub allow_nonfinite: bool,
}

/// Readers for which a single infinite value is a bound or a padding value.
const INFINITE_BOUND_READERS: &[&str] = &["Clip", "Pad", "Max", "Min"];

/// A constant of the graph: its value name and its first non-finite element, if any.
struct Found {
    name: String,
    index: usize,
    value: f32,
    elements: Option<usize>,
}

fn element_count(t: &TensorProto) -> Option<usize> {
    t.dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
}

fn in_tensor(name: &str, t: &TensorProto) -> Option<Found> {
    let (index, value) = t.first_nonfinite()?;
    Some(Found {
        name: name.to_string(),
        index,
        value,
        elements: element_count(t),
    })
}

/// The value of a `Constant` node, when it is a float that is not finite somewhere.
fn in_constant(node: &NodeProto) -> Option<Found> {
    let name = node.output.first()?;
    let attr = node
        .attribute
        .iter()
        .find(|a| a.name.starts_with("value"))?;
    let floats: &[f32] = match &attr.value {
        AttributeValue::Tensor(t) => return in_tensor(name, t),
        AttributeValue::Float(f) => std::slice::from_ref(f),
        AttributeValue::Floats(f) => f,
        _ => return None,
    };
    let (index, &value) = floats.iter().enumerate().find(|(_, v)| !v.is_finite())?;
    Some(Found {
        name: name.clone(),
        index,
        value,
        elements: Some(floats.len()),
    })
}

/// Refuses the first initializer or `Constant` that holds NaN or ±infinity (but for the
/// bounds described in the module documentation).
pub(super) fn check_finite_weights(graph: &GraphProto) -> Result<()> {
    let constants = graph
        .initializer
        .iter()
        .filter_map(|t| in_tensor(&t.name, t))
        .chain(
            graph
                .node
                .iter()
                .filter(|n| {
                    n.op_type == "Constant" && (n.domain.is_empty() || n.domain == "ai.onnx")
                })
                .filter_map(in_constant),
        );
    for found in constants {
        let readers: Vec<&NodeProto> = graph
            .node
            .iter()
            .filter(|n| n.input.contains(&found.name))
            .collect();
        let bound = found.value.is_infinite()
            && found.elements == Some(1)
            && !readers.is_empty()
            && readers
                .iter()
                .all(|n| INFINITE_BOUND_READERS.contains(&n.op_type.as_str()));
        if bound {
            continue;
        }
        return Err(Error::NonFiniteWeight {
            tensor: found.name,
            index: found.index,
            value: found.value,
            readers: readers
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let name = if n.name.is_empty() {
                        n.output.first().cloned().unwrap_or_else(|| format!("#{i}"))
                    } else {
                        n.name.clone()
                    };
                    format!("'{name}' ({})", n.op_type)
                })
                .collect(),
        });
    }
    Ok(())
}
