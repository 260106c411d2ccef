//! The workload of the container's init process.
//!
//! libcontainer calls `validate` inside the container before reporting the init ready (so its
//! errors fail Create) and `exec` once Start arrives. A wasm program was loaded and linked in
//! the `create` helper before the init was cloned from it, so the init already holds it;
//! `exec` runs it here, inside every namespace, cgroup, seccomp filter and credential the spec
//! set. Anything else is exec'd like runc does.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use wasmbox_wasm::compile::entrypoint::search_paths;
use wasmbox_wasm::compile::kind::{describe_head, native_format, NativeFormat};
use wasmbox_wasm::policy::memory::MemoryCgroup;
use wasmbox_wasm::run::program::Program;
use wasmbox_wasm::sandbox::Granted;
use wasmbox_wasm::sandbox::{GuestDirs, SandboxSpec};
use wasmbox_wasm::WasmError;

use crate::confine::Confinement;
use crate::guest_fs;

/// Descriptors the wasm runner keeps although they are close-on-exec (the helper's log pipe).
static KEEP_FDS: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());

/// Keeps `fd` open in a wasm runner (see [`close_what_exec_would`]).
pub fn keep_across_exec(fd: RawFd) {
    if let Ok(mut keep) = KEEP_FDS.lock() {
        keep.push(fd);
    }
}

/// A wasm runner takes the place of an exec, so it closes the close-on-exec pipes an exec
/// would close (but `keep` and the registered ones). libcontainer relies on it: an exec'd
/// process tells the helper it is running by closing such a pipe, and the helper waits for
/// that. Only pipes: Wasmtime keeps files and memfds open for the loaded module's memory
/// images, which must stay.
fn close_what_exec_would(keep: &[RawFd]) {
    let registered = KEEP_FDS.lock().map(|k| k.clone()).unwrap_or_default();
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        // No /proc in this container: try the usual range.
        Err(_) => (3..4096).collect(),
    };
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd) && !registered.contains(fd)) {
        let cloexec = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
            .is_ok_and(|f| nix::fcntl::FdFlag::from_bits_truncate(f).contains(nix::fcntl::FdFlag::FD_CLOEXEC));
        let pipe = nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
        if cloexec && pipe {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// The wasm side of a container: the loaded program, the argv[0] the guest sees, and the
/// init's end of the channel its filesystem arrives on (see [`guest_fs`]).
pub struct WasmWorkload {
    pub program: Program,
    pub argv0: String,
    pub guest_fs: OwnedFd,
    /// The capability policy (preopens, timeout, egress) the shim made at Create.
    pub policy: wasmbox_wasm::policy::Policy,
    /// The seccomp filter only logs what it would deny (see [`Confinement::log_only`]).
    pub seccomp_log: bool,
    /// For an exec, the container's own seccomp profile: libcontainer applies it to the init
    /// but not to processes exec'd into the container, which runc does (see
    /// [`Confinement::apply`]).
    pub exec_seccomp: Option<libcontainer::oci_spec::runtime::LinuxSeccomp>,
}

/// The container's seccomp profile for a native exec, which libcontainer's tenant builder
/// leaves out (runc applies it): installed by the executor before the exec'd program runs.
pub struct ExecProfile {
    pub seccomp: libcontainer::oci_spec::runtime::LinuxSeccomp,
    /// The exec's own capabilities, when the helper raised them (`CAP_SYS_ADMIN`, which
    /// installing a filter without no_new_privs needs): restored once the filter is in.
    pub capabilities: Option<libcontainer::oci_spec::runtime::LinuxCapabilities>,
}

/// Runs the wasm workload if there is one, else execs natively.
#[derive(Clone, Default)]
pub struct WasmboxExecutor {
    wasm: Option<Arc<WasmWorkload>>,
    exec_profile: Option<Arc<ExecProfile>>,
}

impl WasmboxExecutor {
    pub fn native() -> Self {
        Self::default()
    }

    /// A native exec that installs the container's profile first.
    pub fn native_exec(profile: ExecProfile) -> Self {
        Self {
            wasm: None,
            exec_profile: Some(Arc::new(profile)),
        }
    }

    pub fn wasm(workload: WasmWorkload) -> Self {
        Self {
            wasm: Some(Arc::new(workload)),
            exec_profile: None,
        }
    }
}

fn args(spec: &Spec) -> Option<&Vec<String>> {
    spec.process().as_ref()?.args().as_ref().filter(|a| !a.is_empty())
}

fn env(spec: &Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default()
}

impl Executor for WasmboxExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        if self.wasm.is_some() {
            // Resolved, compiled and linked before the container was created.
            return Ok(());
        }
        let arg0 = args(spec)
            .map(|a| a[0].clone())
            .ok_or_else(|| ExecutorValidationError::ArgValidationError("the spec's process has no args".into()))?;
        let cwd = spec
            .process()
            .as_ref()
            .map(|p| p.cwd().display().to_string())
            .unwrap_or_else(|| "/".into());
        // We are inside the container here: resolve as execvp will, and refuse what execve
        // would (its errors would only reach the log at Start; here they fail Create).
        find_executable(&arg0, &env(spec), &cwd)
            .map(|_| ())
            .map_err(ExecutorValidationError::ArgValidationError)
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(w) = &self.wasm {
            let sandbox = SandboxSpec::from_spec(spec, &w.argv0).map_err(|e| ExecutorError::Other(e.to_string()))?;
            close_what_exec_would(&[w.guest_fs.as_raw_fd()]);
            let fs = guest_fs::receive(w.guest_fs.as_raw_fd()).map_err(|e| ExecutorError::Other(e.to_string()))?;
            // `ps` shows the guest's command line, as it would a native process's.
            crate::proctitle::set(&sandbox.args.join(" "));
            let confinement = Confinement {
                network: wasmbox_wasm::run::uses_network(&w.program, &sandbox, &w.policy),
                log_only: w.seccomp_log,
            };
            // The guest's first instruction runs under it; a process we cannot confine does
            // not run the guest.
            let log_pipe = KEEP_FDS.lock().ok().and_then(|k| k.first().copied());
            let report: Vec<RawFd> = std::iter::once(2).chain(log_pipe).collect();
            confinement
                .apply(w.exec_seccomp.as_ref(), &report)
                .map_err(|e| ExecutorError::Other(format!("confine the wasm process: {e}")))?;
            let granted = Granted {
                dirs: Some(GuestDirs { root: fs.root.as_fd() }),
                memory: fs.memory.map(|(usage, limit)| MemoryCgroup { usage, limit }),
                policy: &w.policy,
            };
            let status = wasmbox_wasm::run::run(&w.program, &sandbox, granted);
            drop(fs.namespace);
            std::process::exit(status);
        }
        if let Some(profile) = &self.exec_profile {
            install_exec_profile(profile).map_err(ExecutorError::Other)?;
        }
        exec_native(spec)
    }
}

