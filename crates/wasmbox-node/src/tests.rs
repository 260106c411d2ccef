//! Unit tests on real containerd configs (tests/data/, see its README.md).

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item};

use crate::*;

const C16: &str = include_str!("../tests/data/containerd-1.6-default.toml");
const C17: &str = include_str!("../tests/data/containerd-1.7-default.toml");
const C21: &str = include_str!("../tests/data/containerd-2.1-default.toml");
const V1: &str = include_str!("../tests/data/containerd-v1.toml");
const NVIDIA: &str = include_str!("../tests/data/nvidia-commented.toml");
const K3S_V2: &str = include_str!("../tests/data/k3s-config.toml.tmpl");
const K3S_V3: &str = include_str!("../tests/data/k3s-config-v3.toml.tmpl");

const V2_RUNTIMES: &[&str] = &[
    "plugins",
    "io.containerd.grpc.v1.cri",
    "containerd",
    "runtimes",
];
const V3_RUNTIMES: &[&str] = &[
    "plugins",
    "io.containerd.cri.v1.runtime",
    "containerd",
    "runtimes",
];

fn wasmbox() -> Vec<Handler> {
    vec![Handler::default_handler()]
}

fn install(text: &str, handlers: &[Handler]) -> String {
    let change = install_config(Some(text), None, handlers).expect("install");
    change.after.expect("install keeps the file")
}

fn uninstall(text: &str) -> Option<String> {
    uninstall_config(text, &[]).expect("uninstall").after
}

/// The table at `path` + `name` of `text` (parsed again, as containerd would).
fn runtime(text: &str, path: &[&str], name: &str) -> Option<toml_edit::Table> {
    let doc: DocumentMut = text.parse().expect("the result parses");
    let mut item: &Item = doc.as_item();
    for key in path.iter().copied().chain([name]) {
        item = item.get(key)?;
    }
    item.as_table().cloned()
}

fn assert_handler(text: &str, path: &[&str], name: &str, config_path: Option<&str>) {
    let t = runtime(text, path, name)
        .unwrap_or_else(|| panic!("no {}.{name} in:\n{text}", path.join(".")));
    assert_eq!(
        t.get("runtime_type").and_then(Item::as_str),
        Some(RUNTIME_TYPE)
    );
    let annotations: Vec<&str> = t
        .get("pod_annotations")
        .and_then(Item::as_array)
        .expect("pod_annotations")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(annotations.contains(&POD_ANNOTATIONS), "{annotations:?}");
    let got = t
        .get("options")
        .and_then(|o| o.get("ConfigPath"))
        .and_then(Item::as_str);
    assert_eq!(got, config_path, "ConfigPath of {name}");
}

/// Every line of `before` is still in `after`, in order: install only added lines.
fn assert_only_added(before: &str, after: &str) {
    let diff = similar::TextDiff::from_lines(before, after);
    let removed: Vec<String> = diff
        .iter_all_changes()
        .filter(|c| c.tag() == similar::ChangeTag::Delete)
        .map(|c| c.to_string())
        .collect();
    assert!(removed.is_empty(), "install removed lines: {removed:?}");
}

fn check_roundtrip(original: &str, path: &[&str]) {
    let installed = install(original, &wasmbox());
    assert_handler(&installed, path, "wasmbox", None);
    assert_only_added(original, &installed);
    // Idempotent: a second run changes nothing.
    let again = install_config(Some(&installed), None, &wasmbox()).expect("second install");
    assert!(
        !again.changed(),
        "second install changed:\n{}",
        again.diff("config")
    );
    // Uninstall gives back the original, byte for byte.
    assert_eq!(uninstall(&installed).as_deref(), Some(original));
}

#[test]
fn containerd_16_default_config() {
    assert_eq!(config_version(C16).ok(), Some(ConfigVersion::V2));
    check_roundtrip(C16, V2_RUNTIMES);
}

#[test]
fn containerd_17_default_config() {
    assert_eq!(config_version(C17).ok(), Some(ConfigVersion::V2));
    check_roundtrip(C17, V2_RUNTIMES);
}

#[test]
fn containerd_21_default_config() {
    assert_eq!(config_version(C21).ok(), Some(ConfigVersion::V3));
    check_roundtrip(C21, V3_RUNTIMES);
}

