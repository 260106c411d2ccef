//! Processes exec'd into a container: Exec, and their Start and Delete.

use std::time::{Duration, SystemTime};

use containerd_shim::api::{DeleteResponse, Empty, ExecProcessRequest, StartResponse};
use containerd_shim::protos::events::task::{TaskExecAdded, TaskExecStarted};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics::{TASK_EXEC_ADDED_EVENT_TOPIC, TASK_EXEC_STARTED_EVENT_TOPIC};
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::TtrpcResult;
use oci_spec::runtime::Process;
use wasmbox_container::lifecycle::state_root;

use crate::helper::parent::{self};
use crate::helper::request::{CreateRequest, ExecSpec, WasmRequest};
use crate::process::console::ConsoleSocket;
use crate::process::exits::ExitInfo;
use crate::process::stdio::{OutputKeeper, StdinForwarder};
use crate::process::task::{Status, TaskState};
use wasmbox_wasm::policy::Policy;

use super::io::attach_console;
use super::program::*;
use super::reply::*;
use super::tasks::*;

/// Clears an exec's `starting` on every way out of Start, waking Kill and Delete.
pub(super) struct Starting<'a> {
    pub(super) shared: &'a Shared,
    pub(super) id: &'a str,
    pub(super) exec_id: &'a str,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        if let Some(x) = self
            .shared
            .tasks()
            .get_mut(self.id)
            .and_then(|e| e.execs.get_mut(self.exec_id))
        {
            x.starting = false;
        }
        self.shared.notify();
    }
}

