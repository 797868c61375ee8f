//! Small ViT-style and ConvNeXt-style models built the way torchvision's exports are (opset
//! 17, TorchScript-style node names, LayerNormalization, erf GELU, a class token expanded to
//! the batch through a Shape subgraph), with seeded random weights. Shared by the methods
//! tests and the command-line tests (`#[path]`-included there).
#![allow(dead_code)]

use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, ModelProto, TensorProto};

/// Input side of both models.
pub const SIDE: usize = 16;
/// Channels (embedding width).
pub const WIDTH: usize = 8;
/// Classes of both heads.
pub const CLASSES: usize = 5;
/// Patch grid side (16 / 4).
pub const GRID: usize = 4;

/// SplitMix64 weights in `±scale`.
struct Weights(u64);

impl Weights {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    }
    fn tensor(&mut self, g: &mut GraphBuilder, name: &str, dims: &[usize], scale: f32) {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.next() * scale).collect();
        g.initializer(TensorProto::from_f32(name, dims, &data));
    }
}

fn dims(d: &[usize]) -> Vec<Dim> {
    d.iter().map(|&v| Dim::Value(v as i64)).collect()
}

/// Adds `LayerNormalization(x)` over the last axis with its scale and bias, named `path`.
fn layer_norm(g: &mut GraphBuilder, w: &mut Weights, path: &str, x: &str, y: &str) {
    let (s, b) = (format!("{path}.weight"), format!("{path}.bias"));
    let data: Vec<f32> = (0..WIDTH).map(|_| 1.0 + 0.2 * w.next()).collect();
    g.initializer(TensorProto::from_f32(&s, &[WIDTH], &data));
    w.tensor(g, &b, &[WIDTH], 0.1);
    g.node(
        "LayerNormalization",
        &format!("/{}/LayerNormalization", path.replace('.', "/")),
        &[x, &s, &b],
        &[y],
        vec![A::int("axis", -1), A::float("epsilon", 1e-6)],
    );
}

/// `y = x·W + b` (a `Linear`), named `path`.
fn linear(g: &mut GraphBuilder, w: &mut Weights, path: &str, x: &str, y: &str, k: usize, n: usize) {
    let (wn, bn, mm) = (
        format!("{path}.weight"),
        format!("{path}.bias"),
        format!("{y}_mm"),
    );
    w.tensor(g, &wn, &[k, n], 1.0 / (k as f32).sqrt());
    w.tensor(g, &bn, &[n], 0.1);
    let scope = format!("/{}", path.replace('.', "/"));
    g.node(
        "MatMul",
        &format!("{scope}/MatMul"),
        &[x, &wn],
        &[&mm],
        vec![],
    )
    .node("Add", &format!("{scope}/Add"), &[&mm, &bn], &[y], vec![]);
}

/// The erf GELU torch exports at opset 17: `x · 0.5 · (1 + erf(x / √2))`.
fn gelu(g: &mut GraphBuilder, scope: &str, x: &str, y: &str) {
    let t = |s: &str| format!("{y}_{s}");
    g.node(
        "Div",
        &format!("{scope}/Div"),
        &[x, "sqrt2"],
        &[&t("d")],
        vec![],
    )
    .node(
        "Erf",
        &format!("{scope}/Erf"),
        &[&t("d")],
        &[&t("e")],
        vec![],
    )
    .node(
        "Add",
        &format!("{scope}/Add"),
        &[&t("e"), "one"],
        &[&t("a")],
        vec![],
    )
    .node(
        "Mul",
        &format!("{scope}/Mul"),
        &[x, &t("a")],
        &[&t("m")],
        vec![],
    )
    .node(
        "Mul",
        &format!("{scope}/Mul_1"),
        &[&t("m"), "half"],
        &[y],
        vec![],
    );
}

fn gelu_constants(g: &mut GraphBuilder) {
    g.initializer(TensorProto::from_f32(
        "sqrt2",
        &[],
        &[std::f32::consts::SQRT_2],
    ))
    .initializer(TensorProto::from_f32("one", &[], &[1.0]))
    .initializer(TensorProto::from_f32("half", &[], &[0.5]));
}

