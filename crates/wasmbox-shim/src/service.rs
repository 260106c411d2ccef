//! The task service: containerd's task API v2 over ttrpc.
//!
//! One service per shim process serves every container of its group (a pod, or one
//! container). Containers are created through the `create` helper and then started, signalled
//! and deleted in-process through libcontainer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest,
    PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, Status as ApiStatus,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::api::ProcessInfo;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics::{
    TASK_CREATE_EVENT_TOPIC, TASK_DELETE_EVENT_TOPIC, TASK_EXEC_ADDED_EVENT_TOPIC,
    TASK_EXEC_STARTED_EVENT_TOPIC, TASK_EXIT_EVENT_TOPIC, TASK_PAUSED_EVENT_TOPIC,
    TASK_RESUMED_EVENT_TOPIC, TASK_START_EVENT_TOPIC,
};
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::{ExitSignal, TtrpcResult};
use oci_spec::runtime::{LinuxResources, Process, Spec};
use wasmbox_container::cgroups::is_systemd_path;
use wasmbox_container::lifecycle::{state_root, Handle};
use wasmbox_wasm::compile::cache::CompileCache;
use wasmbox_wasm::compile::entrypoint::{self, Entrypoint};
use wasmbox_wasm::compile::kind::FileKind;
use wasmbox_wasm::WasmError;

use crate::console::{Console, ConsoleSocket};
use crate::events::Events;
use crate::exits::{ExitInfo, ExitMonitor};
use crate::group::Admission;
use crate::helper::parent::{self, HelperError};
use crate::helper::request::{CreateRequest, ExecSpec, WasmRequest};
use crate::stdio::{OutputKeeper, StdinForwarder};
use crate::task::{StateError, Status, TaskState};
use crate::{metrics, rootfs};
use wasmbox_wasm::policy::Policy;

/// A task and what the shim holds for it.
struct Entry {
    state: TaskState,
    handle: Handle,
    stdin_path: String,
    stdout: String,
    stderr: String,
    stdin: Option<StdinForwarder>,
    /// The init's terminal, when it has one.
    console: Option<Arc<Console>>,
    rootfs_mounted: bool,
    /// The capability policy made at Create; wasm execs get it too. A native container is
    /// created whatever its policy's error (its pod's annotations are for wasm containers); a
    /// wasm exec into it fails with that error.
    policy: Result<Policy, String>,
    /// Processes exec'd into the container, by exec id.
    execs: HashMap<String, ExecProc>,
}

/// A process exec'd into a task's container: containerd sees it as a task of its own
/// (created, running, stopped), named by its exec id.
struct ExecProc {
    state: TaskState,
    /// The exec's OCI process spec, as JSON for the helper.
    process_json: PathBuf,
    stdin_path: String,
    stdout: String,
    stderr: String,
    stdin: Option<StdinForwarder>,
    terminal: bool,
    console: Option<Arc<Console>>,
    /// The wasm program, when the exec's args[0] is wasm.
    wasm: Option<WasmRequest>,
    /// Start is running its helper: the process may exist (and show in the cgroup) before its
    /// pid is known here, so Kill and Delete wait for the start to settle.
    starting: bool,
}

/// Clears an exec's `starting` on every way out of Start, waking Kill and Delete.
struct Starting<'a> {
    shared: &'a Shared,
    id: &'a str,
    exec_id: &'a str,
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

/// What Create made.
struct Created {
    pid: i32,
    policy: Result<Policy, String>,
    rootfs_mounted: bool,
    stdin: Option<StdinForwarder>,
    console: Option<Arc<Console>>,
    output: OutputKeeper,
}

/// How long an exit waits for the process's output to be copied out of its terminal and read
/// from its FIFOs (containerd's runc shim waits 2 s for its copy too).
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// A terminal process's console, once the helper has created the process.
fn attach_console(
    socket: &ConsoleSocket,
    stdin: &str,
    stdout: &str,
) -> Result<Arc<Console>, String> {
    let master = socket.receive().map_err(|e| format!("terminal: {e}"))?;
    Console::start(master, stdin, stdout).map_err(|e| format!("terminal: {e}"))
}

