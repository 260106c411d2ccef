//! The guest's filesystem: its `/` is the container's root filesystem with every mount at its
//! place, `/proc`, `/sys` and `/dev` unreachable by any path, read-only where the container is;
//! entrypoints from volumes; the memory limit holds.

use std::path::Path;

use sha2::Digest;
use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::image::{compat_image, image_without_entrypoint_file};
use wasmbox_integration::probe::{assert_memory_budget, mem_grow_reached, Probe};
use wasmbox_integration::suite::{assert_clean, bind, start, work_dir};
use wasmbox_integration::{guests, ids, require_integration, Containerd, RunOutput};

/// Runs `spec` (with `--rm`) to the end, expects exit 0, checks nothing is left.
fn run_ok(containerd: &Containerd, spec: &RunSpec) -> RunOutput {
    let out = containerd.run(spec).unwrap();
    assert_eq!(out.code, 0, "{out:?}\ncontainerd log:\n{}", containerd.log_lines_mentioning(&spec.id));
    assert_clean(containerd, &spec.id);
    out
}

/// The probe image: the probe at /app.wasm, files directly under `/`, and symlinks that
/// point at `/proc`, `/sys` and `/dev` in every way an image can.
fn probe_image(containerd: &Containerd, name: &str) -> String {
    let image = compat_image(&ids::image_ref(name), &guests::fs_probe().unwrap())
        .file("/config.json", b"{\"answer\": 42}\n".to_vec(), 0o644)
        .dir("/d", 0o755)
        .file("/work/rel.txt", b"relative to the cwd\n".to_vec(), 0o644)
        .symlink("/lnk-abs", "/proc/1/environ")
        .symlink("/lnk-rel", "proc/self/environ")
        .symlink("/lnk-chain", "lnk-rel")
        .symlink("/d/up", "../../proc/self/mounts")
        .symlink("/lnk-sys", "/sys/kernel")
        .symlink("/lnk-dev", "dev/null")
        .symlink("/lnk-ok", "config.json");
    containerd.import_image(image).unwrap()
}

/// A directory of the fixture's work space, made for one test.
const UNREACHABLE: &[&str] = &[
    "read:/proc/self/environ",
    "read:/proc/1/environ",
    "list:/sys/kernel",
    "read:/dev/null",
    "read:../proc/self/environ",
    "read:/d/../../proc/self/status",
    "read:/work/../../../proc/self/status",
    "read:/lnk-abs",
    "read:/lnk-rel",
    "read:/lnk-chain",
    "read:/d/up",
    "list:/lnk-sys",
    "read:/lnk-dev",
];

#[test]
fn guest_root_is_the_containers_filesystem_without_proc_sys_dev() {
    require_integration!();
    let containerd = start();
    let image = probe_image(&containerd, "fs-root");
    let id = ids::container_id("fs-root");
    let mut ops = vec![
        "preopens",
        "read:/config.json",
        "read:config.json",
        "read:/lnk-ok",
        "list:/",
        "create:/out.txt",
        "list:/proc",
        "list:/sys",
        "list:/dev",
    ];
    ops.extend_from_slice(UNREACHABLE);
    let out = run_ok(&containerd, &RunSpec::new(&image, &id).args(["/app.wasm"]).args(&ops));
    let p = Probe::parse(&out.stdout);

    // The guest finds one preopen, named "/".
    assert_eq!(p.ok("preopens"), "/");
    for op in ["read:/config.json", "read:config.json", "read:/lnk-ok"] {
        assert_eq!(p.ok(op), "{\"answer\": 42}", "{op}");
    }
    let root: Vec<String> = p.ok("list:/").split(',').map(String::from).collect();
    for name in ["app.wasm", "config.json", "d", "lnk-abs", "tmp", "work"] {
        assert!(root.contains(&name.to_string()), "/ lists {name}: {root:?}");
    }
    p.ok("create:/out.txt");
    // The three directories are there, empty: nothing of the kernel's is reachable.
    for dir in ["/proc", "/sys", "/dev"] {
        assert_eq!(p.ok(&format!("list:{dir}")), "", "{dir} must look empty");
    }
    for op in UNREACHABLE {
        p.err(op);
    }
}