#[test]
fn commented_config_with_another_runtime() {
    check_roundtrip(NVIDIA, V2_RUNTIMES);
    let installed = install(NVIDIA, &wasmbox());
    // The nvidia runtime is untouched and ours comes after it, indented like it.
    let nvidia = runtime(&installed, V2_RUNTIMES, "nvidia").expect("nvidia");
    assert_eq!(
        nvidia.get("runtime_type").and_then(Item::as_str),
        Some("io.containerd.runc.v2")
    );
    let ours = installed
        .find("        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n")
        .expect("indented header");
    assert!(installed
        .find("runtimes.nvidia.options]")
        .is_some_and(|n| n < ours));
    assert!(installed.contains(&format!("        # {TABLE_MARKER};")));
    assert!(installed.contains("\n          runtime_type = \"io.containerd.wasmbox.v1\"\n"));
}

#[test]
fn the_added_table_reads_as_expected() {
    let installed = install(
        NVIDIA,
        &[Handler::parse("wasmbox:/etc/wasmbox/a.toml").unwrap()],
    );
    let start = installed
        .find("        # wasmbox node install")
        .expect("marker");
    let end = installed[start..]
        .find("\n    [plugins")
        .expect("next table")
        + start;
    assert_eq!(
        &installed[start..end],
        "        # wasmbox node install added this table; `wasmbox node uninstall` removes it\n\
         \x20       [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n\
         \x20         runtime_type = \"io.containerd.wasmbox.v1\"\n\
         \x20         pod_annotations = [\"wasmbox.dev/*\"]\n\
         \n\
         \x20         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox.options]\n\
         \x20           ConfigPath = \"/etc/wasmbox/a.toml\"\n"
    );
}

#[test]
fn version_1_config_is_upgraded_to_version_2() {
    assert_eq!(config_version(V1).ok(), Some(ConfigVersion::V1));
    let change = install_config(Some(V1), None, &wasmbox()).expect("install");
    let installed = change.after.clone().expect("file");
    assert_eq!(config_version(&installed).ok(), Some(ConfigVersion::V2));
    assert_handler(&installed, V2_RUNTIMES, "wasmbox", None);
    assert!(change
        .notes
        .iter()
        .any(|n| n.contains("upgraded the config from version 1")));
    // The plugin tables and the disabled list are renamed; the settings and comments stay.
    for renamed in [
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]",
        "[plugins.\"io.containerd.monitor.v1.cgroups\"]",
        "[plugins.\"io.containerd.runtime.v1.linux\"]",
        "[plugins.\"io.containerd.gc.v1.scheduler\"]",
        "[plugins.\"io.containerd.service.v1.diff-service\"]",
        "disabled_plugins = [\"io.containerd.snapshotter.v1.aufs\"]",
        "# runc through the v2 shim, with the systemd cgroup driver",
        "          SystemdCgroup = true",
    ] {
        assert!(
            installed.contains(renamed),
            "{renamed} missing in:\n{installed}"
        );
    }
    assert!(!installed.contains("[plugins.cri"), "{installed}");
    // Idempotent, and uninstall leaves the upgraded (equivalent) version-2 file.
    let again = install_config(Some(&installed), None, &wasmbox()).expect("again");
    assert!(!again.changed());
    let removed = uninstall(&installed).expect("file stays");
    assert!(runtime(&removed, V2_RUNTIMES, "wasmbox").is_none());
    assert_eq!(config_version(&removed).ok(), Some(ConfigVersion::V2));
    let upgraded_only = install_config(Some(V1), None, &[]).expect("upgrade only");
    assert_eq!(upgraded_only.after.as_deref(), Some(removed.as_str()));
}

#[test]
fn version_1_with_an_unknown_plugin_is_refused() {
    let text = "[plugins.stargz]\n  root_path = \"/x\"\n[plugins.cri]\n";
    match install_config(Some(text), None, &wasmbox()) {
        Err(Error::UnknownV1Plugins(ids)) => assert_eq!(ids, vec!["stargz".to_string()]),
        other => panic!("{other:?}"),
    }
    // An explicit `version = 1` is upgraded the same way, keeping the key where it is.
    let text = "version = 1 # old\n[plugins.cri.containerd]\n  snapshotter = \"overlayfs\"\n";
    let installed = install(text, &wasmbox());
    assert!(installed.starts_with("version = 2 # old\n"), "{installed}");
    assert_handler(&installed, V2_RUNTIMES, "wasmbox", None);
}

