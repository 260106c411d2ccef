//! The server: accepting, connections, a request per instance, timeouts and shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::http::outbound::Outbound;
use crate::http::proxy::{HandlerPre, HttpState, Pooled};
use crate::outcome::Outcome;
use crate::policy::memory::Budget;
use crate::policy::network::Network;
use crate::sandbox::Granted;
use crate::sandbox::SandboxSpec;

/// What every request's handler needs, shared by the connections.
struct Server {
    engine: Engine,
    pre: HandlerPre,
    sandbox: SandboxSpec,
    /// Builds a request's WASI context. Preopening changes the process's working directory
    /// for a moment (see `crate::run::wasi`), so contexts are built one at a time.
    builder: Mutex<Box<dyn FnMut() -> wasmtime::Result<WasiCtx> + Send>>,
    timeout: Duration,
    access_log: bool,
    /// Sends the handlers' outbound requests, within the egress policy.
    outbound: Outbound,
    /// One permit per handler that may run at once.
    slots: Arc<tokio::sync::Semaphore>,
    /// The idle and header timeouts and the bound on open connections.
    connections: crate::policy::HttpConnections,
}

/// How often the engine's epoch advances while serving: the granularity of request timeouts.
const EPOCH_TICK: Duration = Duration::from_millis(100);

/// How often the accept loop looks for a termination signal.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How often connections past their idle or header timeout are closed.
const SWEEP_TICK: Duration = Duration::from_millis(250);

/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `pre` (or `pooled`, the same component on a pooling engine, when it can make an
/// instance) until the process is told to stop; the outcome if it ends otherwise.
pub fn serve(
    engine: &Engine,
    pre: &HandlerPre,
    pooled: Option<&Pooled>,
    sandbox: &SandboxSpec,
    granted: Granted<'_>,
    network: &Network,
    build_ctx: Box<dyn FnMut() -> wasmtime::Result<WasiCtx> + Send>,
) -> wasmtime::Result<Outcome> {
    let addr = granted.policy.http;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The pool holds what the policy allowed where it was made (the create helper, which
    // may count cores differently).
    let allowed = granted.policy.http_concurrency(cores);
    let concurrency = pooled.map_or(allowed, |p| p.concurrency.min(allowed));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.min(4))
        // Wasmtime's WASI does file I/O on blocking threads.
        .max_blocking_threads(concurrency.max(1) + 8)
        .thread_name("wasmbox-http")
        .enable_all()
        .build()?;
    let mut server = Server {
        engine: engine.clone(),
        pre: pre.clone(),
        sandbox: sandbox.clone(),
        builder: Mutex::new(build_ctx),
        timeout: granted.policy.http_timeout,
        access_log: granted.policy.http_access_log,
        outbound: Outbound::new(network.clone()),
        slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
        connections: crate::policy::HttpConnections {
            // Within the init's descriptor limit (the spec's rlimits): accept must never
            // fail for want of one.
            max_connections: crate::http::connections::bound_by_descriptors(
                granted.policy.http_connections.max_connections,
                concurrency,
            ),
            ..granted.policy.http_connections
        },
    };
    // Instances from a pool when the component fits one (more memories or table elements
    // per module than a pool slot holds do not): else from the engine every guest uses.
    // Readiness too: the port accepts only once an instance was made, so a tcpSocket or
    // httpGet probe tells the truth.
    let pooled = match pooled {
        Some(p) => {
            let shared = std::mem::replace(&mut server.engine, p.engine.clone());
            let shared_pre = std::mem::replace(&mut server.pre, p.pre.clone());
            match runtime.block_on(server.instance_check()) {
                Ok(()) => true,
                Err(e) => {
                    log::info!("serving without the pooling allocator: {e:#}");
                    (server.engine, server.pre) = (shared, shared_pre);
                    false
                }
            }
        }
        None => false,
    };
    if !pooled {
        if let Err(e) = runtime.block_on(server.instance_check()) {
            return Ok(Outcome::Failed(format!(
                "the component cannot be instantiated: {e:#}"
            )));
        }
    }
    let server = Arc::new(server);
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            return Ok(Outcome::Failed(format!(
                "cannot listen on {addr} (wasmbox.dev/http): {e}"
            )))
        }
    };
    listener.set_nonblocking(true)?;
    // A signal now only asks the server to drain (see the module documentation).
    crate::policy::terminate::stop_gracefully();
    log::info!(
        "serving wasi:http on {addr}, at most {concurrency} requests at once, instances {}, at most {} connections",
        if pooled { "from a pool" } else { "mapped one by one" },
        server.connections.max_connections
    );
    let outcome = runtime.block_on(accept_loop(listener, server, addr));
    // A handler past its deadline may still sleep in a host call: do not wait for it.
    runtime.shutdown_background();
    outcome
}

