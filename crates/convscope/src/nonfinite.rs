//! Where NaN or infinity first appears in a pass.

use convscope_engine::{Model, Tensor};

/// The first layer (in execution order) whose output holds NaN or infinity for `input`, as
/// `(node name, value name)`; `None` when every layer output is finite or the pass fails.
///
/// Runs only on the failure path: a pass that keeps every layer's output.
pub(crate) fn first_nonfinite(model: &Model, input: &Tensor) -> Option<(String, String)> {
    let values: Vec<_> = model.layers().iter().map(|l| l.value).collect();
    let tape = model.forward(input, &values).ok()?;
    model.layers().iter().find_map(|l| {
        let t = tape.value(l.value).ok()?;
        t.data()
            .iter()
            .any(|v| !v.is_finite())
            .then(|| (l.node.clone(), model.value_name(l.value).to_string()))
    })
}
