//! containerd's `config.toml`: its version, and the runtime handler tables in it.

use toml_edit::{Array, DocumentMut, Item, Key, Table, Value};

use crate::{
    Change, Error, Handler, CREATED_MARKER, ELEMENT_MARKER, KEY_MARKER, LEGACY_TABLE_MARKER,
    POD_ANNOTATIONS, RUNTIME_TYPE, TABLE_MARKER,
};

/// The `version` of a containerd config file, which decides where the CRI runtimes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVersion {
    /// `version = 1` or no `version` (containerd 1.x; plugin tables by id: `plugins.cri`).
    V1,
    /// `version = 2` (containerd 1.x; containerd 2.x migrates it when it loads it).
    V2,
    /// `version = 3` (containerd 2.x).
    V3,
}

impl ConfigVersion {
    /// The table holding the CRI runtime handlers in a config of this version.
    pub fn runtimes_path(self) -> &'static [&'static str] {
        match self {
            ConfigVersion::V1 => &["plugins", "cri", "containerd", "runtimes"],
            ConfigVersion::V2 => &[
                "plugins",
                "io.containerd.grpc.v1.cri",
                "containerd",
                "runtimes",
            ],
            ConfigVersion::V3 => &[
                "plugins",
                "io.containerd.cri.v1.runtime",
                "containerd",
                "runtimes",
            ],
        }
    }

    pub fn number(self) -> u32 {
        match self {
            ConfigVersion::V1 => 1,
            ConfigVersion::V2 => 2,
            ConfigVersion::V3 => 3,
        }
    }
}

/// The version of the config `text` (a file without `version` is version 1, as containerd 1.x
/// reads it).
pub fn config_version(text: &str) -> Result<ConfigVersion, Error> {
    let doc: DocumentMut = text.parse()?;
    doc_version(&doc)
}

pub(crate) fn doc_version(doc: &DocumentMut) -> Result<ConfigVersion, Error> {
    match doc.get("version") {
        None => Ok(ConfigVersion::V1),
        Some(item) => match item.as_integer() {
            Some(1) => Ok(ConfigVersion::V1),
            Some(2) => Ok(ConfigVersion::V2),
            Some(3) => Ok(ConfigVersion::V3),
            _ => Err(Error::UnknownVersion(item.to_string().trim().to_string())),
        },
    }
}

/// The config install writes where there is none: the version `containerd_major` reads natively.
pub fn minimal_config(containerd_major: Option<u32>) -> Result<String, Error> {
    let version = match containerd_major {
        None => return Err(Error::UnknownContainerd),
        Some(1) => 2,
        Some(2) => 3,
        Some(n) => return Err(Error::UnsupportedContainerd(n)),
    };
    Ok(format!("{CREATED_MARKER}\nversion = {version}\n"))
}

/// Adds `handlers` to the config `existing` (`None`: there is no file; then a minimal config for
/// `containerd_major` is written). A version-1 config is upgraded to version 2 first.
pub fn install_config(
    existing: Option<&str>,
    containerd_major: Option<u32>,
    handlers: &[Handler],
) -> Result<Change, Error> {
    let mut notes = Vec::new();
    let base = match existing {
        Some(text) => text.to_string(),
        None => {
            let text = minimal_config(containerd_major)?;
            notes.push("no config: writing a minimal one".to_string());
            text
        }
    };
    let mut doc: DocumentMut = base.parse()?;
    let mut version = doc_version(&doc)?;
    if version == ConfigVersion::V1 {
        crate::v1::upgrade(&mut doc, &mut notes)?;
        version = ConfigVersion::V2;
    }
    add_handlers(
        doc.as_table_mut(),
        version.runtimes_path(),
        handlers,
        &mut notes,
    )?;
    check_cri_enabled(&doc, &mut notes);
    Ok(Change {
        before: existing.map(str::to_string),
        after: Some(doc.to_string()),
        notes,
    })
}

