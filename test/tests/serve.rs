//! Preview 1 modules serving on preopened listeners (`wasmbox.dev/listen`): the `server` guest
//! (C, wasi-libc's `accept`/`recv`/`send`/`poll`) answers HTTP/1.1 on the listeners the init
//! bound and preopened for it, reads a file from a preopened directory at the same time, and
//! stops on SIGTERM while it waits in `poll`; the port or socket file is gone afterwards.
//!
//! TCP runs in a network namespace of the test's own (loopback only, `ctr run --with-ns`),
//! so the fixed port is the test's alone.

use std::path::Path;
use std::time::Duration;

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::http::{self, Client};
use wasmbox_integration::netns::NetNs;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::suite::{run_to_end, signal_and_remove, start, start_logged};
use wasmbox_image::ImageBuilder;
use wasmbox_integration::config::CRI_WASMBOX_HANDLER;
use wasmbox_integration::cri::api::ContainerState;
use wasmbox_integration::cri::{self, Cri, Pod};
use wasmbox_integration::{guests, ids, image, require_integration, Containerd};

const LISTEN: &str = "wasmbox.dev/listen";
const ADDR: &str = "127.0.0.1:8080";
const CLIENTS: usize = 20;
const REQUESTS_PER_CLIENT: usize = 10;
const GREETING: &str = "greetings from /data\n";
/// SIGTERM to exit, as for any guest (see signals.rs).
const KILL_BUDGET: Duration = Duration::from_secs(2);
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The server image: the guest at `/app.wasm`, a file to serve in `/data`.
fn server_image_builder(name: &str) -> ImageBuilder {
    image::compat_image(&ids::image_ref(name), &guests::server().unwrap())
        .dir("/data", 0o755)
        .file("/data/greeting.txt", GREETING.as_bytes().to_vec(), 0o644)
}

fn server_image(containerd: &Containerd, name: &str) -> String {
    containerd
        .import_image(server_image_builder(name))
        .unwrap_or_else(|e| panic!("importing {name}: {e:#}"))
}

/// Starts the server detached with `flags`, its output in a log file; returns the log path
/// once the guest says it is serving.
fn start_server(
    containerd: &Containerd,
    image: &str,
    id: &str,
    flags: &[String],
) -> std::path::PathBuf {
    let mut spec = RunSpec::new(image, id).env("FILE", "/data/greeting.txt");
    for f in flags {
        spec = spec.flag(f);
    }
    let log = start_logged(containerd, spec);
    wait_until("the server to say it is serving", START_TIMEOUT, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("serving"))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nlog: {:?}\ncontainerd log:\n{}",
            std::fs::read_to_string(&log),
            containerd.log_tail(40)
        )
    });
    log
}

/// Sends SIGTERM, expects exit status 143 within the budget, deletes, checks nothing is left.
fn stop_server(containerd: &Containerd, id: &str) {
    let (exit, took) = signal_and_remove(containerd, id, "SIGTERM");
    assert_eq!(exit.exit_status(), Some(143), "{exit:?}");
    assert!(
        took <= KILL_BUDGET,
        "SIGTERM took {took:?} to stop the server blocked in poll"
    );
}

#[test]
fn a_preview1_server_answers_20_clients_on_its_preopened_listener() {
    require_integration!();
    let containerd = start();
    let image = server_image(&containerd, "serve-tcp");
    let ns = NetNs::create("serve-tcp").unwrap();
    let id = ids::container_id("serve-tcp");
    let flags = [
        ns.ctr_flag(),
        format!("--annotation={LISTEN}=tcp:{ADDR}"),
        // Only /data: the listener (descriptor 3) and the directory (4) must both work.
        "--annotation=wasmbox.dev/preopens=/data:ro".to_string(),
    ];
    let log = start_server(&containerd, &image, &id, &flags);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("serving LISTEN_FDS=1 LISTEN_FDNAMES=tcp-127.0.0.1-8080"),
        "{said:?}"
    );

    // 20 concurrent keep-alive clients, 10 requests each, every answer checked.
    let answered = http::check_many(|| ns.connect_tcp(ADDR), CLIENTS, REQUESTS_PER_CLIENT).unwrap();
    assert_eq!(answered, CLIENTS * REQUESTS_PER_CLIENT);

    // The file from the preopened directory, and a connection the server ends (shutdown).
    let mut client = Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let answer = client.get("/file", true).unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str(), answer.close),
        (200, GREETING, true),
        "{answer:?}"
    );
    assert!(
        client.at_end().unwrap(),
        "the server did not end the connection"
    );

    // Stopped while it waits in poll; the port is free again.
    stop_server(&containerd, &id);
    ns.listen_tcp(ADDR)
        .expect("the server's port is still taken after it ended");
}

