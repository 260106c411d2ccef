//! A WASI 0.3 handler's instances, each serving many requests, as `wasmtime serve` serves them:
//! Wasmtime's own dispatcher (`wasmtime_wasi_http::handler`) hands a request to an instance
//! with room for it, or makes one; this module says how much room an instance has
//! ([`HttpInstances`]: requests at once, requests in all, idle time), how many instances may
//! live, and how long a request may take.
//!
//! Time is enforced twice, as the dispatcher asks: a request past its deadline is answered 504
//! and its instance takes no more requests (it ends once its other requests are done); and an
//! instance whose most recent request, or whose work after its last response, is older than
//! the timeout is dropped, however busy its guest code is (the code yields at every epoch
//! tick, see [`crate::http::store`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::http::proxy::HttpState;
use crate::http::store::Stores;
use crate::policy::HttpInstances;

/// How often a request that found every instance taken asks again.
const RETRY: Duration = Duration::from_millis(5);

/// The instances of one 0.3 handler.
pub struct Instances {
    stores: Arc<Stores>,
    pre: ServicePre<HttpState>,
    limits: HttpInstances,
    timeout: Duration,
    /// One permit per instance that may live.
    live: Arc<Semaphore>,
}

/// A request that found every instance taken (the dispatcher gives it back, to retry).
#[derive(Debug, thiserror::Error)]
#[error("every instance of the handler is taken")]
struct NoInstance;

impl Instances {
    /// Instances of `pre` made in `stores`, at most `max_live` of them at once.
    pub fn dispatcher(
        stores: Arc<Stores>,
        pre: ServicePre<HttpState>,
        limits: HttpInstances,
        timeout: Duration,
        max_live: usize,
    ) -> ProxyHandler<Self> {
        ProxyHandler::new(Self {
            stores,
            pre,
            limits,
            timeout,
            live: Arc::new(Semaphore::new(max_live.max(1))),
        })
    }
}

/// Answers `req` from one of `handler`'s instances; its guest has until `deadline` to respond.
pub async fn handle(
    handler: &ProxyHandler<Instances>,
    req: Request<Incoming>,
    deadline: Instant,
) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
    let mut req = with_scheme(req).map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
    loop {
        let refused = match handler.handle(deadline, req).await {
            Ok(response) => return Ok(response),
            Err(e) => e.downcast::<InstantiationError<Instant>>()?,
        };
        if refused.error.downcast_ref::<NoInstance>().is_none() {
            return Err(wasmtime::format_err!("{}", refused.error));
        }
        // An instance ends or gets room soon (each request has its deadline); the caller's
        // own deadline bounds the wait.
        req = refused
            .request
            .into_inner()
            .map_err(|_| wasmtime::format_err!("a refused request was poisoned"))?;
        tokio::time::sleep(RETRY).await;
    }
}

impl HandlerState for Instances {
    type StoreData = HttpState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HttpState, Expiry, Worker>> {
        let permit = self.live.clone().try_acquire_owned().map_err(|_| NoInstance)?;
        // The start function has the request's time; requests are then timed from outside.
        let mut store = self.stores.store(Some(Instant::now() + self.timeout))?;
        let service = self.pre.instantiate_async(&mut store).await?;
        store.data_mut().deadline = None;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: http_view,
            expiration: Expiry::new(self.timeout, self.limits.idle_timeout),
            state: Worker {
                limits: self.limits,
                _live: permit,
            },
        })
    }
}

fn http_view(state: &mut HttpState) -> WasiHttpCtxView<'_> {
    state.http()
}

/// What one instance takes on.
pub struct Worker {
    limits: HttpInstances,
    /// Its place among the instances that may live.
    _live: OwnedSemaphorePermit,
}

impl WorkerState for Worker {
    type StoreData = HttpState;
    /// The request's deadline.
    type RequestData = Instant;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.limits.reuse {
            ShouldAccept::Never
        } else if concurrent >= self.limits.concurrency {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HttpState>,
        deadline: Instant,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn drop(&self, _store: Store<HttpState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            // Its requests without a response answered 500 (or 504): why is in the log.
            crate::http::store::report_failure("a handler instance failed", &e);
        }
    }
}

/// When an instance is dropped: past the timeout with requests (counted from the most recent
/// one) or with work after its last response, or past the idle timeout with neither.
pub struct Expiry {
    timeout: Duration,
    idle: Duration,
    /// When the timer fires.
    armed: Option<Instant>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Expiry {
    fn new(timeout: Duration, idle: Duration) -> Self {
        Self {
            timeout,
            idle,
            armed: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl WorkerExpiration for Expiry {
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, since: Instant) -> Poll<()> {
        let this = self.get_mut();
        let after = match status {
            WorkerStatus::Idle => this.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => this.timeout,
        };
        let at = since + after;
        // The timer moves earlier at once; when it fires before a later `at` it is set again
        // then (not on every request, each of which moves `at` a little later).
        if this.armed.is_none_or(|armed| at < armed) {
            this.timer.as_mut().reset(at.into());
            this.armed = Some(at);
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= at {
                return Poll::Ready(());
            }
            this.timer.as_mut().reset(at.into());
            this.armed = Some(at);
        }
        Poll::Pending
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