#[test]
fn no_config_gets_a_minimal_one_for_the_containerd_version() {
    let v1x = install_config(None, Some(1), &wasmbox()).expect("1.x");
    let text = v1x.after.clone().expect("written");
    assert!(text.starts_with(CREATED_MARKER));
    assert_eq!(config_version(&text).ok(), Some(ConfigVersion::V2));
    assert_handler(&text, V2_RUNTIMES, "wasmbox", None);
    assert_eq!(
        uninstall(&text),
        None,
        "uninstall deletes the file it wrote"
    );

    let v2x = install_config(None, Some(2), &wasmbox()).expect("2.x");
    let text = v2x.after.clone().expect("written");
    assert_eq!(config_version(&text).ok(), Some(ConfigVersion::V3));
    assert_handler(&text, V3_RUNTIMES, "wasmbox", None);
    assert!(v2x
        .diff("/etc/containerd/config.toml")
        .starts_with("--- /dev/null\n+++ /etc/containerd/config.toml\n"));
    assert_eq!(uninstall(&text), None);

    assert!(matches!(
        install_config(None, None, &wasmbox()),
        Err(Error::UnknownContainerd)
    ));
    assert!(matches!(
        install_config(None, Some(3), &wasmbox()),
        Err(Error::UnsupportedContainerd(3))
    ));
}

#[test]
fn handlers_with_config_paths() {
    let handlers = vec![
        Handler::default_handler(),
        Handler::parse("wasmbox-small:/etc/wasmbox/small.toml").unwrap(),
        Handler::new("wasmbox-big", Some("/etc/wasmbox/big.toml")).unwrap(),
    ];
    for (text, path) in [(C17, V2_RUNTIMES), (C21, V3_RUNTIMES)] {
        let installed = install(text, &handlers);
        assert_handler(&installed, path, "wasmbox", None);
        assert_handler(
            &installed,
            path,
            "wasmbox-small",
            Some("/etc/wasmbox/small.toml"),
        );
        assert_handler(
            &installed,
            path,
            "wasmbox-big",
            Some("/etc/wasmbox/big.toml"),
        );
        assert_only_added(text, &installed);
        assert!(!install_config(Some(&installed), None, &handlers)
            .unwrap()
            .changed());
        assert_eq!(uninstall(&installed).as_deref(), Some(text));
        // Uninstalling one handler keeps the others.
        let one = uninstall_config(&installed, &["wasmbox-big".to_string()]).unwrap();
        let one = one.after.expect("file");
        assert!(runtime(&one, path, "wasmbox-big").is_none());
        assert_handler(&one, path, "wasmbox-small", Some("/etc/wasmbox/small.toml"));
    }
}

#[test]
fn a_later_install_converges_its_own_tables() {
    let first = install(
        C16,
        &[Handler::parse("wasmbox:/etc/wasmbox/a.toml").unwrap()],
    );
    let moved = install(
        &first,
        &[Handler::parse("wasmbox:/etc/wasmbox/b.toml").unwrap()],
    );
    assert_handler(&moved, V2_RUNTIMES, "wasmbox", Some("/etc/wasmbox/b.toml"));
    let plain = install(&moved, &wasmbox());
    assert_handler(&plain, V2_RUNTIMES, "wasmbox", None);
    assert_eq!(plain, install(C16, &wasmbox()));
    assert_eq!(uninstall(&plain).as_deref(), Some(C16));
}

#[test]
fn a_users_wasmbox_table_is_completed_and_restored() {
    // The README's old snippet, added by hand: install adds what is missing and marks it.
    let text = format!(
        "{C17}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n  \
         runtime_type = \"io.containerd.wasmbox.v1\"\n"
    );
    let installed = install(
        &text,
        &[Handler::parse("wasmbox:/etc/wasmbox/c.toml").unwrap()],
    );
    assert_handler(
        &installed,
        V2_RUNTIMES,
        "wasmbox",
        Some("/etc/wasmbox/c.toml"),
    );
    assert!(installed.contains(&format!(
        "pod_annotations = [\"wasmbox.dev/*\"]{KEY_MARKER}\n"
    )));
    assert!(!install_config(
        Some(&installed),
        None,
        &[Handler::parse("wasmbox:/etc/wasmbox/c.toml").unwrap()]
    )
    .unwrap()
    .changed());
    assert_eq!(uninstall(&installed).as_deref(), Some(text.as_str()));

    // pod_annotations the user set: ours is appended, and taken out again.
    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n  \
                runtime_type = \"io.containerd.wasmbox.v1\"\n  pod_annotations = [\"a.example/*\"] # mine\n";
    let installed = install(text, &wasmbox());
    assert!(
        installed.contains(&format!(
            "pod_annotations = [\"a.example/*\", \"wasmbox.dev/*\"] # mine{ELEMENT_MARKER}\n"
        )),
        "{installed}"
    );
    assert_eq!(uninstall(&installed).as_deref(), Some(text));

    // A ConfigPath the user set is not overwritten.
    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n  \
                runtime_type = \"io.containerd.wasmbox.v1\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox.options]\n    ConfigPath = \"/mine.toml\"\n";
    assert!(matches!(
        install_config(
            Some(text),
            None,
            &[Handler::parse("wasmbox:/other.toml").unwrap()]
        ),
        Err(Error::Conflict { .. })
    ));
}