/// Takes out of `existing` what install added: every handler, or only those named in `only`.
/// Deletes the file (`after: None`) when install had created it and nothing else is left.
pub fn uninstall_config(existing: &str, only: &[String]) -> Result<Change, Error> {
    let mut notes = Vec::new();
    let mut doc: DocumentMut = existing.parse()?;
    for version in [ConfigVersion::V2, ConfigVersion::V3, ConfigVersion::V1] {
        remove_handlers(
            doc.as_table_mut(),
            version.runtimes_path(),
            only,
            &mut notes,
        );
    }
    let after = doc.to_string();
    let created_and_empty = [Some(1), Some(2)]
        .into_iter()
        .any(|major| minimal_config(major).is_ok_and(|m| m.trim_end() == after.trim_end()));
    let after = if created_and_empty {
        notes.push("the file was written by install and nothing else is left: deleting it".into());
        None
    } else {
        Some(after)
    };
    Ok(Change {
        before: Some(existing.to_string()),
        after,
        notes,
    })
}

/// A note when CRI is switched off (Docker's containerd package does that): the handler is then
/// there for `ctr`/nerdctl only, not for Kubernetes.
fn check_cri_enabled(doc: &DocumentMut, notes: &mut Vec<String>) {
    let disabled = doc.get("disabled_plugins").and_then(Item::as_array);
    let cri_off = disabled.is_some_and(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .any(|p| matches!(p, "cri" | "io.containerd.grpc.v1.cri"))
    });
    if cri_off {
        notes.push(
            "note: disabled_plugins switches CRI off, so Kubernetes cannot use this runtime \
             (remove \"cri\" from disabled_plugins for that)"
                .to_string(),
        );
    }
}

/// `path` as a TOML key path, quoting the keys that need it (`plugins."io.containerd.grpc.v1.cri"`).
fn dotted(path: &[&str]) -> String {
    let quote = |k: &&str| {
        if k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            k.to_string()
        } else {
            format!("{k:?}")
        }
    };
    path.iter().map(quote).collect::<Vec<_>>().join(".")
}

/// The table at `path`, made (implicit, so no empty headers appear) where missing.
fn table_at<'a>(root: &'a mut Table, path: &[&str]) -> Result<&'a mut Table, Error> {
    let mut table = root;
    for (i, key) in path.iter().enumerate() {
        let item = table.entry(key).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        table = match item {
            Item::Table(t) => t,
            other => {
                return Err(Error::NotATable {
                    path: dotted(&path[..=i]),
                    found: other.type_name().to_string(),
                })
            }
        };
    }
    Ok(table)
}

/// The table at `path` if it is there.
fn existing_table_at<'a>(root: &'a mut Table, path: &[&str]) -> Option<&'a mut Table> {
    let mut table = root;
    for key in path {
        table = table.get_mut(key)?.as_table_mut()?;
    }
    Some(table)
}

/// How the neighbouring runtime tables are indented, so added ones look like them.
struct Layout {
    header: String,
    key: String,
    options_header: String,
    options_key: String,
}

impl Layout {
    /// From a runtime table next to the new one, else from `fallback`, the header indentation
    /// the nearest table above implies.
    fn of(runtimes: &Table, fallback: String) -> Self {
        let sibling = runtimes
            .iter()
            .filter_map(|(_, item)| item.as_table())
            .find(|t| !is_ours(t));
        let header = sibling.and_then(header_indent).or(Some(fallback));
        let key = sibling.and_then(key_indent);
        let options = sibling
            .and_then(|t| t.get("options"))
            .and_then(Item::as_table);
        let options_header = options.and_then(header_indent);
        let options_key = options.and_then(key_indent);
        let header = header.unwrap_or_default();
        let key = key.unwrap_or_else(|| format!("{header}  "));
        Layout {
            options_header: options_header.unwrap_or_else(|| key.clone()),
            options_key: options_key.unwrap_or_else(|| format!("{key}  ")),
            header,
            key,
        }
    }
}

/// The indentation of a runtime table's header under `path` when it has no sibling to copy:
/// two spaces a level below the nearest indented table above it (containerd's own style), or
/// none in a file that does not indent its headers.
fn indent_below(root: &Table, path: &[&str]) -> String {
    let mut nearest = None;
    let mut table = root;
    for (depth, key) in path.iter().enumerate() {
        let Some(next) = table.get(key).and_then(Item::as_table) else {
            break;
        };
        if !next.is_implicit() {
            nearest = header_indent(next).map(|indent| (indent, depth));
        }
        table = next;
    }
    match nearest {
        Some((indent, depth)) if !indent.is_empty() => {
            format!("{indent}{}", "  ".repeat(path.len() - depth))
        }
        _ => String::new(),
    }
}

fn blank(s: &str) -> bool {
    s.chars().all(|c| c == ' ' || c == '\t')
}

