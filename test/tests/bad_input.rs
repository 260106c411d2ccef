//! Broken images fail with an error a user can act on, printed by ctr, and leave nothing behind.

use wasmbox_integration::suite::{run_to_end, start};
use wasmbox_integration::{guests, ids, image, require_integration, Containerd, RunOutput, RunSpec};

/// Runs `image` expecting failure; cleans up a container ctr may have kept, checks leftovers.
fn run_expecting_failure(containerd: &Containerd, image: &str, test: &str) -> RunOutput {
    let out = run_to_end(containerd, &RunSpec::new(image, &ids::container_id(test)));
    assert_ne!(out.code, 0, "expected a failure: {out:?}");
    assert!(
        !out.stderr.trim().is_empty(),
        "expected an error on ctr's stderr: {out:?}"
    );
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

/// Each entrypoint that cannot run fails Create with one line saying why, as runc would say it
/// (or, for files posing as wasm, what they are); nothing is left behind.
#[test]
fn entrypoints_that_cannot_run_say_why() {
    require_integration!();
    let containerd = start();
    let elf = guests::native_hello().unwrap();
    let cases: Vec<(&str, &str, Option<Vec<u8>>, &str)> = vec![
        ("text", "/x", Some(b"echo hello\n".to_vec()), "exec /x: exec format error"),
        ("empty", "/x", Some(Vec::new()), "exec /x: exec format error (it is empty"),
        ("binary", "/x", Some(b"MZ\x90\x00\x03\x00\x00\x00".to_vec()), "exec /x: exec format error"),
        ("not-wasm", "/app.wasm", Some(b"hello, world\n".to_vec()), "/app.wasm: not a WebAssembly module (it starts with \"hello, world\\n\")"),
        ("elf-wasm", "/app.wasm", Some(elf.to_vec()), "/app.wasm: refused: holds ELF machine code"),
        ("cwasm", "/app.cwasm", Some(elf.to_vec()), "/app.cwasm: refused: holds ELF machine code"),
        ("directory", "/data", None, "exec /data: is a directory"),
    ];
    for (name, path, content, expected) in cases {
        let reference = ids::image_ref(&format!("bad-{name}"));
        let built = match content {
            Some(bytes) => image::native_image_at(&reference, path, &bytes),
            None => image::image_without_entrypoint_file(&reference, path).dir(path, 0o755),
        };
        let image = containerd.import_image(built).unwrap();
        let out = run_expecting_failure(&containerd, &image, &format!("bad-{name}"));
        assert!(out.stderr.contains(expected), "{name}: expected {expected:?} in ctr's output: {out:?}");
        // One clear line: no doubled words or prefixes from wrapped errors.
        for doubled in ["error error", "error: error", ": :"] {
            assert!(!out.stderr.contains(doubled), "{name}: {doubled:?} in {out:?}");
        }
        assert_eq!(out.stderr.matches(expected).count(), 1, "{name}: said once: {out:?}");
    }
}
