//! Broken images fail with an error a user can act on, printed by ctr, and leave nothing behind.

use wasmbox_integration::suite::{assert_clean, start};
use wasmbox_integration::{guests, ids, image, require_integration, Containerd, RunOutput};

/// Runs `image` expecting failure; cleans up a container ctr may have kept, checks leftovers.
fn run_expecting_failure(containerd: &Containerd, image: &str, test: &str) -> RunOutput {
    let id = ids::container_id(test);
    let out = containerd.run_rm(image, &id, &[]).unwrap();
    assert_ne!(out.code, 0, "expected a failure: {out:?}");
    assert!(
        !out.stderr.trim().is_empty(),
        "expected an error on ctr's stderr: {out:?}"
    );
    // ctr run --rm removes the container itself; this only guards the leftover check.
    if containerd.container_ids().unwrap().contains(&id) {
        let _ = containerd.delete_container(&id);
    }
    assert_clean(containerd, &id);
    out
}

#[test]
fn missing_entrypoint_file_is_named() {
    require_integration!();
    let containerd = start();
    let reference = ids::image_ref("missing-entrypoint");
    let image = containerd
        .import_image(image::image_without_entrypoint_file(
            &reference,
            "/missing.wasm",
        ))
        .unwrap();

    let out = run_expecting_failure(&containerd, &image, "missing-entrypoint");

    assert!(
        out.stderr.contains("missing.wasm"),
        "error should name the file: {out:?}"
    );
}

#[test]
fn invalid_wasm_is_rejected() {
    require_integration!();
    let containerd = start();
    let reference = ids::image_ref("invalid-wasm");
    let garbage = b"\0asm\xde\xad\xbe\xef this is not a module".to_vec();
    let image = containerd
        .import_image(image::compat_image(&reference, &garbage))
        .unwrap();

    let out = run_expecting_failure(&containerd, &image, "invalid-wasm");

    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("wasm") || err.contains("webassembly"),
        "error should say what failed: {out:?}"
    );
}

#[test]
fn unknown_export_is_named() {
    require_integration!();
    let containerd = start();
    let reference = ids::image_ref("unknown-export");
    let built = image::compat_image(&reference, &guests::hello().unwrap())
        .entrypoint(["/app.wasm#no_such_func"]);
    let image = containerd.import_image(built).unwrap();

    let out = run_expecting_failure(&containerd, &image, "unknown-export");

    assert!(
        out.stderr.contains("no_such_func"),
        "error should name the function: {out:?}"
    );
}
