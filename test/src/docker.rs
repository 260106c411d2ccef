//! A private Docker Engine per test, for `docker run --runtime io.containerd.wasmbox.v1`:
//! `dockerd` from `WASMBOX_DOCKER_DIR` (Debian sid's docker.io and docker-cli, unpacked by
//! `make docker`) on the test's private [`Containerd`], with its own data root, exec root, pid
//! file, socket, config file and cgroup parent, and no networking of its own (no bridge, no
//! iptables, no IP forwarding). Dropping it removes every container, stops dockerd and removes
//! what it created, whatever state the test left.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::containerd::Containerd;
use crate::ctr::RunOutput;
use crate::poll::wait_until;
use crate::process::{daemon_path, processes, run_captured, run_ok, wait_with_deadline, Captured};
use crate::settings::{self, WASMBOX_RUNTIME, WASMBOX_SHIM_BINARY};
use crate::tools::{self, Version};
use crate::{cgroups, ids, leftovers, mounts, shim_socket};

/// The containerd namespace dockerd keeps its containers (and, with the containerd image store,
/// its images) in: its default, `--containerd-namespace`.
pub const NAMESPACE: &str = "moby";
/// How long dockerd may take to answer `docker version` after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd may take to exit after SIGTERM (it stops running containers first, for at
/// most its `--shutdown-timeout`) before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// dockerd's own bound on stopping containers at shutdown; ours is above it.
const SHUTDOWN_TIMEOUT_SECS: u32 = 5;
/// Default limit for one docker command; a run that compiles a module stays well below it.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// dockerd creates this fixed directory whatever its `--exec-root` (plugin sockets).
const RUN_DOCKER: &str = "/run/docker";

/// Where `make docker` unpacks Docker: `WASMBOX_DOCKER_DIR`, else
/// `$WASMBOX_CI_CACHE/docker-sid` (`WASMBOX_CI_CACHE` defaults to `/var/cache/wasmbox-ci`).
pub fn docker_dir() -> PathBuf {
    if let Some(dir) = env_path("WASMBOX_DOCKER_DIR") {
        return dir;
    }
    env_path("WASMBOX_CI_CACHE")
        .unwrap_or_else(|| PathBuf::from("/var/cache/wasmbox-ci"))
        .join("docker-sid")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The two Docker programs the tests run.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dockerd: PathBuf,
    pub docker: PathBuf,
}

impl Binaries {
    /// Finds `dockerd` and `docker` in [`docker_dir`]: in `usr/sbin` and `usr/bin` (an unpacked
    /// Debian package) or in the dir itself (Docker's static release tarball).
    pub fn find() -> Result<Self> {
        let dir = docker_dir();
        let find = |name: &str| {
            ["usr/sbin", "usr/bin", ""]
                .iter()
                .map(|sub| dir.join(sub).join(name))
                .find(|p| p.is_file())
        };
        match (find("dockerd"), find("docker")) {
            (Some(dockerd), Some(docker)) => Ok(Self { dockerd, docker }),
            _ => bail!(
                "no dockerd and docker in {} (usr/sbin, usr/bin or the dir itself): run `make docker` \
                 (Debian's docker.io and docker-cli, unpacked privately) or set WASMBOX_DOCKER_DIR",
                dir.display()
            ),
        }
    }

    /// The directories the binaries are in, for dockerd's PATH (docker-init, docker-proxy).
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [&self.dockerd, &self.docker]
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        dirs.dedup();
        dirs
    }
}

/// Why the Docker tests cannot run here, if they cannot: the suite's reasons (root,
/// `WASMBOX_SKIP_INTEGRATION`), or no Docker binaries.
pub fn skip_reason() -> Option<String> {
    settings::skip_reason().or_else(|| Binaries::find().err().map(|e| format!("{e:#}")))
}

/// Returns early from a test (after printing a skip line) when [`skip_reason`] says so.
#[macro_export]
macro_rules! require_docker {
    () => {
        if let Some(reason) = $crate::docker::skip_reason() {
            $crate::settings::skip(&reason);
            return;
        }
    };
}

/// Where dockerd keeps images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// Docker's own graph drivers (overlay2), the default before Docker 29.
    Classic,
    /// The containerd image store (`features: containerd-snapshotter`): images live in
    /// containerd's [`NAMESPACE`], as for `ctr`, so wasm layers are stored as they are.
    Containerd,
}

