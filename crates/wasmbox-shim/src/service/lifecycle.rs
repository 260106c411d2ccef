//! The init's life: Start, Kill, Delete, Wait, pause and resume, Update, Shutdown.

use std::time::{Duration, SystemTime};

use containerd_shim::api::{
    DeleteRequest, DeleteResponse, Empty, KillRequest, PauseRequest, ResumeRequest,
    ShutdownRequest, StartRequest, StartResponse, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::events::task::{TaskDelete, TaskPaused, TaskResumed, TaskStart};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics::{
    TASK_DELETE_EVENT_TOPIC, TASK_PAUSED_EVENT_TOPIC, TASK_RESUMED_EVENT_TOPIC,
    TASK_START_EVENT_TOPIC,
};
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::TtrpcResult;
use oci_spec::runtime::LinuxResources;

use crate::process::exits::ExitInfo;
use crate::process::rootfs;
use crate::process::task::Status;

use super::reply::*;
use super::tasks::*;

impl Service {
    pub fn start(&self, req: StartRequest) -> TtrpcResult<StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id);
        }
        let pid = self.with_entry(&req.id, |e| {
            if e.state.status() != Status::Created {
                // Refused without changing anything; the error says why.
                e.state.start().map_err(state_error)?;
            }
            let _guard = self.lifecycle();
            e.handle
                .start()
                .map_err(|err| rpc_error(Code::UNKNOWN, format!("start {}: {err}", req.id)))?;
            e.state.start().map_err(state_error)?;
            Ok(e.state.pid)
        })?;
        self.shared.events.publish(
            TASK_START_EVENT_TOPIC,
            Box::new(TaskStart {
                container_id: req.id.clone(),
                pid: pid as u32,
                ..Default::default()
            }),
        );
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    pub fn kill(&self, req: KillRequest) -> TtrpcResult<Empty> {
        if !req.exec_id.is_empty() {
            log::info!(
                "kill exec {} in {} signal {}",
                req.exec_id,
                req.id,
                req.signal
            );
            return self.with_settled_exec(&req.id, &req.exec_id, |x| {
                x.state.check_alive().map_err(state_error)?;
                if x.state.pid <= 0 {
                    return Err(rpc_error(
                        Code::FAILED_PRECONDITION,
                        format!("exec {} is not started", req.exec_id),
                    ));
                }
                let sig = nix::sys::signal::Signal::try_from(req.signal as i32).map_err(|e| {
                    rpc_error(Code::INVALID_ARGUMENT, format!("kill {}: {e}", req.exec_id))
                })?;
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(x.state.pid), sig).map_err(
                    |e| rpc_error(Code::UNKNOWN, format!("kill exec {}: {e}", req.exec_id)),
                )?;
                Ok(Empty::new())
            });
        }
        log::info!("kill {} signal {} all={}", req.id, req.signal, req.all);
        self.with_entry(&req.id, |e| {
            if !req.all {
                e.state.check_alive().map_err(state_error)?;
            }
            let _guard = self.lifecycle();
            e.handle
                .kill(req.signal as i32, req.all)
                .map_err(|err| rpc_error(Code::UNKNOWN, format!("kill {}: {err}", req.id)))
        })?;
        Ok(Empty::new())
    }

    pub fn delete(&self, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id);
        }
        log::info!("delete {}", req.id);
        {
            let tasks = self.shared.tasks();
            if !tasks.contains_key(&req.id) && self.admission().abandon(&req.id) {
                // containerd is done with it before its Create answered (after a restart,
                // or a Create past its deadline): the Create undoes itself when it ends.
                log::info!(
                    "{} is still being created; its Create will be undone",
                    req.id
                );
                return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                    Code::NOT_FOUND,
                    format!(
                        "task {} not found (its Create is under way and will be undone)",
                        req.id
                    ),
                )));
            }
        }
        let handle = self.with_entry(&req.id, |e| Ok(e.handle.clone()))?;
        // Force: kills whatever still runs (a created task, or children of an exited init),
        // removes the cgroups and libcontainer's state.
        let deleted = {
            let _guard = self.lifecycle();
            handle.delete()
        };
        let mut tasks = self.shared.tasks();
        if let Err(err) = deleted {
            return Err(rpc_error(
                Code::UNKNOWN,
                format!("delete {}: {err}", req.id),
            ));
        }
        // Wait (bounded) for the reaper to report the init, so the reply has its status.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tasks.get(&req.id).is_some_and(|e| e.state.exit().is_none()) {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                break;
            };
            tasks = self
                .shared
                .changed
                .wait_timeout(tasks, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let Some(entry) = tasks.remove(&req.id) else {
            return Err(rpc_error(
                Code::NOT_FOUND,
                format!("task {} not found", req.id),
            ));
        };
        let next = tasks.values().next().map(|e| e.state.bundle.clone());
        drop(tasks);
        crate::logging::task_gone(&entry.state.bundle, next.as_deref());
        // A Wait still blocked on this task (or one of its execs) answers "not found" now
        // rather than never: a handler that never returns would keep the shim from exiting.
        self.shared.notify();
        if let Some(stdin) = &entry.stdin {
            stdin.close();
        }
        self.shared.consoles().remove(&entry.state.pid);
        self.shared.outputs().remove(&entry.state.pid);
        if entry.rootfs_mounted {
            rootfs::unmount(&entry.state.bundle.join("rootfs"));
        }
        let _ = std::fs::remove_dir_all(&entry.handle.root);
        let exit = entry.state.exit().unwrap_or(ExitInfo {
            status: 137,
            at: SystemTime::now(),
        });
        self.shared.events.publish(
            TASK_DELETE_EVENT_TOPIC,
            Box::new(TaskDelete {
                container_id: req.id.clone(),
                pid: entry.state.pid as u32,
                exit_status: exit.status as u32,
                exited_at: MessageField::some(timestamp(exit.at)),
                ..Default::default()
            }),
        );
        Ok(DeleteResponse {
            pid: entry.state.pid as u32,
            exit_status: exit.status as u32,
            exited_at: MessageField::some(timestamp(exit.at)),
            ..Default::default()
        })
    }

    /// Wait's answer once the task (or exec) has exited; None while it runs.
    pub fn wait_done(&self, req: &WaitRequest) -> TtrpcResult<Option<WaitResponse>> {
        let mut tasks = self.shared.tasks();
        let entry = entry_mut(&mut tasks, &req.id)?;
        let state = if req.exec_id.is_empty() {
            &entry.state
        } else {
            &entry
                .execs
                .get(&req.exec_id)
                .ok_or_else(|| exec_not_found(&req.id, &req.exec_id))?
                .state
        };
        Ok(state.exit().map(|exit| WaitResponse {
            exit_status: exit.status as u32,
            exited_at: MessageField::some(timestamp(exit.at)),
            ..Default::default()
        }))
    }

    /// Changes of any task's state, for waiting without a thread (see `wait_done`).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.generation.subscribe()
    }

    /// Pause (freeze) or resume (thaw) task `id`, then tell containerd.
    pub(super) fn set_paused(&self, id: &str, paused: bool) -> TtrpcResult<Empty> {
        let what = if paused { "pause" } else { "resume" };
        log::info!("{what} {id}");
        self.with_entry(id, |e| {
            e.state.set_paused(paused).map_err(state_error)?;
            let _guard = self.lifecycle();
            let done = if paused {
                e.handle.pause()
            } else {
                e.handle.resume()
            };
            if let Err(err) = done {
                // Undo the transition: the task is as it was.
                let _ = e.state.set_paused(!paused);
                return Err(rpc_error(Code::UNKNOWN, format!("{what} {id}: {err}")));
            }
            Ok(())
        })?;
        if paused {
            let event = TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            };
            self.shared
                .events
                .publish(TASK_PAUSED_EVENT_TOPIC, Box::new(event));
        } else {
            let event = TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            };
            self.shared
                .events
                .publish(TASK_RESUMED_EVENT_TOPIC, Box::new(event));
        }
        Ok(Empty::new())
    }

    pub fn pause(&self, req: PauseRequest) -> TtrpcResult<Empty> {
        self.set_paused(&req.id, true)
    }

    pub fn resume(&self, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.set_paused(&req.id, false)
    }

    /// New resources for the container's cgroup: `UpdateContainerResources` (in-place pod
    /// resize). containerd sends the OCI `LinuxResources` as JSON, as to runc.
    pub fn update(&self, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        log::info!("update {}", req.id);
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or_default();
        let resources: LinuxResources = serde_json::from_slice(value).map_err(|e| {
            rpc_error(
                Code::INVALID_ARGUMENT,
                format!(
                    "update {}: the resources are not OCI LinuxResources JSON: {e}",
                    req.id
                ),
            )
        })?;
        let handle = self.with_entry(&req.id, |e| {
            e.state.check_alive().map_err(state_error)?;
            Ok(e.handle.clone())
        })?;
        let _guard = self.lifecycle();
        handle
            .update(&resources)
            .map_err(|err| rpc_error(Code::UNKNOWN, format!("update {}: {err}", req.id)))?;
        Ok(Empty::new())
    }

    pub fn shutdown(&self, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        self.admission().want_exit();
        self.settle();
        Ok(Empty::new())
    }
}