fn header_indent(t: &Table) -> Option<String> {
    let prefix = t.decor().prefix()?.as_str()?;
    let last = prefix.rsplit('\n').next().unwrap_or(prefix);
    blank(last).then(|| last.to_string())
}

fn key_indent(t: &Table) -> Option<String> {
    let (key, _) = t.iter().next()?;
    let prefix = t.key(key)?.leaf_decor().prefix()?.as_str()?;
    let last = prefix.rsplit('\n').next().unwrap_or(prefix);
    blank(last).then(|| last.to_string())
}

/// Whether install created this table (its header comment says so).
pub(crate) fn is_ours(t: &Table) -> bool {
    t.decor()
        .prefix()
        .and_then(|p| p.as_str())
        .is_some_and(|p| p.contains(TABLE_MARKER) || p.contains(LEGACY_TABLE_MARKER))
}

fn comment_line(indent: &str, text: &str) -> String {
    format!("{indent}# {text}\n")
}

fn indented_key(name: &str, indent: &str) -> Key {
    let mut key = Key::new(name);
    key.leaf_decor_mut().set_prefix(indent.to_string());
    key.leaf_decor_mut().set_suffix(" ");
    key
}

fn annotations_array() -> Array {
    let mut a = Array::new();
    a.push(POD_ANNOTATIONS);
    a
}

fn new_options(config_path: &str, layout: &Layout, marked: bool) -> Table {
    let mut options = Table::new();
    let mut prefix = format!("\n{}", layout.options_header);
    if marked {
        prefix = format!(
            "\n{}{}",
            comment_line(&layout.options_header, TABLE_MARKER),
            layout.options_header
        );
    }
    options.decor_mut().set_prefix(prefix);
    options.insert_formatted(
        &indented_key("ConfigPath", &layout.options_key),
        toml_edit::value(config_path),
    );
    options
}

fn new_runtime(handler: &Handler, layout: &Layout) -> Table {
    let mut t = Table::new();
    t.decor_mut().set_prefix(format!(
        "\n{}{}",
        comment_line(
            &layout.header,
            &format!("{TABLE_MARKER}; `wasmbox node uninstall` removes it")
        ),
        layout.header
    ));
    t.insert_formatted(
        &indented_key("runtime_type", &layout.key),
        toml_edit::value(RUNTIME_TYPE),
    );
    t.insert_formatted(
        &indented_key("pod_annotations", &layout.key),
        toml_edit::value(annotations_array()),
    );
    if let Some(path) = &handler.config_path {
        t.insert("options", Item::Table(new_options(path, layout, false)));
    }
    t
}

/// Adds (or completes) one runtime table per handler under the table at `runtimes_path`.
pub(crate) fn add_handlers(
    root: &mut Table,
    runtimes_path: &[&str],
    handlers: &[Handler],
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let fallback = indent_below(root, runtimes_path);
    let runtimes = table_at(root, runtimes_path)?;
    let layout = Layout::of(runtimes, fallback);
    let where_ = dotted(runtimes_path);
    for handler in handlers {
        match runtimes.get_mut(&handler.name) {
            None => {
                runtimes.insert(&handler.name, Item::Table(new_runtime(handler, &layout)));
                notes.push(format!(
                    "added runtime handler {:?} ({where_}.{})",
                    handler.name, handler.name
                ));
            }
            Some(Item::Table(t)) if is_ours(t) => converge_ours(t, handler, &layout, notes),
            Some(Item::Table(t)) => complete_users(t, handler, &layout, notes)?,
            Some(other) => {
                return Err(Error::NotATable {
                    path: format!("{where_}.{}", handler.name),
                    found: other.type_name().to_string(),
                })
            }
        }
    }
    Ok(())
}

