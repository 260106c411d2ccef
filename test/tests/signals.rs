//! A guest that never makes a host call must still stop promptly on `ctr task kill`.

use std::time::Duration;

use wasmbox_integration::suite::{signal_and_remove, start, start_spinning};
use wasmbox_integration::{ids, require_integration, Containerd};

/// The promise: kill to exit event within this long.
const KILL_BUDGET: Duration = Duration::from_secs(2);

/// Runs the spinning guest detached until it is in its loop, kills it with `signal`, and checks the exit status, the
/// time it took, the STOPPED state and that delete leaves nothing behind.
fn kill_spinning_guest(containerd: &Containerd, signal: &str, expected_status: u32) {
    let id = ids::container_id(&format!("spin-{signal}"));
    let task = start_spinning(containerd, &id);
    assert!(task.pid > 0, "{task:?}");

    let (exit, took) = signal_and_remove(containerd, &id, signal);
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
