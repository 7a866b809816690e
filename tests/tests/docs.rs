//! The documentation kept true: the configuration page lists exactly the variables of
//! `docusnap_core::config::REGISTRY`, every variable the code reads is in the registry,
//! the README stays short, each page of `docs/` has its contents list, and no link or
//! file path in them names a file that does not exist.
//!
//! `DOCUSNAP_BLESS=1` rewrites the configuration page's table from the registry.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use docusnap_core::config::REGISTRY;
use docusnap_tests::repo_root;

const CONFIG_PAGE: &str = "docs/configuration.md";
const TABLE_START: &str = "<!-- registry table: generated from docusnap_core::config::REGISTRY -->";
const TABLE_END: &str = "<!-- end of registry table -->";
/// The README is the front door: what DocuSnap is, the two commands, a tour, the
/// layout and links; the rest lives in docs/.
const README_MAX_LINES: usize = 300;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn registry_table() -> String {
    let mut table = String::from("| variable | read by | default | meaning |\n| --- | --- | --- | --- |\n");
    for v in REGISTRY {
        let readers: Vec<&str> = v.read_by.iter().map(|r| r.as_str()).collect();
        table.push_str(&format!("| `{}` | {} | {} | {} |\n", v.name, readers.join(", "), v.default, v.meaning));
    }
    table
}

#[test]
fn the_configuration_page_is_the_registry() {
    let page = read(CONFIG_PAGE);
    let (before, rest) = page.split_once(TABLE_START).expect("the page marks its generated table");
    let (table, after) = rest.split_once(TABLE_END).expect("the table's end is marked");
    let expected = registry_table();
    if table.trim() != expected.trim() {
        if std::env::var("DOCUSNAP_BLESS").is_ok() {
            let written = format!("{before}{TABLE_START}\n{expected}{TABLE_END}{after}");
            std::fs::write(repo_root().join(CONFIG_PAGE), written).unwrap();
        } else {
            panic!(
                "{CONFIG_PAGE}'s table differs from the registry; run with DOCUSNAP_BLESS=1 to rewrite it:\n{expected}"
            );
        }
    }
    let names: BTreeSet<&str> = REGISTRY.iter().map(|v| v.name).collect();
    assert_eq!(names.len(), REGISTRY.len(), "a variable is registered twice");
}

/// Every `DOCUSNAP_*` name in the functions' and layers' sources.
fn names_in_sources() -> BTreeSet<(String, PathBuf)> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ["functions", "layers"].iter().map(|d| repo_root().join(d)).collect();
    while let Some(dir) = stack.pop() {
        for path in std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                // Tests set variables of their own (the moto endpoint, say).
                if name != "tests" && name != "target" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (i, _) in code.match_indices("DOCUSNAP_") {
                    let var: String = code[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    found.insert((var, path.clone()));
                }
            }
        }
    }
    found
}

#[test]
fn every_variable_the_code_names_is_registered() {
    let found = names_in_sources();
    assert!(found.iter().any(|(v, _)| v == "DOCUSNAP_OCR_THREADS"), "the scan sees the engine's variables");
    for (var, path) in found {
        assert!(
            docusnap_core::config::variable(&var).is_some(),
            "{var} ({}) is not in docusnap_core::config::REGISTRY",
            path.display()
        );
    }
}

#[test]
fn the_readme_is_short_and_every_page_has_its_contents() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= README_MAX_LINES, "README.md has {lines} lines; at most {README_MAX_LINES} (details go to docs/)");
    for page in doc_pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let sections = text.lines().filter(|l| l.starts_with("## ")).count();
        assert!(
            sections < 2 || text.contains("\nContents:\n"),
            "{} has {sections} sections and no contents list",
            page.display()
        );
        let name = page.strip_prefix(repo_root()).unwrap().to_string_lossy().into_owned();
        assert!(
            readme.contains(&name.replace("../", "").trim_start_matches("./").to_string()),
            "README.md does not link {name}"
        );
    }
}

fn doc_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    assert!(pages.len() >= 5, "{pages:?}");
    pages
}

/// The anchors GitHub makes of a page's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            let heading = l.trim_start_matches('#').trim().to_lowercase();
            heading
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect()
}

/// Top-level folders whose paths, written in backticks, must name files that exist.
const CHECKED_ROOTS: &[&str] = &["layers/", "functions/", "scripts/", "tests/", "infra/", "models/", "docs/", ".ci/"];

fn check_references(file: &Path, problems: &mut Vec<String>) {
    let text = std::fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap();
    let mut in_code_block = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block {
            continue;
        }
        let at = format!("{}:{}", file.strip_prefix(repo_root()).unwrap_or(file).display(), n + 1);
        // Markdown links to files of this repository (and their anchors).
        for (i, _) in line.match_indices("](") {
            let target = line[i + 2..].split(')').next().unwrap_or_default();
            if target.starts_with("http") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if path.is_empty() { file.to_path_buf() } else { dir.join(path) };
            // The protocol's description lives beside the repository, in ../shared.
            if path.contains("shared/") {
                continue;
            }
            if !resolved.exists() {
                problems.push(format!("{at}: link to missing {target}"));
            } else if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let target_text = std::fs::read_to_string(&resolved).unwrap();
                if !anchors(&target_text).contains(anchor) {
                    problems.push(format!("{at}: no heading #{anchor} in {path}"));
                }
            }
        }
        // Paths in backticks under the repository's folders.
        for (k, span) in line.split('`').enumerate() {
            if k % 2 == 0 || span.contains([' ', '<', '{', '*', '$', '|']) || span.contains("...") {
                continue;
            }
            if span.starts_with(".local/") && !(span.starts_with(".local/logs/") || span.starts_with(".local/keys/")) {
                problems.push(format!("{at}: `{span}` is an uncommitted file"));
                continue;
            }
            if !CHECKED_ROOTS.iter().any(|root| span.starts_with(root)) {
                continue;
            }
            let path = span.split([':', '#']).next().unwrap_or_default().trim_end_matches('/');
            if !repo_root().join(path).exists() {
                problems.push(format!("{at}: `{span}` names no file"));
            }
        }
    }
}

#[test]
fn no_page_references_a_missing_file() {
    let mut files = vec![repo_root().join("README.md"), repo_root().join("ARCHITECTURE.md")];
    files.extend(doc_pages());
    let mut problems = Vec::new();
    for file in &files {
        check_references(file, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reference_checker_finds_what_is_missing() {
    let dir = std::env::temp_dir().join(format!("docusnap-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    std::fs::write(&page, "# Page\n\n## Here\n\nSee [there](gone.md), [here](#here), [nowhere](#nowhere), `scripts/no-such-script` and `.local/run.log`.\n").unwrap();
    let mut problems = Vec::new();
    check_references(&page, &mut problems);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(problems.len(), 4, "{problems:?}");
}

/// The runbook says what each of the template's alarms means and what to do.
#[test]
fn the_runbook_covers_every_alarm() {
    let template = docusnap_infra::Template::from_file(&repo_root().join("template.yaml")).unwrap();
    let operations = read("docs/operations.md");
    let runbook = operations.split("## Runbook").nth(1).expect("a Runbook section").split("\n## ").next().unwrap();
    for (alarm, _) in template.resources_of_type("AWS::CloudWatch::Alarm") {
        assert!(runbook.contains(&format!("`{alarm}`")), "the runbook does not name {alarm}");
    }
}
