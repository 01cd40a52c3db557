//! The core's layers, checked: each module may use only the layers below it
//! (docs/ARCHITECTURE.md draws the graph). A `use crate::...` against the
//! direction fails this test and names the file and the line.

use std::fs;
use std::path::{Path, PathBuf};

/// Each layer and the layers it may use (besides itself).
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("key", &["error"]),
    ("pool", &["error", "key"]),
    ("http1::codec", &["error"]),
    ("transport", &["error", "key", "pool", "http1::codec"]),
    ("config", &["error", "pool", "transport", "http1::codec"]),
    (
        "exchange",
        &[
            "error",
            "key",
            "pool",
            "http1::codec",
            "transport",
            "config",
        ],
    ),
    (
        "client",
        &[
            "error",
            "key",
            "pool",
            "http1::codec",
            "transport",
            "config",
            "exchange",
        ],
    ),
];

/// The crate root's names for pconn's own pool and loans (`Pool`,
/// `Pooled`, ...) are pool types over transport connections.
const ROOT_ALIASES: &[(&str, &str)] = &[
    ("Pool", "transport"),
    ("Pooled", "transport"),
    ("Acquiring", "transport"),
    ("ConnectSlot", "transport"),
    ("Grant", "transport"),
    ("Queued", "transport"),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a source file belongs to (`None`: the crate root).
fn layer_of(file: &Path) -> Option<&'static str> {
    let rel = file.strip_prefix(src()).expect("under src");
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    let name = match parts.as_slice() {
        [only] if only == "lib" => return None,
        [first, second, ..] if first == "http1" && parts.len() > 2 => format!("http1::{second}"),
        [first, ..] if first == "http1" => return None,
        [first, ..] => first.clone(),
        [] => return None,
    };
    LAYERS.iter().map(|(l, _)| *l).find(|l| *l == name)
}

/// The layers a line refers to through `crate::`.
fn referred(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| {
                c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{' || *c == ',' || *c == ' '
            })
            .collect();
        let names: Vec<&str> = if let Some(group) = path.strip_prefix('{') {
            group.split(',').map(str::trim).collect()
        } else {
            vec![path.as_str()]
        };
        for name in names {
            let mut segments = name.split("::").map(str::trim);
            let first = segments.next().unwrap_or_default();
            let target = match first {
                "http1" => match segments.next() {
                    Some("codec") => "http1::codec".to_string(),
                    _ => "http1".to_string(),
                },
                _ => ROOT_ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == first)
                    .map_or(first.to_string(), |(_, layer)| layer.to_string()),
            };
            if !target.is_empty() {
                out.push(target);
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let Some(layer) = layer_of(file) else {
            continue;
        };
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue; // a test module may reach anywhere
        }
        let allowed = LAYERS
            .iter()
            .find(|(l, _)| *l == layer)
            .map(|(_, a)| *a)
            .unwrap_or(&[]);
        let text = fs::read_to_string(file).expect("read source");
        // Test modules may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for target in referred(line) {
                if target != layer && !allowed.contains(&target.as_str()) {
                    let rel = file.strip_prefix(src()).unwrap_or(file);
                    violations.push(format!(
                        "{}:{}: `{layer}` uses `{target}` (allowed: {allowed:?})",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_source_file_has_a_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let homeless: Vec<_> = files
        .iter()
        .filter(|f| layer_of(f).is_none())
        .map(|f| f.strip_prefix(src()).unwrap_or(f).display().to_string())
        .filter(|f| f != "lib.rs" && f != "http1/mod.rs")
        .collect();
    assert!(
        homeless.is_empty(),
        "files outside every layer: {homeless:?}"
    );
}