/// What a program name turned out to be in the container.
enum Resolved {
    Native,
    Wasm(WasmRequest),
    Missing,
}

/// State shared with the exit monitor thread.
struct Shared {
    namespace: String,
    tasks: Mutex<HashMap<String, Entry>>,
    /// Signalled on every change of a task's state, for the calls that wait on one.
    changed: Condvar,
    /// The same, for async waiters (Wait): containerd keeps a Wait open per task and exec,
    /// which must not hold a thread.
    generation: tokio::sync::watch::Sender<u64>,
    events: Events,
    /// Terminals by the pid of their process, so an exit is reported after its output.
    consoles: Mutex<HashMap<i32, Arc<Console>>>,
    /// The shim's hold on each process's output FIFOs, by pid, until its output is read (see
    /// `crate::stdio::OutputKeeper`).
    outputs: Mutex<HashMap<i32, OutputKeeper>>,
}

impl Shared {
    fn tasks(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock must not take the whole shim down with it.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.notify_all();
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn consoles(&self) -> MutexGuard<'_, HashMap<i32, Arc<Console>>> {
        self.consoles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outputs(&self) -> MutexGuard<'_, HashMap<i32, OutputKeeper>> {
        self.outputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before an exit of `pid` is published: its terminal's output, if it has one, copied out,
    /// and what it wrote taken by the reader. Never under the tasks lock (it may wait).
    fn drain_output(&self, pid: i32) {
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
    fn claim(&self, pid: i32, info: ExitInfo, exits: &ExitMonitor) {
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
    fn publish_exit(&self, container_id: &str, id: &str, pid: i32, info: ExitInfo) {
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
    shared: Arc<Shared>,
    exits: Arc<ExitMonitor>,
    /// libcontainer changes the working directory around some calls: one at a time.
    lifecycle: Mutex<()>,
    /// Containers admitted but not created yet, and when to exit (see `crate::group`).
    /// Locked after `shared.tasks` when both are held.
    admission: Mutex<Admission>,
    engine: Result<wasmbox_wasm::compile::engine::Engine, String>,
    /// Winch's engine, made at the first large module (see `crate::tiering`).
    baseline: std::sync::OnceLock<Result<wasmbox_wasm::compile::engine::Engine, String>>,
    cache: Result<CompileCache, String>,
    exit_signal: Arc<ExitSignal>,
    /// containerd's content store, for Wasm OCI images whose module is a layer.
    content: Option<crate::artifact::ContentSource>,
}

/// The longest error message the shim returns: far below ttrpc's 4 MiB, so that no value an
/// error quotes (errors quote short prefixes, see `wasmbox_wasm::policy::quote`) can make
/// containerd drop the message.
const MAX_ERROR_BYTES: usize = 16 * 1024;

fn rpc_error(code: Code, message: impl ToString) -> ttrpc::Error {
    let mut message = message.to_string();
    if message.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let len = message.len();
        message.truncate(end);
        message.push_str(&format!("... (cut: {len} bytes in all)"));
    }
    log::warn!("{message}");
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message))
}

fn state_error(e: StateError) -> ttrpc::Error {
    match e {
        StateError::Finished(_) => rpc_error(Code::NOT_FOUND, e),
        StateError::AlreadyStarted(_) | StateError::NotIn { .. } => {
            rpc_error(Code::FAILED_PRECONDITION, e)
        }
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

fn api_status(s: Status) -> ApiStatus {
    match s {
        Status::Created => ApiStatus::CREATED,
        Status::Running => ApiStatus::RUNNING,
        Status::Paused => ApiStatus::PAUSED,
        Status::Stopped => ApiStatus::STOPPED,
    }
}

fn exec_not_found(id: &str, exec_id: &str) -> ttrpc::Error {
    rpc_error(Code::NOT_FOUND, format!("exec {exec_id} not found in {id}"))
}

fn entry_mut<'a>(tasks: &'a mut HashMap<String, Entry>, id: &str) -> TtrpcResult<&'a mut Entry> {
    tasks
        .get_mut(id)
        .ok_or_else(|| rpc_error(Code::NOT_FOUND, format!("task {id} not found")))
}

fn exec_mut<'a>(
    tasks: &'a mut HashMap<String, Entry>,
    id: &str,
    exec_id: &str,
) -> TtrpcResult<&'a mut ExecProc> {
    entry_mut(tasks, id)?
        .execs
        .get_mut(exec_id)
        .ok_or_else(|| exec_not_found(id, exec_id))
}

