//! Integration tests: the real models in `shared/models`, cross-checks against the Python
//! `onnx` package, external data, and mutation fuzzing of the decoder.
//!
//! Tests that need a shared file skip (with a note on stderr) when it is missing, unless
//! `CI=true`, where a missing file is a failure.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use convscope_onnx::{
    data_type, AttributeProto, AttributeValue, Dim, Error, GraphBuilder, GraphProto, ModelProto,
    NodeProto, TensorProto, TensorValues,
};
use convscope_test_support::protobuf::{mutants, noise_message, varint};
use convscope_test_support::{shared, shared_bytes, Rng, TempDir};

const VGG: &str = "models/vgg16_tumor.onnx";
const EFFNET: &str = "models/efficientnet_lite0.onnx";
const PNG: &str = "images/chelsea.png";

fn op_counts(m: &ModelProto) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for n in &m.graph.node {
        *counts.entry(n.op_type.as_str()).or_default() += 1;
    }
    counts
}

fn assert_initializers_decode(m: &ModelProto) {
    for t in &m.graph.initializer {
        let values = t
            .values()
            .unwrap_or_else(|e| panic!("initializer {}: {e}", t.name));
        let expected: usize = t.shape().unwrap().iter().product();
        assert_eq!(values.len(), expected, "initializer {}", t.name);
    }
}

fn first_conv_weight(m: &ModelProto) -> Vec<f32> {
    let conv = m.graph.node.iter().find(|n| n.op_type == "Conv").unwrap();
    let w = m
        .graph
        .initializer
        .iter()
        .find(|t| t.name == conv.input[1])
        .unwrap();
    match w.values().unwrap() {
        TensorValues::Float(v) => v,
        other => panic!("conv weight is not float: {other:?}"),
    }
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-3 * want.abs(),
        "{what}: got {got}, Python onnx says {want}"
    );
}

#[test]
fn vgg16_structure_matches_readme() {
    let Some(path) = shared(VGG) else { return };
    let m = ModelProto::load(&path).unwrap();
    assert_eq!(m.ir_version, 7);
    assert_eq!(m.producer_name, "tf2onnx");
    assert_eq!(m.graph.node.len(), 56);
    let ops = op_counts(&m);
    assert_eq!(ops["Conv"], 13);
    assert_eq!(ops["Relu"], 16);
    assert_eq!(ops["MaxPool"], 5);

    assert_eq!(m.graph.input.len(), 1);
    let input = &m.graph.input[0];
    assert_eq!(input.name, "input");
    assert_eq!(input.elem_type, data_type::FLOAT);
    let shape = input.shape.as_ref().unwrap();
    assert!(
        matches!(shape[0], Dim::Param(_) | Dim::Unknown),
        "{shape:?}"
    );
    assert_eq!(
        shape[1..],
        [Dim::Value(240), Dim::Value(240), Dim::Value(3)]
    );

    let conv = m.graph.node.iter().find(|n| n.op_type == "Conv").unwrap();
    assert_eq!(conv.attr_ints("pads"), Some(&[1, 1, 1, 1][..]));
    assert_eq!(conv.attr_ints("kernel_shape"), Some(&[3, 3][..]));
    assert_initializers_decode(&m);
}

#[test]
fn efficientnet_structure_matches_readme() {
    let Some(path) = shared(EFFNET) else { return };
    let m = ModelProto::load(&path).unwrap();
    assert_eq!(m.graph.node.len(), 94);
    let ops = op_counts(&m);
    assert_eq!(ops["Conv"], 49);
    assert_eq!(ops["Clip"], 33);
    assert_eq!(ops["Gemm"], 1);
    assert_eq!(m.opset_import[0].version, 17);

    let input = &m.graph.input[0];
    assert_eq!(input.name, "input");
    assert_eq!(
        input.shape.as_deref(),
        Some(
            &[
                Dim::Value(1),
                Dim::Value(3),
                Dim::Value(224),
                Dim::Value(224)
            ][..]
        )
    );
    assert_eq!(m.graph.output[0].name, "logits");

    // Depthwise convs have group == channels; stride-2 3x3 convs pad asymmetrically.
    let dw = m
        .graph
        .node
        .iter()
        .find(|n| n.name == "/_blocks.0/_depthwise_conv/Conv")
        .unwrap();
    assert_eq!(dw.attr_int("group"), Some(32));
    assert_eq!(
        m.graph.node[0].attr_ints("pads"),
        Some(&[0, 0, 1, 1][..]),
        "stem conv"
    );
    assert_initializers_decode(&m);
}

