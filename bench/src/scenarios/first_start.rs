//! Starts of the large program with an empty compile cache: what the first container of a new
//! image on a node costs, compilation included (the baseline tier's, when it takes the module;
//! the optimizing compile that follows in the background is not part of the start); and the
//! same first start when the node compiled the image as it was pulled (`precompile`, which
//! the node's watcher runs on containerd's image events).

use std::path::Path;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use wasmbox_integration::Containerd;

use crate::interrupt;
use crate::runner::timed_run;
use crate::stats::Series;
use crate::subjects::{Subject, BACKGROUND_COMPILE_TIMEOUT};

pub fn first_starts(containerd: &Containerd, large: &Subject, runs: usize) -> Result<Series> {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        interrupt::check()?;
        empty_cache(containerd)?;
        samples.push(timed_run(containerd, large)?);
        eprint!("\r  run {}/{runs}", i + 1);
    }
    eprintln!();
    // The optimized artifact, for what is measured after.
    containerd.wait_for_background_compiles(BACKGROUND_COMPILE_TIMEOUT)?;
    Ok(Series::new("ms", samples))
}

/// First starts after a pull-time compile: (the starts in ms, the compiles in s).
pub fn after_pull_compile(containerd: &Containerd, large: &Subject, runs: usize) -> Result<(Series, Series)> {
    let (mut starts, mut compiles) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        interrupt::check()?;
        empty_cache(containerd)?;
        let started = Instant::now();
        let out = containerd.precompile(&[&large.image], BACKGROUND_COMPILE_TIMEOUT)?;
        if !out.status.success() || !out.stdout_text().contains(": compiled") {
            bail!("precompile {}: {out:?}", large.image);
        }
        compiles.push(started.elapsed().as_secs_f64());
        starts.push(timed_run(containerd, large)?);
        eprint!("\r  run {}/{runs}", i + 1);
    }
    eprintln!();
    Ok((Series::new("ms", starts), Series::new("s", compiles)))
}

/// Empties the fixture's compile cache. No container runs now, and the background compiles are
/// waited for first, so nothing writes an entry meanwhile.
fn empty_cache(containerd: &Containerd) -> Result<()> {
    containerd.wait_for_background_compiles(BACKGROUND_COMPILE_TIMEOUT)?;
    empty_dir(&containerd.paths().cache)
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
