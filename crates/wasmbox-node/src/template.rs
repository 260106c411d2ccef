//! k3s and rke2: their containerd config is generated at every start from a Go template, so the
//! runtime goes into the template, `config.toml.tmpl` (a version-2 config) or
//! `config-v3.toml.tmpl` (version 3), next to the generated `config.toml`. k3s documents extending
//! its stock config with a template that starts with `{{ template "base" . }}` and adds tables
//! after it; this edits the TOML after that line and leaves the line (and anything before it)
//! as it is.

use toml_edit::DocumentMut;

use crate::config::{add_handlers, remove_handlers, ConfigVersion};
use crate::{Change, Error, Handler, CREATED_MARKER};

const BASE_LINE: &str = "{{ template \"base\" . }}";

/// Whether `line` is the base template action, in any of Go's spellings of it.
fn is_base_line(line: &str) -> bool {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = compact
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .map(|s| s.trim_start_matches('-').trim_end_matches('-'));
    inner == Some("template\"base\".")
}

/// Splits a template into what ends with the base line and the TOML after it.
fn split(text: &str) -> Result<(&str, &str), Error> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        if is_base_line(line) {
            let (head, tail) = text.split_at(offset);
            if tail.contains("{{") {
                return Err(Error::TemplateActions);
            }
            return Ok((head, tail));
        }
    }
    Err(Error::NoBaseTemplate)
}

/// The template install writes where there is none.
fn new_template() -> String {
    format!("{CREATED_MARKER}\n{BASE_LINE}\n")
}

fn version_of(template_version: u32) -> ConfigVersion {
    if template_version >= 3 {
        ConfigVersion::V3
    } else {
        ConfigVersion::V2
    }
}

/// Adds `handlers` to the template `existing` (`None`: there is none yet; one extending the base
/// template is written). `template_version` is 3 for `config-v3.toml.tmpl`, 2 for
/// `config.toml.tmpl`.
pub fn install_template(
    existing: Option<&str>,
    template_version: u32,
    handlers: &[Handler],
) -> Result<Change, Error> {
    let mut notes = Vec::new();
    let base = match existing {
        Some(text) => text.to_string(),
        None => {
            notes.push("no template: writing one that extends k3s's base template".to_string());
            new_template()
        }
    };
    let (head, tail) = split(&base)?;
    let mut doc: DocumentMut = tail.parse()?;
    add_handlers(
        doc.as_table_mut(),
        version_of(template_version).runtimes_path(),
        handlers,
        &mut notes,
    )?;
    Ok(Change {
        before: existing.map(str::to_string),
        after: Some(format!("{head}{doc}")),
        notes,
    })
}

/// Takes out of the template what install added (all handlers, or those in `only`); deletes the
/// template (`after: None`) when install had written it and nothing else is left.
pub fn uninstall_template(existing: &str, only: &[String]) -> Result<Change, Error> {
    let mut notes = Vec::new();
    let (head, tail) = split(existing)?;
    let mut doc: DocumentMut = tail.parse()?;
    for version in [ConfigVersion::V2, ConfigVersion::V3] {
        remove_handlers(
            doc.as_table_mut(),
            version.runtimes_path(),
            only,
            &mut notes,
        );
    }
    let after = format!("{head}{doc}");
    let after = if after.trim_end() == new_template().trim_end() {
        notes.push(
            "the template was written by install and nothing else is left: deleting it".into(),
        );
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
