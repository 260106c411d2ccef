//! The helper process: loads the program, creates the container, answers, exits.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use wasmbox_container::create::{create, CreateRequest as ContainerRequest, Stdio};
use wasmbox_container::exec::{exec, ExecRequest};
use wasmbox_container::executor::{ExecProfile, WasmWorkload, WasmboxExecutor};
use wasmbox_container::guest_fs;
use wasmbox_wasm::compile::engine::Engine;
use wasmbox_wasm::compile::kind::FileKind;
use wasmbox_wasm::run::program::Program;
use wasmbox_wasm::WasmError;

use super::request::{Answer, CreateRequest};
use crate::process::stdio::open_output;

/// Writes log records to the shim through a private descriptor. It is a CLOEXEC duplicate of
/// the helper's stderr, so it survives in a wasm init (which never execs) and lets the init
/// report traps to the shim log, while a native init's exec closes it.
struct PipeLogger(Mutex<File>);

impl log::Log for PipeLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            if let Ok(mut f) = self.0.lock() {
                let _ = writeln!(f, "{} {}", r.level(), r.args());
            }
        }
    }
    fn flush(&self) {}
}

fn init_logger() {
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return;
    };
    let file = File::from(fd);
    // The wasm runner drops close-on-exec descriptors as an exec would: not these.
    wasmbox_container::executor::keep_across_exec(file.as_raw_fd());
    // libcontainer reports through `tracing`; send its errors the same way (its warnings are per-create noise such as absent cgroup controllers).
    if let Ok(copy) = file.try_clone() {
        wasmbox_container::executor::keep_across_exec(copy.as_raw_fd());
        let _ = tracing_subscriber::fmt()
            .with_writer(Mutex::new(copy))
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::ERROR)
            .try_init();
    }
    let logger = Box::leak(Box::new(PipeLogger(Mutex::new(file))));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// The engine helpers load programs into. Made once in the zygote (see [`preload`]) so every
/// helper forked from it, and every init, shares it; an exec'd helper makes its own.
fn engine() -> &'static Result<Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE.get_or_init(|| wasmbox_wasm::compile::engine::new_engine().map_err(|e| e.to_string()))
}

/// The baseline compiler's engine, for a module's first start (see `crate::tiering`): made
/// when a request needs it.
fn baseline_engine() -> &'static Result<Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE.get_or_init(|| wasmbox_wasm::compile::engine::new_baseline_engine().map_err(|e| e.to_string()))
}

/// Does the per-shim startup work before the zygote forks helpers.
pub fn preload() {
    let _ = engine();
}

fn answer(a: &Answer) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, a);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// The error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The seccomp profile of the container in `bundle` (an exec's must run under it too).
fn container_seccomp(bundle: &Path) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, String> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .map_err(|e| format!("read the container's spec: {e}"))?;
    Ok(spec.linux().as_ref().and_then(|l| l.seccomp().clone()))
}

/// The executor of a native exec into the container in `bundle`: it installs the container's
/// seccomp profile, which libcontainer leaves out of an exec (runc applies it). Without
/// no_new_privs that needs CAP_SYS_ADMIN after libcontainer set the exec's capabilities, so
/// the process is given a copy of its spec with it (and CAP_SETPCAP, to drop it from the
/// bounding set) raised, which the executor takes back to the exec's own once the filter is
/// in: the path of that copy is returned.
fn native_exec(
    bundle: &Path,
    process: &Path,
) -> Result<(WasmboxExecutor, Option<PathBuf>), String> {
    use oci_spec::runtime::{Capability, Process};
    let Some(seccomp) = container_seccomp(bundle)? else {
        return Ok((WasmboxExecutor::native(), None));
    };
    let text =
        std::fs::read_to_string(process).map_err(|e| format!("read the exec's process: {e}"))?;
    let mut spec: Process =
        serde_json::from_str(&text).map_err(|e| format!("the exec's process: {e}"))?;
    let own = spec.capabilities().clone();
    // With no_new_privs the filter goes in unprivileged; a spec without capabilities leaves
    // the process all of them. Either way nothing is raised.
    let Some(mut raised) = own.clone().filter(|_| spec.no_new_privileges() != Some(true)) else {
        let profile = ExecProfile { seccomp, capabilities: None };
        return Ok((WasmboxExecutor::native_exec(profile), None));
    };
    let add = |set: &Option<oci_spec::runtime::Capabilities>| {
        let mut set = set.clone().unwrap_or_default();
        set.extend([Capability::SysAdmin, Capability::Setpcap]);
        Some(set)
    };
    raised.set_effective(add(raised.effective()));
    raised.set_permitted(add(raised.permitted()));
    raised.set_bounding(add(raised.bounding()));
    spec.set_capabilities(Some(raised));
    let path = process.with_extension("raised.json");
    let json = serde_json::to_vec(&spec).map_err(|e| format!("the exec's process: {e}"))?;
    std::fs::write(&path, json).map_err(|e| format!("write {}: {e}", path.display()))?;
    let profile = ExecProfile {
        seccomp,
        capabilities: own,
    };
    Ok((WasmboxExecutor::native_exec(profile), Some(path)))
}

