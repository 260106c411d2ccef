//! Checks of the fixture itself, valid whatever the state of the wasm shim: a native image under
//! runc, image import of the wasm images, and the detached/restart/kill machinery under runc.

use std::time::Duration;

use wasmbox_integration::settings::{RUNC_RUNTIME, RUNC_SHIM_BINARY};
use wasmbox_integration::{
    guests, ids, image, leftovers, require_integration, Containerd, EventStream, RunSpec,
};

#[test]
fn fixture_runs_a_native_image_under_runc() {
    require_integration!();
    let containerd = Containerd::start().unwrap();
    let elf = guests::native_hello().unwrap();
    let image = containerd
        .import_image(image::native_image(&ids::image_ref("native"), &elf))
        .unwrap();
    let id = ids::container_id("runc-native");

    let out = containerd
        .run(&RunSpec::new(&image, &id).runtime(RUNC_RUNTIME))
        .unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from native\n");
    leftovers::assert_none_for(&containerd, &id, RUNC_SHIM_BINARY).unwrap();
}

#[test]
fn wasm_under_runc_is_an_exec_format_error() {
    require_integration!();
    let containerd = Containerd::start().unwrap();
    let module = guests::hello().unwrap();
    let image = containerd
        .import_image(image::compat_image(&ids::image_ref("runc-wasm"), &module))
        .unwrap();
    let id = ids::container_id("runc-wasm");

    let out = containerd
        .run(&RunSpec::new(&image, &id).runtime(RUNC_RUNTIME))
        .unwrap();

    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("exec format error"), "{out:?}");
    // ctr run --rm does not remove a container whose task never started.
    let _ = containerd.ctr(["container", "delete", id.as_str()]);
    leftovers::assert_none_for(&containerd, &id, RUNC_SHIM_BINARY).unwrap();
}

#[test]
fn wasm_images_import_and_list() {
    require_integration!();
    let containerd = Containerd::start().unwrap();
    let compat = [
        ("hello", guests::hello().unwrap()),
        ("spin", guests::spin().unwrap()),
        ("args-env", guests::args_env().unwrap()),
        ("component", guests::component_hello().unwrap()),
    ];
    let mut expected = Vec::new();
    for (name, module) in &compat {
        expected.push(
            containerd
                .import_image(image::compat_image(&ids::image_ref(name), module))
                .unwrap(),
        );
    }
    // A wasi/wasm image is not for the host platform: import needs --all-platforms.
    let wasi_ref = ids::image_ref("wasi-platform");
    let wasi = image::compat_image(&wasi_ref, &guests::hello().unwrap())
        .platform("wasi", "wasm")
        .build()
        .unwrap();
    let tar = containerd.paths().work.join("wasi.tar");
    wasi.write_tar_file(&tar).unwrap();
    containerd.import_with(&tar, &["--all-platforms"]).unwrap();
    expected.push(wasi_ref);

    let names = containerd.image_names().unwrap();
    for reference in &expected {
        assert!(
            names.contains(reference),
            "{reference} missing from {names:?}"
        );
    }
    let listing = containerd.ctr_ok(["image", "ls"]).unwrap();
    assert!(listing.contains("linux/amd64"), "{listing}");
    assert!(listing.contains("wasi/wasm"), "{listing}");
}

#[test]
fn runc_task_survives_containerd_restart_and_is_killed() {
    require_integration!();
    let containerd = Containerd::start().unwrap();
    let elf = guests::native_wait().unwrap();
    let image = containerd
        .import_image(image::native_image(&ids::image_ref("native-wait"), &elf))
        .unwrap();
    let id = ids::container_id("runc-restart");

    containerd
        .run_detached(&RunSpec::new(&image, &id).runtime(RUNC_RUNTIME))
        .unwrap();
    let before = containerd
        .wait_task_status(&id, "RUNNING", Duration::from_secs(30))
        .unwrap();
    let ps = containerd.ctr_ok(["task", "ps", id.as_str()]).unwrap();
    assert!(ps.contains(&before.pid.to_string()), "{ps}");
    let metrics = containerd.ctr_ok(["task", "metrics", id.as_str()]).unwrap();
    assert!(metrics.contains("METRIC"), "{metrics}");
    // The leftover detector must see a live container, or its "nothing left" means nothing.
    let live = leftovers::find(&containerd, &id, RUNC_SHIM_BINARY);
    for kind in [
        "mount ",
        "cgroup ",
        "shim process ",
        "shim socket ",
        "bundle dir ",
    ] {
        assert!(
            live.iter().any(|l| l.starts_with(kind)),
            "no {kind}in {live:#?}"
        );
    }

    containerd.restart().unwrap();
    let after = containerd
        .wait_task_status(&id, "RUNNING", Duration::from_secs(30))
        .unwrap();
    assert_eq!(after.pid, before.pid);

    let mut events = EventStream::start(&containerd, Duration::from_secs(10)).unwrap();
    containerd.kill_task(&id, "SIGKILL").unwrap();
    let exit = events.wait_exit(&id, Duration::from_secs(10)).unwrap();
    assert_eq!(exit.exit_status(), Some(137), "{exit:?}");
    containerd
        .wait_task_status(&id, "STOPPED", Duration::from_secs(10))
        .unwrap();

    containerd.delete_container(&id).unwrap();
    leftovers::assert_none_for(&containerd, &id, RUNC_SHIM_BINARY).unwrap();
}
