//! The state machine of one task (the container's init process), as containerd sees it.

use std::path::PathBuf;

use crate::process::exits::ExitInfo;

/// containerd's view of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    /// Frozen by Pause (the cgroup freezer), until Resume.
    Paused,
    Stopped,
}

/// Why a transition was refused; each maps to the gRPC code containerd expects.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("task {0} is already started")]
    AlreadyStarted(String),
    #[error("task {0}: process already finished")]
    Finished(String),
    #[error("task {id} is {status}, not {wanted}")]
    NotIn { id: String, status: String, wanted: &'static str },
}

/// One task: its process, status and exit.
#[derive(Debug)]
pub struct TaskState {
    pub id: String,
    pub bundle: PathBuf,
    pub pid: i32,
    status: Status,
    exit: Option<ExitInfo>,
}

impl TaskState {
    pub fn new(id: &str, bundle: PathBuf, pid: i32) -> Self {
        Self {
            id: id.to_string(),
            bundle,
            pid,
            status: Status::Created,
            exit: None,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn exit(&self) -> Option<ExitInfo> {
        self.exit
    }

    /// Created → Running.
    pub fn start(&mut self) -> Result<(), StateError> {
        match self.status {
            Status::Created => {
                self.status = Status::Running;
                Ok(())
            }
            Status::Running | Status::Paused => Err(StateError::AlreadyStarted(self.id.clone())),
            Status::Stopped => Err(StateError::Finished(self.id.clone())),
        }
    }

    /// Running → Paused (`true`) or Paused → Running (`false`).
    pub fn set_paused(&mut self, paused: bool) -> Result<(), StateError> {
        let (from, to, wanted) = if paused {
            (Status::Running, Status::Paused, "running")
        } else {
            (Status::Paused, Status::Running, "paused")
        };
        match self.status {
            s if s == from => {
                self.status = to;
                Ok(())
            }
            Status::Stopped => Err(StateError::Finished(self.id.clone())),
            other => Err(StateError::NotIn {
                id: self.id.clone(),
                status: format!("{other:?}").to_lowercase(),
                wanted,
            }),
        }
    }

    /// Checks a signal may still be delivered.
    pub fn check_alive(&self) -> Result<(), StateError> {
        match self.status {
            Status::Stopped => Err(StateError::Finished(self.id.clone())),
            _ => Ok(()),
        }
    }

    /// Any state → Stopped, once; later exits of the same pid are ignored.
    pub fn exited(&mut self, info: ExitInfo) -> bool {
        if self.status == Status::Stopped {
            return false;
        }
        self.status = Status::Stopped;
        self.exit = Some(info);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn exit(status: i32) -> ExitInfo {
        ExitInfo {
            status,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn created_running_stopped() {
        let mut t = TaskState::new("a", PathBuf::from("/b"), 10);
        assert_eq!(t.status(), Status::Created);
        t.check_alive().unwrap();
        t.start().unwrap();
        assert_eq!(t.start(), Err(StateError::AlreadyStarted("a".into())));
        assert!(t.exited(exit(42)));
        assert_eq!(t.status(), Status::Stopped);
        assert_eq!(t.exit().unwrap().status, 42);
        assert!(!t.exited(exit(1)), "the first exit wins");
        assert_eq!(t.exit().unwrap().status, 42);
        assert_eq!(t.check_alive(), Err(StateError::Finished("a".into())));
        assert_eq!(t.start(), Err(StateError::Finished("a".into())));
    }

    #[test]
    fn running_paused_running_and_killed_while_paused() {
        let mut t = TaskState::new("a", PathBuf::from("/b"), 10);
        assert!(matches!(t.set_paused(true), Err(StateError::NotIn { .. })), "not started yet");
        t.start().unwrap();
        t.set_paused(true).unwrap();
        assert_eq!(t.status(), Status::Paused);
        assert!(matches!(t.set_paused(true), Err(StateError::NotIn { .. })));
        t.check_alive().unwrap();
        t.set_paused(false).unwrap();
        assert_eq!(t.status(), Status::Running);
        t.set_paused(true).unwrap();
        assert!(t.exited(exit(137)), "a paused task can be killed");
        assert_eq!(t.set_paused(false), Err(StateError::Finished("a".into())));
    }

    #[test]
    fn a_created_task_can_die_before_start() {
        let mut t = TaskState::new("a", PathBuf::from("/b"), 10);
        assert!(t.exited(exit(137)));
        assert!(t.start().is_err());
    }
}
