//! The Kubernetes RuntimeClass path without a kubelet: a pod with `runtimeClassName: wasmbox`
//! reaches containerd's CRI plugin as `runtime_handler: "wasmbox"`, which maps to runtime type
//! `io.containerd.wasmbox.v1`. These tests make the CRI calls kubelet makes, over containerd's
//! gRPC socket (`test/kind/run.sh` does the same through a real kubelet where kind exists).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmbox_integration::cri_stream::ExecStream;
use wasmbox_integration::config::{CRI_RUNC_HANDLER, CRI_WASMBOX_HANDLER, CRI_WASMBOX_STRICT_HANDLER};
use wasmbox_integration::cri::api::{ContainerState, PodSandboxState};
use wasmbox_integration::cri::{self, task, Cri, Pod};
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::{processes, ProcInfo};
use wasmbox_integration::settings::{RUNC_SHIM_BINARY, WASMBOX_SHIM_BINARY};
use wasmbox_integration::{guests, ids, image, probe, require_integration, tools, Containerd};

/// Create + start + run to the end, compile included.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long CRI may take to write a finished container's last log lines.
const LOG_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a started container's init may take to exec its entrypoint.
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

fn start() -> Containerd {
    cri::start().unwrap_or_else(|e| panic!("starting containerd with CRI: {e:#}"))
}

fn connect(containerd: &Containerd) -> Cri {
    Cri::connect(containerd).unwrap_or_else(|e| panic!("CRI client: {e:#}"))
}

/// Unwraps `r`; on error fails the test with containerd's log lines mentioning `id` (an id, or
/// e.g. "RunPodSandbox", which CRI's lines about that call name).
fn must<T>(containerd: &Containerd, id: &str, what: &str, r: anyhow::Result<T>) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "{what}: {e:#}\ncontainerd log lines for {id}:\n{}",
            containerd.log_lines_mentioning(id)
        )
    })
}

/// Waits until CRI's log of a finished container holds exactly `expected` (stream, line).
fn assert_log(path: &Path, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(s, l)| (s.to_string(), l.to_string()))
        .collect();
    let mut last = String::new();
    let complete = wait_until(
        &format!("{} to be complete", path.display()),
        LOG_TIMEOUT,
        || {
            last = std::fs::read_to_string(path).unwrap_or_default();
            let lines = cri::parse_log(&last).ok()?;
            (cri::log_messages(&lines) == expected).then_some(())
        },
    );
    if complete.is_err() {
        // Say what is wrong: the format, or the content.
        let parsed = cri::parse_log(&last).map(|l| cri::log_messages(&l));
        panic!(
            "CRI log {}:\n{last}\nparsed: {parsed:?}\nexpected: {expected:?}",
            path.display()
        );
    }
}

/// Exactly one serving wasmbox shim (`-socket`) for this containerd, the pod's; the short-lived
/// `start` and `delete` actions containerd runs (same binary, same `-address`) don't count.
fn assert_one_wasmbox_shim(pod: &Pod, when: &str) -> ProcInfo {
    let shims: Vec<ProcInfo> = pod
        .wasmbox_shims()
        .into_iter()
        .filter(|p| p.argv.iter().any(|a| a == "-socket"))
        .collect();
    assert_eq!(
        shims.len(),
        1,
        "{when}: exactly one wasmbox shim should serve the pod: {shims:?}"
    );
    assert!(
        shims[0].has_flag_value("-id", &pod.id),
        "{when}: the shim should be the pod's (-id {}): {:?}",
        pod.id,
        shims[0]
    );
    shims[0].clone()
}

/// The shim's zygote (a child titled `wasmbox-zygote`), through which it forks create helpers.
fn zygotes_of(shim: &ProcInfo) -> Vec<ProcInfo> {
    let parent_of = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    processes()
        .into_iter()
        .filter(|p| p.program() == "wasmbox-zygote" && parent_of(p.pid) == Some(shim.pid))
        .collect()
}

/// The pause container runs `/pause` itself (exec'd natively, not a wasm runner), RUNNING, in
/// the pod's cgroup; returns its pid.
fn assert_pause_runs_natively(containerd: &Containerd, pod: &Pod) -> u32 {
    let sandbox =
        task(containerd, &pod.id).unwrap_or_else(|| panic!("no task for sandbox {}", pod.id));
    assert_eq!(sandbox.status, "RUNNING", "{sandbox:?}");
    let pid = sandbox.pid;
    // Start returns once the init is released, which then execs (as with runc): wait for it.
    let mut seen = (Vec::new(), PathBuf::new());
    let execd = wait_until("the sandbox's init to exec /pause", EXEC_TIMEOUT, || {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let done = cmdline == b"/pause\0" && exe.to_string_lossy().ends_with(cri::PAUSE_PATH);
        seen = (cmdline, exe);
        done.then_some(())
    });
    if let Err(e) = execd {
        panic!(
            "{e:#}: pid {pid} has cmdline {:?} and exe {}",
            String::from_utf8_lossy(&seen.0),
            seen.1.display()
        );
    }
    assert_in_cgroup(pid, &pod.cgroup_path(&pod.id));
    pid
}

