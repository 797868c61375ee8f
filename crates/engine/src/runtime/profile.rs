//! Optional per-op timing, switched on by the `bench` command to show where time goes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PER_NODE: AtomicBool = AtomicBool::new(false);
static TIMES: Mutex<Option<HashMap<String, (Duration, usize)>>> = Mutex::new(None);

/// Turns per-op timing on or off (off by default; when off it costs one atomic load per node).
pub fn set_profiling(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// With profiling on, time every node separately (labels carry the node name) instead of
/// summing per op type.
///
/// ```
/// convscope_engine::set_profiling(true);
/// convscope_engine::set_profiling_per_node(true);
/// // … run a model; then each entry is e.g. "Conv+Relu forward block1_conv1/BiasAdd".
/// for (label, total, calls) in convscope_engine::take_profile() {
///     println!("{label}: {total:?} over {calls} calls");
/// }
/// convscope_engine::set_profiling(false);
/// ```
pub fn set_profiling_per_node(on: bool) {
    PER_NODE.store(on, Ordering::Relaxed);
}

/// The profile label of a node's pass: its op (and fused activation), plus its name per node.
pub(crate) fn label(op: &str, node: &str, direction: &str) -> String {
    if PER_NODE.load(Ordering::Relaxed) {
        format!("{op} {direction} {node}")
    } else {
        format!("{op} {direction}")
    }
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn record(key: &str, d: Duration) {
    let mut t = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    let e = t
        .get_or_insert_with(HashMap::new)
        .entry(key.to_string())
        .or_default();
    e.0 += d;
    e.1 += 1;
}

/// Accumulated `(op and direction, total time, calls)`, slowest first; resets the counters.
pub fn take_profile() -> Vec<(String, Duration, usize)> {
    let mut t = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<_> = t
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, (d, n))| (k, d, n))
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}