#[test]
fn a_preview1_server_listens_on_a_unix_socket_in_a_volume() {
    require_integration!();
    let containerd = start();
    let image = server_image(&containerd, "serve-unix");
    let volume = containerd
        .paths()
        .work
        .join(ids::container_id("serve-unix-vol"));
    std::fs::create_dir_all(&volume).unwrap();
    let id = ids::container_id("serve-unix");
    let flags = [
        format!(
            "--mount=type=bind,src={},dst=/sockets,options=rbind:rw",
            volume.display()
        ),
        format!("--annotation={LISTEN}=unix:/sockets/app.sock"),
    ];
    let log = start_server(&containerd, &image, &id, &flags);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("LISTEN_FDNAMES=unix-/sockets/app.sock"),
        "{said:?}"
    );
    let socket = volume.join("app.sock");
    let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let mut client = Client::unix(stream).unwrap();
    for r in 0..5 {
        let answer = client.get(&format!("/unix-{r}"), false).unwrap();
        assert_eq!(answer.body, format!("hello /unix-{r}\n"));
    }
    let answer = client.get("/file", false).unwrap();
    assert_eq!(
        answer.body, GREETING,
        "the whole filesystem is preopened after the listener"
    );
    drop(client);
    stop_server(&containerd, &id);
    assert!(
        !Path::new(&socket).exists(),
        "the socket file {} is left",
        socket.display()
    );
}

#[test]
fn a_listener_that_cannot_be_bound_ends_the_guest_with_the_reason() {
    require_integration!();
    let containerd = start();
    let image = server_image(&containerd, "serve-taken");
    let ns = NetNs::create("serve-taken").unwrap();
    let _taken = ns.listen_tcp(ADDR).unwrap();
    let id = ids::container_id("serve-taken");
    let spec = RunSpec::new(&image, &id)
        .flag(&ns.ctr_flag())
        .flag(&format!("--annotation={LISTEN}=tcp:{ADDR}"));
    let out = run_to_end(&containerd, &spec);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "cannot listen on tcp:{ADDR}: Address already in use"
        )),
        "{out:?}"
    );
}

/// The same server as a Kubernetes pod would run it: RuntimeClass `wasmbox`, the listener from
/// the pod's annotation, the pod's own network (CNI bridge), clients on the pod IP.
#[test]
fn a_preview1_server_answers_on_its_pod_ip_through_cri() {
    require_integration!();
    let containerd = cri::start_with_pod_network().unwrap_or_else(|e| panic!("containerd with CRI and CNI: {e:#}"));
    let cri = Cri::connect(&containerd).unwrap();
    let image = cri::import_image(&containerd, server_image_builder("serve-cri")).unwrap();
    let mut pod = Pod::run_in_pod_network(&cri, &containerd, "serve-cri", CRI_WASMBOX_HANDLER, &[(LISTEN, "tcp:8080")])
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e:#}\n{}", containerd.log_tail(40)));
    let addr = format!("{}:8080", pod.ip().unwrap());
    let mut config = cri::container_config("server", &image);
    cri::in_pod_network(&mut config);
    config.envs.push(cri::env("FILE", "/data/greeting.txt"));
    let id = pod.create_container(&config).unwrap();
    cri.start_container(&id).unwrap();
    let connect = || std::net::TcpStream::connect(&addr).map_err(anyhow::Error::from);
    wait_until(&format!("the server on {addr}"), START_TIMEOUT, || connect().ok())
        .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_lines_mentioning(&id)));

    let answered = http::check_many(connect, CLIENTS, REQUESTS_PER_CLIENT).unwrap();
    assert_eq!(answered, CLIENTS * REQUESTS_PER_CLIENT);
    let answer = Client::new(connect().unwrap()).unwrap().get("/file", false).unwrap();
    assert_eq!(answer.body, GREETING);

    // kubelet's stop: SIGTERM, then the pod goes; nothing is left.
    cri.stop_container(&id, 10).unwrap();
    let status = cri.wait_container_state(&id, ContainerState::ContainerExited, Duration::from_secs(30)).unwrap();
    assert_eq!(status.exit_code, 143, "{status:?}");
    pod.stop_and_remove().unwrap();
    pod.assert_nothing_left().unwrap();
}
