//! The sharing and caching machinery under bursts, faults and hostile input: starts racing
//! shims that leave, many first starts of one module, a compile cache that cannot be written,
//! and values too long to quote.

use std::time::Duration;

use wasmbox_integration::mounts::Tmpfs;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::suite::{assert_clean, config_file, import_compat, run_to_end, START_TIMEOUT};
use wasmbox_integration::{guests, ids, require_integration, shim_socket, Containerd, FixtureOptions, RunOutput, RunSpec};

/// What the hello guest prints.
const HELLO: &str = "hello from wasm";
/// ttrpc's limit on one message: an error past it reaches the user as a size complaint.
const TTRPC_MAX: usize = 4 << 20;

/// Runs `n` containers of `image` at once (`ctr run --rm`), each to its end.
fn run_at_once(containerd: &Containerd, image: &str, name: &str, n: usize) -> Vec<(String, RunOutput)> {
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..n)
            .map(|_| {
                let id = ids::container_id(name);
                s.spawn(move || {
                    let out = containerd.run(&RunSpec::new(image, &id)).unwrap_or_else(|e| panic!("ctr run {id}: {e:#}"));
                    (id, out)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("a run's thread")).collect()
    })
}

fn start_with_env(env: &[(&str, &str)]) -> Containerd {
    Containerd::start_with(FixtureOptions {
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..FixtureOptions::default()
    })
    .unwrap_or_else(|e| panic!("starting a private containerd: {e:#}"))
}

/// Twenty `ctr run --rm` at once, round after round: shared shims fill, empty and leave while
/// starts look for one (a leaving shim's name is taken again at once). Every start must run,
/// whichever shim it lands on; nothing is left.
#[test]
fn starts_racing_leaving_shared_shims_all_run() {
    require_integration!();
    let containerd = wasmbox_integration::suite::start();
    let image = import_compat(&containerd, "race-hello", &guests::hello().unwrap());
    for round in 0..6 {
        for (id, out) in run_at_once(&containerd, &image, "race", 20) {
            assert!(
                out.code == 0 && out.stdout.contains(HELLO),
                "round {round}: {id}: {out:?}\n{}",
                containerd.log_lines_mentioning(&id)
            );
        }
    }
    for id in containerd.tracked_ids() {
        assert_clean(&containerd, &id);
    }
}

/// A Deployment scaled up on a node: twenty first starts of one new module at once compile it
/// once (in whichever shim), the others wait for that compile and load its artifact.
#[test]
fn first_starts_of_one_module_at_once_compile_it_once() {
    require_integration!();
    let containerd = wasmbox_integration::suite::start();
    // The fixture's cache is its own: the module is new to it.
    let module = guests::hello().unwrap();
    let image = import_compat(&containerd, "once-hello", &module);
    for (id, out) in run_at_once(&containerd, &image, "once", 20) {
        assert!(out.code == 0 && out.stdout.contains(HELLO), "{id}: {out:?}");
        assert_clean(&containerd, &id);
    }
    let compiles = containerd.log_lines_mentioning("compiled /app.wasm");
    assert_eq!(compiles.lines().count(), 1, "one compile of the module:\n{compiles}");
    let trampolines = containerd.log_lines_mentioning("compiled the WASI trampoline");
    assert_eq!(trampolines.lines().count(), 1, "one compile of the trampoline:\n{trampolines}");
}

