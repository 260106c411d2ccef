//! A private containerd per test: own temp dir, config, socket and log; the shim under test first
//! on its PATH. Dropping it removes everything it created, whatever state the test left.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::{CriConfig, Paths, CRI_NAMESPACE};
use crate::poll::wait_until;
use crate::process::{daemon_path, kill_and_wait, processes, run_captured, wait_with_deadline, ProcInfo};
use crate::{cgroups, mounts, settings, shim_socket};

/// How long containerd may take to answer `ctr version` after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// argv[1] of a shim's background compile (the shim's `tiering::OPTIMIZE_ARG`).
pub const BACKGROUND_COMPILE_ARG: &str = "optimize-in-background";
/// The namespace every test uses; ctr's default cgroup path is `/<namespace>/<id>`.
pub const NAMESPACE: &str = "default";

/// Which binaries a fixture runs, and whether containerd's CRI plugin is on.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    pub containerd_dir: PathBuf,
    pub shim_dir: PathBuf,
    /// `Some`: the CRI plugin is enabled (see [`Paths::config_toml_with`]); off by default.
    pub cri: Option<CriConfig>,
    /// More environment for containerd, which its shims inherit (`WASMBOX_*` settings).
    pub env: Vec<(String, String)>,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self {
            containerd_dir: settings::containerd_dir(),
            shim_dir: settings::shim_dir(),
            cri: None,
            env: Vec::new(),
        }
    }
}

/// One running private containerd.
pub struct Containerd {
    paths: Paths,
    options: FixtureOptions,
    /// The daemon; a Mutex so a test can restart it while pods and other guards borrow the fixture.
    child: Mutex<Option<Child>>,
    /// Mounts containerd holds at rest, taken right after it became ready.
    baseline_mounts: Vec<PathBuf>,
    /// Container ids this fixture's helpers used: cleaned up (cgroups, sockets) on drop.
    ids: Mutex<BTreeSet<String>>,
}

impl Containerd {
    /// Starts a containerd with the binaries named by the environment (see [`settings`]).
    pub fn start() -> Result<Self> {
        Self::start_with(FixtureOptions::default())
    }

    pub fn start_with(options: FixtureOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("wbx-{}-", std::process::id()))
            .tempdir_in("/tmp")
            .context("creating the fixture's temp dir")?
            .keep();
        let paths = Paths::new(&dir);
        let mut fixture = Self {
            paths,
            options,
            child: Mutex::new(None),
            baseline_mounts: Vec::new(),
            ids: Mutex::new(BTreeSet::new()),
        };
        // From here on, Drop cleans up even if starting fails.
        fixture.paths.create_dirs()?;
        if fixture.options.cri.is_some() {
            fixture.paths.create_cni_dirs()?;
            if let Some(network) = fixture.options.cri.as_ref().and_then(|c| c.pod_network.as_ref()) {
                fixture.paths.install_pod_network(network)?;
            }
            std::fs::write(fixture.paths.strict_config(), crate::config::STRICT_CONFIG)?;
        }
        let config = fixture.paths.config_toml_with(fixture.options.cri.as_ref());
        std::fs::write(&fixture.paths.config, config)?;
        fixture.launch()?;
        fixture.baseline_mounts = mounts::mounts_under(&fixture.paths.dir);
        Ok(fixture)
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn options(&self) -> &FixtureOptions {
        &self.options
    }

    /// The gRPC socket (`ctr --address`).
    pub fn address(&self) -> &Path {
        &self.paths.socket
    }

    pub fn namespace(&self) -> &str {
        NAMESPACE
    }

    pub fn pid(&self) -> Option<i32> {
        self.child().as_ref().map(|c| c.id() as i32)
    }

    pub fn baseline_mounts(&self) -> &[PathBuf] {
        &self.baseline_mounts
    }