/// Symlinks made at run time in a writable volume, and the host's `/proc` and `/sys` mounted
/// elsewhere: all out of reach.
const ESCAPES: &[&str] = &[
    "read:/rw/evil-abs",
    "read:/rw/evil-rel",
    "read:/rw/evil-deep",
    "read:/rw/shared-abs",
    "read:/rw/shared-rel",
    "read:/hostproc/self/environ",
    "read:/hostproc/1/environ",
    "list:/hostsys/kernel",
    "list:/hostsys/fs/cgroup",
];

#[test]
fn read_only_root_and_mounts_fail_writes_with_erofs_and_hide_proc_mounted_elsewhere() {
    require_integration!();
    let containerd = start();
    let image = probe_image(&containerd, "fs-ro");
    let ro = work_dir(&containerd, "ro");
    std::fs::write(ro.join("file.txt"), "from a read-only volume\n").unwrap();
    let rw = work_dir(&containerd, "rw");
    std::fs::write(rw.join("file.txt"), "from a writable volume\n").unwrap();
    // Made at run time by someone else sharing the volume (another container, the host).
    std::os::unix::fs::symlink("/proc/self/environ", rw.join("shared-abs")).unwrap();
    std::os::unix::fs::symlink("../../proc/1/environ", rw.join("shared-rel")).unwrap();
    let id = ids::container_id("fs-ro");
    let spec = RunSpec::new(&image, &id)
        .flag("--read-only")
        .flag(&bind(&ro, "/data", "ro"))
        .flag(&bind(&rw, "/rw", "rw"))
        // The host's /proc and /sys, mounted elsewhere: still out of reach.
        .flag(&bind(Path::new("/proc"), "/hostproc", "ro"))
        .flag(&bind(Path::new("/sys"), "/hostsys", "ro"))
        .args(["/app.wasm"])
        .args([
            "create:/out.txt",
            "create:/tmp/out.txt",
            "create:/data/new.txt",
            "read:/data/file.txt",
            "read:/rw/file.txt",
            "create:/rw/new.txt",
            // Symlinks made at run time in a writable mount.
            "symlink:/proc/self/environ:/rw/evil-abs",
            "symlink:../proc/self/environ:/rw/evil-rel",
            "symlink:../../../../proc/1/environ:/rw/evil-deep",
        ])
        .args(ESCAPES);
    let out = run_ok(&containerd, &spec);
    let p = Probe::parse(&out.stdout);

    // The kernel answers, as under runc: EROFS, not a permission error.
    for op in ["create:/out.txt", "create:/tmp/out.txt", "create:/data/new.txt"] {
        assert_eq!(p.err(op), "EROFS", "{op}");
    }
    assert_eq!(p.ok("read:/data/file.txt"), "from a read-only volume");
    assert_eq!(p.ok("read:/rw/file.txt"), "from a writable volume");
    p.ok("create:/rw/new.txt");
    // The guest may make relative symlinks; Wasmtime refuses absolute ones.
    p.err("symlink:/proc/self/environ:/rw/evil-abs");
    p.ok("symlink:../proc/self/environ:/rw/evil-rel");
    p.ok("symlink:../../../../proc/1/environ:/rw/evil-deep");
    for op in ESCAPES {
        p.err(op);
    }
    // The writes went to the volume, as the container sees it.
    assert!(rw.join("evil-rel").symlink_metadata().is_ok());
}

#[test]
fn the_environment_is_the_specs_without_a_pwd_nobody_needs() {
    require_integration!();
    let containerd = start();
    // A preview 1 module at "/" needs no PWD, and gets none.
    let image = probe_image(&containerd, "fs-env");
    let id = ids::container_id("fs-env");
    let out = run_ok(&containerd, &RunSpec::new(&image, &id).args(["/app.wasm", "env:PWD"]));
    assert_eq!(Probe::parse(&out.stdout).err("env:PWD"), "ENOENT", "{out:?}");
    // A component has its initial cwd: away from "/" it gets no PWD either.
    let component = compat_image(&ids::image_ref("fs-env-component"), &guests::fs_probe_component().unwrap())
        .dir("/work", 0o755);
    let image = containerd.import_image(component).unwrap();
    let id = ids::container_id("fs-env-component");
    let spec = RunSpec::new(&image, &id).flag("--cwd=/work").args(["/app.wasm", "env:PWD"]);
    let out = run_ok(&containerd, &spec);
    assert_eq!(Probe::parse(&out.stdout).err("env:PWD"), "ENOENT", "{out:?}");
}

