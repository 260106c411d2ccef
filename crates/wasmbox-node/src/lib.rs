//! Adds the wasmbox runtime handler to containerd's config, and takes it out again.
//!
//! Everything here works on text and paths; reading, writing, backups and restarting containerd
//! are the caller's (`wasmbox node install`). The config is edited as TOML with `toml_edit`, so
//! the user's comments, order and quoting survive, and `uninstall` gives back the original text.
//!
//! What install adds, per handler: `[<cri runtimes>.NAME]` with `runtime_type =
//! "io.containerd.wasmbox.v1"` and `pod_annotations = ["wasmbox.dev/*"]`, plus
//! `[<cri runtimes>.NAME.options] ConfigPath = ...` when the handler has a config file. A table it
//! creates carries [`TABLE_MARKER`] in a comment above its header; a key it adds to a table the
//! user wrote carries [`KEY_MARKER`] as a trailing comment. Uninstall removes exactly those.

mod config;
pub mod labels;
mod paths;
mod template;
mod v1;

#[cfg(test)]
mod tests;

pub use config::{config_version, install_config, minimal_config, uninstall_config, ConfigVersion};
pub use paths::{choose_template, classify, containerd_major, under_root, Flavor, Target};
pub use template::{install_template, uninstall_template};

/// The runtime type containerd maps to the `containerd-shim-wasmbox-v1` binary.
pub const RUNTIME_TYPE: &str = "io.containerd.wasmbox.v1";
/// The shim binary containerd looks for on its PATH.
pub const SHIM_BINARY: &str = "containerd-shim-wasmbox-v1";
/// Pod annotations CRI passes to the shim (the RuntimeClass handler's `pod_annotations`).
pub const POD_ANNOTATIONS: &str = "wasmbox.dev/*";
/// The handler name (and RuntimeClass handler) when none is given.
pub const DEFAULT_HANDLER: &str = "wasmbox";
/// In a comment above the header of every table install created.
pub const TABLE_MARKER: &str = "wasmbox node install added this table";
/// What the shell installer this one replaced put above the table it appended (nodes still have
/// it), so that this one takes such a table over.
pub const LEGACY_TABLE_MARKER: &str = "Added by wasmbox install.sh";
/// The trailing comment of a key install added to a table the user wrote.
pub const KEY_MARKER: &str = "  # added by wasmbox node install";
/// The trailing comment of a `pod_annotations` the user wrote, to which install appended ours.
pub const ELEMENT_MARKER: &str = "  # \"wasmbox.dev/*\" added by wasmbox node install";
/// First line of a file install created because there was none: uninstall deletes the file again
/// when nothing else is left in it.
pub const CREATED_MARKER: &str =
    "# Written by wasmbox node install (there was no file); wasmbox node uninstall deletes it.";

/// Why a config cannot be edited.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not valid TOML: {0}")]
    Toml(#[from] toml_edit::TomlError),
    #[error("`version = {0}` is not a containerd config version this installer knows (1, 2 or 3)")]
    UnknownVersion(String),
    #[error("handler {name:?}: {reason}")]
    InvalidHandler { name: String, reason: String },
    #[error(
        "runtime handler {handler:?} is already configured with runtime_type {runtime_type:?}; \
         choose another name with --handler"
    )]
    HandlerTaken {
        handler: String,
        runtime_type: String,
    },
    #[error("`{path}` is not a table but {found}; edit it by hand")]
    NotATable { path: String, found: String },
    #[error(
        "handler {handler:?} already has {key} = {existing}, not {wanted}; \
         change or remove it by hand (install only changes what it added)"
    )]
    Conflict {
        handler: String,
        key: String,
        existing: String,
        wanted: String,
    },
    #[error(
        "cannot upgrade this version-1 config to version 2: plugin ids {0:?} are unknown to this \
         installer; convert the file by hand (plugins.ID becomes plugins.\"TYPE.ID\", see \
         containerd's docs/PLUGINS.md) or with `containerd config migrate` (containerd 2.x)"
    )]
    UnknownV1Plugins(Vec<String>),
    #[error(
        "the template does not extend k3s's base template (no `{{{{ template \"base\" . }}}}` \
         line); add the runtime to it by hand"
    )]
    NoBaseTemplate,
    #[error(
        "the template has Go template actions after the base template line; add the runtime to \
         it by hand"
    )]
    TemplateActions,
    #[error(
        "there is no containerd config and containerd's version is unknown; \
         pass --containerd-version 1 or 2"
    )]
    UnknownContainerd,
    #[error("containerd {0}.x is not supported (1.x and 2.x are)")]
    UnsupportedContainerd(u32),
}

/// One runtime handler to configure: the RuntimeClass `handler` name and an optional wasmbox
/// config file passed to the shim as the `ConfigPath` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub config_path: Option<String>,
}

impl Handler {
    pub fn new(name: &str, config_path: Option<&str>) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidHandler {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        // A RuntimeClass handler must be a DNS label; CRI looks it up by that name.
        let label_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if name.is_empty() || name.len() > 63 {
            return Err(invalid("must be 1 to 63 characters"));
        }
        if !name.chars().all(label_char) || name.starts_with('-') || name.ends_with('-') {
            return Err(invalid(
                "must be a DNS label (lower-case letters, digits and '-', not at either end)",
            ));
        }
        if let Some(path) = config_path {
            if !path.starts_with('/') {
                return Err(invalid("the config path must be absolute"));
            }
        }
        Ok(Self {
            name: name.to_string(),
            config_path: config_path.map(str::to_string),
        })
    }

    /// `NAME` or `NAME:CONFIG_PATH`.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        match spec.split_once(':') {
            Some((name, path)) => Self::new(name, Some(path)),
            None => Self::new(spec, None),
        }
    }

    /// The default handler, `wasmbox`, without a config file.
    pub fn default_handler() -> Self {
        Self {
            name: DEFAULT_HANDLER.to_string(),
            config_path: None,
        }
    }
}

/// The result of an edit: the text before and after (`None`: no file) and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub before: Option<String>,
    pub after: Option<String>,
    /// One line per thing done, for the operator.
    pub notes: Vec<String>,
}

impl Change {
    /// Whether the file changes at all (an idempotent second run returns false).
    pub fn changed(&self) -> bool {
        self.before != self.after
    }

    /// A unified diff from `before` to `after`, with `path` in the headers.
    pub fn diff(&self, path: &str) -> String {
        let before = self.before.as_deref().unwrap_or("");
        let after = self.after.as_deref().unwrap_or("");
        let old = if self.before.is_some() {
            path.to_string()
        } else {
            "/dev/null".to_string()
        };
        let new = if self.after.is_some() {
            path.to_string()
        } else {
            "/dev/null".to_string()
        };
        similar::TextDiff::from_lines(before, after)
            .unified_diff()
            .context_radius(3)
            .header(&old, &new)
            .to_string()
    }
}
