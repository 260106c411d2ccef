//! The service's data: every task and exec of this shim, the locks that guard them, and the
//! exit monitor's side (claiming an exit, publishing it after the process's output).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim::protos::events::task::TaskExit;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics::TASK_EXIT_EVENT_TOPIC;
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::{ExitSignal, TtrpcResult};
use wasmbox_container::lifecycle::Handle;
use wasmbox_wasm::compile::cache::CompileCache;

use crate::events::Events;
use crate::group::Admission;
use crate::helper::request::WasmRequest;
use crate::process::console::Console;
use crate::process::exits::{ExitInfo, ExitMonitor};
use crate::process::stdio::{OutputKeeper, StdinForwarder};
use crate::process::task::TaskState;
use wasmbox_wasm::policy::Policy;

use super::reply::{exec_not_found, rpc_error, timestamp};

/// A task and what the shim holds for it.
pub(super) struct Entry {
    pub(super) state: TaskState,
    pub(super) handle: Handle,
    pub(super) stdin_path: String,
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) stdin: Option<StdinForwarder>,
    /// The init's terminal, when it has one.
    pub(super) console: Option<Arc<Console>>,
    pub(super) rootfs_mounted: bool,
    /// The capability policy made at Create; wasm execs get it too. A native container is
    /// created whatever its policy's error (its pod's annotations are for wasm containers); a
    /// wasm exec into it fails with that error.
    pub(super) policy: Result<Policy, String>,
    /// Processes exec'd into the container, by exec id.
    pub(super) execs: HashMap<String, ExecProc>,
    /// The pod's sandbox id, in a shim that counts pods.
    pub(super) pod: Option<String>,
}

/// A process exec'd into a task's container: containerd sees it as a task of its own
/// (created, running, stopped), named by its exec id.
pub(super) struct ExecProc {
    pub(super) state: TaskState,
    /// The exec's OCI process spec, as JSON for the helper.
    pub(super) process_json: PathBuf,
    pub(super) stdin_path: String,
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) stdin: Option<StdinForwarder>,
    pub(super) terminal: bool,
    pub(super) console: Option<Arc<Console>>,
    /// The wasm program, when the exec's args[0] is wasm.
    pub(super) wasm: Option<WasmRequest>,
    /// Start is running its helper: the process may exist (and show in the cgroup) before its
    /// pid is known here, so Kill and Delete wait for the start to settle.
    pub(super) starting: bool,
}

/// How long an exit waits for the process's output to be copied out of its terminal and read
/// from its FIFOs (containerd's runc shim waits 2 s for its copy too).
pub(super) const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// State shared with the exit monitor thread.
pub(super) struct Shared {
    pub(super) namespace: String,
    pub(super) tasks: Mutex<HashMap<String, Entry>>,
    /// Signalled on every change of a task's state, for the calls that wait on one.
    pub(super) changed: Condvar,
    /// The same, for async waiters (Wait): containerd keeps a Wait open per task and exec,
    /// which must not hold a thread.
    pub(super) generation: tokio::sync::watch::Sender<u64>,
    pub(super) events: Events,
    /// Terminals by the pid of their process, so an exit is reported after its output.
    pub(super) consoles: Mutex<HashMap<i32, Arc<Console>>>,
    /// The shim's hold on each process's output FIFOs, by pid, until its output is read (see
    /// `crate::process::stdio::OutputKeeper`).
    pub(super) outputs: Mutex<HashMap<i32, OutputKeeper>>,
}

