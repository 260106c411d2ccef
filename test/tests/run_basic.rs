//! `ctr run --rm --runtime io.containerd.wasmbox.v1`: output, arguments, environment, exit codes,
//! traps, stdin and files.

use wasmbox_integration::image::WASM_PATH;
use wasmbox_integration::suite::{assert_clean, import_compat, start};
use wasmbox_integration::{guests, ids, image, require_integration, RunSpec};

#[test]
fn hello_prints_its_greeting() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "hello", &guests::hello().unwrap());
    let id = ids::container_id("hello");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from wasm\n");
    assert_clean(&containerd, &id);
}

/// A module using every proposal `wasmtime run` enables by default (exceptions, tail calls, GC,
/// function references, multi-memory, memory64, relaxed SIMD, threads' atomics, extended
/// constants) is accepted and runs: it exits 42 when each works.
#[test]
fn current_wasm_proposals_run() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "features", &guests::features().unwrap());
    let id = ids::container_id("features");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_eq!(out.code, 42, "the number of the failed check, or Create's error: {out:?}");
    assert_clean(&containerd, &id);
}

#[test]
fn arguments_and_environment_reach_the_guest() {
    require_integration!();
    let containerd = start();
    let reference = ids::image_ref("args-env");
    let built =
        image::compat_image(&reference, &guests::args_env().unwrap()).env(["IMAGE_VAR=from-image"]);
    let image = containerd.import_image(built).unwrap();
    let id = ids::container_id("args-env");

    // ctr replaces the image's entrypoint and cmd with these, so the module path comes first.
    let spec = RunSpec::new(&image, &id)
        .args([WASM_PATH, "one", "two words"])
        .env("FOO", "bar");
    let out = containerd.run(&spec).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("arg[0]=") && l.ends_with("app.wasm")),
        "{out:?}"
    );
    assert!(lines.contains(&"arg[1]=one"), "{out:?}");
    assert!(lines.contains(&"arg[2]=two words"), "{out:?}");
    assert!(!out.stdout.contains("arg[3]"), "{out:?}");
    assert!(lines.contains(&"env FOO=bar"), "{out:?}");
    assert!(lines.contains(&"env IMAGE_VAR=from-image"), "{out:?}");
    assert!(lines.contains(&"env BAR=<unset>"), "{out:?}");
    assert_clean(&containerd, &id);
}

#[test]
fn image_cmd_follows_the_entrypoint() {
    require_integration!();
    let containerd = start();
    let reference = ids::image_ref("args-cmd");
    let built = image::compat_image(&reference, &guests::args_env().unwrap()).cmd(["from-cmd"]);
    let image = containerd.import_image(built).unwrap();
    let id = ids::container_id("args-cmd");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l == "arg[1]=from-cmd"),
        "{out:?}"
    );
    assert_clean(&containerd, &id);
}

#[test]
fn exit_codes_are_passed_through() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "exit-code", &guests::exit_code().unwrap());

    for code in [0, 1, 42] {
        let id = ids::container_id("exit-code");
        let out = containerd
            .run_rm(&image, &id, &[WASM_PATH, &code.to_string()])
            .unwrap();
        assert_eq!(out.code, code, "{out:?}");
        assert_clean(&containerd, &id);
    }
}

#[test]
fn a_trap_fails_the_task_and_is_reported() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "trap", &guests::trap().unwrap());
    let id = ids::container_id("trap");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.to_lowercase().contains("unreachable"),
        "trap message expected on stderr: {out:?}"
    );
    assert_clean(&containerd, &id);
}

#[test]
fn stdin_is_echoed_until_eof() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "echo-stdin", &guests::echo_stdin().unwrap());
    let id = ids::container_id("echo-stdin");
    // More than a pipe buffer, so the copy has to stream.
    let mut input = b"first line\nsecond line\n".to_vec();
    input.extend((0..100_000u32).map(|i| b'a' + (i % 26) as u8));

    let out = containerd
        .run(&RunSpec::new(&image, &id).stdin(input.clone()))
        .unwrap();

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.len(), input.len());
    assert!(
        out.stdout.as_bytes() == input.as_slice(),
        "echoed bytes differ"
    );
    assert_clean(&containerd, &id);
}

#[test]
fn guest_writes_and_reads_a_file_in_tmp() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "files-tmp", &guests::files().unwrap());
    let id = ids::container_id("files-tmp");

    let out = containerd
        .run_rm(&image, &id, &[WASM_PATH, "/tmp/wasmbox-note.txt"])
        .unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "read back: written by the files guest\n");
    assert_clean(&containerd, &id);
}

#[test]
fn guest_writes_and_reads_a_file_in_its_working_dir() {
    require_integration!();
    let containerd = start();
    let reference = ids::image_ref("files-cwd");
    let built = image::compat_image(&reference, &guests::files().unwrap()).working_dir("/tmp");
    let image = containerd.import_image(built).unwrap();
    let id = ids::container_id("files-cwd");

    let out = containerd
        .run_rm(&image, &id, &[WASM_PATH, "note.txt"])
        .unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "read back: written by the files guest\n");
    assert_clean(&containerd, &id);
}
