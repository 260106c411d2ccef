//! Many containers started at the same moment: total wall time until the last `ctr run --rm`
//! has returned. Rounds alternate between the runtimes.

use std::time::Instant;

use anyhow::Result;
use wasmbox_integration::Containerd;

use crate::interrupt;
use crate::runner::{parallel, timed_run};
use crate::stats::Series;
use crate::subjects::Subject;

/// Returns one series (seconds) per subject.
pub fn concurrent(
    containerd: &Containerd,
    subjects: &[&Subject],
    n: usize,
    rounds: usize,
) -> Result<Vec<Series>> {
    let mut samples = vec![Vec::with_capacity(rounds); subjects.len()];
    let slots: Vec<usize> = (0..n).collect();
    for round in 0..rounds {
        for k in 0..subjects.len() {
            let i = (round + k) % subjects.len();
            interrupt::check()?;
            let started = Instant::now();
            // One thread per container: all n ctr processes start at once.
            parallel(&slots, n, |_| timed_run(containerd, subjects[i]).map(drop))?;
            samples[i].push(started.elapsed().as_secs_f64());
        }
        eprint!("\r  round {}/{rounds}", round + 1);
    }
    eprintln!();
    Ok(samples.into_iter().map(|s| Series::new("s", s)).collect())
}