impl ImageStore {
    /// daemon.json; the feature is always set, so a Docker whose default differs (29 enables the
    /// containerd store by default) still runs the store the test asked for.
    fn daemon_json(self) -> &'static str {
        match self {
            ImageStore::Classic => r#"{"features":{"containerd-snapshotter":false}}"#,
            ImageStore::Containerd => r#"{"features":{"containerd-snapshotter":true}}"#,
        }
    }
}

/// The result of one `docker run`: what it printed, its exit code, and the container's full id
/// (from `--cidfile`; `None` when docker failed before creating the container).
#[derive(Debug, Clone)]
pub struct DockerRun {
    pub output: RunOutput,
    pub id: Option<String>,
}

/// Whether `/run/docker` existed before this test process started its first dockerd: when it
/// did not, fixtures remove it again (empty dirs only).
static RUN_DOCKER_EXISTED: OnceLock<bool> = OnceLock::new();

/// One running private dockerd, using `containerd` (which therefore outlives it).
pub struct Dockerd<'c> {
    containerd: &'c Containerd,
    binaries: Binaries,
    store: ImageStore,
    dir: PathBuf,
    /// cgroupfs parent of every container (`--cgroup-parent`), ours alone, removed on drop.
    cgroup_parent: String,
    child: Option<Child>,
    /// Mounts dockerd holds at rest (its data root), taken right after it became ready.
    baseline_mounts: Vec<PathBuf>,
    /// Full container ids seen, so drop removes their shim sockets even if dockerd did not.
    ids: Mutex<BTreeSet<String>>,
}

impl<'c> Dockerd<'c> {
    /// Starts dockerd on `containerd` with the given image store.
    pub fn start(containerd: &'c Containerd, store: ImageStore) -> Result<Self> {
        let binaries = Binaries::find()?;
        RUN_DOCKER_EXISTED.get_or_init(|| Path::new(RUN_DOCKER).exists());
        let dir = tempfile::Builder::new()
            .prefix(&format!("wbx-docker-{}-", std::process::id()))
            .tempdir_in("/tmp")
            .context("creating dockerd's temp dir")?
            .keep();
        let mut dockerd = Self {
            containerd,
            binaries,
            store,
            dir,
            cgroup_parent: format!("/wbx-docker-{}-{}", std::process::id(), ids::next()),
            child: None,
            baseline_mounts: Vec::new(),
            ids: Mutex::new(BTreeSet::new()),
        };
        // From here on, Drop cleans up even if starting fails.
        for d in [
            dockerd.data_root(),
            dockerd.exec_root(),
            dockerd.cli_config(),
            dockerd.work(),
        ] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::write(dockerd.daemon_json(), store.daemon_json())?;
        dockerd.launch()?;
        dockerd.baseline_mounts = mounts::mounts_under(&dockerd.dir);
        Ok(dockerd)
    }

    pub fn containerd(&self) -> &Containerd {
        self.containerd
    }

    pub fn store(&self) -> ImageStore {
        self.store
    }

