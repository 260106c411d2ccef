//! Compiling at pull time (crates/wasmbox-shim/src/precompile/): `precompile IMAGE` and the
//! `precompile --watch` daemon put an image's artifact in the node's compile cache before its
//! first container starts, which is then a cache hit: the shim compiles nothing.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use wasmbox_integration::config::CRI_WASMBOX_HANDLER;
use wasmbox_integration::cri::api::ContainerState;
use wasmbox_integration::cri::{self, Cri, Pod};
use wasmbox_integration::image::{self, WASM_PATH};
use wasmbox_integration::process::KillOnDrop;
use wasmbox_integration::registry::Registry;
use wasmbox_integration::suite::{assert_clean, cache_artifacts, import_compat, start_tiering_everything};
use wasmbox_integration::{guests, ids, require_integration, Containerd};

const COMPILE: Duration = Duration::from_secs(120);
/// What the shim logs when it compiles the container's module, or the WASI trampoline.
const SHIM_COMPILED: [&str; 2] = ["compiled /app.wasm", "compiled the WASI trampoline"];
const STARTED_ON_BASELINE: &str = "started on the baseline tier";

/// Fails the test if the shim compiled anything (the first start found its artifacts).
fn assert_shim_compiled_nothing(containerd: &Containerd) {
    for needle in SHIM_COMPILED.iter().chain([&STARTED_ON_BASELINE]) {
        assert_eq!(containerd.log_lines_mentioning(needle), "", "the first start found its artifacts");
    }
    assert!(containerd.background_compiles().is_empty());
}

/// Runs the files guest of `image` and checks that the shim compiled nothing for it.
fn run_without_compiling(containerd: &Containerd, image: &str, test: &str) {
    let id = ids::container_id(test);
    let out = containerd.run_rm(image, &id, &[WASM_PATH, "/tmp/note.txt"]).unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "read back: written by the files guest\n");
    assert_shim_compiled_nothing(containerd);
    assert_clean(containerd, &id);
}

const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

/// A process's scheduling policy (field 41 of /proc/PID/stat).
fn sched_policy(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (in parentheses, which may hold spaces) start at field 3.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(41 - 3).unwrap().parse().unwrap()
}

#[test]
fn a_named_image_is_compiled_and_its_first_start_compiles_nothing() {
    require_integration!();
    let containerd = start_tiering_everything();
    let wasm = guests::files().unwrap();
    let image = import_compat(&containerd, "precompiled", &wasm);

    let out = containerd.precompile(&[&image], COMPILE).unwrap();

    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout_text().contains(&format!("{image}: compiled /app.wasm")), "{out:?}");
    assert_eq!(cache_artifacts(&containerd, None).len(), 2, "the module's and the WASI trampoline's");
    let again = containerd.precompile(&[&image], COMPILE).unwrap();
    assert!(again.stdout_text().contains("is compiled already"), "{again:?}");
    run_without_compiling(&containerd, &image, "precompiled");
}

/// WASI 0.3 components go the same ways as 0.2 ones: a first start with no artifact compiles
/// it (with Cranelift: components are not tiered, see docs/architecture.md), and an image
/// compiled at pull time starts compiling nothing.
#[test]
fn a_wasi_0_3_component_is_compiled_at_its_first_start_or_at_pull_time() {
    require_integration!();
    let containerd = start_tiering_everything();
    let wasm = guests::p3_args().unwrap();
    let id = ids::container_id("p3-first");
    let image = import_compat(&containerd, "p3-first", &wasm);
    let out = containerd.run_rm(&image, &id, &[WASM_PATH, "x"]).unwrap();
    assert_eq!((out.code, out.stdout.as_str()), (2, "hello from wasi 0.3\n/app.wasm\nx\n"), "{out:?}");
    assert_ne!(containerd.log_lines_mentioning(SHIM_COMPILED[0]), "", "the first start compiled it");
    assert_eq!(containerd.log_lines_mentioning(STARTED_ON_BASELINE), "", "components are not tiered");
    assert_clean(&containerd, &id);

    let containerd = start_tiering_everything();
    let image = import_compat(&containerd, "p3-precompiled", &wasm);
    let out = containerd.precompile(&[&image], COMPILE).unwrap();
    assert!(out.status.success() && out.stdout_text().contains(&format!("{image}: compiled /app.wasm")), "{out:?}");
    let id = ids::container_id("p3-precompiled");
    let out = containerd.run_rm(&image, &id, &[WASM_PATH]).unwrap();
    assert_eq!((out.code, out.stdout.as_str()), (1, "hello from wasi 0.3\n/app.wasm\n"), "{out:?}");
    assert_shim_compiled_nothing(&containerd);
    assert_clean(&containerd, &id);
}

