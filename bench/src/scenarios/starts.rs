//! Start times of several subjects, interleaved (a, b, c, a, b, c, ...) so that whatever else
//! the machine does at a given moment affects all of them alike.

use anyhow::Result;
use wasmbox_integration::Containerd;

use crate::interrupt;
use crate::runner::timed_run;
use crate::stats::Series;
use crate::subjects::{Subject, BACKGROUND_COMPILE_TIMEOUT};

/// `runs` timed `ctr run --rm` per subject, after one untimed warm-up each: the first run of a
/// runtime pays one-off costs (binaries paged in, the wasm compiled into the cache) that
/// "cold start" of a container on a node that already ran one does not include.
pub fn interleaved(
    containerd: &Containerd,
    subjects: &[&Subject],
    runs: usize,
) -> Result<Vec<Series>> {
    for s in subjects {
        timed_run(containerd, s)?;
    }
    // A large module's first run started on the baseline tier; the later starts measured here
    // are those after its optimizing compile (in the background) is in the cache.
    containerd.wait_for_background_compiles(BACKGROUND_COMPILE_TIMEOUT)?;
    let mut samples = vec![Vec::with_capacity(runs); subjects.len()];
    for round in 0..runs {
        // Rotate who goes first, so no subject always follows the same one.
        for k in 0..subjects.len() {
            let i = (round + k) % subjects.len();
            interrupt::check()?;
            samples[i].push(timed_run(containerd, subjects[i])?);
        }
        eprint!("\r  round {}/{runs}", round + 1);
    }
    eprintln!();
    Ok(samples.into_iter().map(|s| Series::new("ms", s)).collect())
}
