//! `docker run --runtime io.containerd.wasmbox.v1`: a private dockerd (Debian's Docker Engine,
//! `WASMBOX_DOCKER_DIR`) on the test's private containerd. Docker 23 and later take a containerd
//! runtime name in `--runtime` as is, so nothing is registered with dockerd.
//! - compat images built by `wasmbox image build`, `docker load`ed: output, exit codes, traps,
//!   `docker stop` (SIGTERM, 143, well within the grace period), `docker rm`, nothing left; with
//!   Docker's own image store and with the containerd image store;
//! - wasm-layer images: only with the containerd image store (Docker's own store cannot load
//!   them); they run when dockerd tells containerd the container's image (Docker 28; 26 does
//!   not, and the shim then cannot find the wasm layer).
//!
//! Containers run with `--network none`: the private dockerd has no bridge (`--bridge=none`).

use std::time::{Duration, Instant};

use wasmbox_integration::docker::{Dockerd, ImageStore};
use wasmbox_integration::tools::Version;
use wasmbox_integration::{guests, ids, require_docker, suite, Containerd};

/// `docker stop -t GRACE`: SIGTERM, then SIGKILL after GRACE seconds.
const GRACE_SECS: u64 = 2;
/// How long a detached guest may take to print its first line (includes compiling it).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The first Docker release checked to set the containerd container's image (28.5.2); 26.1.5
/// leaves it empty. 27 was not checked and is treated like 26.
const FIRST_DOCKER_WITH_CONTAINER_IMAGE: Version = Version(28, 0, 0);

fn start_docker(containerd: &Containerd, store: ImageStore) -> Dockerd<'_> {
    Dockerd::start(containerd, store)
        .unwrap_or_else(|e| panic!("starting a private dockerd ({store:?} image store): {e:#}"))
}

/// Fails the test with dockerd's view of things when `id` left anything behind.
fn assert_clean(docker: &Dockerd, id: &str) {
    if let Err(e) = docker.assert_no_leftovers(id) {
        panic!("{e:#}\ndockerd log:\n{}", docker.log_tail(30));
    }
}

/// A compat image's greeting, exit code and trap through `docker run --rm`, each leaving nothing.
fn compat_images_run(store: ImageStore) {
    let containerd = suite::start();
    let docker = start_docker(&containerd, store);
    let hello = docker
        .build_and_load("compat", "docker-hello", &guests::hello().unwrap(), &[])
        .unwrap();
    let exit_code = docker
        .build_and_load("compat", "docker-exit", &guests::exit_code().unwrap(), &[])
        .unwrap();
    let trap = docker
        .build_and_load("compat", "docker-trap", &guests::trap().unwrap(), &[])
        .unwrap();

    let ran = docker.run_rm(&hello, &[], &[]).unwrap();
    assert_eq!(ran.output.code, 0, "{ran:?}");
    assert_eq!(ran.output.stdout, "hello from wasm\n", "{ran:?}");
    let id = ran.id.expect("docker wrote the container id");
    assert_clean(&docker, &id);

    // docker appends its arguments to the image's entrypoint (the module), as the image's cmd.
    let ran = docker.run_rm(&exit_code, &[], &["42"]).unwrap();
    assert_eq!(ran.output.code, 42, "{ran:?}");
    assert_clean(&docker, &ran.id.expect("docker wrote the container id"));

    let ran = docker.run_rm(&trap, &[], &[]).unwrap();
    assert_eq!(ran.output.code, 134, "{ran:?}");
    assert!(ran.output.stderr.contains("wasm trap"), "{ran:?}");
    assert_clean(&docker, &ran.id.expect("docker wrote the container id"));

    assert_eq!(docker.container_ids().unwrap(), Vec::<String>::new());
}