/// Runs a hello, then two idle containers (sharing a shim), with the cache at `cache`; checks
/// they run, and that the idle containers' shim said why the cache is unusable once for both.
fn runs_without_a_writable_cache(cache: &std::path::Path, cause: &str) {
    let containerd = start_with_env(&[("WASMBOX_CACHE_DIR", &cache.display().to_string())]);
    let hello = import_compat(&containerd, "nocache-hello", &guests::hello().unwrap());
    let out = run_to_end(&containerd, &RunSpec::new(&hello, &ids::container_id("nocache-hello")));
    assert!(out.code == 0 && out.stdout.contains(HELLO), "{out:?}\n{}", containerd.log_tail(30));
    let warnings = || containerd.log_lines_mentioning("cannot be written").lines().filter(|l| l.contains(cause)).count();
    let before = wait_until("the hello's shim to say why", Duration::from_secs(10), || {
        let n = warnings();
        (n > 0).then_some(n)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_tail(30)));

    let idle = import_compat(&containerd, "nocache-idle", &guests::idle().unwrap());
    let started: Vec<String> = (0..2)
        .map(|_| {
            let id = ids::container_id("nocache-idle");
            containerd.run_detached(&RunSpec::new(&idle, &id)).unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_tail(30)));
            containerd.wait_task_status(&id, "RUNNING", START_TIMEOUT).unwrap();
            id
        })
        .collect();
    let socket_of = |id: &str| shim_socket::of_bundle(&containerd.paths().bundle(containerd.namespace(), id));
    assert_eq!(socket_of(&started[0]), socket_of(&started[1]), "the two share a shim");
    wait_until("the idle containers' shim to say why", Duration::from_secs(10), || (warnings() > before).then_some(()))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_tail(30)));
    // Both starts (two compiles, the module and the trampoline, in the first): one line.
    assert_eq!(warnings(), before + 1, "{}", containerd.log_lines_mentioning("cannot be written"));
    // Leftover checks look at the whole fixture: remove both before checking.
    for id in &started {
        containerd.kill_task(id, "SIGKILL").unwrap();
        containerd.wait_task_status(id, "STOPPED", Duration::from_secs(10)).unwrap();
        containerd.delete_container(id).unwrap();
    }
    for id in &started {
        assert_clean(&containerd, id);
    }
}

/// The compile cache is an optimization: on a full disk every wasm container still starts
/// (compiled in memory), and the log says why the cache is not used, once per shim.
#[test]
fn a_full_compile_cache_does_not_stop_containers() {
    require_integration!();
    let tmpfs = Tmpfs::mount(256 << 10).unwrap_or_else(|e| panic!("{e:#}"));
    let cache = tmpfs.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    tmpfs.fill().unwrap();
    runs_without_a_writable_cache(&cache, "No space left on device");
}

/// The same on a read-only filesystem where the cache directory cannot even be made.
#[test]
fn a_read_only_compile_cache_does_not_stop_containers() {
    require_integration!();
    let tmpfs = Tmpfs::mount(1 << 20).unwrap_or_else(|e| panic!("{e:#}"));
    tmpfs.remount_read_only().unwrap_or_else(|e| panic!("{e:#}"));
    runs_without_a_writable_cache(&tmpfs.path().join("cache"), "Read-only file system");
}

/// Fails unless the failed run `out` printed an error naming every one of `names`, short
/// enough for a ttrpc message, that quotes only a prefix of the long value.
fn assert_short_error(out: &RunOutput, names: &[&str], long: usize) {
    assert_ne!(out.code, 0, "{out:?}");
    let shown = &out.stderr[..out.stderr.len().min(2000)];
    for name in names {
        assert!(out.stderr.contains(name), "the error should name {name}: {shown}");
    }
    assert!(out.stderr.contains(&format!("({long} bytes)")), "the error should say how long the value was: {shown}");
    assert!(out.stderr.len() < 16 << 10, "the error quotes the whole value ({} bytes): {shown}", out.stderr.len());
    assert!(!out.stderr.contains("exceed maximum message size"), "{shown}");
}

/// A value far longer than any error should quote: a 3 MiB operator-config value and a
/// 100 KiB annotation each fail Create with a short error naming the file or annotation and
/// the key, and say how long the value was.
#[test]
fn errors_quote_only_a_prefix_of_long_values() {
    require_integration!();
    let containerd = wasmbox_integration::suite::start();
    let hello = import_compat(&containerd, "long-hello", &guests::hello().unwrap());
    let long = 3 << 20;
    assert!(long < TTRPC_MAX && 2 * long > TTRPC_MAX, "a value whose quote twice would not fit");
    let value = "x".repeat(long);

    let config = config_file(&containerd, "long-value", &format!("[limits]\ndefault_timeout = \"{value}\"\n"));
    let spec = RunSpec::new(&hello, &ids::container_id("long-config"))
        .flag(&format!("--runtime-config-path={}", config.display()));
    let out = run_to_end(&containerd, &spec);
    assert_short_error(&out, &[&config.display().to_string(), "limits.default_timeout"], long);

    // A value that breaks the file's syntax: the parser's message must not quote the line.
    let broken = config_file(&containerd, "long-syntax", &format!("[limits]\ndefault_timeout = \"{value}\n"));
    let spec = RunSpec::new(&hello, &ids::container_id("long-syntax"))
        .flag(&format!("--runtime-config-path={}", broken.display()));
    let out = run_to_end(&containerd, &spec);
    assert_ne!(out.code, 0, "{:?}", &out.stderr[..out.stderr.len().min(2000)]);
    assert!(out.stderr.contains(&broken.display().to_string()) && out.stderr.contains("line 2"), "{:?}", &out.stderr[..out.stderr.len().min(2000)]);
    assert!(out.stderr.len() < 16 << 10, "{} bytes of error", out.stderr.len());

    let annotation = "y".repeat(100 << 10);
    let spec = RunSpec::new(&hello, &ids::container_id("long-annotation"))
        .flag(&format!("--annotation=wasmbox.dev/timeout={annotation}"));
    let out = run_to_end(&containerd, &spec);
    assert_short_error(&out, &["wasmbox.dev/timeout"], annotation.len());

    // The shim log carries the same short line.
    let logged = wait_until("the shim's error line", Duration::from_secs(10), || {
        let lines = containerd.log_lines_mentioning("limits.default_timeout");
        (!lines.is_empty()).then_some(lines)
    })
    .unwrap();
    assert!(logged.len() < 64 << 10, "{} bytes of log", logged.len());
}