/// A table install made earlier: brought to what this run asks for.
fn converge_ours(t: &mut Table, handler: &Handler, layout: &Layout, notes: &mut Vec<String>) {
    let name = &handler.name;
    let prefix = t
        .decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    if prefix.contains(LEGACY_TABLE_MARKER) {
        // Take over the old shell installer's table, so that uninstall recognises it by the current
        // marker.
        t.decor_mut().set_prefix(prefix.replace(
            LEGACY_TABLE_MARKER,
            &format!("{TABLE_MARKER}; `wasmbox node uninstall` removes it"),
        ));
        notes.push(format!(
            "handler {name:?}: took over the table the old shell installer added"
        ));
    }
    if t.get("runtime_type").and_then(Item::as_str) != Some(RUNTIME_TYPE) {
        set_value(t, "runtime_type", RUNTIME_TYPE.into(), &layout.key);
        notes.push(format!("handler {name:?}: set runtime_type"));
    }
    match t.get_mut("pod_annotations").and_then(Item::as_array_mut) {
        Some(a) if has_pattern(a) => {}
        Some(a) => {
            a.push(POD_ANNOTATIONS);
            notes.push(format!(
                "handler {name:?}: added {POD_ANNOTATIONS:?} to pod_annotations"
            ));
        }
        None => {
            set_value(
                t,
                "pod_annotations",
                annotations_array().into(),
                &layout.key,
            );
            notes.push(format!("handler {name:?}: set pod_annotations"));
        }
    }
    let current = t
        .get("options")
        .and_then(|o| o.get("ConfigPath"))
        .and_then(Item::as_str)
        .map(str::to_string);
    match (&handler.config_path, current) {
        (Some(want), Some(have)) if *want == have => {}
        (Some(want), _) => {
            match t.get_mut("options").and_then(Item::as_table_mut) {
                Some(options) => set_value(
                    options,
                    "ConfigPath",
                    want.as_str().into(),
                    &layout.options_key,
                ),
                None => {
                    t.insert("options", Item::Table(new_options(want, layout, false)));
                }
            }
            notes.push(format!("handler {name:?}: ConfigPath = {want:?}"));
        }
        (None, Some(_)) => {
            if let Some(options) = t.get_mut("options").and_then(Item::as_table_mut) {
                options.remove("ConfigPath");
                if options.is_empty() {
                    t.remove("options");
                }
            }
            notes.push(format!("handler {name:?}: removed ConfigPath"));
        }
        (None, None) => {}
    }
}

/// Sets `key` in `t`, keeping the key's and value's formatting when it is already there.
fn set_value(t: &mut Table, key: &str, mut value: Value, indent: &str) {
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        None => {
            t.insert_formatted(&indented_key(key, indent), Item::Value(value));
        }
    }
}

fn has_pattern(a: &Array) -> bool {
    a.iter().any(|v| v.as_str() == Some(POD_ANNOTATIONS))
}

/// Appends `marker` to the trailing comment of the value of `key` in `t`.
fn mark(t: &mut Table, key: &str, marker: &str) {
    if let Some(v) = t.get_mut(key).and_then(Item::as_value_mut) {
        let old = v
            .decor()
            .suffix()
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string();
        v.decor_mut().set_suffix(format!("{old}{marker}"));
    }
}

/// A runtime table the user wrote with this handler's name: adds what is missing, marking each
/// addition; refuses to change what is there.
fn complete_users(
    t: &mut Table,
    handler: &Handler,
    layout: &Layout,
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let name = &handler.name;
    let layout = Layout {
        key: key_indent(t).unwrap_or_else(|| layout.key.clone()),
        header: layout.header.clone(),
        options_header: layout.options_header.clone(),
        options_key: layout.options_key.clone(),
    };
    match t.get("runtime_type").and_then(Item::as_str) {
        Some(RUNTIME_TYPE) => {}
        Some(other) => {
            return Err(Error::HandlerTaken {
                handler: name.clone(),
                runtime_type: other.to_string(),
            })
        }
        None => {
            set_value(t, "runtime_type", RUNTIME_TYPE.into(), &layout.key);
            mark(t, "runtime_type", KEY_MARKER);
            notes.push(format!("handler {name:?}: added runtime_type"));
        }
    }
    match t.get_mut("pod_annotations") {
        None => {
            set_value(
                t,
                "pod_annotations",
                annotations_array().into(),
                &layout.key,
            );
            mark(t, "pod_annotations", KEY_MARKER);
            notes.push(format!("handler {name:?}: added pod_annotations"));
        }
        Some(item) => match item.as_array_mut() {
            Some(a) if has_pattern(a) => {}
            Some(a) => {
                a.push(POD_ANNOTATIONS);
                mark(t, "pod_annotations", ELEMENT_MARKER);
                notes.push(format!(
                    "handler {name:?}: added {POD_ANNOTATIONS:?} to pod_annotations"
                ));
            }
            None => {
                return Err(Error::NotATable {
                    path: format!("{name}.pod_annotations"),
                    found: format!("{} (an array was expected)", item.type_name()),
                })
            }
        },
    }
    let Some(want) = &handler.config_path else {
        return Ok(());
    };
    match t.get_mut("options") {
        None => {
            t.insert("options", Item::Table(new_options(want, &layout, true)));
            notes.push(format!(
                "handler {name:?}: added options.ConfigPath = {want:?}"
            ));
        }
        Some(Item::Table(options)) => match options.get("ConfigPath").and_then(Item::as_str) {
            Some(have) if have == want => {}
            Some(have) if is_ours(options) => {
                let have = have.to_string();
                set_value(
                    options,
                    "ConfigPath",
                    want.as_str().into(),
                    &layout.options_key,
                );
                notes.push(format!("handler {name:?}: ConfigPath {have:?} -> {want:?}"));
            }
            Some(have) => {
                return Err(Error::Conflict {
                    handler: name.clone(),
                    key: "options.ConfigPath".into(),
                    existing: format!("{have:?}"),
                    wanted: format!("{want:?}"),
                })
            }
            None => {
                set_value(
                    options,
                    "ConfigPath",
                    want.as_str().into(),
                    &layout.options_key,
                );
                mark(options, "ConfigPath", KEY_MARKER);
                notes.push(format!(
                    "handler {name:?}: added options.ConfigPath = {want:?}"
                ));
            }
        },
        Some(other) => {
            return Err(Error::NotATable {
                path: format!("{name}.options"),
                found: other.type_name().to_string(),
            })
        }
    }
    Ok(())
}

