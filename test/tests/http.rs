//! `wasi:http/proxy` components are served, not run: the `http_hello` handler (C against
//! bindings wit-bindgen-c generates from Wasmtime's own wasi:http WIT) answers on the address
//! of `wasmbox.dev/http`, one fresh instance per request, in a network namespace of the
//! test's own, over HTTP/1.1 and h2c; what the handler prints reaches the container's log; a trap answers 500 and the
//! next request is served; a request past its timeout answers 504; SIGTERM lets the requests in
//! flight finish, then the server exits 0. A 100 MiB body streams through the handler both
//! ways in constant memory; outbound requests follow `wasmbox.dev/egress` (plain and TLS, the
//! TLS server verified against the container's own CA bundle).

use std::time::Duration;

use wasmbox_integration::http;
use wasmbox_integration::netns::NetNs;
use wasmbox_integration::upstream::EgressUpstreams;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::peak_rss_kib;
use wasmbox_integration::suite::{assert_clean, import_compat, start, start_http, stop_http};
use wasmbox_integration::config::CRI_WASMBOX_HANDLER;
use wasmbox_integration::cri::api::ContainerState;
use wasmbox_integration::cri::{self, Cri, Pod};
use wasmbox_integration::{guests, ids, image, require_integration, EventStream};

const ADDR: &str = "127.0.0.1:8080";
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn an_http_component_answers_1000_requests_from_50_clients() {
    require_integration!();
    let containerd = start();
    let ns = NetNs::create("http-hello").unwrap();
    let id = ids::container_id("http-hello");
    let log = start_handler(&containerd, &ns, &id, &[]);

    let answered = http::check_many(|| ns.connect_tcp(ADDR), 50, 20).unwrap();
    assert_eq!(answered, 1000);
    // HTTP/2 with prior knowledge on the same port: 200 requests multiplexed on one connection.
    let answered = http::check_h2c(ns.connect_tcp(ADDR).unwrap(), 200).unwrap();
    assert_eq!(answered, 200);
    // The handler's stdout, one line per request, in the container's log.
    wait_until("the handler's output in the log", Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("request /client-0/request-0\n") && l.contains("request /client-49/request-19\n"))
    })
    .unwrap_or_else(|e| panic!("{e:#}"));

    // A request whose handler traps answers 500; the server goes on serving.
    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let answer = client.get("/trap", false).unwrap();
    assert_eq!(answer.status, 500, "{answer:?}");
    let answer = client.get("/after-the-trap", false).unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello /after-the-trap\n"), "{answer:?}");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("wasmbox: request failed:"), "the trap is not in the container's log: {said}");

    // Nothing in flight: SIGTERM ends it at once, with 0.
    stop(&containerd, &id, &ns);
}

/// SIGTERM and waits for the exit: 0 (drained); nothing left, the port free.
fn stop(containerd: &wasmbox_integration::Containerd, id: &str, ns: &NetNs) {
    stop_http(containerd, id, ns, ADDR);
}

/// Starts the handler detached in `ns` with `flags`; returns its log once it accepts.
fn start_handler(containerd: &wasmbox_integration::Containerd, ns: &NetNs, id: &str, flags: &[&str]) -> std::path::PathBuf {
    let image = import_compat(containerd, id, &guests::http_hello().unwrap());
    start_image(containerd, ns, id, &image, flags)
}

/// As [`start_handler`], with an image of the test's.
fn start_image(containerd: &wasmbox_integration::Containerd, ns: &NetNs, id: &str, image: &str, flags: &[&str]) -> std::path::PathBuf {
    start_http(containerd, ns, id, image, ADDR, flags)
}