#[test]
fn first_conv_weights_match_python_onnx() {
    // Reference values from (run in the workspace root, same for efficientnet_lite0.onnx):
    // python3 -c "import onnx,numpy as np; from onnx import numpy_helper as nh; m=onnx.load('../shared/models/vgg16_tumor.onnx'); g=m.graph; c=[n for n in g.node if n.op_type=='Conv'][0]; w=nh.to_array([t for t in g.initializer if t.name==c.input[1]][0]).astype(np.float64); print(w.shape, repr(w.sum()), repr(np.abs(w).sum()))"
    // vgg16_tumor:        (64, 3, 3, 3) -4.212706642851117 291.40991200292774
    // efficientnet_lite0: (32, 3, 3, 3) -7.221376861139667 761.210318815286
    let cases = [
        (VGG, 64 * 27, -4.212706642851117, 291.40991200292774),
        (EFFNET, 32 * 27, -7.221376861139667, 761.210318815286),
    ];
    for (path, len, sum, abs_sum) in cases {
        let Some(bytes) = shared_bytes(path) else {
            return;
        };
        let m = ModelProto::decode(&bytes).unwrap();
        let w = first_conv_weight(&m);
        assert_eq!(w.len(), len, "{path}");
        let got_sum: f64 = w.iter().map(|&v| f64::from(v)).sum();
        let got_abs: f64 = w.iter().map(|&v| f64::from(v).abs()).sum();
        assert_close(got_sum, sum, path);
        assert_close(got_abs, abs_sum, path);
    }
}

#[test]
fn real_model_survives_encode_decode() {
    let Some(bytes) = shared_bytes(EFFNET) else {
        return;
    };
    let m = ModelProto::decode(&bytes).unwrap();
    let again = ModelProto::decode(&m.encode()).unwrap();
    assert_eq!(again, m);
}

#[test]
fn encoding_matches_onnx_helper_byte_for_byte() {
    // Bytes of the same model built with onnx.helper (onnx 1.23):
    // python3 -c "import numpy as np; from onnx import helper as h, TensorProto as T, numpy_helper as nh; w=nh.from_array(np.array([[0.5,-1.0]],dtype=np.float32),'w'); s=nh.from_array(np.array([1,-1],dtype=np.int64),'shape'); n=h.make_node('Conv',['x','w',''],['y'],name='conv',alpha=0.25,auto_pad='NOTSET',group=1,pads=[0,0,1,1],scales=[1.5,2.0]); n2=h.make_node('Reshape',['y','shape'],['z'],name='reshape'); g=h.make_graph([n,n2],'tiny',[h.make_tensor_value_info('x',T.FLOAT,['N',2])],[h.make_tensor_value_info('z',T.FLOAT,[1,None])],[w,s]); print(h.make_model(g,opset_imports=[h.make_opsetid('',17)],producer_name='convscope',ir_version=8).SerializeToString().hex())"
    const PYTHON_HEX: &str = "08081209636f6e7673636f70653afd010a770a01780a01770a001201791a04636f6e762204436f6e762a0f0a05616c706861150000803ea001012a150a086175746f5f70616422064e4f54534554a001032a0c0a0567726f75701801a001022a110a04706164734000400040014001a001072a150a067363616c65733d0000c03f3d00000040a001060a1f0a01790a05736861706512017a1a0772657368617065220752657368617065120474696e792a130801080210014201774a080000003f000080bf2a1d08021007420573686170654a100100000000000000ffffffffffffffff5a140a0178120f0a0d080112090a0312014e0a02080262110a017a120c0a0a080112060a0208010a0042040a001011";
    let mut g = GraphBuilder::new("tiny");
    g.input("x", &[Dim::Param("N".into()), Dim::Value(2)])
        .initializer(TensorProto::from_f32("w", &[1, 2], &[0.5, -1.0]))
        .initializer(TensorProto::from_i64("shape", &[2], &[1, -1]))
        .node(
            "Conv",
            "conv",
            &["x", "w", ""],
            &["y"],
            vec![
                AttributeProto::float("alpha", 0.25),
                AttributeProto::string("auto_pad", "NOTSET"),
                AttributeProto::int("group", 1),
                AttributeProto::ints("pads", &[0, 0, 1, 1]),
                AttributeProto::floats("scales", &[1.5, 2.0]),
            ],
        )
        .node("Reshape", "reshape", &["y", "shape"], &["z"], vec![])
        .output("z", &[Dim::Value(1), Dim::Unknown]);
    let mut m = g.build(17);
    m.producer_version.clear();
    let hex: String = m.encode().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, PYTHON_HEX);
}

