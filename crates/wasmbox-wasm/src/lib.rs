//! The wasm sandbox of wasmbox: everything that touches Wasmtime.
//!
//! Folders by concern; each module uses only the ones below it in this list (no circle):
//!
//! - [`run`]: runs a program in the container's init (load, link, build its WASI context,
//!   call it) and maps how it ended to an exit status. Uses everything below.
//! - [`http`]: serves a `wasi:http/proxy` component (a request per instance, hyper on tokio),
//!   and its outbound requests within the egress policy.
//! - [`p1`]: the layer around Wasmtime's WASI preview 1 (preopened sockets, EROFS).
//! - [`p3`]: WASI 0.3 commands (linking, and running on the component model's event loop).
//! - [`p2`]: WASI preview 2 commands (their store data and linking).
//! - [`outcome`]: how a guest ended, as a process exit status.
//! - [`sandbox`]: what the OCI spec grants the guest (args, env, cwd, network, memory limit),
//!   and what the container hands it beyond that ([`sandbox::Granted`]).
//! - [`policy`]: the capability policy (operator file + `wasmbox.dev/` annotations → one plain
//!   [`policy::Policy`]) and where it is enforced (network, memory budget, timeout).
//! - [`compile`]: what a file is, the entrypoint, the engine and the node-wide compile cache
//!   (used by the shim to compile, and by [`run`] to load).
//! - [`error`]: the crate's error type.

pub mod compile;
pub mod error;
pub mod http;
pub mod outcome;
pub mod p1;
pub mod p2;
pub mod p3;
pub mod policy;
pub mod run;
pub mod sandbox;

pub use error::WasmError;
