//! The Kubernetes RuntimeClass path without a kubelet: containerd's CRI plugin driven over its
//! gRPC socket with the CRI v1 API (client generated from `test/proto` by `build.rs`), the way
//! kubelet drives it for a pod with `runtimeClassName: wasmbox`.
//!
//! - [`start`]: a private containerd with the CRI plugin on and a pause image of our own
//!   (`test/guests/pause.c`, static) imported into CRI's namespace, so nothing is pulled.
//! - [`Cri`]: blocking calls, each with a deadline.
//! - [`Pod`]: a pod sandbox that is torn down (CRI first, by force after) whatever the test did.
//! - [`parse_log`]: CRI's container log format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tonic::transport::Channel;
use wasmbox_image::ImageBuilder;

use crate::config::{CriConfig, CRI_NAMESPACE};
use crate::containerd::{Containerd, FixtureOptions};
use crate::poll::wait_until;
use crate::process::{kill_and_wait, processes, ProcInfo};
use crate::settings::WASMBOX_SHIM_BINARY;
use crate::{cgroups, guests, ids, image, mounts, shim_socket};

/// The generated CRI v1 messages and clients (`runtime.v1`).
#[allow(clippy::all, missing_docs)]
pub mod api {
    tonic::include_proto!("runtime.v1");
}

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;

/// Where the pause binary sits in the pause image (its entrypoint), as in Kubernetes' image.
pub const PAUSE_PATH: &str = "/pause";
/// How long one CRI call may take. StartContainer has the shim create the task, which compiles
/// the module (once per node), and StopPodSandbox may wait for containers' grace periods.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a pod teardown may take, in total, before the rest is removed by force.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause image's name (CRI's `sandbox_image`); each fixture has its own content store.
pub fn pause_image_ref() -> String {
    ids::image_ref("pause")
}

/// Starts a private containerd with the CRI plugin and imports the pause image into CRI's
/// namespace; returns once CRI knows the image.
pub fn start() -> Result<Containerd> {
    start_with(None)
}

/// [`start`], with a CNI bridge network of the fixture's own for pods that are not on the host
/// network (see [`Pod::run_in_pod_network`]): pods get an IP the test reaches from the host.
pub fn start_with_pod_network() -> Result<Containerd> {
    start_with(Some(pod_network()?))
}

/// [`start_with_pod_network`] from `base` (another shim directory, say), for the bench.
pub fn start_with_pod_network_from(base: FixtureOptions) -> Result<Containerd> {
    start_from(base, Some(pod_network()?))
}

/// A CNI bridge and subnet of this fixture's own.
fn pod_network() -> Result<crate::config::PodNetwork> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 250;
    let pid = std::process::id();
    let plugins = crate::tools::cni_plugins();
    if !plugins.join("bridge").is_file() {
        bail!("no CNI plugins in {} (run `make cni`, or set WASMBOX_CNI_DIR)", plugins.display());
    }
    Ok(crate::config::PodNetwork {
        bridge: format!("wbx{}-{n}", pid % 100_000),
        subnet: format!("10.{}.{n}.0/24", 200 + pid % 50),
        plugins,
    })
}

fn start_with(pod_network: Option<crate::config::PodNetwork>) -> Result<Containerd> {
    start_from(FixtureOptions::default(), pod_network)
}

fn start_from(base: FixtureOptions, pod_network: Option<crate::config::PodNetwork>) -> Result<Containerd> {
    let options = FixtureOptions {
        cri: Some(CriConfig {
            sandbox_image: pause_image_ref(),
            pod_network,
        }),
        ..base
    };
    let containerd = Containerd::start_with(options)?;
    let pause = guests::pause()?;
    import_image(
        &containerd,
        image::native_image_at(&pause_image_ref(), PAUSE_PATH, &pause),
    )?;
    Ok(containerd)
}

