//! The `wasi:http/proxy` world (0.2): which components are HTTP handlers, the store data of a
//! request, and linking a handler against Wasmtime's WASI and wasi:http.

use std::time::Instant;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::http::outbound::Outbound;
use crate::policy::memory::Budget;

/// The interface whose export makes a component an HTTP handler.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// Store data of one request.
pub struct HttpState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) outbound: Outbound,
    pub(crate) limits: Budget,
    /// When this request's guest code is stopped.
    pub(crate) deadline: Instant,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.outbound,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Whether `component` is an HTTP handler (`wasi:http/proxy`) rather than a command.
pub fn is_proxy(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with(INCOMING_HANDLER))
}

/// Links `component` against all of WASI and `wasi:http`, as `wasmtime serve` does: a handler
/// built with a full libc imports the CLI interfaces too (its WASI context is a command's).
pub fn link(engine: &Engine, component: &Component) -> wasmtime::Result<ProxyPre<HttpState>> {
    let mut linker = Linker::<HttpState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    ProxyPre::new(linker.instantiate_pre(component)?)
}

/// An HTTP component on an engine with a pooling allocator sized for `concurrency` requests.
pub struct Pooled {
    pub engine: Engine,
    pub pre: ProxyPre<HttpState>,
    pub concurrency: usize,
}