/// Installs the container's profile on a native exec, as runc does for `runc exec`: before
/// the exec's capabilities are final when it has no no_new_privs.
fn install_exec_profile(profile: &ExecProfile) -> Result<(), String> {
    crate::confine::seccomp::install_container_profile(&profile.seccomp)?;
    if let Some(caps) = &profile.capabilities {
        let syscall = libcontainer::syscall::syscall::create_syscall();
        libcontainer::capabilities::drop_privileges(caps, syscall.as_ref())
            .map_err(|e| format!("restore the exec's capabilities: {e}"))?;
    }
    Ok(())
}

/// The file execve will run for `arg0`, or runc's kind of message why there is none.
fn find_executable(arg0: &str, env: &[String], cwd: &str) -> Result<String, String> {
    let candidates = search_paths(arg0, env, cwd);
    let found = candidates.iter().find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    let Some(path) = found else {
        if arg0.contains('/') {
            return Err(match std::fs::metadata(&candidates[0]) {
                Ok(m) if m.is_dir() => WasmError::IsDirectory { path: arg0.into() }.to_string(),
                Ok(_) => format!("exec {arg0}: permission denied"),
                Err(_) => format!("entrypoint {arg0:?} not found in the container"),
            });
        }
        return Err(format!("exec: {arg0:?}: executable file not found in $PATH"));
    };
    let mut head = [0u8; 16];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)) else {
        // Executable but not readable by this user: only the kernel can tell.
        return Ok(path.clone());
    };
    match native_format(&head[..n]) {
        NativeFormat::Elf | NativeFormat::Script => Ok(path.clone()),
        NativeFormat::Unknown => Err(WasmError::ExecFormat {
            path: arg0.into(),
            detail: describe_head(&head[..n]),
        }
        .to_string()),
    }
}

fn exec_native(spec: &Spec) -> Result<(), ExecutorError> {
    let args = args(spec).ok_or(ExecutorError::InvalidArg)?;
    let cwd = spec
        .process()
        .as_ref()
        .map(|p| p.cwd().display().to_string())
        .unwrap_or_else(|| "/".into());
    let path = find_executable(&args[0], &env(spec), &cwd).map_err(ExecutorError::Other)?;
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ExecutorError::InvalidArg)?;
    let cpath = CString::new(path.as_bytes()).map_err(|_| ExecutorError::InvalidArg)?;
    // execv, not execvp: no fallback to /bin/sh for a file the kernel cannot exec. The process
    // environment was set from the spec by libcontainer.
    let err = nix::unistd::execv(&cpath, &cargs).unwrap_err();
    Err(ExecutorError::Other(format!("exec {}: {}", args[0], err.desc())))
}
