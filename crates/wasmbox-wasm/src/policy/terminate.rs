//! Termination signals for a running guest.
//!
//! The guest runs as the container's init, usually PID 1 of its PID namespace, where signals
//! without a handler are ignored. So the runner handles them: the first one records the signal
//! and bumps the engine's epoch, which interrupts guest code at its next epoch check; a guest
//! blocked in a host call (a read, a sleep) is not interrupted that way, so the process exits
//! after a short grace period regardless. SIGKILL needs no help.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;
use wasmtime::Engine;

/// Signals whose default action would end an ordinary process.
pub const TERMINATING: [i32; 7] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE];

/// How long a guest stuck in a host call gets before the process exits anyway.
pub const GRACE: Duration = Duration::from_millis(500);

static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Set by a runner that stops on its own when asked (an HTTP server draining its requests):
/// a signal is then only recorded, guest code is not interrupted and no grace timer runs.
static GRACEFUL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches to graceful stopping (see [`GRACEFUL`]); the runner watches [`requested`].
pub fn stop_gracefully() {
    GRACEFUL.store(true, Ordering::SeqCst);
}
/// Milliseconds after which the policy's timeout ended the guest; 0 while it has not.
static TIMED_OUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long the guest ran before its timeout ended it, if it did.
pub fn timed_out() -> Option<Duration> {
    match TIMED_OUT_MS.load(Ordering::SeqCst) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// Tells the guest's stderr (the container log) and the shim log why it ended.
pub fn report_timeout(guest: &str, after: Duration) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "wasmbox: {guest}: timed out after {after:?} (wasmbox.dev/timeout)");
    log::warn!("{guest}: timed out after {after:?}");
}

/// Ends the guest once `after` has passed (exit status [`super::keys::TIMEOUT_EXIT`]): guest
/// code stops at its next epoch check, a guest blocked in a host call after [`GRACE`].
pub fn arm_timeout(engine: &Engine, after: Duration, guest: &str) -> std::io::Result<()> {
    let engine = engine.clone();
    let guest = guest.to_string();
    std::thread::Builder::new().name("wasmbox-timeout".into()).spawn(move || {
        // The timer itself: this thread has nothing else to wait for.
        std::thread::sleep(after);
        if requested().is_some() {
            return;
        }
        TIMED_OUT_MS.store(after.as_millis().max(1) as u64, Ordering::SeqCst);
        engine.increment_epoch();
        std::thread::sleep(GRACE);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        report_timeout(&guest, after);
        // SAFETY: as for signals: end the process without running destructors.
        unsafe { libc::_exit(super::keys::TIMEOUT_EXIT) };
    })?;
    Ok(())
}

/// The signal that asked the guest to stop, if any.
pub fn requested() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Exit status for a guest stopped by `signal`, as a shell reports it.
pub fn exit_status(signal: i32) -> i32 {
    128 + signal
}

/// Starts the one thread that turns termination signals into epoch interruption.
pub fn install(engine: &Engine) -> std::io::Result<()> {
    let mut signals = Signals::new(TERMINATING)?;
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("wasmbox-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                RECEIVED.store(sig, Ordering::SeqCst);
                if GRACEFUL.load(Ordering::SeqCst) {
                    return;
                }
                engine.increment_epoch();
                std::thread::sleep(GRACE);
                // Still here: the guest is blocked in a host call.
                use std::io::Write;
                let _ = std::io::stdout().flush();
                // SAFETY: `_exit` ends the process without running destructors, which is the point.
                unsafe { libc::_exit(exit_status(sig)) };
            }
        })?;
    Ok(())
}
