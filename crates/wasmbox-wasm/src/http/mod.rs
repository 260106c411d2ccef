//! Serving an HTTP handler: a component that exports `wasi:http/incoming-handler@0.2.x` or
//! `wasi:http/handler@0.3.x` is served, not run. The container's init listens (in the
//! container's network namespace) on `wasmbox.dev/http` (default `0.0.0.0:8080`) and calls the
//! handler once per request with the WASI context the spec and policy grant: a 0.2 handler in
//! a fresh instance of the pre-linked component per request, a 0.3 handler in instances that
//! each serve many requests (see [`reuse`]), as `wasmtime serve` does.
//!
//! hyper serves HTTP/1.1 (keep-alive) and HTTP/2 over cleartext (prior knowledge) on the same
//! port, on a tokio runtime; each request's handler is a task of that runtime, its guest code
//! on a fiber of an async store (yielding at every epoch tick, so one busy handler does not
//! hold a worker), its instance from a pooling allocator (see [`crate::compile::engine`]); its response
//! is handed to hyper as soon as the guest sets it, so a body streams while the guest writes it.
//! A request whose handler traps, or returns without a response, answers 500 (logged); the
//! server keeps serving. At most `wasmbox.dev/http-max-concurrency` handlers run at once (more
//! requests wait their turn); a request without a response after `wasmbox.dev/http-timeout`
//! answers 504, and its guest code is stopped at its next epoch check. Idle and slow
//! connections are closed, and open ones bounded (see [`crate::http::connections`]). On SIGTERM the server
//! stops accepting, lets the requests in flight finish and exits 0 (SIGKILL, as kubelet sends
//! after the grace period, ends it at once).
//!
//! Its parts: [`proxy`] (the 0.2 and 0.3 handler worlds: what a handler is, its store data, its
//! linking), [`outbound`] (the handlers' outbound requests, within the egress policy),
//! [`store`] (an instance's store), [`reuse`] (a 0.3 handler's instances),
//! [`connections`] (what the server keeps of each connection) and [`server`], which uses them
//! all.
//!
//! Uses [`crate::policy`], [`crate::sandbox`], [`crate::outcome`] and [`crate::compile::engine`].

pub mod connections;
pub mod outbound;
pub mod proxy;
pub mod reuse;
pub mod server;
pub mod store;

pub use proxy::{is_proxy, link, HandlerPre, HttpState, Pooled};
pub use server::serve;
