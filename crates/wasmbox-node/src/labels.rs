//! The node labels that say which wasmbox runtime handlers a node has, so that a RuntimeClass's
//! `scheduling.nodeSelector` sends its pods only to nodes with its handler (a pod that lands on
//! a node without it fails with `no runtime for "NAME" is configured`).
//!
//! One label per handler, `handler.wasmbox.dev/NAME=true`, for every runtime in containerd's
//! config whose type is wasmbox's: what the node really has, whoever added it. The older
//! `wasmbox.dev/runtime=installed` stays while any handler is there, for RuntimeClasses that
//! select on it. Plain data: the installer's `wasmbox node labels` turns it into the merge
//! patch a DaemonSet sends to the API server.

use std::collections::BTreeMap;

use toml_edit::{DocumentMut, Item, Table};

use crate::{Error, RUNTIME_TYPE};

/// The prefix of the per-handler labels; the handler's name follows.
pub const HANDLER_LABEL_PREFIX: &str = "handler.wasmbox.dev/";
/// Set while the node has any wasmbox handler.
pub const RUNTIME_LABEL: &str = "wasmbox.dev/runtime";

/// The label that says the node has handler `name`.
pub fn handler_label(name: &str) -> String {
    format!("{HANDLER_LABEL_PREFIX}{name}")
}

/// The wasmbox handlers in a containerd config (any version), or in a k3s/rke2 template (its
/// template directives are skipped): every `...containerd.runtimes.NAME` table whose
/// `runtime_type` is wasmbox's.
pub fn configured_handlers(text: &str) -> Result<Vec<String>, Error> {
    let toml: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("{{") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let doc: DocumentMut = toml.parse()?;
    let mut found = Vec::new();
    collect(doc.as_table(), &mut Vec::new(), &mut found);
    found.sort();
    found.dedup();
    Ok(found)
}

fn collect<'a>(table: &'a Table, path: &mut Vec<&'a str>, found: &mut Vec<String>) {
    let under_runtimes = path.len() >= 3
        && path[path.len() - 3] == "containerd"
        && path[path.len() - 2] == "runtimes";
    if under_runtimes && table.get("runtime_type").and_then(Item::as_str) == Some(RUNTIME_TYPE) {
        if let Some(name) = path.last() {
            found.push(name.to_string());
        }
    }
    for (key, item) in table.iter() {
        if let Some(child) = item.as_table() {
            path.push(key);
            collect(child, path, found);
            path.pop();
        }
    }
}

/// The label changes that make a node with labels `current` say it has exactly `handlers`:
/// `Some(value)` to set, `None` to remove. Labels the node has right already are left out.
pub fn label_changes(
    handlers: &[String],
    current: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let mut wanted: BTreeMap<String, String> = handlers
        .iter()
        .map(|h| (handler_label(h), "true".into()))
        .collect();
    if !handlers.is_empty() {
        wanted.insert(RUNTIME_LABEL.into(), "installed".into());
    }
    let mut changes: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (key, value) in &wanted {
        if current.get(key) != Some(value) {
            changes.insert(key.clone(), Some(value.clone()));
        }
    }
    for key in current.keys() {
        let ours = key.starts_with(HANDLER_LABEL_PREFIX) || key == RUNTIME_LABEL;
        if ours && !wanted.contains_key(key) {
            changes.insert(key.clone(), None);
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_of_every_config_version_and_of_a_template() {
        let v2 = r#"version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmbox]
  runtime_type = "io.containerd.wasmbox.v1"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmbox-strict]
  runtime_type = "io.containerd.wasmbox.v1"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmbox-strict.options]
    ConfigPath = "/etc/wasmbox/strict.toml"
"#;
        assert_eq!(
            configured_handlers(v2).unwrap(),
            ["wasmbox", "wasmbox-strict"]
        );
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.wasmbox]\nruntime_type = 'io.containerd.wasmbox.v1'\n";
        assert_eq!(configured_handlers(v3).unwrap(), ["wasmbox"]);
        let template = "{{ template \"base\" . }}\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.edge]\nruntime_type = 'io.containerd.wasmbox.v1'\n";
        assert_eq!(configured_handlers(template).unwrap(), ["edge"]);
        assert!(configured_handlers("version = 2\n").unwrap().is_empty());
    }

    #[test]
    fn labels_follow_the_handlers_and_stale_ones_go() {
        let current: BTreeMap<String, String> = [
            ("kubernetes.io/os", "linux"),
            ("handler.wasmbox.dev/wasmbox", "true"),
            ("handler.wasmbox.dev/gone", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let changes = label_changes(&["wasmbox".into(), "wasmbox-strict".into()], &current);
        let expected: BTreeMap<String, Option<String>> = [
            ("handler.wasmbox.dev/gone", None),
            ("handler.wasmbox.dev/wasmbox-strict", Some("true")),
            ("wasmbox.dev/runtime", Some("installed")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(String::from)))
        .collect();
        assert_eq!(changes, expected);
        // No handler left: every label of ours goes, nobody else's.
        let mut all = current.clone();
        all.insert("wasmbox.dev/runtime".into(), "installed".into());
        let gone = label_changes(&[], &all);
        assert_eq!(gone.len(), 3);
        assert!(gone.values().all(Option::is_none));
        assert!(!gone.contains_key("kubernetes.io/os"));
    }
}
