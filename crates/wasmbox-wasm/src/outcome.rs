//! How a guest ended, and the process exit status that reports it: `proc_exit(n)` → n, a
//! normal return → 0, a trap → 134 (as `wasmtime run` reports an abort), a termination signal
//! s → 128+s, the policy's timeout → 124.

use wasmtime_wasi::I32Exit;

use crate::policy::keys::TIMEOUT_EXIT;
use crate::policy::terminate;

/// Exit status of a trapped guest (128 + SIGABRT, like `wasmtime run`).
pub const TRAP_EXIT: i32 = 134;

/// How a guest run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    Trapped(String),
    /// Could not start: what the runner could not set up (such as a listener).
    Failed(String),
    /// Ended by the policy's timeout.
    TimedOut(std::time::Duration),
}

impl Outcome {
    pub fn exit_status(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::Signaled(sig) => terminate::exit_status(*sig),
            Outcome::Trapped(_) => TRAP_EXIT,
            Outcome::Failed(_) => 1,
            Outcome::TimedOut(_) => TIMEOUT_EXIT,
        }
    }

    /// Classifies the result of calling the guest's entry point.
    pub fn from_result(result: wasmtime::Result<()>, signal: Option<i32>) -> Self {
        match result {
            Ok(()) => Outcome::Exited(0),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    Outcome::Exited(exit.0)
                } else if let Some(after) = terminate::timed_out() {
                    Outcome::TimedOut(after)
                } else if let Some(sig) = signal {
                    Outcome::Signaled(sig)
                } else {
                    Outcome::Trapped(format!("{e:?}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_outcomes_to_exit_status() {
        assert_eq!(Outcome::from_result(Ok(()), None).exit_status(), 0);
        let exit = wasmtime::Error::new(I32Exit(42));
        assert_eq!(Outcome::from_result(Err(exit), None).exit_status(), 42);
        let trap = wasmtime::format_err!("wasm trap: unreachable");
        let o = Outcome::from_result(Err(trap), None);
        assert!(matches!(&o, Outcome::Trapped(m) if m.contains("unreachable")));
        assert_eq!(o.exit_status(), 134);
        let interrupted = wasmtime::format_err!("interrupt");
        assert_eq!(
            Outcome::from_result(Err(interrupted), Some(15)).exit_status(),
            143
        );
        // An explicit exit wins over a signal that raced with it.
        let exit = wasmtime::Error::new(I32Exit(3));
        assert_eq!(Outcome::from_result(Err(exit), Some(15)).exit_status(), 3);
    }
}
