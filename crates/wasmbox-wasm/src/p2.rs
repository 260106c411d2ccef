//! WASI preview 2 commands: the store's data, and linking a `wasi:cli/command` component
//! against Wasmtime's preview 2.

use wasmtime::component::Component;
use wasmtime::Engine;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::policy::memory::Budget;

/// Store data for components (WASI preview 2).
pub struct P2State {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: Budget,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl P2State {
    pub(crate) fn new(ctx: WasiCtx, limits: Budget) -> Self {
        Self {
            ctx,
            table: ResourceTable::new(),
            limits,
        }
    }
}

/// Links a command component against Wasmtime's preview 2 (synchronous: a command runs on the
/// init's own thread).
pub fn link(engine: &Engine, component: &Component) -> wasmtime::Result<CommandPre<P2State>> {
    let mut linker = wasmtime::component::Linker::<P2State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    CommandPre::new(linker.instantiate_pre(component)?)
}
