//! Creating a container from a bundle.
//!
//! libcontainer clones the container's processes from the calling process without exec, so
//! this must only run in a single-threaded process: the shim's `create` helper, never the
//! shim itself.

use std::os::fd::OwnedFd;
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use crate::executor::WasmboxExecutor;
use crate::ContainerError;

/// What the container is made of.
pub struct CreateRequest<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// libcontainer's state root; the container's state lives in `root/<id>`.
    pub root: &'a Path,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub executor: WasmboxExecutor,
    pub systemd: bool,
}

/// Creates the container; its init waits for Start. Returns the init's PID.
pub fn create(req: CreateRequest<'_>) -> Result<i32, ContainerError> {
    let id = req.id.to_string();
    let err = |source| ContainerError::Libcontainer {
        id: id.clone(),
        source,
    };
    let container = ContainerBuilder::new(id.clone(), SyscallType::default())
        .with_root_path(req.root)
        .map_err(err)?
        .with_executor(req.executor)
        .with_stdin(req.stdin)
        .with_stdout(req.stdout)
        .with_stderr(req.stderr)
        .validate_id()
        .map_err(err)?
        .as_init(req.bundle)
        .with_systemd(req.systemd)
        .with_detach(true)
        .build()
        .map_err(err)?;
    container
        .pid()
        .map(|p| p.as_raw())
        .ok_or(ContainerError::NotFound { id })
}