/// Writes `image` as a layout tar into the fixture's work dir and imports it into CRI's
/// namespace (`ctr -n k8s.io image import`); returns its name once CRI's image service lists it.
pub fn import_image(containerd: &Containerd, image: ImageBuilder) -> Result<String> {
    let built = image.build()?;
    let reference = built.reference().to_string();
    let tar = containerd
        .paths()
        .work
        .join(format!("cri-image-{}.tar", ids::next()));
    built.write_tar_file(&tar)?;
    import_tar(containerd, &tar, &reference)?;
    Ok(reference)
}

/// Imports the image layout tarball `tar` (holding `reference`) into CRI's namespace; returns
/// once CRI's image service lists `reference`.
pub fn import_tar(containerd: &Containerd, tar: &Path, reference: &str) -> Result<()> {
    let out = containerd.ctr_in(
        CRI_NAMESPACE,
        ["image".as_ref(), "import".as_ref(), tar.as_os_str()],
    )?;
    if !out.status.success() {
        bail!(
            "ctr -n {CRI_NAMESPACE} image import {reference} failed ({}): {}",
            out.status,
            out.stderr_text()
        );
    }
    // CRI learns about images through containerd's events: wait until it does.
    let cri = Cri::connect(containerd)?;
    wait_until(
        &format!("CRI to list the imported image {reference}"),
        Duration::from_secs(30),
        || cri.image_known(reference).ok().filter(|known| *known),
    )?;
    Ok(())
}

/// A blocking CRI v1 client on containerd's gRPC socket.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

/// `what: message (code)` for a failed call; the message is what kubelet would show.
fn call_error(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow!("{what}: {} ({:?})", status.message(), status.code())
}

