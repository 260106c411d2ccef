//! `wasmbox node install` / `wasmbox node uninstall`: the shim binary and containerd's config on a
//! node. The config edits are `wasmbox-node`'s; this is the file system, backups and restarting
//! containerd.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args};
use wasmbox_node::labels::{configured_handlers, handler_label, label_changes, RUNTIME_LABEL};
use wasmbox_node::{
    choose_template, classify, containerd_major, install_config, install_template, under_root,
    uninstall_config, uninstall_template, Change, Flavor, Handler, Target, DEFAULT_HANDLER,
    SHIM_BINARY,
};

const DEFAULT_CONFIG: &str = "/etc/containerd/config.toml";

/// What install and uninstall share.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// containerd's config file, as the node sees it. k3s/rke2: their generated
    /// /var/lib/rancher/{k3s,rke2}/agent/etc/containerd/config.toml (the runtime then goes into
    /// the config.toml.tmpl or config-v3.toml.tmpl next to it), or the template itself.
    /// Default: /etc/containerd/config.toml, else k3s's or rke2's when only that one exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The node's filesystem is mounted here (a DaemonSet mounts the host's / at /host): every
    /// other path is inside it, and systemctl runs in the host's namespaces (nsenter -t 1).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The shim goes to DIR/bin, which must be on containerd's PATH.
    #[arg(long, value_name = "DIR", default_value = "/usr/local")]
    prefix: PathBuf,
    /// A runtime handler (RuntimeClass `handler`), with the wasmbox config file the shim gets as
    /// its ConfigPath option; repeat for more. Default: wasmbox. Uninstall: only these.
    #[arg(long = "handler", value_name = "NAME[:CONFIG_PATH]")]
    handlers: Vec<String>,
    /// The ConfigPath of the --handler before it (of `wasmbox` when there is none before it).
    #[arg(long = "config-path", value_name = "FILE")]
    config_paths: Vec<String>,
    /// Do not restart containerd (or k3s/rke2); say what to restart instead.
    #[arg(long)]
    no_restart: bool,
    /// Change nothing: print the config's diff and what would be done.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Installs the shim to PREFIX/bin and adds a runtime handler per --handler to containerd's config