/// `pid` is in cgroup `path` (a cgroupfs path) in every hierarchy it is listed in.
fn assert_in_cgroup(pid: u32, path: &Path) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let wanted = path.to_string_lossy();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.ends_with(":/")) // hierarchies with no controller bound (e.g. unified on v1)
        .collect();
    assert!(!lines.is_empty(), "{text}");
    for line in lines {
        let cgroup = line.splitn(3, ':').nth(2).unwrap_or_default();
        assert_eq!(cgroup, wanted, "pid {pid}'s cgroups:\n{text}");
    }
}

/// A pod with `runtimeClassName: wasmbox`: the pause container runs natively, two wasm
/// containers run to completion in the same shim (created from its zygote), their output lands
/// in CRI's log files, a long-running one is stopped, and tearing the pod down leaves nothing.
#[test]
fn wasm_pod_runs_stops_and_leaves_nothing() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let version = cri.version().unwrap();
    eprintln!(
        "CRI: {} {} ({})",
        version.runtime_name, version.runtime_version, version.runtime_api_version
    );
    let hello = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("cri-hello"), &guests::hello().unwrap()),
    )
    .unwrap();
    let args_env = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("cri-args"), &guests::args_env().unwrap())
            .cmd(["from-cmd"])
            .env(["IMAGE_VAR=from-image"]),
    )
    .unwrap();
    let spin = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("cri-spin"), &guests::spin().unwrap()),
    )
    .unwrap();

    let pod = Pod::run(&cri, &containerd, "cri-wasm-pod", CRI_WASMBOX_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let pod_id = pod.id.clone();

    let status = cri.pod_sandbox_status(&pod.id).unwrap();
    assert_eq!(
        status.state,
        PodSandboxState::SandboxReady as i32,
        "{status:?}"
    );
    assert_pause_runs_natively(&containerd, &pod);
    let shim = assert_one_wasmbox_shim(&pod, "after RunPodSandbox");
    assert!(
        containerd
            .shim_processes()
            .iter()
            .all(|p| p.program() == WASMBOX_SHIM_BINARY),
        "only the wasmbox shim should run: {:?}",
        containerd.shim_processes()
    );

    // Two wasm containers in the pod; CRI replaces the image's cmd with `args` and adds `envs`.
    let hello_config = cri::container_config("hello", &hello);
    let mut args_config = cri::container_config("args", &args_env);
    args_config.args = vec!["one".into(), "two words".into()];
    args_config.envs = vec![cri::env("FOO", "bar")];
    let hello_id = must(
        &containerd,
        &pod_id,
        "CreateContainer hello",
        pod.create_container(&hello_config),
    );
    let args_id = must(
        &containerd,
        &pod_id,
        "CreateContainer args",
        pod.create_container(&args_config),
    );
    let same = assert_one_wasmbox_shim(&pod, "after two CreateContainer");
    assert_eq!(same.pid, shim.pid, "the pod's shim should not change");
    let zygote_before = zygotes_of(&shim);
    assert_eq!(
        zygote_before.len(),
        1,
        "the pod's shim should keep its zygote: {zygote_before:?}"
    );

    must(
        &containerd,
        &hello_id,
        "StartContainer hello",
        cri.start_container(&hello_id),
    );
    must(
        &containerd,
        &args_id,
        "StartContainer args",
        cri.start_container(&args_id),
    );
    for (id, name) in [(&hello_id, "hello"), (&args_id, "args")] {
        let exited = cri.wait_container_state(id, ContainerState::ContainerExited, EXIT_TIMEOUT);
        let exited = must(&containerd, id, name, exited);
        assert_eq!(exited.exit_code, 0, "{name}: {exited:?}");
        assert_eq!(exited.reason, "Completed", "{name}: {exited:?}");
    }
    assert_log(
        &pod.log_path(&hello_config),
        &[("stdout", "hello from wasm")],
    );
    assert_log(
        &pod.log_path(&args_config),
        &[
            ("stdout", "arg[0]=/app.wasm"),
            ("stdout", "arg[1]=one"),
            ("stdout", "arg[2]=two words"),
            ("stdout", "env FOO=bar"),
            ("stdout", "env BAR=<unset>"),
            ("stdout", "env IMAGE_VAR=from-image"),
        ],
    );

    // A guest that never returns, stopped the way kubelet stops a container: SIGTERM, then
    // SIGKILL after the grace period. The guest is interrupted by SIGTERM: 128 + 15.
    let spin_config = cri::container_config("spin", &spin);
    let spin_id = must(
        &containerd,
        &pod_id,
        "CreateContainer spin",
        pod.create_container(&spin_config),
    );
    must(
        &containerd,
        &spin_id,
        "StartContainer spin",
        cri.start_container(&spin_id),
    );
    let running =
        cri.wait_container_state(&spin_id, ContainerState::ContainerRunning, EXIT_TIMEOUT);
    must(&containerd, &spin_id, "spin running", running);
    let spin_log = pod.log_path(&spin_config);
    let spinning = wait_until("the guest to print \"spinning\"", EXIT_TIMEOUT, || {
        let text = std::fs::read_to_string(&spin_log).unwrap_or_default();
        text.contains("stdout F spinning").then_some(())
    });
    must(&containerd, &spin_id, "spin log", spinning);
    let spin_task = task(&containerd, &spin_id).expect("the spin task");
    assert_in_cgroup(spin_task.pid, &pod.cgroup_path(&spin_id));
    // What kubelet reads for `kubectl top`, the summary API and evictions, from the shim's
    // cgroup metrics: a spinning guest has used CPU, and has memory and page faults of its own.
    let stats = must(
        &containerd,
        &spin_id,
        "ContainerStats spin",
        cri.container_stats(&spin_id),
    );
    let value = |v: &Option<cri::api::UInt64Value>| v.as_ref().map(|v| v.value).unwrap_or(0);
    let cpu = stats.cpu.as_ref().expect("cpu stats");
    let memory = stats.memory.as_ref().expect("memory stats");
    assert!(value(&cpu.usage_core_nano_seconds) > 0, "{stats:?}");
    assert!(value(&memory.usage_bytes) > 0, "{stats:?}");
    assert!(value(&memory.working_set_bytes) > 0, "{stats:?}");
    assert!(
        value(&memory.working_set_bytes) <= value(&memory.usage_bytes),
        "{stats:?}"
    );
    assert!(value(&memory.rss_bytes) > 0, "{stats:?}");
    assert!(value(&memory.page_faults) > 0, "{stats:?}");
    let same = assert_one_wasmbox_shim(&pod, "with three containers");
    assert_eq!(same.pid, shim.pid, "the pod's shim should not change");
    // Every container was created by a helper forked from that same zygote, none exec'd.
    let zygote_after = zygotes_of(&shim);
    assert_eq!(
        zygote_after.iter().map(|p| p.pid).collect::<Vec<_>>(),
        zygote_before.iter().map(|p| p.pid).collect::<Vec<_>>(),
        "the pod's zygote should serve every create"
    );
    let fallbacks = containerd.log_lines_mentioning("exec'ing the create helper");
    assert!(
        fallbacks.is_empty(),
        "creates fell back to exec'd helpers:\n{fallbacks}"
    );

    let asked = Instant::now();
    must(
        &containerd,
        &spin_id,
        "StopContainer spin",
        cri.stop_container(&spin_id, 2),
    );
    let stopped = cri.wait_container_state(&spin_id, ContainerState::ContainerExited, EXIT_TIMEOUT);
    let stopped = must(&containerd, &spin_id, "spin exited", stopped);
    assert_eq!(
        stopped.exit_code,
        143,
        "SIGTERM should end the guest (137 would mean it needed SIGKILL after {:?}): {stopped:?}",
        asked.elapsed()
    );

    // The leftover check below sees a live pod (so its silence later means something).
    let live = pod.leftovers();
    for kind in [
        "mount ",
        "cgroup ",
        "shim process ",
        "shim socket ",
        "bundle dir ",
    ] {
        assert!(
            live.iter().any(|l| l.starts_with(kind)),
            "no {kind:?} found in {live:#?}"
        );
    }

    // kubelet removes containers, then stops and removes the sandbox (which removes the rest).
    must(
        &containerd,
        &hello_id,
        "RemoveContainer hello",
        cri.remove_container(&hello_id),
    );
    let left: Vec<String> = cri
        .list_containers(&pod.id)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(!left.contains(&hello_id), "{left:?}");
    must(
        &containerd,
        &pod_id,
        "stopping and removing the pod",
        pod.stop_and_remove(),
    );
    let pods = cri.list_pod_sandboxes().unwrap();
    assert!(pods.iter().all(|p| p.id != pod.id), "{pods:?}");
    assert!(cri.list_containers(&pod.id).unwrap().is_empty());
    pod.assert_nothing_left()
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// An image whose entrypoint file is missing. CRI's CreateContainer only records the container
/// (metadata, snapshot); containerd asks the shim for the task at StartContainer, so that is
/// the call that fails, with the shim's error naming the file. kubelet shows it from
/// ContainerStatus (reason StartError); removing the container and the pod leaves nothing.
#[test]
fn missing_entrypoint_fails_start_with_the_shims_error() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let broken = cri::import_image(
        &containerd,
        image::image_without_entrypoint_file(&ids::image_ref("cri-missing"), "/missing.wasm"),
    )
    .unwrap();
    let pod = Pod::run(&cri, &containerd, "cri-missing", CRI_WASMBOX_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let pod_id = pod.id.clone();

    let created = pod.create_container(&cri::container_config("broken", &broken));
    let id = must(&containerd, &pod_id, "CreateContainer", created);
    let err = cri
        .start_container(&id)
        .expect_err("StartContainer should fail for a missing entrypoint");

    let message = format!("{err:#}");
    assert!(
        message.contains("missing.wasm"),
        "the error should name the entrypoint: {message}"
    );
    let status = cri.container_status(&id).unwrap();
    assert_eq!(
        status.state,
        ContainerState::ContainerExited as i32,
        "{status:?}"
    );
    assert_eq!(status.reason, "StartError", "{status:?}");
    assert!(status.message.contains("missing.wasm"), "{status:?}");
    // The pod itself is unharmed: its sandbox still runs, under the one shim.
    let sandbox = cri.pod_sandbox_status(&pod.id).unwrap();
    assert_eq!(
        sandbox.state,
        PodSandboxState::SandboxReady as i32,
        "{sandbox:?}"
    );
    assert_pause_runs_natively(&containerd, &pod);
    assert_one_wasmbox_shim(&pod, "after the failed start");
    assert!(
        task(&containerd, &id).is_none(),
        "no task should be left for {id}"
    );

    must(
        &containerd,
        &id,
        "RemoveContainer",
        cri.remove_container(&id),
    );
    must(
        &containerd,
        &pod_id,
        "stopping and removing the pod",
        pod.stop_and_remove(),
    );
    pod.assert_nothing_left()
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// A Wasm OCI image whose module is a layer (`wasmbox image build --format wasm --platform
/// linux/amd64`, for clients that only pull the host's platform, as CRI does): the shim reads
/// the layer from containerd's content store in CRI's namespace. containerd 1.6.20 cannot store
/// such images at all (see images.rs).
#[test]
fn wasm_layer_image_runs_in_a_pod() {
    require_integration!();
    let version = tools::containerd_version().unwrap_or_else(|e| panic!("{e:#}"));
    if !version.stores_wasm_layers() {
        wasmbox_integration::settings::skip(&format!("containerd {version} cannot store wasm layers; the shim is never asked"));
        return;
    }
    let containerd = start();
    let cri = connect(&containerd);
    let reference = ids::image_ref("cri-wasm-layer");
    let app = containerd.paths().work.join("hello.wasm");
    std::fs::write(&app, &*guests::hello().unwrap()).unwrap();
    let tar = containerd.paths().work.join("cri-wasm-layer.tar");
    tools::build_image(
        "wasm",
        &reference,
        &app,
        &tar,
        &["--platform", "linux/amd64"],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    cri::import_tar(&containerd, &tar, &reference).unwrap_or_else(|e| panic!("{e:#}"));
    let pod = Pod::run(&cri, &containerd, "cri-wasm-layer", CRI_WASMBOX_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let pod_id = pod.id.clone();

    let config = cri::container_config("hello", &reference);
    let id = must(
        &containerd,
        &pod_id,
        "CreateContainer",
        pod.create_container(&config),
    );
    must(&containerd, &id, "StartContainer", cri.start_container(&id));
    let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, EXIT_TIMEOUT);
    let exited = must(&containerd, &id, "hello", exited);

    assert_eq!(exited.exit_code, 0, "{exited:?}");
    assert_log(&pod.log_path(&config), &[("stdout", "hello from wasm")]);
    must(
        &containerd,
        &pod_id,
        "stopping and removing the pod",
        pod.stop_and_remove(),
    );
    pod.assert_nothing_left()
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// The capability policy through Kubernetes: a pod annotation reaches the shim (the handler's
/// `pod_annotations`), and a second RuntimeClass whose handler names an operator config file
/// (`options.ConfigPath`) gets that file's defaults.
#[test]
fn pod_annotations_and_a_strict_runtime_class_shape_the_guest() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let probe = cri::import_image(&containerd, image::compat_image(&ids::image_ref("cri-cap-probe"), &guests::fs_probe().unwrap()))
        .unwrap();
    let spin = cri::import_image(&containerd, image::compat_image(&ids::image_ref("cri-cap-spin"), &guests::spin().unwrap()))
        .unwrap();

    // `wasmbox.dev/preopens: none` on the pod: the guest has no filesystem.
    let pod = Pod::run_annotated(&cri, &containerd, "cri-cap-none", CRI_WASMBOX_HANDLER, &[("wasmbox.dev/preopens", "none")]);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let mut config = cri::container_config("probe", &probe);
    config.args = vec!["preopens".into(), "read:/app.wasm".into()];
    let id = must(&containerd, &pod.id.clone(), "CreateContainer", pod.create_container(&config));
    must(&containerd, &id, "StartContainer", cri.start_container(&id));
    let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, EXIT_TIMEOUT);
    assert_eq!(must(&containerd, &id, "probe", exited).exit_code, 0);
    assert_log(&pod.log_path(&config), &[("stdout", "preopens ok "), ("stdout", "read:/app.wasm err ENOTCAPABLE")]);
    must(&containerd, &pod.id.clone(), "stopping and removing the pod", pod.stop_and_remove());
    pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));

    // The strict RuntimeClass: its file ends a spinning guest after 1 s (exit 124).
    let pod = Pod::run(&cri, &containerd, "cri-cap-strict", CRI_WASMBOX_STRICT_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let config = cri::container_config("spin", &spin);
    let id = must(&containerd, &pod.id.clone(), "CreateContainer", pod.create_container(&config));
    must(&containerd, &id, "StartContainer", cri.start_container(&id));
    let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, EXIT_TIMEOUT);
    assert_eq!(must(&containerd, &id, "spin", exited).exit_code, 124);
    let log = std::fs::read_to_string(pod.log_path(&config)).unwrap_or_default();
    assert!(log.contains("timed out after 1s"), "{log}");
    must(&containerd, &pod.id.clone(), "stopping and removing the pod", pod.stop_and_remove());
    pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));
}