/// Resolves once a termination signal arrived.
async fn stop_requested() {
    while crate::policy::terminate::requested().is_none() {
        tokio::time::sleep(STOP_POLL).await;
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    server: Arc<Server>,
    addr: SocketAddr,
) -> wasmtime::Result<Outcome> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    // The epoch only ends requests past their deadline (see `Server::call`).
    let engine = server.engine.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EPOCH_TICK);
        loop {
            tick.tick().await;
            engine.increment_epoch();
        }
    });
    let connections = crate::http::connections::Connections::new(server.connections);
    tokio::spawn({
        let connections = connections.clone();
        async move {
            let mut tick = tokio::time::interval(SWEEP_TICK);
            loop {
                tick.tick().await;
                connections.sweep(Instant::now());
            }
        }
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port.
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let stop = stop_requested();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = async {
                connections.make_room().await;
                listener.accept().await
            } => a,
            () = &mut stop => break,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors (or another transient error): pause rather than spin.
                log::warn!("accept on {addr}: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (conn, registration) = connections.register();
        let service = {
            let (server, conn) = (server.clone(), conn.clone());
            hyper::service::service_fn(move |req| handle(server.clone(), conn.request_began(), req))
        };
        let io = TokioIo::new(crate::http::connections::Tracked::new(stream, conn.clone()));
        let connection = builder.serve_connection(io, service).into_owned();
        let connection = graceful.watch(connection);
        let task = tokio::spawn(async move {
            let _registration = registration;
            if let Err(e) = connection.await {
                log::debug!("connection: {e}");
            }
        });
        conn.served_by(task.abort_handle());
    }
    // No new connections; the requests in flight finish, idle connections close.
    drop(listener);
    log::info!("stopping: waiting for the requests in flight");
    graceful.shutdown().await;
    log::info!("stopped");
    Ok(Outcome::Exited(0))
}

type Answer = Response<HyperOutgoingBody>;
fn plain(status: StatusCode, text: &str) -> Answer {
    let body = Full::new(Bytes::from(text.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

/// Answers `req`; the connection counts it in flight until its response was sent.
async fn handle(
    server: Arc<Server>,
    in_flight: crate::http::connections::InFlight,
    req: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let Ok(answer) = access_logged(server, req).await;
    Ok(answer.map(|body| {
        Guarded {
            body,
            _guard: in_flight,
        }
        .boxed_unsync()
    }))
}

/// A response body holding `_guard` until it is sent (or dropped): a request's place among
/// the connection's requests in flight, or a 0.3 request's event loop (see `call_p3`).
struct Guarded<G> {
    body: HyperOutgoingBody,
    _guard: G,
}

impl<G: Unpin> hyper::body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

async fn access_logged(server: Arc<Server>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    if !server.access_log {
        return respond(server, req).await;
    }
    let started = Instant::now();
    // The path, as HTTP/1.1 sends it (HTTP/2's :path): an HTTP/2 URI is absolute.
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.to_string());
    let (method, version) = (req.method().clone(), req.version());
    let answer = respond(server, req).await;
    if let Ok(a) = &answer {
        // The container's stderr, so kubectl logs shows it.
        let line = format!(
            "wasmbox-http: {method} {target} {version:?} {} {:.1}ms\n",
            a.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    answer
}

async fn respond(server: Arc<Server>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    let arrived = Instant::now();
    let deadline = arrived + server.timeout;
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Waits for a free slot (requests queue rather than fail); the permit goes with the call.
    let permit =
        match tokio::time::timeout(server.timeout, server.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")),
            Err(_) => return Ok(timed_out(server.timeout)),
        };
    let task = {
        let server = server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            server.call(req, tx, deadline).await
        })
    };
    let answer = match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(a) => a,
        Err(_) => return Ok(timed_out(server.timeout)),
    };
    match answer {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => {
            log::warn!("the handler answered with an error: {code:?}");
            Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error\n",
            ))
        }
        // No response by its deadline, whichever timer saw it first (the request's, or the
        // one that ended the handler's instance): the handler did not answer in time.
        Err(_) if Instant::now() >= deadline => Ok(timed_out(server.timeout)),
        // No response: the handler trapped or returned without setting one.
        Err(_) => {
            match task.await {
                Ok(Err(e)) => {
                    log::error!("the handler failed: {e:?}");
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!("wasmbox: request failed: {e:#}\n").as_bytes(),
                    );
                }
                Ok(Ok(())) => log::warn!("the handler returned without a response"),
                Err(e) => log::error!("the handler's thread: {e}"),
            }
            Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error\n",
            ))
        }
    }
}

