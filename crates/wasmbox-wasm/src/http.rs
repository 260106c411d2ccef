//! Serving a `wasi:http/proxy` component: a component that exports
//! `wasi:http/incoming-handler@0.2.x` is served, not run. The container's init listens (in the
//! container's network namespace) on `wasmbox.dev/http` (default `0.0.0.0:8080`) and calls the
//! handler once per request, each in a fresh instance of the pre-linked component (as
//! `wasmtime serve` does), with the WASI context the spec and policy grant.
//!
//! hyper serves HTTP/1.1 (keep-alive) and HTTP/2 over cleartext (prior knowledge) on the same
//! port, on a tokio runtime; each request's handler runs on a blocking thread of that runtime
//! with a synchronous store (the engine is the one every guest uses), and its response is
//! handed to hyper as soon as the guest sets it, so a body streams while the guest writes it.
//! A request whose handler traps, or returns without a response, answers 500 (logged); the
//! server keeps serving.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::sync::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::memory::Budget;
use crate::run::{Granted, Outcome};
use crate::sandbox::SandboxSpec;

/// The interface whose export makes a component an HTTP handler.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// Store data of one request.
pub struct HttpState {
    ctx: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    limits: Budget,
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
            hooks: wasmtime_wasi_http::default_hooks(),
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
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    ProxyPre::new(linker.instantiate_pre(component)?)
}

/// What every request's handler needs, shared by the connections.
struct Server {
    engine: Engine,
    pre: ProxyPre<HttpState>,
    sandbox: SandboxSpec,
    /// Builds a request's WASI context. Preopening changes the process's working directory
    /// for a moment (see `run::preopen`), so contexts are built one at a time.
    builder: Mutex<Box<dyn FnMut() -> wasmtime::Result<WasiCtx> + Send>>,
}

/// Serves `pre` until the process is told to stop; the outcome if it ends otherwise.
pub(crate) fn serve(
    engine: &Engine,
    pre: &ProxyPre<HttpState>,
    sandbox: &SandboxSpec,
    granted: Granted<'_>,
    build_ctx: Box<dyn FnMut() -> wasmtime::Result<WasiCtx> + Send>,
) -> wasmtime::Result<Outcome> {
    let addr = granted.policy.http;
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => return Ok(Outcome::Failed(format!("cannot listen on {addr} (wasmbox.dev/http): {e}"))),
    };
    listener.set_nonblocking(true)?;
    let server = Arc::new(Server {
        engine: engine.clone(),
        pre: pre.clone(),
        sandbox: sandbox.clone(),
        builder: Mutex::new(build_ctx),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()).min(4))
        .thread_name("wasmbox-http")
        .enable_all()
        .build()?;
    log::info!("serving wasi:http on {addr}");
    runtime.block_on(accept_loop(listener, server, addr))
}

async fn accept_loop(listener: std::net::TcpListener, server: Arc<Server>, addr: SocketAddr) -> wasmtime::Result<Outcome> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept on {addr}: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(server.clone(), req));
            // HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port.
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                log::debug!("connection: {e}");
            }
        });
    }
}

type Answer = Response<HyperOutgoingBody>;

fn plain(status: StatusCode, text: &str) -> Answer {
    let body = Full::new(Bytes::from(text.to_string())).map_err(|never| match never {}).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

async fn handle(server: Arc<Server>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || server.call(req, tx))
    };
    match rx.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => {
            log::warn!("the handler answered with an error: {code:?}");
            Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"))
        }
        // No response: the handler trapped or returned without setting one.
        Err(_) => {
            match task.await {
                Ok(Err(e)) => {
                    log::error!("the handler failed: {e:?}");
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("wasmbox: request failed: {e:#}\n").as_bytes());
                }
                Ok(Ok(())) => log::warn!("the handler returned without a response"),
                Err(e) => log::error!("the handler's thread: {e}"),
            }
            Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"))
        }
    }
}

impl Server {
    /// One request, in a fresh instance.
    fn call(
        &self,
        req: Request<Incoming>,
        tx: tokio::sync::oneshot::Sender<Result<Answer, wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>>,
    ) -> wasmtime::Result<()> {
        let ctx = {
            let mut build = self.builder.lock().map_err(|_| wasmtime::format_err!("the WASI context builder is poisoned"))?;
            build()?
        };
        let state = HttpState {
            ctx,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            // Each instance within the container's limit; instances running at once are not
            // counted together (the cgroup's limit still holds for the sum).
            limits: Budget::new(None, self.sandbox.memory_limit),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        crate::run::arm_epoch(&mut store);
        let proxy = self.pre.instantiate(&mut store)?;
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out)
    }
}
