//! Exit monitor: one task receives every child exit the shim reaps.
//!
//! The `containerd-shim` crate reaps all children (the shim is a child subreaper, so container
//! inits are reparented to it once the `create` helper exits) and broadcasts their status. An
//! exit that no task claims yet is kept, because an init may die between the helper's exit and
//! the task's registration, and the `create` helper's own exit is awaited here too.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim::monitor::{ExitEvent, Subject, Topic};
use containerd_shim::asynchronous::monitor::monitor_subscribe;

/// How and when a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub status: i32,
    pub at: SystemTime,
}

/// Exits not (yet) claimed by a task.
#[derive(Default)]
pub struct ExitMonitor {
    unclaimed: Mutex<HashMap<i32, ExitInfo>>,
    cv: Condvar,
}

impl ExitMonitor {
    /// Starts the monitor task on the current tokio runtime. `claim` is offered each exit
    /// first, in order, on the blocking pool (it takes locks and may wait for the process's
    /// output to be read); an exit no task owns it hands back to [`Self::record`] under its
    /// own lock, so an owner registering at that moment finds it recorded or claimed.
    pub async fn start(
        claim: impl Fn(i32, ExitInfo, &ExitMonitor) + Send + Sync + 'static,
    ) -> std::io::Result<Arc<Self>> {
        let monitor = Arc::new(Self::default());
        let mut subscription = monitor_subscribe(Topic::All)
            .await
            .map_err(|e| std::io::Error::other(format!("subscribe to exits: {e}")))?;
        let m = monitor.clone();
        let claim = Arc::new(claim);
        tokio::spawn(async move {
            while let Some(ExitEvent { subject, exit_code }) = subscription.rx.recv().await {
                let Subject::Pid(pid) = subject else { continue };
                let info = ExitInfo {
                    status: exit_code,
                    at: SystemTime::now(),
                };
                log::debug!("process {pid} exited with {exit_code}");
                let (claim, m) = (claim.clone(), m.clone());
                let offered = tokio::task::spawn_blocking(move || claim(pid, info, &m));
                if let Err(e) = offered.await {
                    log::error!("exit of {pid}: {e}");
                }
            }
        });
        Ok(monitor)
    }

    /// Keeps an exit no task owns (yet), for [`Self::take`] and [`Self::wait`].
    pub fn record(&self, pid: i32, info: ExitInfo) {
        if let Ok(mut map) = self.unclaimed.lock() {
            map.insert(pid, info);
        }
        self.cv.notify_all();
    }

    /// Takes the recorded exit of `pid`, if it already happened.
    pub fn take(&self, pid: i32) -> Option<ExitInfo> {
        self.unclaimed.lock().ok()?.remove(&pid)
    }

    /// Waits up to `timeout` for `pid` to exit and takes its exit.
    pub fn wait(&self, pid: i32, timeout: Duration) -> Option<ExitInfo> {
        let deadline = Instant::now() + timeout;
        let mut map = self.unclaimed.lock().ok()?;
        loop {
            if let Some(info) = map.remove(&pid) {
                return Some(info);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            map = self.cv.wait_timeout(map, left).ok()?.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_recorded_exits() {
        let m = Arc::new(ExitMonitor::default());
        let m2 = m.clone();
        let t = std::thread::spawn(move || {
            m2.record(42, ExitInfo { status: 3, at: SystemTime::now() });
        });
        let info = m.wait(42, Duration::from_secs(5)).expect("exit recorded");
        assert_eq!(info.status, 3);
        assert!(m.take(42).is_none(), "an exit is taken once");
        assert!(m.wait(7, Duration::from_millis(10)).is_none());
        t.join().unwrap();
    }
}
