//! The shim manager: the `start` and `delete` actions containerd runs, and the long-lived
//! shim process that serves the task service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::api::ConnectRequest;
use containerd_shim::protos::shim_async::{Client, TaskClient};
use containerd_shim::protos::ttrpc::{self, context, Code};
use containerd_shim::{Config, Error, ExitSignal, Flags, Shim, StartOpts};
use wasmbox_container::lifecycle::{state_root, Handle};

use crate::events::{Events, InFlight};
use crate::group::{self, sandbox_id, Counting, Limits, Placement};
use crate::service::Service;
use crate::service::TaskApi;
use crate::policy;
use crate::process::rootfs;

mod socket;

/// How long a running shim may take to admit a container.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an exiting shim waits for its last events (the TaskDelete before Shutdown).
const EVENT_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the ttrpc server may take to stop once the shim is done.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Manager {
    id: String,
    namespace: String,
    bundle: PathBuf,
    /// containerd's own ttrpc address (`-address`), to find a dead shim's socket.
    containerd_address: String,
    /// This shim's socket (`-socket`), set only in the serving process.
    socket: String,
    debug: bool,
    exit: Arc<ExitSignal>,
    /// Events not yet delivered to containerd, drained before the shim exits.
    in_flight: Arc<InFlight>,
    /// The serving process's hold on its socket's name (see [`socket::NameLock`]).
    name: std::sync::Mutex<Option<socket::NameLock>>,
}

/// Why a running shim did not admit a container.
enum NotJoined {
    /// It is full or exiting: try the next one.
    Refused,
    /// It did not answer as a shim should.
    Failed(String),
}

/// Asks the shim at `address` to admit container `id` (see [`crate::group`]).
async fn join(address: &str, id: &str) -> Result<(), NotJoined> {
    let path = socket::path_of(address).to_string_lossy();
    let fd = containerd_shim::util::connect(&*path).map_err(|e| NotJoined::Failed(e.to_string()))?;
    let client = TaskClient::new(Client::new(fd));
    let req = ConnectRequest {
        id: format!("{}{id}", group::JOIN_PREFIX),
        ..Default::default()
    };
    let ctx = context::with_timeout(JOIN_TIMEOUT.as_nanos() as i64);
    match client.connect(ctx, &req).await {
        Ok(_) => Ok(()),
        Err(ttrpc::Error::RpcStatus(s)) if s.code() == Code::RESOURCE_EXHAUSTED => Err(NotJoined::Refused),
        Err(e) => Err(NotJoined::Failed(e.to_string())),
    }
}

impl Manager {
    /// The address of the shim that will serve `opts.id`: its pod's, a shared one with room,
    /// or a new one (see [`crate::group`]).
    async fn place(&self, opts: StartOpts) -> Result<String, Error> {
        let sandbox = sandbox_id(&self.bundle);
        // A config that does not read gives the container a shim of its own; its Create
        // reports the config's error.
        let sharing = policy::sharing(policy::start_options().as_ref()).unwrap_or_else(|_| policy::Sharing::unshared());
        let identity = group::binary_identity(sharing.config.as_deref());
        let limits = Limits { containers: sharing.containers_per_shim, pods: sharing.pods_per_shim };
        match group::placement(&opts.id, sandbox.as_deref(), limits, &identity) {
            Placement::Pod(pod) => place_pod(opts, &pod).await,
            Placement::PodMember { sandbox } => {
                // Where the sandbox went (its `start` action wrote it before answering).
                let address = self
                    .bundle
                    .parent()
                    .and_then(|dir| bundle_address(&dir.join(&sandbox)))
                    .filter(|a| socket::is_live(a));
                match address {
                    Some(address) => Ok(address),
                    // Its sandbox's shim is gone: the container gets one of the pod's own,
                    // as before sharing (its Create will find no pod to join).
                    None => place_pod(opts, &sandbox).await,
                }
            }
            Placement::Own(id) => containerd_shim::spawn(opts, &id, vec![(group::LIMIT_ENV, "1")]).await,
            Placement::Shared { key, limit, counts } => place_shared(opts, &key, limit, counts).await,
        }
    }
}

/// The shim named by pod `pod`'s sandbox id: the running one, else a new one.
async fn place_pod(opts: StartOpts, pod: &str) -> Result<String, Error> {
    // The pod's shim already serves: answer with its address, as runc's shim does.
    // containerd_shim::spawn would start a serving process anyway, which forks a zygote and
    // builds a task service before it finds the socket taken.
    let address = containerd_shim::socket_address(&opts.address, &opts.namespace, pod);
    if socket::is_live(&address) {
        return Ok(address);
    }
    containerd_shim::spawn(opts, pod, Vec::new()).await
}

