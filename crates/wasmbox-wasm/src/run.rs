//! Runs a loaded program in the current process (the container's init) and maps the outcome to
//! a process exit status: `proc_exit(n)` → n, a normal return → 0, a trap → 134 (as
//! `wasmtime run` reports an abort) with the trap on stderr, a termination signal s → 128+s.

use std::io::Write;

use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline, Val, ValType};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::program::{Code, Program};
use crate::sandbox::{list_top_level_dirs, SandboxSpec};
use crate::terminate;

/// Exit status of a trapped guest (128 + SIGABRT, like `wasmtime run`).
pub const TRAP_EXIT: i32 = 134;

/// Store data for core modules (WASI preview 1).
pub struct P1State {
    pub(crate) wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// Store data for components (WASI preview 2).
pub struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
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
}

impl Outcome {
    pub fn exit_status(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::Signaled(sig) => terminate::exit_status(*sig),
            Outcome::Trapped(_) => TRAP_EXIT,
        }
    }

    /// Classifies the result of calling the guest's entry point.
    pub fn from_result(result: wasmtime::Result<()>, signal: Option<i32>) -> Self {
        match result {
            Ok(()) => Outcome::Exited(0),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    Outcome::Exited(exit.0)
                } else if let Some(sig) = signal {
                    Outcome::Signaled(sig)
                } else {
                    Outcome::Trapped(format!("{e:?}"))
                }
            }
        }
    }
}

/// Runs `program` with what `sandbox` grants and returns the process exit status.
pub fn run(program: &Program, sandbox: &SandboxSpec) -> i32 {
    if let Err(e) = terminate::install(&program.engine) {
        log::warn!("cannot install signal handling: {e}");
    }
    let outcome = match execute(program, sandbox) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Trapped(format!("{e:?}")),
    };
    let _ = std::io::stdout().flush();
    if let Outcome::Trapped(msg) = &outcome {
        let _ = writeln!(std::io::stderr(), "wasmbox: {}: {msg}", program.guest_path);
        log::error!("{}: guest trapped: {msg}", program.guest_path);
    }
    outcome.exit_status()
}

fn wasi_builder(sandbox: &SandboxSpec) -> WasiCtxBuilder {
    let mut b = WasiCtxBuilder::new();
    b.args(&sandbox.args).envs(&sandbox.env).inherit_stdio();
    for p in sandbox.plan_preopens(&list_top_level_dirs()) {
        let perms = if p.readonly { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
        if let Err(e) = b.preopened_dir(&p.host, &p.guest, perms) {
            // A mount on a file, or a path that vanished: the guest simply doesn't get it.
            log::debug!("not preopening {} as {}: {e:#}", p.host, p.guest);
        }
    }
    if sandbox.network {
        b.inherit_network().allow_ip_name_lookup(true);
    }
    b
}

fn limits(sandbox: &SandboxSpec) -> StoreLimits {
    let mut l = StoreLimitsBuilder::new();
    if let Some(max) = sandbox.memory_limit {
        l = l.memory_size(max);
    }
    l.build()
}

/// Stops guest code at the next epoch check once a termination signal arrived.
fn arm_epoch<T: 'static>(store: &mut Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| match terminate::requested() {
        Some(sig) => Err(wasmtime::format_err!("terminated by signal {sig}")),
        None => Ok(UpdateDeadline::Continue(1)),
    });
}

fn execute(program: &Program, sandbox: &SandboxSpec) -> wasmtime::Result<Outcome> {
    let engine = &program.engine;
    let result = match &program.code {
        Code::Module { pre, func } => {
            let state = P1State {
                wasi: wasi_builder(sandbox).build_p1(),
                limits: limits(sandbox),
            };
            let mut store = Store::new(engine, state);
            store.limiter(|s| &mut s.limits);
            arm_epoch(&mut store);
            call_module(&mut store, pre, func.as_deref(), &sandbox.args)
        }
        Code::Component(pre) => {
            let state = P2State {
                ctx: wasi_builder(sandbox).build(),
                table: ResourceTable::new(),
                limits: limits(sandbox),
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
    };
    Ok(Outcome::from_result(result, terminate::requested()))
}

/// Instantiates and runs the module. Without `#func` this is a WASI command: `_start` takes
/// no parameters and the process args are the guest's argv. With `#func`, like
/// `wasmtime run --invoke`, parameters come from the process args after argv[0] and results
/// are printed one per line.
fn call_module(
    store: &mut Store<P1State>,
    pre: &wasmtime::InstancePre<P1State>,
    func: Option<&str>,
    args: &[String],
) -> wasmtime::Result<()> {
    let instance = pre.instantiate(&mut *store)?;
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
    let params = parse_params(&ty.params().collect::<Vec<_>>(), args.get(1..).unwrap_or_default())?;
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
        assert_eq!(Outcome::from_result(Err(interrupted), Some(15)).exit_status(), 143);
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