/// A model using every attribute kind and a subgraph, plus narrow tensor types.
fn rich_model() -> ModelProto {
    let f16 = TensorProto {
        name: "half".into(),
        dims: vec![2, 2],
        data_type: data_type::FLOAT16,
        // 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal)
        raw_data: [0x3c00u16, 0xc000, 0x7bff, 0x0001]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        ..Default::default()
    };
    let flags = TensorProto {
        name: "flags".into(),
        dims: vec![3],
        data_type: data_type::BOOL,
        raw_data: vec![1, 0, 1],
        ..Default::default()
    };
    let bytes = TensorProto {
        name: "small".into(),
        dims: vec![4],
        data_type: data_type::INT8,
        int32_data: vec![-128, -1, 0, 127],
        ..Default::default()
    };
    let mut branch = GraphBuilder::new("branch");
    branch
        .node("Identity", "id", &["a"], &["b"], vec![])
        .output("b", &[Dim::Unknown]);
    let branch = branch.build(17).graph;
    let kinds = vec![
        AttributeProto::float("f", 0.5),
        AttributeProto::int("i", -3),
        AttributeProto::string("s", "NOTSET"),
        AttributeProto::tensor("t", TensorProto::from_f32("tv", &[1], &[2.0])),
        AttributeProto {
            name: "g".into(),
            value: AttributeValue::Graph(Box::new(branch.clone())),
        },
        AttributeProto::floats("fs", &[1.0, -1.0]),
        AttributeProto::ints("is", &[1, 2, 3]),
        AttributeProto {
            name: "ss".into(),
            value: AttributeValue::Strings(vec![b"a".to_vec(), b"bc".to_vec()]),
        },
        AttributeProto {
            name: "ts".into(),
            value: AttributeValue::Tensors(vec![flags.clone()]),
        },
        AttributeProto {
            name: "gs".into(),
            value: AttributeValue::Graphs(vec![branch.clone(), GraphProto::default()]),
        },
    ];
    let mut g = GraphBuilder::new("rich");
    g.input("x", &[Dim::Param("N".into()), Dim::Value(4)])
        .initializer(f16)
        .initializer(flags)
        .initializer(bytes)
        .initializer(TensorProto::from_i64("axes", &[1], &[0]))
        .node(
            "Custom",
            "everything",
            &["x", "", "half"],
            &["y", "y2"],
            kinds,
        )
        .node(
            "Constant",
            "c",
            &[],
            &["k"],
            vec![AttributeProto::tensor(
                "value",
                TensorProto::from_f32("", &[], &[3.0]),
            )],
        )
        .output("y", &[Dim::Param("N".into()), Dim::Value(4)]);
    g.build(17)
}