impl Cri {
    pub fn connect(containerd: &Containerd) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the CRI client's runtime")?;
        let socket = containerd.address().to_path_buf();
        let channel = rt
            .block_on(async {
                tokio::time::timeout(CALL_TIMEOUT, containerd_client::connect(&socket)).await
            })
            .map_err(|_| anyhow!("connecting to {} timed out", socket.display()))?
            .with_context(|| format!("connecting to {}", socket.display()))?;
        Ok(Self { rt, channel })
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    /// Runs one call with [`CALL_TIMEOUT`].
    fn call<T, F>(&self, what: &str, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        match self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, fut).await })
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(call_error(what, status)),
            Err(_) => bail!("{what}: no answer within {CALL_TIMEOUT:?}"),
        }
    }

    /// `Version`: the runtime's name and version (`containerd`, `1.6.20~ds1`...).
    pub fn version(&self) -> Result<api::VersionResponse> {
        let mut c = self.runtime();
        self.call(
            "Version",
            c.version(api::VersionRequest {
                version: "v1".into(),
            }),
        )
    }

    /// True when CRI's image service has `reference`.
    pub fn image_known(&self, reference: &str) -> Result<bool> {
        let mut c = self.images();
        let status = self.call(
            "ImageStatus",
            c.image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: reference.into(),
                    ..Default::default()
                }),
                verbose: false,
            }),
        )?;
        Ok(status.image.is_some())
    }

    pub fn run_pod_sandbox(&self, config: &api::PodSandboxConfig, handler: &str) -> Result<String> {
        let mut c = self.runtime();
        let response = self.call(
            "RunPodSandbox",
            c.run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }),
        )?;
        Ok(response.pod_sandbox_id)
    }

    pub fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        let mut c = self.runtime();
        let response = self.call(
            "PodSandboxStatus",
            c.pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            }),
        )?;
        response
            .status
            .ok_or_else(|| anyhow!("PodSandboxStatus {id}: no status in the answer"))
    }

    pub fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut c = self.runtime();
        self.call(
            "StopPodSandbox",
            c.stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .map(drop)
    }

    pub fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut c = self.runtime();
        self.call(
            "RemovePodSandbox",
            c.remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .map(drop)
    }

    pub fn list_pod_sandboxes(&self) -> Result<Vec<api::PodSandbox>> {
        let mut c = self.runtime();
        let response = self.call(
            "ListPodSandbox",
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None }),
        )?;
        Ok(response.items)
    }

    pub fn create_container(
        &self,
        pod_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String> {
        let mut c = self.runtime();
        let response = self.call(
            "CreateContainer",
            c.create_container(api::CreateContainerRequest {
                pod_sandbox_id: pod_id.into(),
                config: Some(config.clone()),
                sandbox_config: Some(sandbox_config.clone()),
            }),
        )?;
        Ok(response.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<()> {
        let mut c = self.runtime();
        self.call(
            "StartContainer",
            c.start_container(api::StartContainerRequest {
                container_id: id.into(),
            }),
        )
        .map(drop)
    }

    /// `StopContainer`: SIGTERM (or the image's stop signal), SIGKILL after `timeout_secs`.
    pub fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<()> {
        let mut c = self.runtime();
        self.call(
            "StopContainer",
            c.stop_container(api::StopContainerRequest {
                container_id: id.into(),
                timeout: timeout_secs,
            }),
        )
        .map(drop)
    }

    /// `ExecSync` (what exec probes use): runs `cmd` in the container; (exit code, stdout,
    /// stderr).
    pub fn exec_sync(&self, id: &str, cmd: &[&str], timeout_secs: i64) -> Result<(i32, String, String)> {
        let mut c = self.runtime();
        let r = self.call(
            "ExecSync",
            c.exec_sync(api::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: timeout_secs,
            }),
        )?;
        Ok((
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        ))
    }

    /// `Exec` (`kubectl exec`): the streaming server's URL for `cmd` in container `id` (see
    /// [`crate::cri_stream`]); stdout is always attached, stderr when there is no terminal.
    pub fn exec(&self, id: &str, cmd: &[&str], stdin: bool, tty: bool) -> Result<String> {
        let mut c = self.runtime();
        let r = self.call(
            "Exec",
            c.exec(api::ExecRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty,
                stdin,
                stdout: true,
                stderr: !tty,
            }),
        )?;
        Ok(r.url)
    }

    /// `UpdateContainerResources`: kubelet's in-place pod resize.
    pub fn update_container_resources(&self, id: &str, resources: api::LinuxContainerResources) -> Result<()> {
        let mut c = self.runtime();
        self.call(
            "UpdateContainerResources",
            c.update_container_resources(api::UpdateContainerResourcesRequest {
                container_id: id.into(),
                linux: Some(resources),
                ..Default::default()
            }),
        )
        .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<()> {
        let mut c = self.runtime();
        self.call(
            "RemoveContainer",
            c.remove_container(api::RemoveContainerRequest {
                container_id: id.into(),
            }),
        )
        .map(drop)
    }

    pub fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let mut c = self.runtime();
        let response = self.call(
            "ContainerStatus",
            c.container_status(api::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            }),
        )?;
        response
            .status
            .ok_or_else(|| anyhow!("ContainerStatus {id}: no status in the answer"))
    }

    /// `ContainerStats`: what kubelet reads for `kubectl top` and eviction (from the shim's
    /// cgroup metrics).
    pub fn container_stats(&self, id: &str) -> Result<api::ContainerStats> {
        let mut c = self.runtime();
        let response = self.call(
            "ContainerStats",
            c.container_stats(api::ContainerStatsRequest {
                container_id: id.into(),
            }),
        )?;
        response
            .stats
            .ok_or_else(|| anyhow!("ContainerStats {id}: no stats in the answer"))
    }

    /// The containers CRI has for pod `pod_id`, in any state.
    pub fn list_containers(&self, pod_id: &str) -> Result<Vec<api::Container>> {
        let mut c = self.runtime();
        let response = self.call(
            "ListContainers",
            c.list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    pod_sandbox_id: pod_id.into(),
                    ..Default::default()
                }),
            }),
        )?;
        Ok(response.containers)
    }

    /// Polls `ContainerStatus` until the container is in `state`; returns that status.
    pub fn wait_container_state(
        &self,
        id: &str,
        state: api::ContainerState,
        timeout: Duration,
    ) -> Result<api::ContainerStatus> {
        let mut last = None;
        let reached = wait_until(
            &format!("container {id} to be {}", state.as_str_name()),
            timeout,
            || match self.container_status(id) {
                Ok(s) if s.state == state as i32 => Some(s),
                other => {
                    last = Some(other);
                    None
                }
            },
        );
        reached.with_context(|| format!("last ContainerStatus: {last:?}"))
    }
}

