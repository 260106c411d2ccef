//! Waiting for a quiet machine: the bench shares its cores with other people's builds, and a
//! start-time figure taken under load measures the scheduler more than the runtime.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::{interrupt, procfs};

const POLL: Duration = Duration::from_secs(10);

/// How the wait went, for the record.
#[derive(Debug, Clone, Serialize)]
pub struct LoadWait {
    pub max_load: f64,
    pub waited_s: f64,
    /// Load averages (1, 5, 15 min) when the bench started measuring.
    pub load_at_start: [f64; 3],
    /// False when the deadline passed first and the bench ran anyway.
    pub quiet: bool,
}

/// Polls until the 1-minute load average is below `max_load`, for at most `deadline`.
pub fn wait_for_quiet(max_load: f64, deadline: Duration) -> Result<LoadWait> {
    let started = Instant::now();
    let mut announced = false;
    loop {
        let load = procfs::load_average()?;
        let quiet = load[0] < max_load;
        if quiet || started.elapsed() >= deadline {
            if !quiet && !deadline.is_zero() {
                eprintln!(
                    "load average still {:.2} after {:?}; measuring anyway (figures will be noisier)",
                    load[0], deadline
                );
            }
            return Ok(LoadWait {
                max_load,
                waited_s: started.elapsed().as_secs_f64(),
                load_at_start: load,
                quiet,
            });
        }
        if !announced {
            eprintln!(
                "waiting (at most {}s) for the 1-minute load average to drop below {max_load} (now {:.2})",
                deadline.as_secs(),
                load[0]
            );
            announced = true;
        }
        interrupt::check()?;
        std::thread::sleep(POLL.min(deadline.saturating_sub(started.elapsed())));
    }
}