#[test]
fn a_non_root_cwd_reaches_the_guest_as_pwd() {
    require_integration!();
    let containerd = start();
    let image = probe_image(&containerd, "fs-cwd");
    let id = ids::container_id("fs-cwd");
    let spec = RunSpec::new(&image, &id).flag("--cwd=/work").args([
        "/app.wasm",
        "preopens",
        "read:/config.json",
        "env:PWD",
        "chdir-pwd",
        "cwd",
        "read:rel.txt",
        "read:./rel.txt",
        "read:../config.json",
    ]);
    let out = run_ok(&containerd, &spec);
    let p = Probe::parse(&out.stdout);
    // Absolute paths reach the container's root whatever the cwd.
    assert_eq!(p.ok("preopens"), "/");
    assert_eq!(p.ok("read:/config.json"), "{\"answer\": 42}");
    // Preview 1 cannot carry a cwd (wasi-libc starts at "/"): PWD does, and a guest that
    // takes it has getcwd and relative paths as in the container.
    assert_eq!(p.ok("env:PWD"), "/work");
    p.ok("chdir-pwd");
    assert_eq!(p.ok("cwd"), "/work");
    assert_eq!(p.ok("read:rel.txt"), "relative to the cwd");
    assert_eq!(p.ok("read:./rel.txt"), "relative to the cwd");
    assert_eq!(p.ok("read:../config.json"), "{\"answer\": 42}");
}

/// Hex SHA-256 of `bytes`: the compile cache names entries by it.
fn digest(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn cache_entries(containerd: &Containerd, digest: &str) -> usize {
    std::fs::read_dir(&containerd.paths().cache)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(digest))
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".sum"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn entrypoints_from_a_mounted_volume_run_as_wasm_and_are_cached() {
    require_integration!();
    let containerd = start();
    let modules = work_dir(&containerd, "modules");
    let hello = guests::hello().unwrap();
    std::fs::write(modules.join("hello.wasm"), hello.as_slice()).unwrap();
    std::fs::copy(guests::sources_dir().join("hello.wat"), modules.join("hello.wat")).unwrap();
    // The image does not have the file: only the volume does.
    let image = containerd
        .import_image(image_without_entrypoint_file(&ids::image_ref("vol-entry"), "/modules/hello.wasm"))
        .unwrap();
    for (i, entry) in ["/modules/hello.wasm", "/modules/hello.wat", "/modules/hello.wasm"].iter().enumerate() {
        let id = ids::container_id("vol-entry");
        let spec = RunSpec::new(&image, &id).flag(&bind(&modules, "/modules", "ro")).args([*entry]);
        let out = run_ok(&containerd, &spec);
        assert_eq!(out.stdout, "hello from wasm\n", "{entry} (run {i}): {out:?}");
    }
    // One compile for the module, however often it runs.
    let before = std::fs::read_dir(&containerd.paths().cache).unwrap().count();
    assert!(cache_entries(&containerd, &digest(&hello)) >= 1, "the module is in the cache");
    let id = ids::container_id("vol-entry");
    run_ok(
        &containerd,
        &RunSpec::new(&image, &id).flag(&bind(&modules, "/modules", "ro")).args(["/modules/hello.wasm"]),
    );
    assert_eq!(std::fs::read_dir(&containerd.paths().cache).unwrap().count(), before, "no new compile");
}

#[test]
fn memory_growth_is_refused_before_the_container_is_oom_killed() {
    require_integration!();
    let containerd = start();
    let image = containerd
        .import_image(compat_image(&ids::image_ref("mem-grow"), &guests::mem_grow().unwrap()))
        .unwrap();
    for limit_mib in [16u64, 64, 256] {
        let id = ids::container_id("mem-grow");
        let spec = RunSpec::new(&image, &id).flag(&format!("--memory-limit={}", limit_mib << 20));
        let out = containerd.run(&spec).unwrap();
        // Exit 0 with the guest's own line: it saw memory.grow fail and the container lived.
        assert_eq!(out.code, 0, "limit {limit_mib} MiB: {out:?}");
        let reached = mem_grow_reached(&out.stdout).unwrap_or_else(|| panic!("unexpected output: {out:?}"));
        // For the record (docs/architecture.md): what the runtime itself took.
        eprintln!(
            "limit {limit_mib} MiB: the guest reached {reached} MiB; {}",
            containerd.log_lines_mentioning("memory budget").lines().last().unwrap_or_default()
        );
        assert_memory_budget(limit_mib, reached);
        assert_clean(&containerd, &id);
    }
}