#[test]
fn rich_model_round_trips_with_values() {
    let m = rich_model();
    let back = ModelProto::decode(&m.encode()).unwrap();
    assert_eq!(back, m);
    let init = |name: &str| {
        back.graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .values()
            .unwrap()
    };
    assert_eq!(
        init("half"),
        TensorValues::Float(vec![1.0, -2.0, 65504.0, 2f32.powi(-24)])
    );
    assert_eq!(init("flags"), TensorValues::Int(vec![1, 0, 1]));
    assert_eq!(init("small"), TensorValues::Int(vec![-128, -1, 0, 127]));
    let node: &NodeProto = &back.graph.node[0];
    assert_eq!(node.attr_string("s").as_deref(), Some("NOTSET"));
    assert_eq!(node.attr_ints("is"), Some(&[1, 2, 3][..]));
    assert!(matches!(node.attr("gs"), Some(AttributeValue::Graphs(g)) if g.len() == 2));
}

// --- external data ---------------------------------------------------------------------

/// Moves a tensor's raw data to `location` at `offset` inside `dir`.
fn externalize(t: &mut TensorProto, dir: &Path, location: &str, offset: usize) {
    let path = dir.join(location);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::fs::read(&path).unwrap_or_default();
    file.resize(offset, 0xee);
    file.extend_from_slice(&t.raw_data);
    std::fs::write(&path, file).unwrap();
    t.external_data = vec![
        ("location".into(), location.into()),
        ("offset".into(), offset.to_string()),
        ("length".into(), t.raw_data.len().to_string()),
    ];
    t.raw_data.clear();
    t.data_location = 1;
}

fn external_model(dir: &Path) -> (ModelProto, Vec<TensorValues>) {
    let w = TensorProto::from_f32("w", &[2, 3], &[1.0, 2.0, 3.0, -4.0, 5.5, 6.0]);
    let b = TensorProto::from_i64("b", &[2], &[7, -8]);
    let c = TensorProto::from_f32("c", &[1], &[9.0]);
    let expected = vec![
        w.values().unwrap(),
        b.values().unwrap(),
        c.values().unwrap(),
    ];
    let mut g = GraphBuilder::new("ext");
    g.input("x", &[Dim::Value(3)])
        .initializer(w)
        .initializer(b)
        .node(
            "Constant",
            "c",
            &[],
            &["c"],
            vec![AttributeProto::tensor("value", c)],
        )
        .output("y", &[Dim::Value(2)]);
    let mut m = g.build(17);
    externalize(&mut m.graph.initializer[0], dir, "weights.bin", 16);
    externalize(&mut m.graph.initializer[1], dir, "weights.bin", 64);
    let AttributeValue::Tensor(c) = &mut m.graph.node[0].attribute[0].value else {
        unreachable!()
    };
    externalize(c, dir, "sub/const.bin", 0);
    (m, expected)
}

#[test]
fn external_data_is_loaded_relative_to_the_model() {
    let dir = TempDir::new("ext");
    let (m, expected) = external_model(dir.root());
    let model_path = dir.root().join("model.onnx");
    std::fs::write(&model_path, m.encode()).unwrap();

    // decode() leaves references alone, so values() must say what is missing.
    let unresolved = ModelProto::decode(&std::fs::read(&model_path).unwrap()).unwrap();
    assert!(matches!(
        unresolved.graph.initializer[0].values(),
        Err(Error::ExternalData { .. })
    ));

    let loaded = ModelProto::load(&model_path).unwrap();
    let c = loaded.graph.node[0].attr_tensor("value").unwrap();
    let got = [
        &loaded.graph.initializer[0],
        &loaded.graph.initializer[1],
        c,
    ];
    for (t, want) in got.iter().zip(&expected) {
        assert_eq!(&t.values().unwrap(), want, "{}", t.name);
        assert!(t.external_data.is_empty());
        assert_eq!(t.data_location, 0);
    }
}

