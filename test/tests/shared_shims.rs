//! Containers outside pods share shims, up to the operator's `shim.containers_per_shim`: what
//! a shared shim must keep (each container's own lifecycle and log lines, no leftovers) and
//! what it costs when it dies (every container it serves).

use std::path::PathBuf;
use std::time::Duration;

use wasmbox_integration::containerd::Containerd;
use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::{is_alive, kill_and_wait, run_ok};
use wasmbox_integration::suite::{assert_clean, config_file, import_compat, start, START_TIMEOUT};
use wasmbox_integration::{guests, ids, require_integration, settings, shim_socket};

/// Starts `n` idle wasm containers (with `flags`); returns their ids and task pids.
fn start_idle(containerd: &Containerd, name: &str, n: usize, flags: &[String]) -> Vec<(String, u32)> {
    let image = import_compat(containerd, "idle", &guests::idle().unwrap());
    (0..n)
        .map(|_| {
            let id = ids::container_id(name);
            let spec = flags.iter().fold(RunSpec::new(&image, &id), |s, f| s.flag(f));
            containerd
                .run_detached(&spec)
                .unwrap_or_else(|e| panic!("ctr run -d {id}: {e:#}\n{}", containerd.log_tail(30)));
            let task = containerd.wait_task_status(&id, "RUNNING", START_TIMEOUT).unwrap();
            (id, task.pid)
        })
        .collect()
}

/// The socket of the shim serving `id`, as containerd has it (the bundle's `address` file).
fn shim_socket_of(containerd: &Containerd, id: &str) -> PathBuf {
    let bundle = containerd.paths().bundle(containerd.namespace(), id);
    shim_socket::of_bundle(&bundle).unwrap_or_else(|| panic!("no address file in {}", bundle.display()))
}

/// Serving shims of this containerd (their zygotes renamed themselves).
fn shims(containerd: &Containerd) -> Vec<i32> {
    containerd.shim_processes().into_iter().map(|p| p.pid).collect()
}

/// Kills and deletes every container in `ids`, then fails the test if anything is left of any
/// (leftover checks look at the whole fixture, so they wait until all are gone).
fn remove_all<'a>(containerd: &Containerd, ids: impl IntoIterator<Item = &'a String>) {
    let ids: Vec<&String> = ids.into_iter().collect();
    for id in &ids {
        stop(containerd, id, "SIGKILL");
    }
    for id in ids {
        assert_clean(containerd, id);
    }
}

/// Signals task `id`, waits until it is stopped and deletes the container.
fn stop(containerd: &Containerd, id: &str, signal: &str) {
    containerd.kill_task(id, signal).unwrap();
    containerd.wait_task_status(id, "STOPPED", Duration::from_secs(10)).unwrap();
    containerd.delete_container(id).unwrap();
}

fn limit_flag(containerd: &Containerd, limit: usize) -> String {
    let config = config_file(containerd, "per-shim", &format!("[shim]\ncontainers_per_shim = {limit}\n"));
    format!("--runtime-config-path={}", config.display())
}

#[test]
fn containers_share_shims_up_to_the_limit_and_each_keeps_its_own_lifecycle_and_log() {
    require_integration!();
    let containerd = start();
    let flag = limit_flag(&containerd, 2);
    let started = start_idle(&containerd, "shared", 3, std::slice::from_ref(&flag));
    let socket: Vec<PathBuf> = started.iter().map(|(id, _)| shim_socket_of(&containerd, id)).collect();
    assert_eq!(socket[0], socket[1], "the first two containers share a shim");
    assert_ne!(socket[1], socket[2], "the third finds the first shim full");
    assert_eq!(shims(&containerd).len(), 2, "{:?}", containerd.shim_processes());

    // The first container's bundle held the shim log; once it is gone, the shim's lines about
    // the second still reach containerd's log.
    let (first, second) = (&started[0].0, &started[1].0);
    stop(&containerd, first, "SIGKILL");
    assert!(socket[0].exists(), "the shared shim still serves {second}");
    stop(&containerd, second, "SIGTERM");
    let logged = wait_until("the shim's log line about the second container", Duration::from_secs(10), || {
        containerd.log().contains(&format!("delete {second}")).then_some(())
    });
    assert!(logged.is_ok(), "no shim log line for {second}:\n{}", containerd.log_tail(30));
    // Its last container gone, the shim exits and takes its socket with it.
    wait_until("the shared shim's socket to go", Duration::from_secs(10), || (!socket[0].exists()).then_some(()))
        .unwrap();

    // A new container joins the running shim that has room rather than starting one.
    let joined = start_idle(&containerd, "shared-late", 1, std::slice::from_ref(&flag));
    assert_eq!(shim_socket_of(&containerd, &joined[0].0), socket[2]);
    remove_all(&containerd, joined.iter().chain(&started[2..]).map(|(id, _)| id));
    assert_clean(&containerd, first);
    assert_clean(&containerd, second);

    wait_until("every shim to exit", Duration::from_secs(10), || shims(&containerd).is_empty().then_some(()))
        .unwrap();
    assert!(!socket[2].exists());
}