/// The fixture itself, with containerd's own runtime: a runc pod from the same pause image and
/// config comes up and goes away cleanly, so a failure above is about wasmbox.
#[test]
fn runc_pod_baseline() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let pod = Pod::run(&cri, &containerd, "cri-runc-pod", CRI_RUNC_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let pod_id = pod.id.clone();

    let status = cri.pod_sandbox_status(&pod.id).unwrap();
    assert_eq!(
        status.state,
        PodSandboxState::SandboxReady as i32,
        "{status:?}"
    );
    assert_pause_runs_natively(&containerd, &pod);
    let shims = containerd.shim_processes();
    assert!(
        !shims.is_empty() && shims.iter().all(|p| p.program() == RUNC_SHIM_BINARY),
        "{shims:?}"
    );

    must(
        &containerd,
        &pod_id,
        "stopping and removing the pod",
        pod.stop_and_remove(),
    );
    pod.assert_nothing_left()
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// What kubelet sends for volumes and memory limits: a wasm entrypoint that only a hostPath
/// volume provides runs as wasm; under `resources.limits.memory` of 16, 64 and 256 MiB a guest
/// that keeps growing its memory sees memory.grow fail and exits 0, not OOMKilled.
#[test]
fn volume_entrypoint_and_memory_limits_in_a_pod() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let modules = containerd.paths().work.join(ids::container_id("hostpath"));
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(modules.join("hello.wasm"), guests::hello().unwrap().as_slice()).unwrap();
    let bare = cri::import_image(
        &containerd,
        image::image_without_entrypoint_file(&ids::image_ref("cri-volume"), "/modules/hello.wasm"),
    )
    .unwrap();
    let mem = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("cri-mem"), &guests::mem_grow().unwrap()),
    )
    .unwrap();
    let pod = Pod::run(&cri, &containerd, "cri-vol-mem", CRI_WASMBOX_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let pod_id = pod.id.clone();

    let mut volume = cri::container_config("volume", &bare);
    volume.mounts = vec![cri::api::Mount {
        container_path: "/modules".into(),
        host_path: modules.display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    let mut configs = vec![(volume, None)];
    for limit_mib in [16u64, 64, 256] {
        let mut c = cri::container_config(&format!("mem{limit_mib}"), &mem);
        if let Some(r) = c.linux.as_mut().and_then(|l| l.resources.as_mut()) {
            r.memory_limit_in_bytes = (limit_mib << 20) as i64;
        }
        configs.push((c, Some(limit_mib)));
    }
    for (config, limit) in &configs {
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let id = must(&containerd, &pod_id, "CreateContainer", pod.create_container(config));
        must(&containerd, &id, "StartContainer", cri.start_container(&id));
        let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, EXIT_TIMEOUT);
        let exited = must(&containerd, &id, &name, exited);
        assert_eq!(exited.exit_code, 0, "{name}: {exited:?}");
        assert_eq!(exited.reason, "Completed", "{name}: {exited:?}");
        let Some(limit_mib) = limit else {
            assert_log(&pod.log_path(config), &[("stdout", "hello from wasm")]);
            continue;
        };
        let log = pod.log_path(config);
        let mut line = String::new();
        let logged = wait_until("the guest's line in the log", LOG_TIMEOUT, || {
            let text = std::fs::read_to_string(&log).ok()?;
            let lines = cri::parse_log(&text).ok()?;
            line = cri::log_messages(&lines).first()?.1.clone();
            Some(())
        });
        must(&containerd, &id, "log", logged);
        let reached = probe::mem_grow_reached(&line).unwrap_or_else(|| panic!("{name}: unexpected log line {line:?}"));
        probe::assert_memory_budget(*limit_mib, reached);
    }
    must(&containerd, &pod_id, "stopping and removing the pod", pod.stop_and_remove());
    pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));
}