/// A 100 MiB request body is echoed back while it streams in, and the server's memory does
/// not grow with it: the init's peak resident size after the transfer is within 32 MiB of
/// what it was before (the body is three times that).
#[test]
fn a_100_mib_body_streams_both_ways_in_constant_memory() {
    require_integration!();
    let containerd = start();
    let ns = NetNs::create("http-echo").unwrap();
    let id = ids::container_id("http-echo");
    start_handler(&containerd, &ns, &id, &[]);
    let pid = containerd.task(&id).unwrap().expect("the task").pid;
    // Warm: one small echo first, so what is measured is the transfer, not the first request.
    assert_eq!(http::echo_stream(ns.connect_tcp(ADDR).unwrap(), "/echo", 1 << 20).unwrap(), 1 << 20);
    let before = peak_rss_kib(pid);

    const SIZE: u64 = 100 << 20;
    let echoed = http::echo_stream(ns.connect_tcp(ADDR).unwrap(), "/echo", SIZE).unwrap();
    assert_eq!(echoed, SIZE);
    let after = peak_rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "the server's peak resident size grew from {before} KiB to {after} KiB for a {SIZE}-byte body"
    );
    stop(&containerd, &id, &ns);
}

/// The handler calls out through `wasi:http/outgoing-handler` to servers the test runs on the
/// namespace's loopback, under `wasmbox.dev/egress`: a plain one by address, a TLS one by the
/// name the container's /etc/hosts gives it, whose certificate only the container's own CA
/// bundle (a CA made by the test) vouches for. Another port, the other scheme, or a host the
/// rules do not name answer `denied` (wasi:http's HTTP-request-denied), logged with the
/// destination.
#[test]
fn outbound_requests_follow_the_egress_rules() {
    require_integration!();
    let containerd = start();
    let ns = NetNs::create("http-egress").unwrap();
    let id = ids::container_id("http-egress");
    let upstreams = EgressUpstreams::start(&ns).unwrap();
    let (plain_port, tls_port, other_port) = upstreams.ports().unwrap();
    let image = containerd
        .import_image(upstreams.trusted_by(image::compat_image(&ids::image_ref(&id), &guests::http_hello().unwrap())))
        .unwrap();
    let log = start_image(&containerd, &ns, &id, &image, &[&upstreams.egress_flag().unwrap()]);

    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let mut fetch = |target: &str| client.get(&format!("/fetch/{target}"), false).unwrap();
    let answer = fetch(&format!("http/127.0.0.1:{plain_port}/plain"));
    assert_eq!((answer.status, answer.body.as_str()), (200, "upstream 200 pong /plain"), "{answer:?}");
    let answer = fetch(&format!("https/upstream.test:{tls_port}/secure"));
    assert_eq!((answer.status, answer.body.as_str()), (200, "upstream 200 pong /secure"), "{answer:?}\n{}", containerd.log_tail(30));
    for denied in [
        format!("http/127.0.0.1:{other_port}/other-port"),
        format!("https/127.0.0.1:{plain_port}/other-scheme"),
        format!("http/upstream.test:{tls_port}/plain-to-the-tls-port"),
        format!("http/elsewhere.test:{plain_port}/a-host-the-rules-do-not-name"),
    ] {
        let answer = fetch(&denied);
        assert_eq!((answer.status, answer.body.as_str()), (502, "denied\n"), "{denied}: {answer:?}");
    }
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!("wasmbox: outbound request to http://127.0.0.1:{other_port} denied by annotation wasmbox.dev/egress")),
        "the denial is not in the container's log: {said}"
    );
    stop(&containerd, &id, &ns);
}