/// A two-block ViT: `x [1,3,16,16]` → 4×4 patches of 8 channels (`conv_proj`) → a class token
/// expanded to the batch through `Shape → Gather → Concat → Expand` and prepended → position
/// embedding → two pre-norm blocks (`blocks.i.norm1`, single-head attention, `blocks.i.norm2`,
/// GELU MLP) → `norm` → the class token → `head` → `y [1,5]`.
pub fn vit_style() -> ModelProto {
    let mut w = Weights(0x005E_ED0F_u64);
    let mut g = GraphBuilder::new("vit_style");
    g.input("x", &dims(&[1, 3, SIDE, SIDE])).output("y", &[]);
    gelu_constants(&mut g);
    w.tensor(&mut g, "conv_proj.weight", &[WIDTH, 3, 4, 4], 0.3);
    w.tensor(&mut g, "conv_proj.bias", &[WIDTH], 0.1);
    w.tensor(&mut g, "class_token", &[1, 1, WIDTH], 1.0);
    w.tensor(&mut g, "pos_embedding", &[1, 1 + GRID * GRID, WIDTH], 0.5);
    g.initializer(TensorProto::from_i64(
        "flat",
        &[3],
        &[1, WIDTH as i64, (GRID * GRID) as i64],
    ))
    .initializer(TensorProto::from_i64("zero", &[1], &[0]))
    .initializer(TensorProto::from_i64(
        "token_tail",
        &[2],
        &[1, WIDTH as i64],
    ))
    .initializer(TensorProto::from_f32(
        "scale",
        &[],
        &[1.0 / (WIDTH as f32).sqrt()],
    ));
    g.node(
        "Conv",
        "/conv_proj/Conv",
        &["x", "conv_proj.weight", "conv_proj.bias"],
        &["patches"],
        vec![
            A::ints("kernel_shape", &[4, 4]),
            A::ints("strides", &[4, 4]),
        ],
    )
    .node(
        "Reshape",
        "/Reshape",
        &["patches", "flat"],
        &["flat_patches"],
        vec![],
    )
    .node(
        "Transpose",
        "/Transpose",
        &["flat_patches"],
        &["tokens"],
        vec![A::ints("perm", &[0, 2, 1])],
    )
    // The batch size read from the input, as torchvision's `class_token.expand(n, -1, -1)`.
    .node("Shape", "/Shape", &["x"], &["x_shape"], vec![])
    .node(
        "Gather",
        "/Gather",
        &["x_shape", "zero"],
        &["batch"],
        vec![A::int("axis", 0)],
    )
    .node(
        "Concat",
        "/Concat",
        &["batch", "token_tail"],
        &["cls_shape"],
        vec![A::int("axis", 0)],
    )
    .node(
        "Expand",
        "/Expand",
        &["class_token", "cls_shape"],
        &["cls"],
        vec![],
    )
    .node(
        "Concat",
        "/Concat_1",
        &["cls", "tokens"],
        &["with_cls"],
        vec![A::int("axis", 1)],
    )
    .node(
        "Add",
        "/encoder/Add",
        &["with_cls", "pos_embedding"],
        &["h0"],
        vec![],
    );
    let mut h = "h0".to_string();
    for b in 0..2 {
        let p = format!("blocks.{b}");
        let s = format!("/blocks/blocks.{b}");
        let n1 = format!("{p}_n1");
        layer_norm(&mut g, &mut w, &format!("{p}.norm1"), &h, &n1);
        let (q, k, v) = (format!("{p}_q"), format!("{p}_k"), format!("{p}_v"));
        linear(
            &mut g,
            &mut w,
            &format!("{p}.attn.q"),
            &n1,
            &q,
            WIDTH,
            WIDTH,
        );
        linear(
            &mut g,
            &mut w,
            &format!("{p}.attn.k"),
            &n1,
            &k,
            WIDTH,
            WIDTH,
        );
        linear(
            &mut g,
            &mut w,
            &format!("{p}.attn.v"),
            &n1,
            &v,
            WIDTH,
            WIDTH,
        );
        let t = |x: &str| format!("{p}_{x}");
        g.node(
            "Transpose",
            &format!("{s}/attn/Transpose"),
            &[&k],
            &[&t("kt")],
            vec![A::ints("perm", &[0, 2, 1])],
        )
        .node(
            "MatMul",
            &format!("{s}/attn/MatMul"),
            &[&q, &t("kt")],
            &[&t("qk")],
            vec![],
        )
        .node(
            "Mul",
            &format!("{s}/attn/Mul"),
            &[&t("qk"), "scale"],
            &[&t("qks")],
            vec![],
        )
        .node(
            "Softmax",
            &format!("{s}/attn/Softmax"),
            &[&t("qks")],
            &[&t("att")],
            vec![A::int("axis", -1)],
        )
        .node(
            "MatMul",
            &format!("{s}/attn/MatMul_1"),
            &[&t("att"), &v],
            &[&t("ctx")],
            vec![],
        );
        linear(
            &mut g,
            &mut w,
            &format!("{p}.attn.proj"),
            &t("ctx"),
            &t("proj"),
            WIDTH,
            WIDTH,
        );
        g.node(
            "Add",
            &format!("{s}/Add"),
            &[&h, &t("proj")],
            &[&t("r1")],
            vec![],
        );
        layer_norm(&mut g, &mut w, &format!("{p}.norm2"), &t("r1"), &t("n2"));
        linear(
            &mut g,
            &mut w,
            &format!("{p}.mlp.fc1"),
            &t("n2"),
            &t("f1"),
            WIDTH,
            2 * WIDTH,
        );
        gelu(&mut g, &format!("{s}/mlp/act"), &t("f1"), &t("gl"));
        linear(
            &mut g,
            &mut w,
            &format!("{p}.mlp.fc2"),
            &t("gl"),
            &t("f2"),
            2 * WIDTH,
            WIDTH,
        );
        g.node(
            "Add",
            &format!("{s}/Add_1"),
            &[&t("r1"), &t("f2")],
            &[&t("out")],
            vec![],
        );
        h = t("out");
    }
    layer_norm(&mut g, &mut w, "norm", &h, "normed");
    g.node(
        "Gather",
        "/Gather_1",
        &["normed", "zero_scalar"],
        &["cls_out"],
        vec![A::int("axis", 1)],
    )
    .initializer(TensorProto::from_i64("zero_scalar", &[], &[0]));
    linear(&mut g, &mut w, "head", "cls_out", "y", WIDTH, CLASSES);
    g.build(17)
}

