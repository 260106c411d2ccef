//! Sharing a shim: places held for Creates on their way, and when an empty shim exits (the
//! rules are `crate::group`'s).

use std::time::Duration;

use super::tasks::*;

impl Service {
    /// How long a place is held for a Create that has not begun.
    pub fn reservation_ttl(&self) -> Duration {
        self.admission().ttl()
    }

    /// Holds a place for container `id`, whose Create is on its way, counting the tasks.
    pub(super) fn reserve(&self, id: &str) -> Result<(), crate::group::Refusal> {
        let tasks = self.shared.tasks();
        self.admission()
            .reserve(id, tasks.len(), std::time::Instant::now())
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
