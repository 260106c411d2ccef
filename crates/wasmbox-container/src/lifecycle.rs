//! Operations on an existing container. None of them forks, so the multi-threaded shim runs
//! them in-process. libcontainer briefly changes the working directory to reach its notify
//! socket, so callers serialize these calls (the shim holds one lock around them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager, ControllerOpt};
use oci_spec::runtime::LinuxResources;
use libcgroups::stats::Stats;
use libcontainer::container::Container;
use libcontainer::signal::Signal;

use crate::ContainerError;

/// How long `delete` waits for a dying container's cgroup to empty.
const DELETE_PATIENCE: Duration = Duration::from_secs(10);

/// A container known by its libcontainer state root and id.
#[derive(Debug, Clone)]
pub struct Handle {
    pub root: PathBuf,
    pub id: String,
}

impl Handle {
    pub fn new(root: impl Into<PathBuf>, id: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            id: id.into(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(&self.id)
    }

    /// True when libcontainer has state for this container.
    pub fn exists(&self) -> bool {
        self.dir().join("state.json").exists()
    }

    fn load(&self) -> Result<Container, ContainerError> {
        if !self.exists() {
            return Err(ContainerError::NotFound { id: self.id.clone() });
        }
        Container::load(self.dir()).map_err(|source| self.lc(source))
    }

    fn lc(&self, source: libcontainer::error::LibcontainerError) -> ContainerError {
        ContainerError::Libcontainer {
            id: self.id.clone(),
            source,
        }
    }

    /// The init's PID as recorded at create.
    pub fn pid(&self) -> Result<i32, ContainerError> {
        self.load()?
            .pid()
            .map(|p| p.as_raw())
            .ok_or(ContainerError::NotFound { id: self.id.clone() })
    }

    /// Lets the init run its workload.
    pub fn start(&self) -> Result<(), ContainerError> {
        self.load()?.start().map_err(|e| self.lc(e))
    }

    /// Sends `signal` to the init, or to every process of the container with `all`.
    pub fn kill(&self, signal: i32, all: bool) -> Result<(), ContainerError> {
        let sig = Signal::try_from(signal).map_err(|e| ContainerError::BadSignal {
            id: self.id.clone(),
            message: e.to_string(),
        })?;
        self.load()?.kill(sig, all).map_err(|e| self.lc(e))
    }

    /// Freezes every process of the container (the cgroup freezer, v1 or v2).
    pub fn pause(&self) -> Result<(), ContainerError> {
        self.load()?.pause().map_err(|e| self.lc(e))
    }

    /// Thaws a paused container.
    pub fn resume(&self) -> Result<(), ContainerError> {
        self.load()?.resume().map_err(|e| self.lc(e))
    }

    /// Applies new resources (CPU, memory, pids...) to the container's cgroup, as `runc
    /// update` does. A wasm guest's memory budget reads the memory limit at each growth, so
    /// a raised or lowered limit applies to it too.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), ContainerError> {
        self.cgroup()?
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| ContainerError::Cgroup {
                id: self.id.clone(),
                message: e.to_string(),
            })
    }

    /// Kills whatever is left, removes the cgroups and the state directory.
    pub fn delete(&self) -> Result<(), ContainerError> {
        if !self.exists() {
            // Nothing was created, or it is gone already: deleting twice is not an error.
            let _ = std::fs::remove_dir_all(self.dir());
            return Ok(());
        }
        // A container whose init has just been killed can still hold its cgroup until the
        // process is reaped (by a subreaper, when the shim itself died): libcontainer's own
        // retries last ~100 ms, so keep trying for a while. Its state dir stays until the
        // cgroup is gone, so every retry is a complete delete.
        let deadline = Instant::now() + DELETE_PATIENCE;
        let mut pause = Duration::from_millis(20);
        loop {
            match self.load()?.delete(true) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline || !self.exists() => return Err(self.lc(e)),
                Err(e) => log::debug!("delete {}: {e}; retrying", self.id),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    fn cgroup(&self) -> Result<libcgroups::common::AnyCgroupManager, ContainerError> {
        let container = self.load()?;
        let config = container.spec().map_err(|e| self.lc(e))?;
        create_cgroup_manager(CgroupConfig {
            cgroup_path: config.cgroup_path,
            systemd_cgroup: container.systemd(),
            container_name: self.id.clone(),
        })
        .map_err(|e| ContainerError::Cgroup {
            id: self.id.clone(),
            message: e.to_string(),
        })
    }

    /// Every process in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, ContainerError> {
        let pids = self.cgroup()?.get_all_pids().map_err(|e| ContainerError::Cgroup {
            id: self.id.clone(),
            message: e.to_string(),
        })?;
        Ok(pids.into_iter().map(|p| p.as_raw()).collect())
    }

    /// The container's cgroup statistics.
    pub fn stats(&self) -> Result<Stats, ContainerError> {
        self.cgroup()?.stats().map_err(|e| ContainerError::Cgroup {
            id: self.id.clone(),
            message: e.to_string(),
        })
    }
}

/// libcontainer's state root for a bundle: kept inside the bundle, so it lives exactly as long
/// as containerd keeps the task's state and is found again by the `delete` action.
pub fn state_root(bundle: &Path) -> PathBuf {
    bundle.join(".wasmbox")
}