/// A shared shim with room (the lowest running one), else a new one at the first unused name.
async fn place_shared(opts: StartOpts, key: &str, limit: usize, counts: Counting) -> Result<String, Error> {
    let limit = limit.to_string();
    let address_of =
        |slot| containerd_shim::socket_address(&opts.address, &opts.namespace, &group::slot_group(key, slot));
    let mut last_failure = None;
    for _ in 0..group::START_ATTEMPTS {
        let mut free = None;
        let mut unused_in_a_row = 0;
        for slot in 0..group::MAX_SLOTS {
            let address = address_of(slot);
            if !socket::is_live(&address) {
                free.get_or_insert(slot);
                unused_in_a_row += 1;
                if unused_in_a_row == group::SCAN_GAP {
                    break;
                }
                continue;
            }
            unused_in_a_row = 0;
            match join(&address, &opts.id).await {
                Ok(()) => return Ok(address),
                Err(NotJoined::Refused) => {}
                // It may have just exited: try the next one. (Nothing is printed: containerd
                // takes the action's whole output, stderr too, for the address.)
                Err(NotJoined::Failed(e)) => last_failure = Some(format!("{address}: {e}")),
            }
        }
        let slot = free.ok_or_else(|| Error::Other(format!("all {} shared shims are full", group::MAX_SLOTS)))?;
        let copy = StartOpts {
            id: opts.id.clone(),
            publish_binary: opts.publish_binary.clone(),
            address: opts.address.clone(),
            ttrpc_address: opts.ttrpc_address.clone(),
            namespace: opts.namespace.clone(),
            debug: opts.debug,
        };
        // Another start action may win the race for this name: spawn then answers with that
        // one's address, and the join decides.
        let name = group::slot_group(key, slot);
        let env = vec![(group::LIMIT_ENV, limit.as_str()), (group::COUNTING_ENV, counts.as_env())];
        let address = containerd_shim::spawn(copy, &name, env).await?;
        match join(&address, &opts.id).await {
            Ok(()) => return Ok(address),
            Err(NotJoined::Refused) => continue,
            // The name's previous shim was leaving (the new one left it the name and went),
            // or is gone by now: look again.
            Err(NotJoined::Failed(e)) => last_failure = Some(format!("{address}: {e}")),
        }
    }
    Err(Error::Other(format!(
        "no shim took container {} in {} attempts{}",
        opts.id,
        group::START_ATTEMPTS,
        last_failure.map(|e| format!(" (last: {e})")).unwrap_or_default()
    )))
}

/// The address in `bundle`'s `address` file (what its container's `start` action answered).
fn bundle_address(bundle: &Path) -> Option<String> {
    let address = std::fs::read_to_string(bundle.join("address")).ok()?;
    Some(address.trim().to_string()).filter(|a| !a.is_empty())
}

