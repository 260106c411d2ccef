//! A guest that never makes a host call must still stop promptly on `ctr task kill`.

use std::time::Duration;

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::suite::{import_compat, signal_and_remove, start, start_spinning, start_spinning_spec};
use wasmbox_integration::{guests, ids, require_integration, Containerd, TaskInfo};

/// The promise: kill to exit event within this long.
const KILL_BUDGET: Duration = Duration::from_secs(2);

/// Runs the spinning guest detached until it is in its loop, kills it with `signal`, and checks the exit status, the
/// time it took, the STOPPED state and that delete leaves nothing behind.
fn kill_spinning_guest(containerd: &Containerd, signal: &str, expected_status: u32) {
    let id = ids::container_id(&format!("spin-{signal}"));
    let task = start_spinning(containerd, &id);
    kill_spun(containerd, &id, task, signal, expected_status);
}

/// Kills spinning task `id` with `signal` and checks how it ended (see [`kill_spinning_guest`]).
fn kill_spun(containerd: &Containerd, id: &str, task: TaskInfo, signal: &str, expected_status: u32) {
    assert!(task.pid > 0, "{task:?}");

    let (exit, took) = signal_and_remove(containerd, id, signal);
    eprintln!("{signal}: exit status {:?} after {took:?}", exit.exit_status());

    assert_eq!(exit.exit_status(), Some(expected_status), "{exit:?}");
    assert!(
        took <= KILL_BUDGET,
        "{signal} took {took:?} to stop the guest (budget {KILL_BUDGET:?})"
    );
}

#[test]
fn sigterm_stops_a_spinning_guest_with_143() {
    require_integration!();
    let containerd = start();
    kill_spinning_guest(&containerd, "SIGTERM", 143);
}

#[test]
fn sigkill_stops_a_spinning_guest_with_137() {
    require_integration!();
    let containerd = start();
    kill_spinning_guest(&containerd, "SIGKILL", 137);
}

#[test]
fn sigterm_stops_a_spinning_wasi_0_3_command_with_143() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "p3-spin", &guests::p3_args().unwrap());
    let id = ids::container_id("p3-spin");
    let task = start_spinning_spec(&containerd, RunSpec::new(&image, &id).args(["/app.wasm", "spinning"]));
    kill_spun(&containerd, &id, task, "SIGTERM", 143);
}