/// The memory.limit_in_bytes (v1) or memory.max (v2) file of a CRI container's cgroup.
fn memory_limit_file(pod: &Pod, id: &str) -> PathBuf {
    wasmbox_integration::cgroups::existing_at(&pod.cgroup_path(id))
        .into_iter()
        .flat_map(|d| [d.join("memory.limit_in_bytes"), d.join("memory.max")])
        .find(|f| f.is_file())
        .unwrap_or_else(|| panic!("no memory cgroup for {id}"))
}

/// Waits until CRI's log of a running container has `n` lines; returns them.
fn log_lines(path: &Path, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    let done = wait_until(&format!("{n} lines in {}", path.display()), EXIT_TIMEOUT, || {
        let text = std::fs::read_to_string(path).ok()?;
        got = cri::log_messages(&cri::parse_log(&text).ok()?).into_iter().map(|(_, l)| l).collect();
        (got.len() >= n).then_some(())
    });
    done.unwrap_or_else(|e| panic!("{e:#}: {got:?}"));
    got
}

/// In-place resize (`UpdateContainerResources`): the new memory limit reaches the cgroup and
/// the guest's memory budget: lowered, the guest is refused earlier; raised, a guest that was
/// refused can grow again. The CPU quota reaches the cgroup too.
#[test]
fn update_container_resources_moves_the_guests_memory_limit() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let mem = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("cri-resize"), &guests::mem_grow().unwrap()),
    )
    .unwrap();
    let triggers = containerd.paths().work.join(ids::container_id("triggers"));
    std::fs::create_dir_all(&triggers).unwrap();
    let pod = Pod::run(&cri, &containerd, "cri-resize", CRI_WASMBOX_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let pod_id = pod.id.clone();

    let mut config = cri::container_config("resize", &mem);
    config.args = vec!["/triggers/one".into(), "/triggers/two".into()];
    config.mounts = vec![cri::api::Mount {
        container_path: "/triggers".into(),
        host_path: triggers.display().to_string(),
        ..Default::default()
    }];
    let resources = |mib: u64, cpu_quota: i64| cri::api::LinuxContainerResources {
        cpu_shares: 2,
        cpu_period: 100_000,
        cpu_quota,
        memory_limit_in_bytes: (mib << 20) as i64,
        ..Default::default()
    };
    if let Some(l) = config.linux.as_mut() {
        l.resources = Some(resources(64, 50_000));
    }
    let id = must(&containerd, &pod_id, "CreateContainer", pod.create_container(&config));
    must(&containerd, &id, "StartContainer", cri.start_container(&id));
    let running = cri.wait_container_state(&id, ContainerState::ContainerRunning, EXIT_TIMEOUT);
    must(&containerd, &id, "running", running);
    let limit_file = memory_limit_file(&pod, &id);
    let limit = || std::fs::read_to_string(&limit_file).unwrap().trim().to_string();
    assert_eq!(limit(), (64u64 << 20).to_string());

    // Lowered before the guest grows: it is refused below the new limit.
    must(&containerd, &id, "UpdateContainerResources", cri.update_container_resources(&id, resources(32, 30_000)));
    assert_eq!(limit(), (32u64 << 20).to_string());
    // The CPU quota reached the cgroup too (v1 cpu.cfs_quota_us, v2 cpu.max).
    let quota = wasmbox_integration::cgroups::candidate_dirs_at(&pod.cgroup_path(&id))
        .into_iter()
        .flat_map(|d| [d.join("cpu.cfs_quota_us"), d.join("cpu.max")])
        .find_map(|f| std::fs::read_to_string(f).ok())
        .expect("a cpu quota file in the container's cgroup");
    assert!(quota.starts_with("30000"), "cpu quota: {quota}");
    std::fs::write(triggers.join("one"), "").unwrap();
    let log = pod.log_path(&config);
    let first = probe::mem_grow_reached(&log_lines(&log, 1)[0]).expect("first line");
    probe::assert_memory_budget(32, first);

    // Raised: the same guest, refused before, grows into the new room.
    must(&containerd, &id, "UpdateContainerResources", cri.update_container_resources(&id, resources(128, 30_000)));
    assert_eq!(limit(), (128u64 << 20).to_string());
    std::fs::write(triggers.join("two"), "").unwrap();
    let second = probe::mem_grow_reached(&log_lines(&log, 2)[1]).expect("second line");
    probe::assert_memory_budget(128, second);

    let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, EXIT_TIMEOUT);
    let exited = must(&containerd, &id, "exit", exited);
    assert_eq!(exited.exit_code, 0, "{exited:?}");
    must(&containerd, &pod_id, "stopping and removing the pod", pod.stop_and_remove());
    pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));
}

