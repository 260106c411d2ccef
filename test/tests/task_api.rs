//! The task API on a running wasm task: `ctr task ls`, `ctr task ps`, `ctr task metrics`.

use std::time::Duration;

use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::thread_names;
use wasmbox_integration::settings::WASMBOX_SHIM_BINARY;
use wasmbox_integration::suite::{assert_clean, kill_and_remove, start, start_spinning};
use wasmbox_integration::{ids, require_integration, EventStream};

/// An idle task's shim keeps its runtime thread and the container's log forwarder, nothing per
/// connection or per call: calls run on a pool whose threads end after a second idle, and
/// containerd's Wait (open while the task lives) holds no thread. The task starts on an empty
/// compile cache, so its shim compiled: the compile's threads are gone too.
#[test]
fn an_idle_tasks_shim_keeps_no_thread_per_call_or_connection() {
    require_integration!();
    let containerd = start();
    let id = ids::container_id("idle-threads");
    start_spinning(&containerd, &id);
    for _ in 0..3 {
        containerd.ctr_ok(["task", "ls"]).unwrap();
        containerd.ctr_ok(["task", "ps", id.as_str()]).unwrap();
        containerd.ctr_ok(["task", "metrics", id.as_str()]).unwrap();
    }
    let shim = containerd.shim_of(&id).expect("the task's shim");
    let mut names = Vec::new();
    let idle = wait_until("the shim's call threads to end", Duration::from_secs(10), || {
        names = thread_names(shim);
        names.iter().all(|n| n != "wasmbox-call").then_some(())
    });
    assert!(idle.is_ok(), "threads of the idle shim: {names:?}");
    names.sort();
    assert_eq!(names, ["containerd-shim", "wasmbox-ctr-log"], "threads of the idle shim");
    kill_and_remove(&containerd, &id);
    assert_clean(&containerd, &id);
}

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

    kill_and_remove(&containerd, &id);
}

/// CPU time (user + system, clock ticks) the process `pid` has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, as in proc(5)).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// How long CPU use is watched to tell a spinning guest from a frozen one: a measurement
/// window, not a wait for a condition (a spinning guest uses ~30 ticks in it).
const WINDOW: Duration = Duration::from_millis(300);

fn ticks_in_window(pid: u32) -> u64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(WINDOW);
    cpu_ticks(pid) - before
}

#[test]
fn pause_freezes_the_guest_resume_thaws_it_and_a_paused_task_can_be_killed() {
    require_integration!();
    let containerd = start();
    let id = ids::container_id("pause");
    let task = start_spinning(&containerd, &id);
    let mut events = EventStream::start(&containerd, Duration::from_secs(10)).unwrap();
    assert!(ticks_in_window(task.pid) > 0, "the guest spins while running");

    containerd.ctr_ok(["task", "pause", id.as_str()]).unwrap();
    containerd.wait_task_status(&id, "PAUSED", Duration::from_secs(10)).unwrap();
    assert_eq!(ticks_in_window(task.pid), 0, "a paused guest uses no CPU");
    // Pausing twice is refused, as with runc.
    assert!(containerd.ctr(["task", "pause", id.as_str()]).unwrap().code() != 0);

    containerd.ctr_ok(["task", "resume", id.as_str()]).unwrap();
    containerd.wait_task_status(&id, "RUNNING", Duration::from_secs(10)).unwrap();
    assert!(ticks_in_window(task.pid) > 0, "the guest spins again after resume");
    for topic in ["/tasks/paused", "/tasks/resumed"] {
        events
            .next_matching(Duration::from_secs(10), |e| e.topic == topic && e.container_id() == Some(id.as_str()))
            .unwrap_or_else(|e| panic!("no {topic} event: {e:#}"));
    }

    // Killed while paused: it dies (the freezer is thawed for SIGKILL).
    containerd.ctr_ok(["task", "pause", id.as_str()]).unwrap();
    containerd.wait_task_status(&id, "PAUSED", Duration::from_secs(10)).unwrap();
    containerd.kill_task(&id, "SIGKILL").unwrap();
    let exit = events.wait_exit(&id, Duration::from_secs(10)).unwrap();
    assert_eq!(exit.exit_status(), Some(137), "{exit:?}");
    containerd.wait_task_status(&id, "STOPPED", Duration::from_secs(10)).unwrap();
    containerd.delete_container(&id).unwrap();
    assert_clean(&containerd, &id);
}
