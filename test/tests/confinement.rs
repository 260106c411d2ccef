//! Defense in depth, seen from the node: a wasm container's process (its init, and a wasm
//! exec) runs under a seccomp filter of its own on top of the spec's, with no_new_privs and
//! only the capabilities its guest can reach through WASI; a native container of the same pod
//! keeps exactly what the spec gives it, as under runc. The filter's denials themselves are
//! unit-tested (`wasmbox-container`'s `confine`).

use std::collections::HashMap;
use std::time::Duration;

use wasmbox_integration::config::{CRI_NAMESPACE, CRI_WASMBOX_HANDLER};
use wasmbox_integration::cri::api::ContainerState;
use wasmbox_integration::cri::{self, task, Cri, Pod};
use wasmbox_integration::cri_stream::ExecStream;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::{guests, ids, image, require_integration, Containerd};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Capabilities a wasm process with network may keep: DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER,
/// FSETID and NET_BIND_SERVICE.
const REACHABLE: u64 = 1 << 1 | 1 << 2 | 1 << 3 | 1 << 4 | 1 << 10;

/// The fields of `/proc/<pid>/status` this test reads.
#[derive(Debug, PartialEq, Eq)]
struct Confined {
    seccomp_mode: String,
    filters: u32,
    no_new_privs: String,
    effective: u64,
    permitted: u64,
    bounding: u64,
    /// The `Uid:` line (real, effective, saved, filesystem).
    uid: String,
}

/// The confinement of `pid`; None once it is gone (an exec's short-lived helper can be found
/// and exit before its status is read: the callers wait on).
fn confined(pid: u32) -> Option<Confined> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let fields: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    let field = |k: &str| {
        fields
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in status of {pid}:\n{text}"))
    };
    let caps = |k: &str| u64::from_str_radix(field(k), 16).unwrap_or_else(|e| panic!("{k}: {e}"));
    Some(Confined {
        seccomp_mode: field("Seccomp").into(),
        filters: field("Seccomp_filters").parse().unwrap(),
        no_new_privs: field("NoNewPrivs").into(),
        effective: caps("CapEff"),
        permitted: caps("CapPrm"),
        bounding: caps("CapBnd"),
        uid: field("Uid").into(),
    })
}

/// The pids of container `id`'s processes (`ctr task ps`).
fn task_pids(containerd: &Containerd, id: &str) -> Vec<u32> {
    let out = containerd
        .ctr_in(CRI_NAMESPACE, ["task", "ps", id])
        .unwrap();
    out.stdout_text()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Starts `cmd` in container `id` as `kubectl exec` does; it runs while the stream is held.
fn start_exec(cri: &Cri, id: &str, cmd: &[&str]) -> ExecStream {
    let url = cri
        .exec(id, cmd, false, false)
        .unwrap_or_else(|e| panic!("Exec: {e:#}"));
    ExecStream::connect(&url, TIMEOUT).unwrap_or_else(|e| panic!("exec stream: {e:#}"))
}

/// Whether `pid` runs a program whose path ends in `exe` (or any program, for `None`).
fn runs(pid: u32, exe: Option<&str>) -> bool {
    exe.is_none_or(|exe| {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|path| path.ends_with(exe))
    })
}

