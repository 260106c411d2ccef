//! Pods sharing a shim (`shim.pods_per_shim`, 16 by default): one shim process and its zygote
//! serve several pods, each pod with all its containers, through the CRI calls kubelet makes.
//! Each pod still runs, execs and goes on its own; the operator's limit bounds the pods a shim
//! serves; the price (a shim that dies takes its pods' containers) is what the docs say.

use std::time::Duration;

use wasmbox_integration::config::{CRI_WASMBOX_HANDLER, CRI_WASMBOX_STRICT_HANDLER};
use wasmbox_integration::cri::api::ContainerState;
use wasmbox_integration::cri::{self, Cri, Pod};
use wasmbox_integration::process::kill_and_wait;
use wasmbox_integration::{guests, ids, image, require_integration, Containerd};

/// Create + start, compile included.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(60);

/// The pids of the serving wasmbox shims of this containerd (not the short-lived `start` and
/// `delete` actions).
fn serving_shims(containerd: &Containerd) -> Vec<i32> {
    cri::wasmbox_shims(containerd)
        .into_iter()
        .filter(|p| p.argv.iter().any(|a| a == "-socket"))
        .map(|p| p.pid)
        .collect()
}

/// An image whose entrypoint spins and that holds an exec probe (`/health.wasm CODE`).
fn import_app(containerd: &Containerd, name: &str) -> String {
    let image = image::compat_image(&ids::image_ref(name), &guests::spin().unwrap())
        .file("/health.wasm", guests::exit_code().unwrap().to_vec(), 0o644);
    cri::import_image(containerd, image).unwrap()
}

/// A pod of `handler` with one running container of `image`; returns the pod and the container.
fn run_pod<'a>(containerd: &'a Containerd, cri: &'a Cri, handler: &str, image: &str) -> (Pod<'a>, String) {
    let mut pod = Pod::run(cri, containerd, "shared-pods", handler).unwrap_or_else(|e| panic!("RunPodSandbox: {e:#}"));
    let id = pod.create_container(&cri::container_config("app", image)).unwrap_or_else(|e| panic!("CreateContainer: {e:#}"));
    cri.start_container(&id).unwrap_or_else(|e| panic!("StartContainer {id}: {e:#}\n{}", containerd.log_lines_mentioning(&id)));
    cri.wait_container_state(&id, ContainerState::ContainerRunning, RUNNING_TIMEOUT).unwrap();
    (pod, id)
}

/// `n` pods as [`run_pod`] makes them.
fn run_pods<'a>(containerd: &'a Containerd, cri: &'a Cri, handler: &str, image: &str, n: usize) -> Vec<(Pod<'a>, String)> {
    (0..n).map(|_| run_pod(containerd, cri, handler, image)).collect()
}

/// Stops and removes every pod as kubelet does, then nothing of any of them may be left.
fn remove_all_and_assert_nothing_left(pods: &mut [(Pod, String)]) {
    for (pod, _) in pods.iter_mut() {
        pod.stop_and_remove().unwrap();
    }
    for (pod, _) in pods.iter() {
        pod.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));
    }
}

fn assert_probe_passes(cri: &Cri, id: &str) {
    let (code, out, err) = cri.exec_sync(id, &["/health.wasm", "0"], 30).unwrap_or_else(|e| panic!("ExecSync {id}: {e:#}"));
    assert_eq!(code, 0, "{id}: {out} {err}");
}

