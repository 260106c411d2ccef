//! Linux containers for wasmbox, on youki's `libcontainer`.
//!
//! - [`create`]: builds a container from a bundle (run only in the single-threaded `create`
//!   helper process, because libcontainer clones the container's init from the caller).
//! - [`exec`]: one more process in a running container (`exec`), native or wasm.
//! - [`executor`]: what the container's init does once started: run the wasm program it
//!   inherited, or exec the native entrypoint exactly as runc would.
//! - [`lifecycle`]: start, kill, delete, pids and cgroup stats of an existing container; these
//!   never fork, so the multi-threaded shim calls them in-process.
//! - [`confine`]: what a wasm process may still do once its guest runs: capabilities it can
//!   reach through WASI, and a seccomp allowlist of the calls Wasmtime and our host make.
//! - [`guest_fs`]: the wasm guest's filesystem: the container's mount tree without `/proc`,
//!   `/sys`, `/dev` and pseudo filesystems, built in a copy of its mount namespace.
//! - [`mountinfo`]: `/proc/<pid>/mountinfo`, parsed.
//! - [`cgroups`]: which cgroup driver a spec's `cgroupsPath` asks for; memory cgroup files.

pub mod cgroups;
pub mod confine;
pub mod create;
pub mod error;
pub mod exec;
pub mod executor;
pub mod guest_fs;
pub mod lifecycle;
pub mod mountinfo;
pub mod proctitle;

pub use error::ContainerError;
