//! Small helpers that keep the test files about behaviour rather than plumbing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::containerd::Containerd;
use crate::ctr::{RunOutput, RunSpec, TaskInfo};
use crate::events::{Event, EventStream};
use crate::netns::NetNs;
use crate::poll::wait_until;
use crate::{guests, ids, image, leftovers};

/// How long a detached task may take to show RUNNING (includes compiling the module).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a private containerd or fails the test with the reason.
pub fn start() -> Containerd {
    Containerd::start().unwrap_or_else(|e| panic!("starting a private containerd: {e:#}"))
}

/// A private containerd whose shims count every module as large (`WASMBOX_BASELINE_MIN_BYTES=0`):
/// a start that finds no artifact runs on the baseline tier, and logs it.
pub fn start_tiering_everything() -> Containerd {
    Containerd::start_with(crate::FixtureOptions {
        env: vec![("WASMBOX_BASELINE_MIN_BYTES".into(), "0".into())],
        ..crate::FixtureOptions::default()
    })
    .unwrap_or_else(|e| panic!("starting a private containerd: {e:#}"))
}

/// The compiled artifacts (`.cwasm`) in the fixture's cache, sorted; of the module with these
/// bytes only (one per compiler), when given.
pub fn cache_artifacts(containerd: &Containerd, module: Option<&[u8]>) -> Vec<String> {
    use sha2::Digest;
    let digest = module.map(|m| hex::encode(sha2::Sha256::digest(m))).unwrap_or_default();
    let mut found: Vec<String> = std::fs::read_dir(&containerd.paths().cache)
        .map(|dir| dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    found.retain(|n| n.starts_with(&digest) && n.ends_with(".cwasm"));
    found.sort();
    found
}

/// Imports `module` as compat image `docker.io/library/wbx-<name>:latest`; returns its name.
pub fn import_compat(containerd: &Containerd, name: &str, module: &[u8]) -> String {
    containerd
        .import_image(image::compat_image(&ids::image_ref(name), module))
        .unwrap_or_else(|e| panic!("importing {name}: {e:#}"))
}

/// Fails the test, with the containerd log, if anything is left for `id`.
pub fn assert_clean(containerd: &Containerd, id: &str) {
    if let Err(e) = leftovers::assert_none(containerd, id) {
        panic!(
            "{e:#}\ncontainerd log lines for {id}:\n{}",
            containerd.log_lines_mentioning(id)
        );
    }
}

/// Runs `spec` to the end (`ctr run --rm`), removes the container if ctr kept it (after a
/// failed Create), and fails the test, with the containerd log, if anything is left.
pub fn run_to_end(containerd: &Containerd, spec: &RunSpec) -> RunOutput {
    let out = containerd
        .run(spec)
        .unwrap_or_else(|e| panic!("ctr run {}: {e:#}", spec.id));
    if containerd.container_ids().unwrap().contains(&spec.id) {
        let _ = containerd.delete_container(&spec.id);
    }
    assert_clean(containerd, &spec.id);
    out
}

/// A wasmbox config file (the runtime's ConfigPath) with `text`, for one test.
pub fn config_file(containerd: &Containerd, name: &str, text: &str) -> PathBuf {
    let path = containerd.paths().work.join(format!("{}.toml", ids::container_id(name)));
    std::fs::write(&path, text).unwrap();
    path
}

/// Ends a running task the hard way (SIGKILL), waits until containerd sees it stopped, deletes
/// the container and fails the test if anything is left.
pub fn kill_and_remove(containerd: &Containerd, id: &str) {
    containerd.kill_task(id, "SIGKILL").unwrap();
    containerd
        .wait_task_status(id, "STOPPED", Duration::from_secs(10))
        .unwrap();
    containerd.delete_container(id).unwrap();
    assert_clean(containerd, id);
}

/// Runs `spec` detached (`ctr run -d`) with its output in a log file of the fixture's
/// (`--log-uri file://...`); returns the log's path.
pub fn start_logged(containerd: &Containerd, spec: RunSpec) -> PathBuf {
    let log = containerd.paths().work.join(format!("{}.log", spec.id));
    let spec = spec.flag(&format!("--log-uri=file://{}", log.display()));
    containerd
        .run_detached(&spec)
        .unwrap_or_else(|e| panic!("ctr run -d {}: {e:#}", spec.id));
    log
}

/// Sends `signal` to task `id` and waits for its exit event; then waits until containerd shows
/// it STOPPED, deletes the container and fails the test if anything is left. Returns the exit
/// event and how long it came after the signal.
pub fn signal_and_remove(containerd: &Containerd, id: &str, signal: &str) -> (Event, Duration) {
    let mut events = EventStream::start(containerd, Duration::from_secs(10)).unwrap();
    let sent = Instant::now();
    containerd.kill_task(id, signal).unwrap();
    let exit = events.wait_exit(id, Duration::from_secs(30)).unwrap();
    let took = sent.elapsed();
    containerd
        .wait_task_status(id, "STOPPED", Duration::from_secs(10))
        .unwrap();
    containerd.delete_container(id).unwrap();
    assert_clean(containerd, id);
    (exit, took)
}

/// Starts the spinning guest detached as container `id`, its output going to a log file
/// (`--log-uri file://...`), and returns once the task is RUNNING and the guest has printed
/// "spinning", i.e. it is inside its host-call-free loop.
pub fn start_spinning(containerd: &Containerd, id: &str) -> TaskInfo {
    let image = import_compat(containerd, "spin", &guests::spin().unwrap());
    start_spinning_spec(containerd, RunSpec::new(&image, id))
}

/// [`start_spinning`] for any guest that prints "spinning" before its host-call-free loop.
pub fn start_spinning_spec(containerd: &Containerd, spec: RunSpec) -> TaskInfo {
    let id = spec.id.clone();
    let id = id.as_str();
    let log = start_logged(containerd, spec);
    let task = containerd
        .wait_task_status(id, "RUNNING", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e:#}\ncontainerd log:\n{}", containerd.log_tail(40)));
    let printed = wait_until("the guest to print \"spinning\"", START_TIMEOUT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("spinning").then_some(())
    });
    if let Err(e) = printed {
        panic!(
            "{e:#} in {}\ncontainerd log:\n{}",
            log.display(),
            containerd.log_tail(40)
        );
    }
    task
}

/// A fresh directory under the fixture's work dir, for a test's bind mounts.
pub fn work_dir(containerd: &Containerd, name: &str) -> PathBuf {
    let dir = containerd.paths().work.join(format!("{name}-{}", ids::container_id("d")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `ctr run`'s flag that bind-mounts `src` at `dst` (`mode`: `ro` or `rw`).
pub fn bind(src: &Path, dst: &str, mode: &str) -> String {
    format!("--mount=type=bind,src={},dst={dst},options=rbind:{mode}", src.display())
}

/// Starts an HTTP handler's `image` detached in `ns`, served on `addr` (`wasmbox.dev/http`),
/// with `flags`; returns its log once the port accepts.
pub fn start_http(containerd: &Containerd, ns: &NetNs, id: &str, image: &str, addr: &str, flags: &[&str]) -> PathBuf {
    let mut spec = RunSpec::new(image, id)
        .flag(&ns.ctr_flag())
        .flag(&format!("--annotation=wasmbox.dev/http={addr}"));
    for f in flags {
        spec = spec.flag(f);
    }
    let log = start_logged(containerd, spec);
    wait_until(&format!("the handler's server on {addr}"), START_TIMEOUT, || ns.connect_tcp(addr).ok())
        .unwrap_or_else(|e| panic!("{e:#}\nlog: {:?}\n{}", std::fs::read_to_string(&log), containerd.log_tail(40)));
    log
}

/// SIGTERM to a handler and waits for the exit: 0 (drained); nothing left, `addr` free.
pub fn stop_http(containerd: &Containerd, id: &str, ns: &NetNs, addr: &str) {
    let (exit, _) = signal_and_remove(containerd, id, "SIGTERM");
    assert_eq!(exit.exit_status(), Some(0), "{exit:?}");
    ns.listen_tcp(addr).expect("the handler's port is still taken after it ended");
}