/// The status of process `pid` once it runs `exe` (a native init that has exec'd).
fn once_running(pid: u32, exe: &str) -> Confined {
    wait_until(&format!("{pid} to exec {exe}"), TIMEOUT, || {
        runs(pid, Some(exe)).then(|| confined(pid)).flatten()
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Waits until the process `find` names (running `exe`, when given) has exactly `expected`.
fn await_status(what: &str, expected: &Confined, exe: Option<&str>, mut find: impl FnMut() -> Option<u32>) {
    let mut last = None;
    let reached = wait_until(what, TIMEOUT, || {
        let pid = find().filter(|pid| runs(*pid, exe))?;
        let now = confined(pid)?;
        let done = now == *expected;
        last = Some(now);
        done.then_some(())
    });
    if let Err(e) = reached {
        panic!("{e:#}: it has {last:?}, expected {expected:?}");
    }
}

#[test]
fn wasm_processes_run_confined_and_native_ones_as_the_spec_says() {
    require_integration!();
    let containerd = cri::start_with_pod_network()
        .unwrap_or_else(|e| panic!("containerd with CRI and CNI: {e:#}"));
    let cri = Cri::connect(&containerd).unwrap_or_else(|e| panic!("CRI client: {e:#}"));
    let app = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("confine-app"), &guests::idle().unwrap()).file(
            "/idle.wasm",
            guests::idle().unwrap().to_vec(),
            0o644,
        ),
    )
    .unwrap();
    let sidecar = cri::import_image(
        &containerd,
        image::native_image_at(
            &ids::image_ref("confine-sidecar"),
            "/wait",
            &guests::native_wait().unwrap(),
        ),
    )
    .unwrap();
    // A pod network of its own: the wasm container's guest may use sockets (and so keeps
    // NET_BIND_SERVICE), as in most pods.
    let mut pod = Pod::run_in_pod_network(&cri, &containerd, "confine", CRI_WASMBOX_HANDLER, &[])
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e:#}"));
    let mut ids = Vec::new();
    let mut logs = Vec::new();
    for (name, image) in [("app", &app), ("sidecar", &sidecar)] {
        let mut config = cri::container_config(name, image);
        cri::in_pod_network(&mut config);
        logs.push(pod.log_path(&config));
        cri::with_runtime_default_seccomp(&mut config);
        let id = pod
            .create_container(&config)
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e:#}"));
        cri.start_container(&id)
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e:#}"));
        cri.wait_container_state(&id, ContainerState::ContainerRunning, TIMEOUT)
            .unwrap_or_else(|e| panic!("{name} running: {e:#}"));
        ids.push(id);
    }
    // A process the filter stopped says why in its log.
    let pid_of = |i: usize| {
        task(&containerd, &ids[i])
            .map(|t| t.pid)
            .unwrap_or_else(|| {
                let status = cri.container_status(&ids[i]).map(|s| s.exit_code);
                let log = std::fs::read_to_string(&logs[i]).unwrap_or_default();
                panic!(
                    "container {} is not running (exit code {status:?}); its log:\n{log}",
                    ids[i]
                )
            })
    };
    let (app_pid, sidecar_pid) = (pid_of(0), pid_of(1));

    // The native sidecar, once exec'd: the spec's filter and capabilities, nothing more.
    let native = once_running(sidecar_pid, "wait");
    assert_eq!(
        native.seccomp_mode, "2",
        "the runtime default profile is a filter: {native:?}"
    );
    assert_eq!(native.no_new_privs, "0", "{native:?}");
    assert_ne!(
        native.effective & !REACHABLE,
        0,
        "the spec grants more than the wasm process keeps: {native:?}"
    );

    // The wasm init, once its guest runs (confined before its first instruction): one filter
    // more, no_new_privs, and the spec's capabilities narrowed to what WASI can reach.
    let expected = Confined {
        seccomp_mode: "2".into(),
        filters: native.filters + 1,
        no_new_privs: "1".into(),
        effective: native.effective & REACHABLE,
        permitted: native.permitted & REACHABLE,
        bounding: native.bounding & REACHABLE,
        uid: native.uid.clone(),
    };
    await_status("the wasm init to confine itself", &expected, None, || Some(app_pid));

    // A wasm exec (kubectl exec of a wasm program) is confined the same way.
    let _exec = start_exec(&cri, &ids[0], &["/idle.wasm"]);
    await_status("the wasm exec to confine itself", &expected, None, || {
        task_pids(&containerd, &ids[0]).into_iter().find(|p| *p != app_pid)
    });

    // A native exec (kubectl exec into the sidecar) runs under the container's profile with
    // its capabilities, as runc runs it: libcontainer alone would leave the profile out.
    let _native_exec = start_exec(&cri, &ids[1], &["/wait"]);
    await_status("the native exec to run as the sidecar", &native, Some("wait"), || {
        task_pids(&containerd, &ids[1]).into_iter().find(|p| *p != sidecar_pid)
    });

    pod.stop_and_remove()
        .unwrap_or_else(|e| panic!("stopping and removing the pod: {e:#}"));
    pod.assert_nothing_left()
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// A native exec as a non-root user (the container's `runAsUser`) gets the container's profile
/// and exactly the init's capabilities too: the capabilities raised to install the profile are
/// all taken back, whoever the exec runs as.
#[test]
fn a_native_exec_as_another_user_runs_like_its_containers_init() {
    require_integration!();
    let containerd = cri::start().unwrap_or_else(|e| panic!("containerd with CRI: {e:#}"));
    let cri = Cri::connect(&containerd).unwrap_or_else(|e| panic!("CRI client: {e:#}"));
    let image = cri::import_image(
        &containerd,
        image::native_image_at(
            &ids::image_ref("confine-user"),
            "/wait",
            &guests::native_wait().unwrap(),
        ),
    )
    .unwrap();
    let mut pod = Pod::run(&cri, &containerd, "confine-user", CRI_WASMBOX_HANDLER)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e:#}"));
    let mut config = cri::container_config("user", &image);
    cri::with_runtime_default_seccomp(&mut config);
    if let Some(sc) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
    {
        sc.run_as_user = Some(cri::api::Int64Value { value: 1000 });
    }
    let id = pod
        .create_container(&config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e:#}"));
    cri.start_container(&id)
        .unwrap_or_else(|e| panic!("StartContainer: {e:#}"));
    cri.wait_container_state(&id, ContainerState::ContainerRunning, TIMEOUT)
        .unwrap_or_else(|e| panic!("running: {e:#}"));
    let init = task(&containerd, &id).expect("the container's task").pid;
    let settled = once_running(init, "wait");
    assert_eq!(settled.seccomp_mode, "2", "{settled:?}");
    assert_eq!(settled.uid.split_whitespace().next(), Some("1000"), "{settled:?}");

    let _exec = start_exec(&cri, &id, &["/wait"]);
    await_status("the exec to run as its container's init", &settled, Some("wait"), || {
        task_pids(&containerd, &id).into_iter().find(|p| *p != init)
    });
    pod.stop_and_remove()
        .unwrap_or_else(|e| panic!("stopping and removing the pod: {e:#}"));
    pod.assert_nothing_left()
        .unwrap_or_else(|e| panic!("{e:#}"));
}
