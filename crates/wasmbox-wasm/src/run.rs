//! Runs a loaded program in the current process (the container's init) and maps the outcome to
//! a process exit status: `proc_exit(n)` → n, a normal return → 0, a trap → 134 (as
//! `wasmtime run` reports an abort) with the trap on stderr, a termination signal s → 128+s.

use std::io::Write;

use std::os::fd::{AsRawFd, BorrowedFd};

use wasmtime::{Store, UpdateDeadline, Val, ValType};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{
    FsPerms, I32Exit, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use crate::memory::{Budget, MemoryCgroup};
use crate::network::Network;
use crate::policy::{Policy, Preopens, TIMEOUT_EXIT};
use crate::program::{Code, Program};
use crate::sandbox::{GuestDirs, SandboxSpec};
use crate::terminate;

/// Exit status of a trapped guest (128 + SIGABRT, like `wasmtime run`).
pub const TRAP_EXIT: i32 = 134;

/// Store data for core modules (WASI preview 1).
pub struct P1State {
    pub(crate) wasi: WasiP1Ctx,
    limits: Budget,
    /// State of the layer around Wasmtime's preview 1 (see [`crate::layer`]).
    pub(crate) layer: crate::layer::State,
}

/// Store data for components (WASI preview 2).
pub struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: Budget,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// How a guest run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    Trapped(String),
    /// Could not start: what the runner could not set up (such as a listener).
    Failed(String),
    /// Ended by the policy's timeout.
    TimedOut(std::time::Duration),
}

impl Outcome {
    pub fn exit_status(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::Signaled(sig) => terminate::exit_status(*sig),
            Outcome::Trapped(_) => TRAP_EXIT,
            Outcome::Failed(_) => 1,
            Outcome::TimedOut(_) => TIMEOUT_EXIT,
        }
    }

    /// Classifies the result of calling the guest's entry point.
    pub fn from_result(result: wasmtime::Result<()>, signal: Option<i32>) -> Self {
        match result {
            Ok(()) => Outcome::Exited(0),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    Outcome::Exited(exit.0)
                } else if let Some(after) = terminate::timed_out() {
                    Outcome::TimedOut(after)
                } else if let Some(sig) = signal {
                    Outcome::Signaled(sig)
                } else {
                    Outcome::Trapped(format!("{e:?}"))
                }
            }
        }
    }
}

/// What the container hands the guest beyond the spec: its directories, the container's
/// memory cgroup (for the memory budget) and the capability policy.
pub struct Granted<'a> {
    pub dirs: Option<GuestDirs<'a>>,
    pub memory: Option<MemoryCgroup>,
    pub policy: &'a Policy,
}

/// Runs `program` with what `sandbox` and `granted` give it; returns the process exit status.
pub fn run(program: &Program, sandbox: &SandboxSpec, granted: Granted<'_>) -> i32 {
    // Wasmtime's WASI runs its host I/O on a tokio runtime it builds on first use, with a worker
    // per core; one guest needs one (blocking file I/O has its own pool). tokio reads this
    // documented override when it builds the runtime. The guest's environment comes from the
    // spec, not from this process, and no other thread exists yet to race with the write.
    std::env::set_var("TOKIO_WORKER_THREADS", "1");
    if let Err(e) = terminate::install(&program.engine) {
        log::warn!("cannot install signal handling: {e}");
    }
    if let Some(after) = granted.policy.timeout {
        if let Err(e) = terminate::arm_timeout(&program.engine, after, &program.guest_path) {
            log::warn!("cannot arm the timeout: {e}");
        }
    }
    let outcome = match execute(program, sandbox, granted) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Trapped(format!("{e:?}")),
    };
    let _ = std::io::stdout().flush();
    match &outcome {
        Outcome::Trapped(msg) => {
            let _ = writeln!(std::io::stderr(), "wasmbox: {}: {msg}", program.guest_path);
            log::error!("{}: guest trapped: {msg}", program.guest_path);
        }
        Outcome::Failed(msg) => {
            let _ = writeln!(std::io::stderr(), "wasmbox: {}: {msg}", program.guest_path);
            log::error!("{}: {msg}", program.guest_path);
        }
        Outcome::TimedOut(after) => terminate::report_timeout(&program.guest_path, *after),
        _ => {}
    }
    outcome.exit_status()
}

