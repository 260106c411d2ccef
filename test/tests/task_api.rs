//! The task API on a running wasm task: `ctr task ls`, `ctr task ps`, `ctr task metrics`.

use std::time::Duration;

use wasmbox_integration::settings::WASMBOX_SHIM_BINARY;
use wasmbox_integration::suite::{assert_clean, start, start_spinning};
use wasmbox_integration::{ids, require_integration};

#[test]
fn ls_ps_and_metrics_describe_a_running_task() {
    require_integration!();
    let containerd = start();
    let id = ids::container_id("task-api");
    let task = start_spinning(&containerd, &id);
    assert!(task.pid > 0, "{task:?}");

    let ps = containerd.ctr_ok(["task", "ps", id.as_str()]).unwrap();
    let pids: Vec<u32> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        pids.contains(&task.pid),
        "task pid {} not in ctr task ps:\n{ps}",
        task.pid
    );

    let metrics = containerd.ctr_ok(["task", "metrics", id.as_str()]).unwrap();
    assert!(metrics.contains(&id), "{metrics}");
    assert!(
        metrics.contains("METRIC"),
        "no cgroup metrics table:\n{metrics}"
    );

    let live = wasmbox_integration::leftovers::find(&containerd, &id, WASMBOX_SHIM_BINARY);
    for kind in [
        "mount ",
        "cgroup ",
        "shim process ",
        "shim socket ",
        "bundle dir ",
    ] {
        assert!(
            live.iter().any(|l| l.starts_with(kind)),
            "a running task should have a {kind}: {live:#?}"
        );
    }

    let containers = containerd.ctr_ok(["container", "ls"]).unwrap();
    assert!(
        containers.contains("io.containerd.wasmbox.v1"),
        "{containers}"
    );

    containerd.kill_task(&id, "SIGKILL").unwrap();
    containerd
        .wait_task_status(&id, "STOPPED", Duration::from_secs(10))
        .unwrap();
    containerd.delete_container(&id).unwrap();
    assert_clean(&containerd, &id);
}