/// Exec probes and `kubectl exec` through CRI (`ExecSync`, and `Exec` with containerd's
/// streaming server): into a wasm container (a wasm module and a native program in its image)
/// and into a native sidecar of the same pod; a probe command that fails is seen as failing
/// (its exit code), one that hangs times out, `exec -it` gets a terminal; nothing is left.
#[test]
fn exec_sync_into_a_wasm_container_and_a_native_sidecar() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let app = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("cri-exec-app"), &guests::spin().unwrap())
            .file("/health.wasm", guests::exit_code().unwrap().to_vec(), 0o644)
            .file("/tty.wasm", guests::tty().unwrap().to_vec(), 0o644)
            .file("/hello", guests::native_hello().unwrap().to_vec(), 0o755),
    )
    .unwrap();
    let sidecar = cri::import_image(
        &containerd,
        image::native_image_at(&ids::image_ref("cri-exec-sidecar"), "/wait", &guests::native_wait().unwrap())
            .file("/hello", guests::native_hello().unwrap().to_vec(), 0o755),
    )
    .unwrap();
    let pod = Pod::run(&cri, &containerd, "cri-exec", CRI_WASMBOX_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    let pod_id = pod.id.clone();
    let mut ids = Vec::new();
    for (name, image) in [("app", &app), ("sidecar", &sidecar)] {
        let config = cri::container_config(name, image);
        let id = must(&containerd, &pod_id, "CreateContainer", pod.create_container(&config));
        must(&containerd, &id, "StartContainer", cri.start_container(&id));
        let running = cri.wait_container_state(&id, ContainerState::ContainerRunning, EXIT_TIMEOUT);
        must(&containerd, &id, "running", running);
        ids.push(id);
    }
    let (app_id, sidecar_id) = (&ids[0], &ids[1]);

    // A wasm health check: healthy (0) and failing (1), as an exec probe sees them.
    let healthy = cri.exec_sync(app_id, &["/health.wasm", "0"], 30);
    assert_eq!(must(&containerd, app_id, "ExecSync", healthy).0, 0);
    let failing = cri.exec_sync(app_id, &["/health.wasm", "1"], 30);
    assert_eq!(must(&containerd, app_id, "ExecSync", failing).0, 1, "a failing probe fails");
    for id in [app_id, sidecar_id] {
        let out = must(&containerd, id, "ExecSync", cri.exec_sync(id, &["/hello"], 30));
        assert_eq!((out.0, out.1.as_str()), (0, "hello from native\n"), "{id}: {out:?}");
    }
    // Nothing to run: the error says so.
    let err = cri.exec_sync(app_id, &["/bin/sh", "-c", "true"], 30).expect_err("no shell in the image");
    assert!(format!("{err:#}").contains("no /bin/sh in this image"), "{err:#}");
    // A probe that hangs is ended at its timeout and reported as such, as kubelet expects.
    let err = cri.exec_sync(app_id, &["/app.wasm"], 2).expect_err("a hanging probe times out");
    assert!(format!("{err:#}").contains("timeout"), "{err:#}");

    // `kubectl exec` (CRI Exec and the streaming server): output and exit codes...
    let stream = |id: &str, cmd: &[&str], stdin: bool, tty: bool| {
        let url = must(&containerd, id, "Exec", cri.exec(id, cmd, stdin, tty));
        must(&containerd, id, "exec stream", ExecStream::connect(&url, EXIT_TIMEOUT))
    };
    for id in [app_id, sidecar_id] {
        let done = must(&containerd, id, "exec stream", stream(id, &["/hello"], false, false).finish(EXIT_TIMEOUT));
        assert_eq!((done.stdout.as_str(), done.exit_code), ("hello from native\n", 0), "{id}: {done:?}");
    }
    let done = stream(app_id, &["/health.wasm", "3"], false, false).finish(EXIT_TIMEOUT);
    assert_eq!(must(&containerd, app_id, "exec stream", done).exit_code, 3);
    // ... and `kubectl exec -it` of a wasm program: a terminal, input, its exit code.
    let mut it = stream(app_id, &["/tty.wasm"], true, true);
    let talk = it
        .expect_stdout("isatty: 1 1 1", EXIT_TIMEOUT)
        .and_then(|_| it.send(b"hello tty\r"))
        .and_then(|_| it.expect_stdout("got: hello tty", EXIT_TIMEOUT))
        .and_then(|_| it.send(b"exit\r"));
    must(&containerd, app_id, "exec -it", talk);
    assert_eq!(must(&containerd, app_id, "exec -it", it.finish(EXIT_TIMEOUT)).exit_code, 7);

    must(&containerd, &pod_id, "stopping and removing the pod", pod.stop_and_remove());
    pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));
}

