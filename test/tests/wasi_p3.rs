//! WASI 0.3 components, under the same sandbox as 0.2 ones: a command written in C against the
//! 0.3 interfaces (args, environment, stdout as a stream, files through a descriptor's stream,
//! exit), built in the test with wit-bindgen-c, and one in the component text format; and a
//! `wasi:http/service@0.3.0` handler in C, served where a 0.2 one is.

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::image::compat_image;
use wasmbox_integration::netns::NetNs;
use wasmbox_integration::probe::assert_memory_budget;
use wasmbox_integration::process::peak_rss_kib;
use wasmbox_integration::suite::{assert_clean, bind, import_compat, run_to_end, start, start_http, stop_http, work_dir};
use wasmbox_integration::upstream::EgressUpstreams;
use wasmbox_integration::{guests, http, ids, image, require_integration, Containerd};

const ADDR: &str = "127.0.0.1:8080";

#[test]
fn a_wasi_0_3_command_gets_its_args_env_and_files_and_exits_with_its_code() {
    require_integration!();
    let containerd = start();
    let image = compat_image(&ids::image_ref("p3-command"), &guests::p3_command().unwrap());
    let image = containerd.import_image(image).unwrap();
    let rw = work_dir(&containerd, "p3-rw");
    let ro = work_dir(&containerd, "p3-ro");
    let id = ids::container_id("p3-command");
    let spec = RunSpec::new(&image, &id)
        .env("GREETING", "hello 0.3")
        .flag(&bind(&rw, "/rw", "rw"))
        .flag(&bind(&ro, "/ro", "ro"))
        .args(["/app.wasm", "two words", "write:/rw/out.txt", "write:/ro/out.txt", "exit:5"]);

    let out = containerd.run(&spec).unwrap();

    assert_eq!(out.code, 5, "the status exit-with-code gave: {out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..5], ["arg[0]=/app.wasm", "arg[1]=two words", "arg[2]=write:/rw/out.txt", "arg[3]=write:/ro/out.txt", "arg[4]=exit:5"], "{out:?}");
    assert!(lines.contains(&"env GREETING=hello 0.3"), "{out:?}");
    // Exactly the spec's environment: no PWD that nobody set.
    assert!(!lines.iter().any(|l| l.starts_with("env PWD=")), "{out:?}");
    assert!(lines.contains(&"write:/rw/out.txt ok"), "{out:?}");
    assert_eq!(std::fs::read_to_string(rw.join("out.txt")).unwrap(), "written by wasi 0.3\n");
    // A read-only mount refuses the write. (Its code is `io` for components, not `read-only`:
    // Wasmtime 48 has no mapping for EROFS; see docs/capabilities.md.)
    assert!(lines.iter().any(|l| l.starts_with("write:/ro/out.txt err ")), "{out:?}");
    assert!(!ro.join("out.txt").exists());
    assert_clean(&containerd, &id);
}

#[test]
fn wasi_0_3_command_gets_its_args_prints_and_exits_with_its_code() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "p3-args", &guests::p3_args().unwrap());
    let id = ids::container_id("p3-args");

    let out = containerd.run_rm(&image, &id, &["/app.wasm", "one", "two words"]).unwrap();

    // The exit status is the argument count: what `exit-with-code` says reaches containerd.
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "hello from wasi 0.3\n/app.wasm\none\ntwo words\n");
    assert_clean(&containerd, &id);
}

#[test]
fn what_the_host_lacks_fails_create_with_one_line_naming_it() {
    require_integration!();
    let containerd = start();
    for (guest, says) in [
        ("p3_unknown_export", "wasi:nonexistent/world@0.3.0"),
        ("p3_unknown_import", "wasi:nonexistent/thing@0.3.0"),
    ] {
        let wasm = guests::build(guest, guests::Kind::Wat).unwrap();
        let image = import_compat(&containerd, &guest.replace('_', "-"), &wasm);
        let id = ids::container_id(&guest.replace('_', "-"));
        let out = containerd.run_rm(&image, &id, &[]).unwrap();
        assert_ne!(out.code, 0, "{out:?}");
        let line = out.stderr.lines().find(|l| l.contains("failed to create shim task")).unwrap_or_default();
        assert!(line.contains(says), "{guest}: {out:?}");
        assert_clean(&containerd, &id);
    }
}