#[test]
fn a_table_from_the_old_shell_installer_is_taken_over() {
    let text = format!(
        "{C16}\n# {LEGACY_TABLE_MARKER}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n  \
         runtime_type = \"io.containerd.wasmbox.v1\"\n"
    );
    let change = install_config(Some(&text), None, &wasmbox()).unwrap();
    let installed = change.after.clone().unwrap();
    assert!(change.notes.iter().any(|n| n.contains("took over")));
    assert!(!installed.contains(LEGACY_TABLE_MARKER));
    assert_handler(&installed, V2_RUNTIMES, "wasmbox", None);
    let removed = uninstall(&installed).unwrap();
    assert!(runtime(&removed, V2_RUNTIMES, "wasmbox").is_none());
}

#[test]
fn a_handler_name_used_by_another_runtime_is_refused() {
    match install_config(Some(NVIDIA), None, &[Handler::new("nvidia", None).unwrap()]) {
        Err(Error::HandlerTaken { runtime_type, .. }) => {
            assert_eq!(runtime_type, "io.containerd.runc.v2")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn uninstall_leaves_what_it_did_not_add() {
    let text =
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n  \
                runtime_type = \"io.containerd.wasmbox.v1\"\n";
    let change = uninstall_config(text, &[]).unwrap();
    assert!(!change.changed());
    assert!(change.notes.iter().any(|n| n.contains("did not add it")));
    // And a config without any of it is left as it is.
    assert!(!uninstall_config(C21, &[]).unwrap().changed());
}

#[test]
fn cri_switched_off_is_pointed_out() {
    let text = "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n";
    let change = install_config(Some(text), None, &wasmbox()).unwrap();
    assert!(change.notes.iter().any(|n| n.contains("switches CRI off")));
}

#[test]
fn dry_run_diff_shows_the_added_lines() {
    let change = install_config(Some(C21), None, &wasmbox()).unwrap();
    let diff = change.diff("/etc/containerd/config.toml");
    assert!(
        diff.starts_with("--- /etc/containerd/config.toml\n+++ /etc/containerd/config.toml\n@@ ")
    );
    assert!(
        diff.contains(
            "\n+        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.wasmbox]\n"
        ),
        "{diff}"
    );
    assert!(
        diff.lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count()
            == 0
    );
}

#[test]
fn k3s_templates() {
    for (text, version, path) in [(K3S_V2, 2, V2_RUNTIMES), (K3S_V3, 3, V3_RUNTIMES)] {
        let change = install_template(Some(text), version, &wasmbox()).expect("install");
        let installed = change.after.clone().expect("file");
        assert!(
            installed.starts_with("{{ template \"base\" . }}\n"),
            "{installed}"
        );
        let tail = installed.split_once('\n').unwrap().1;
        assert_handler(tail, path, "wasmbox", None);
        assert_only_added(text, &installed);
        assert!(!install_template(Some(&installed), version, &wasmbox())
            .unwrap()
            .changed());
        let removed = uninstall_template(&installed, &[]).unwrap();
        assert_eq!(removed.after.as_deref(), Some(text));
    }
    // The hand-added runtimes keep their tables.
    let installed = install_template(Some(K3S_V3), 3, &wasmbox())
        .unwrap()
        .after
        .unwrap();
    assert!(installed
        .contains("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun.options]"));
}

#[test]
fn a_new_k3s_template_extends_the_base_one_and_goes_away_again() {
    let change = install_template(None, 3, &wasmbox()).unwrap();
    let text = change.after.clone().unwrap();
    assert_eq!(
        text,
        format!(
            "{CREATED_MARKER}\n{{{{ template \"base\" . }}}}\n\n\
             # {TABLE_MARKER}; `wasmbox node uninstall` removes it\n\
             [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.wasmbox]\n  \
             runtime_type = \"io.containerd.wasmbox.v1\"\n  pod_annotations = [\"wasmbox.dev/*\"]\n"
        )
    );
    assert_eq!(uninstall_template(&text, &[]).unwrap().after, None);
}

#[test]
fn templates_install_cannot_edit() {
    assert!(matches!(
        install_template(Some("version = 2\n"), 2, &wasmbox()),
        Err(Error::NoBaseTemplate)
    ));
    assert!(matches!(
        install_template(
            Some("{{ template \"base\" . }}\n{{ if .NodeConfig }}x{{ end }}\n"),
            2,
            &wasmbox()
        ),
        Err(Error::TemplateActions)
    ));
    // Other spellings of the base line are fine.
    let text = "{{- template \"base\" . -}}\n";
    let installed = install_template(Some(text), 2, &wasmbox())
        .unwrap()
        .after
        .unwrap();
    assert!(installed.starts_with(text));
}

#[test]
fn containerd_versions() {
    for (out, major) in [
        (
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n",
            Some(1),
        ),
        (
            "containerd github.com/containerd/containerd/v2 2.1.9+unknown \n",
            Some(2),
        ),
        (
            "containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da\n",
            Some(1),
        ),
        (
            "containerd github.com/containerd/containerd v1.7.13 7c3aca7a\n",
            Some(1),
        ),
        ("something else\n", None),
        ("containerd x\n", None),
    ] {
        assert_eq!(containerd_major(out), major, "{out}");
    }
}

#[test]
fn which_file_and_which_service() {
    assert_eq!(
        classify(Path::new("/etc/containerd/config.toml")),
        Target::Config(PathBuf::from("/etc/containerd/config.toml"))
    );
    assert_eq!(
        classify(Path::new(
            "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
        )),
        Target::Generated {
            dir: PathBuf::from("/var/lib/rancher/k3s/agent/etc/containerd"),
            flavor: Flavor::K3s
        }
    );
    assert_eq!(
        classify(Path::new(
            "/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl"
        )),
        Target::Template {
            path: PathBuf::from("/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl"),
            version: 3,
            flavor: Flavor::Rke2
        }
    );
    assert_eq!(Flavor::Rke2.units(), &["rke2-server", "rke2-agent"]);

    let dir = Path::new("/var/lib/rancher/k3s/agent/etc/containerd");
    let pick = |v3, v2, generated| choose_template(dir, v3, v2, generated).unwrap();
    assert_eq!(pick(true, true, None), (dir.join("config-v3.toml.tmpl"), 3));
    assert_eq!(
        pick(false, true, Some(C21)),
        (dir.join("config.toml.tmpl"), 2)
    );
    assert_eq!(
        pick(false, false, Some(C21)),
        (dir.join("config-v3.toml.tmpl"), 3)
    );
    assert_eq!(
        pick(false, false, Some(C17)),
        (dir.join("config.toml.tmpl"), 2)
    );
    assert_eq!(pick(false, false, None), (dir.join("config.toml.tmpl"), 2));

    assert_eq!(
        under_root(Path::new("/host"), Path::new("/etc/containerd/config.toml")),
        PathBuf::from("/host/etc/containerd/config.toml")
    );
    assert_eq!(
        under_root(Path::new("/"), Path::new("/usr/local/bin")),
        PathBuf::from("/usr/local/bin")
    );
}

#[test]
fn handler_names() {
    assert!(Handler::parse("wasmbox").is_ok());
    assert_eq!(
        Handler::parse("wasm-2:/etc/w.toml").unwrap(),
        Handler {
            name: "wasm-2".into(),
            config_path: Some("/etc/w.toml".into())
        }
    );
    for bad in [
        "",
        "Wasmbox",
        "-x",
        "x-",
        "a.b",
        "x:relative.toml",
        &"a".repeat(64),
    ] {
        assert!(Handler::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn without_other_runtimes_the_table_is_indented_like_its_file() {
    // Debian 12's /etc/containerd/config.toml.
    let debian = "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    \
                  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n  \
                  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = \"/var/lib/containerd/opt\"\n";
    let installed = install(debian, &wasmbox());
    assert!(installed.contains(
        "\n        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n          runtime_type"
    ), "{installed}");
    assert_handler(&installed, V2_RUNTIMES, "wasmbox", None);
    assert_eq!(uninstall(&installed).as_deref(), Some(debian));
    // A file that does not indent gets no indentation.
    let flat = "version = 3\n[plugins.'io.containerd.cri.v1.runtime']\nenable_cdi = true\n";
    let installed = install(flat, &wasmbox());
    assert!(installed.contains("\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.wasmbox]\n  runtime_type"), "{installed}");
    assert_eq!(uninstall(&installed).as_deref(), Some(flat));
}
