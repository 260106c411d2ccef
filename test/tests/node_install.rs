//! `wasmbox node install` / `uninstall` against the containerd under test: each sample config of
//! `crates/wasmbox-node/tests/data/` is installed into a private root (`--root TMP`), then loaded
//! by this containerd (`containerd --config TMP/etc/containerd/config.toml config dump`), which
//! must show the handler with its runtime_type, pod_annotations and ConfigPath; after uninstall
//! the handler is gone and the file is as it was.

use std::fs;
use std::path::{Path, PathBuf};

use wasmbox_integration::settings::{self, WASMBOX_SHIM_BINARY};
use wasmbox_integration::{require_integration, tools};

const CONFIG: &str = "/etc/containerd/config.toml";

fn sample(name: &str) -> String {
    let path = settings::workspace_root()
        .join("crates/wasmbox-node/tests/data")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn containerd_major() -> u32 {
    tools::containerd_version()
        .expect("the version of the containerd under test")
        .0
}

/// A node filesystem in a temp dir, with `config` (if any) at /etc/containerd/config.toml.
struct Node {
    root: tempfile::TempDir,
}

impl Node {
    fn new(config: Option<&str>) -> Self {
        let root = tempfile::Builder::new()
            .prefix("wbx-node-")
            .tempdir()
            .expect("temp dir");
        let node = Node { root };
        if let Some(text) = config {
            let path = node.path(CONFIG);
            fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            fs::write(&path, text).expect("writing the config");
        }
        node
    }

    fn path(&self, on_node: &str) -> PathBuf {
        self.root.path().join(on_node.trim_start_matches('/'))
    }

    fn root_arg(&self) -> String {
        self.root.path().to_string_lossy().into_owned()
    }

    /// `wasmbox node <command> --root ROOT --no-restart [extra...]`; panics unless it succeeds.
    fn wasmbox(&self, command: &str, extra: &[&str]) -> String {
        let shim = settings::shim_dir().join(WASMBOX_SHIM_BINARY);
        let shim = shim.to_string_lossy().into_owned();
        let root = self.root_arg();
        let mut args = vec!["node", command, "--root", &root, "--no-restart"];
        if command == "install" {
            args.extend(["--binary", &shim]);
        }
        args.extend_from_slice(extra);
        tools::run_ok(&tools::wasmbox_cli(), &args)
            .unwrap_or_else(|e| panic!("wasmbox {}: {e:#}", args.join(" ")))
    }

    fn config(&self, on_node: &str) -> Option<String> {
        fs::read_to_string(self.path(on_node)).ok()
    }

    /// What the containerd under test makes of the node's config file `on_node`.
    fn dump(&self, on_node: &str) -> String {
        dump_file(&self.path(on_node))
    }
}

fn dump_file(path: &Path) -> String {
    let containerd = settings::containerd_dir().join("containerd");
    let config = path.to_string_lossy().into_owned();
    let out = tools::run(&containerd, &["--config", &config, "config", "dump"])
        .expect("running containerd config dump");
    assert!(
        out.status.success(),
        "containerd config dump of {config} failed: {}\n{}",
        out.stderr_text(),
        fs::read_to_string(path).unwrap_or_default()
    );
    // containerd 2.x writes 'single-quoted' strings; one spelling for the checks.
    out.stdout_text().replace('\'', "\"")
}

/// The lines of `handler`'s table (and its options) in a config dump, if it has one.
fn handler_section(dump: &str, handler: &str) -> Option<String> {
    let header = |line: &str| {
        let line = line.trim();
        line.starts_with('[') && line.ends_with(&format!(".containerd.runtimes.{handler}]"))
    };
    let options = format!(".containerd.runtimes.{handler}.options]");
    let mut lines = dump.lines().skip_while(|l| !header(l));
    let first = lines.next()?;
    let rest = lines.take_while(|l| {
        let l = l.trim();
        !l.starts_with('[') || l.ends_with(&options)
    });
    Some(
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn assert_handler(dump: &str, handler: &str, config_path: Option<&str>) {
    let section = handler_section(dump, handler)
        .unwrap_or_else(|| panic!("no runtime handler {handler} in the dump:\n{dump}"));
    let has = |line: &str| section.lines().any(|l| l.trim() == line);
    assert!(
        has("runtime_type = \"io.containerd.wasmbox.v1\""),
        "{section}"
    );
    assert!(has("pod_annotations = [\"wasmbox.dev/*\"]"), "{section}");
    match config_path {
        Some(p) => assert!(has(&format!("ConfigPath = \"{p}\"")), "{section}"),
        None => assert!(!section.contains("ConfigPath"), "{section}"),
    }
    // Under the CRI plugin's runtimes of the containerd under test.
    let plugin = if containerd_major() >= 2 {
        "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes."
    } else {
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes."
    };
    assert!(section.trim_start().starts_with(plugin), "{section}");
}

/// Install into a node with `config`, check the dump, uninstall, check again.
fn round_trip(config: &str, extra: &[&str], expect: &[(&str, Option<&str>)], restores: bool) {
    let node = Node::new(Some(config));
    let out = node.wasmbox("install", extra);
    let dump = node.dump(CONFIG);
    for (handler, path) in expect {
        assert_handler(&dump, handler, *path);
    }
    assert!(
        node.path("/usr/local/bin")
            .join(WASMBOX_SHIM_BINARY)
            .is_file(),
        "{out}"
    );
    // Idempotent.
    let installed = node.config(CONFIG);
    let again = node.wasmbox("install", extra);
    assert!(again.contains("nothing to change"), "{again}");
    assert_eq!(node.config(CONFIG), installed);

    node.wasmbox("uninstall", &[]);
    let dump = node.dump(CONFIG);
    for (handler, _) in expect {
        assert!(handler_section(&dump, handler).is_none(), "{dump}");
    }
    assert!(!node
        .path("/usr/local/bin")
        .join(WASMBOX_SHIM_BINARY)
        .exists());
    if restores {
        assert_eq!(node.config(CONFIG).as_deref(), Some(config));
    }
}

#[test]
fn node_install_containerd_1_6_default_config() {
    require_integration!();
    round_trip(
        &sample("containerd-1.6-default.toml"),
        &[],
        &[("wasmbox", None)],
        true,
    );
}

#[test]
fn node_install_containerd_1_7_default_config() {
    require_integration!();
    round_trip(
        &sample("containerd-1.7-default.toml"),
        &[],
        &[("wasmbox", None)],
        true,
    );
}

#[test]
fn node_install_containerd_2_default_config() {
    require_integration!();
    if containerd_major() < 2 {
        wasmbox_integration::settings::skip(&format!("containerd 1.x does not read version-3 configs"));
        return;
    }
    round_trip(
        &sample("containerd-2.1-default.toml"),
        &[],
        &[("wasmbox", None)],
        true,
    );
}

#[test]
fn node_install_version_1_config() {
    require_integration!();
    let original = sample("containerd-v1.toml");
    // Upgraded to version 2: the handler is read, and so is everything else (containerd 2.x
    // reads none of a version-1 file's CRI settings).
    round_trip(&original, &[], &[("wasmbox", None)], false);
    let node = Node::new(Some(&original));
    node.wasmbox("install", &[]);
    let dump = node.dump(CONFIG);
    let pause = if containerd_major() >= 2 {
        "sandbox = \"registry.k8s.io/pause:3.6\"" // moved to cri.v1.images' pinned_images
    } else {
        "sandbox_image = \"registry.k8s.io/pause:3.6\""
    };
    for setting in [
        pause,
        "SystemdCgroup = true",
        "max_container_log_line_size = 16384",
    ] {
        assert!(
            dump.lines().any(|l| l.trim() == setting),
            "{setting}: {dump}"
        );
    }
}

#[test]
fn node_install_commented_config_with_nvidia_and_config_paths() {
    require_integration!();
    let original = sample("nvidia-commented.toml");
    round_trip(
        &original,
        &[
            "--handler",
            "wasmbox",
            "--config-path",
            "/etc/wasmbox/default.toml",
            "--handler",
            "wasmbox-small:/etc/wasmbox/small.toml",
        ],
        &[
            ("wasmbox", Some("/etc/wasmbox/default.toml")),
            ("wasmbox-small", Some("/etc/wasmbox/small.toml")),
        ],
        true,
    );
    let node = Node::new(Some(&original));
    node.wasmbox("install", &[]);
    let installed = node.config(CONFIG).unwrap_or_default();
    for comment in original.lines().filter(|l| l.contains('#')) {
        assert!(installed.contains(comment), "lost {comment:?}");
    }
    let dump = node.dump(CONFIG);
    assert!(dump.contains("BinaryName = \"/usr/bin/nvidia-container-runtime\""));
}

#[test]
fn node_install_without_a_config() {
    require_integration!();
    let major = containerd_major().to_string();
    let node = Node::new(None);
    node.wasmbox("install", &["--containerd-version", &major]);
    assert_handler(&node.dump(CONFIG), "wasmbox", None);
    node.wasmbox("uninstall", &[]);
    assert!(
        node.config(CONFIG).is_none(),
        "uninstall deletes the config it wrote"
    );
}

/// `--dry-run --no-restart` changes nothing and says it would not restart containerd.
#[test]
fn node_install_dry_run_with_no_restart_says_it_would_not_restart() {
    require_integration!();
    let major = containerd_major().to_string();
    let node = Node::new(None);
    let said = node.wasmbox("install", &["--containerd-version", &major, "--dry-run"]);
    assert!(said.contains("restart: would not restart (--no-restart)"), "{said}");
    assert!(!said.contains("would restart"), "{said}");
    assert!(node.config(CONFIG).is_none(), "a dry run wrote the config");
}

#[test]
fn node_install_k3s_templates() {
    require_integration!();
    let dir = "/var/lib/rancher/k3s/agent/etc/containerd";
    let mut cases = vec![(
        "k3s-config.toml.tmpl",
        "config.toml.tmpl",
        "containerd-1.7-default.toml",
    )];
    if containerd_major() >= 2 {
        cases.push((
            "k3s-config-v3.toml.tmpl",
            "config-v3.toml.tmpl",
            "containerd-2.1-default.toml",
        ));
    }
    for (template, name, base) in cases {
        let original = sample(template);
        let node = Node::new(None);
        let path = format!("{dir}/{name}");
        fs::create_dir_all(node.path(dir)).expect("mkdir");
        fs::write(node.path(&path), &original).expect("writing the template");
        // --config names k3s's generated config; the template next to it is what changes.
        let generated = format!("{dir}/config.toml");
        node.wasmbox("install", &["--config", &generated]);
        let installed = node.config(&path).unwrap_or_default();
        assert!(
            installed.starts_with("{{ template \"base\" . }}\n"),
            "{installed}"
        );
        assert!(
            node.config(&generated).is_none(),
            "k3s writes config.toml itself"
        );

        // Render it as k3s would (its base config where the base template line is) and load it.
        let rendered = installed.replacen("{{ template \"base\" . }}", &sample(base), 1);
        let rendered_path = node.path("/rendered.toml");
        fs::write(&rendered_path, rendered).expect("writing the rendered config");
        assert_handler(&dump_file(&rendered_path), "wasmbox", None);

        node.wasmbox("uninstall", &["--config", &generated]);
        assert_eq!(node.config(&path).as_deref(), Some(original.as_str()));
    }
}

/// The node labels follow what install and uninstall do: one per handler in the config, the
/// stale ones of a handler the config no longer has removed, and before an uninstall the
/// labels of what goes (deploy/daemonset.yaml sends these patches).
#[test]
fn node_labels_follow_the_installed_handlers() {
    require_integration!();
    let major = containerd_major().to_string();
    let node = Node::new(None);
    node.wasmbox(
        "install",
        &[
            "--containerd-version",
            &major,
            "--handler",
            "wasmbox",
            "--handler",
            "wasmbox-strict:/etc/wasmbox/strict.toml",
        ],
    );
    let object = node.path("/node.json");
    let stale =
        r#"{"metadata":{"labels":{"kubernetes.io/os":"linux","handler.wasmbox.dev/old":"true"}}}"#;
    fs::write(&object, stale).unwrap();
    let object = object.to_string_lossy().into_owned();
    let patch = |extra: &[&str]| -> serde_json::Value {
        let out = node.wasmbox("labels", extra);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    assert_eq!(
        patch(&["--node", &object]),
        serde_json::json!({"metadata": {"labels": {
            "handler.wasmbox.dev/old": null,
            "handler.wasmbox.dev/wasmbox": "true",
            "handler.wasmbox.dev/wasmbox-strict": "true",
            "wasmbox.dev/runtime": "installed",
        }}})
    );
    // Before `uninstall --handler wasmbox-strict`, then before removing everything.
    assert_eq!(
        patch(&["--uninstalling", "--handler", "wasmbox-strict"]),
        serde_json::json!({"metadata": {"labels": {"handler.wasmbox.dev/wasmbox-strict": null}}})
    );
    node.wasmbox("uninstall", &["--handler", "wasmbox-strict"]);
    assert_eq!(
        patch(&["--uninstalling"]),
        serde_json::json!({"metadata": {"labels": {"handler.wasmbox.dev/wasmbox": null, "wasmbox.dev/runtime": null}}})
    );
    node.wasmbox("uninstall", &[]);
    assert_eq!(patch(&[]), serde_json::json!({"metadata": {"labels": {}}}));
}