/// A one-block ConvNeXt: `x [1,3,16,16]` → `features.0.0` (4×4 stride-4 stem) →
/// `features.0.1` (LayerNorm over channels, in NHWC between two Transposes) → one block
/// `features.1.0` (depthwise 3×3 `block.0`, NHWC `block.2` LayerNorm, `block.3` Linear, GELU,
/// `block.5` Linear, layer scale, back to NCHW, residual Add) → global average pool →
/// `classifier.0` LayerNorm → `classifier.2` → `y [1,5]`.
pub fn convnext_style() -> ModelProto {
    let mut w = Weights(0xC04E_u64);
    let mut g = GraphBuilder::new("convnext_style");
    g.input("x", &dims(&[1, 3, SIDE, SIDE])).output("y", &[]);
    gelu_constants(&mut g);
    w.tensor(&mut g, "stem.weight", &[WIDTH, 3, 4, 4], 0.3);
    w.tensor(&mut g, "stem.bias", &[WIDTH], 0.1);
    w.tensor(&mut g, "dw.weight", &[WIDTH, 1, 3, 3], 0.5);
    w.tensor(&mut g, "dw.bias", &[WIDTH], 0.1);
    w.tensor(&mut g, "gamma", &[WIDTH], 0.5);
    let nhwc = || vec![A::ints("perm", &[0, 2, 3, 1])];
    let nchw = || vec![A::ints("perm", &[0, 3, 1, 2])];
    g.node(
        "Conv",
        "/features/features.0/features.0.0/Conv",
        &["x", "stem.weight", "stem.bias"],
        &["stem"],
        vec![
            A::ints("kernel_shape", &[4, 4]),
            A::ints("strides", &[4, 4]),
        ],
    )
    .node(
        "Transpose",
        "/features/features.0/features.0.1/Transpose",
        &["stem"],
        &["stem_nhwc"],
        nhwc(),
    );
    layer_norm(&mut g, &mut w, "features.0.1", "stem_nhwc", "stem_ln");
    g.node(
        "Transpose",
        "/features/features.0/features.0.1/Transpose_1",
        &["stem_ln"],
        &["s0"],
        nchw(),
    )
    .node(
        "Conv",
        "/features/features.1/features.1.0/block/block.0/Conv",
        &["s0", "dw.weight", "dw.bias"],
        &["dw"],
        vec![
            A::ints("kernel_shape", &[3, 3]),
            A::ints("pads", &[1, 1, 1, 1]),
            A::int("group", WIDTH as i64),
        ],
    )
    .node(
        "Transpose",
        "/features/features.1/features.1.0/block/block.1/Transpose",
        &["dw"],
        &["dw_nhwc"],
        nhwc(),
    );
    layer_norm(&mut g, &mut w, "features.1.0.block.2", "dw_nhwc", "b_ln");
    linear(
        &mut g,
        &mut w,
        "features.1.0.block.3",
        "b_ln",
        "b_fc1",
        WIDTH,
        4 * WIDTH,
    );
    gelu(
        &mut g,
        "/features/features.1/features.1.0/block/block.4",
        "b_fc1",
        "b_gelu",
    );
    linear(
        &mut g,
        &mut w,
        "features.1.0.block.5",
        "b_gelu",
        "b_fc2",
        4 * WIDTH,
        WIDTH,
    );
    g.node(
        "Transpose",
        "/features/features.1/features.1.0/block/block.6/Transpose",
        &["b_fc2"],
        &["b_nchw"],
        nchw(),
    )
    .initializer(TensorProto::from_f32(
        "gamma_c11",
        &[WIDTH, 1, 1],
        &(0..WIDTH).map(|i| 0.5 + 0.1 * i as f32).collect::<Vec<_>>(),
    ))
    .node(
        "Mul",
        "/features/features.1/features.1.0/Mul",
        &["gamma_c11", "b_nchw"],
        &["scaled"],
        vec![],
    )
    .node(
        "Add",
        "/features/features.1/features.1.0/Add",
        &["scaled", "s0"],
        &["s1"],
        vec![],
    )
    .node(
        "GlobalAveragePool",
        "/avgpool/GlobalAveragePool",
        &["s1"],
        &["pooled"],
        vec![],
    )
    .node(
        "Transpose",
        "/classifier/classifier.0/Transpose",
        &["pooled"],
        &["pooled_nhwc"],
        nhwc(),
    );
    layer_norm(&mut g, &mut w, "classifier.0", "pooled_nhwc", "cls_ln");
    g.initializer(TensorProto::from_i64("flat2", &[2], &[1, WIDTH as i64]))
        .node(
            "Reshape",
            "/classifier/classifier.1/Flatten",
            &["cls_ln", "flat2"],
            &["flat"],
            vec![],
        );
    linear(&mut g, &mut w, "classifier.2", "flat", "y", WIDTH, CLASSES);
    g.build(17)
}

/// A deterministic image-like input `[1,3,16,16]` in `[-1, 1]` (a bright blob top left, a
/// ramp elsewhere), so class scores differ and maps have structure.
pub fn input() -> Vec<f32> {
    let mut x = vec![0.0f32; 3 * SIDE * SIDE];
    for c in 0..3 {
        for y in 0..SIDE {
            for col in 0..SIDE {
                let blob = if y < 6 && col < 6 { 1.0 } else { 0.0 };
                x[(c * SIDE + y) * SIDE + col] =
                    blob - 0.5 + 0.03 * (y as f32 - col as f32) * (c as f32 - 1.0);
            }
        }
    }
    x
}