/// A pod sandbox config like kubelet's for a BestEffort pod on the host network (no CNI):
/// its own IPC namespace, PID namespace per container, cgroupfs cgroup parent `cgroup_parent`.
pub fn pod_config(name: &str, log_directory: &Path, cgroup_parent: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: log_directory.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// kubelet's namespace choices for an ordinary host-network pod.
fn namespace_options() -> api::NamespaceOption {
    namespace_options_with(api::NamespaceMode::Node)
}

fn namespace_options_with(network: api::NamespaceMode) -> api::NamespaceOption {
    api::NamespaceOption {
        network: network as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The CRI-namespace task `id` as `ctr task ls` shows it.
pub fn task(containerd: &Containerd, id: &str) -> Option<crate::TaskInfo> {
    let out = containerd.ctr_in(CRI_NAMESPACE, ["task", "ls"]).ok()?;
    crate::ctr::parse_task_list(&out.stdout_text())
        .into_iter()
        .find(|t| t.id == id)
}

/// Gives a container the runtime's default seccomp profile, as a pod's
/// `seccompProfile: RuntimeDefault` (or kubelet's `--seccomp-default`) does.
pub fn with_runtime_default_seccomp(config: &mut api::ContainerConfig) {
    if let Some(sc) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
    {
        sc.seccomp = Some(api::SecurityProfile {
            profile_type: api::security_profile::ProfileType::RuntimeDefault as i32,
            ..Default::default()
        });
    }
}

/// A container config like kubelet's (BestEffort resources, the pod's namespace choices), with
/// its log at `<name>/0.log` under the pod's log directory.
pub fn container_config(name: &str, image: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        log_path: format!("{name}/0.log"),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(api::LinuxContainerResources {
                cpu_shares: 2,
                oom_score_adj: 1000,
                ..Default::default()
            }),
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// Puts a container of a pod that has a network of its own (not the host's) into that
/// network, as kubelet does for a pod without `hostNetwork`.
pub fn in_pod_network(config: &mut api::ContainerConfig) {
    if let Some(sc) = config.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.namespace_options = Some(namespace_options_with(api::NamespaceMode::Pod));
    }
}

pub fn env(key: &str, value: &str) -> api::KeyValue {
    api::KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

/// A pod sandbox run through CRI. Dropping it stops and removes the pod through CRI if the
/// test did not, then removes by force what is still there (its shim, its cgroups, its shim
/// socket), so a failing test leaves nothing behind either. Drop it before its [`Containerd`].
pub struct Pod<'a> {
    cri: &'a Cri,
    containerd: &'a Containerd,
    pub id: String,
    pub config: api::PodSandboxConfig,
    /// The pod's cgroup parent (cgroupfs), under which CRI puts `<parent>/<container id>`.
    pub cgroup_parent: String,
    /// The pod's log directory (kubelet makes it; so do we).
    pub log_dir: PathBuf,
    /// Containers created in this pod.
    pub containers: Vec<String>,
    removed: bool,
}

impl<'a> Pod<'a> {
    /// RunPodSandbox with `handler` (`wasmbox`, `runc`), a unique name, a log directory under
    /// the fixture's work dir and a unique cgroup parent.
    pub fn run(
        cri: &'a Cri,
        containerd: &'a Containerd,
        test: &str,
        handler: &str,
    ) -> Result<Self> {
        Self::run_annotated(cri, containerd, test, handler, &[])
    }

    /// Same, with pod `annotations` (as kubelet passes a pod's metadata.annotations).
    pub fn run_annotated(
        cri: &'a Cri,
        containerd: &'a Containerd,
        test: &str,
        handler: &str,
        annotations: &[(&str, &str)],
    ) -> Result<Self> {
        Self::run_with(cri, containerd, test, handler, annotations, api::NamespaceMode::Node)
    }

    /// A pod with a network of its own (CNI, see [`start_with_pod_network`]) and `annotations`;
    /// its containers need [`in_pod_network`].
    pub fn run_in_pod_network(
        cri: &'a Cri,
        containerd: &'a Containerd,
        test: &str,
        handler: &str,
        annotations: &[(&str, &str)],
    ) -> Result<Self> {
        Self::run_with(cri, containerd, test, handler, annotations, api::NamespaceMode::Pod)
    }

    fn run_with(
        cri: &'a Cri,
        containerd: &'a Containerd,
        test: &str,
        handler: &str,
        annotations: &[(&str, &str)],
        network: api::NamespaceMode,
    ) -> Result<Self> {
        let name = ids::container_id(test);
        let log_dir = containerd.paths().work.join("pods").join(&name);
        std::fs::create_dir_all(&log_dir)?;
        // Like kubelet's /kubepods/besteffort/pod<uid>, unique so parallel tests never share it.
        let cgroup_parent = format!("/{name}");
        let mut config = pod_config(&name, &log_dir, &cgroup_parent);
        if let Some(sc) = config.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
            sc.namespace_options = Some(namespace_options_with(network));
        }
        config
            .annotations
            .extend(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Built first, so that a failed RunPodSandbox is cleaned up by drop as well.
        let mut pod = Self {
            cri,
            containerd,
            id: String::new(),
            config,
            cgroup_parent,
            log_dir,
            containers: Vec::new(),
            removed: false,
        };
        pod.id = cri.run_pod_sandbox(&pod.config, handler)?;
        containerd.track(&pod.id);
        Ok(pod)
    }

    /// CreateContainer in this pod (after making the log's directory, as kubelet does); the id
    /// is remembered for teardown and leftover checks.
    pub fn create_container(&mut self, config: &api::ContainerConfig) -> Result<String> {
        if let Some(dir) = self.log_path(config).parent() {
            std::fs::create_dir_all(dir)?;
        }
        let id = self.cri.create_container(&self.id, config, &self.config)?;
        self.containerd.track(&id);
        self.containers.push(id.clone());
        Ok(id)
    }

    /// The pod's IP (from PodSandboxStatus), for a pod with a network of its own.
    pub fn ip(&self) -> Result<String> {
        let status = self.cri.pod_sandbox_status(&self.id)?;
        let ip = status.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
        if ip.is_empty() {
            bail!("pod {} has no IP: {status:?}", self.id);
        }
        Ok(ip)
    }

    /// Where CRI writes the log of the container created with `config`.
    pub fn log_path(&self, config: &api::ContainerConfig) -> PathBuf {
        self.log_dir.join(&config.log_path)
    }

    /// The cgroupfs path CRI gives container (or sandbox) `id` of this pod.
    pub fn cgroup_path(&self, id: &str) -> PathBuf {
        Path::new(&self.cgroup_parent).join(id)
    }

    /// StopPodSandbox then RemovePodSandbox, as kubelet does when a pod is deleted.
    pub fn stop_and_remove(&mut self) -> Result<()> {
        self.cri.stop_pod_sandbox(&self.id)?;
        self.cri.remove_pod_sandbox(&self.id)?;
        self.removed = true;
        Ok(())
    }

    /// The wasmbox shim processes of this fixture: serving shims, and the short-lived `start`
    /// and `delete` actions containerd runs.
    pub fn wasmbox_shims(&self) -> Vec<ProcInfo> {
        wasmbox_shims(self.containerd)
    }

    /// Everything left of this pod: see [`leftovers`].
    pub fn leftovers(&self) -> Vec<String> {
        let mut ids = vec![self.id.clone()];
        ids.extend(self.containers.iter().cloned());
        leftovers(self.containerd, &self.id, &ids, &self.cgroup_parent)
    }

    /// Waits (bounded) until nothing is left of the pod, else fails with the list and the log.
    pub fn assert_nothing_left(&self) -> Result<()> {
        let mut last = Vec::new();
        let clean = wait_until(
            &format!("nothing left of pod {}", self.id),
            crate::leftovers::SETTLE_TIMEOUT,
            || {
                last = self.leftovers();
                last.is_empty().then_some(())
            },
        );
        if clean.is_err() {
            bail!(
                "leftovers of pod {}:\n  {}\ncontainerd log lines for it:\n{}",
                self.id,
                last.join("\n  "),
                self.containerd.log_lines_mentioning(&self.id)
            );
        }
        Ok(())
    }

    /// This pod's sandbox ids: its own, and any CRI lists under its name (after a
    /// RunPodSandbox that failed before answering).
    fn sandbox_ids(&self) -> Vec<String> {
        let name = self.config.metadata.as_ref().map(|m| m.name.clone());
        let mut ids: Vec<String> = self
            .cri
            .list_pod_sandboxes()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.metadata.as_ref().map(|m| m.name.clone()) == name)
            .map(|s| s.id)
            .collect();
        if !self.id.is_empty() && !ids.contains(&self.id) {
            ids.push(self.id.clone());
        }
        ids
    }

    fn force_cleanup(&mut self) {
        let sandboxes = self.sandbox_ids();
        if !self.removed {
            for id in &sandboxes {
                self.containerd.track(id);
                let _ = wait_until("CRI to tear the pod down", TEARDOWN_TIMEOUT, || {
                    let stopped = self.cri.stop_pod_sandbox(id).is_ok();
                    (stopped && self.cri.remove_pod_sandbox(id).is_ok()).then_some(())
                });
            }
        }
        // A shim that outlived the teardown (or a failed one) goes by force, then its socket.
        let mut group = sandboxes;
        group.extend(self.containers.iter().cloned());
        let stale: Vec<i32> = wasmbox_shims(self.containerd)
            .into_iter()
            .filter(|p| group.iter().any(|id| p.has_flag_value("-id", id)))
            .map(|p| p.pid)
            .collect();
        if !stale.is_empty() {
            let _ = kill_and_wait(&stale, Duration::from_secs(10));
        }
        for id in &group {
            shim_socket::remove(self.containerd.address(), CRI_NAMESPACE, id);
        }
        // The pod-level cgroup, kubelet's to remove, and whatever is still below it.
        cgroups::force_remove_at(Path::new(&self.cgroup_parent));
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        self.force_cleanup();
    }
}

/// The wasmbox shim processes of `containerd` (argv[0] is the shim, `-address` ours).
pub fn wasmbox_shims(containerd: &Containerd) -> Vec<ProcInfo> {
    containerd
        .shim_processes()
        .into_iter()
        .filter(|p| p.program() == WASMBOX_SHIM_BINARY)
        .collect()
}

/// Everything still present of pod `pod_id` whose sandbox and containers are `ids`, under
/// cgroup parent `cgroup_parent`: mounts under the fixture's dir that were not there at start
/// (rootfs, the pod's /dev/shm), cgroups `<parent>/<id>` in any hierarchy, shim processes of
/// this containerd, shim sockets (the pod's, or a container's had it been given a shim of its
/// own), task bundle dirs and processes still running in the pod's cgroups.
///
/// Containers whose id the test never learnt (a failed CreateContainer) are covered too: any
/// cgroup below the parent and any bundle dir in CRI's namespace counts.
pub fn leftovers(
    containerd: &Containerd,
    pod_id: &str,
    ids: &[String],
    cgroup_parent: &str,
) -> Vec<String> {
    let mut found = Vec::new();
    for m in mounts::mounts_under(&containerd.paths().dir) {
        if !containerd.baseline_mounts().contains(&m) {
            found.push(format!("mount {}", m.display()));
        }
    }
    for dir in cgroups::existing_at(Path::new(cgroup_parent)) {
        for child in subdirs(&dir) {
            found.push(format!("cgroup {}", child.display()));
        }
        for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
        {
            found.push(format!("process {pid} in cgroup {}", dir.display()));
        }
    }
    for id in ids {
        for s in shim_socket::existing(containerd.address(), CRI_NAMESPACE, id) {
            found.push(format!("shim socket {}", s.display()));
        }
    }
    // A shim shared by pods is named by its slot (see the shim's `group` module).
    let binary = containerd.options().shim_dir.join(WASMBOX_SHIM_BINARY);
    for s in shim_socket::shared_pod_socket_paths(containerd.address(), CRI_NAMESPACE, &binary, 8) {
        if s.exists() {
            found.push(format!("shim socket {}", s.display()));
        }
    }
    let bundles = containerd.paths().bundle(CRI_NAMESPACE, "");
    for dir in subdirs(&bundles) {
        found.push(format!("bundle dir {}", dir.display()));
    }
    for p in containerd.shim_processes() {
        found.push(format!("shim process {} {:?}", p.pid, p.argv));
    }
    for p in processes() {
        if p.argv.iter().any(|a| a.contains(pod_id)) {
            found.push(format!("process {} {:?}", p.pid, p.argv));
        }
    }
    found
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect()
}

/// One line of a CRI container log: `<RFC 3339 time> <stream> <tag> <content>`, tag `F` (full
/// line) or `P` (partial, continued on the next line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    pub tag: String,
    pub content: String,
}

/// Parses a CRI container log; fails on a line that does not have the format.
pub fn parse_log(text: &str) -> Result<Vec<LogLine>> {
    text.lines()
        .map(|line| {
            let mut fields = line.splitn(4, ' ');
            let (Some(time), Some(stream), Some(tag)) =
                (fields.next(), fields.next(), fields.next())
            else {
                bail!("not a CRI log line: {line:?}");
            };
            let content = fields.next().unwrap_or_default();
            let time_ok = time.len() >= 20
                && time.as_bytes()[4] == b'-'
                && time.contains('T')
                && (time.ends_with('Z') || time.contains('+'));
            if !time_ok || !matches!(stream, "stdout" | "stderr") || !matches!(tag, "F" | "P") {
                bail!("not a CRI log line: {line:?}");
            }
            Ok(LogLine {
                time: time.into(),
                stream: stream.into(),
                tag: tag.into(),
                content: content.into(),
            })
        })
        .collect()
}

/// The log's full lines as `(stream, content)`, partial lines joined.
pub fn log_messages(lines: &[LogLine]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut pending: Option<(String, String)> = None;
    for l in lines {
        let mut current = pending.take().unwrap_or((l.stream.clone(), String::new()));
        current.1.push_str(&l.content);
        if l.tag == "F" {
            out.push(current);
        } else {
            pending = Some(current);
        }
    }
    out.extend(pending);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_log_lines() {
        let text = "2026-11-23T11:35:00.123456789Z stdout F hello from wasm\n\
                    2026-11-23T11:35:00.2Z stderr P part \n\
                    2026-11-23T11:35:00.3Z stderr F two\n\
                    2026-11-23T11:35:00.4Z stdout F \n";
        let lines = parse_log(text).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].stream, "stdout");
        assert_eq!(lines[0].content, "hello from wasm");
        assert_eq!(
            log_messages(&lines),
            vec![
                ("stdout".to_string(), "hello from wasm".to_string()),
                ("stderr".to_string(), "part two".to_string()),
                ("stdout".to_string(), String::new()),
            ]
        );
        assert!(parse_log("hello from wasm\n").is_err());
    }

    #[test]
    fn pod_config_is_host_network() {
        let c = pod_config("p", Path::new("/tmp/logs"), "/p");
        let ns = c
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, api::NamespaceMode::Node as i32);
    }
}