#[test]
fn bad_external_references_are_rejected() {
    let dir = TempDir::new("ext-bad");
    std::fs::write(dir.root().join("w.bin"), [0u8; 8]).unwrap();
    std::fs::create_dir(dir.root().join("subdir")).unwrap();
    let secret = dir.root().parent().unwrap().join("w.bin");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("parent dir", vec![("location", "../w.bin".into())]),
        (
            "nested parent dir",
            vec![("location", "a/../../w.bin".into())],
        ),
        (
            "absolute path",
            vec![("location", secret.display().to_string())],
        ),
        ("missing location", vec![("offset", "0".into())]),
        ("missing file", vec![("location", "nope.bin".into())]),
        ("directory", vec![("location", "subdir".into())]),
        (
            "offset past end",
            vec![("location", "w.bin".into()), ("offset", "9".into())],
        ),
        (
            "length past end",
            vec![
                ("location", "w.bin".into()),
                ("offset", "4".into()),
                ("length", "8".into()),
            ],
        ),
        (
            "huge length",
            vec![
                ("location", "w.bin".into()),
                ("length", u64::MAX.to_string()),
            ],
        ),
        (
            "bad number",
            vec![("location", "w.bin".into()), ("offset", "-1".into())],
        ),
    ];
    for (what, keys) in cases {
        let mut t = TensorProto::from_f32("w", &[2], &[0.0, 0.0]);
        t.raw_data.clear();
        t.data_location = 1;
        t.external_data = keys.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let mut g = GraphBuilder::new("bad");
        g.initializer(t);
        let path = dir.root().join("model.onnx");
        std::fs::write(&path, g.build(17).encode()).unwrap();
        match ModelProto::load(&path) {
            Err(Error::ExternalData { tensor, .. }) => assert_eq!(tensor, "w", "{what}"),
            other => panic!("{what}: expected ExternalData error, got {other:?}"),
        }
    }
}

/// A model at `dir/model.onnx` whose initializer `w` (two floats) lives at `location`.
#[cfg(unix)]
fn load_with_location(dir: &Path, location: &str) -> Result<ModelProto, Error> {
    let mut t = TensorProto::from_f32("w", &[2], &[0.0, 0.0]);
    t.raw_data.clear();
    t.data_location = 1;
    t.external_data = vec![("location".into(), location.into())];
    let mut g = GraphBuilder::new("linked");
    g.initializer(t);
    let path = dir.join("model.onnx");
    std::fs::write(&path, g.build(17).encode()).unwrap();
    ModelProto::load(&path)
}

