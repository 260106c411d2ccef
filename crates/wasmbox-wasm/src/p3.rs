//! WASI 0.3 commands: a component exporting `wasi:cli/run@0.3.x`, linked against Wasmtime's
//! WASI 0.3 (and 0.2, which a toolchain's libc may still import, as `wasmtime run` links both)
//! and run on the component model's async event loop.
//!
//! A 0.3 command's store data is a 0.2 command's ([`P2State`]): one WASI context serves both
//! generations, so the spec and the policy grant a 0.3 guest exactly what they grant a 0.2 one.

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p3::bindings::CommandPre;
use wasmtime_wasi::I32Exit;

use crate::p2::P2State;

/// The interface whose export makes a component a WASI 0.3 command.
const RUN: &str = "wasi:cli/run@0.3";

/// Whether `component` is a WASI 0.3 command.
pub fn is_command(engine: &Engine, component: &Component) -> bool {
    crate::compile::kind::exports_interface(engine, component, RUN)
}

/// Links a 0.3 command against Wasmtime's WASI 0.3 and 0.2.
pub fn link(engine: &Engine, component: &Component) -> wasmtime::Result<CommandPre<P2State>> {
    let mut linker = Linker::<P2State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    CommandPre::new(linker.instantiate_pre(component)?)
}

/// Instantiates the command in `store` and calls its `run` on this thread, driving the event
/// loop until it returns; `run`'s error (a guest's `Err`) is exit status 1, as for 0.2.
pub fn call_run(pre: &CommandPre<P2State>, mut store: Store<P2State>) -> wasmtime::Result<()> {
    wasmtime_wasi::runtime::in_tokio(async move {
        let command = pre.instantiate_async(&mut store).await?;
        store
            .run_concurrent(async move |a| command.wasi_cli_run().call_run(a).await)
            .await??
            .map_err(|()| wasmtime::Error::new(I32Exit(1)))
    })
}
