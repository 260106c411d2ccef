//! The source tree's layout rules (docs/architecture.md, "Map"), checked by a unit test so the
//! tree keeps reading as the map says:
//!
//! - within a crate, modules use each other one way: among the children of any module, no
//!   circle of uses; a module never uses its parent (a folder's `mod.rs` may use its children,
//!   to dispatch or re-export, so a child naming its parent's items would make a circle);
//! - no file has more than [`MAX_CODE_LINES`] lines of code besides its unit tests;
//! - no folder holds more than [`MAX_ENTRIES`] files and folders.
//!
//! A "use" is any path `crate::…`, `super::…` or `self::…` in code (comments and the unit
//! tests are not code here: a doc link is not a dependency).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const MAX_CODE_LINES: usize = 800;
pub const MAX_ENTRIES: usize = 15;

/// A module path inside a crate (empty: the crate root).
type ModPath = Vec<String>;

/// One crate's modules: path → source text (code only).
pub struct Crate {
    pub name: String,
    pub src: PathBuf,
    modules: BTreeMap<ModPath, (PathBuf, String)>,
}

/// The lines of a file that are code: its `#[cfg(test)]` modules left out.
fn code_lines_of(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let opens_tests = lines[i].trim() == "#[cfg(test)]"
            && lines
                .get(i + 1)
                .is_some_and(|l| l.starts_with("mod ") || l.starts_with("pub mod "));
        if opens_tests {
            // `mod tests;` is one line; a block ends at the brace that starts a line, as its `mod`.
            i += 1;
            if !lines[i].ends_with(';') {
                while i < lines.len() && lines[i] != "}" {
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        out.push(lines[i]);
        i += 1;
    }
    out
}

/// The code of a file without its comments (a doc link is not a dependency).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in code_lines_of(text) {
        // A `//` inside a string literal would cut it short; paths never hide there.
        let code = line.find("//").map_or(line, |at| &line[..at]);
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Lines of code, unit tests left out (blank and comment lines count: they are the file's).
fn code_lines(text: &str) -> usize {
    code_lines_of(text).len()
}

impl Crate {
    /// Reads every `.rs` file under `src` (a crate's `src/`).
    pub fn read(name: &str, src: &Path) -> std::io::Result<Self> {
        let mut modules = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let rel = path.strip_prefix(src).unwrap_or(&path);
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                let file = parts.pop().unwrap_or_default();
                let stem = file.trim_end_matches(".rs");
                // A binary's extra targets (src/bin/) are crates of their own.
                if parts.first().is_some_and(|p| p == "bin") {
                    continue;
                }
                if !matches!(stem, "mod" | "lib" | "main") || !parts.is_empty() && stem != "mod" {
                    parts.push(stem.to_string());
                }
                let text = std::fs::read_to_string(&path)?;
                modules.insert(parts, (path, text));
            }
        }
        Ok(Self {
            name: name.to_string(),
            src: src.to_path_buf(),
            modules,
        })
    }

    /// The longest known module that `path` (from the crate root) names.
    fn resolve(&self, path: &[String]) -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| self.modules.contains_key(p))
            .unwrap_or_default()
    }

    /// The modules `module` uses.
    fn uses(&self, module: &ModPath, code: &str) -> BTreeSet<ModPath> {
        let mut found = BTreeSet::new();
        let ident = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
        for head in ["crate::", "super::", "self::"] {
            for (start, _) in code.match_indices(head) {
                // Only where a path starts (`super::super::x` is one path).
                if code[..start].chars().next_back().is_some_and(ident) {
                    continue;
                }
                for full in expand(&code[start..]) {
                    let mut segs: Vec<&str> = full.split("::").collect();
                    let mut base: ModPath = if segs[0] == "crate" {
                        Vec::new()
                    } else {
                        module.clone()
                    };
                    if segs[0] != "super" {
                        segs.remove(0);
                    }
                    while segs.first() == Some(&"super") {
                        segs.remove(0);
                        // In a/b.rs (module a::b) and in a/b/mod.rs alike, super is a.
                        base.pop();
                    }
                    base.extend(segs.iter().map(|s| s.to_string()));
                    found.insert(self.resolve(&base));
                }
            }
        }
        found.remove(module);
        found
    }

    /// Every rule this crate breaks, one line each.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut edges: BTreeSet<(ModPath, ModPath)> = BTreeSet::new();
        for (module, (path, text)) in &self.modules {
            let lines = code_lines(text);
            if lines > MAX_CODE_LINES {
                out.push(format!(
                    "{}: {lines} lines of code (at most {MAX_CODE_LINES})",
                    path.display()
                ));
            }
            for used in self.uses(module, &code_of(text)) {
                if !used.is_empty() && module.starts_with(&used) {
                    out.push(format!(
                        "{}: {} uses its parent {} (name the sibling module instead)",
                        self.name,
                        show(module),
                        show(&used)
                    ));
                    continue;
                }
                edges.insert((module.clone(), used));
            }
        }
        // Among the children of each module: the uses between their subtrees.
        let parents: BTreeSet<ModPath> = self
            .modules
            .keys()
            .filter_map(|m| m.split_last().map(|(_, p)| p.to_vec()))
            .collect();
        for parent in parents {
            let child = |m: &ModPath| -> Option<String> {
                (m.len() > parent.len() && m.starts_with(&parent)).then(|| m[parent.len()].clone())
            };
            let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (from, to) in &edges {
                if let (Some(a), Some(b)) = (child(from), child(to)) {
                    if a != b {
                        graph.entry(a).or_default().insert(b);
                    }
                }
            }
            for cycle in cycles(&graph) {
                let mut names: Vec<String> = cycle
                    .iter()
                    .map(|c| {
                        let mut p = parent.clone();
                        p.push(c.clone());
                        show(&p)
                    })
                    .collect();
                names.push(names[0].clone());
                out.push(format!(
                    "{}: a circle of uses: {}",
                    self.name,
                    names.join(" → ")
                ));
            }
        }
        // Folder sizes.
        let mut dirs: Vec<PathBuf> = vec![self.src.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            if entries.len() > MAX_ENTRIES {
                out.push(format!(
                    "{}: {} entries (at most {MAX_ENTRIES})",
                    dir.display(),
                    entries.len()
                ));
            }
            dirs.extend(entries.into_iter().filter(|p| p.is_dir()));
        }
        out
    }
}

