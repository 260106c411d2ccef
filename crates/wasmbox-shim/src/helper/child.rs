//! The helper process: loads the program, creates the container, answers, exits.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use wasmbox_container::create::{create, CreateRequest as ContainerRequest, Stdio};
use wasmbox_container::exec::{exec, ExecRequest};
use wasmbox_container::executor::{WasmWorkload, WasmboxExecutor};
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
    ENGINE.get_or_init(|| {
        wasmbox_wasm::compile::engine::new_baseline_engine().map_err(|e| e.to_string())
    })
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
fn container_seccomp(
    bundle: &std::path::Path,
) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, String> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .map_err(|e| format!("read the container's spec: {e}"))?;
    Ok(spec.linux().as_ref().and_then(|l| l.seccomp().clone()))
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

    let (executor, to_init) = match &req.wasm {
        None => (WasmboxExecutor::native(), None),
        Some(w) => {
            let engine = if w.baseline {
                baseline_engine()
            } else {
                engine()
            };
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
            process: &x.process,
            stdio,
            executor,
        }),
    }
    .map_err(|e| fail(chain(&e)))?;
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
