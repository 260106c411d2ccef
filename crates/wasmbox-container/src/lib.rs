//! Linux containers for wasmbox, on youki's `libcontainer`.
//!
//! - [`create`]: builds a container from a bundle (run only in the single-threaded `create`
//!   helper process, because libcontainer clones the container's init from the caller).
//! - [`executor`]: what the container's init does once started: run the wasm program it
//!   inherited, or exec the native entrypoint exactly as runc would.
//! - [`lifecycle`]: start, kill, delete, pids and cgroup stats of an existing container; these
//!   never fork, so the multi-threaded shim calls them in-process.
//! - [`cgroups`]: which cgroup driver a spec's `cgroupsPath` asks for.

pub mod cgroups;
pub mod create;
pub mod error;
pub mod executor;
pub mod lifecycle;
pub mod proctitle;

pub use error::ContainerError;
