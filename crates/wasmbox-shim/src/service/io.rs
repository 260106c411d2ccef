//! A process's I/O: its terminal (attached, resized) and its stdin (closed).

use std::sync::Arc;

use containerd_shim::api::{CloseIORequest, Empty, ResizePtyRequest};
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::TtrpcResult;

use crate::process::console::{Console, ConsoleSocket};

use super::reply::*;
use super::tasks::*;

/// A terminal process's console, once the helper has created the process.
pub(super) fn attach_console(
    socket: &ConsoleSocket,
    stdin: &str,
    stdout: &str,
) -> Result<Arc<Console>, String> {
    let master = socket.receive().map_err(|e| format!("terminal: {e}"))?;
    Console::start(master, stdin, stdout).map_err(|e| format!("terminal: {e}"))
}

impl Service {
    pub fn close_io(&self, req: CloseIORequest) -> TtrpcResult<Empty> {
        self.with_entry(&req.id, |e| {
            let (stdin, console) = if req.exec_id.is_empty() {
                (&e.stdin, &e.console)
            } else {
                let x = e
                    .execs
                    .get(&req.exec_id)
                    .ok_or_else(|| exec_not_found(&req.id, &req.exec_id))?;
                (&x.stdin, &x.console)
            };
            if req.stdin {
                if let Some(s) = stdin {
                    s.close();
                }
                if let Some(c) = console {
                    c.close_input();
                }
            }
            Ok(Empty::new())
        })
    }

    pub fn resize_pty(&self, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let console = self.with_entry(&req.id, |e| {
            let console = if req.exec_id.is_empty() {
                e.console.clone()
            } else {
                e.execs
                    .get(&req.exec_id)
                    .ok_or_else(|| exec_not_found(&req.id, &req.exec_id))?
                    .console
                    .clone()
            };
            console.ok_or_else(|| {
                rpc_error(
                    Code::FAILED_PRECONDITION,
                    format!("{} has no terminal", req.id),
                )
            })
        })?;
        console.resize(req.width, req.height).map_err(|e| {
            rpc_error(
                Code::UNKNOWN,
                format!("resize the terminal of {}: {e}", req.id),
            )
        })?;
        Ok(Empty::new())
    }
}
