//! Waiting on conditions with a deadline instead of sleeping a fixed time.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Calls `check` until it returns `Some`, backing off from 5 ms to 100 ms between calls;
/// fails with `what` once `timeout` has passed.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_ready() {
        let mut calls = 0;
        let v = wait_until("third call", Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        })
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn times_out() {
        let err = wait_until::<()>("never", Duration::from_millis(30), || None).unwrap_err();
        assert!(err.to_string().contains("never"));
    }
}
