//! Every refusal reads as one line in which each message appears once.
//!
//! A chain printer (`anyhow`'s `{:#}`, which the binary uses) prints an error's message, then
//! the message of its `source()`, and so on. An error whose own message already includes its
//! source's text was therefore printed twice ("group 0 must be >= 1: invalid model: group 0 must
//! be >= 1"). These tests walk the `source()` chain of a sample of errors from every library
//! layer (onnx, engine, image, methods) and check that no message contains its source's.

use std::error::Error as StdError;
use std::path::PathBuf;

use convscope_engine::{Model, Tensor};
use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};

/// The messages of `e` and of every error below it, outermost first.
fn chain(e: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

/// What `anyhow`'s `{:#}` prints: the messages of the chain joined by `": "`.
fn printed(e: &(dyn StdError + 'static)) -> String {
    chain(e).join(": ")
}

fn assert_said_once(case: &str, e: &(dyn StdError + 'static)) {
    let msgs = chain(e);
    for pair in msgs.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{case}: the message repeats its source's text: {}",
            printed(e)
        );
    }
    // The innermost message is the detail; it must appear exactly once in the printed line.
    let line = printed(e);
    let detail = msgs.last().expect("at least one message");
    assert_eq!(
        line.matches(detail.as_str()).count(),
        1,
        "{case}: '{detail}' is printed more than once: {line}"
    );
    assert!(!line.contains('\n'), "{case}: not one line: {line}");
}

fn conv_model(group: i64) -> GraphBuilder {
    let mut g = GraphBuilder::new("conv");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(2), Dim::Value(4), Dim::Value(4)],
    )
    .output("y", &[])
    .initializer(TensorProto::from_f32("w", &[2, 2, 3, 3], &[0.1; 36]))
    .node(
        "Conv",
        "conv",
        &["x", "w"],
        &["y"],
        vec![AttributeProto::int("group", group)],
    );
    g
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convscope-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn refusals_print_each_message_once() {
    let mut errors: Vec<(&str, Box<dyn StdError + 'static>)> = Vec::new();

    // A bad attribute found while preparing a node (engine: node context around the detail).
    let e = Model::from_proto(conv_model(0).build(13))
        .err()
        .expect("group 0");
    assert!(e.to_string().contains("group 0 must be >= 1"), "{e}");
    errors.push(("group 0", Box::new(e)));

    // The same refusal seen through the methods crate.
    let e = Model::from_proto(conv_model(0).build(13))
        .err()
        .expect("group 0");
    errors.push((
        "group 0 via methods",
        Box::new(convscope_methods::Error::from(e)),
    ));

    // A shape error inside a node at run time.
    let mut g = GraphBuilder::new("reshape");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(1), Dim::Value(2), Dim::Value(2)],
    )
    .output("y", &[])
    .initializer(TensorProto::from_i64("s", &[2], &[3, 5]))
    .node("Reshape", "reshape", &["x", "s"], &["y"], vec![]);
    let m = Model::from_proto(g.build(13)).unwrap();
    let y = m.resolve("y").unwrap();
    let e = m.run(&Tensor::zeros(&[1, 1, 2, 2]), &[y]).expect_err("3x5");
    errors.push(("reshape at run time", Box::new(e)));

    // A model file that cannot be read (onnx I/O error, through the engine).
    let dir = temp_dir("errchain");
    let e = Model::load(&dir.join("missing.onnx"))
        .err()
        .expect("missing");
    errors.push(("missing model", Box::new(e)));

    // A model "file" that is a directory.
    let e = Model::load(&dir).err().expect("a directory");
    errors.push(("model is a directory", Box::new(e)));

    // An image that is a directory (image I/O error), through the methods crate.
    let sub = dir.join("picture.png");
    std::fs::create_dir_all(&sub).unwrap();
    let e = convscope_image::load_rgb(&sub).expect_err("a directory");
    errors.push(("image is a directory", Box::new(e)));
    let e = convscope_image::write_atomic(&dir.join("no/such/dir/out.png"), b"x")
        .expect_err("no parent folder");
    errors.push(("write into a missing folder", Box::new(e)));

    // A missing external data file.
    let mut g = GraphBuilder::new("external");
    g.input("x", &[Dim::Value(1), Dim::Value(2)])
        .output("y", &[])
        .initializer(TensorProto {
            name: "w".into(),
            dims: vec![2],
            data_type: convscope_onnx::data_type::FLOAT,
            external_data: vec![("location".into(), "w.bin".into())],
            data_location: 1,
            ..Default::default()
        })
        .node("Mul", "mul", &["x", "w"], &["y"], vec![]);
    let path = dir.join("external.onnx");
    std::fs::write(&path, g.build(13).encode()).unwrap();
    let e = Model::load(&path).err().expect("w.bin is missing");
    errors.push(("missing external data", Box::new(e)));

    // An unsupported attribute value that the op builder refuses.
    let mut g = GraphBuilder::new("pool");
    g.input(
        "x",
        &[Dim::Value(1), Dim::Value(1), Dim::Value(4), Dim::Value(4)],
    )
    .output("y", &[])
    .node(
        "MaxPool",
        "pool",
        &["x"],
        &["y"],
        vec![AttributeProto::ints("kernel_shape", &[0, 2])],
    );
    if let Err(e) = Model::from_proto(g.build(13)) {
        errors.push(("kernel 0", Box::new(e)));
    }

    assert!(errors.len() >= 8);
    for (case, e) in &errors {
        assert_said_once(case, e.as_ref());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
