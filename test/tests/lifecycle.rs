//! Many runs, containerd restarts and teardown: nothing may leak.

use std::time::Duration;

use wasmbox_integration::suite::{assert_clean, import_compat, start, start_spinning};
use wasmbox_integration::{guests, ids, leftovers, require_integration, EventStream};

#[test]
fn run_rm_leaves_nothing_behind() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "hello", &guests::hello().unwrap());
    let id = ids::container_id("run-rm-clean");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_clean(&containerd, &id);
    assert!(containerd.container_ids().unwrap().is_empty());
    assert!(
        containerd.shim_processes().is_empty(),
        "{:?}",
        containerd.shim_processes()
    );
}

#[test]
fn fifty_sequential_runs_leave_nothing_behind() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "hello", &guests::hello().unwrap());

    let mut ids_used = Vec::new();
    for round in 0..50 {
        let id = ids::container_id("fifty");
        let out = containerd.run_rm(&image, &id, &[]).unwrap();
        assert_eq!(
            (round, out.code, out.stdout.as_str()),
            (round, 0, "hello from wasm\n"),
            "{out:?}"
        );
        ids_used.push(id);
    }

    for id in &ids_used {
        assert_clean(&containerd, id);
    }
    assert!(containerd.container_ids().unwrap().is_empty());
    assert!(leftovers::extra_mounts(&containerd).is_empty());
    assert!(
        containerd.shim_processes().is_empty(),
        "{:?}",
        containerd.shim_processes()
    );
}

#[test]
fn task_survives_a_containerd_restart_and_can_be_killed() {
    require_integration!();
    let containerd = start();
    let id = ids::container_id("restart");
    let before = start_spinning(&containerd, &id);

    containerd.restart().unwrap();

    let after = containerd
        .wait_task_status(&id, "RUNNING", Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        after.pid, before.pid,
        "the same task should be reported after the restart"
    );
    let mut events = EventStream::start(&containerd, Duration::from_secs(10)).unwrap();
    containerd.kill_task(&id, "SIGTERM").unwrap();
    let exit = events.wait_exit(&id, Duration::from_secs(10)).unwrap();
    assert_eq!(exit.exit_status(), Some(143), "{exit:?}");
    containerd
        .wait_task_status(&id, "STOPPED", Duration::from_secs(10))
        .unwrap();

    containerd.delete_container(&id).unwrap();
    assert_clean(&containerd, &id);
}