impl Shared {
    pub(super) fn tasks(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock must not take the whole shim down with it.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn notify(&self) {
        self.changed.notify_all();
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub(super) fn consoles(&self) -> MutexGuard<'_, HashMap<i32, Arc<Console>>> {
        self.consoles.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn outputs(&self) -> MutexGuard<'_, HashMap<i32, OutputKeeper>> {
        self.outputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before an exit of `pid` is published: its terminal's output, if it has one, copied out,
    /// and what it wrote taken by the reader. Never under the tasks lock (it may wait).
    pub(super) fn drain_output(&self, pid: i32) {
        // Taken out first: the waits must not hold the locks.
        let console = self.consoles().remove(&pid);
        if let Some(c) = console {
            c.wait_output(OUTPUT_DRAIN);
        }
        let kept = self.outputs().remove(&pid);
        if let Some(k) = kept {
            k.drain(OUTPUT_DRAIN);
        }
    }

    /// Offers an exit to the tasks; one that no task owns (yet) is recorded in `exits`, under
    /// the tasks lock, so a Start that learns its pid right after finds it there.
    pub(super) fn claim(&self, pid: i32, info: ExitInfo, exits: &ExitMonitor) {
        self.drain_output(pid);
        let mut tasks = self.tasks();
        for entry in tasks.values_mut() {
            if let Some(x) = entry
                .execs
                .values_mut()
                .find(|x| x.state.pid == pid && pid > 0)
            {
                if x.state.exited(info) {
                    log::info!(
                        "exec {} in {} (pid {pid}) exited with status {}",
                        x.state.id,
                        entry.state.id,
                        info.status
                    );
                    self.publish_exit(&entry.state.id, &x.state.id, pid, info);
                }
                self.notify();
                return;
            }
        }
        let Some(entry) = tasks.values_mut().find(|e| e.state.pid == pid) else {
            exits.record(pid, info);
            return;
        };
        if entry.state.exited(info) {
            log::info!(
                "task {} (pid {pid}) exited with status {}",
                entry.state.id,
                info.status
            );
            self.publish_exit(&entry.state.id, &entry.state.id, pid, info);
        }
        self.notify();
    }

    /// TaskExit for the init (`id` = the task's id) or an exec'd process (`id` = its exec id).
    pub(super) fn publish_exit(&self, container_id: &str, id: &str, pid: i32, info: ExitInfo) {
        self.events.publish(
            TASK_EXIT_EVENT_TOPIC,
            Box::new(TaskExit {
                container_id: container_id.to_string(),
                id: id.to_string(),
                pid: pid as u32,
                exit_status: info.status as u32,
                exited_at: MessageField::some(timestamp(info.at)),
                ..Default::default()
            }),
        );
    }
}

/// The ttrpc task service.
pub struct Service {
    pub(super) shared: Arc<Shared>,
    pub(super) exits: Arc<ExitMonitor>,
    /// libcontainer changes the working directory around some calls: one at a time.
    pub(super) lifecycle: Mutex<()>,
    /// Containers admitted but not created yet, and when to exit (see `crate::group`).
    /// Locked after `shared.tasks` when both are held.
    pub(super) admission: Mutex<Admission>,
    /// What the admission's limit counts: containers, or pods.
    pub(super) counts: crate::group::Counting,
    pub(super) engine: Result<wasmbox_wasm::compile::engine::Engine, String>,
    /// Winch's engine, made at the first large module (see `crate::tiering`).
    pub(super) baseline: std::sync::OnceLock<Result<wasmbox_wasm::compile::engine::Engine, String>>,
    pub(super) cache: Result<CompileCache, String>,
    pub(super) exit_signal: Arc<ExitSignal>,
    /// containerd's content store, for Wasm OCI images whose module is a layer.
    pub(super) content: Option<crate::artifact::ContentSource>,
}

pub(super) fn entry_mut<'a>(
    tasks: &'a mut HashMap<String, Entry>,
    id: &str,
) -> TtrpcResult<&'a mut Entry> {
    tasks
        .get_mut(id)
        .ok_or_else(|| rpc_error(Code::NOT_FOUND, format!("task {id} not found")))
}

pub(super) fn exec_mut<'a>(
    tasks: &'a mut HashMap<String, Entry>,
    id: &str,
    exec_id: &str,
) -> TtrpcResult<&'a mut ExecProc> {
    entry_mut(tasks, id)?
        .execs
        .get_mut(exec_id)
        .ok_or_else(|| exec_not_found(id, exec_id))
}

impl Service {
    pub async fn new(
        namespace: &str,
        events: Events,
        exit_signal: Arc<ExitSignal>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            namespace: namespace.to_string(),
            tasks: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            generation: tokio::sync::watch::channel(0).0,
            events,
            consoles: Mutex::new(HashMap::new()),
            outputs: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let exits = ExitMonitor::start(move |pid, info, exits| s.claim(pid, info, exits)).await?;
        // Per-shim start-up work, done once rather than per task.
        let engine = wasmbox_wasm::compile::engine::new_engine().map_err(|e| e.to_string());
        let cache = CompileCache::open(wasmbox_wasm::compile::cache::default_dir())
            .map_err(|e| e.to_string());
        Ok(Self {
            shared,
            exits,
            lifecycle: Mutex::new(()),
            admission: Mutex::new(Admission::new(
                crate::group::limit_from_env(),
                crate::group::reservation_ttl(),
            )),
            counts: crate::group::Counting::from_env(),
            engine,
            baseline: std::sync::OnceLock::new(),
            cache,
            exit_signal,
            content: None,
        })
    }

    /// Lets Create read wasm layers from containerd at `address` (its gRPC socket).
    pub fn with_containerd(mut self, address: &str) -> Self {
        self.content = Some(crate::artifact::ContentSource::new(
            address,
            &self.shared.namespace,
        ));
        self
    }

    pub(super) fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn admission(&self) -> MutexGuard<'_, Admission> {
        self.admission.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn with_entry<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Entry) -> TtrpcResult<T>,
    ) -> TtrpcResult<T> {
        f(entry_mut(&mut self.shared.tasks(), id)?)
    }

    pub(super) fn with_exec<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&mut ExecProc) -> TtrpcResult<T>,
    ) -> TtrpcResult<T> {
        f(exec_mut(&mut self.shared.tasks(), id, exec_id)?)
    }

    /// Like `with_exec`, once the exec is not starting: its pid is known then, or it failed.
    /// Runc's shim serializes Kill after Start the same way; Start always settles (`Starting`).
    pub(super) fn with_settled_exec<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&mut ExecProc) -> TtrpcResult<T>,
    ) -> TtrpcResult<T> {
        let mut tasks = self.shared.tasks();
        while tasks
            .get(id)
            .and_then(|e| e.execs.get(exec_id))
            .is_some_and(|x| x.starting)
        {
            tasks = self
                .shared
                .changed
                .wait(tasks)
                .unwrap_or_else(|p| p.into_inner());
        }
        f(exec_mut(&mut tasks, id, exec_id)?)
    }
}