/// Preopens the directory `dir` as `guest`. Wasmtime opens preopens by path, so the runner
/// changes into the directory and opens `.`: no path in the container's own mount namespace
/// (which still has `/proc`) is ever looked up.
fn preopen(
    b: &mut WasiCtxBuilder,
    dir: BorrowedFd<'_>,
    guest: &str,
    perms: FsPerms,
) -> wasmtime::Result<()> {
    nix::unistd::fchdir(dir.as_raw_fd())
        .map_err(|e| wasmtime::format_err!("preopen {guest}: {e}"))?;
    // Read-write unless the policy says otherwise: the kernel refuses writes to read-only
    // mounts (EROFS), as under runc.
    b.preopened_dir(".", guest, perms)?;
    Ok(())
}

/// The WASI context the spec and policy grant; `listeners` preopened listeners come first
/// (see [`crate::sockets`]).
fn wasi_builder(
    sandbox: &SandboxSpec,
    dirs: Option<GuestDirs<'_>>,
    policy: &Policy,
    network: Option<&Network>,
    listeners: usize,
    blocking: bool,
) -> wasmtime::Result<WasiCtxBuilder> {
    let mut b = WasiCtxBuilder::new();
    // `blocking`: a command runs synchronously on this thread, so its file calls may block it
    // rather than hop to tokio's blocking pool and back per call (an interpreter's start makes
    // hundreds), as `wasmtime run` does. Not for HTTP handlers, which are tasks on the runtime.
    // Set before the preopens: each directory takes the setting when it is added.
    b.allow_blocking_current_thread(blocking);
    b.args(&sandbox.args)
        .envs(&sandbox.env)
        .inherit_stdio()
        .initial_cwd(&sandbox.cwd);
    if listeners > 0 && !sandbox.env.iter().any(|(k, _)| k == "LISTEN_FDS") {
        b.envs(&crate::listeners::env(&policy.listen));
    }
    if let Some(dirs) = dirs {
        if listeners > 0 {
            // The listeners' placeholders in Wasmtime's table: the empty read-only tmpfs that
            // covers the guest's /dev (the guest never reaches them, the sockets layer
            // answers for those descriptors).
            let empty = crate::sandbox::open_dir_beneath(dirs.root, "/dev")
                .map_err(|e| wasmtime::format_err!("the listeners' placeholder directory: {e}"))?;
            for i in 0..listeners {
                preopen(
                    &mut b,
                    std::os::fd::AsFd::as_fd(&empty),
                    &format!("<listener {i}>"),
                    FsPerms::ReadOnly,
                )?;
            }
        }
        match &policy.preopens {
            // One preopen, "/": wasi-libc resolves every path (relative ones too, until the
            // guest calls chdir) by the longest matching preopen name, and a "." would be
            // taken for "/".
            Preopens::Root => preopen(&mut b, dirs.root, "/", FsPerms::ReadWrite)?,
            Preopens::None => {}
            Preopens::Only(list) => {
                for p in list {
                    // Opened beneath the guest's root: no symlink or ".." leads out of it.
                    let dir = crate::sandbox::open_dir_beneath(dirs.root, &p.path)
                        .map_err(|e| wasmtime::format_err!("preopen {}: {e}", p.path))?;
                    let perms = if p.read_only {
                        FsPerms::ReadOnly
                    } else {
                        FsPerms::ReadWrite
                    };
                    preopen(&mut b, std::os::fd::AsFd::as_fd(&dir), &p.path, perms)?;
                }
            }
        }
    }
    if let Some(network) = network {
        network.apply(&mut b);
    }
    Ok(b)
}

/// Stops guest code at the next epoch check once a termination signal arrived.
pub(crate) fn arm_epoch<T: 'static>(store: &mut Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| {
        if let Some(after) = terminate::timed_out() {
            return Err(wasmtime::format_err!("timed out after {after:?}"));
        }
        match terminate::requested() {
            Some(sig) => Err(wasmtime::format_err!("terminated by signal {sig}")),
            None => Ok(UpdateDeadline::Continue(1)),
        }
    });
}

