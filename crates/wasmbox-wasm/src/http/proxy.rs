//! HTTP handlers of both generations: `wasi:http/proxy` (0.2, exports
//! `wasi:http/incoming-handler`) and `wasi:http/service` (0.3, exports `wasi:http/handler`).
//! Which components are handlers, the store data of a request, and linking a handler against
//! Wasmtime's WASI and wasi:http (0.2 and 0.3, as `wasmtime serve` does).

use std::time::Instant;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::compile::kind::exports_interface;
use crate::http::outbound::Outbound;
use crate::policy::memory::Budget;

/// The interfaces whose export makes a component an HTTP handler: 0.2 and 0.3.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2";
const HANDLER_P3: &str = "wasi:http/handler@0.3";

/// Store data of one instance: of one request (0.2), or of the requests it serves (0.3).
pub struct HttpState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) outbound: Outbound,
    pub(crate) limits: Budget,
    /// When this instance's guest code is stopped (None: by whoever serves it, not by time).
    pub(crate) deadline: Option<Instant>,
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

/// Whether `component` is an HTTP handler (0.2 or 0.3) rather than a command.
pub fn is_proxy(engine: &Engine, component: &Component) -> bool {
    exports_interface(engine, component, INCOMING_HANDLER) || exports_interface(engine, component, HANDLER_P3)
}

/// A linked handler, of either generation.
#[derive(Clone)]
pub enum HandlerPre {
    P2(ProxyPre<HttpState>),
    P3(ServicePre<HttpState>),
}

/// Links `component` against all of WASI and `wasi:http`, 0.2 and 0.3, as `wasmtime serve`
/// does: a handler built with a full libc imports the CLI interfaces too (its WASI context is a
/// command's), and a 0.3 one may import 0.2 interfaces. A 0.3 handler is served as one.
pub fn link(engine: &Engine, component: &Component) -> wasmtime::Result<HandlerPre> {
    let mut linker = Linker::<HttpState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    let pre = linker.instantiate_pre(component)?;
    if exports_interface(engine, component, HANDLER_P3) {
        return Ok(HandlerPre::P3(ServicePre::new(pre)?));
    }
    Ok(HandlerPre::P2(ProxyPre::new(pre)?))
}

/// An HTTP component on an engine with a pooling allocator sized for `concurrency` requests.
pub struct Pooled {
    pub engine: Engine,
    pub pre: HandlerPre,
    pub concurrency: usize,
}