/// Runs the helper; returns the process exit code.
pub fn main(request_json: &str) -> i32 {
    init_logger();
    match run(request_json) {
        Ok(pid) => {
            answer(&Answer::Created { pid });
            0
        }
        Err((message, bad_cache_entry)) => {
            log::error!("create failed: {message}");
            answer(&Answer::Failed {
                message,
                bad_cache_entry,
            });
            1
        }
    }
}

fn run(request_json: &str) -> Result<i32, (String, bool)> {
    let fail = |m: String| (m, false);
    let req: CreateRequest =
        serde_json::from_str(request_json).map_err(|e| fail(format!("bad helper request: {e}")))?;
    let stdout =
        open_output(&req.stdout).map_err(|e| fail(format!("open stdout {:?}: {e}", req.stdout)))?;
    let stderr =
        open_output(&req.stderr).map_err(|e| fail(format!("open stderr {:?}: {e}", req.stderr)))?;
    // The shim already made our stdin the container's stdin.
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| fail(format!("stdin: {e}")))?;

    // A native exec's process, with capabilities raised to install the container's profile
    // (see `native_exec`); removed once the exec runs.
    let mut raised_process = None;
    let (executor, to_init) = match &req.wasm {
        None => match &req.exec {
            Some(x) => {
                let (executor, raised) = native_exec(&req.bundle, &x.process).map_err(fail)?;
                raised_process = raised;
                (executor, None)
            }
            None => (WasmboxExecutor::native(), None),
        },
        Some(w) => {
            let engine = if w.baseline { baseline_engine() } else { engine() };
            let engine = engine.as_ref().map_err(|e| fail(e.clone()))?;
            let kind = if w.component {
                FileKind::Component
            } else {
                FileKind::Module
            };
            let mut program = Program::load(
                engine,
                &w.artifact,
                kind,
                &w.guest_path,
                w.func.as_deref(),
                w.trampoline.as_deref(),
                !w.component && !w.policy.listen.is_empty(),
            )
            .map_err(|e| (chain(&e), matches!(e, WasmError::CacheEntry { .. })))?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            program.pool_http(w.policy.http_concurrency(cores));
            let (to_init, init_end) = guest_fs::channel().map_err(|e| fail(chain(&e)))?;
            let executor = WasmboxExecutor::wasm(WasmWorkload {
                program,
                argv0: w.guest_path.clone(),
                guest_fs: init_end,
                policy: w.policy.clone(),
                seccomp_log: wasmbox_container::confine::Confinement::log_mode_requested(),
                exec_seccomp: match &req.exec {
                    Some(_) => container_seccomp(&req.bundle).map_err(fail)?,
                    None => None,
                },
            });
            (executor, Some(to_init))
        }
    };
    let stdio = Stdio {
        stdin,
        stdout: OwnedFd::from(stdout),
        stderr: OwnedFd::from(stderr),
        console_socket: req.console_socket.clone(),
    };
    let pid = match &req.exec {
        None => create(ContainerRequest {
            id: &req.id,
            bundle: &req.bundle,
            root: &req.root,
            stdio,
            executor,
            systemd: req.systemd,
        }),
        Some(x) => exec(ExecRequest {
            id: &req.id,
            root: &req.root,
            process: raised_process.as_deref().unwrap_or(&x.process),
            stdio,
            executor,
        }),
    };
    if let Some(path) = &raised_process {
        let _ = std::fs::remove_file(path);
    }
    let pid = pid.map_err(|e| fail(chain(&e)))?;
    if let Some(to_init) = to_init {
        // The container exists with every mount in place: give its init (or the exec'd
        // process) the guest's tree.
        // Last step: it leaves this process in the tree's mount namespace.
        let memory = memory_files(pid);
        guest_fs::build(pid, memory, to_init.as_fd()).map_err(|e| fail(chain(&e)))?;
    }
    Ok(pid)
}

/// The container's memory cgroup usage and limit files, opened here since they are host paths.
fn memory_files(pid: i32) -> Option<(File, File)> {
    let (usage, limit) = wasmbox_container::cgroups::memory_files(pid)?;
    match (File::open(&usage), File::open(&limit)) {
        (Ok(u), Ok(l)) => Some((u, l)),
        (Err(e), _) | (_, Err(e)) => {
            log::warn!("memory cgroup files of pid {pid} ({}): {e}; the guest's memory is capped by the spec's limit only", usage.display());
            None
        }
    }
}
