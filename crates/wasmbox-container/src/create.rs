//! Creating a container from a bundle.
//!
//! libcontainer clones the container's processes from the calling process without exec, so
//! this must only run in a single-threaded process: the shim's `create` helper, never the
//! shim itself.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use crate::executor::WasmboxExecutor;
use crate::ContainerError;

/// The standard streams of a container process.
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// For a `terminal: true` process: the socket its pty master is sent to; the pty's slave
    /// then replaces the three streams above (as with `runc --console-socket`).
    pub console_socket: Option<PathBuf>,
}

/// What the container is made of.
pub struct CreateRequest<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// libcontainer's state root; the container's state lives in `root/<id>`.
    pub root: &'a Path,
    pub stdio: Stdio,
    pub executor: WasmboxExecutor,
    pub systemd: bool,
}

pub(crate) fn libcontainer_error(
    id: &str,
) -> impl Fn(libcontainer::error::LibcontainerError) -> ContainerError + '_ {
    move |source| ContainerError::Libcontainer {
        id: id.to_string(),
        source,
    }
}

/// libcontainer's builder for container `id` under `root`, with our executor and `stdio`:
/// what create and exec share.
pub(crate) fn builder(
    id: &str,
    root: &Path,
    executor: WasmboxExecutor,
    stdio: Stdio,
) -> Result<ContainerBuilder, ContainerError> {
    Ok(
        ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(root)
            .map_err(libcontainer_error(id))?
            .with_executor(executor)
            .with_stdin(stdio.stdin)
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr)
            .with_console_socket(stdio.console_socket),
    )
}

/// Creates the container; its init waits for Start. Returns the init's PID.
pub fn create(req: CreateRequest<'_>) -> Result<i32, ContainerError> {
    let err = libcontainer_error(req.id);
    let container = builder(req.id, req.root, req.executor, req.stdio)?
        .validate_id()
        .map_err(&err)?
        .as_init(req.bundle)
        .with_systemd(req.systemd)
        .with_detach(true)
        .build()
        .map_err(&err)?;
    container
        .pid()
        .map(|p| p.as_raw())
        .ok_or(ContainerError::NotFound {
            id: req.id.to_string(),
        })
}
