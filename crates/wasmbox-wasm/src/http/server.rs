//! The server: accepting, connections, a request per instance, timeouts and shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use wasmtime::Engine;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::handler::{ProxyHandler, TrapOrPanicError};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::http::outbound::Outbound;
use crate::http::proxy::{HandlerPre, Pooled};
use crate::http::reuse::Instances;
use crate::http::store::{report_failure, Stores};
use crate::outcome::Outcome;
use crate::policy::network::Network;
use crate::sandbox::Granted;
use crate::sandbox::SandboxSpec;

/// What every request's handler needs, shared by the connections.
struct Server {
    stores: Arc<Stores>,
    pre: HandlerPre,
    /// A 0.3 handler's instances, each serving many requests (a 0.2 handler's request gets a
    /// fresh instance of `pre`).
    reused: Option<ProxyHandler<Instances>>,
    timeout: Duration,
    access_log: bool,
    /// One permit per request that may be served at once.
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
        .worker_threads(workers(cores))
        // Wasmtime's WASI does file I/O on blocking threads.
        .max_blocking_threads(concurrency.max(1) + 8)
        .thread_name("wasmbox-http")
        .enable_all()
        .build()?;
    let timeout = granted.policy.http_timeout;
    let mut stores = Stores::new(
        engine.clone(),
        build_ctx,
        Outbound::new(network.clone()),
        sandbox.memory_limit,
        timeout,
    );
    let mut pre = pre.clone();
    // Instances from a pool when the component fits one (more memories or table elements
    // per module than a pool slot holds do not): else from the engine every guest uses.
    // Readiness too: the port accepts only once an instance was made, so a tcpSocket or
    // httpGet probe tells the truth.
    let pooled = match pooled {
        Some(p) => {
            let shared = std::mem::replace(&mut stores.engine, p.engine.clone());
            let shared_pre = std::mem::replace(&mut pre, p.pre.clone());
            match runtime.block_on(instance_check(&stores, &pre, timeout)) {
                Ok(()) => true,
                Err(e) => {
                    log::info!("serving without the pooling allocator: {e:#}");
                    (stores.engine, pre) = (shared, shared_pre);
                    false
                }
            }
        }
        None => false,
    };
    if !pooled {
        if let Err(e) = runtime.block_on(instance_check(&stores, &pre, timeout)) {
            return Ok(Outcome::Failed(format!(
                "the component cannot be instantiated: {e:#}"
            )));
        }
    }
    let stores = Arc::new(stores);
    let instances = granted.policy.http_instances;
    // Never more instances than requests at once: the pool holds that many.
    let max_live = instances.max.map_or(concurrency, |m| m.min(concurrency));
    let reused = match &pre {
        HandlerPre::P3(p3) => Some(Instances::dispatcher(stores.clone(), p3.clone(), instances, timeout, max_live)),
        HandlerPre::P2(_) => None,
    };
    let server = Arc::new(Server {
        stores,
        pre,
        reused,
        timeout,
        access_log: granted.policy.http_access_log,
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
    });
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

/// The server's runtime threads on a node with `cores` cores.
fn workers(cores: usize) -> usize {
    cores.min(4)
}

/// Lets the server's threads allocate each from a malloc arena of its own. The shim keeps one
/// arena for all threads (it mostly sleeps; see its main.rs) and the init inherits that, but a
/// server's threads allocate on every request and on one arena they queue on its lock. glibc
/// fixes the number of arenas when a second thread first allocates, so this is called before
/// the init starts any thread.
pub fn allow_arenas() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: mallopt only changes allocator tuning, and is thread-safe.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, (workers(cores) + 1) as libc::c_int) };
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
    let engine = server.stores.engine.clone();
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
/// the connection's requests in flight, or a 0.3 request's place among those served at once.
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
    // Most find one at once, without a timer.
    let permit = match server.slots.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => match tokio::time::timeout(server.timeout, server.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")),
            Err(_) => return Ok(timed_out(server.timeout)),
        },
    };
    if let Some(handler) = &server.reused {
        // The instance ends a request at its deadline too, unless its guest code keeps the
        // instance busy; the client's answer never waits for that.
        let answer = tokio::time::timeout_at(
            deadline.into(),
            crate::http::reuse::handle(handler, req, deadline),
        )
        .await;
        return Ok(match answer {
            // The permit goes with the body: its request is served until the body was sent.
            Ok(Ok(response)) => response.map(|body| {
                Guarded {
                    body,
                    _guard: permit,
                }
                .boxed_unsync()
            }),
            // No response by its deadline, whichever timer saw it first (the request's, or the
            // one that drops an instance busy past it): the handler did not answer in time.
            Ok(Err(_)) if Instant::now() >= deadline => timed_out(server.timeout),
            Ok(Err(e)) => failed(e),
            Err(_) => timed_out(server.timeout),
        });
    }
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
                Ok(Err(e)) => report_failure("the handler failed", &e),
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

/// The answer to a 0.3 request that got no response before its deadline (one past it timed
/// out, whatever the error: see `respond`).
fn failed(e: wasmtime::Error) -> Answer {
    if let Some(code) = e.downcast_ref::<wasmtime_wasi_http::p3::bindings::http::types::ErrorCode>() {
        log::warn!("the handler answered with an error: {code:?}");
    } else if e.downcast_ref::<TrapOrPanicError>().is_some() {
        // Its instance failed: the instance's end logged why (see `reuse::Worker::drop`).
        log::warn!("a request's instance failed before it responded");
    } else {
        report_failure("the handler failed", &e);
    }
    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
}

fn timed_out(after: Duration) -> Answer {
    log::warn!("a request timed out after {after:?} (wasmbox.dev/http-timeout)");
    plain(
        StatusCode::GATEWAY_TIMEOUT,
        "the handler did not answer in time\n",
    )
}

/// Makes (and drops) one instance, as a request would.
async fn instance_check(stores: &Stores, pre: &HandlerPre, timeout: Duration) -> wasmtime::Result<()> {
    let mut store = stores.store(Some(Instant::now() + timeout))?;
    match pre {
        HandlerPre::P2(pre) => pre.instantiate_async(&mut store).await.map(|_| ()),
        HandlerPre::P3(pre) => pre.instantiate_async(&mut store).await.map(|_| ()),
    }
}

impl Server {
    /// One request to a 0.2 handler, in a fresh instance; its guest code is stopped once
    /// `deadline` passed.
    async fn call(&self, req: Request<Incoming>, tx: AnswerSender, deadline: Instant) -> wasmtime::Result<()> {
        let HandlerPre::P2(pre) = &self.pre else {
            return Err(wasmtime::format_err!("a 0.3 handler's request is served by its instances"));
        };
        let mut store = self.stores.store(Some(deadline))?;
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