/// How long a Create held at its compile may take to show that it waits.
const HELD: Duration = Duration::from_secs(60);

/// `ctr run -d` of `image` as container `id`, as a child process (it outlives a containerd
/// restart), its Create held at the module's compile (see `Containerd::hold_compile`).
fn start_held_create(containerd: &Containerd, image: &str, id: &str, ctr_flags: &[&str]) -> std::process::Child {
    containerd.track(id);
    // This Create's line, not an earlier one's.
    const WAITING: &str = "waiting for the compile under way";
    let before = containerd.log_lines_mentioning(WAITING).lines().count();
    let mut cmd = containerd.ctr_command();
    cmd.args(ctr_flags)
        .args(["run", "-d", "--null-io", "--runtime", wasmbox_integration::settings::WASMBOX_RUNTIME, image, id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("ctr run -d");
    wait_until("the Create to wait for the held compile", HELD, || {
        let created = !containerd.log_lines_mentioning(&format!("create {id} ")).is_empty();
        (created && containerd.log_lines_mentioning(WAITING).lines().count() > before).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", containerd.log_tail(40)));
    child
}

/// Fails unless nothing is left of `id`, and no shim of this containerd runs.
fn assert_nothing_left(containerd: &Containerd, id: &str) {
    assert_clean(containerd, id);
    wait_until("every shim to exit", Duration::from_secs(20), || containerd.shim_processes().is_empty().then_some(()))
        .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", containerd.shim_processes(), containerd.log_tail(40)));
}

/// A Create held at its compile, given up by containerd (`restart`: containerd restarted under
/// it; else `ctr_flags` give it a deadline), then the container deleted (as CRI does after a
/// failed create): the Create, once its compile ends, undoes itself and the shim exits.
fn a_given_up_create_leaves_nothing(name: &str, ctr_flags: &[&str], restart: bool) {
    let containerd = wasmbox_integration::suite::start();
    let wasm = guests::idle().unwrap();
    let image = import_compat(&containerd, name, &wasm);
    let held = containerd.hold_compile(&image, &wasm).unwrap_or_else(|e| panic!("{e:#}"));
    let id = ids::container_id(name);
    let run = start_held_create(&containerd, &image, &id, ctr_flags);
    if restart {
        containerd.restart().unwrap_or_else(|e| panic!("{e:#}"));
    }
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success(), "the run's Create was given up: {out:?}");
    // ctr may find it gone already.
    let _ = containerd.delete_container(&id);
    // The Create goes on, finds itself given up and undoes itself (its log may no longer
    // reach containerd, which stopped reading it): what is left says whether it did.
    drop(held);
    assert_nothing_left(&containerd, &id);
}

/// containerd restarted while a Create compiles: nothing is left, processes, mounts, cgroups,
/// sockets, bundle.
#[test]
fn containerd_restarted_during_a_create_then_the_container_deleted_leaves_nothing() {
    require_integration!();
    a_given_up_create_leaves_nothing("abandon-restart", &[], true);
}

/// A Create past its deadline (a client's timeout; kubelet's is two minutes, and a first
/// compile of a large module can take longer): containerd gives it up and deletes what it
/// knows of; the Create undoes itself when its compile ends.
#[test]
fn a_create_past_its_deadline_undoes_itself() {
    require_integration!();
    a_given_up_create_leaves_nothing("abandon-deadline", &["--timeout", "3s"], false);
}

/// `n` execs at once of `/args.wasm TOKEN` into container `id`, each token's line checked.
fn execs_at_once(containerd: &Containerd, id: &str, prefix: &str, n: usize) {
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..n)
            .map(|i| {
                let exec_id = format!("{prefix}-{i}");
                s.spawn(move || {
                    let out = containerd
                        .ctr(["task", "exec", "--exec-id", &exec_id, id, "/args.wasm", &exec_id])
                        .unwrap_or_else(|e| panic!("{e:#}"));
                    (exec_id, out)
                })
            })
            .collect();
        for run in runs {
            let (exec_id, out) = run.join().unwrap();
            assert_eq!(out.code(), 0, "{exec_id}: {}", out.stderr_text());
            assert!(out.stdout_text().contains(&format!("arg[1]={exec_id}\n")), "{exec_id}: {:?}", out.stdout_text());
        }
    });
}

