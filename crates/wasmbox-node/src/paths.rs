//! Which file to edit, and which containerd reads it.

use std::path::{Component, Path, PathBuf};

use crate::config::ConfigVersion;
use crate::Error;

/// Who runs the containerd that reads the config, which tells which service to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Containerd,
    K3s,
    Rke2,
}

impl Flavor {
    /// The systemd units that run this containerd, the usual one first (k3s and rke2 run it
    /// inside their server or agent service).
    pub fn units(self) -> &'static [&'static str] {
        match self {
            Flavor::Containerd => &["containerd"],
            Flavor::K3s => &["k3s", "k3s-agent"],
            Flavor::Rke2 => &["rke2-server", "rke2-agent"],
        }
    }

    /// Where this flavour's generated containerd config is, when the default is not there.
    pub fn generated_config(self) -> Option<&'static str> {
        match self {
            Flavor::Containerd => None,
            Flavor::K3s => Some("/var/lib/rancher/k3s/agent/etc/containerd/config.toml"),
            Flavor::Rke2 => Some("/var/lib/rancher/rke2/agent/etc/containerd/config.toml"),
        }
    }
}

/// What `--config` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A containerd config file, edited as it is.
    Config(PathBuf),
    /// A k3s/rke2 template given by name: version 3 for `config-v3.toml.tmpl`, else 2.
    Template {
        path: PathBuf,
        version: u32,
        flavor: Flavor,
    },
    /// The config k3s or rke2 generates (in `dir`): the runtime goes into a template next to it
    /// ([`choose_template`]).
    Generated { dir: PathBuf, flavor: Flavor },
}

fn flavor_of(dir: &Path) -> Option<Flavor> {
    for (flavor, name) in [(Flavor::K3s, "k3s"), (Flavor::Rke2, "rke2")] {
        let generated = Path::new("/var/lib/rancher")
            .join(name)
            .join("agent/etc/containerd");
        if dir == generated {
            return Some(flavor);
        }
    }
    None
}

/// What kind of file `config` (as seen on the node, not under `--root`) is.
pub fn classify(config: &Path) -> Target {
    let dir = config.parent().unwrap_or(Path::new("/"));
    let name = config
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let flavor = flavor_of(dir);
    if name.ends_with(".tmpl") {
        let version = if name == "config-v3.toml.tmpl" { 3 } else { 2 };
        return Target::Template {
            path: config.to_path_buf(),
            version,
            flavor: flavor.unwrap_or(Flavor::K3s),
        };
    }
    match flavor {
        Some(flavor) if name == "config.toml" => Target::Generated {
            dir: dir.to_path_buf(),
            flavor,
        },
        _ => Target::Config(config.to_path_buf()),
    }
}

/// The template to edit in a k3s/rke2 containerd directory `dir`, and its config version: the one
/// k3s uses (`config-v3.toml.tmpl` first, as k3s looks for it first), else a new one of the
/// version k3s generates now (`generated`: the text of its `config.toml`).
pub fn choose_template(
    dir: &Path,
    v3_exists: bool,
    v2_exists: bool,
    generated: Option<&str>,
) -> Result<(PathBuf, u32), Error> {
    if v3_exists {
        return Ok((dir.join("config-v3.toml.tmpl"), 3));
    }
    if v2_exists {
        return Ok((dir.join("config.toml.tmpl"), 2));
    }
    // A k3s that has not generated its config yet: k3s releases with containerd 2 prefer the v3
    // template and older ones know only config.toml.tmpl; without the generated file there is no
    // telling, and containerd 2 reads a version-2 template too.
    let version = match generated.map(crate::config_version).transpose()? {
        Some(ConfigVersion::V3) => 3,
        _ => 2,
    };
    let name = if version == 3 {
        "config-v3.toml.tmpl"
    } else {
        "config.toml.tmpl"
    };
    Ok((dir.join(name), version))
}

/// `path` (absolute on the node) inside the node's filesystem mounted at `root`.
pub fn under_root(root: &Path, path: &Path) -> PathBuf {
    let relative: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    root.join(relative)
}

/// containerd's major version from the output of `containerd --version`, e.g.
/// `containerd github.com/containerd/containerd/v2 2.1.9+unknown` or
/// `containerd containerd.io 1.7.27 05044ec0a9a7...`.
pub fn containerd_major(version_output: &str) -> Option<u32> {
    let line = version_output
        .lines()
        .find(|l| l.starts_with("containerd "))?;
    let version = line.split_whitespace().nth(2)?;
    let version = version.strip_prefix('v').unwrap_or(version);
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    if !version[major.len()..].starts_with('.') {
        return None;
    }
    major.parse().ok()
}