/// Symlinks are resolved before external data is read: a link (to a file or to a folder) that
/// leads outside the model's folder is refused, one that stays inside is followed; FIFOs and
/// folders are refused without being opened. Before the fix, `link.bin -> ../secret.bin` and
/// `dirlink/x.bin` were read.
#[cfg(unix)]
#[test]
fn external_data_symlinks_must_stay_inside_the_model_folder() {
    use std::os::unix::fs::symlink;

    // A scratch folder of its own (not the file's TempDir helper, which other branches
    // replace), removed at the end.
    let root =
        std::env::temp_dir().join(format!("convscope-onnx-ext-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let secret = [1.5f32, -2.0];
    let secret_bytes: Vec<u8> = secret.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(root.join("secret.bin"), &secret_bytes).unwrap();
    std::fs::create_dir(root.join("elsewhere")).unwrap();
    std::fs::write(root.join("elsewhere/x.bin"), &secret_bytes).unwrap();
    let dir = root.join("model");
    std::fs::create_dir_all(dir.join("real")).unwrap();
    std::fs::write(dir.join("inside.bin"), &secret_bytes).unwrap();
    std::fs::write(dir.join("real/y.bin"), &secret_bytes).unwrap();

    // Leading outside: a file symlink (relative and absolute targets) and a folder symlink.
    symlink("../secret.bin", dir.join("link.bin")).unwrap();
    symlink(root.join("secret.bin"), dir.join("abs_link.bin")).unwrap();
    symlink(root.join("elsewhere"), dir.join("dirlink")).unwrap();
    for location in [
        "link.bin",
        "abs_link.bin",
        "dirlink/x.bin",
        "./dirlink/x.bin",
    ] {
        match load_with_location(&dir, location) {
            Err(e @ Error::ExternalData { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(location) && msg.contains("outside the model's folder"),
                    "{location}: {msg}"
                );
                assert!(!msg.contains('\n'), "{msg}");
            }
            other => panic!("{location}: read through a symlink out of the folder: {other:?}"),
        }
    }

    // Staying inside: a file symlink and a folder symlink that point into the folder.
    symlink("inside.bin", dir.join("alias.bin")).unwrap();
    symlink("real", dir.join("dir_alias")).unwrap();
    for location in ["alias.bin", "dir_alias/y.bin", "inside.bin"] {
        let m = load_with_location(&dir, location).unwrap_or_else(|e| panic!("{location}: {e}"));
        assert_eq!(
            m.graph.initializer[0].values().unwrap(),
            TensorValues::Float(secret.to_vec()),
            "{location}"
        );
    }

    // Not regular files: a folder, a FIFO, and a symlink to the FIFO. Opening the FIFO would
    // block forever, so the test passing at all shows it is never opened.
    let fifo = dir.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let mut refused = vec!["real", "dir_alias"];
    if made.is_ok_and(|s| s.success()) {
        symlink("pipe", dir.join("pipe_alias")).unwrap();
        refused.extend(["pipe", "pipe_alias"]);
    } else {
        eprintln!("mkfifo unavailable; FIFO cases skipped");
    }
    for location in refused {
        match load_with_location(&dir, location) {
            Err(e @ Error::ExternalData { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(location) && msg.contains("not a regular file"),
                    "{location}: {msg}"
                );
            }
            other => panic!("{location}: expected a refusal, got {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn missing_model_file_is_an_io_error() {
    let err = ModelProto::load(Path::new("/nonexistent/convscope/model.onnx")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

// --- robustness ------------------------------------------------------------------------

#[test]
fn truncated_and_foreign_files_are_errors() {
    if let Some(bytes) = shared_bytes(EFFNET) {
        for cut in [1, 2, 100, 4096, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                ModelProto::decode(&bytes[..cut]).is_err(),
                "truncated at {cut} of {}",
                bytes.len()
            );
        }
    }
    if let Some(png) = shared_bytes(PNG) {
        let err = ModelProto::decode(&png).unwrap_err();
        assert!(matches!(err, Error::NotOnnx(_)), "{err}");
        assert!(err.to_string().contains("PNG"), "{err}");
    }
}

/// Decodes and, on success, exercises the rest of the API; any panic fails with context.
fn decode_must_not_panic(data: &[u8], what: &str) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(m) = ModelProto::decode(data) {
            for t in &m.graph.initializer {
                let _ = t.values();
                let _ = t.shape();
            }
            let _ = ModelProto::decode(&m.encode()).expect("re-decoding our own encoding");
        }
    }));
    if outcome.is_err() {
        panic!("decoder panicked on {what}");
    }
}

fn fuzz(seed: u64, original: &[u8], count: usize, label: &str) {
    for (data, what) in mutants(seed, original, count) {
        decode_must_not_panic(&data, &format!("{label} {what}"));
    }
}

#[test]
fn fuzz_mutated_efficientnet() {
    let Some(bytes) = shared_bytes(EFFNET) else {
        return;
    };
    fuzz(0x5eed_0001, &bytes, 300, "efficientnet");
}

#[test]
fn fuzz_mutated_small_model() {
    // Small and dense with structure, so nearly every mutation lands in decoder logic.
    fuzz(0x5eed_0002, &rich_model().encode(), 5000, "rich model");
}

#[test]
fn fuzz_random_bytes() {
    let mut rng = Rng::new(0x5eed_0003);
    for i in 0..200 {
        let n = rng.below(4096);
        let data = rng.bytes(n);
        decode_must_not_panic(&data, &format!("random string {i}"));
        // Wrapped in a graph field so the decoder gets past the first-key check.
        let mut shaped = vec![0x08, 0x08, 0x3a];
        let body = noise_message(&mut rng, 0);
        shaped.extend(varint(body.len() as u64));
        shaped.extend(body);
        decode_must_not_panic(&shaped, &format!("protobuf-shaped noise {i}"));
    }
}
