//! One timed `ctr run --rm`, checked for success, and a small pool for parallel ctr calls.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use wasmbox_integration::{ids, Containerd};

use crate::subjects::Subject;

/// Runs `subject` once with `ctr run --rm` and returns the wall time in milliseconds, from
/// spawning ctr to its exit: image-to-container, shim start, create, start, the program,
/// exit, task delete, container delete, as a user of `ctr run --rm` waits for it.
pub fn timed_run(containerd: &Containerd, subject: &Subject) -> Result<f64> {
    let id = ids::container_id(&subject.label);
    let spec = subject.spec(&id);
    containerd.track(&id);
    let mut cmd = containerd.run_command(&spec);
    let out = run_timed(&mut cmd, spec.timeout)?;
    // A failed run is over quickly and would flatter the runtime: it must not count.
    let ok = out.status.success()
        && out.stdout.contains(&subject.expect)
        && !(subject.expect.is_empty() && out.stdout.is_empty());
    if !ok {
        bail!(
            "{} ({}) did not run: {}\nstdout: {}\nstderr: {}\ncontainerd log:\n{}",
            subject.label,
            id,
            out.status,
            out.stdout,
            out.stderr,
            containerd.log_lines_mentioning(&id)
        );
    }
    Ok(out.elapsed.as_secs_f64() * 1000.0)
}

/// A finished command and how long it took.
pub struct Timed {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `cmd` and times it to its exit. The integration library's runner polls for the exit
/// with a growing back-off (5 ms to 100 ms), which is fine for tests but rounds every duration
/// up to its next poll (155, 255, 355 ms...); here a thread blocks in wait(2) and takes the
/// time the moment it returns, and the caller only waits for that thread with a deadline.
pub fn run_timed(cmd: &mut Command, timeout: Duration) -> Result<Timed> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {shown}"))?;
    let pid = child.id() as i32;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, started.elapsed()));
    });
    let (status, elapsed) = match rx.recv_timeout(timeout) {
        Ok(done) => done,
        Err(_) => {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            // The waiter thread reaps it now.
            let _ = rx.recv_timeout(Duration::from_secs(10));
            bail!("{shown} did not finish within {timeout:?}");
        }
    };
    let status = status.with_context(|| format!("waiting for {shown}"))?;
    Ok(Timed {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed,
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Calls `f` on every item with `workers` threads; returns the first error, after all finished.
pub fn parallel<T: Sync>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(item) {
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_a_command() {
        let out = run_timed(
            Command::new("sh").args(["-c", "sleep 0.17; echo hi"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, "hi\n");
        // Bounded loosely: CI machines can be slow, this only checks what is being timed.
        assert!(
            out.elapsed >= Duration::from_millis(170) && out.elapsed < Duration::from_secs(5),
            "{:?}",
            out.elapsed
        );
    }

    #[test]
    fn kills_on_timeout() {
        let started = Instant::now();
        assert!(run_timed(Command::new("sleep").arg("30"), Duration::from_millis(100)).is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn parallel_visits_every_item_and_reports_errors() {
        let seen = Mutex::new(Vec::new());
        parallel(&[1, 2, 3, 4, 5], 3, |i| {
            seen.lock().unwrap().push(*i);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, vec![1, 2, 3, 4, 5]);
        let err = parallel(&[1, 2], 2, |i| if *i == 2 { bail!("two") } else { Ok(()) });
        assert_eq!(err.unwrap_err().to_string(), "two");
    }
}
