//! The crates' shape, checked: no module of any crate depends, through its `crate::`
//! paths, on a module that depends back on it (the cycle
//! `batch -> task -> protocol -> batch` that core once had), and the layers never reach up
//! into a function.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use docusnap_tests::repo_root;

/// Every crate of the workspace, as the root manifest lists them: a crate added later is
/// checked without anyone remembering to add it here.
fn crates() -> Vec<String> {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let members =
        manifest.split("members = [").nth(1).and_then(|rest| rest.split(']').next()).expect("workspace members");
    let crates: Vec<String> =
        members.split(',').map(|m| m.trim().trim_matches('"').to_owned()).filter(|m| !m.is_empty()).collect();
    assert!(crates.iter().any(|c| c == "functions/callback"), "{crates:?}");
    crates
}

/// The package name in a crate's manifest.
fn package_name(krate: &str) -> String {
    let manifest = std::fs::read_to_string(repo_root().join(krate).join("Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.starts_with("name = ")).expect("a package name");
    line["name = ".len()..].trim_matches('"').to_owned()
}

/// A crate's top-level modules (files and folders under `src/`, the crate root and
/// binaries aside), each with the top-level modules its code names through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name == "bin" {
                continue;
            }
            let mut text = String::new();
            let mut stack = vec![path];
            while let Some(dir) = stack.pop() {
                for file in std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()) {
                    if file.is_dir() {
                        stack.push(file);
                    } else if file.extension().is_some_and(|e| e == "rs") {
                        text.push_str(&std::fs::read_to_string(&file).unwrap());
                    }
                }
            }
            texts.entry(name).or_default().push_str(&text);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            texts.entry(name).or_default().push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    texts
        .iter()
        .map(|(module, text)| {
            let mut named = BTreeSet::new();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let heads: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("")],
                };
                named.extend(heads.into_iter().filter(|h| modules.contains(*h) && *h != module).map(str::to_owned));
            }
            (module.clone(), named)
        })
        .collect()
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_cycle() {
    for krate in crates() {
        let src = repo_root().join(&krate).join("src");
        let graph = module_graph(&src);
        for module in graph.keys() {
            if let Some(cycle) = cycle_from(&graph, module) {
                panic!("{krate}: module cycle {}", cycle.join(" -> "));
            }
        }
    }
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let dir = std::env::temp_dir().join(format!("docusnap-cycle-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::write(dir.join("task.rs"), "use crate::protocol::X;").unwrap();
    std::fs::write(dir.join("protocol.rs"), "use crate::{batch::Y, limits};").unwrap();
    std::fs::write(dir.join("batch.rs"), "fn f() { crate::task::g() }").unwrap();
    std::fs::write(dir.join("limits.rs"), "").unwrap();
    std::fs::write(dir.join("store/mod.rs"), "use crate::task::Task;").unwrap();
    let graph = module_graph(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(graph["protocol"], BTreeSet::from(["batch".to_owned(), "limits".to_owned()]));
    assert_eq!(graph["store"], BTreeSet::from(["task".to_owned()]));
    assert_eq!(cycle_from(&graph, "task").unwrap(), ["task", "protocol", "batch", "task"]);
    assert_eq!(cycle_from(&graph, "store"), None);
}

#[test]
fn layers_never_depend_on_a_function() {
    let all = crates();
    let above: Vec<String> = all.iter().filter(|c| !c.starts_with("layers/")).map(|c| package_name(c)).collect();
    assert!(above.contains(&"docusnap-callback-fn".to_owned()), "{above:?}");
    for layer in all.iter().filter(|c| c.starts_with("layers/")) {
        let manifest = std::fs::read_to_string(repo_root().join(layer).join("Cargo.toml")).unwrap();
        let dependencies = manifest.split("[dev-dependencies]").next().unwrap_or_default();
        for function in &above {
            assert!(
                !dependencies.contains(&format!("{function} ")) && !dependencies.contains(&format!("{function}.")),
                "{layer} depends on {function}"
            );
        }
    }
}
