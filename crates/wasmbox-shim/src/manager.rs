//! The shim manager: the `start` and `delete` actions containerd runs, and the long-lived
//! shim process that serves the task service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, Error, ExitSignal, Flags, Shim, StartOpts};
use wasmbox_container::lifecycle::{state_root, Handle};

use crate::events::{Events, InFlight};
use crate::rootfs;
use crate::service::Service;
use crate::task_api::TaskApi;
use crate::socket;

/// Annotation CRI sets on every container of a pod: one shim serves the whole pod.
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
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
}

/// The shim group a container belongs to: its pod's sandbox id, or itself.
pub fn grouping(id: &str, bundle: &Path) -> String {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).ok();
    spec.as_ref()
        .and_then(|s| s.annotations().as_ref())
        .and_then(|a| a.get(SANDBOX_ID_ANNOTATION))
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

/// True when the bundle's container belongs to a pod (its shim will serve more containers).
pub fn in_pod(bundle: &Path) -> bool {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).ok();
    spec.as_ref()
        .and_then(|s| s.annotations().as_ref())
        .is_some_and(|a| a.contains_key(SANDBOX_ID_ANNOTATION))
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
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, Error> {
        let group = grouping(&opts.id, &self.bundle);
        // The pod's shim already serves: answer with its address, as runc's shim does.
        // containerd_shim::spawn would start a serving process anyway, which forks a zygote and
        // builds a task service (event and exit tasks) before it finds the socket taken
        // and exits: per container of a pod, ~5 ms and an orphaned zygote (a zombie until
        // init reaps it).
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &group);
        if socket::is_live(&address) {
            containerd_shim::asynchronous::util::write_str_to_file("address", &address).await?;
            return Ok(address);
        }
        let address = containerd_shim::spawn(opts, &group, Vec::new()).await?;
        // containerd reads this back when it restarts and reconnects to running shims.
        containerd_shim::asynchronous::util::write_str_to_file("address", &address).await?;
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
        let group = grouping(&self.id, &self.bundle);
        let address = containerd_shim::socket_address(&self.containerd_address, &self.namespace, &group);
        socket::remove_if_dead(&address);
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
        if !self.socket.is_empty() {
            socket::remove(&self.socket);
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
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = Events::start(address, self.namespace.clone(), self.in_flight.clone());
        let service = Service::new(&self.namespace, events, self.exit.clone())
            .await
            .map(|s| s.with_containerd(&self.containerd_address));
        match service {
            Ok(s) => TaskApi::new(s),
            Err(e) => {
                // Without its exit monitor the shim cannot work; containerd sees the exit.
                log::error!("cannot start the task service: {e}");
                std::process::exit(1);
            }
        }
    }
}