#[test]
fn images_without_wasm_are_left_alone_and_a_missing_one_is_an_error() {
    require_integration!();
    let containerd = Containerd::start().unwrap();
    let native = containerd
        .import_image(image::native_image(&ids::image_ref("precompile-native"), &guests::native_hello().unwrap()))
        .unwrap();
    let missing = ids::image_ref("precompile-missing");

    let out = containerd.precompile(&[&native], COMPILE).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout_text().contains("nothing to compile"), "{out:?}");
    let out = containerd.precompile(&[&missing], COMPILE).unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr_text().contains(&missing) && out.stderr_text().contains("not found"), "{out:?}");
    assert!(cache_artifacts(&containerd, None).is_empty());
}

#[test]
fn the_watcher_compiles_each_image_pulled_and_goes_on_after_a_bad_one() {
    require_integration!();
    let containerd = start_tiering_everything();
    let present = import_compat(&containerd, "watch-present", &guests::hello().unwrap());
    let mut watcher = containerd.watch_images().unwrap();
    // Images already on the node first, then events.
    watcher.wait_for_line(&format!("{present}: compiled"), COMPILE).unwrap();
    watcher.wait_for_line("watching containerd", COMPILE).unwrap();

    let bad = import_compat(&containerd, "watch-bad", b"\0asm\x01\0\0\0not a valid module");
    let native = containerd
        .import_image(image::native_image(&ids::image_ref("watch-native"), &guests::native_hello().unwrap()))
        .unwrap();
    let image = import_compat(&containerd, "watch-pulled", &guests::files().unwrap());

    let line = watcher.wait_for_line(&format!("{image}: compiled"), COMPILE).unwrap();
    assert!(line.contains("/app.wasm"), "{line}");
    let log = watcher.log();
    assert!(log.lines().any(|l| l.contains(&bad) && l.contains("warn")), "the bad image is reported:\n{log}");
    assert!(log.lines().any(|l| l.contains(&native) && l.contains("not a wasm image")), "{log}");
    assert!(watcher.is_running());
    run_without_compiling(&containerd, &image, "watch-pulled");
}

#[test]
fn an_image_pulled_from_a_registry_is_compiled_before_its_first_start() {
    require_integration!();
    let containerd = start_tiering_everything();
    let registry = Registry::start().unwrap();
    let reference = registry.reference("wasmbox/precompiled:v1");
    containerd.import_image(image::compat_image(&reference, &guests::files().unwrap())).unwrap();
    containerd.ctr_ok(["image", "push", "--plain-http", &reference]).unwrap();
    containerd.ctr_ok(["image", "rm", "--sync", &reference]).unwrap();
    let mut watcher = containerd.watch_images().unwrap();
    watcher.wait_for_line("watching containerd", COMPILE).unwrap();

    containerd.ctr_ok(["image", "pull", "--plain-http", &reference]).unwrap();

    watcher.wait_for_line(&format!("{reference}: compiled"), COMPILE).unwrap();
    run_without_compiling(&containerd, &reference, "precompile-pulled");
}