impl Service {
    /// Records a process to run in the container (`ctr task exec`, `kubectl exec`, exec
    /// probes); Start runs it. Its program is resolved (and compiled, if wasm) now, so a
    /// missing or broken one fails here.
    pub fn exec(&self, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        log::info!("exec {} in {}", req.exec_id, req.id);
        let bad = |m: String| {
            rpc_error(
                Code::INVALID_ARGUMENT,
                format!("exec {} in {}: {m}", req.exec_id, req.id),
            )
        };
        if req.exec_id.is_empty() || req.exec_id.contains('/') {
            return Err(bad("invalid exec id".into()));
        }
        let value = req
            .spec
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or_default();
        let process: Process = serde_json::from_slice(value)
            .map_err(|e| bad(format!("the process is not an OCI process spec: {e}")))?;
        let (bundle, policy) = self.with_entry(&req.id, |e| {
            e.state.check_alive().map_err(state_error)?;
            if e.execs.contains_key(&req.exec_id) {
                return Err(rpc_error(
                    Code::ALREADY_EXISTS,
                    format!("exec {} already exists in {}", req.exec_id, req.id),
                ));
            }
            Ok((e.state.bundle.clone(), e.policy.clone()))
        })?;
        let spec = load_spec(&bundle).map_err(bad)?;
        let args = process.args().clone().unwrap_or_default();
        let arg0 = args
            .first()
            .ok_or_else(|| bad("the process has no args".into()))?;
        let env = process.env().clone().unwrap_or_default();
        let cwd = process.cwd().display().to_string();
        let wasm = match self
            .prepare_program(&req.id, &spec, &rootfs_of(&bundle, &spec), arg0, &env, &cwd)
            .map_err(bad)?
        {
            Resolved::Native => None,
            // The init's sandbox rules, policy included.
            // The listeners are the init's (preopened in it); an exec'd module gets none.
            Resolved::Wasm(w) if !w.component => Some(WasmRequest {
                policy: Policy {
                    listen: Vec::new(),
                    ..policy.map_err(bad)?
                },
                ..w
            }),
            Resolved::Wasm(w) => Some(WasmRequest {
                policy: policy.map_err(bad)?,
                ..w
            }),
            Resolved::Missing => return Err(bad(nothing_runnable(arg0))),
        };
        let process_json = state_root(&bundle).join(format!("exec-{}.json", req.exec_id));
        let json = serde_json::to_vec(&process).map_err(|e| bad(e.to_string()))?;
        std::fs::write(&process_json, json)
            .map_err(|e| bad(format!("write {}: {e}", process_json.display())))?;
        self.with_entry(&req.id, |e| {
            e.execs.insert(
                req.exec_id.clone(),
                ExecProc {
                    state: TaskState::new(&req.exec_id, bundle.clone(), 0),
                    process_json,
                    stdin_path: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    stdin: None,
                    terminal: req.terminal,
                    console: None,
                    wasm,
                    starting: false,
                },
            );
            Ok(())
        })?;
        self.shared.events.publish(
            TASK_EXEC_ADDED_EVENT_TOPIC,
            Box::new(TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            }),
        );
        Ok(Empty::new())
    }

    /// Runs a recorded exec through a helper (libcontainer's tenant builder), like
    /// `runc exec --detach`; its exit reaches the exit monitor like the init's.
    pub(super) fn start_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<StartResponse> {
        log::info!("start exec {exec_id} in {id}");
        let (mut helper_req, stdin_path, stdout, stderr, terminal) = self.with_entry(id, |e| {
            e.state.check_alive().map_err(state_error)?;
            let bundle = e.state.bundle.clone();
            let x = e
                .execs
                .get_mut(exec_id)
                .ok_or_else(|| exec_not_found(id, exec_id))?;
            if x.state.status() != Status::Created || x.starting {
                return Err(rpc_error(
                    Code::FAILED_PRECONDITION,
                    format!("exec {exec_id} was started already"),
                ));
            }
            x.starting = true;
            let req = CreateRequest {
                id: id.to_string(),
                root: state_root(&bundle),
                bundle,
                stdout: x.stdout.clone(),
                stderr: x.stderr.clone(),
                systemd: false,
                wasm: x.wasm.clone(),
                exec: Some(ExecSpec {
                    exec_id: exec_id.to_string(),
                    process: x.process_json.clone(),
                }),
                console_socket: None,
            };
            Ok((
                req,
                x.stdin_path.clone(),
                x.stdout.clone(),
                x.stderr.clone(),
                x.terminal,
            ))
        })?;
        let _starting = Starting {
            shared: &self.shared,
            id,
            exec_id,
        };
        let fail =
            |m: String| rpc_error(Code::UNKNOWN, format!("start exec {exec_id} in {id}: {m}"));
        let console_socket = match terminal {
            true => Some(
                ConsoleSocket::new().map_err(|e| fail(format!("terminal: console socket: {e}")))?,
            ),
            false => None,
        };
        if let Some(s) = &console_socket {
            helper_req.console_socket = Some(s.path());
            helper_req.stdout.clear();
            helper_req.stderr.clear();
        }
        let (forwarder, stdin) = if stdin_path.is_empty() || terminal {
            (None, None)
        } else {
            let (f, read_end) =
                StdinForwarder::start(&stdin_path).map_err(|e| fail(format!("stdin: {e}")))?;
            (Some(f), Some(read_end))
        };
        // Before the process exists: what it writes outlives it until read.
        let output = OutputKeeper::open(&[&stdout, &stderr]);
        let pid =
            parent::create(&helper_req, stdin, &self.exits).map_err(|e| fail(e.to_string()))?;
        let console = match &console_socket {
            Some(s) => match attach_console(s, &stdin_path, &stdout) {
                Ok(c) => {
                    self.shared.consoles().insert(pid, c.clone());
                    Some(c)
                }
                Err(m) => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    return Err(fail(m));
                }
            },
            None => None,
        };
        // Before the pid is set: an exit claimed from then on finds the output to drain.
        self.shared.outputs().insert(pid, output);
        let exited_early = self.with_exec(id, exec_id, |x| {
            x.state.pid = pid;
            x.state.start().map_err(state_error)?;
            x.stdin = forwarder;
            x.console = console.clone();
            // Under the tasks lock: containerd sees ExecStarted before the exec's TaskExit.
            self.shared.events.publish(
                TASK_EXEC_STARTED_EVENT_TOPIC,
                Box::new(TaskExecStarted {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    pid: pid as u32,
                    ..Default::default()
                }),
            );
            // It may have exited before its pid was known here (the exit monitor records an
            // exit nobody owns under the tasks lock, so it is either here or claimed later).
            Ok(self.exits.take(pid))
        })?;
        if let Some(info) = exited_early {
            // Its output first, outside the tasks lock.
            self.shared.drain_output(pid);
            self.with_exec(id, exec_id, |x| {
                if x.state.exited(info) {
                    self.shared.publish_exit(id, exec_id, pid, info);
                }
                Ok(())
            })?;
            self.shared.notify();
        }
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Forgets an exec'd process once it has exited (a running one is killed first).
    pub(super) fn delete_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<DeleteResponse> {
        log::info!("delete exec {exec_id} in {id}");
        let running = self.with_settled_exec(id, exec_id, |x| {
            Ok((x.state.exit().is_none() && x.state.pid > 0).then_some(x.state.pid))
        })?;
        if let Some(pid) = running {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let mut tasks = self.shared.tasks();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let entry = entry_mut(&mut tasks, id)?;
            let x = entry
                .execs
                .get(exec_id)
                .ok_or_else(|| exec_not_found(id, exec_id))?;
            let left = deadline.checked_duration_since(std::time::Instant::now());
            if x.state.exit().is_some() || x.state.pid <= 0 || left.is_none() {
                let x = entry
                    .execs
                    .remove(exec_id)
                    .ok_or_else(|| exec_not_found(id, exec_id))?;
                drop(tasks);
                self.shared.notify();
                if let Some(stdin) = &x.stdin {
                    stdin.close();
                }
                self.shared.consoles().remove(&x.state.pid);
                let _ = std::fs::remove_file(&x.process_json);
                let exit = x.state.exit().unwrap_or(ExitInfo {
                    status: 137,
                    at: SystemTime::now(),
                });
                return Ok(DeleteResponse {
                    pid: x.state.pid.max(0) as u32,
                    exit_status: exit.status as u32,
                    exited_at: MessageField::some(timestamp(exit.at)),
                    ..Default::default()
                });
            }
            tasks = self
                .shared
                .changed
                .wait_timeout(tasks, left.unwrap_or_default())
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