/// Pod annotations reach every container of the pod, the pause container included; the
/// capability policy is the wasm container's. A `wasmbox.dev/preopens` naming the wasm
/// container's volume, or a misspelled `wasmbox.dev/` key, leaves the sandbox (and native
/// containers) as runc would make them: the pod runs, and only the wasm container's start says
/// what is wrong (a good annotation works as before).
#[test]
fn pod_annotations_are_judged_on_the_wasm_container_only() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let probe = cri::import_image(&containerd, image::compat_image(&ids::image_ref("cri-ann-probe"), &guests::fs_probe().unwrap()))
        .unwrap();
    let data = containerd.paths().work.join(ids::container_id("ann-data"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("x"), b"x").unwrap();

    // The pause container has no /data: the annotation is the wasm container's.
    let pod = Pod::run_annotated(&cri, &containerd, "cri-ann-data", CRI_WASMBOX_HANDLER, &[("wasmbox.dev/preopens", "/data:ro")]);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox with wasmbox.dev/preopens", pod);
    assert_pause_runs_natively(&containerd, &pod);
    let mut config = cri::container_config("probe", &probe);
    config.args = vec!["preopens".into(), "read:/data/x".into()];
    config.mounts = vec![cri::api::Mount {
        container_path: "/data".into(),
        host_path: data.display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    let id = must(&containerd, &pod.id.clone(), "CreateContainer", pod.create_container(&config));
    must(&containerd, &id, "StartContainer", cri.start_container(&id));
    let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, EXIT_TIMEOUT);
    assert_eq!(must(&containerd, &id, "probe", exited).exit_code, 0);
    assert_log(&pod.log_path(&config), &[("stdout", "preopens ok /data"), ("stdout", "read:/data/x ok x")]);
    must(&containerd, &pod.id.clone(), "stopping and removing the pod", pod.stop_and_remove());
    pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));

    // A misspelled key: the pod still comes up; the wasm container's start names the key.
    let pod = Pod::run_annotated(&cri, &containerd, "cri-ann-typo", CRI_WASMBOX_HANDLER, &[("wasmbox.dev/egres", "none")]);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox with a misspelled annotation", pod);
    assert_pause_runs_natively(&containerd, &pod);
    let id = must(&containerd, &pod.id.clone(), "CreateContainer", pod.create_container(&cri::container_config("typo", &probe)));
    let err = cri.start_container(&id).expect_err("the wasm container's start should fail");
    let message = format!("{err:#}");
    assert!(message.contains("wasmbox.dev/egres") && message.contains("unknown wasmbox annotation"), "{message}");
    let status = cri.container_status(&id).unwrap();
    assert_eq!(status.reason, "StartError", "{status:?}");
    assert!(status.message.contains("wasmbox.dev/egres"), "{status:?}");
    let sandbox = cri.pod_sandbox_status(&pod.id).unwrap();
    assert_eq!(sandbox.state, PodSandboxState::SandboxReady as i32, "{sandbox:?}");
    must(&containerd, &id, "RemoveContainer", cri.remove_container(&id));
    must(&containerd, &pod.id.clone(), "stopping and removing the pod", pod.stop_and_remove());
    pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));
}

