//! Version-1 configs (no `version`, or `version = 1`) upgraded to version 2.
//!
//! The two differ only in how plugins are named: version 1 by id (`[plugins.cri]`,
//! `disabled_plugins = ["aufs"]`), version 2 by URI, type and id (`[plugins."io.containerd.grpc.v1.cri"]`).
//! containerd 1.x reads both; containerd 2.x reads a version-2 file but not the CRI tables of a
//! version-1 one, so the upgrade is what keeps the runtime working across a containerd upgrade.

use toml_edit::{DocumentMut, Item, Key, Value};

use crate::Error;

/// The plugin ids of containerd 1.6 and 1.7 that have a config table, with their type: every
/// `[plugins."TYPE.ID"]` of their `containerd config default`. Ids are unique among them.
const PLUGIN_TYPES: &[(&str, &str)] = &[
    ("cri", "io.containerd.grpc.v1"),
    ("scheduler", "io.containerd.gc.v1"),
    ("opt", "io.containerd.internal.v1"),
    ("restart", "io.containerd.internal.v1"),
    ("tracing", "io.containerd.internal.v1"),
    ("bolt", "io.containerd.metadata.v1"),
    ("cgroups", "io.containerd.monitor.v1"),
    ("nri", "io.containerd.nri.v1"),
    ("linux", "io.containerd.runtime.v1"),
    ("task", "io.containerd.runtime.v2"),
    ("diff-service", "io.containerd.service.v1"),
    ("tasks-service", "io.containerd.service.v1"),
    ("aufs", "io.containerd.snapshotter.v1"),
    ("blockfile", "io.containerd.snapshotter.v1"),
    ("btrfs", "io.containerd.snapshotter.v1"),
    ("devmapper", "io.containerd.snapshotter.v1"),
    ("native", "io.containerd.snapshotter.v1"),
    ("overlayfs", "io.containerd.snapshotter.v1"),
    ("zfs", "io.containerd.snapshotter.v1"),
    ("otlp", "io.containerd.tracing.processor.v1"),
    ("local", "io.containerd.transfer.v1"),
];

fn uri(id: &str) -> Option<String> {
    // Already a URI (some version-1 files mix them in): keep it.
    if id.starts_with("io.containerd.") {
        return Some(id.to_string());
    }
    PLUGIN_TYPES
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, ty)| format!("{ty}.{id}"))
}

/// Renames the plugin tables and the `disabled_plugins`/`required_plugins` entries from ids to
/// URIs and sets `version = 2`. Refuses (changing nothing) when an id is unknown.
pub(crate) fn upgrade(doc: &mut DocumentMut, notes: &mut Vec<String>) -> Result<(), Error> {
    let mut unknown = Vec::new();
    let plugin_ids: Vec<String> = match doc.get("plugins") {
        None => Vec::new(),
        Some(Item::Table(t)) => t.iter().map(|(k, _)| k.to_string()).collect(),
        Some(other) => {
            return Err(Error::NotATable {
                path: "plugins".into(),
                found: other.type_name().to_string(),
            })
        }
    };
    for id in &plugin_ids {
        if uri(id).is_none() {
            unknown.push(id.clone());
        }
    }
    for list in ["disabled_plugins", "required_plugins"] {
        if let Some(a) = doc.get(list).and_then(Item::as_array) {
            for id in a.iter().filter_map(Value::as_str) {
                if uri(id).is_none() && !unknown.iter().any(|u| u == id) {
                    unknown.push(id.to_string());
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(Error::UnknownV1Plugins(unknown));
    }

    let mut renamed = Vec::new();
    if let Some(plugins) = doc.get_mut("plugins").and_then(Item::as_table_mut) {
        // Take every entry out and put it back in the same order, so the traversal order (and
        // where tables added later land) stays as it was; each table keeps its own position.
        let entries: Vec<(Key, Item)> = plugin_ids
            .iter()
            .filter_map(|id| plugins.remove_entry(id))
            .collect();
        for (key, item) in entries {
            let id = key.get().to_string();
            let new = uri(&id).unwrap_or_else(|| id.clone());
            if new == id {
                plugins.insert_formatted(&key, item);
            } else {
                let mut new_key = Key::new(new.as_str());
                *new_key.leaf_decor_mut() = key.leaf_decor().clone();
                *new_key.dotted_decor_mut() = key.dotted_decor().clone();
                plugins.insert_formatted(&new_key, item);
                renamed.push(format!("plugins.{id} -> plugins.\"{new}\""));
            }
        }
    }
    for list in ["disabled_plugins", "required_plugins"] {
        if let Some(a) = doc.get_mut(list).and_then(Item::as_array_mut) {
            for v in a.iter_mut() {
                let Some(id) = v.as_str() else { continue };
                let Some(new) = uri(id).filter(|n| n != id) else {
                    continue;
                };
                renamed.push(format!("{list} {id:?} -> {new:?}"));
                let decor = v.decor().clone();
                *v = Value::from(new);
                *v.decor_mut() = decor;
            }
        }
    }

    match doc.get_mut("version").and_then(Item::as_value_mut) {
        Some(v) => {
            let decor = v.decor().clone();
            *v = Value::from(2);
            *v.decor_mut() = decor;
        }
        None => {
            doc.insert("version", toml_edit::value(2));
        }
    }
    notes.push(format!(
        "upgraded the config from version 1 to version 2 (containerd 1.x reads both; 2.x reads \
         the CRI settings of version 2 only): set version = 2{}{}",
        if renamed.is_empty() { "" } else { ", renamed " },
        renamed.join(", ")
    ));
    Ok(())
}
