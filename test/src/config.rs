//! The private containerd's on-disk layout and its config file.

use std::path::{Path, PathBuf};

/// The namespace containerd's CRI plugin keeps its pods, containers and images in.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The CRI runtime handler (a pod's `runtimeClassName` maps to it) that selects wasmbox.
pub const CRI_WASMBOX_HANDLER: &str = "wasmbox";
/// A second wasmbox handler whose options name an operator config file
/// ([`Paths::strict_config`], [`STRICT_CONFIG`]): a second RuntimeClass.
pub const CRI_WASMBOX_STRICT_HANDLER: &str = "wasmbox-strict";
/// The strict handler's wasmbox config: guests end after 1 s unless they say otherwise.
pub const STRICT_CONFIG: &str = "[limits]\ndefault_timeout = \"1s\"\nmax_timeout = \"1m\"\n";
/// The CRI runtime handler for runc, the default runtime.
pub const CRI_RUNC_HANDLER: &str = "runc";

/// What enabling containerd's CRI plugin needs from a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriConfig {
    /// The pause image (`sandbox_image`); the test imports it into [`CRI_NAMESPACE`] itself,
    /// so nothing is ever pulled.
    pub sandbox_image: String,
    /// A CNI network for pods that are not on the host network; None: host-network pods only.
    pub pod_network: Option<PodNetwork>,
}

/// A CNI bridge network of one fixture: its own bridge and subnet, the host is the gateway (so
/// the test reaches pod IPs), no masquerading or other host firewall changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// The bridge device (at most 15 characters), removed with the fixture.
    pub bridge: String,
    /// An IPv4 /24 such as `10.123.4.0/24`.
    pub subnet: String,
    /// Where the CNI plugins are (`bridge`, `host-local`, `loopback`).
    pub plugins: PathBuf,
}

impl PodNetwork {
    /// The CNI config list (host-local keeps its leases under `state`).
    pub fn conflist(&self, state: &Path) -> String {
        format!(
            r#"{{
  "cniVersion": "1.0.0",
  "name": "{bridge}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "dataDir": "{state}",
        "ranges": [[{{ "subnet": "{subnet}" }}]]
      }}
    }}
  ]
}}
"#,
            bridge = self.bridge,
            subnet = self.subnet,
            state = state.display(),
        )
    }
}