/// `kubectl logs` of a guest that wrote to stdout and then trapped shows its output before the
/// trap's message, every time (CRI reads stdout and stderr apart: the order is ours to keep).
#[test]
fn a_trapping_guests_output_comes_before_its_trap_in_the_log() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let image = cri::import_image(
        &containerd,
        image::compat_image(
            &ids::image_ref("cri-trap-order"),
            &guests::write_then_trap().unwrap(),
        ),
    )
    .unwrap();
    let pod = Pod::run(&cri, &containerd, "cri-trap-order", CRI_WASMBOX_HANDLER);
    let mut pod = must(&containerd, "RunPodSandbox", "RunPodSandbox", pod);
    for i in 0..8 {
        let config = cri::container_config(&format!("trap-{i}"), &image);
        let id = must(
            &containerd,
            &pod.id.clone(),
            "CreateContainer",
            pod.create_container(&config),
        );
        must(&containerd, &id, "StartContainer", cri.start_container(&id));
        let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, EXIT_TIMEOUT);
        assert_eq!(
            must(&containerd, &id, "exit", exited).exit_code,
            134,
            "{id}"
        );
        let path = pod.log_path(&config);
        let mut last = Vec::new();
        let complete = wait_until(
            &format!("{} to hold the trap", path.display()),
            LOG_TIMEOUT,
            || {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                last = cri::log_messages(&cri::parse_log(&text).ok()?);
                last.iter()
                    .any(|(stream, line)| stream == "stderr" && line.starts_with("wasmbox: "))
                    .then_some(())
            },
        );
        complete.unwrap_or_else(|e| panic!("{e:#}: {last:?}"));
        assert_eq!(
            last.first().map(|(s, l)| (s.as_str(), l.as_str())),
            Some(("stdout", "written before the trap")),
            "round {i}: the guest's output is not first: {last:?}"
        );
    }
    must(
        &containerd,
        &pod.id.clone(),
        "stopping and removing the pod",
        pod.stop_and_remove(),
    );
    pod.assert_nothing_left()
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// The labels `wasmbox node labels` gives a node name exactly the wasmbox handlers its
/// containerd runs pods with (here the test's config: `wasmbox` and `wasmbox-strict`); a
/// handler without a label is one CRI refuses, which is what a RuntimeClass's nodeSelector on
/// the label keeps pods away from.
#[test]
fn node_labels_name_the_handlers_cri_runs_pods_with() {
    require_integration!();
    let containerd = start();
    let cri = connect(&containerd);
    let config = containerd.paths().config.to_string_lossy().into_owned();
    let out = tools::run_ok(
        &tools::wasmbox_cli(),
        &["node", "labels", "--config", &config],
    )
    .unwrap_or_else(|e| panic!("wasmbox node labels: {e:#}"));
    let patch: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let labels = patch
        .pointer("/metadata/labels")
        .and_then(|l| l.as_object())
        .cloned()
        .unwrap_or_default();
    let mut handlers: Vec<&str> = labels
        .iter()
        .filter(|(_, v)| v.as_str() == Some("true"))
        .filter_map(|(k, _)| k.strip_prefix("handler.wasmbox.dev/"))
        .collect();
    handlers.sort();
    assert_eq!(
        handlers,
        [CRI_WASMBOX_HANDLER, CRI_WASMBOX_STRICT_HANDLER],
        "{out}"
    );
    for handler in handlers {
        let pod = Pod::run(&cri, &containerd, &format!("label-{handler}"), handler);
        let mut pod = must(&containerd, "RunPodSandbox", handler, pod);
        must(
            &containerd,
            &pod.id.clone(),
            "stopping and removing the pod",
            pod.stop_and_remove(),
        );
        pod.assert_nothing_left()
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    let err = Pod::run(&cri, &containerd, "label-absent", "wasmbox-absent")
        .err()
        .expect("an unlabelled handler");
    assert!(
        format!("{err:#}").contains("no runtime for \"wasmbox-absent\" is configured"),
        "{err:#}"
    );
}
