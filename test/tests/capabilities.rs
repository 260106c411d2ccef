//! The capability policy: `wasmbox.dev/` annotations narrow the guest (preopens, timeout), the
//! operator's config file (the runtime's ConfigPath) sets defaults and caps, and a bad
//! annotation or file fails Create with a message naming it.

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::image::{compat_image, native_image_at};
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::run_captured;
use wasmbox_integration::probe::Probe;
use wasmbox_integration::suite::{config_file, import_compat, kill_and_remove, run_to_end, start, START_TIMEOUT};
use wasmbox_integration::{guests, ids, require_integration, Containerd};

fn annotation(key: &str, value: &str) -> String {
    format!("--annotation={key}={value}")
}

/// The probe with a data directory, a secret outside it, and links from inside out.
fn probe_image(containerd: &Containerd, name: &str) -> String {
    let image = compat_image(&ids::image_ref(name), &guests::fs_probe().unwrap())
        .file("/data/hello.txt", b"data file\n".to_vec(), 0o644)
        .file("/etc/secret", b"secret\n".to_vec(), 0o644)
        .dir("/scratch", 0o777)
        .symlink("/data/abs-dir", "/etc")
        .symlink("/data/abs-file", "/etc/secret")
        .symlink("/data/rel-dir", "../etc")
        .symlink("/data/chain", "rel-dir");
    containerd.import_image(image).unwrap()
}

const ESCAPES: &[&str] = &[
    "read:/etc/secret",
    "read:/app.wasm",
    "read:/data/../etc/secret",
    "read:/data/abs-dir/secret",
    "read:/data/abs-file",
    "read:/data/rel-dir/secret",
    "read:/data/chain/secret",
    "list:/",
    "list:/etc",
];

#[test]
fn preopens_annotation_narrows_the_guests_filesystem() {
    require_integration!();
    let containerd = start();
    let image = probe_image(&containerd, "cap-preopens");
    let id = ids::container_id("cap-preopens");
    let mut ops = vec!["preopens", "read:/data/hello.txt", "list:/data", "create:/data/new", "create:/scratch/new"];
    ops.extend_from_slice(ESCAPES);
    // Links made at run time in the writable preopen: a hard link to a file outside cannot be
    // named, and symlinks out of it lead nowhere (the kernel's lookup is the preopen's).
    ops.extend_from_slice(&[
        "link:/etc/secret:/scratch/hl",
        "link:/scratch/../etc/secret:/scratch/hl2",
        "symlink:/etc/secret:/scratch/abs",
        "read:/scratch/abs",
        "symlink:../etc/secret:/scratch/rel",
        "read:/scratch/rel",
        "symlink:../../../../etc:/scratch/deep",
        "list:/scratch/deep",
        "link:/data/hello.txt:/scratch/across",
    ]);
    let spec = RunSpec::new(&image, &id)
        .flag(&annotation("wasmbox.dev/preopens", "/data:ro,/scratch"))
        .args(["/app.wasm"])
        .args(&ops);
    let out = run_to_end(&containerd, &spec);
    assert_eq!(out.code, 0, "{out:?}");
    let p = Probe::parse(&out.stdout);
    // Exactly the two directories, in the order given, under their own names.
    assert_eq!(p.ok("preopens"), "/data,/scratch");
    assert_eq!(p.ok("read:/data/hello.txt"), "data file");
    assert!(p.ok("list:/data").contains("hello.txt"));
    p.err("create:/data/new");
    p.ok("create:/scratch/new");
    for op in ESCAPES {
        p.err(op);
    }
    for op in [
        "link:/etc/secret:/scratch/hl",
        "link:/scratch/../etc/secret:/scratch/hl2",
        "read:/scratch/abs",
        "read:/scratch/rel",
        "list:/scratch/deep",
        // Across two preopens, as across two mounts: not one directory's to give.
        "link:/data/hello.txt:/scratch/across",
    ] {
        p.err(op);
    }
    // Whether Wasmtime lets the guest make such symlinks at all (it refuses absolute targets)
    // does not matter: none of them is followed out of the preopen.
}

#[test]
fn preopens_none_gives_no_filesystem() {
    require_integration!();
    let containerd = start();
    let image = probe_image(&containerd, "cap-nofs");
    let id = ids::container_id("cap-nofs");
    let spec = RunSpec::new(&image, &id)
        .flag(&annotation("wasmbox.dev/preopens", "none"))
        .args(["/app.wasm", "preopens", "read:/data/hello.txt", "list:/"]);
    let out = run_to_end(&containerd, &spec);
    assert_eq!(out.code, 0, "{out:?}");
    let p = Probe::parse(&out.stdout);
    assert_eq!(p.ok("preopens"), "");
    p.err("read:/data/hello.txt");
    p.err("list:/");
}

