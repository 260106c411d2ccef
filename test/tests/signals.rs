//! A guest that never makes a host call must still stop promptly on `ctr task kill`.

use std::time::{Duration, Instant};

use wasmbox_integration::suite::{assert_clean, start, start_spinning};
use wasmbox_integration::{ids, require_integration, Containerd, EventStream};

/// The promise: kill to exit event within this long.
const KILL_BUDGET: Duration = Duration::from_secs(2);

/// Runs the spinning guest detached until it is in its loop, kills it with `signal`, and checks the exit status, the
/// time it took, the STOPPED state and that delete leaves nothing behind.
fn kill_spinning_guest(containerd: &Containerd, signal: &str, expected_status: u32) {
    let id = ids::container_id(&format!("spin-{signal}"));
    let task = start_spinning(containerd, &id);
    assert!(task.pid > 0, "{task:?}");

    let mut events = EventStream::start(containerd, Duration::from_secs(10)).unwrap();
    let sent = Instant::now();
    containerd.kill_task(&id, signal).unwrap();
    let exit = events.wait_exit(&id, Duration::from_secs(30)).unwrap();
    let took = sent.elapsed();
    eprintln!(
        "{signal}: exit status {:?} after {took:?}",
        exit.exit_status()
    );

    assert_eq!(exit.exit_status(), Some(expected_status), "{exit:?}");
    assert!(
        took <= KILL_BUDGET,
        "{signal} took {took:?} to stop the guest (budget {KILL_BUDGET:?})"
    );
    containerd
        .wait_task_status(&id, "STOPPED", Duration::from_secs(10))
        .unwrap();
    containerd.delete_container(&id).unwrap();
    assert_clean(containerd, &id);
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