    /// containerd's log so far (the shim's log lines end up here too).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.paths.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The log lines that mention `needle` (e.g. a container id), for failure messages.
    pub fn log_lines_mentioning(&self, needle: &str) -> String {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Remembers a container id so that drop cleans up after it even if the test did not.
    pub fn track(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    pub fn tracked_ids(&self) -> Vec<String> {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stops containerd (running shims stay up) and starts it again on the same paths.
    pub fn restart(&self) -> Result<()> {
        self.stop_daemon()?;
        self.launch()
    }

    /// The shim processes serving this containerd (any `containerd-shim*` with our `-address`).
    /// The shims' background compiles (`optimize-in-background`) into this fixture's cache.
    pub fn background_compiles(&self) -> Vec<ProcInfo> {
        let cache = self.paths.cache.to_string_lossy().into_owned();
        processes()
            .into_iter()
            .filter(|p| p.argv.get(1).map(String::as_str) == Some(BACKGROUND_COMPILE_ARG))
            .filter(|p| p.argv.get(2) == Some(&cache))
            .collect()
    }

    /// Waits until no background compile into this fixture's cache runs any more.
    pub fn wait_for_background_compiles(&self, timeout: Duration) -> Result<()> {
        wait_until("the background compiles to end", timeout, || {
            self.background_compiles().is_empty().then_some(())
        })
    }

    pub fn shim_processes(&self) -> Vec<ProcInfo> {
        let address = self.paths.socket.to_string_lossy().into_owned();
        processes()
            .into_iter()
            .filter(|p| p.program().starts_with("containerd-shim"))
            .filter(|p| {
                p.has_flag_value("-address", &address) || p.has_flag_value("--address", &address)
            })
            .collect()
    }

    /// The pid of the shim serving task `id` (started with `-id ID`).
    pub fn shim_of(&self, id: &str) -> Option<i32> {
        self.shim_processes()
            .into_iter()
            .find(|p| p.has_flag_value("-id", id))
            .map(|p| p.pid)
    }

    fn path_env(&self) -> OsString {
        // Shim first so containerd resolves `containerd-shim-wasmbox-v1` to the build under test.
        daemon_path(vec![self.options.shim_dir.clone(), self.options.containerd_dir.clone()])
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn launch(&self) -> Result<()> {
        let binary = self.options.containerd_dir.join("containerd");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.paths.log)?;
        let mut cmd = Command::new(&binary);
        cmd.arg("--config")
            .arg(&self.paths.config)
            .env("PATH", self.path_env())
            .env("WASMBOX_CACHE_DIR", &self.paths.cache)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // If the test process dies without running Drop, take containerd down with it. (The
        // signal follows the forking thread; a fixture lives and dies on its test's thread.)
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        *self.child() = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<()> {
        let ctr = self.options.containerd_dir.join("ctr");
        let socket = self.paths.socket.clone();
        let mut exited = None;
        let mut guard = self.child();
        let child = guard.as_mut().expect("launched");
        let ready = wait_until("containerd to answer `ctr version`", READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            let mut cmd = Command::new(&ctr);
            cmd.arg("--address").arg(&socket).arg("version");
            let answered = run_captured(&mut cmd, None, Duration::from_secs(5))
                .map(|out| out.status.success())
                .unwrap_or(false);
            answered.then_some(true)
        });
        drop(guard);
        match (ready, exited) {
            (Ok(true), _) => Ok(()),
            (_, Some(status)) => {
                *self.child() = None;
                bail!(
                    "containerd exited during startup ({status}); log:\n{}",
                    self.log_tail(40)
                )
            }
            (Err(e), _) => bail!("{e}; containerd log:\n{}", self.log_tail(40)),
            (Ok(false), None) => unreachable!("false is only returned on exit"),
        }
    }

    /// SIGTERM, a bounded wait, then SIGKILL.
    fn stop_daemon(&self) -> Result<()> {
        let Some(mut child) = self.child().take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        if wait_with_deadline(&mut child, STOP_TIMEOUT).is_none() {
            // wait_with_deadline already sent SIGKILL and reaped it.
            eprintln!(
                "containerd {} ignored SIGTERM for {STOP_TIMEOUT:?}; killed",
                child.id()
            );
        }
        Ok(())
    }

    /// Deletes every task and container through containerd, so shims unmount and remove
    /// cgroups themselves; whatever this misses is removed by force afterwards.
    fn remove_all_containers(&self) {
        let running = self.child().is_some();
        if !running {
            return;
        }
        let ids = self.container_ids().unwrap_or_default();
        for id in &ids {
            self.track(id);
            let _ = self.ctr(["task", "delete", "--force", id.as_str()]);
            let _ = self.ctr(["container", "delete", id.as_str()]);
        }
        // What CRI left (a test that failed before removing its pods).
        if self.options.cri.is_some() {
            let listed = self.ctr_in(CRI_NAMESPACE, ["container", "ls", "-q"]);
            let ids = listed.map(|o| o.stdout_text()).unwrap_or_default();
            for id in ids.lines().filter(|l| !l.is_empty()) {
                self.track(id);
                let _ = self.ctr_in(CRI_NAMESPACE, ["task", "delete", "--force", id]);
                let _ = self.ctr_in(CRI_NAMESPACE, ["container", "delete", id]);
            }
        }
    }

    /// Runs ctr in `namespace` (e.g. CRI's `k8s.io`) with `args`, whatever its exit code.
    pub fn ctr_in<I, S>(&self, namespace: &str, args: I) -> Result<crate::process::Captured>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(self.options.containerd_dir.join("ctr"));
        cmd.arg("--address")
            .arg(self.address())
            .arg("--namespace")
            .arg(namespace)
            .args(args);
        run_captured(&mut cmd, None, crate::ctr::CTR_TIMEOUT)
    }

    fn cleanup(&mut self) {
        self.remove_all_containers();
        if let Err(e) = self.stop_daemon() {
            eprintln!("stopping containerd: {e:#}");
        }
        // Background compiles outlive their shim by design; not this fixture's cache.
        let shims: Vec<i32> =
            self.shim_processes().iter().chain(&self.background_compiles()).map(|p| p.pid).collect();
        if !shims.is_empty() {
            if let Err(e) = kill_and_wait(&shims, STOP_TIMEOUT) {
                eprintln!("killing shims {shims:?}: {e:#}");
            }
        }
        // Shared shims are named by their slot, not by a container (lock files by the socket).
        let binary = self.options.shim_dir.join(crate::settings::WASMBOX_SHIM_BINARY);
        let mut namespaces = vec![NAMESPACE];
        namespaces.extend(self.options.cri.as_ref().map(|_| CRI_NAMESPACE));
        for ns in namespaces {
            let shared = shim_socket::shared_socket_paths(&self.paths.socket, ns, &binary, 8);
            for socket in shared.into_iter().chain(shim_socket::shared_pod_socket_paths(&self.paths.socket, ns, &binary, 8)) {
                let _ = std::fs::remove_file(&socket);
                let _ = std::fs::remove_file(format!("{}.lock", socket.display()));
            }
        }
        for id in self.tracked_ids() {
            cgroups::force_remove(NAMESPACE, &id);
            shim_socket::remove(&self.paths.socket, NAMESPACE, &id);
            if self.options.cri.is_some() {
                cgroups::force_remove(CRI_NAMESPACE, &id);
                shim_socket::remove(&self.paths.socket, CRI_NAMESPACE, &id);
            }
        }
        // CNI removes a pod's veth with the pod; the bridge is the fixture's to remove.
        if let Some(network) = self.options.cri.as_ref().and_then(|c| c.pod_network.as_ref()) {
            let _ = std::process::Command::new("ip").args(["link", "delete", &network.bridge]).status();
            // libcni's result cache (containerd has no setting for it), when nothing else is in it.
            let _ = std::fs::remove_dir("/var/lib/cni/results");
            let _ = std::fs::remove_dir("/var/lib/cni");
        }
        for (mount, e) in mounts::unmount_all_under(&self.paths.dir) {
            eprintln!("cannot unmount {}: {e}", mount.display());
        }
        if let Err(e) = std::fs::remove_dir_all(&self.paths.dir) {
            eprintln!("cannot remove {}: {e}", self.paths.dir.display());
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- containerd log ({}), last lines ---\n{}\n--- end of containerd log ---",
                self.paths.log.display(),
                self.log_tail(60)
            );
        }
        self.cleanup();
    }
}