/// Writes the bundle's `address` file whole before the `start` action answers.
///
/// Not containerd-shim's `write_str_to_file`: its tokio write only queues the bytes on the
/// blocking pool and renames the file at once, so the action could exit (the runtime shuts
/// down without waiting for that pool) leaving an empty `address`, and a containerd that
/// restarts then finds no shim for a running container and kills it.
fn write_address(path: &Path, address: &str) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, address)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[async_trait::async_trait]
impl Shim for Manager {
    type T = TaskApi;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        Self {
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            bundle,
            containerd_address: args.address.clone(),
            socket: args.socket.clone(),
            debug: args.debug,
            exit: Arc::new(ExitSignal::default()),
            in_flight: Arc::new(InFlight::default()),
            name: std::sync::Mutex::new(None),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, Error> {
        let address = self.place(opts).await?;
        // containerd reads this back when it restarts and reconnects to running shims, and
        // the `delete` action to find the socket.
        write_address(Path::new("address"), &address)
            .map_err(|e| Error::Other(format!("cannot write the bundle's address file: {e}")))?;
        Ok(address)
    }

    /// Cleanup after a shim died: kill what is left of the container, remove its cgroups and
    /// state, unmount its rootfs.
    async fn delete_shim(&mut self) -> Result<DeleteResponse, Error> {
        let root = state_root(&self.bundle);
        let handle = Handle::new(&root, &self.id);
        let pid = handle.pid().unwrap_or_default();
        if let Err(e) = handle.delete() {
            log::warn!("cleanup of {}: {e}", self.id);
        }
        let _ = std::fs::remove_dir_all(&root);
        let rootfs = self.bundle.join("rootfs");
        if rootfs::is_mountpoint(&rootfs) {
            rootfs::unmount(&rootfs);
        }
        // The socket this container's shim served (a shared one may have had another name).
        let address = bundle_address(&self.bundle).unwrap_or_else(|| {
            let group = sandbox_id(&self.bundle).unwrap_or_else(|| self.id.clone());
            containerd_shim::socket_address(&self.containerd_address, &self.namespace, &group)
        });
        socket::remove_if_unowned(&address);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok(DeleteResponse {
            pid: pid as u32,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: MessageField::some(Timestamp {
                seconds: now.as_secs() as i64,
                nanos: now.subsec_nanos() as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
        // containerd sends Shutdown right after Delete: deliver the TaskDelete (and anything
        // else queued) before the process ends with the delivery task. The runtime thread
        // delivers, so the drain waits on the blocking pool.
        let in_flight = self.in_flight.clone();
        let drained = tokio::task::spawn_blocking(move || in_flight.drain(EVENT_DRAIN_TIMEOUT));
        if !drained.await.unwrap_or(false) {
            log::warn!("exiting with events containerd did not take within {EVENT_DRAIN_TIMEOUT:?}");
        }
        // Before the server stops: containerd may already have removed the bundle, and with
        // it the `address` file containerd-shim would read to find the socket.
        let name = self.name.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(name) = name {
            name.release();
        }
        // The server's shutdown waits for every connection's calls: one that never returns
        // would keep this process alive with no task to serve. Nothing is left to do
        // once the events are drained, so end the process if the shutdown takes too long.
        let spawned = std::thread::Builder::new().name("wasmbox-exit".into()).spawn(|| {
            std::thread::sleep(SHUTDOWN_GRACE);
            log::warn!("the ttrpc server did not stop within {SHUTDOWN_GRACE:?}; exiting");
            std::process::exit(0);
        });
        if let Err(e) = spawned {
            log::warn!("no exit watchdog: {e}");
        }
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> TaskApi {
        // Events go through our own ordered, retrying delivery (see `crate::events`).
        drop(publisher);
        crate::logging::init(self.debug);
        // Before containerd-shim binds the socket: a shim still serving under this name (an
        // exiting one, or one a racing `start` action started) keeps it, and this process
        // leaves; the `start` action then asks the one that serves.
        match socket::NameLock::try_take(&self.socket) {
            Ok(Some(name)) => *self.name.lock().unwrap_or_else(|p| p.into_inner()) = Some(name),
            Ok(None) => {
                log::info!("another shim serves {}; leaving", self.socket);
                std::process::exit(0);
            }
            Err(e) => {
                log::error!("cannot lock the name of {}: {e}", self.socket);
                std::process::exit(1);
            }
        }
        // Started in the first container's bundle, which goes with that container while the
        // shim may serve others (libcontainer needs a working directory that exists).
        if let Err(e) = std::env::set_current_dir("/") {
            log::warn!("cannot leave the bundle directory: {e}");
        }
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = Events::start(address, self.namespace.clone(), self.in_flight.clone());
        let service = Service::new(&self.namespace, events, self.exit.clone())
            .await
            .map(|s| s.with_containerd(&self.containerd_address));
        match service {
            Ok(s) => {
                let api = TaskApi::new(s);
                // The container this shim was started for holds the first place: should its
                // Create never come, the shim exits rather than waits for nobody.
                api.expect(&self.id);
                api
            }
            Err(e) => {
                // Without its exit monitor the shim cannot work; containerd sees the exit.
                log::error!("cannot start the task service: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `start` action's shape: write the address inside the runtime, shut the runtime
    /// down without waiting for its blocking pool, and end the process at once.
    fn address_after_an_action_exits(write: fn(&Path, &str)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("address");
        // SAFETY: the child runs the runtime and exits without returning to the test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async { write(&path, "unix:///run/containerd/s/0123") });
                runtime.shutdown_background();
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        std::fs::read_to_string(&path).unwrap_or_default()
    }

    #[test]
    fn the_address_file_is_whole_when_the_start_action_ends_at_once() {
        for _ in 0..50 {
            let address = address_after_an_action_exits(|path, address| write_address(path, address).unwrap());
            assert_eq!(address, "unix:///run/containerd/s/0123");
        }
    }
}