/// `docker run -d`, `docker stop -t 2`, `docker rm` of a guest that loops without host calls.
fn stop_and_rm(store: ImageStore) {
    let containerd = suite::start();
    let docker = start_docker(&containerd, store);
    let spin = docker
        .build_and_load("compat", "docker-spin", &guests::spin().unwrap(), &[])
        .unwrap();
    let name = ids::container_id("docker-stop");
    let id = docker.run_detached(&name, &spin, &[]).unwrap();
    docker
        .wait_for_log(&id, "spinning", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e:#}\ndockerd log:\n{}", docker.log_tail(30)));
    // It is our shim that runs it, in the cgroup the leftover check looks at.
    assert!(!docker.shims_of(&id).is_empty(), "no wasmbox shim for {id}");
    assert!(
        !docker.cgroups_of(&id).is_empty(),
        "no cgroup for {id} under {}",
        docker.cgroup_parent()
    );
    // The leftover check sees a live container, so its silence after rm means something.
    assert!(!docker.leftovers(&id).is_empty());

    let sent = Instant::now();
    docker
        .docker_ok(["stop", "-t", &GRACE_SECS.to_string(), id.as_str()])
        .unwrap();
    let took = sent.elapsed();
    let exit = docker.inspect(&id, "{{.State.ExitCode}}").unwrap();
    eprintln!("docker stop: exit code {exit} after {took:?}");

    // 143 = 128 + SIGTERM: the guest ended on docker's SIGTERM, not on the SIGKILL that follows
    // the grace period (137).
    assert_eq!(exit, "143");
    assert!(
        took < Duration::from_secs(GRACE_SECS),
        "docker stop took {took:?}, the whole grace period of {GRACE_SECS} s"
    );
    assert_eq!(docker.inspect(&id, "{{.State.Status}}").unwrap(), "exited");
    docker.docker_ok(["rm", id.as_str()]).unwrap();
    assert_clean(&docker, &id);
    assert_eq!(docker.container_ids().unwrap(), Vec::<String>::new());
}

#[test]
fn compat_image_prints_exits_and_traps_with_dockers_image_store() {
    require_docker!();
    compat_images_run(ImageStore::Classic);
}

#[test]
fn compat_image_prints_exits_and_traps_with_the_containerd_image_store() {
    require_docker!();
    compat_images_run(ImageStore::Containerd);
}

#[test]
fn docker_stop_ends_the_guest_with_sigterm_and_rm_leaves_nothing() {
    require_docker!();
    stop_and_rm(ImageStore::Classic);
}

#[test]
fn docker_stop_and_rm_with_the_containerd_image_store() {
    require_docker!();
    stop_and_rm(ImageStore::Containerd);
}

#[test]
fn wasm_layer_image_runs_with_the_containerd_image_store() {
    require_docker!();
    let containerd = suite::start();
    let docker = start_docker(&containerd, ImageStore::Containerd);
    let version = docker.server_version().unwrap();
    // The wasm image's own platform (wasip1/wasm); docker run asks for it like any other.
    let image = docker
        .build_and_load("wasm", "docker-hello-wasm", &guests::hello().unwrap(), &[])
        .unwrap();

    let ran = docker
        .run_rm(&image, &["--platform", "wasip1/wasm"], &[])
        .unwrap();

    if version >= FIRST_DOCKER_WITH_CONTAINER_IMAGE {
        assert_eq!(ran.output.code, 0, "Docker {version}: {ran:?}");
        assert_eq!(
            ran.output.stdout, "hello from wasm\n",
            "Docker {version}: {ran:?}"
        );
    } else {
        // The shim finds wasm layers through the containerd container's image, which this
        // Docker leaves empty: the entrypoint is then looked for in the (empty) rootfs.
        eprintln!("Docker {version} does not tell containerd the image: {ran:?}");
        assert_eq!(ran.output.code, 125, "Docker {version}: {ran:?}");
        assert!(
            ran.output.stderr.contains("not found in the container"),
            "Docker {version}: {ran:?}"
        );
    }
    if let Some(id) = &ran.id {
        assert_clean(&docker, id);
    }
    assert_eq!(docker.container_ids().unwrap(), Vec::<String>::new());
}

#[test]
fn dockers_own_image_store_cannot_load_a_wasm_layer_image() {
    require_docker!();
    let containerd = suite::start();
    let docker = start_docker(&containerd, ImageStore::Classic);
    let tar = docker
        .build_image(
            "wasm",
            "docker-classic-wasm",
            &guests::hello().unwrap(),
            &[],
        )
        .unwrap();

    let out = docker.load(&tar).unwrap();

    // Docker's graph drivers take only tar layers; its loader looks for a legacy image instead.
    eprintln!("docker load: {}{}", out.stdout_text(), out.stderr_text());
    assert!(
        !out.status.success(),
        "docker load took a wasm-layer image: {out:?}"
    );
    let images = docker
        .docker_ok(["images", "--format", "{{.Repository}}"])
        .unwrap();
    assert!(!images.contains("docker-classic-wasm"), "{images}");
}