(runtime_type io.containerd.wasmbox.v1, pod_annotations [\"wasmbox.dev/*\"], options.ConfigPath),
editing the TOML in place (comments and layout kept) after a backup (CONFIG.wasmbox-backup.TIME).
Config version 2 and 3 are edited as they are; version 1 (or no version) is upgraded to
version 2; with no config, a minimal one for the node's containerd is written. Running it again
changes nothing. Then containerd is restarted through systemd when the config changed.")]
pub struct InstallArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The shim to install. Default: containerd-shim-wasmbox-v1 next to this program.
    #[arg(long, value_name = "FILE")]
    binary: Option<PathBuf>,
    /// containerd's major version (1 or 2), when there is no config and `containerd --version`
    /// cannot be run.
    #[arg(long, value_name = "1|2")]
    containerd_version: Option<u32>,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Removes from containerd's config exactly what install added (the tables it created, the keys it
added to tables it did not create), after a backup, deletes a config install had created when
nothing else is left in it, removes PREFIX/bin/containerd-shim-wasmbox-v1 and restarts
containerd. A version-1 config install upgraded stays version 2.")]
pub struct UninstallArgs {
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Prints the JSON merge patch that makes the node's labels say which wasmbox handlers its
containerd has: handler.wasmbox.dev/NAME=true for every runtime in the config whose type is
io.containerd.wasmbox.v1, wasmbox.dev/runtime=installed while there is any, and the removal of
such labels for handlers the config no longer has (given the node's labels with --node).
A RuntimeClass selects nodes with its handler's label. deploy/daemonset.yaml sends the patch.")]
pub struct LabelsArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The Node object as the API server returns it, in JSON (- for stdin): only the labels
    /// that change are in the patch, and stale handler labels are removed.
    #[arg(long = "node", value_name = "FILE")]
    node_object: Option<PathBuf>,
    /// The labels for after `wasmbox node uninstall` with the same flags (its --handler ones
    /// go, or every handler without --handler): send them before uninstalling, so no pod is
    /// scheduled to a handler that is going away.
    #[arg(long)]
    uninstalling: bool,
}

/// `wasmbox node labels`: see [`LabelsArgs`].
pub fn labels(args: &LabelsArgs, matches: Option<&ArgMatches>) -> Result<()> {
    let node = Node::new(&args.node);
    let mut present = Vec::new();
    // The files install edits: the config, or k3s's and rke2's templates.
    for edit in node.uninstall_edits() {
        if let Some(text) = node.read(&edit.path)? {
            let found = configured_handlers(&text)
                .with_context(|| format!("reading {}", edit.path.display()))?;
            present.extend(found);
        }
    }
    present.sort();
    present.dedup();
    let mut current = match &args.node_object {
        Some(path) => node_labels(path)?,
        None => Default::default(),
    };
    if args.uninstalling {
        // What goes is labelled now, whether or not the Node was given.
        for h in &present {
            current
                .entry(handler_label(h))
                .or_insert_with(|| "true".into());
        }
        if !present.is_empty() {
            current
                .entry(RUNTIME_LABEL.into())
                .or_insert_with(|| "installed".into());
        }
        let going: Vec<String> = handlers(&args.node, matches)?
            .into_iter()
            .map(|h| h.name)
            .collect();
        if going.is_empty() {
            present.clear();
        } else {
            present.retain(|h| !going.contains(h));
        }
    }
    let changes: serde_json::Map<String, serde_json::Value> = label_changes(&present, &current)
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.map_or(serde_json::Value::Null, serde_json::Value::String),
            )
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "metadata": { "labels": changes } })
    );
    Ok(())
}

/// The labels of a Node object (JSON, `-` for stdin).
fn node_labels(path: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the Node from stdin")?
    } else {
        fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let object: serde_json::Value =
        serde_json::from_str(&text).context("the Node object is not JSON")?;
    let labels = object
        .pointer("/metadata/labels")
        .and_then(|l| l.as_object());
    Ok(labels
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect())
}

/// The handlers of the command line: each --config-path belongs to the --handler before it.
/// `matches` are the install/uninstall subcommand's, for the order of the flags.
pub fn handlers(args: &NodeArgs, matches: Option<&ArgMatches>) -> Result<Vec<Handler>> {
    let positions = |id: &str| -> Vec<usize> {
        matches
            .and_then(|m| m.indices_of(id))
            .map(|i| i.collect())
            .unwrap_or_default()
    };
    let mut flags: Vec<(usize, bool, &str)> = Vec::new();
    for (index, spec) in positions("handlers").into_iter().zip(&args.handlers) {
        flags.push((index, true, spec));
    }
    for (index, path) in positions("config_paths")
        .into_iter()
        .zip(&args.config_paths)
    {
        flags.push((index, false, path));
    }
    flags.sort_by_key(|(index, _, _)| *index);

    let mut handlers: Vec<Handler> = Vec::new();
    for (_, is_handler, value) in flags {
        if is_handler {
            handlers.push(Handler::parse(value)?);
            continue;
        }
        if handlers.is_empty() {
            handlers.push(Handler::default_handler());
        }
        let last = handlers.last_mut().context("a handler precedes")?;
        if let Some(earlier) = &last.config_path {
            bail!(
                "handler {:?} has two config paths ({earlier} and {value})",
                last.name
            );
        }
        *last = Handler::new(&last.name, Some(value))?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in &handlers {
        if !seen.insert(h.name.as_str()) {
            bail!("handler {:?} is given twice", h.name);
        }
    }
    Ok(handlers)
}

/// A file to edit: where the node has it, and what kind of file it is.
struct Edit {
    path: PathBuf,
    template_version: Option<u32>,
}

struct Node<'a> {
    args: &'a NodeArgs,
    flavor: Flavor,
    /// `--config`'s file or directory, resolved (defaults, k3s) and as the node sees it.
    target: Target,
}