fn timed_out(after: Duration) -> Answer {
    log::warn!("a request timed out after {after:?} (wasmbox.dev/http-timeout)");
    plain(
        StatusCode::GATEWAY_TIMEOUT,
        "the handler did not answer in time\n",
    )
}

impl Server {
    /// Makes (and drops) one instance, as a request would.
    async fn instance_check(&self) -> wasmtime::Result<()> {
        let mut store = self.store(Instant::now() + self.timeout)?;
        match &self.pre {
            HandlerPre::P2(pre) => pre.instantiate_async(&mut store).await.map(|_| ()),
            HandlerPre::P3(pre) => pre.instantiate_async(&mut store).await.map(|_| ()),
        }
    }

    fn store(&self, deadline: Instant) -> wasmtime::Result<Store<HttpState>> {
        let ctx = {
            let mut build = self
                .builder
                .lock()
                .map_err(|_| wasmtime::format_err!("the WASI context builder is poisoned"))?;
            build()?
        };
        let state = HttpState {
            ctx,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: self.outbound.clone(),
            // Each instance within the container's limit; instances running at once are not
            // counted together (the cgroup's limit still holds for the sum).
            limits: Budget::new(None, self.sandbox.memory_limit),
            deadline,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let timeout = self.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |s| {
            if Instant::now() >= s.data().deadline {
                return Err(wasmtime::format_err!(
                    "the request timed out after {timeout:?}"
                ));
            }
            // Other requests' tasks get the worker between ticks.
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }

    /// One request, in a fresh instance; its guest code is stopped once `deadline` passed.
    async fn call(&self, req: Request<Incoming>, tx: AnswerSender, deadline: Instant) -> wasmtime::Result<()> {
        let mut store = self.store(deadline)?;
        let pre = match &self.pre {
            HandlerPre::P2(pre) => pre,
            HandlerPre::P3(pre) => return call_p3(store, pre, req, tx, deadline).await,
        };
        let proxy = pre.instantiate_async(&mut store).await?;
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
    }
}

/// Where a request's answer goes: a response, or the handler's error code.
type AnswerSender = tokio::sync::oneshot::Sender<Result<Answer, ErrorCode>>;

/// One request to a 0.3 handler, in a fresh instance. `handle` returns the response while the
/// guest may still be writing its body (and trailers), so the store's event loop keeps running
/// until hyper has taken the body or dropped it; all of it within `deadline`.
async fn call_p3(
    mut store: Store<HttpState>,
    pre: &ServicePre<HttpState>,
    req: Request<Incoming>,
    tx: AnswerSender,
    deadline: Instant,
) -> wasmtime::Result<()> {
    let service = pre.instantiate_async(&mut store).await?;
    let (req, request_io) = wasmtime_wasi_http::p3::Request::from_http(&mut store.data_mut().outbound, with_scheme(req));
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel::<()>();
    let run = store.run_concurrent(async move |a| -> wasmtime::Result<()> {
        let response = match service.handle(a, req).await? {
            Ok(r) => r,
            Err(code) => {
                let _ = tx.send(Err(ErrorCode::InternalError(Some(format!("{code:?}")))));
                return Ok(());
            }
        };
        let response = a.with(|mut s| response.into_http(&mut s, request_io))?;
        let answer = response.map(|body| {
            Guarded {
                body,
                _guard: sent_tx,
            }
            .boxed_unsync()
        });
        if tx.send(Ok(answer)).is_ok() {
            // Resolves (with an error) once hyper dropped the body: sent, or the client gone.
            let _ = sent_rx.await;
        }
        Ok(())
    });
    match tokio::time::timeout_at(deadline.into(), run).await {
        Ok(result) => result?,
        Err(_) => Err(wasmtime::format_err!("the request's time is up")),
    }
}

/// An HTTP/1.1 request's URI is a path: the guest sees the scheme and authority it came with.
fn with_scheme(req: Request<Incoming>) -> Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    if parts.uri.scheme().is_none() {
        let authority = parts
            .headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_string();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        if let Ok(uri) = hyper::Uri::builder().scheme("http").authority(authority).path_and_query(path).build() {
            parts.uri = uri;
        }
    }
    Request::from_parts(parts, body)
}
