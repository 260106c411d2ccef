//! Create: the container made through the create helper, and a Create containerd gave up on
//! undone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim::api::{CreateTaskRequest, CreateTaskResponse, DeleteRequest};
use containerd_shim::protos::events::task::{TaskCreate, TaskIO};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics::TASK_CREATE_EVENT_TOPIC;
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::TtrpcResult;
use oci_spec::runtime::Spec;
use wasmbox_container::cgroups::is_systemd_path;
use wasmbox_container::lifecycle::{state_root, Handle};
use wasmbox_wasm::compile::entrypoint::{self};

use crate::helper::parent::{self, HelperError};
use crate::helper::request::CreateRequest;
use crate::process::console::{Console, ConsoleSocket};
use crate::process::rootfs;
use crate::process::stdio::{OutputKeeper, StdinForwarder};
use crate::process::task::{Status, TaskState};
use wasmbox_wasm::policy::Policy;

use super::io::attach_console;
use super::program::*;
use super::reply::*;
use super::tasks::*;

/// What Create made.
pub(super) struct Created {
    pub(super) pid: i32,
    pub(super) policy: Result<Policy, String>,
    pub(super) rootfs_mounted: bool,
    pub(super) stdin: Option<StdinForwarder>,
    pub(super) console: Option<Arc<Console>>,
    pub(super) output: OutputKeeper,
}

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
        let (pod, member) = self.pod_of(&req.id, Path::new(&req.bundle));
        if member {
            self.admission().creating_member(&req.id);
        } else {
            self.admission().creating(&req.id);
        }
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
                    pod,
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

    /// containerd gave up the Create of `id` under way (see `super::api`): it undoes
    /// itself when it ends.
    pub fn abandon_create(&self, id: &str) {
        let tasks = self.shared.tasks();
        if self.admission().abandon(id) {
            log::warn!("containerd gave up the Create of {id}; it will be undone when it ends");
            return;
        }
        // It ended just before its answer was dropped: its task is still as Create left it.
        let unanswered = tasks
            .get(id)
            .is_some_and(|e| e.state.status() == Status::Created);
        drop(tasks);
        if unanswered {
            log::warn!("containerd gave up the Create of {id} as it ended; undoing it");
            if let Err(e) = self.delete(DeleteRequest {
                id: id.to_string(),
                ..Default::default()
            }) {
                log::warn!("undoing the Create of {id}: {e}");
            }
            self.admission().want_exit();
            self.settle();
        }
    }

    /// Takes back what an abandoned Create made: the container (its init killed, cgroups and
    /// state removed), its stdio, its rootfs mount.
    pub(super) fn undo_create(
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
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
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

    /// Runs the helper, recompiling once if the cache entry turned out to be unusable.
    pub(super) fn create_container(
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

    pub(super) fn do_create(&self, req: &CreateTaskRequest) -> Result<Created, String> {
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
                log::debug!(
                    "{}: native, so its policy's error is not its own: {e}",
                    req.id
                );
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
}
