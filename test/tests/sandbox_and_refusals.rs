//! What a guest may reach, what the shim refuses, and what survives a dead shim.

use std::time::Duration;

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::image::compat_image;
use wasmbox_integration::process::{is_alive, kill_and_wait};
use wasmbox_integration::suite::{assert_clean, import_compat, start, start_spinning};
use wasmbox_integration::{guests, ids, require_integration, EventStream};

#[test]
fn guest_reads_its_image_files_but_not_proc_sys_or_dev() {
    require_integration!();
    let containerd = start();
    let module = guests::cat_file().unwrap();
    let image = containerd
        .import_image(
            compat_image(&ids::image_ref("cat"), &module)
                .file("/data/greeting.txt", b"hello from the image\n".to_vec(), 0o644),
        )
        .unwrap();

    let id = ids::container_id("cat-own");
    let out = containerd.run_rm(&image, &id, &["/app.wasm", "/data/greeting.txt"]).unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from the image\n");
    assert_clean(&containerd, &id);

    // The peer's measured hole: a guest reading the runtime's environment through /proc.
    for path in ["/proc/1/environ", "/proc/self/mounts", "/sys/kernel/hostname", "/dev/null"] {
        let id = ids::container_id("cat-denied");
        let out = containerd.run_rm(&image, &id, &["/app.wasm", path]).unwrap();
        assert_eq!(out.code, 1, "{path} must not be readable: {out:?}");
        assert!(out.stdout.is_empty(), "{path} leaked: {:?}", out.stdout);
        assert!(out.stderr.contains(path), "the guest's error names {path}: {out:?}");
        assert_clean(&containerd, &id);
    }
}

#[test]
fn read_only_root_refuses_writes() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "files-ro", &guests::files().unwrap());
    let id = ids::container_id("read-only");
    let spec = RunSpec::new(&image, &id).flag("--read-only").flag("--rm");
    let out = containerd.run(&spec).unwrap();
    assert_eq!(out.code, 1, "a write to a read-only root must fail: {out:?}");
    assert!(out.stderr.contains("open for writing"), "{out:?}");
    assert_clean(&containerd, &id);

    // The same image writes fine without --read-only.
    let id = ids::container_id("read-write");
    let out = containerd.run_rm(&image, &id, &[]).unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_clean(&containerd, &id);
}

#[test]
fn kill_all_stops_the_task() {
    require_integration!();
    let containerd = start();
    let id = ids::container_id("kill-all");
    start_spinning(&containerd, &id);
    let mut events = EventStream::start(&containerd, Duration::from_secs(10)).unwrap();
    containerd
        .ctr_ok(["task", "kill", "--all", "--signal", "SIGKILL", id.as_str()])
        .unwrap();
    let exit = events.wait_exit(&id, Duration::from_secs(10)).unwrap();
    assert_eq!(exit.exit_status(), Some(137), "{exit:?}");
    containerd
        .wait_task_status(&id, "STOPPED", Duration::from_secs(10))
        .unwrap();
    containerd.delete_container(&id).unwrap();
    assert_clean(&containerd, &id);
}

#[test]
fn run_publishes_create_start_exit_and_delete_events() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "hello-events", &guests::hello().unwrap());
    let id = ids::container_id("events");
    let mut events = EventStream::start(&containerd, Duration::from_secs(10)).unwrap();
    let out = containerd.run_rm(&image, &id, &[]).unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    events
        .next_matching(Duration::from_secs(10), |e| {
            e.topic == "/tasks/delete" && e.container_id() == Some(id.as_str())
        })
        .unwrap();
    let topics: Vec<&str> = events
        .seen()
        .iter()
        .filter(|e| e.container_id() == Some(id.as_str()))
        .map(|e| e.topic.as_str())
        .collect();
    for topic in ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"] {
        assert!(topics.contains(&topic), "no {topic} for {id}: {topics:?}");
    }
    assert_clean(&containerd, &id);
}

#[test]
fn a_killed_shim_takes_its_container_with_it() {
    require_integration!();
    let containerd = start();
    let id = ids::container_id("shim-killed");
    let task = start_spinning(&containerd, &id);
    let shims: Vec<i32> = containerd
        .shim_processes()
        .into_iter()
        .filter(|p| p.has_flag_value("-id", &id))
        .map(|p| p.pid)
        .collect();
    assert_eq!(shims.len(), 1, "one shim serves {id}: {shims:?}");

    let mut events = wasmbox_integration::EventStream::start(&containerd, Duration::from_secs(10)).unwrap();
    kill_and_wait(&shims, Duration::from_secs(10)).unwrap();
    // The exit containerd publishes is the `delete` action's answer: SIGKILL's 137, never an
    // empty answer read as 0.
    let exit = events.wait_exit(&id, Duration::from_secs(30)).unwrap();
    assert_eq!(exit.exit_status(), Some(137), "{exit:?}");
    // containerd notices the dead shim, runs its `delete` action and reaps the task.
    wasmbox_integration::poll::wait_until("the container's process to die", Duration::from_secs(30), || {
        (!is_alive(task.pid as i32)).then_some(())
    })
    .unwrap();
    // containerd then drops the task (or shows it STOPPED, depending on the version).
    wasmbox_integration::poll::wait_until("containerd to see the task gone", Duration::from_secs(30), || {
        match containerd.task(&id) {
            Ok(None) => Some(()),
            Ok(Some(t)) if t.status == "STOPPED" => Some(()),
            _ => None,
        }
    })
    .unwrap();
    let _ = containerd.delete_task(&id);
    containerd.delete_container(&id).unwrap();
    assert_clean(&containerd, &id);
}