/// Removes what install added under the table at `runtimes_path`: the tables it created, and the
/// keys (or the annotation) it added to tables the user wrote.
pub(crate) fn remove_handlers(
    root: &mut Table,
    runtimes_path: &[&str],
    only: &[String],
    notes: &mut Vec<String>,
) {
    let Some(runtimes) = existing_table_at(root, runtimes_path) else {
        return;
    };
    let selected = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let ours: Vec<String> = runtimes
        .iter()
        .filter(|(name, item)| selected(name) && item.as_table().is_some_and(is_ours))
        .map(|(name, _)| name.to_string())
        .collect();
    for name in ours {
        runtimes.remove(&name);
        notes.push(format!("removed runtime handler {name:?}"));
    }
    for (name, item) in runtimes.iter_mut() {
        if !selected(&name) {
            continue;
        }
        let Some(t) = item.as_table_mut() else {
            continue;
        };
        let removed = unmark_table(t);
        if removed > 0 {
            notes.push(format!(
                "handler {:?}: removed what install added to it",
                name.get()
            ));
        } else if t.get("runtime_type").and_then(Item::as_str) == Some(RUNTIME_TYPE) {
            notes.push(format!(
                "handler {:?} runs wasmbox but install did not add it: left as it is",
                name.get()
            ));
        }
    }
}

/// Reverts the marked additions in a user's runtime table; returns how many.
fn unmark_table(t: &mut Table) -> usize {
    let mut removed = 0;
    if t.get("options")
        .and_then(Item::as_table)
        .is_some_and(is_ours)
    {
        t.remove("options");
        removed += 1;
    }
    if let Some(options) = t.get_mut("options").and_then(Item::as_table_mut) {
        removed += unmark_keys(options);
    }
    removed + unmark_keys(t)
}

fn suffix_of(v: &Value) -> String {
    v.decor()
        .suffix()
        .and_then(|s| s.as_str())
        .unwrap_or_default()
        .to_string()
}

fn unmark_keys(t: &mut Table) -> usize {
    let mut removed = 0;
    let keys: Vec<String> = t.iter().map(|(k, _)| k.to_string()).collect();
    for key in keys {
        let Some(value) = t.get_mut(&key).and_then(Item::as_value_mut) else {
            continue;
        };
        let suffix = suffix_of(value);
        if let Some(at) = suffix.rfind(ELEMENT_MARKER) {
            if let Some(a) = value.as_array_mut() {
                a.retain(|v| v.as_str() != Some(POD_ANNOTATIONS));
            }
            let mut restored = suffix.clone();
            restored.replace_range(at..at + ELEMENT_MARKER.len(), "");
            value.decor_mut().set_suffix(restored);
            removed += 1;
        } else if suffix.contains(KEY_MARKER) {
            t.remove(&key);
            removed += 1;
        }
    }
    removed
}