/// The C 0.3 handler (`http_p3_hello.c`) served on [`ADDR`] with `flags`, in a network
/// namespace named `name` of its own; the fixture, the namespace and the container's id.
fn serve_hello(name: &str, flags: &[&str]) -> (Containerd, NetNs, String) {
    let containerd = start();
    let ns = NetNs::create(name).unwrap();
    let id = ids::container_id(name);
    let image = import_compat(&containerd, name, &guests::http_p3_hello().unwrap());
    start_http(&containerd, &ns, &id, &image, ADDR, flags);
    (containerd, ns, id)
}

#[test]
fn a_wasi_0_3_handler_answers_over_http1_and_h2c_with_trailers_and_drains_on_sigterm() {
    require_integration!();
    let (containerd, ns, id) = serve_hello("http-p3", &[]);

    // Every answer checked: "hello <path>" for its own path.
    assert_eq!(http::check_many(|| ns.connect_tcp(ADDR), 20, 10).unwrap(), 200);
    assert_eq!(http::check_h2c(ns.connect_tcp(ADDR).unwrap(), 100).unwrap(), 100);
    // Trailers the handler sets after its body reach the client (HTTP/2 carries them).
    let (status, body, trailers) = http::h2c_get_with_trailers(ns.connect_tcp(ADDR).unwrap(), "/trailers").unwrap();
    assert_eq!((status, body.as_str()), (200, "hello /trailers\n"));
    assert_eq!(trailers, [("x-wasmbox-trailer".to_string(), "wasi 0.3".to_string())]);

    stop_http(&containerd, &id, &ns, ADDR);
}

#[test]
fn a_wasi_0_3_handler_that_traps_answers_500_and_one_past_its_timeout_504() {
    require_integration!();
    let (containerd, ns, id) = serve_hello("http-p3-fail", &["--annotation=wasmbox.dev/http-timeout=1s"]);
    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();

    let answer = client.get("/trap", false).unwrap();
    assert_eq!(answer.status, 500, "{answer:?}");
    let answer = client.get("/after-the-trap", false).unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello /after-the-trap\n"), "{answer:?}");

    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let answer = client.get("/hang", false).unwrap();
    assert_eq!(answer.status, 504, "{answer:?}");
    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let answer = client.get("/after-the-hang", false).unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello /after-the-hang\n"), "{answer:?}");

    stop_http(&containerd, &id, &ns, ADDR);
}

/// One 0.3 instance serves many requests at once. With `wasmbox.dev/http-max-instances=1`, each
/// `/gather/16/...` request waits in the guest until 16 have arrived in its instance: every one
/// of the 16 is answered only if all 16 were in flight in that one instance together. The
/// instance then goes on serving, and a request that traps it takes no other request down
/// with it once the next instance is made.
#[test]
fn sixteen_requests_are_in_flight_in_one_wasi_0_3_instance_at_once() {
    require_integration!();
    let (containerd, ns, id) = serve_hello("http-p3-many", &["--annotation=wasmbox.dev/http-max-instances=1"]);

    let connect = || ns.connect_tcp(ADDR);
    assert_eq!(http::check_many_under("/gather/16", connect, 16, 1).unwrap(), 16);
    assert_eq!(http::check_many(connect, 4, 25).unwrap(), 100);
    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    assert_eq!(client.get("/trap", false).unwrap().status, 500);
    assert_eq!(http::check_many(connect, 4, 25).unwrap(), 100);

    stop_http(&containerd, &id, &ns, ADDR);
}

/// As for 0.2 handlers (http.rs): a 100 MiB request body is echoed back while it streams in,
/// through the guest's own streams, and the server's peak resident size stays within 32 MiB.
#[test]
fn a_100_mib_body_streams_both_ways_through_a_wasi_0_3_handler_in_constant_memory() {
    require_integration!();
    let (containerd, ns, id) = serve_hello("http-p3-echo", &[]);
    let pid = containerd.task(&id).unwrap().expect("the task").pid;
    assert_eq!(http::echo_stream(ns.connect_tcp(ADDR).unwrap(), "/echo", 1 << 20).unwrap(), 1 << 20);
    let before = peak_rss_kib(pid);

    const SIZE: u64 = 100 << 20;
    assert_eq!(http::echo_stream(ns.connect_tcp(ADDR).unwrap(), "/echo", SIZE).unwrap(), SIZE);
    let after = peak_rss_kib(pid);
    assert!(after < before + 32 * 1024, "peak resident size grew from {before} KiB to {after} KiB");
    stop_http(&containerd, &id, &ns, ADDR);
}