#[test]
fn pods_share_a_shim_yet_each_execs_and_goes_on_its_own() {
    require_integration!();
    let containerd = cri::start().unwrap();
    let cri = Cri::connect(&containerd).unwrap();
    let app = import_app(&containerd, "shared-pods-app");
    let mut pods = run_pods(&containerd, &cri, CRI_WASMBOX_HANDLER, &app, 3);

    let shims = serving_shims(&containerd);
    assert_eq!(shims.len(), 1, "three pods, one shim: {shims:?}");
    for (_, id) in &pods {
        assert_probe_passes(&cri, id);
    }

    // kubelet deletes one pod: the others go on, on the same shim.
    let (mut first, _) = pods.remove(0);
    first.stop_and_remove().unwrap();
    assert_eq!(serving_shims(&containerd), shims, "the shim serves the other pods on");
    for (pod, id) in &pods {
        let status = cri.container_status(id).unwrap();
        assert_eq!(status.state, ContainerState::ContainerRunning as i32, "{}: {status:?}", pod.id);
        assert_probe_passes(&cri, id);
    }
    // A pod started now joins the running shim.
    pods.push(run_pod(&containerd, &cri, CRI_WASMBOX_HANDLER, &app));
    assert_eq!(serving_shims(&containerd), shims, "a new pod joins the shim with room");

    // The last pod's removal ends the shim; nothing of any pod is left.
    remove_all_and_assert_nothing_left(&mut pods);
    first.assert_nothing_left().unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn pods_per_shim_bounds_the_pods_one_shim_serves() {
    require_integration!();
    let containerd = cri::start().unwrap();
    // The strict RuntimeClass's config file, read by each `start` action.
    std::fs::write(containerd.paths().strict_config(), "[shim]\npods_per_shim = 2\n").unwrap();
    let cri = Cri::connect(&containerd).unwrap();
    let app = import_app(&containerd, "pods-per-shim-app");
    let mut pods = run_pods(&containerd, &cri, CRI_WASMBOX_STRICT_HANDLER, &app, 3);
    let shims = serving_shims(&containerd);
    assert_eq!(shims.len(), 2, "three pods at two per shim: {shims:?}");
    // Each shim serves whole pods: a pod's pause and app are children of the same shim or
    // of its zygote, never split.
    let children = wasmbox_integration::process::children_by_parent();
    let descendants = |root: i32| {
        let mut all = vec![root];
        let mut i = 0;
        while i < all.len() {
            all.extend(children.get(&all[i]).into_iter().flatten());
            i += 1;
        }
        all
    };
    for (pod, id) in &pods {
        let pause = cri::task(&containerd, &pod.id).expect("the pause task").pid as i32;
        let app = cri::task(&containerd, id).expect("the app task").pid as i32;
        let serving: Vec<i32> = shims.iter().copied().filter(|s| descendants(*s).contains(&pause)).collect();
        assert_eq!(serving.len(), 1, "pod {}: pause {pause} under {serving:?}", pod.id);
        assert!(descendants(serving[0]).contains(&app), "pod {}: app {app} is not under shim {}", pod.id, serving[0]);
        assert_probe_passes(&cri, id);
    }
    remove_all_and_assert_nothing_left(&mut pods);
}

#[test]
fn a_shared_shim_that_dies_takes_its_pods_containers_and_leaves_nothing() {
    require_integration!();
    let containerd = cri::start().unwrap();
    let cri = Cri::connect(&containerd).unwrap();
    let app = import_app(&containerd, "shared-pods-killed");
    let mut pods = run_pods(&containerd, &cri, CRI_WASMBOX_HANDLER, &app, 2);
    let shims = serving_shims(&containerd);
    assert_eq!(shims.len(), 1, "{shims:?}");

    kill_and_wait(&shims, Duration::from_secs(10)).unwrap();
    // containerd runs the `delete` action for each of its tasks: every container has exited,
    // as kubelet will see (and restart them in a new sandbox).
    for (pod, id) in &pods {
        let exited = cri.wait_container_state(id, ContainerState::ContainerExited, Duration::from_secs(30));
        let exited = exited.unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_lines_mentioning(id)));
        // CRI records the `delete` action's SIGKILL (137), or 255 ("unknown") when its wait on
        // the task fails first because the shim's connection closed, as with runc's shim.
        assert!(matches!(exited.exit_code, 137 | 255), "pod {}: {exited:?}", pod.id);
    }
    remove_all_and_assert_nothing_left(&mut pods);
}

#[test]
fn shared_pods_run_on_across_a_containerd_restart() {
    require_integration!();
    let containerd = cri::start().unwrap();
    let cri = Cri::connect(&containerd).unwrap();
    let app = import_app(&containerd, "shared-pods-restart");
    let mut pods = run_pods(&containerd, &cri, CRI_WASMBOX_HANDLER, &app, 2);
    let shims = serving_shims(&containerd);
    assert_eq!(shims.len(), 1, "{shims:?}");
    let before: Vec<u32> = pods.iter().map(|(_, id)| cri::task(&containerd, id).expect("a task").pid).collect();

    containerd.restart().unwrap_or_else(|e| panic!("{e:#}"));
    // containerd reconnects to the shim through each bundle's address: the same processes
    // serve on, and CRI still execs into every pod. (The client's first call after the restart
    // fails with a transport error while it reconnects, as kubelet's would, and is retried.)
    wasmbox_integration::poll::wait_until("CRI to answer after the restart", RUNNING_TIMEOUT, || cri.version().ok()).unwrap();
    for ((pod, id), pid) in pods.iter().zip(&before) {
        let task = wasmbox_integration::poll::wait_until("the task back after the restart", RUNNING_TIMEOUT, || {
            cri::task(&containerd, id).filter(|t| t.status == "RUNNING")
        })
        .unwrap_or_else(|e| panic!("pod {}: {e:#}\n{}", pod.id, containerd.log_lines_mentioning(id)));
        assert_eq!(task.pid, *pid, "pod {}: the container runs on", pod.id);
        assert_probe_passes(&cri, id);
    }
    assert_eq!(serving_shims(&containerd), shims, "the same shim serves on");
    // A pod started after the restart joins it.
    pods.push(run_pod(&containerd, &cri, CRI_WASMBOX_HANDLER, &app));
    assert_eq!(serving_shims(&containerd), shims, "a new pod joins the running shim");
    remove_all_and_assert_nothing_left(&mut pods);
}