#[test]
fn bad_annotations_and_config_files_fail_create_with_their_name() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "cap-bad", &guests::hello().unwrap());
    let fails = |name: &str, flags: &[String], expect: &[&str]| {
        let id = ids::container_id(name);
        let mut spec = RunSpec::new(&image, &id);
        for f in flags {
            spec = spec.flag(f);
        }
        let out = run_to_end(&containerd, &spec);
        assert_ne!(out.code, 0, "{name}: {out:?}");
        for e in expect {
            assert!(out.stderr.contains(e), "{name}: ctr should show {e:?}: {out:?}");
        }
    };
    fails("cap-typo", &[annotation("wasmbox.dev/preopen", "/data")], &["wasmbox.dev/preopen", "unknown wasmbox annotation"]);
    fails("cap-badtime", &[annotation("wasmbox.dev/timeout", "soon")], &["wasmbox.dev/timeout", "not a duration"]);
    fails("cap-nodir", &[annotation("wasmbox.dev/preopens", "/nope")], &["\"/nope\" is not a directory in the container"]);
    fails("cap-egress", &[annotation("wasmbox.dev/egress", "db:http")], &["wasmbox.dev/egress", "is not a port"]);

    let bad = config_file(&containerd, "cap-badconf", "[egress]\ndefualt = \"deny\"\n");
    fails(
        "cap-badconf",
        &[format!("--runtime-config-path={}", bad.display())],
        &[&bad.display().to_string(), "defualt"],
    );
    let missing = containerd.paths().work.join("no-such-wasmbox.toml");
    fails(
        "cap-noconf",
        &[format!("--runtime-config-path={}", missing.display())],
        &[&missing.display().to_string(), "No such file"],
    );
    let capped = config_file(&containerd, "cap-capped", "[limits]\nmax_timeout = \"10s\"\n");
    fails(
        "cap-capped",
        &[format!("--runtime-config-path={}", capped.display()), annotation("wasmbox.dev/timeout", "1h")],
        &["limits.max_timeout (10s)", &capped.display().to_string()],
    );
    // A good file changes nothing for a guest it does not restrict.
    let good = config_file(&containerd, "cap-goodconf", "[egress]\ndefault = \"allow\"\n[limits]\nmax_timeout = \"1h\"\n");
    let id = ids::container_id("cap-goodconf");
    let out = run_to_end(&containerd, &RunSpec::new(&image, &id).flag(&format!("--runtime-config-path={}", good.display())));
    assert_eq!((out.code, out.stdout.as_str()), (0, "hello from wasm\n"), "{out:?}");
}

#[test]
fn a_guest_past_its_timeout_ends_with_124() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "cap-timeout", &guests::spin().unwrap());
    // From the annotation, and from the operator's default.
    let default = config_file(&containerd, "cap-timeout-default", "[limits]\ndefault_timeout = \"1s\"\n");
    for (name, flag) in [
        ("cap-timeout", annotation("wasmbox.dev/timeout", "1s")),
        ("cap-timeout-default", format!("--runtime-config-path={}", default.display())),
    ] {
        let id = ids::container_id(name);
        let out = run_to_end(&containerd, &RunSpec::new(&image, &id).flag(&flag));
        assert_eq!(out.code, 124, "{name}: {out:?}");
        assert!(out.stderr.contains("timed out after 1s"), "{name}: the reason is on stderr: {out:?}");
    }
}

/// Symlinks swapped in while the guest walks a path: a native init swaps a directory and
/// symlinks out of the preopen (absolute and relative) in and out of `/scratch/x`, as fast as
/// it can, while a wasm exec with the same preopens reads `/scratch/x/f` 20000 times. Every
/// read finds the file inside or fails; none reaches the file outside.
#[test]
fn symlinks_swapped_during_a_walk_never_lead_out() {
    require_integration!();
    let containerd = start();
    let image = native_image_at(&ids::image_ref("cap-race"), "/swap", &guests::native_swap().unwrap())
        .file("/app.wasm", guests::fs_probe().unwrap().to_vec(), 0o644)
        .dir("/scratch", 0o777);
    let image = containerd.import_image(image).unwrap();
    let id = ids::container_id("cap-race");
    let log = containerd.paths().work.join(format!("{id}.log"));
    let spec = RunSpec::new(&image, &id)
        .flag(&annotation("wasmbox.dev/preopens", "/scratch"))
        .flag(&format!("--log-uri=file://{}", log.display()));
    containerd.run_detached(&spec).unwrap();
    wait_until("the swapper to start swapping", START_TIMEOUT, || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("swapping").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", std::fs::read_to_string(&log).unwrap_or_default()));

    let op = "readloop:20000:/scratch/x/f";
    let mut cmd = containerd.ctr_command();
    cmd.args(["task", "exec", "--exec-id", "race", &id, "/app.wasm", op]);
    let out = run_captured(&mut cmd, None, START_TIMEOUT).unwrap();
    assert_eq!(out.code(), 0, "{}{}", out.stdout_text(), out.stderr_text());
    let counts = Probe::parse(&out.stdout_text()).ok(op);
    let count = |name: &str| -> u64 {
        counts
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {counts:?}"))
    };
    eprintln!("{op}: {counts}");
    assert_eq!((count("secret"), count("other")), (0, 0), "a walk led out of the preopen: {counts}");
    assert!(count("inside") > 0, "the directory was never seen, so nothing raced: {counts}");
    kill_and_remove(&containerd, &id);
}
