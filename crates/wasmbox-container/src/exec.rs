//! Running one more process in an existing container (`exec`), like `runc exec`.
//!
//! libcontainer's tenant builder joins the container's namespaces and cgroup and applies the
//! exec's process spec (args, env, cwd, user, capabilities, no_new_privileges, rlimits,
//! apparmor, seccomp); our executor then runs it: natively, or a wasm program in Wasmtime with
//! the same sandbox rules as the init. Like create, this clones from the caller, so it runs
//! only in the single-threaded helper.

use std::path::Path;

use crate::create::{builder, libcontainer_error, Stdio};
use crate::executor::WasmboxExecutor;
use crate::ContainerError;

/// What the exec'd process is made of.
pub struct ExecRequest<'a> {
    /// The container's id.
    pub id: &'a str,
    /// libcontainer's state root (the container's state is in `root/<id>`).
    pub root: &'a Path,
    /// The exec's OCI process spec, as a JSON file.
    pub process: &'a Path,
    pub stdio: Stdio,
    pub executor: WasmboxExecutor,
}

/// Starts the process in the container; returns its PID. It runs detached: its exit reaches
/// the shim, the subreaper, like the init's.
pub fn exec(req: ExecRequest<'_>) -> Result<i32, ContainerError> {
    let pid = builder(req.id, req.root, req.executor, req.stdio)?
        .as_tenant()
        .with_process(Some(req.process))
        .with_detach(true)
        .build()
        .map_err(libcontainer_error(req.id))?;
    Ok(pid.as_raw())
}