fn unsupported(what: &str) -> ttrpc::Error {
    rpc_error(
        Code::UNIMPLEMENTED,
        format!("{what} is not supported by wasmbox"),
    )
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
        let cache =
            CompileCache::open(wasmbox_wasm::compile::cache::default_dir()).map_err(|e| e.to_string());
        Ok(Self {
            shared,
            exits,
            lifecycle: Mutex::new(()),
            admission: Mutex::new(Admission::new(
                crate::group::limit_from_env(),
                crate::group::reservation_ttl(),
            )),
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

    fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admission(&self) -> MutexGuard<'_, Admission> {
        self.admission.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a place is held for a Create that has not begun.
    pub fn reservation_ttl(&self) -> Duration {
        self.admission().ttl()
    }

    /// Holds a place for container `id`, whose Create is on its way, counting the tasks.
    fn reserve(&self, id: &str) -> Result<(), crate::group::Refusal> {
        let tasks = self.shared.tasks();
        self.admission().reserve(id, tasks.len(), std::time::Instant::now())
    }

    /// Holds a place for the container this shim was started for.
    pub fn expect(&self, id: &str) {
        if let Err(e) = self.reserve(id) {
            log::warn!("no place for {id}: {e}");
        }
    }

    /// Exits the shim if containerd asked for it (or an admitted container never came) and no
    /// task is left or on its way.
    pub fn settle(&self) {
        let tasks = self.shared.tasks();
        if self.admission().should_exit(tasks.len(), std::time::Instant::now()) {
            log::info!(
                "no tasks left in namespace {}; shutting down",
                self.shared.namespace
            );
            self.exit_signal.signal();
        }
    }

    /// containerd gave up the Create of `id` under way (see `crate::task_api`): it undoes
    /// itself when it ends.
    pub fn abandon_create(&self, id: &str) {
        let tasks = self.shared.tasks();
        if self.admission().abandon(id) {
            log::warn!("containerd gave up the Create of {id}; it will be undone when it ends");
            return;
        }
        // It ended just before its answer was dropped: its task is still as Create left it.
        let unanswered = tasks.get(id).is_some_and(|e| e.state.status() == Status::Created);
        drop(tasks);
        if unanswered {
            log::warn!("containerd gave up the Create of {id} as it ended; undoing it");
            if let Err(e) = self.delete(DeleteRequest { id: id.to_string(), ..Default::default() }) {
                log::warn!("undoing the Create of {id}: {e}");
            }
            self.admission().want_exit();
            self.settle();
        }
    }

    /// Takes back what an abandoned Create made: the container (its init killed, cgroups and
    /// state removed), its stdio, its rootfs mount.
    fn undo_create(
        &self,
        id: &str,
        bundle: &Path,
        pid: i32,
        rootfs_mounted: bool,
        stdin: Option<StdinForwarder>,
        console: Option<Arc<Console>>,
    ) {
        log::warn!("undoing the Create of {id}, which containerd gave up");
        {
            let _guard = self.lifecycle();
            if let Err(e) = Handle::new(state_root(bundle), id).delete() {
                log::warn!("cleanup of {id}: {e}");
            }
        }
        // Without its state (containerd removed the bundle meanwhile) the delete finds nothing:
        // the init is still this shim's unreaped child, so its pid is its own.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        if let Some(s) = &stdin {
            s.close();
        }
        drop(console);
        if rootfs_mounted {
            rootfs::unmount(&bundle.join("rootfs"));
        }
        let _ = std::fs::remove_dir_all(state_root(bundle));
        // A bundle containerd removed meanwhile may have been made again for the state: with
        // that gone it is empty, and goes (a bundle with anything else in it stays).
        let _ = std::fs::remove_dir(bundle);
    }

    /// Compiles (or finds in the cache) the wasm entrypoint of `spec`; None for native ones.
    fn prepare_wasm(
        &self,
        id: &str,
        spec: &Spec,
        rootfs: &Path,
    ) -> Result<Option<WasmRequest>, String> {
        let process = spec.process().as_ref().ok_or("the spec has no process")?;
        let args = process.args().as_deref().unwrap_or_default();
        let Some(arg0) = args.first() else {
            // A Wasm OCI image may leave the entrypoint out: its layer is the program.
            let wasm = crate::artifact::image_entrypoint(self.content.as_ref(), id, None)?
                .ok_or("the spec's process has no args")?;
            return self.compile(wasm).map(Some);
        };
        let env = process.env().clone().unwrap_or_default();
        let cwd = process.cwd().display().to_string();
        match self.prepare_program(id, spec, rootfs, arg0, &env, &cwd)? {
            Resolved::Native => Ok(None),
            Resolved::Wasm(w) => Ok(Some(w)),
            Resolved::Missing => Err(WasmError::EntrypointNotFound(arg0.clone()).to_string()),
        }
    }

    /// Resolves `arg0` as the container sees it (the rootfs and the spec's bind mounts) and
    /// compiles it if it is wasm.
    fn prepare_program(
        &self,
        id: &str,
        spec: &Spec,
        rootfs: &Path,
        arg0: &str,
        env: &[String],
        cwd: &str,
    ) -> Result<Resolved, String> {
        let fs = entrypoint::ContainerFs::from_spec(rootfs, spec);
        let wasm = match entrypoint::resolve(&fs, arg0, env, cwd).map_err(|e| e.to_string())? {
            Entrypoint::Native => return Ok(Resolved::Native),
            // Wasm OCI images: the module is a layer of the image, not a file in the rootfs.
            Entrypoint::NotInRootfs => {
                match crate::artifact::image_entrypoint(self.content.as_ref(), id, Some(arg0))? {
                    Some(w) => w,
                    None => return Ok(Resolved::Missing),
                }
            }
            Entrypoint::Wasm(w) => w,
        };
        self.compile(wasm).map(Resolved::Wasm)
    }

    /// Compiles `wasm` into the cache (or finds it there) and describes it for the helper.
    fn compile(&self, mut wasm: entrypoint::WasmEntrypoint) -> Result<WasmRequest, String> {
        let engine = self.engine.as_ref().map_err(|e| e.clone())?;
        let cache = self.cache.as_ref().map_err(|e| e.clone())?;
        let (artifact, baseline) = self.artifact(engine, cache, &mut wasm)?;
        let trampoline = if wasm.kind == FileKind::Component {
            None
        } else {
            // Loaded into the guest's store, so compiled by the guest's compiler.
            let engine = if baseline { self.baseline_engine()? } else { engine };
            let wasm = wasmbox_wasm::p1::trampoline_wasm();
            let label = "the WASI trampoline";
            let compile = || cache.get_or_compile(engine, wasm, FileKind::Module, label);
            let path = cache.entry_path(engine, wasm, FileKind::Module);
            let made = if path.is_file() {
                compile()
            } else {
                crate::tiering::compile_once(cache.dir(), &path, label, compile)
            };
            Some(made.map_err(|e| e.to_string())?)
        };
        Ok(WasmRequest {
            artifact,
            component: wasm.kind == FileKind::Component,
            guest_path: wasm.guest_path,
            func: wasm.func,
            trampoline,
            baseline,
            policy: Default::default(),
        })
    }

    fn baseline_engine(&self) -> Result<&wasmbox_wasm::compile::engine::Engine, String> {
        self.baseline
            .get_or_init(|| wasmbox_wasm::compile::engine::new_baseline_engine().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// The artifact to run and whether it is the baseline tier's: Cranelift's when the cache
    /// has it; else, for a large module, Winch's, with Cranelift's compile started in the
    /// background for the next starts (see `crate::tiering`); else Cranelift's, compiled now.
    fn artifact(
        &self,
        engine: &wasmbox_wasm::compile::engine::Engine,
        cache: &CompileCache,
        wasm: &mut entrypoint::WasmEntrypoint,
    ) -> Result<(PathBuf, bool), String> {
        if let Some(a) = cache.find_entrypoint(engine, wasm).map_err(|e| e.to_string())? {
            return Ok((a, false));
        }
        let optimized = |wasm: &mut entrypoint::WasmEntrypoint| {
            let compile = |wasm: &mut entrypoint::WasmEntrypoint| -> Result<PathBuf, wasmbox_wasm::WasmError> {
                // A pull-time or background compile of this module may be under way.
                let path = cache.entrypoint_path(engine, wasm)?;
                let guest_path = wasm.guest_path.clone();
                crate::tiering::compile_once(cache.dir(), &path, &guest_path, || {
                    crate::tiering::with_compile_arenas(|| cache.get_or_compile_entrypoint(engine, wasm))
                })
            };
            compile(wasm).map(|a| (a, false)).map_err(|e| e.to_string())
        };
        let Some(min_bytes) = crate::tiering::min_bytes().filter(|_| wasm.kind != FileKind::Component) else {
            return optimized(wasm);
        };
        if (wasm.bytes().map_err(|e| e.to_string())?.len() as u64) < min_bytes {
            return optimized(wasm);
        }
        let baseline = match self.baseline_engine() {
            Ok(b) => b,
            Err(e) => {
                log::warn!("no baseline compiler ({e}); compiling {} with Cranelift now", wasm.guest_path);
                return optimized(wasm);
            }
        };
        let baseline_artifact = cache.entrypoint_path(baseline, wasm).map_err(|e| e.to_string())?;
        let guest_path = wasm.guest_path.clone();
        let made = crate::tiering::compile_once(cache.dir(), &baseline_artifact, &guest_path, || {
            crate::tiering::with_compile_arenas(|| cache.get_or_compile_entrypoint(baseline, wasm))
        });
        match made {
            Ok(a) => {
                let guest_path = wasm.guest_path.clone();
                crate::tiering::schedule(cache, wasm.bytes().map_err(|e| e.to_string())?, &guest_path);
                Ok((a, true))
            }
            Err(e) => {
                log::info!("{}: the baseline compiler does not take it ({e}); compiling with Cranelift now", wasm.guest_path);
                optimized(wasm)
            }
        }
    }

    /// Runs the helper, recompiling once if the cache entry turned out to be unusable.
    fn create_container(
        &self,
        mut req: CreateRequest,
        stdin: &mut dyn FnMut() -> Result<Option<std::os::fd::OwnedFd>, String>,
        spec: &Spec,
        rootfs: &Path,
    ) -> Result<i32, String> {
        for attempt in 0..2 {
            match parent::create(&req, stdin()?, &self.exits) {
                Ok(pid) => return Ok(pid),
                Err(HelperError::Failed {
                    bad_cache_entry: true,
                    message,
                }) if attempt == 0 => {
                    log::warn!("{message}; recompiling");
                    if let (Ok(cache), Some(w)) = (&self.cache, &req.wasm) {
                        cache.invalidate(&w.artifact);
                        if let Some(t) = &w.trampoline {
                            cache.invalidate(t);
                        }
                    }
                    Handle::new(&req.root, &req.id)
                        .delete()
                        .map_err(|e| e.to_string())?;
                    req.wasm = self.prepare_wasm(&req.id, spec, rootfs)?;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the compile cache keeps producing unusable entries".into())
    }

    fn do_create(&self, req: &CreateTaskRequest) -> Result<Created, String> {
        let bundle = PathBuf::from(&req.bundle);
        let spec = load_spec(&bundle)?;
        let rootfs = rootfs_of(&bundle, &spec);
        let mounted = rootfs::mount(&req.rootfs, &rootfs)?;
        let undo_mount = |mounted: bool| {
            if mounted {
                rootfs::unmount(&rootfs);
            }
        };
        let fs = entrypoint::ContainerFs::from_spec(&rootfs, &spec);
        // The capability policy is the wasm guest's: pod annotations reach every container of
        // the pod, and the pause container and native sidecars are created as runc creates
        // them whatever they say. A wasm container with a bad one fails before it compiles.
        let policy = crate::policy::for_container(req.options.as_ref(), &spec, &fs);
        let planned = match &policy {
            Ok(_) => self.prepare_wasm(&req.id, &spec, &rootfs),
            Err(e) if runs_natively(&spec, &fs) => {
                log::debug!("{}: native, so its policy's error is not its own: {e}", req.id);
                Ok(None)
            }
            Err(e) => Err(e.clone()),
        };
        let mut wasm = match planned {
            Ok(w) => w,
            Err(e) => {
                undo_mount(mounted);
                return Err(e);
            }
        };
        if let (Some(w), Ok(policy)) = (&mut wasm, &policy) {
            if let Err(e) = crate::policy::check_listeners(policy, w.component) {
                undo_mount(mounted);
                return Err(e);
            }
            w.policy = policy.clone();
        }
        let cgroups_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.display().to_string());
        let console_socket = if req.terminal {
            match ConsoleSocket::new() {
                Ok(s) => Some(s),
                Err(e) => {
                    undo_mount(mounted);
                    return Err(format!("terminal: console socket: {e}"));
                }
            }
        } else {
            None
        };
        // A terminal's streams are the pty, copied by the shim: the helper opens none.
        let (stdout, stderr) = match console_socket {
            Some(_) => (String::new(), String::new()),
            None => (req.stdout.clone(), req.stderr.clone()),
        };
        let helper_req = CreateRequest {
            id: req.id.clone(),
            bundle: bundle.clone(),
            root: state_root(&bundle),
            stdout,
            stderr,
            systemd: is_systemd_path(cgroups_path.as_deref()),
            wasm,
            exec: None,
            console_socket: console_socket.as_ref().map(|s| s.path()),
        };
        let mut forwarder: Option<StdinForwarder> = None;
        let mut stdin = || -> Result<Option<std::os::fd::OwnedFd>, String> {
            if req.stdin.is_empty() || req.terminal {
                return Ok(None);
            }
            let (f, read_end) =
                StdinForwarder::start(&req.stdin).map_err(|e| format!("stdin: {e}"))?;
            forwarder = Some(f);
            Ok(Some(read_end))
        };
        // Before the process exists: what it writes outlives it until read.
        let output = OutputKeeper::open(&[&req.stdout, &req.stderr]);
        let result = self
            .create_container(helper_req, &mut stdin, &spec, &rootfs)
            .and_then(|pid| {
                let console = match &console_socket {
                    Some(s) => Some(attach_console(s, &req.stdin, &req.stdout)?),
                    None => None,
                };
                Ok((pid, console))
            });
        match result {
            Ok((pid, console)) => Ok(Created {
                pid,
                policy,
                rootfs_mounted: mounted,
                stdin: forwarder,
                console,
                output,
            }),
            Err(e) => {
                // libcontainer cleans up after a failed build; make sure of it, then unmount.
                let _guard = self.lifecycle();
                if let Err(de) = Handle::new(state_root(&bundle), &req.id).delete() {
                    log::warn!("cleanup of {}: {de}", req.id);
                }
                let _ = std::fs::remove_dir_all(state_root(&bundle));
                drop(forwarder);
                undo_mount(mounted);
                Err(e)
            }
        }
    }

    /// Pause (freeze) or resume (thaw) task `id`, then tell containerd.
    fn set_paused(&self, id: &str, paused: bool) -> TtrpcResult<Empty> {
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

    fn with_entry<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Entry) -> TtrpcResult<T>,
    ) -> TtrpcResult<T> {
        f(entry_mut(&mut self.shared.tasks(), id)?)
    }

    fn with_exec<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&mut ExecProc) -> TtrpcResult<T>,
    ) -> TtrpcResult<T> {
        f(exec_mut(&mut self.shared.tasks(), id, exec_id)?)
    }

    /// Like `with_exec`, once the exec is not starting: its pid is known then, or it failed.
    /// Runc's shim serializes Kill after Start the same way; Start always settles (`Starting`).
    fn with_settled_exec<T>(
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

    /// Runs a recorded exec through a helper (libcontainer's tenant builder), like
    /// `runc exec --detach`; its exit reaches the exit monitor like the init's.
    fn start_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<StartResponse> {
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
            Ok((req, x.stdin_path.clone(), x.stdout.clone(), x.stderr.clone(), x.terminal))
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
    fn delete_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<DeleteResponse> {
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

/// True when the spec's `args[0]` is a native program in the container (resolved as Create
/// resolves it, without compiling anything).
fn runs_natively(spec: &Spec, fs: &entrypoint::ContainerFs) -> bool {
    let Some(process) = spec.process() else { return false };
    let Some(arg0) = process.args().as_deref().and_then(<[String]>::first) else {
        return false;
    };
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().display().to_string();
    matches!(entrypoint::resolve(fs, arg0, &env, &cwd), Ok(Entrypoint::Native))
}

/// The task API's calls, each run on a blocking thread (see `crate::task_api`).
impl Service {
    pub fn create(&self, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        log::info!("create {} (bundle {})", req.id, req.bundle);
        if !req.checkpoint.is_empty() {
            return Err(unsupported("restoring a checkpoint"));
        }
        if self.shared.tasks().contains_key(&req.id) {
            return Err(rpc_error(
                Code::ALREADY_EXISTS,
                format!("task {} already exists", req.id),
            ));
        }
        self.admission().creating(&req.id);
        let created = self.do_create(&req);
        let Created {
            pid,
            policy,
            rootfs_mounted,
            stdin,
            console,
            output,
        } = created.map_err(|e| {
            self.admission().created(&req.id);
            // containerd may have asked this shim to exit while the Create was on its way.
            self.settle();
            rpc_error(Code::INVALID_ARGUMENT, format!("create {}: {e}", req.id))
        })?;
        let bundle = PathBuf::from(&req.bundle);
        if self.admission().limit() == 1 {
            // A shim of one container creates nothing more: an idle zygote would only cost
            // memory. (An exec later execs its helper.)
            if let Some(z) = crate::helper::zygote::get() {
                z.retire();
            }
        }
        {
            let mut tasks = self.shared.tasks();
            // Under the tasks lock: a Shutdown in between sees the task or the Create.
            if self.admission().created(&req.id) {
                drop(tasks);
                self.undo_create(&req.id, &bundle, pid, rootfs_mounted, stdin, console);
                self.settle();
                return Err(rpc_error(
                    Code::CANCELLED,
                    format!("create {}: containerd gave this Create up (its connection closed, its deadline passed or it deleted the task); undone", req.id),
                ));
            }
            if let Some(c) = &console {
                self.shared.consoles().insert(pid, c.clone());
            }
            let mut state = TaskState::new(&req.id, bundle.clone(), pid);
            // The init may already be gone (killed before we got here, before it ran anything).
            if let Some(info) = self.exits.take(pid) {
                state.exited(info);
            } else {
                self.shared.outputs().insert(pid, output);
            }
            tasks.insert(
                req.id.clone(),
                Entry {
                    state,
                    handle: Handle::new(state_root(&bundle), &req.id),
                    stdin_path: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    stdin,
                    console,
                    rootfs_mounted,
                    policy,
                    execs: HashMap::new(),
                },
            );
        }
        self.shared.events.publish(
            TASK_CREATE_EVENT_TOPIC,
            Box::new(TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                pid: pid as u32,
                ..Default::default()
            }),
        );
        Ok(CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

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

    pub fn state(&self, req: StateRequest) -> TtrpcResult<StateResponse> {
        if !req.exec_id.is_empty() {
            return self.with_exec(&req.id, &req.exec_id, |x| {
                let exit = x.state.exit();
                Ok(StateResponse {
                    id: req.exec_id.clone(),
                    bundle: x.state.bundle.display().to_string(),
                    pid: x.state.pid as u32,
                    status: api_status(x.state.status()).into(),
                    stdin: x.stdin_path.clone(),
                    stdout: x.stdout.clone(),
                    stderr: x.stderr.clone(),
                    exit_status: exit.map(|x| x.status as u32).unwrap_or_default(),
                    exited_at: MessageField::from_option(exit.map(|x| timestamp(x.at))),
                    exec_id: req.exec_id.clone(),
                    ..Default::default()
                })
            });
        }
        self.with_entry(&req.id, |e| {
            let status = api_status(e.state.status());
            let exit = e.state.exit();
            Ok(StateResponse {
                id: req.id.clone(),
                bundle: e.state.bundle.display().to_string(),
                pid: e.state.pid as u32,
                status: status.into(),
                stdin: e.stdin_path.clone(),
                stdout: e.stdout.clone(),
                stderr: e.stderr.clone(),
                exit_status: exit.map(|x| x.status as u32).unwrap_or_default(),
                exited_at: MessageField::from_option(exit.map(|x| timestamp(x.at))),
                ..Default::default()
            })
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
                log::info!("{} is still being created; its Create will be undone", req.id);
                return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                    Code::NOT_FOUND,
                    format!("task {} not found (its Create is under way and will be undone)", req.id),
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

    pub fn pids(&self, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let handle = self.with_entry(&req.id, |e| Ok(e.handle.clone()))?;
        let pids = handle
            .pids()
            .map_err(|err| rpc_error(Code::UNKNOWN, format!("pids {}: {err}", req.id)))?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    pub fn stats(&self, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let handle = self.with_entry(&req.id, |e| Ok(e.handle.clone()))?;
        let stats = handle
            .stats()
            .map_err(|err| rpc_error(Code::UNKNOWN, format!("stats {}: {err}", req.id)))?;
        let any = metrics::to_any(&stats).map_err(|e| rpc_error(Code::INTERNAL, e))?;
        Ok(StatsResponse {
            stats: MessageField::some(any),
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

    pub fn connect(&self, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        if let Some(id) = req.id.strip_prefix(crate::group::JOIN_PREFIX) {
            // A refusal is routine (the start action tries the next shim): no warning.
            self.reserve(id).map_err(|e| {
                log::debug!("not admitting {id}: {e}");
                ttrpc::Error::RpcStatus(ttrpc::get_status(Code::RESOURCE_EXHAUSTED, e.to_string()))
            })?;
            log::debug!("admitted {id}");
            return Ok(ConnectResponse {
                shim_pid: std::process::id(),
                ..Default::default()
            });
        }
        let task_pid = self
            .with_entry(&req.id, |e| Ok(e.state.pid))
            .unwrap_or_default();
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: task_pid as u32,
            ..Default::default()
        })
    }

    pub fn shutdown(&self, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        self.admission().want_exit();
        self.settle();
        Ok(Empty::new())
    }

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
            Resolved::Wasm(w) => Some(WasmRequest { policy: policy.map_err(bad)?, ..w }),
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
}

/// The container's rootfs: the spec's `root.path`, relative to the bundle unless absolute.
fn rootfs_of(bundle: &Path, spec: &Spec) -> PathBuf {
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    if root_path.is_absolute() {
        root_path
    } else {
        bundle.join(root_path)
    }
}

/// Why an exec cannot run: its program is nowhere in the container.
fn nothing_runnable(arg0: &str) -> String {
    let name = arg0.rsplit('/').next().unwrap_or(arg0);
    if matches!(name, "sh" | "bash" | "ash" | "dash") {
        format!("no {arg0} in this image; exec a binary or a wasm module that is in it")
    } else {
        format!("{arg0:?} is not in the container (its rootfs and bind mounts); exec a binary or a wasm module that is in it")
    }
}

/// The bundle's OCI spec, or an error naming the bundle (it reaches `ctr`/`kubectl`).
fn load_spec(bundle: &Path) -> Result<Spec, String> {
    Spec::load(bundle.join("config.json")).map_err(|e| {
        format!(
            "cannot read the bundle's config.json in {}: {e}",
            bundle.display()
        )
    })
}

#[cfg(test)]
mod bundle_tests {
    use super::load_spec;

    #[test]
    fn an_unreadable_bundle_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_spec(dir.path()).unwrap_err();
        assert!(
            missing.contains("cannot read the bundle's config.json"),
            "{missing}"
        );
        assert!(
            missing.contains(&dir.path().display().to_string()),
            "{missing}"
        );
        std::fs::write(dir.path().join("config.json"), b"{not json").unwrap();
        let garbled = load_spec(dir.path()).unwrap_err();
        assert!(
            garbled.contains("cannot read the bundle's config.json"),
            "{garbled}"
        );
    }
}