/// Everything above in one containerd, round after round: bursts of runs (output, exit codes,
/// traps), execs at once with their output checked, containerd restarted under a running
/// container, a Create given up in a restart. Once all is removed nothing is left: no shim,
/// mount, cgroup, socket or name lock, bundle, FIFO.
#[test]
fn a_soak_of_bursts_execs_restarts_and_given_up_creates_leaks_nothing() {
    require_integration!();
    let containerd = wasmbox_integration::suite::start();
    let hello = import_compat(&containerd, "soak-hello", &guests::hello().unwrap());
    let trap = import_compat(&containerd, "soak-trap", &guests::trap().unwrap());
    let idle = containerd
        .import_image(
            wasmbox_integration::image::compat_image(&ids::image_ref("soak-idle"), &guests::idle().unwrap())
                .file("/args.wasm", guests::args_env().unwrap().to_vec(), 0o644),
        )
        .unwrap();
    for round in 0..3 {
        std::thread::scope(|s| {
            let hellos = s.spawn(|| run_at_once(&containerd, &hello, "soak-hello", 8));
            let traps = run_at_once(&containerd, &trap, "soak-trap", 4);
            for (id, out) in hellos.join().unwrap() {
                assert!(out.code == 0 && out.stdout.contains(HELLO), "round {round}: {id}: {out:?}");
            }
            for (id, out) in traps {
                assert_eq!(out.code, 134, "round {round}: {id}: {out:?}");
            }
        });
        let id = ids::container_id("soak-idle");
        containerd.run_detached(&RunSpec::new(&idle, &id)).unwrap();
        let before = containerd.wait_task_status(&id, "RUNNING", START_TIMEOUT).unwrap();
        execs_at_once(&containerd, &id, &format!("r{round}a"), 10);
        containerd.restart().unwrap_or_else(|e| panic!("{e:#}"));
        let after = containerd.wait_task_status(&id, "RUNNING", START_TIMEOUT).unwrap();
        assert_eq!(before.pid, after.pid, "the container runs on across the restart");
        execs_at_once(&containerd, &id, &format!("r{round}b"), 10);
        containerd.kill_task(&id, "SIGKILL").unwrap();
        containerd.wait_task_status(&id, "STOPPED", Duration::from_secs(10)).unwrap();
        containerd.delete_container(&id).unwrap();

        // A Create given up in a restart.
        let given_up = import_compat(&containerd, &format!("soak-given-up-{round}"), &guests::idle().unwrap());
        let held = containerd.hold_compile(&given_up, &guests::idle().unwrap()).unwrap_or_else(|e| panic!("{e:#}"));
        let id = ids::container_id("soak-given-up");
        let run = start_held_create(&containerd, &given_up, &id, &[]);
        containerd.restart().unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!run.wait_with_output().unwrap().status.success());
        let _ = containerd.delete_container(&id);
        drop(held);
        assert_nothing_left(&containerd, &id);
    }
    for id in containerd.tracked_ids() {
        assert_clean(&containerd, &id);
    }
    let fifos: Vec<_> = std::fs::read_dir(&containerd.paths().fifo).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(fifos.is_empty(), "FIFOs left: {fifos:?}");
}