#[test]
fn a_killed_shared_shim_takes_every_container_it_serves_and_leaves_nothing() {
    require_integration!();
    let containerd = start();
    // The default limit (16): both share one shim.
    let started = start_idle(&containerd, "shim-dies", 2, &[]);
    let socket = shim_socket_of(&containerd, &started[0].0);
    assert_eq!(socket, shim_socket_of(&containerd, &started[1].0));
    let serving = shims(&containerd);
    assert_eq!(serving.len(), 1, "{:?}", containerd.shim_processes());

    kill_and_wait(&serving, Duration::from_secs(10)).unwrap();
    for (id, pid) in &started {
        // containerd runs the `delete` action for each: its process dies, its task goes.
        wait_until("the container's process to die", Duration::from_secs(30), || (!is_alive(*pid as i32)).then_some(()))
            .unwrap();
        wait_until("containerd to see the task gone", Duration::from_secs(30), || match containerd.task(id) {
            Ok(None) => Some(()),
            Ok(Some(t)) if t.status == "STOPPED" => Some(()),
            _ => None,
        })
        .unwrap();
        let _ = containerd.delete_task(id);
        containerd.delete_container(id).unwrap();
        assert_clean(&containerd, id);
    }
    assert!(!socket.exists(), "the dead shim's socket {} is left", socket.display());
}

#[test]
fn one_container_per_shim_when_the_operator_says_so() {
    require_integration!();
    let containerd = start();
    let flag = limit_flag(&containerd, 1);
    let started = start_idle(&containerd, "own-shim", 2, std::slice::from_ref(&flag));
    assert_ne!(shim_socket_of(&containerd, &started[0].0), shim_socket_of(&containerd, &started[1].0));
    assert_eq!(shims(&containerd).len(), 2);
    // A shim of one container keeps no zygote.
    let zygotes: Vec<_> = shims(&containerd)
        .into_iter()
        .flat_map(wasmbox_integration::process::children_of)
        .filter(|(_, comm)| comm == "wasmbox-zygote")
        .collect();
    assert!(zygotes.is_empty(), "{zygotes:?}");
    remove_all(&containerd, started.iter().map(|(id, _)| id));
}

#[test]
fn a_shared_shim_serves_its_containers_across_a_containerd_restart() {
    require_integration!();
    let containerd = start();
    let started = start_idle(&containerd, "shared-restart", 2, &[]);
    let serving = shims(&containerd);
    assert_eq!(serving.len(), 1, "{:?}", containerd.shim_processes());

    containerd.restart().unwrap();

    // containerd finds both tasks through their bundles' address files, at the one shim.
    for (id, pid) in &started {
        let task = containerd.wait_task_status(id, "RUNNING", Duration::from_secs(30)).unwrap();
        assert_eq!(task.pid, *pid, "the same task should be reported after the restart");
    }
    assert_eq!(shims(&containerd), serving);
    // Each ends on its own; a container started now joins the same shim.
    stop(&containerd, &started[0].0, "SIGTERM");
    let joined = start_idle(&containerd, "shared-restart-late", 1, &[]);
    assert_eq!(shim_socket_of(&containerd, &joined[0].0), shim_socket_of(&containerd, &started[1].0));
    remove_all(&containerd, joined.iter().chain(&started[1..]).map(|(id, _)| id));
    assert_clean(&containerd, &started[0].0);
    wait_until("the shim to exit", Duration::from_secs(10), || shims(&containerd).is_empty().then_some(()))
        .unwrap();
}

#[test]
fn a_shim_whose_container_never_comes_exits_by_itself() {
    require_integration!();
    let containerd = start();
    // containerd's `start` action, run by hand, and no Create after it (as if containerd had
    // died in between): the new shim holds the container's place for a while (0.5 s here),
    // then exits and removes its socket.
    let id = ids::container_id("never-created");
    let bundle = containerd.paths().work.join(&id);
    std::fs::create_dir_all(&bundle).unwrap();
    let shim = settings::shim_dir().join(settings::WASMBOX_SHIM_BINARY);
    let address = containerd.address().to_string_lossy().into_owned();
    let publisher = settings::containerd_dir().join("containerd");
    let mut cmd = std::process::Command::new(&shim);
    cmd.args(["-namespace", containerd.namespace(), "-address", address.as_str()])
        .arg("-publish-binary")
        .arg(&publisher)
        .args(["-id", id.as_str(), "start"])
        .current_dir(&bundle)
        .env("WASMBOX_RESERVATION_TTL_MS", "500")
        .env("TTRPC_ADDRESS", format!("{address}.ttrpc"))
        .stdin(std::process::Stdio::null());
    let printed = run_ok("the start action", &mut cmd, Duration::from_secs(30)).unwrap();
    let socket = PathBuf::from(printed.trim().trim_start_matches("unix://"));
    assert!(socket.exists(), "the start action printed {printed:?}");
    assert_eq!(shims(&containerd).len(), 1, "{:?}", containerd.shim_processes());
    let gone = wait_until("the unused shim to exit", Duration::from_secs(10), || {
        (shims(&containerd).is_empty() && !socket.exists()).then_some(())
    });
    assert!(gone.is_ok(), "shims {:?}, socket left: {}", containerd.shim_processes(), socket.exists());
}
