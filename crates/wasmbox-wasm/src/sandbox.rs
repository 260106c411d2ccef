//! What the OCI runtime spec grants the guest, and how that becomes a WASI context.
//!
//! The spec is the one source of truth: args, env, cwd, network namespace and memory limit.
//! The filesystem is not planned here: the guest's `/` is the container's own mount tree
//! without `/proc`, `/sys` and `/dev`, which the container layer builds and hands over as a
//! directory ([`GuestDirs`]); read-only mounts and root are enforced by the kernel there.

use std::os::fd::BorrowedFd;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::policy::memory::MemoryCgroup;
use crate::policy::Policy;
use crate::WasmError;

/// Everything the guest is granted, derived from the spec alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub args: Vec<String>,
    /// Exactly the spec's environment (see [`Self::preview1_pwd`] for the one addition).
    pub env: Vec<(String, String)>,
    /// The spec's cwd, normalized: a component's initial cwd.
    pub cwd: String,
    /// True when the container has a network namespace of its own (or its pod's): only then
    /// may a component open sockets, and only in that namespace.
    pub network: bool,
    /// `linux.resources.memory.limit`: the container's memory limit, which the guest's
    /// memories and tables must stay inside (see [`crate::policy::memory`]).
    pub memory_limit: Option<u64>,
}

/// The directory the guest gets as its `/`.
#[derive(Debug, Clone, Copy)]
pub struct GuestDirs<'a> {
    pub root: BorrowedFd<'a>,
}

/// What the container hands the guest beyond the spec: its directories, the container's
/// memory cgroup (for the memory budget) and the capability policy.
pub struct Granted<'a> {
    pub dirs: Option<GuestDirs<'a>>,
    pub memory: Option<MemoryCgroup>,
    pub policy: &'a Policy,
}

/// Opens directory `path` beneath `root` as the guest would reach it: absolute symlinks and
/// `..` stay inside `root`.
pub fn open_dir_beneath(root: BorrowedFd<'_>, path: &str) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use std::os::fd::{AsRawFd, FromRawFd};
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let target = path.trim_start_matches('/');
    let fd = nix::fcntl::openat2(root.as_raw_fd(), if target.is_empty() { "." } else { target }, how)?;
    // SAFETY: `openat2` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
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
        let env: Vec<(String, String)> = process
            .env()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cwd = normalize(&process.cwd().display().to_string());
        let linux = spec.linux().as_ref();
        let network = linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        let memory_limit = linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
            .map(|l| l as u64);
        Ok(Self {
            args,
            env,
            cwd,
            network,
            memory_limit,
        })
    }
}

impl SandboxSpec {
    /// `PWD` for a preview 1 module, if it needs one. Preview 1 has no way to say the cwd:
    /// wasi-libc starts at "/". `PWD` is the convention guests use instead (Go's wasip1 port
    /// reads it; a C guest can chdir(getenv("PWD"))), as a shell would set it. Only where it
    /// serves: a cwd other than "/", and a spec that sets no `PWD` itself. Components have
    /// `initial-cwd`, so no guest sees a variable it was not given for nothing.
    pub fn preview1_pwd(&self) -> Option<&str> {
        (self.cwd != "/" && !self.env.iter().any(|(k, _)| k == "PWD")).then_some(self.cwd.as_str())
    }
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
        // Exactly the spec's environment; PWD only for a preview 1 module away from "/".
        assert_eq!(s.env, vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]);
        assert_eq!(s.cwd, "/work");
        assert_eq!(s.preview1_pwd(), Some("/work"));
        assert!(s.network);
        assert_eq!(s.memory_limit, Some(64 << 20));
        let at_root = SandboxSpec::from_spec(&spec(true, "./"), "/a").unwrap();
        assert_eq!((at_root.cwd.as_str(), at_root.preview1_pwd()), ("/", None));
        let mut own = s.clone();
        own.env.push(("PWD".into(), "/elsewhere".into()));
        assert_eq!(own.preview1_pwd(), None, "the spec's own PWD stays as it is");
    }
}
