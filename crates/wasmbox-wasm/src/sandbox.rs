//! What the OCI runtime spec grants the guest, and how that becomes a WASI context.
//!
//! The spec is the one source of truth: args, env, cwd, read-only root and mounts, network
//! namespace and memory limit. The guest sees the container's filesystem through preopens of
//! its top-level directories and of its mounts, never the container's `/proc`, `/sys` or `/dev`
//! (those would hand the guest host details such as other processes' environments).

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::WasmError;

/// Paths the guest never sees, whatever the spec mounts there.
pub const HIDDEN: [&str; 3] = ["/proc", "/sys", "/dev"];

/// A mount the spec puts in the container, as the guest may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountGrant {
    pub destination: String,
    pub readonly: bool,
}

/// A directory handed to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// Path inside the container (the runner is already inside it).
    pub host: String,
    /// Name the guest uses.
    pub guest: String,
    pub readonly: bool,
}

/// Everything the guest is granted, derived from the spec alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub root_readonly: bool,
    pub mounts: Vec<MountGrant>,
    /// True when the container has a network namespace of its own (or its pod's): only then
    /// may a component open sockets, and only in that namespace.
    pub network: bool,
    /// Bytes a linear memory may grow to (`linux.resources.memory.limit`).
    pub memory_limit: Option<usize>,
}

/// True for `/proc`, `/sys`, `/dev` and anything below them.
pub fn is_hidden(path: &str) -> bool {
    HIDDEN
        .iter()
        .any(|h| path == *h || path.strip_prefix(h).is_some_and(|rest| rest.starts_with('/')))
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

impl SandboxSpec {
    /// Reads the grant from `spec`. `argv0` replaces `args[0]` (it is the module path without
    /// any `#func` suffix).
    pub fn from_spec(spec: &Spec, argv0: &str) -> Result<Self, WasmError> {
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| WasmError::Sandbox("the spec has no process".into()))?;
        let mut args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(WasmError::Sandbox("the spec's process has no args".into()));
        }
        args[0] = argv0.to_string();
        let env = process
            .env()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cwd = normalize(&process.cwd().display().to_string());
        let root_readonly = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
        let mounts = spec
            .mounts()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| MountGrant {
                destination: normalize(&m.destination().display().to_string()),
                readonly: m
                    .options()
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o == "ro"),
            })
            .filter(|m| !is_hidden(&m.destination) && m.destination != "/")
            .collect();
        let linux = spec.linux().as_ref();
        let network = linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        let memory_limit = linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(Self {
            args,
            env,
            cwd,
            root_readonly,
            mounts,
            network,
            memory_limit,
        })
    }

    /// Whether `path` is read-only for the guest: the deepest mount covering it decides, else
    /// the root.
    pub fn readonly_at(&self, path: &str) -> bool {
        self.mounts
            .iter()
            .filter(|m| path == m.destination || path.starts_with(&format!("{}/", m.destination)))
            .max_by_key(|m| m.destination.len())
            .map(|m| m.readonly)
            .unwrap_or(self.root_readonly)
    }

    /// The preopens for a container whose `/` holds `top_level_dirs` (names of directories).
    /// wasi-libc picks the longest matching preopen, so mounts below a top-level directory
    /// override its permissions.
    pub fn plan_preopens(&self, top_level_dirs: &[String]) -> Vec<Preopen> {
        let mut out: Vec<Preopen> = Vec::new();
        fn push(out: &mut Vec<Preopen>, host: String, guest: String, readonly: bool) {
            if !out.iter().any(|p| p.guest == guest) {
                out.push(Preopen { host, guest, readonly });
            }
        }
        let mut names: Vec<&String> = top_level_dirs.iter().collect();
        names.sort();
        for name in names {
            let path = format!("/{name}");
            if name.is_empty() || name.contains('/') || is_hidden(&path) {
                continue;
            }
            push(&mut out, path.clone(), path.clone(), self.readonly_at(&path));
        }
        for m in &self.mounts {
            push(&mut out, m.destination.clone(), m.destination.clone(), m.readonly);
        }
        // Relative paths: wasi-libc resolves them against a preopen named "." (or, without one,
        // against relative-named preopens). Never hand out "/" itself: it contains /proc.
        if self.cwd != "/" && !is_hidden(&self.cwd) {
            push(&mut out, self.cwd.clone(), ".".into(), self.readonly_at(&self.cwd));
        } else if self.cwd == "/" {
            let relative: Vec<Preopen> = out
                .iter()
                .filter(|p| p.guest.starts_with('/'))
                .map(|p| Preopen {
                    host: p.host.clone(),
                    guest: p.guest.trim_start_matches('/').to_string(),
                    readonly: p.readonly,
                })
                .collect();
            for p in relative {
                push(&mut out, p.host, p.guest, p.readonly);
            }
        }
        out
    }
}

