//! Tiered compilation (crates/wasmbox-shim/src/tiering.rs): a large module's first start runs
//! the baseline compiler's code while Cranelift compiles it in the background; the starts
//! after run Cranelift's. `WASMBOX_BASELINE_MIN_BYTES=0` makes the tests' small modules count
//! as large.

use std::time::Duration;

use wasmbox_integration::image::WASM_PATH;
use wasmbox_integration::suite::{assert_clean, cache_artifacts, import_compat, start_tiering_everything};
use wasmbox_integration::{guests, ids, require_integration};

const STARTED_ON_BASELINE: &str = "started on the baseline tier";
const REFUSED_BY_BASELINE: &str = "the baseline compiler does not take it";
const BACKGROUND: Duration = Duration::from_secs(120);

#[test]
fn the_first_start_runs_baseline_code_and_the_next_runs_cranelifts() {
    require_integration!();
    let containerd = start_tiering_everything();
    // It opens files, so the WASI layer's trampoline runs in the guest's store too: it must
    // come from the same compiler.
    let wasm = guests::files().unwrap();
    let image = import_compat(&containerd, "tiered", &wasm);
    let run = |note: &str| {
        let id = ids::container_id("tiered");
        let out = containerd.run_rm(&image, &id, &[WASM_PATH, "/tmp/note.txt"]).unwrap();
        assert_eq!(out.code, 0, "{note}: {out:?}");
        assert_eq!(out.stdout, "read back: written by the files guest\n", "{note}");
        assert_clean(&containerd, &id);
    };

    run("first start");
    let baseline_starts = containerd.log_lines_mentioning(STARTED_ON_BASELINE);
    assert_eq!(baseline_starts.lines().count(), 1, "the first start is on the baseline tier:\n{}", containerd.log_tail(40));
    containerd.wait_for_background_compiles(BACKGROUND).unwrap();
    let artifacts = cache_artifacts(&containerd, Some(&wasm));
    assert_eq!(artifacts.len(), 2, "Winch's and, from the background, Cranelift's: {artifacts:?}");
    let locks: Vec<_> = std::fs::read_dir(containerd.paths().cache.join("compiling"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(locks, ["node.lock"], "the module's compile lock goes with its compile");

    run("second start");
    assert_eq!(
        containerd.log_lines_mentioning(STARTED_ON_BASELINE),
        baseline_starts,
        "the second start runs Cranelift's artifact"
    );
    assert_eq!(cache_artifacts(&containerd, Some(&wasm)), artifacts, "nothing more compiled");
    assert!(containerd.background_compiles().is_empty());
}

/// Winch lacks exceptions, GC, tail calls...: a module using them is compiled by Cranelift
/// before its first start, as without tiers.
#[test]
fn modules_the_baseline_compiler_refuses_are_compiled_by_cranelift_at_once() {
    require_integration!();
    let containerd = start_tiering_everything();
    let wasm = guests::features().unwrap();
    let image = import_compat(&containerd, "tiered-features", &wasm);
    let id = ids::container_id("tiered-features");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_eq!(out.code, 42, "the number of the failed check, or Create's error: {out:?}");
    assert!(
        !containerd.log_lines_mentioning(REFUSED_BY_BASELINE).is_empty(),
        "{}",
        containerd.log_tail(40)
    );
    assert!(containerd.log_lines_mentioning(STARTED_ON_BASELINE).is_empty());
    assert_eq!(cache_artifacts(&containerd, Some(&wasm)).len(), 1, "Cranelift's only");
    assert!(containerd.background_compiles().is_empty());
    assert_clean(&containerd, &id);
}

/// A trap in baseline code is reported like any other (its backtrace has no byte offsets).
#[test]
fn a_trap_on_the_baseline_tier_fails_the_task_and_is_reported() {
    require_integration!();
    let containerd = start_tiering_everything();
    let image = import_compat(&containerd, "tiered-trap", &guests::trap().unwrap());
    let id = ids::container_id("tiered-trap");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.to_lowercase().contains("unreachable"), "trap message expected on stderr: {out:?}");
    assert_eq!(containerd.log_lines_mentioning(STARTED_ON_BASELINE).lines().count(), 1);
    containerd.wait_for_background_compiles(BACKGROUND).unwrap();
    assert_clean(&containerd, &id);
}
