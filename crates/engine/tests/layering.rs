//! The engine's modules import only downwards: every `crate::` (and `super::`) path in every
//! file under `src/` names a module of the file's own layer or of a layer below it, never one
//! above. The layers are declared once, below, bottom first (docs/design.md, "Engine layers").
//! The crate root (`lib.rs`) is the facade above them all: it only declares the layers and
//! re-exports the public API, and a `crate::Name` of a re-exported item counts as an import of
//! the layer the item comes from.
//!
//! The ONNX protobuf crate is kept out of the layers that run passes and of the kernels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The layers, bottom first: each a list of top-level modules of `src/`.
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &["error"]),
    ("runtime", &["runtime"]),
    ("kernels", &["kernels"]),
    ("tensor", &["tensor"]),
    ("ops", &["ops"]),
    ("graph", &["graph"]),
    ("plan", &["plan"]),
    ("exec", &["exec"]),
    ("model", &["model"]),
];

/// Layers that may name the `convscope_onnx` crate.
const ONNX_LAYERS: &[&str] = &["error", "tensor", "ops", "graph", "model"];

#[test]
fn layers_import_only_downwards() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let (violations, edges) = check(&src);
    // A parser that found no paths would pass anything: the engine has hundreds.
    assert!(edges > 200, "only {edges} crate paths found under src/");
    assert!(
        violations.is_empty(),
        "{} import(s) against the layer order:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// The checker finds a planted back-edge (a kernel importing an op), a hidden one (a root
/// re-export of a higher layer), one through `super::` out of a top-level file, and an ONNX
/// import in the kernels, and ignores paths in comments and strings.
#[test]
fn the_checker_sees_back_edges() {
    let dir = std::env::temp_dir().join(format!("convscope-layering-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "lib.rs",
        "mod error;\nmod kernels;\npub mod ops;\nmod model;\npub use model::Model;\n",
    );
    write("error.rs", "pub struct Error;\n");
    write(
        "kernels/mod.rs",
        "// use crate::ops::Clamp; (a comment)\nconst S: &str = \"crate::model\";\n\
         use crate::error::Error;\nuse crate::{error, ops::Op};\nfn f() -> crate::Model { todo!() }\n\
         mod inner { use super::super::model::Model; }\nuse convscope_onnx::NodeProto;\n",
    );
    write("ops/mod.rs", "pub trait Op {}\nuse super::kernels;\n");
    write("model/mod.rs", "pub struct Model;\nuse crate::ops::Op;\n");
    let (found, edges) = check(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let at = |line: &str| found.iter().filter(|v| v.contains(line)).count();
    assert_eq!(at("kernels/mod.rs:4"), 1, "{found:#?}");
    assert_eq!(at("kernels/mod.rs:5"), 1, "{found:#?}");
    assert_eq!(at("kernels/mod.rs:6"), 1, "{found:#?}");
    assert_eq!(at("kernels/mod.rs:7"), 1, "{found:#?}");
    assert_eq!(found.len(), 4, "{found:#?}");
    // error, error and ops::Op of the kernels, Model, Model (via super::super), kernels, ops.
    assert_eq!(edges, 7);
}

/// Every import against the layer order under `src`, as `file:line: …` lines, and the number
/// of crate paths checked.
fn check(src: &Path) -> (Vec<String>, usize) {
    let layer_of_module: HashMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, mods))| mods.iter().map(move |m| (*m, i)))
        .collect();
    let root = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    // `pub use layer::…::{A, B}` at the root: `crate::A` is an import of that layer.
    let mut layer_of_name: HashMap<String, usize> = HashMap::new();
    let root = tokens(&root);
    for (i, t) in root.iter().enumerate() {
        if t.text != "use" {
            continue;
        }
        for (module, name) in use_tree(&root, i + 1) {
            if let Some(&l) = layer_of_module.get(module.as_str()) {
                layer_of_name.insert(name, l);
            }
        }
    }
    let mut violations = Vec::new();
    let mut edges = 0;
    for file in rust_files(src) {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "lib.rs" {
            continue;
        }
        let module = module_path(&rel);
        let Some(&from) = layer_of_module.get(module[0].as_str()) else {
            violations.push(format!("{rel}: module '{}' is in no layer", module[0]));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let toks = tokens(&text);
        for t in &toks {
            if t.text == "convscope_onnx" && !ONNX_LAYERS.contains(&LAYERS[from].0) {
                violations.push(format!(
                    "{rel}:{}: layer '{}' names convscope_onnx",
                    t.line, LAYERS[from].0
                ));
            }
        }
        for path in paths(&toks, &module) {
            let Some(first) = path.segments.first() else {
                continue;
            };
            edges += 1;
            let to = layer_of_module
                .get(first.as_str())
                .or_else(|| layer_of_name.get(first.as_str()));
            match to {
                Some(&to) if to <= from => {}
                Some(&to) => violations.push(format!(
                    "{rel}:{}: layer '{}' imports {} of the higher layer '{}'",
                    path.line,
                    LAYERS[from].0,
                    path.segments.join("::"),
                    LAYERS[to].0
                )),
                None => violations.push(format!(
                    "{rel}:{}: '{}' is in no layer",
                    path.line,
                    path.segments.join("::")
                )),
            }
        }
    }
    (violations, edges)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// `ops/conv.rs` → `[ops, conv]`; `ops/mod.rs` → `[ops]`.
fn module_path(rel: &str) -> Vec<String> {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

struct Token {
    text: String,
    line: usize,
}

/// The identifiers and punctuation of Rust source, without comments, strings and chars.
fn tokens(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line) = (0, 1);
    let mut out = Vec::new();
    let skip_to = |i: &mut usize, line: &mut usize, end: usize| {
        *line += c[*i..end.min(c.len())]
            .iter()
            .filter(|&&x| x == '\n')
            .count();
        *i = end;
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if c[i..].starts_with(&['/', '/']) {
            let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            skip_to(&mut i, &mut line, end);
        } else if c[i..].starts_with(&['/', '*']) {
            let mut depth = 0;
            let mut j = i;
            while j < c.len() {
                if c[j..].starts_with(&['/', '*']) {
                    depth += 1;
                    j += 2;
                } else if c[j..].starts_with(&['*', '/']) {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            skip_to(&mut i, &mut line, j);
        } else if ch == 'r' && matches!(c.get(i + 1), Some('"') | Some('#')) {
            // A raw string r#"…"#.
            let hashes = c[i + 1..].iter().take_while(|&&x| x == '#').count();
            let start = i + 1 + hashes + 1;
            let mut j = start;
            while j < c.len()
                && !(c[j] == '"'
                    && c[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&x| x == '#')
                        .count()
                        == hashes)
            {
                j += 1;
            }
            skip_to(&mut i, &mut line, j + 1 + hashes);
        } else if ch == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            skip_to(&mut i, &mut line, j + 1);
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                let end = (i + 2..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                skip_to(&mut i, &mut line, end + 1);
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let end = (i..c.len())
                .find(|&j| !(c[j].is_alphanumeric() || c[j] == '_'))
                .unwrap_or(c.len());
            out.push(Token {
                text: c[i..end].iter().collect(),
                line,
            });
            i = end;
        } else if c[i..].starts_with(&[':', ':']) {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// A path into the crate, from its root: `crate::ops::Clamp` → `[ops, Clamp]`.
struct CratePath {
    segments: Vec<String>,
    line: usize,
}

/// Every path into the crate in `toks` (a file of module `module`): `crate::…`, `$crate::…`
/// and `super::…` / `self::…` paths resolved against the module (inline `mod x { … }` blocks
/// included), with `use` groups (`crate::{a::b, c}`) expanded to their first segments.
fn paths(toks: &[Token], module: &[String]) -> Vec<CratePath> {
    let mut out = Vec::new();
    // The module at each token: the file's, plus the inline modules open around it.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].text.as_str();
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if toks.get(i + 2).is_some_and(|x| x.text == "{") => {
                inline.push((toks[i + 1].text.clone(), depth));
            }
            _ => {}
        }
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(m, _)| m.clone()))
            .collect();
        let follows_sep = toks.get(i + 1).is_some_and(|x| x.text == "::");
        let after_path_sep = i > 0 && toks[i - 1].text == "::";
        let prefix: Option<(Vec<String>, usize)> = match t {
            "crate" if follows_sep && !after_path_sep => Some((Vec::new(), i + 2)),
            "self" if follows_sep && !after_path_sep => Some((here.clone(), i + 2)),
            "super" if follows_sep && !after_path_sep => {
                let mut base = here.clone();
                let mut j = i;
                while toks.get(j).is_some_and(|x| x.text == "super")
                    && toks.get(j + 1).is_some_and(|x| x.text == "::")
                {
                    base.pop();
                    j += 2;
                }
                Some((base, j))
            }
            _ => None,
        };
        if let Some((base, j)) = prefix {
            let line = toks[i].line;
            for first in first_segments(toks, j) {
                let mut segments = base.clone();
                segments.push(first);
                out.push(CratePath { segments, line });
            }
            // Skip the `super::super::` run just read.
            while i + 1 < j && toks[i + 1].text == "::" {
                i += 2;
                if toks.get(i).is_none_or(|x| x.text != "super") {
                    break;
                }
            }
        }
        i += 1;
    }
    out
}

/// The first segment after a path prefix at token `j`: an identifier, or each item of a use
/// group `{a::b, c, d::{e}}` (its items' first identifiers). `*` and `self` name nothing new.
fn first_segments(toks: &[Token], j: usize) -> Vec<String> {
    match toks.get(j).map(|t| t.text.as_str()) {
        Some("{") => {
            let mut out = Vec::new();
            let mut depth = 0;
            let mut expect_item = true;
            for t in &toks[j..] {
                match t.text.as_str() {
                    "{" => {
                        depth += 1;
                        if depth == 1 {
                            expect_item = true;
                        }
                    }
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    "," if depth == 1 => expect_item = true,
                    s if depth == 1 && expect_item => {
                        if s != "*" && s != "self" {
                            out.push(s.to_string());
                        }
                        expect_item = false;
                    }
                    _ => {}
                }
            }
            out
        }
        Some(s) if s != "*" => vec![s.to_string()],
        _ => Vec::new(),
    }
}

/// The `(first segment, last segment)` of every path of the use tree starting at token `j`
/// (up to its `;`): `a::{b, c::d}` → `(a, b), (a, d)`.
fn use_tree(toks: &[Token], j: usize) -> Vec<(String, String)> {
    fn walk(toks: &[Token], j: &mut usize, first: Option<&str>, out: &mut Vec<(String, String)>) {
        let mut first = first.map(str::to_string);
        let mut last: Option<String> = None;
        while let Some(t) = toks.get(*j) {
            match t.text.as_str() {
                "::" => *j += 1,
                "{" => {
                    *j += 1;
                    loop {
                        walk(toks, j, first.as_deref(), out);
                        match toks.get(*j).map(|t| t.text.as_str()) {
                            Some(",") => *j += 1,
                            _ => break,
                        }
                        if toks.get(*j).is_some_and(|t| t.text == "}") {
                            break;
                        }
                    }
                    *j += 1; // the closing brace
                    return;
                }
                "," | "}" | ";" => break,
                "as" => {
                    last = toks.get(*j + 1).map(|t| t.text.clone());
                    *j += 2;
                }
                s => {
                    if first.is_none() {
                        first = Some(s.to_string());
                    }
                    last = Some(s.to_string());
                    *j += 1;
                }
            }
        }
        if let (Some(f), Some(l)) = (first, last) {
            out.push((f, l));
        }
    }
    let mut out = Vec::new();
    let mut j = j;
    walk(toks, &mut j, None, &mut out);
    out
}