impl<'a> Node<'a> {
    fn new(args: &'a NodeArgs) -> Self {
        let config = match &args.config {
            Some(c) => c.clone(),
            None => default_config(&args.root),
        };
        let target = classify(&config);
        let flavor = match &target {
            Target::Config(_) => Flavor::Containerd,
            Target::Template { flavor, .. } | Target::Generated { flavor, .. } => *flavor,
        };
        Node {
            args,
            flavor,
            target,
        }
    }

    fn host(&self, path: &Path) -> PathBuf {
        under_root(&self.args.root, path)
    }

    fn read(&self, path: &Path) -> Result<Option<String>> {
        let host = self.host(path);
        match fs::symlink_metadata(&host) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", host.display())),
            Ok(m) if m.file_type().is_symlink() => bail!(
                "{} is a symbolic link: pass its target with --config",
                host.display()
            ),
            Ok(_) => {}
        }
        fs::read_to_string(&host)
            .map(Some)
            .with_context(|| format!("reading {}", host.display()))
    }

    /// The files install edits.
    fn install_edits(&self) -> Result<Vec<Edit>> {
        Ok(match &self.target {
            Target::Config(path) => vec![Edit {
                path: path.clone(),
                template_version: None,
            }],
            Target::Template { path, version, .. } => vec![Edit {
                path: path.clone(),
                template_version: Some(*version),
            }],
            Target::Generated { dir, .. } => {
                let generated = self.read(&dir.join("config.toml"))?;
                let (path, version) = choose_template(
                    dir,
                    self.host(&dir.join("config-v3.toml.tmpl")).exists(),
                    self.host(&dir.join("config.toml.tmpl")).exists(),
                    generated.as_deref(),
                )?;
                vec![Edit {
                    path,
                    template_version: Some(version),
                }]
            }
        })
    }

    /// The files uninstall looks at: for k3s/rke2 both templates.
    fn uninstall_edits(&self) -> Vec<Edit> {
        match &self.target {
            Target::Generated { dir, .. } => [("config-v3.toml.tmpl", 3), ("config.toml.tmpl", 2)]
                .into_iter()
                .map(|(name, version)| Edit {
                    path: dir.join(name),
                    template_version: Some(version),
                })
                .collect(),
            _ => self.install_edits().unwrap_or_default(),
        }
    }

    /// Writes `change` to the node's `path` (after a backup), or prints its diff on --dry-run.
    /// Returns whether the file changes.
    fn apply(&self, path: &Path, change: &Change) -> Result<bool> {
        let shown = path.display();
        if !change.changed() {
            println!("config: {shown}: nothing to change");
            return Ok(false);
        }
        for note in &change.notes {
            println!("config: {shown}: {note}");
        }
        if self.args.dry_run {
            print!("{}", change.diff(&path.to_string_lossy()));
            return Ok(true);
        }
        let host = self.host(path);
        if change.before.is_some() {
            let backup = backup_path(&host);
            fs::copy(&host, &backup).with_context(|| {
                format!("backing up {} to {}", host.display(), backup.display())
            })?;
            println!("config: backup in {}", backup.display());
        }
        match &change.after {
            Some(text) => write_atomically(&host, text.as_bytes(), None)?,
            None => {
                fs::remove_file(&host).with_context(|| format!("removing {}", host.display()))?
            }
        }
        println!(
            "config: {} {shown}",
            if change.after.is_some() {
                "wrote"
            } else {
                "deleted"
            }
        );
        Ok(true)
    }

    fn shim_path(&self) -> PathBuf {
        self.host(&self.args.prefix.join("bin").join(SHIM_BINARY))
    }

    /// Restarts what runs containerd, or says what to restart.
    fn restart(&self) -> Result<()> {
        let units = self.flavor.units();
        let what = units.join(" or ");
        if self.args.no_restart {
            let verb = if self.args.dry_run { "would not restart" } else { "not restarting" };
            println!("restart: {verb} (--no-restart): restart {what} to load the change");
            return Ok(());
        }
        if self.args.dry_run {
            println!("restart: would restart {what}");
            return Ok(());
        }
        if !self.host(Path::new("/run/systemd/system")).is_dir() {
            println!(
                "restart: this node does not run systemd: restart {what} yourself to load the change"
            );
            return Ok(());
        }
        let active = units.iter().find(|unit| {
            self.systemctl(&["is-active", "--quiet", unit])
                .status()
                .is_ok_and(|s| s.success())
        });
        let Some(unit) = active else {
            println!("restart: {what} is not running under systemd: restart it yourself");
            return Ok(());
        };
        let status = self
            .systemctl(&["restart", unit])
            .status()
            .with_context(|| format!("running systemctl restart {unit}"))?;
        if !status.success() {
            bail!("systemctl restart {unit} failed ({status})");
        }
        println!("restart: restarted {unit}");
        Ok(())
    }

    /// `systemctl ARGS`, in the host's namespaces when the node's filesystem is elsewhere (from a
    /// DaemonSet's pod, which needs hostPID for PID 1 to be the host's).
    fn systemctl(&self, args: &[&str]) -> Command {
        if self.args.root == Path::new("/") {
            let mut cmd = Command::new("systemctl");
            cmd.args(args);
            cmd
        } else {
            let mut cmd = Command::new("nsenter");
            cmd.args(["-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "systemctl"])
                .args(args);
            cmd
        }
    }

    fn warn_missing_config_paths(&self, handlers: &[Handler]) {
        for h in handlers {
            if let Some(p) = &h.config_path {
                if !self.host(Path::new(p)).exists() {
                    println!(
                        "note: handler {:?}: {p} does not exist on the node (yet)",
                        h.name
                    );
                }
            }
        }
    }
}

/// /etc/containerd/config.toml, unless only k3s's or rke2's generated config is there.
fn default_config(root: &Path) -> PathBuf {
    let default = PathBuf::from(DEFAULT_CONFIG);
    if under_root(root, &default).exists() {
        return default;
    }
    for flavor in [Flavor::K3s, Flavor::Rke2] {
        if let Some(generated) = flavor.generated_config() {
            if under_root(root, Path::new(generated)).exists() {
                println!("config: no {DEFAULT_CONFIG}, using {generated}");
                return PathBuf::from(generated);
            }
        }
    }
    default
}

/// containerd's major version on the node: the flag, else `containerd --version`.
fn node_containerd_major(root: &Path, flag: Option<u32>) -> Option<u32> {
    if flag.is_some() {
        return flag;
    }
    for candidate in [
        "/usr/local/bin/containerd",
        "/usr/bin/containerd",
        "/usr/local/sbin/containerd",
        "/usr/sbin/containerd",
    ] {
        if !under_root(root, Path::new(candidate)).is_file() {
            continue;
        }
        // The node's binary needs the node's libraries: run it inside the node's filesystem.
        let output = if root == Path::new("/") {
            Command::new(candidate).arg("--version").output()
        } else {
            Command::new("chroot")
                .arg(root)
                .args([candidate, "--version"])
                .output()
        };
        if let Ok(out) = output {
            if let Some(major) = containerd_major(&String::from_utf8_lossy(&out.stdout)) {
                println!("config: containerd {major}.x on the node ({candidate})");
                return Some(major);
            }
        }
    }
    None
}

/// `FILE.wasmbox-backup.YYYYMMDDHHMMSS` (UTC), not overwriting an earlier one of the same second.
fn backup_path(file: &Path) -> PathBuf {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp: String = crate::epoch::rfc3339(seconds)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut path = file.with_file_name(format!("{name}.wasmbox-backup.{stamp}"));
    let mut n = 1;
    while path.exists() {
        path = file.with_file_name(format!("{name}.wasmbox-backup.{stamp}.{n}"));
        n += 1;
    }
    path
}

/// Replaces `path` through a temp file and a rename, so containerd never reads half a file and
/// running shims keep their (old) binary. Keeps the old file's mode unless `mode` is given.
fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no directory", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mode = match mode {
        Some(m) => m,
        None => fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.wasmbox-tmp-{}", std::process::id()));
    let result = (|| {
        let mut file =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn same_file_contents(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub fn install(args: &InstallArgs, matches: Option<&ArgMatches>) -> Result<()> {
    let mut handlers = handlers(&args.node, matches)?;
    if handlers.is_empty() {
        handlers.push(Handler::default_handler());
    }
    let node = Node::new(&args.node);

    // The config edits first: a config install cannot edit stops it before anything changed.
    node.warn_missing_config_paths(&handlers);
    let mut changes = Vec::new();
    for edit in node.install_edits()? {
        let existing = node.read(&edit.path)?;
        let change = match edit.template_version {
            Some(version) => install_template(existing.as_deref(), version, &handlers),
            None => {
                let major = match existing {
                    Some(_) => None,
                    None => node_containerd_major(&args.node.root, args.containerd_version),
                };
                install_config(existing.as_deref(), major, &handlers)
            }
        }
        .with_context(|| format!("editing {}", edit.path.display()))?;
        changes.push((edit.path, change));
    }

    // 1. The binary.
    let source = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name(SHIM_BINARY),
    };
    if !source.is_file() {
        bail!(
            "{} is missing: build it (make build) or pass --binary FILE",
            source.display()
        );
    }
    let dest = node.shim_path();
    if same_file_contents(&source, &dest) {
        println!("binary: {} is up to date", dest.display());
    } else if args.node.dry_run {
        println!(
            "binary: would copy {} to {}",
            source.display(),
            dest.display()
        );
    } else {
        let bytes = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        write_atomically(&dest, &bytes, Some(0o755))?;
        println!("binary: installed {}", dest.display());
    }

    // 2. The config.
    let mut changed = false;
    for (path, change) in &changes {
        changed |= node.apply(path, change)?;
    }

    // 3. containerd.
    if changed {
        node.restart()?;
    }
    let names: Vec<&str> = handlers.iter().map(|h| h.name.as_str()).collect();
    if names != [DEFAULT_HANDLER] {
        println!(
            "Kubernetes: one RuntimeClass per handler ({}), like deploy/runtimeclass.yaml",
            names.join(", ")
        );
    }
    Ok(())
}

pub fn uninstall(args: &UninstallArgs, matches: Option<&ArgMatches>) -> Result<()> {
    let only: Vec<String> = handlers(&args.node, matches)?
        .into_iter()
        .map(|h| h.name)
        .collect();
    let node = Node::new(&args.node);

    let mut changed = false;
    for edit in node.uninstall_edits() {
        let Some(existing) = node.read(&edit.path)? else {
            continue;
        };
        let change = match edit.template_version {
            Some(_) => uninstall_template(&existing, &only),
            None => uninstall_config(&existing, &only),
        }
        .with_context(|| format!("editing {}", edit.path.display()))?;
        changed |= node.apply(&edit.path, &change)?;
    }

    // Only when every handler goes: another handler may still use the binary.
    let dest = node.shim_path();
    if !only.is_empty() {
        println!(
            "binary: kept {} (only some handlers were removed)",
            dest.display()
        );
    } else if !dest.exists() {
        println!("binary: {} is not there", dest.display());
    } else if args.node.dry_run {
        println!("binary: would remove {}", dest.display());
    } else {
        fs::remove_file(&dest).with_context(|| format!("removing {}", dest.display()))?;
        println!("binary: removed {}", dest.display());
    }

    if changed {
        node.restart()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn parse(args: &[&str]) -> Result<Vec<Handler>> {
        let matches =
            T::command().try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))?;
        let t = T::from_arg_matches(&matches)?;
        handlers(&t.node, Some(&matches))
    }

    fn h(name: &str, path: Option<&str>) -> Handler {
        Handler::new(name, path).expect("valid handler")
    }

    #[test]
    fn config_paths_follow_their_handler() -> Result<()> {
        assert_eq!(parse(&[])?, vec![]);
        assert_eq!(
            parse(&["--config-path", "/a.toml"])?,
            vec![h("wasmbox", Some("/a.toml"))]
        );
        assert_eq!(
            parse(&[
                "--handler",
                "wasmbox",
                "--handler",
                "small",
                "--config-path",
                "/s.toml",
                "--handler",
                "big:/b.toml",
            ])?,
            vec![
                h("wasmbox", None),
                h("small", Some("/s.toml")),
                h("big", Some("/b.toml"))
            ]
        );
        assert!(parse(&["--handler", "x:/a.toml", "--config-path", "/b.toml"]).is_err());
        assert!(parse(&["--handler", "x", "--handler", "x"]).is_err());
        assert!(parse(&["--handler", "Bad"]).is_err());
        Ok(())
    }

    #[test]
    fn backups_do_not_overwrite_each_other() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("config.toml");
        let first = backup_path(&file);
        assert!(first.file_name().is_some_and(|n| n
            .to_string_lossy()
            .starts_with("config.toml.wasmbox-backup.20")));
        fs::write(&first, "x")?;
        assert_ne!(backup_path(&file), first);
        Ok(())
    }

    #[test]
    fn install_and_uninstall_under_a_root() -> Result<()> {
        let root = tempfile::tempdir()?;
        let shim = root.path().join("shim-build");
        fs::write(&shim, b"\x7fELF pretend")?;
        let config = root.path().join("etc/containerd/config.toml");
        fs::create_dir_all(config.parent().context("dir")?)?;
        let original = "version = 2\n# mine\n[plugins.\"io.containerd.grpc.v1.cri\"]\n";
        fs::write(&config, original)?;
        let root_arg = root.path().to_string_lossy().into_owned();
        let shim_arg = shim.to_string_lossy().into_owned();

        let run_install = || -> Result<()> {
            let args = [
                "install",
                "--root",
                &root_arg,
                "--binary",
                &shim_arg,
                "--no-restart",
            ];
            let matches = InstallCli::command().try_get_matches_from(args)?;
            let cli = InstallCli::from_arg_matches(&matches)?;
            install(&cli.args, Some(&matches))
        };
        run_install()?;
        let installed = fs::read_to_string(&config)?;
        assert!(installed.contains("runtime_type = \"io.containerd.wasmbox.v1\""));
        assert!(installed.starts_with(original));
        let installed_shim = root.path().join("usr/local/bin").join(SHIM_BINARY);
        assert_eq!(fs::read(&installed_shim)?, b"\x7fELF pretend");
        assert_eq!(
            fs::metadata(&installed_shim)?.permissions().mode() & 0o777,
            0o755
        );
        let backups = || -> Result<usize> {
            Ok(fs::read_dir(config.parent().context("dir")?)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains(".wasmbox-backup."))
                .count())
        };
        assert_eq!(backups()?, 1);
        // Idempotent: no new backup, same text.
        run_install()?;
        assert_eq!(backups()?, 1);
        assert_eq!(fs::read_to_string(&config)?, installed);

        let args = ["uninstall", "--root", &root_arg, "--no-restart"];
        let matches = UninstallCli::command().try_get_matches_from(args)?;
        let cli = UninstallCli::from_arg_matches(&matches)?;
        uninstall(&cli.args, Some(&matches))?;
        assert_eq!(fs::read_to_string(&config)?, original);
        assert!(!installed_shim.exists());
        Ok(())
    }

    #[derive(Debug, Parser)]
    struct InstallCli {
        #[command(flatten)]
        args: InstallArgs,
    }

    #[derive(Debug, Parser)]
    struct UninstallCli {
        #[command(flatten)]
        args: UninstallArgs,
    }
}
