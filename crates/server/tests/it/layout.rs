//! The server's parts (its folders and top-level modules) import each other without a loop, so
//! each can be read, and changed, knowing only what lies below it. Read from the source itself:
//! every `crate::part` path outside comments and test modules (inline `#[cfg(test)]` ones and
//! `tests.rs` files, which may drive the whole server) is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Part → the parts it names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap();
        let part = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if part == "lib" || rel.file_name().is_some_and(|f| f == "tests.rs") {
            continue; // the root wires everything together; test modules may use all of it
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let named: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => {
                        group.split('}').next().unwrap_or_default().split(',').map(|t| ident(t.trim())).collect()
                    }
                    None => vec![ident(rest)],
                };
                for n in named.into_iter().filter(|n| !n.is_empty() && *n != part) {
                    edges.entry(part.clone()).or_default().insert(n.to_string());
                }
            }
        }
    }
    edges
}

/// A loop through `from`, if there is one.
fn find_loop(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        edges: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        target: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if next == target {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(edges, next, target, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(edges, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_parts_import_each_other_without_a_loop() {
    let edges = edges();
    assert!(edges.len() > 10, "the scan found the parts: {edges:?}");
    for part in edges.keys() {
        if let Some(path) = find_loop(&edges, part) {
            panic!("import loop: {} -> {part}\nall edges: {edges:#?}", path.join(" -> "));
        }
    }
    // The layering the docs describe: policies and telemetry never reach up to the planes.
    for low in ["policy", "telemetry", "configs", "snapshot", "settings", "error", "hosting"] {
        for high in ["api", "gateway", "http", "background", "routes", "state"] {
            assert!(
                !edges.get(low).is_some_and(|e| e.contains(high)),
                "{low} must not import {high}: {:?}",
                edges.get(low)
            );
        }
    }
}