/// A request past `wasmbox.dev/http-timeout` answers 504 and the next one is served; on
/// SIGTERM, 20 requests in flight all finish with their answers, then the server exits 0.
#[test]
fn slow_requests_time_out_or_finish_when_stopped() {
    require_integration!();
    let containerd = start();
    let ns = NetNs::create("http-slow").unwrap();
    let id = ids::container_id("http-slow");
    let log = start_handler(&containerd, &ns, &id, &["--annotation=wasmbox.dev/http-timeout=1s"]);

    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let answer = client.get("/sleep/3000", false).unwrap();
    assert_eq!(answer.status, 504, "{answer:?}");
    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let answer = client.get("/after-the-timeout", false).unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");

    std::thread::scope(|s| {
        let slow: Vec<_> = (0..20)
            .map(|i| {
                let ns = &ns;
                s.spawn(move || -> anyhow::Result<http::Answer> {
                    let mut c = http::Client::new(ns.connect_tcp(ADDR)?)?;
                    c.get(&format!("/sleep/700/slow-{i}-end"), false)
                })
            })
            .collect();
        // All 20 are in their handlers (each printed its line) before the signal.
        wait_until("20 slow requests in their handlers", Duration::from_secs(10), || {
            let said = std::fs::read_to_string(&log).ok()?;
            (0..20).all(|i| said.contains(&format!("/slow-{i}-end"))).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e:#}: {:?}", std::fs::read_to_string(&log)));
        let mut events = EventStream::start(&containerd, Duration::from_secs(10)).unwrap();
        containerd.kill_task(&id, "SIGTERM").unwrap();
        for (i, t) in slow.into_iter().enumerate() {
            let answer = t.join().expect("client thread").unwrap_or_else(|e| panic!("slow request {i}: {e:#}"));
            assert_eq!((answer.status, answer.body), (200, format!("hello /sleep/700/slow-{i}-end\n")));
        }
        let exit = events.wait_exit(&id, Duration::from_secs(30)).unwrap();
        assert_eq!(exit.exit_status(), Some(0), "{exit:?}");
    });
    containerd.wait_task_status(&id, "STOPPED", Duration::from_secs(10)).unwrap();
    containerd.delete_container(&id).unwrap();
    assert_clean(&containerd, &id);
}

/// The handler as a Kubernetes pod runs it: RuntimeClass `wasmbox`, a network of its own (a CNI
/// bridge), the access log from the pod's annotation, 1000 requests from 50 clients and 200
/// over h2c on the pod IP at the default port; kubelet's stop drains and exits 0.
#[test]
fn http_components_0_2_and_0_3_serve_side_by_side_on_their_pod_ip_through_cri() {
    require_integration!();
    let containerd = cri::start_with_pod_network().unwrap_or_else(|e| panic!("containerd with CRI and CNI: {e:#}"));
    let cri = Cri::connect(&containerd).unwrap();
    let image = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("http-cri"), &guests::http_hello().unwrap()),
    )
    .unwrap();
    let mut pod = Pod::run_in_pod_network(&cri, &containerd, "http-cri", CRI_WASMBOX_HANDLER, &[("wasmbox.dev/http-access-log", "true")])
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e:#}\n{}", containerd.log_tail(40)));
    let addr = format!("{}:8080", pod.ip().unwrap());
    let mut config = cri::container_config("hello", &image);
    cri::in_pod_network(&mut config);
    let id = pod.create_container(&config).unwrap();
    cri.start_container(&id).unwrap();
    let connect = || std::net::TcpStream::connect(&addr).map_err(anyhow::Error::from);
    wait_until(&format!("the handler on {addr}"), START_TIMEOUT, || connect().ok())
        .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_lines_mentioning(&id)));

    let answered = http::check_many(connect, 50, 20).unwrap();
    assert_eq!(answered, 1000);
    let answered = http::check_h2c(connect().unwrap(), 200).unwrap();
    assert_eq!(answered, 200);
    let log = pod.log_path(&config);
    wait_until("the access log line in the container log", Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("wasmbox-http: GET /client-49/request-19 HTTP/1.1 200") && l.contains("wasmbox-http: GET /h2c/request-199 HTTP/2.0 200"))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", std::fs::read_to_string(&log)));

    // A WASI 0.3 handler beside it, in a pod of its own on the same node: both generations
    // serve. (A pod's annotations are its containers': two handlers in one pod would both take
    // wasmbox.dev/http's port.)
    let image_p3 = cri::import_image(
        &containerd,
        image::compat_image(&ids::image_ref("http-cri-p3"), &guests::http_p3_hello().unwrap()),
    )
    .unwrap();
    let mut pod_p3 = Pod::run_in_pod_network(&cri, &containerd, "http-cri-p3", CRI_WASMBOX_HANDLER, &[])
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e:#}\n{}", containerd.log_tail(40)));
    let mut config_p3 = cri::container_config("hello-p3", &image_p3);
    cri::in_pod_network(&mut config_p3);
    let id_p3 = pod_p3.create_container(&config_p3).unwrap();
    cri.start_container(&id_p3).unwrap();
    let addr_p3 = format!("{}:8080", pod_p3.ip().unwrap());
    let connect_p3 = || std::net::TcpStream::connect(&addr_p3).map_err(anyhow::Error::from);
    wait_until(&format!("the 0.3 handler on {addr_p3}"), START_TIMEOUT, || connect_p3().ok())
        .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_lines_mentioning(&id_p3)));
    assert_eq!(http::check_many(connect_p3, 20, 10).unwrap(), 200);
    assert_eq!(http::check_h2c(connect_p3().unwrap(), 100).unwrap(), 100);
    assert_eq!(http::check_many(connect, 5, 5).unwrap(), 25, "the 0.2 handler beside it");

    for id in [&id, &id_p3] {
        cri.stop_container(id, 10).unwrap();
        let status = cri.wait_container_state(id, ContainerState::ContainerExited, Duration::from_secs(30)).unwrap();
        assert_eq!(status.exit_code, 0, "{status:?}");
    }
    // Both pods gone before anything is judged left behind (the check sees the whole node).
    pod_p3.stop_and_remove().unwrap();
    pod.stop_and_remove().unwrap();
    pod_p3.assert_nothing_left().unwrap();
    pod.assert_nothing_left().unwrap();
}

