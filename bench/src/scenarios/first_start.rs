//! Starts of the large program with an empty compile cache: what the first container of a new
//! image on a node costs, compilation included (the baseline tier's, when it takes the module;
//! the optimizing compile that follows in the background is not part of the start).

use std::path::Path;

use anyhow::{Context, Result};
use wasmbox_integration::Containerd;

use crate::interrupt;
use crate::runner::timed_run;
use crate::stats::Series;
use crate::subjects::{Subject, BACKGROUND_COMPILE_TIMEOUT};

pub fn first_starts(containerd: &Containerd, large: &Subject, runs: usize) -> Result<Series> {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        interrupt::check()?;
        // No container runs now, and no background compile, so nothing writes an entry.
        containerd.wait_for_background_compiles(BACKGROUND_COMPILE_TIMEOUT)?;
        empty_dir(&containerd.paths().cache)?;
        samples.push(timed_run(containerd, large)?);
        eprint!("\r  run {}/{runs}", i + 1);
    }
    eprintln!();
    // The optimized artifact, for what is measured after.
    containerd.wait_for_background_compiles(BACKGROUND_COMPILE_TIMEOUT)?;
    Ok(Series::new("ms", samples))
}

/// Removes everything inside `dir`, keeping `dir` itself (the shim opens it by path).
fn empty_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