/// As for 0.2 handlers (http.rs): outbound requests through `wasi:http/client@0.3.0` follow
/// `wasmbox.dev/egress`, plain and TLS (verified against the container's own CA bundle); the
/// handler answers with the upstream's own response, and a denied one with 502 `denied`.
#[test]
fn a_wasi_0_3_handlers_outbound_requests_follow_the_egress_rules() {
    require_integration!();
    let containerd = start();
    let ns = NetNs::create("http-p3-egress").unwrap();
    let id = ids::container_id("http-p3-egress");
    let upstreams = EgressUpstreams::start(&ns).unwrap();
    let (plain_port, tls_port, other_port) = upstreams.ports().unwrap();
    let image = containerd
        .import_image(upstreams.trusted_by(image::compat_image(&ids::image_ref(&id), &guests::http_p3_hello().unwrap())))
        .unwrap();
    let log = start_http(&containerd, &ns, &id, &image, ADDR, &[&upstreams.egress_flag().unwrap()]);

    let mut client = http::Client::new(ns.connect_tcp(ADDR).unwrap()).unwrap();
    let mut fetch = |target: &str| client.get(&format!("/fetch/{target}"), false).unwrap();
    let answer = fetch(&format!("http/127.0.0.1:{plain_port}/plain"));
    assert_eq!((answer.status, answer.body.as_str()), (200, "pong /plain"), "{answer:?}");
    let answer = fetch(&format!("https/upstream.test:{tls_port}/secure"));
    assert_eq!((answer.status, answer.body.as_str()), (200, "pong /secure"), "{answer:?}");
    for denied in [format!("http/127.0.0.1:{other_port}/other-port"), format!("https/127.0.0.1:{plain_port}/other-scheme")] {
        let answer = fetch(&denied);
        assert_eq!((answer.status, answer.body.as_str()), (502, "denied\n"), "{denied}: {answer:?}");
    }
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!("wasmbox: outbound request to http://127.0.0.1:{other_port} denied by annotation wasmbox.dev/egress")),
        "the denial is not in the container's log: {said}"
    );
    stop_http(&containerd, &id, &ns, ADDR);
}

/// The policy holds for 0.3 commands as for 0.2 ones: `wasmbox.dev/preopens` narrows the
/// directories it gets, and `wasmbox.dev/timeout` ends it with 124.
#[test]
fn a_wasi_0_3_command_gets_only_its_policys_directories_and_ends_at_its_timeout() {
    require_integration!();
    let containerd = start();
    let image = compat_image(&ids::image_ref("p3-preopens"), &guests::p3_command().unwrap())
        .dir("/rw", 0o755)
        .dir("/other", 0o755);
    let image = containerd.import_image(image).unwrap();
    let id = ids::container_id("p3-preopens");
    let spec = RunSpec::new(&image, &id)
        .flag("--annotation=wasmbox.dev/preopens=/rw")
        .args(["/app.wasm", "preopens", "write:/rw/in.txt", "write:/other/out.txt"]);
    let out = run_to_end(&containerd, &spec);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    for line in ["preopens ok /rw", "write:/rw/in.txt ok", "write:/other/out.txt err no preopen"] {
        assert!(lines.contains(&line), "{line}: {out:?}");
    }

    let image = import_compat(&containerd, "p3-timeout", &guests::p3_args().unwrap());
    let id = ids::container_id("p3-timeout");
    let spec = RunSpec::new(&image, &id)
        .flag("--annotation=wasmbox.dev/timeout=1s")
        .args(["/app.wasm", "spinning"]);
    let out = run_to_end(&containerd, &spec);
    assert_eq!(out.code, 124, "{out:?}");
    assert!(out.stderr.contains("timed out after 1s"), "the reason is on stderr: {out:?}");
}

/// The memory budget holds for 0.3 commands as for the rest: `memory.grow` fails inside the
/// container's limit (the guest exits with the MiB it got), and the container is not OOM-killed.
#[test]
fn a_wasi_0_3_command_is_refused_memory_before_the_container_is_oom_killed() {
    require_integration!();
    let containerd = start();
    let wasm = guests::build("p3_mem_grow", guests::Kind::Wat).unwrap();
    let image = import_compat(&containerd, "p3-mem", &wasm);
    let limit_mib = 64u64;
    let id = ids::container_id("p3-mem");
    let out = run_to_end(&containerd, &RunSpec::new(&image, &id).flag(&format!("--memory-limit={}", limit_mib << 20)));
    assert_memory_budget(limit_mib, u64::try_from(out.code).unwrap_or_else(|_| panic!("{out:?}")));
}