/// Waits for the server to close `stream` (end of file or reset); how long that took.
fn closed_by_server(mut stream: std::net::TcpStream, within: Duration) -> Duration {
    use std::io::Read;
    let started = std::time::Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the server did not close the connection within {within:?}: {e}"),
        }
    }
}

/// Connections that send nothing, or half a request head, and wait cannot starve the server:
/// 2000 of them (more than its connection bound and its descriptor limit) next to a normal
/// client, which still gets every answer; a connection that sends nothing is closed after the
/// idle timeout, one that sent half a head after the header timeout.
#[test]
fn idle_and_half_sent_connections_do_not_starve_the_server() {
    use std::io::Write;
    require_integration!();
    let containerd = start();
    let ns = NetNs::create("http-starve").unwrap();
    let id = ids::container_id("http-starve");
    start_handler(
        &containerd,
        &ns,
        &id,
        &["--annotation=wasmbox.dev/http-idle-timeout=3s", "--annotation=wasmbox.dev/http-header-timeout=2s"],
    );
    // The init's descriptor limit is the spec's (ctr's default spec: 1024), below 2000.
    let pid = containerd.task(&id).unwrap().expect("the handler's task").pid;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_default();
    assert_eq!(open_files.split_whitespace().nth(3), Some("1024"), "{open_files}");
    const HALF: &[u8] = b"GET /never-finished HTTP/1.1\r\nHost: x\r\n";
    let held = ns
        .run_in(|| {
            (0..2000)
                .map(|i| {
                    let mut s = std::net::TcpStream::connect(ADDR)?;
                    if i % 2 == 1 {
                        s.write_all(HALF)?;
                    }
                    Ok(s)
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("{e:#}"));

    let started = std::time::Instant::now();
    let answered = http::check_many(|| ns.connect_tcp(ADDR), 4, 5).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(answered, 20);
    assert!(started.elapsed() < Duration::from_secs(10), "the normal client waited {:?}", started.elapsed());
    drop(held);

    let idle = ns.connect_tcp(ADDR).unwrap();
    let mut half = ns.connect_tcp(ADDR).unwrap();
    half.write_all(HALF).unwrap();
    let (idle_after, half_after) = std::thread::scope(|s| {
        let idle = s.spawn(|| closed_by_server(idle, Duration::from_secs(20)));
        let half = s.spawn(|| closed_by_server(half, Duration::from_secs(20)));
        (idle.join().unwrap(), half.join().unwrap())
    });
    assert!(idle_after >= Duration::from_millis(2500) && idle_after < Duration::from_secs(10), "idle closed after {idle_after:?}");
    assert!(half_after >= Duration::from_millis(1500) && half_after < Duration::from_secs(10), "half-sent closed after {half_after:?}");
    // Still serving.
    assert_eq!(http::check_many(|| ns.connect_tcp(ADDR), 2, 2).unwrap(), 4);
    stop(&containerd, &id, &ns);
}