/// containerd restarts (an upgrade, a config change): the watcher connects again and sees the
/// images pulled after.
#[test]
fn the_watcher_follows_a_containerd_restart() {
    require_integration!();
    let containerd = Containerd::start().unwrap();
    let mut watcher = containerd.watch_images().unwrap();
    watcher.wait_for_line("watching containerd", COMPILE).unwrap();

    containerd.restart().unwrap();
    let image = import_compat(&containerd, "watch-restart", &guests::files().unwrap());

    watcher.wait_for_line(&format!("{image}: compiled"), COMPILE).unwrap();
    assert!(watcher.is_running());
    run_without_compiling(&containerd, &image, "watch-restart");
}

/// Kubelet's path: an image CRI holds (namespace k8s.io) is compiled by the watcher, and a
/// pod's container of it starts without compiling.
#[test]
fn a_cri_image_is_compiled_before_its_pod_starts() {
    require_integration!();
    let containerd = cri::start().unwrap_or_else(|e| panic!("starting containerd with CRI: {e:#}"));
    let cri = Cri::connect(&containerd).unwrap();
    let mut watcher = containerd.watch_images().unwrap();
    watcher.wait_for_line("watching containerd", COMPILE).unwrap();
    let hello = cri::import_image(&containerd, image::compat_image(&ids::image_ref("cri-precompiled"), &guests::hello().unwrap()))
        .unwrap();
    watcher.wait_for_line(&format!("k8s.io/{hello}: compiled"), COMPILE).unwrap();

    let mut pod = Pod::run(&cri, &containerd, "cri-precompiled", CRI_WASMBOX_HANDLER).unwrap();
    let id = pod.create_container(&cri::container_config("hello", &hello)).unwrap();
    cri.start_container(&id).unwrap();
    let exited = cri.wait_container_state(&id, ContainerState::ContainerExited, COMPILE).unwrap();

    assert_eq!(exited.exit_code, 0, "{exited:?}\n{}", containerd.log_lines_mentioning(&id));
    assert_shim_compiled_nothing(&containerd);
    // It runs the shim's binary on containerd's socket: not a leftover of the pod.
    drop(watcher);
    pod.stop_and_remove().unwrap();
    pod.assert_nothing_left().unwrap();
}

/// A start that finds its module being compiled elsewhere waits for that compile rather than
/// compile it a second time. The test holds the module's compile lock itself, so the order
/// of events is fixed: the start waits while it is held and goes on when it is released.
#[test]
fn a_start_waits_for_the_compile_under_way() {
    require_integration!();
    let containerd = Containerd::start().unwrap();
    let wasm = guests::files().unwrap();
    let image = import_compat(&containerd, "precompile-wait", &wasm);
    let mut held = containerd.hold_compile(&image, &wasm).unwrap_or_else(|e| panic!("{e:#}")).lock;
    // The lock names its holder, which the waiting start raises from SCHED_IDLE: a stand-in.
    let compile = KillOnDrop(Command::new("chrt").args(["--idle", "0", "sleep", "600"]).spawn().unwrap());
    write!(*held, "{}", compile.0.id()).unwrap();
    wasmbox_integration::poll::wait_until("chrt to set SCHED_IDLE", COMPILE, || {
        (sched_policy(compile.0.id()) == SCHED_IDLE).then_some(())
    })
    .unwrap();

    let id = ids::container_id("precompile-wait");
    std::thread::scope(|s| {
        let run = s.spawn(|| containerd.run_rm(&image, &id, &[WASM_PATH, "/tmp/note.txt"]).unwrap());
        wasmbox_integration::poll::wait_until("the start to wait for the compile", COMPILE, || {
            (!containerd.log_lines_mentioning("waiting for the compile under way").is_empty()).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", containerd.log_tail(40)));
        assert!(!run.is_finished(), "the start goes on only when the compile ends");
        assert_eq!(sched_policy(compile.0.id()), SCHED_OTHER, "the compile waited for runs at normal priority");
        drop(held);
        let out = run.join().unwrap();
        assert_eq!(out.code, 0, "{out:?}");
    });

    drop(compile);
    assert!(!containerd.log_lines_mentioning("the compile under way ended").is_empty());
    // Nobody made it meanwhile: the start compiled it itself.
    assert!(!containerd.log_lines_mentioning("compiled /app.wasm").is_empty());
    assert_clean(&containerd, &id);
}