fn show(m: &ModPath) -> String {
    if m.is_empty() {
        "the crate root".into()
    } else {
        m.join("::")
    }
}

/// The paths one `use` names: `crate::a::{b, c::{d, e}}` → `crate::a::b`, `crate::a::c::d`, ...
fn expand(text: &str) -> Vec<String> {
    // The prefix: segments up to a `{` or the end of the path.
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '{'))
        .unwrap_or(text.len());
    let Some(brace) = text[..end].find('{') else {
        return vec![text[..end].trim_end_matches(':').to_string()];
    };
    let prefix = text[..brace].trim_end_matches(':');
    // The group's items, split at commas outside nested braces.
    let mut depth = 0;
    let mut items = Vec::new();
    let mut item = String::new();
    for c in text[brace + 1..].chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .flat_map(|i| {
            let i = i.split(" as ").next().unwrap_or(i);
            if i == "self" {
                vec![prefix.to_string()]
            } else {
                expand(&format!("{prefix}::{}", i.trim()))
            }
        })
        .collect()
}

/// The strongly connected parts of `graph` with more than one node (each a circle of uses).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Reachability is enough at these sizes: a and b share a circle when each reaches the other.
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for m in graph.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    stack.push(m.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|k| (k, reach(k))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for (node, r) in &reaches {
        if done.contains(*node) || !r.contains(*node) {
            continue;
        }
        let part: Vec<String> = r
            .iter()
            .filter(|m| reaches.get(m).is_some_and(|rm| rm.contains(*node)))
            .cloned()
            .collect();
        done.extend(part.iter().cloned());
        out.push(part);
    }
    out
}

/// The workspace's crates (`crates/*/src`), from this crate's manifest directory.
pub fn workspace_crates() -> std::io::Result<Vec<Crate>> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&crates)? {
        let dir = entry?.path();
        let src = dir.join("src");
        if src.is_dir() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Crate::read(&name, &src)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_use_groups() {
        assert_eq!(expand("crate::a::b;"), vec!["crate::a::b"]);
        assert_eq!(
            expand("crate::a::{b, c::{d, e as f}, self};"),
            vec![
                "crate::a::b",
                "crate::a::c::d",
                "crate::a::c::e",
                "crate::a"
            ]
        );
    }

    #[test]
    fn finds_circles_and_parents() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        std::fs::create_dir_all(src.join("f")).unwrap();
        std::fs::write(src.join("lib.rs"), "pub mod a; pub mod b; pub mod f;").unwrap();
        std::fs::write(src.join("a.rs"), "use crate::b::X; // crate::f::doc_only").unwrap();
        std::fs::write(src.join("b.rs"), "fn g() { crate::a::h() }").unwrap();
        std::fs::write(
            src.join("f/mod.rs"),
            "pub mod x; pub use x::Y; pub struct Z;",
        )
        .unwrap();
        std::fs::write(src.join("f/x.rs"), "use super::Z;").unwrap();
        let c = Crate::read("t", src).unwrap();
        let v = c.violations();
        assert!(
            v.iter().any(|l| l.contains("circle of uses: a → b → a")),
            "{v:?}"
        );
        assert!(
            v.iter().any(|l| l.contains("f::x uses its parent f")),
            "{v:?}"
        );
        assert_eq!(v.len(), 2, "{v:?}");
    }

    #[test]
    fn the_workspace_keeps_its_layout() {
        let mut all = Vec::new();
        for c in workspace_crates().unwrap() {
            all.extend(c.violations());
        }
        assert!(
            all.is_empty(),
            "the layout rules (docs/architecture.md, Map):\n{}",
            all.join("\n")
        );
    }
}