    /// Scratch space for image tarballs, cid files and guest files.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn exec_root(&self) -> PathBuf {
        self.dir.join("exec")
    }

    /// `DOCKER_CONFIG` of the CLI, so it never reads or writes `~/.docker`.
    fn cli_config(&self) -> PathBuf {
        self.dir.join("cli")
    }

    fn daemon_json(&self) -> PathBuf {
        self.dir.join("daemon.json")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// dockerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of dockerd's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Remembers a container id so that drop cleans up after it even if dockerd did not.
    pub fn track(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    fn launch(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.log_path())?;
        let mut cmd = Command::new(&self.binaries.dockerd);
        cmd.arg("--config-file")
            .arg(self.daemon_json())
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--containerd")
            .arg(self.containerd.address())
            // No default bridge, no firewall rules, no sysctl changes: containers run with
            // --network none, and the host's network stays as it was.
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--userland-proxy=false",
            ])
            // cgroupfs with a parent of our own, whatever driver dockerd would pick, so the
            // containers' cgroups are at a path the leftover check and cleanup know.
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg(format!("--shutdown-timeout={SHUTDOWN_TIMEOUT_SECS}"))
            .env("PATH", self.path_env())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // If the test process dies without running Drop, take dockerd down with it. (The signal
        // follows the forking thread; a fixture lives and dies on its test's thread.)
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
            .with_context(|| format!("starting {}", self.binaries.dockerd.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Docker's own dirs first (docker-init, docker-proxy), then containerd's (dockerd asks
    /// `runc --version` for `docker info`), then the system's.
    fn path_env(&self) -> std::ffi::OsString {
        let mut first = self.binaries.dirs();
        first.push(self.containerd.options().containerd_dir.clone());
        daemon_path(first)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let mut version = self.docker_command();
        version.args(["version", "--format", "{{.Server.Version}}"]);
        let mut exited = None;
        let child = self.child.as_mut().expect("launched");
        let ready = wait_until("dockerd to answer `docker version`", READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            let answered = run_captured(&mut version, None, Duration::from_secs(10))
                .map(|out| out.status.success())
                .unwrap_or(false);
            answered.then_some(true)
        });
        match (ready, exited) {
            (Ok(true), _) => Ok(()),
            (_, Some(status)) => {
                self.child = None;
                bail!(
                    "dockerd exited during startup ({status}); log:\n{}",
                    self.log_tail(40)
                )
            }
            (Err(e), _) => bail!("{e}; dockerd log:\n{}", self.log_tail(40)),
            (Ok(false), None) => unreachable!("false is only returned on exit"),
        }
    }

    /// `docker --host unix://<our socket>` with a private CLI config, ready for arguments.
    pub fn docker_command(&self) -> Command {
        let mut cmd = Command::new(&self.binaries.docker);
        cmd.arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.cli_config())
            // --host must be the only way the CLI picks a daemon.
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env("DOCKER_CLI_HINTS", "false");
        cmd
    }

    /// Runs docker with `args`, whatever its exit code.
    pub fn docker<I, S>(&self, args: I) -> Result<Captured>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.docker_command();
        cmd.args(args);
        run_captured(&mut cmd, None, DOCKER_TIMEOUT)
    }

    /// Runs docker with `args` and fails unless it exits 0; returns its stdout.
    pub fn docker_ok<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let mut cmd = self.docker_command();
        cmd.args(&args);
        run_ok(&format!("docker {}", shown.join(" ")), &mut cmd, DOCKER_TIMEOUT)
    }

    /// The daemon's version (`28.5.2+dfsg4` reads as 28.5.2).
    pub fn server_version(&self) -> Result<Version> {
        let text = self.docker_ok(["version", "--format", "{{.Server.Version}}"])?;
        Version::parse(&text).with_context(|| format!("cannot read a version in {text:?}"))
    }

    /// Writes `module` as `<work>/<name>.wasm`, builds it with `wasmbox image build --format
    /// FORMAT` (entrypoint `/<name>.wasm`) as `docker.io/library/wbx-<name>:latest` and returns
    /// the tarball.
    pub fn build_image(
        &self,
        format: &str,
        name: &str,
        module: &[u8],
        extra: &[&str],
    ) -> Result<PathBuf> {
        let app = self.work().join(format!("{name}.wasm"));
        std::fs::write(&app, module).with_context(|| format!("writing {}", app.display()))?;
        let tar = self
            .work()
            .join(format!("{name}-{format}-{}.tar", ids::next()));
        tools::build_image(format, &ids::image_ref(name), &app, &tar, extra)?;
        Ok(tar)
    }

    /// `docker load -i TAR`, whatever its exit code.
    pub fn load(&self, tar: &Path) -> Result<Captured> {
        self.docker([OsStr::new("load"), OsStr::new("-i"), tar.as_os_str()])
    }

    /// [`build_image`](Self::build_image), then `docker load`; returns the image reference.
    pub fn build_and_load(
        &self,
        format: &str,
        name: &str,
        module: &[u8],
        extra: &[&str],
    ) -> Result<String> {
        let tar = self.build_image(format, name, module, extra)?;
        let out = self.load(&tar)?;
        if !out.status.success() {
            bail!(
                "docker load -i {} failed ({}):\nstdout: {}\nstderr: {}",
                tar.display(),
                out.status,
                out.stdout_text(),
                out.stderr_text()
            );
        }
        Ok(ids::image_ref(name))
    }

    /// `docker run --rm --cidfile F --runtime io.containerd.wasmbox.v1 --network none [flags]
    /// IMAGE [args]`, attached: the guest's stdout, docker's stderr (guest stderr and docker's
    /// own errors), the exit code (the container's, or 125 for docker's own errors), the id.
    pub fn run_rm(&self, image: &str, flags: &[&str], args: &[&str]) -> Result<DockerRun> {
        let cidfile = self.work().join(format!("cid-{}", ids::next()));
        let mut cmd = self.docker_command();
        cmd.args([
            "run",
            "--rm",
            "--runtime",
            WASMBOX_RUNTIME,
            "--network",
            "none",
        ])
        .arg("--cidfile")
        .arg(&cidfile)
        .args(flags)
        .arg(image)
        .args(args);
        let out = run_captured(&mut cmd, None, DOCKER_TIMEOUT)?;
        // docker writes the full id into the cid file once the container exists.
        let id = std::fs::read_to_string(&cidfile)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if let Some(id) = &id {
            self.track(id);
        }
        Ok(DockerRun {
            output: out.into(),
            id,
        })
    }

    /// `docker run -d --name NAME --runtime io.containerd.wasmbox.v1 --network none [flags]
    /// IMAGE`; returns the container's full id.
    pub fn run_detached(&self, name: &str, image: &str, flags: &[&str]) -> Result<String> {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--runtime",
            WASMBOX_RUNTIME,
            "--network",
            "none",
        ];
        args.extend_from_slice(flags);
        args.push(image);
        let out = self.docker_ok(&args)?;
        let id = out.trim().to_string();
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("docker run -d printed {out:?}, not a container id");
        }
        self.track(&id);
        Ok(id)
    }

    /// `docker inspect --format FORMAT CONTAINER`, trimmed.
    pub fn inspect(&self, container: &str, format: &str) -> Result<String> {
        Ok(self
            .docker_ok(["inspect", "--format", format, container])?
            .trim()
            .to_string())
    }

    /// Waits until `docker logs CONTAINER` contains `needle`.
    pub fn wait_for_log(&self, container: &str, needle: &str, timeout: Duration) -> Result<()> {
        let mut last = String::new();
        let found = wait_until(
            &format!("{needle:?} in the logs of {container}"),
            timeout,
            || {
                if let Ok(out) = self.docker(["logs", container]) {
                    last = format!("{}{}", out.stdout_text(), out.stderr_text());
                }
                last.contains(needle).then_some(())
            },
        );
        found.with_context(|| format!("docker logs so far: {last:?}"))
    }

    /// Full ids of every container dockerd knows (`docker ps -a`).
    pub fn container_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .docker_ok(["ps", "-a", "-q", "--no-trunc"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// Running wasmbox shim processes serving container `id`.
    pub fn shims_of(&self, id: &str) -> Vec<i32> {
        processes()
            .into_iter()
            .filter(|p| p.program() == WASMBOX_SHIM_BINARY && p.argv.iter().any(|a| a == id))
            .map(|p| p.pid)
            .collect()
    }

    /// The cgroup directories of container `id` that exist right now.
    pub fn cgroups_of(&self, id: &str) -> Vec<PathBuf> {
        cgroups::existing_at(&Path::new(&self.cgroup_parent).join(id))
    }

    /// Everything still present for container `id` (full id); empty means clean: docker's and
    /// containerd's records, mounts, cgroups, shim processes and sockets, bundle dirs.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut found = Vec::new();
        match self.container_ids() {
            Ok(ids) if ids.iter().any(|i| i == id) => found.push("docker container".to_string()),
            Ok(_) => {}
            Err(e) => found.push(format!("docker ps failed: {e:#}")),
        }
        match self.containerd.ctr_in(NAMESPACE, ["container", "ls", "-q"]) {
            Ok(out) if out.stdout_text().lines().any(|l| l == id) => {
                found.push(format!("containerd container in namespace {NAMESPACE}"))
            }
            Ok(_) => {}
            Err(e) => found.push(format!("ctr container ls failed: {e:#}")),
        }
        let docker_mounts = mounts::mounts_under(&self.dir)
            .into_iter()
            .filter(|m| !self.baseline_mounts.contains(m));
        for m in docker_mounts.chain(leftovers::extra_mounts(self.containerd)) {
            found.push(format!("mount {}", m.display()));
        }
        for dir in self.cgroups_of(id) {
            found.push(format!("cgroup {}", dir.display()));
        }
        for pid in self.shims_of(id) {
            found.push(format!("shim process {pid}"));
        }
        for s in shim_socket::existing(self.containerd.address(), NAMESPACE, id) {
            found.push(format!("shim socket {}", s.display()));
        }
        let bundles = [
            self.containerd.paths().bundle(NAMESPACE, id),
            // dockerd's own copy of the bundle (config.json, log fifos).
            self.exec_root().join("containerd").join(id),
        ];
        for bundle in bundles.iter().filter(|b| b.exists()) {
            found.push(format!("bundle dir {}", bundle.display()));
        }
        found
    }

    /// Waits (bounded) until nothing is left for container `id`, else fails with the list.
    pub fn assert_no_leftovers(&self, id: &str) -> Result<()> {
        let mut last = Vec::new();
        let clean = wait_until(
            &format!("no leftovers for {id}"),
            leftovers::SETTLE_TIMEOUT,
            || {
                last = self.leftovers(id);
                last.is_empty().then_some(())
            },
        );
        if clean.is_err() {
            bail!(
                "leftovers for docker container {id}:\n  {}\ncontainerd log lines for it:\n{}",
                last.join("\n  "),
                self.containerd.log_lines_mentioning(id)
            );
        }
        Ok(())
    }

    /// SIGTERM, a bounded wait, then SIGKILL.
    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        if wait_with_deadline(&mut child, STOP_TIMEOUT).is_none() {
            // wait_with_deadline already sent SIGKILL and reaped it.
            eprintln!(
                "dockerd {} ignored SIGTERM for {STOP_TIMEOUT:?}; killed",
                child.id()
            );
        }
    }

    fn cleanup(&mut self) {
        // Through dockerd first, so it stops and deletes tasks, unmounts and forgets them.
        if self.child.is_some() {
            for id in self.container_ids().unwrap_or_default() {
                self.track(&id);
                let _ = self.docker(["rm", "--force", "--volumes", id.as_str()]);
            }
        }
        self.stop_daemon();
        // What a dockerd that did not get to it left in containerd.
        let listed = self.containerd.ctr_in(NAMESPACE, ["container", "ls", "-q"]);
        let ids = listed.map(|o| o.stdout_text()).unwrap_or_default();
        for id in ids.lines().filter(|l| !l.is_empty()) {
            self.track(id);
            let _ = self
                .containerd
                .ctr_in(NAMESPACE, ["task", "delete", "--force", id]);
            let _ = self
                .containerd
                .ctr_in(NAMESPACE, ["container", "delete", id]);
        }
        let tracked: Vec<String> = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for id in &tracked {
            shim_socket::remove(self.containerd.address(), NAMESPACE, id);
        }
        // Kills whatever still runs in our cgroup parent and removes it, children first.
        cgroups::force_remove_at(Path::new(&self.cgroup_parent));
        for (mount, e) in mounts::unmount_all_under(&self.dir) {
            eprintln!("cannot unmount {}: {e}", mount.display());
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
        // Empty dirs only: a dockerd of a parallel test does not need them once started.
        if RUN_DOCKER_EXISTED.get() == Some(&false) {
            let _ = std::fs::remove_dir(Path::new(RUN_DOCKER).join("plugins"));
            let _ = std::fs::remove_dir(RUN_DOCKER);
        }
    }
}

impl Drop for Dockerd<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- dockerd log ({}), last lines ---\n{}\n--- end of dockerd log ---",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
        self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_json_always_names_the_store() {
        assert!(ImageStore::Classic
            .daemon_json()
            .contains(r#""containerd-snapshotter":false"#));
        assert!(ImageStore::Containerd
            .daemon_json()
            .contains(r#""containerd-snapshotter":true"#));
    }

    #[test]
    fn reads_debian_docker_versions() {
        let v = Version::parse("28.5.2+dfsg4").unwrap();
        assert_eq!(v, Version(28, 5, 2));
    }
}
