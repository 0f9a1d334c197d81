//! The layers of `src/`, as `src/lib.rs` states them, held against the code: every `crate::`
//! path between top-level modules must point down the stated order, and the modules must form
//! no cycle. A maintainer who adds an upward import is told which file and which edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer table from `src/lib.rs`: lines of `name: module, module, …` in the `text` block
/// under `## Layers`.
fn stated_layers(lib_rs: &str) -> Vec<(String, Vec<String>)> {
    let mut layers = Vec::new();
    let mut in_block = false;
    let mut seen_heading = false;
    for line in lib_rs.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc == "## Layers" {
            seen_heading = true;
        } else if seen_heading && doc.starts_with("```") {
            if in_block {
                break;
            }
            in_block = true;
        } else if in_block && let Some((name, modules)) = doc.split_once(':') {
            let modules = modules
                .split(',')
                .map(|module| module.trim().to_owned())
                .filter(|module| !module.is_empty())
                .collect();
            layers.push((name.trim().to_owned(), modules));
        }
    }
    layers
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs` and `main.rs`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The top-level modules a file names through `crate::…`, outside comments. Grouped imports
/// (`use crate::{a::X, b::Y}`) count each group member.
fn crate_edges(source: &str) -> BTreeSet<String> {
    let mut edges = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for member in inner.split(',') {
                    let name: String = member
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        edges.insert(name);
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    edges.insert(name);
                }
            }
            rest = after;
        }
    }
    edges
}

/// Edges between top-level modules, each with one file that makes it.
fn module_graph(src: &Path) -> BTreeMap<(String, String), PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(src, &file) else {
            continue;
        };
        let source = std::fs::read_to_string(&file).unwrap();
        for to in crate_edges(&source) {
            if to != from {
                graph.entry((from.clone(), to)).or_insert(file.clone());
            }
        }
    }
    graph
}

/// A cycle among the modules, if there is one, as `a -> b -> … -> a`.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        next.entry(from).or_default().push(to);
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|on_path| *on_path == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for to in next.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(to, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in next.keys() {
        if let Some(cycle) = visit(start, &next, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// Each edge that breaks the stated order, as a message naming the file.
fn order_violations(
    layers: &[(String, Vec<String>)],
    graph: &BTreeMap<(String, String), PathBuf>,
) -> Vec<String> {
    let mut rank = BTreeMap::new();
    for (layer, (name, modules)) in layers.iter().enumerate() {
        for (position, module) in modules.iter().enumerate() {
            rank.insert(module.as_str(), (layer, position, name.as_str()));
        }
    }
    let mut problems = Vec::new();
    for ((from, to), file) in graph {
        let (Some(&(from_layer, from_pos, from_name)), Some(&(to_layer, to_pos, to_name))) =
            (rank.get(from.as_str()), rank.get(to.as_str()))
        else {
            problems.push(format!(
                "{}: `{from}` -> `{to}`: add both modules to the layer table in src/lib.rs",
                file.display()
            ));
            continue;
        };
        let downward = (to_layer, to_pos) < (from_layer, from_pos);
        let stand_in_reaching_up = from_name == "stand-ins" && to_name != "leaves";
        if !downward || stand_in_reaching_up {
            problems.push(format!(
                "{}: `{from}` ({from_name}) uses `{to}` ({to_name}), against the layer order",
                file.display()
            ));
        }
    }
    problems
}

#[test]
fn the_modules_of_src_follow_the_layers_lib_rs_states_and_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let layers = stated_layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(
        layers.len() >= 6,
        "src/lib.rs must state the layers: {layers:?}"
    );
    let graph = module_graph(&src);
    assert!(
        graph.len() > 20,
        "the import graph looks empty: {:?}",
        graph.keys()
    );
    let edges: BTreeSet<(String, String)> = graph.keys().cloned().collect();
    assert_eq!(
        find_cycle(&edges),
        None,
        "a cycle between top-level modules"
    );
    let problems = order_violations(&layers, &graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_and_an_upward_edge_it_is_shown() {
    let layers = stated_layers(
        "//! ## Layers\n//!\n//! ```text\n//! leaves: error\n//! aws: pipeline\n//! work: publish\n//! ```\n",
    );
    assert_eq!(layers.len(), 3);
    let mut graph = BTreeMap::new();
    graph.insert(
        ("publish".to_owned(), "pipeline".to_owned()),
        PathBuf::from("src/publish/mod.rs"),
    );
    graph.insert(
        ("pipeline".to_owned(), "publish".to_owned()),
        PathBuf::from("src/pipeline/failure.rs"),
    );
    let edges: BTreeSet<(String, String)> = graph.keys().cloned().collect();
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["pipeline".into(), "publish".into(), "pipeline".into()])
    );
    let problems = order_violations(&layers, &graph);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("src/pipeline/failure.rs: `pipeline` (aws) uses `publish`"));
    assert_eq!(
        crate_edges(
            "use crate::{error::inline_chain, retry::Backoff};\n// crate::demo\nlet x = crate::secret::MASK;"
        ),
        BTreeSet::from(["error".to_owned(), "retry".to_owned(), "secret".to_owned()])
    );
}
