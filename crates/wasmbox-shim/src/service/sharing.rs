//! Sharing a shim: places held for Creates on their way, and when an empty shim exits (the
//! rules are `crate::group`'s).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::group::Counting;

use super::tasks::*;

impl Service {
    /// How long a place is held for a Create that has not begun.
    pub fn reservation_ttl(&self) -> Duration {
        self.admission().ttl()
    }

    /// Holds a place for container `id` (a pod's sandbox, in a shim that counts pods), whose
    /// Create is on its way, counting the places the tasks take.
    pub(super) fn reserve(&self, id: &str) -> Result<(), crate::group::Refusal> {
        let tasks = self.shared.tasks();
        let used = match self.counts {
            Counting::Containers => tasks.len(),
            Counting::Pods => tasks
                .iter()
                .map(|(id, e)| e.pod.as_deref().unwrap_or(id))
                .collect::<HashSet<_>>()
                .len(),
        };
        self.admission().reserve(id, used, std::time::Instant::now())
    }

    /// The pod container `id` of `bundle` belongs to, in a shim that counts pods, and whether
    /// it is one of the pod's containers beside its sandbox (which take no place of their own).
    pub(super) fn pod_of(&self, id: &str, bundle: &Path) -> (Option<String>, bool) {
        if self.counts != Counting::Pods {
            return (None, false);
        }
        let pod = crate::group::sandbox_id(bundle);
        let member = pod.as_deref().is_some_and(|p| p != id);
        (pod, member)
    }

    /// Holds a place for the container this shim was started for.
    pub fn expect(&self, id: &str) {
        if let Err(e) = self.reserve(id) {
            log::warn!("no place for {id}: {e}");
        }
    }

    /// Exits the shim if containerd asked for it (or an admitted container never came) and no
    /// task is left or on its way.
    pub fn settle(&self) {
        let tasks = self.shared.tasks();
        if self
            .admission()
            .should_exit(tasks.len(), std::time::Instant::now())
        {
            log::info!(
                "no tasks left in namespace {}; shutting down",
                self.shared.namespace
            );
            self.exit_signal.signal();
        }
    }
}