fn execute(
    program: &Program,
    sandbox: &SandboxSpec,
    granted: Granted<'_>,
) -> wasmtime::Result<Outcome> {
    let engine = &program.engine;
    let listening: &[crate::policy::Listen] = match &program.code {
        // Components bind their own sockets (checked by the network policy).
        Code::Component(_) | Code::HttpProxy { .. } => &[],
        Code::Module { .. } => &granted.policy.listen,
    };
    // Bound before the guest starts; they stay here until it has ended (a unix socket's file
    // is removed then).
    let bound = match crate::listeners::bind(listening, granted.dirs.map(|d| d.root)) {
        Ok(b) => b,
        Err(e) => return Ok(Outcome::Failed(e)),
    };
    if let Code::HttpProxy { pre, pooled, .. } = &program.code {
        // A context per request, made the same way as a command's.
        let root = granted
            .dirs
            .map(|d| d.root.try_clone_to_owned())
            .transpose()
            .map_err(|e| wasmtime::format_err!("duplicate the guest's root: {e}"))?;
        // Resolved once for all requests; the outbound sender uses it even without sockets.
        let network = Network::new(granted.policy);
        let sockets = sandbox.network.then(|| network.clone());
        let (spec, policy) = (sandbox.clone(), granted.policy.clone());
        let build = Box::new(move || -> wasmtime::Result<WasiCtx> {
            let dirs = root.as_ref().map(|r| GuestDirs {
                root: std::os::fd::AsFd::as_fd(r),
            });
            Ok(wasi_builder(&spec, dirs, &policy, sockets.as_ref(), 0, false)?.build())
        });
        return crate::http::serve(engine, pre, pooled.as_ref(), sandbox, granted, &network, build);
    }
    let network = sandbox.network.then(|| Network::new(granted.policy));
    let mut wasi = wasi_builder(sandbox, granted.dirs, granted.policy, network.as_ref(), bound.len(), true)?;
    let limits = Budget::new(granted.memory, sandbox.memory_limit);
    let result = match &program.code {
        Code::Module {
            pre,
            func,
            base,
            trampoline,
        } => {
            // The EROFS wrappers know the "/" preopen only (descriptor 3).
            let root = granted
                .dirs
                .filter(|_| granted.policy.preopens == Preopens::Root)
                .map(|d| d.root.try_clone_to_owned())
                .transpose()
                .map_err(|e| wasmtime::format_err!("duplicate the guest's root: {e}"))?;
            let listeners = bound
                .iter()
                .map(|b| b.fd.try_clone())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| wasmtime::format_err!("duplicate a listener: {e}"))?;
            let state = P1State {
                wasi: wasi.build_p1(),
                limits,
                layer: crate::layer::State {
                    root,
                    sockets: crate::sockets::Table::with_listeners(listeners),
                    ..Default::default()
                },
            };
            let mut store = Store::new(engine, state);
            store.limiter(|s| &mut s.limits);
            arm_epoch(&mut store);
            pre.instantiate(&mut store).and_then(|instance| {
                match trampoline {
                    Some(t) => {
                        crate::layer::connect(&mut store, base, t, &instance, !bound.is_empty())?
                    }
                    // Program::load refuses listeners without the trampoline.
                    None if !bound.is_empty() => {
                        wasmtime::bail!("preopened listeners need the trampoline")
                    }
                    None => {}
                }
                call_module(&mut store, &instance, func.as_deref(), &sandbox.args)
            })
        }
        Code::Component(pre) => {
            let state = P2State {
                ctx: wasi.build(),
                table: ResourceTable::new(),
                limits,
            };
            let mut store = Store::new(engine, state);
            store.limiter(|s| &mut s.limits);
            arm_epoch(&mut store);
            pre.instantiate(&mut store).and_then(|command| {
                command
                    .wasi_cli_run()
                    .call_run(&mut store)?
                    .map_err(|()| wasmtime::Error::new(I32Exit(1)))
            })
        }
        Code::HttpProxy { .. } => Err(wasmtime::format_err!("an HTTP component is served, not run")),
    };
    drop(bound);
    Ok(Outcome::from_result(result, terminate::requested()))
}