/// Every path one private containerd instance uses; all of them live in its temp dir.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub opt: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Handed to containerd (and so to the shim) as `WASMBOX_CACHE_DIR`.
    pub cache: PathBuf,
    /// Where ctr puts its IO fifos (instead of the shared /run/containerd/fifo).
    pub fifo: PathBuf,
    /// Scratch space for image tarballs and other test files.
    pub work: PathBuf,
    /// CNI config and plugin dirs for the CRI plugin (left empty: pods use the host network).
    pub cni: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            root: dir.join("root"),
            state: dir.join("state"),
            opt: dir.join("opt"),
            socket: dir.join("containerd.sock"),
            config: dir.join("config.toml"),
            log: dir.join("containerd.log"),
            cache: dir.join("cache"),
            fifo: dir.join("fifo"),
            work: dir.join("work"),
            cni: dir.join("cni"),
        }
    }

    pub fn create_dirs(&self) -> std::io::Result<()> {
        for d in [
            &self.root,
            &self.state,
            &self.opt,
            &self.cache,
            &self.fifo,
            &self.work,
        ] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// The task bundle directory containerd's v2 runtime makes for a container.
    pub fn bundle(&self, namespace: &str, id: &str) -> PathBuf {
        self.state
            .join("io.containerd.runtime.v2.task")
            .join(namespace)
            .join(id)
    }

    /// A config of its own: nothing shared with a system containerd except /run/containerd/s
    /// (shim sockets, fixed by containerd) and the kernel. ctr's default snapshotter is
    /// overlayfs, which is what import and run use.
    pub fn config_toml(&self) -> String {
        self.config_toml_with(None)
    }

    /// [`config_toml`](Self::config_toml), with the CRI plugin enabled when `cri` is given.
    ///
    /// The CRI section is a `version = 2` one, which containerd 1.6, 1.7 and 2.x all read (2.x
    /// migrates it: `sandbox_image` becomes `io.containerd.cri.v1.images`'s
    /// `pinned_images.sandbox`, the runtimes move to `io.containerd.cri.v1.runtime`). Everything
    /// CRI writes stays in the dir: its root and state follow containerd's, CNI dirs are ours,
    /// network namespaces (none with host-network pods) go under the state dir, and NRI, which
    /// 2.x enables by default with a socket at the fixed `/var/run/nri/nri.sock`, is disabled.
    pub fn config_toml_with(&self, cri: Option<&CriConfig>) -> String {
        let q = |p: &Path| toml_string(&p.to_string_lossy());
        let disabled = match cri {
            None => r#"["io.containerd.grpc.v1.cri"]"#,
            Some(_) => r#"["io.containerd.nri.v1.nri"]"#,
        };
        let mut text = format!(
            r#"version = 2
root = {root}
state = {state}
disabled_plugins = {disabled}

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
"#,
            root = q(&self.root),
            state = q(&self.state),
            grpc = q(&self.socket),
            ttrpc = q(&self.dir.join("containerd.sock.ttrpc")),
            opt = q(&self.opt),
        );
        if let Some(cri) = cri {
            text.push_str(&format!(
                r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox_image}
  # This VM's bounding set lacks CAP_SYS_RESOURCE: no negative oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{wasmbox}]
      runtime_type = "io.containerd.wasmbox.v1"
      # Pod annotations reach the shim only when listed (wasmbox's capability policy).
      pod_annotations = ["wasmbox.dev/*"]
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{strict}]
      runtime_type = "io.containerd.wasmbox.v1"
      pod_annotations = ["wasmbox.dev/*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{strict}.options]
        ConfigPath = {strict_config}
"#,
                sandbox_image = toml_string(&cri.sandbox_image),
                cni_bin = q(&self.cni_bin()),
                cni_conf = q(&self.cni_conf()),
                wasmbox = CRI_WASMBOX_HANDLER,
                strict = CRI_WASMBOX_STRICT_HANDLER,
                strict_config = q(&self.strict_config()),
            ));
        }
        text
    }

    /// The operator config file of [`CRI_WASMBOX_STRICT_HANDLER`].
    pub fn strict_config(&self) -> PathBuf {
        self.dir.join("wasmbox-strict.toml")
    }

    pub fn cni_bin(&self) -> PathBuf {
        self.cni.join("bin")
    }

    pub fn cni_conf(&self) -> PathBuf {
        self.cni.join("net.d")
    }

    pub fn create_cni_dirs(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.cni_bin())?;
        std::fs::create_dir_all(self.cni_conf())
    }

    /// Puts `network`'s plugins and config where the CRI plugin looks for them.
    pub fn install_pod_network(&self, network: &PodNetwork) -> std::io::Result<()> {
        for plugin in ["bridge", "host-local", "loopback"] {
            std::os::unix::fs::symlink(network.plugins.join(plugin), self.cni_bin().join(plugin))?;
        }
        std::fs::write(
            self.cni_conf().join("10-wasmbox-test.conflist"),
            network.conflist(&self.cni.join("ipam")),
        )
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_points_everything_into_the_dir() {
        let paths = Paths::new(Path::new("/tmp/wbx-x"));
        let text = paths.config_toml();
        assert!(text.contains(r#"root = "/tmp/wbx-x/root""#));
        assert!(text.contains(r#"address = "/tmp/wbx-x/containerd.sock""#));
        assert!(text.contains("io.containerd.grpc.v1.cri"));
        assert_eq!(text, paths.config_toml_with(None));
    }

    #[test]
    fn cri_config_enables_the_plugin_with_the_wasmbox_handler() {
        let paths = Paths::new(Path::new("/tmp/wbx-x"));
        let text = paths.config_toml_with(Some(&CriConfig {
            sandbox_image: "docker.io/library/wbx-pause:latest".into(),
            pod_network: None,
        }));
        assert!(text.contains(r#"disabled_plugins = ["io.containerd.nri.v1.nri"]"#));
        assert!(text.contains(r#"sandbox_image = "docker.io/library/wbx-pause:latest""#));
        assert!(text.contains("restrict_oom_score_adj = true"));
        assert!(text.contains(r#"conf_dir = "/tmp/wbx-x/cni/net.d""#));
        assert!(text.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbox]\n      runtime_type = \"io.containerd.wasmbox.v1\""
        ));
    }
}