/// Names of the directories directly under `/` of the current mount namespace.
pub fn list_top_level_dirs() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxResourcesBuilder, MountBuilder,
        ProcessBuilder, RootBuilder, SpecBuilder,
    };

    fn spec(readonly: bool, cwd: &str) -> Spec {
        let mounts = vec![
            MountBuilder::default().destination("/proc").typ("proc").build().unwrap(),
            MountBuilder::default().destination("/dev/shm").typ("tmpfs").build().unwrap(),
            MountBuilder::default()
                .destination("/data/config")
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .unwrap(),
            MountBuilder::default().destination("/tmp").typ("tmpfs").build().unwrap(),
        ];
        SpecBuilder::default()
            .root(RootBuilder::default().path("rootfs").readonly(readonly).build().unwrap())
            .process(
                ProcessBuilder::default()
                    .args(vec!["/app.wasm#run".to_string(), "x".to_string()])
                    .env(vec!["A=1".to_string(), "B=x=y".to_string(), "junk".to_string()])
                    .cwd(cwd)
                    .build()
                    .unwrap(),
            )
            .mounts(mounts)
            .linux(
                LinuxBuilder::default()
                    .namespaces(vec![LinuxNamespaceBuilder::default()
                        .typ(LinuxNamespaceType::Network)
                        .build()
                        .unwrap()])
                    .resources(
                        LinuxResourcesBuilder::default()
                            .memory(LinuxMemoryBuilder::default().limit(64 << 20).build().unwrap())
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn maps_args_env_cwd_limits_and_network() {
        let s = SandboxSpec::from_spec(&spec(false, "/work/"), "/app.wasm").unwrap();
        assert_eq!(s.args, vec!["/app.wasm", "x"]);
        assert_eq!(s.env, vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]);
        assert_eq!(s.cwd, "/work");
        assert!(s.network);
        assert_eq!(s.memory_limit, Some(64 << 20));
        // /proc and /dev/shm are never granted.
        assert_eq!(
            s.mounts.iter().map(|m| m.destination.as_str()).collect::<Vec<_>>(),
            vec!["/data/config", "/tmp"]
        );
    }

    #[test]
    fn hides_proc_sys_dev_and_honours_readonly() {
        let s = SandboxSpec::from_spec(&spec(true, "/work"), "/app.wasm").unwrap();
        let dirs: Vec<String> = ["proc", "sys", "dev", "etc", "tmp", "data", "work"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = s.plan_preopens(&dirs);
        let find = |g: &str| p.iter().find(|x| x.guest == g).cloned();
        assert!(find("/proc").is_none() && find("/sys").is_none() && find("/dev").is_none());
        assert!(find("/etc").unwrap().readonly, "root is read-only");
        assert!(!find("/tmp").unwrap().readonly, "a writable mount stays writable");
        assert!(find("/data/config").unwrap().readonly);
        let dot = find(".").unwrap();
        assert_eq!((dot.host.as_str(), dot.readonly), ("/work", true));
        assert!(p.iter().all(|x| !is_hidden(&x.host) && x.host != "/"));
    }

    #[test]
    fn cwd_root_gets_relative_names_not_slash() {
        let s = SandboxSpec::from_spec(&spec(false, "/"), "/app.wasm").unwrap();
        let p = s.plan_preopens(&["etc".to_string(), "proc".to_string()]);
        assert!(p.iter().any(|x| x.guest == "etc" && x.host == "/etc"));
        assert!(!p.iter().any(|x| x.guest == "." || x.host == "/" || x.guest == "proc"));
    }

    #[test]
    fn hidden_paths() {
        assert!(is_hidden("/proc") && is_hidden("/proc/1/environ") && is_hidden("/dev/shm"));
        assert!(!is_hidden("/process") && !is_hidden("/devices") && !is_hidden("/"));
    }
}
