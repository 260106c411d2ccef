//! Runs a loaded program in the current process (the container's init) and maps the outcome to
//! a process exit status: `proc_exit(n)` → n, a normal return → 0, a trap → 134 (as
//! `wasmtime run` reports an abort) with the trap on stderr, a termination signal s → 128+s.
//!
//! Its parts: [`program`] (loading and linking from the compile cache), [`wasi`] (the WASI
//! context the spec and policy grant) and [`invoke`] (calling a core module's entry). This
//! module puts them together with [`crate::p1`], [`crate::p2`] and [`crate::http`].

pub mod invoke;
mod ordering;
pub mod program;
pub mod wasi;

use std::io::Write;

use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{I32Exit, WasiCtx};

use crate::outcome::Outcome;
use crate::p1::state::{State, Table};
use crate::p1::P1State;
use crate::p2::P2State;
use crate::policy::memory::Budget;
use crate::policy::network::Network;
use crate::policy::{terminate, Preopens};
use crate::sandbox::{Granted, GuestDirs, SandboxSpec};
use invoke::call_module;
use program::{Code, Program};
use wasi::wasi_builder;

/// Runs `program` with what `sandbox` and `granted` give it; returns the process exit status.
pub fn run(program: &Program, sandbox: &SandboxSpec, granted: Granted<'_>) -> i32 {
    // Wasmtime's WASI runs its host I/O on a tokio runtime it builds on first use, with a worker
    // per core; one guest needs one (blocking file I/O has its own pool). tokio reads this
    // documented override when it builds the runtime. The guest's environment comes from the
    // spec, not from this process, and no other thread exists yet to race with the write.
    std::env::set_var("TOKIO_WORKER_THREADS", "1");
    if let Code::HttpProxy { .. } = &program.code {
        crate::http::server::allow_arenas();
    }
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
    if matches!(
        outcome,
        Outcome::Trapped(_) | Outcome::Failed(_) | Outcome::TimedOut(_)
    ) {
        ordering::let_stdout_reader_catch_up();
    }
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

/// Whether the guest gets sockets: its own network namespace (a component's wasi:sockets, a
/// module's socket calls), preopened listeners, or an HTTP server.
pub fn uses_network(
    program: &Program,
    sandbox: &SandboxSpec,
    policy: &crate::policy::Policy,
) -> bool {
    sandbox.network
        || match &program.code {
            Code::HttpProxy { .. } => true,
            Code::Module { .. } => !policy.listen.is_empty(),
            Code::Component(_) | Code::ComponentP3(_) => false,
        }
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
        Code::Component(_) | Code::ComponentP3(_) | Code::HttpProxy { .. } => &[],
        Code::Module { .. } => &granted.policy.listen,
    };
    // Bound before the guest starts; they stay here until it has ended (a unix socket's file
    // is removed then).
    let bound = match crate::p1::listeners::bind(listening, granted.dirs.map(|d| d.root)) {
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
        return crate::http::serve(
            engine,
            pre,
            pooled.as_ref(),
            sandbox,
            granted,
            &network,
            build,
        );
    }
    let network = sandbox.network.then(|| Network::new(granted.policy));
    let mut wasi = wasi_builder(
        sandbox,
        granted.dirs,
        granted.policy,
        network.as_ref(),
        bound.len(),
        true,
    )?;
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
            if let Some(pwd) = sandbox.preview1_pwd() {
                wasi.env("PWD", pwd);
            }
            let state = P1State {
                wasi: wasi.build_p1(),
                limits,
                layer: State {
                    root,
                    sockets: Table::with_listeners(listeners),
                    ..Default::default()
                },
            };
            let mut store = Store::new(engine, state);
            store.limiter(|s| &mut s.limits);
            arm_epoch(&mut store);
            pre.instantiate(&mut store).and_then(|instance| {
                match trampoline {
                    Some(t) => crate::p1::layer::connect(
                        &mut store,
                        base,
                        t,
                        &instance,
                        !bound.is_empty(),
                    )?,
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
            let state = P2State::new(wasi.build(), limits);
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
        Code::ComponentP3(pre) => {
            let state = P2State::new(wasi.build(), limits);
            let mut store = Store::new(engine, state);
            store.limiter(|s| &mut s.limits);
            arm_epoch(&mut store);
            crate::p3::call_run(pre, store)
        }
        Code::HttpProxy { .. } => Err(wasmtime::format_err!(
            "an HTTP component is served, not run"
        )),
    };
    drop(bound);
    Ok(Outcome::from_result(result, terminate::requested()))
}
