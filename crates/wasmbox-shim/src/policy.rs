//! The container's capability policy, made at Create: the operator's config file (the runtime
//! handler's `ConfigPath` option, else `/etc/wasmbox/config.toml` if it exists) and the spec's
//! `wasmbox.dev/` annotations (see `wasmbox_wasm::policy`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::rt::WireType;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::CodedInputStream;
use oci_spec::runtime::Spec;
use wasmbox_wasm::compile::entrypoint::ContainerFs;
use wasmbox_wasm::policy::{OperatorConfig, Policy, Preopens};

/// The config file of a runtime handler without a `ConfigPath`.
pub const DEFAULT_CONFIG: &str = "/etc/wasmbox/config.toml";
/// How containerd hands a non-runc runtime its `options` (CRI) or `ctr --runtime-config-path`.
const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";
/// `ConfigPath` in that message.
const CONFIG_PATH_FIELD: u32 = 2;

/// `ConfigPath` of the runtime options containerd passed with Create, if any.
pub fn config_path(options: Option<&Any>) -> Result<Option<PathBuf>, String> {
    let Some(any) = options.filter(|a| {
        a.type_url
            .trim_start_matches('/')
            .ends_with(RUNTIME_OPTIONS)
    }) else {
        return Ok(None);
    };
    let bad = |e: containerd_shim::protos::protobuf::Error| {
        format!("the runtime options ({RUNTIME_OPTIONS}) do not decode: {e}")
    };
    let mut input = CodedInputStream::from_bytes(&any.value);
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        let wire = WireType::new(tag & 7)
            .ok_or_else(|| format!("the runtime options ({RUNTIME_OPTIONS}) do not decode"))?;
        if tag >> 3 == CONFIG_PATH_FIELD && wire == WireType::LengthDelimited {
            let path = input.read_string().map_err(bad)?;
            return Ok(Some(path).filter(|p| !p.is_empty()).map(PathBuf::from));
        }
        input.skip_field(wire).map_err(bad)?;
    }
    Ok(None)
}

/// The operator's config and where it came from: `configured` (the handler's ConfigPath,
/// which must exist), else the default file when present, else none.
pub fn operator_config(
    configured: Option<&Path>,
) -> Result<(Option<OperatorConfig>, String), String> {
    let (path, required) = match configured {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let source = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let config = OperatorConfig::parse(&text, &source).map_err(|e| e.to_string())?;
            Ok((Some(config), source))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok((None, "built-in defaults".into()))
        }
        Err(e) => Err(format!("wasmbox config file {source}: {e}")),
    }
}

/// The runtime options containerd hands the `start` action on its stdin (empty when none).
pub fn start_options() -> Option<Any> {
    use containerd_shim::protos::protobuf::Message;
    use std::io::{IsTerminal, Read};
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return None;
    }
    let mut data = Vec::new();
    stdin.read_to_end(&mut data).ok()?;
    (!data.is_empty()).then(|| Any::parse_from_bytes(&data).ok()).flatten()
}

/// How many containers outside pods (`shim.containers_per_shim`) and how many pods
/// (`shim.pods_per_shim`) one shim serves, by the operator's config for these runtime
/// options, and the config's path when the handler names one.
pub fn sharing(options: Option<&Any>) -> Result<Sharing, String> {
    let path = config_path(options)?;
    let (config, _) = operator_config(path.as_deref())?;
    let shim = config.map(|c| c.shim).unwrap_or_default();
    Ok(Sharing {
        containers_per_shim: shim.containers_per_shim.unwrap_or(crate::group::DEFAULT_CONTAINERS_PER_SHIM),
        pods_per_shim: shim.pods_per_shim.unwrap_or(crate::group::DEFAULT_PODS_PER_SHIM),
        config: path,
    })
}

/// See [`sharing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharing {
    pub containers_per_shim: usize,
    pub pods_per_shim: usize,
    pub config: Option<PathBuf>,
}

impl Sharing {
    /// What a config that does not read gives: a shim per container and per pod (the
    /// container's Create then reports the config's error).
    pub fn unshared() -> Self {
        Self { containers_per_shim: 1, pods_per_shim: 1, config: None }
    }
}

/// The policy for the container of `spec`, whose filesystem is `fs`.
pub fn for_container(
    options: Option<&Any>,
    spec: &Spec,
    fs: &ContainerFs,
) -> Result<Policy, String> {
    let (config, source) = operator_config(config_path(options)?.as_deref())?;
    let annotations: BTreeMap<String, String> = spec
        .annotations()
        .as_ref()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let policy = Policy::new(config.as_ref(), &source, &annotations).map_err(|e| e.to_string())?;
    if let Preopens::Only(list) = &policy.preopens {
        if let Some(p) = list.iter().find(|p| !fs.has_dir(&p.path)) {
            return Err(format!(
                "annotation {}: {} is not a directory in the container (its rootfs and mounts)",
                wasmbox_wasm::policy::PREOPENS,
                wasmbox_wasm::policy::quote(&p.path)
            ));
        }
    }
    Ok(policy)
}

/// What a wasm init can do with the declared listeners: a preview 1 module gets them
/// preopened (TCP and unix); a component binds its own TCP sockets (checked against them), and
/// has no unix sockets, which Create says rather than starting a guest without the sockets it
/// asked for.
pub fn check_listeners(policy: &Policy, component: bool) -> Result<(), String> {
    use wasmbox_wasm::policy::{Listen, LISTEN};
    if !component {
        return Ok(());
    }
    if let Some(Listen::Unix(path)) = policy.listen.iter().find(|l| matches!(l, Listen::Unix(_))) {
        return Err(format!(
            "annotation {LISTEN}: unix:{path}: components have no unix sockets (wasi:sockets is TCP and UDP)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config_path_from_runtime_options() {
        // As containerd sends `ctr run --runtime-config-path /tmp/wbx.toml`.
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: b"\x0a\x03abc\x12\x0d/tmp/wbx.toml".to_vec(),
            ..Default::default()
        };
        assert_eq!(
            config_path(Some(&any)).unwrap(),
            Some(PathBuf::from("/tmp/wbx.toml"))
        );
        let runc = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: b"\x12\x01x".to_vec(),
            ..Default::default()
        };
        assert_eq!(config_path(Some(&runc)).unwrap(), None);
        assert_eq!(config_path(None).unwrap(), None);
        let broken = Any {
            type_url: RUNTIME_OPTIONS.into(),
            value: b"\x12\x7f/x".to_vec(),
            ..Default::default()
        };
        assert!(config_path(Some(&broken)).is_err());
    }

    #[test]
    fn a_configured_file_must_exist_the_default_need_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("strict.toml");
        let e = operator_config(Some(&missing)).unwrap_err();
        assert!(
            e.contains("strict.toml") && e.contains("No such file"),
            "{e}"
        );
        std::fs::write(&missing, "[egress]\ndefault = \"deny\"\n").unwrap();
        let (config, source) = operator_config(Some(&missing)).unwrap();
        assert!(config.is_some() && source.ends_with("strict.toml"));
        std::fs::write(&missing, "[egress]\nopen = true\n").unwrap();
        let e = operator_config(Some(&missing)).unwrap_err();
        assert!(e.contains("strict.toml") && e.contains("open"), "{e}");
    }
}
