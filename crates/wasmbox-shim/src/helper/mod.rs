//! The `create` helper: a short-lived, single-threaded process that creates one container, like
//! `runc create`. It is forked by the [`zygote`], or, without one, exec'd from the shim binary.
//!
//! Why: libcontainer clones the container's init from its caller without exec, and the shim
//! is multi-threaded (ttrpc, stdio, events); cloning it could leave the child holding a lock
//! another thread owned. The helper has one thread and a clean state. It also loads the
//! compiled wasm before creating the container, so the init starts with the program in
//! memory (copy-on-write, code pages shared through the page cache).
//!
//! - [`request`]: what the shim asks for and what the helper answers (JSON).
//! - [`child`]: the helper's side (`containerd-shim-wasmbox-v1 create-helper REQUEST`).
//! - [`parent`]: the shim's side: start, collect the answer, forward its log.
//! - [`zygote`]: forks helpers from a single-threaded early fork of the shim, so they (and the
//!   containers' init processes) share the shim's loaded binary and engine.

pub mod child;
pub mod parent;
pub mod request;
pub mod zygote;

pub use request::HELPER_ARG;