/// Runs the instantiated module. Without `#func` this is a WASI command: `_start` takes
/// no parameters and the process args are the guest's argv. With `#func`, like
/// `wasmtime run --invoke`, parameters come from the process args after argv[0] and results
/// are printed one per line.
fn call_module(
    store: &mut Store<P1State>,
    instance: &wasmtime::Instance,
    func: Option<&str>,
    args: &[String],
) -> wasmtime::Result<()> {
    let Some(func) = func else {
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
        return start.call(&mut *store, ());
    };
    if let Some(init) = instance.get_func(&mut *store, "_initialize") {
        init.call(&mut *store, &[], &mut [])?;
    }
    let f = instance
        .get_func(&mut *store, func)
        .ok_or_else(|| wasmtime::format_err!("export {func:?} not found"))?;
    let ty = f.ty(&*store);
    let params = parse_params(
        &ty.params().collect::<Vec<_>>(),
        args.get(1..).unwrap_or_default(),
    )?;
    let mut results = vec![Val::I32(0); ty.results().len()];
    f.call(&mut *store, &params, &mut results)?;
    let mut out = std::io::stdout().lock();
    for r in results {
        match r {
            Val::I32(v) => writeln!(out, "{v}")?,
            Val::I64(v) => writeln!(out, "{v}")?,
            Val::F32(v) => writeln!(out, "{}", f32::from_bits(v))?,
            Val::F64(v) => writeln!(out, "{}", f64::from_bits(v))?,
            other => writeln!(out, "{other:?}")?,
        }
    }
    out.flush()?;
    Ok(())
}

/// Parses invoke arguments for an export's parameter types.
pub fn parse_params(types: &[ValType], args: &[String]) -> wasmtime::Result<Vec<Val>> {
    if types.len() != args.len() {
        wasmtime::bail!(
            "the export takes {} argument(s), {} given",
            types.len(),
            args.len()
        );
    }
    types
        .iter()
        .zip(args)
        .map(|(t, a)| {
            let bad = || wasmtime::format_err!("argument {a:?} is not a valid {t}");
            Ok(match t {
                ValType::I32 => Val::I32(a.parse().map_err(|_| bad())?),
                ValType::I64 => Val::I64(a.parse().map_err(|_| bad())?),
                ValType::F32 => Val::F32(a.parse::<f32>().map_err(|_| bad())?.to_bits()),
                ValType::F64 => Val::F64(a.parse::<f64>().map_err(|_| bad())?.to_bits()),
                _ => wasmtime::bail!("parameter type {t} is not supported on the command line"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_outcomes_to_exit_status() {
        assert_eq!(Outcome::from_result(Ok(()), None).exit_status(), 0);
        let exit = wasmtime::Error::new(I32Exit(42));
        assert_eq!(Outcome::from_result(Err(exit), None).exit_status(), 42);
        let trap = wasmtime::format_err!("wasm trap: unreachable");
        let o = Outcome::from_result(Err(trap), None);
        assert!(matches!(&o, Outcome::Trapped(m) if m.contains("unreachable")));
        assert_eq!(o.exit_status(), 134);
        let interrupted = wasmtime::format_err!("interrupt");
        assert_eq!(
            Outcome::from_result(Err(interrupted), Some(15)).exit_status(),
            143
        );
        // An explicit exit wins over a signal that raced with it.
        let exit = wasmtime::Error::new(I32Exit(3));
        assert_eq!(Outcome::from_result(Err(exit), Some(15)).exit_status(), 3);
    }

    #[test]
    fn parses_invoke_params() {
        let v = parse_params(&[ValType::I32, ValType::F64], &["7".into(), "1.5".into()]).unwrap();
        assert!(matches!(v[0], Val::I32(7)));
        assert!(parse_params(&[ValType::I32], &[]).is_err());
        assert!(parse_params(&[ValType::I32], &["x".into()]).is_err());
    }
}
