//! The egress policy on a component's `wasi:sockets`: the `connect` guest (wasi-libc's
//! wasm32-wasip2 sockets) connects out to a listener of the test, with no policy, with the
//! `wasmbox.dev/egress` annotation, and under the operator's `egress.default = "deny"`; each
//! denial is on the container's stderr naming the address and the layer that denied it.
//!
//! The container runs in a network namespace of the test's own (loopback only, `ctr run
//! --with-ns`): a component gets sockets only when its spec has a network namespace, and the
//! listener is bound inside that namespace, so nothing leaves it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::netns::NetNs;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::suite::{config_file, import_compat, run_to_end, start};
use wasmbox_integration::{guests, ids, require_integration, Containerd, RunOutput};

/// The egress annotation.
const EGRESS: &str = "wasmbox.dev/egress";

/// A private containerd with the `connect` image, and a namespace with a listener in it.
struct Net {
    containerd: Containerd,
    image: String,
    listener: TcpListener,
    /// `127.0.0.1:PORT` of the listener, as the guest sees it.
    target: String,
    // Dropped last: the namespace outlives the listener and the containers in it.
    ns: NetNs,
}

impl Net {
    fn new(name: &str) -> Self {
        let containerd = start();
        let image = import_compat(&containerd, name, &guests::connect().unwrap());
        let ns = NetNs::create(name).unwrap();
        let listener = ns.listen_tcp("127.0.0.1:0").unwrap();
        let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        Self {
            containerd,
            image,
            listener,
            target,
            ns,
        }
    }

    /// Runs the guest (`connect TARGET`) in the namespace with `flags`, to the end, with
    /// `--rm`; checks nothing is left of the container.
    fn connect(&self, name: &str, flags: &[String]) -> RunOutput {
        self.run(name, &[self.target.as_str()], flags)
    }

    /// Runs the guest with `args` (after `/app.wasm`) in the namespace with `flags`.
    fn run(&self, name: &str, args: &[&str], flags: &[String]) -> RunOutput {
        let id = ids::container_id(name);
        let mut spec = RunSpec::new(&self.image, &id)
            .flag(&self.ns.ctr_flag())
            .args(std::iter::once("/app.wasm").chain(args.iter().copied()));
        for f in flags {
            spec = spec.flag(f);
        }
        run_to_end(&self.containerd, &spec)
    }

    /// Fails unless the guest connected: it says so, and the connection reached the listener.
    fn assert_connected(&self, what: &str, out: &RunOutput) {
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "connected\n"),
            "{what}: {out:?}"
        );
        assert!(!out.stderr.contains("denied"), "{what}: {out:?}");
        self.listener.set_nonblocking(true).unwrap();
        // The handshake was done before the guest printed; the connection waits in the backlog.
        wait_until(
            &format!("{what}: the connection at the listener"),
            Duration::from_secs(10),
            || self.listener.accept().ok(),
        )
        .unwrap();
    }

    /// Fails unless the guest was refused by `source`, before any packet left it.
    fn assert_denied(&self, what: &str, out: &RunOutput, source: &str) {
        assert_eq!(out.code, 1, "{what}: {out:?}");
        assert!(
            out.stdout.starts_with("connect failed: "),
            "{what}: {out:?}"
        );
        let message = format!("wasmbox: egress to {} denied by {source}", self.target);
        assert!(
            out.stderr.contains(&message),
            "{what}: stderr should have {message:?}: {out:?}"
        );
        // The guest has ended: nothing can still arrive.
        self.listener.set_nonblocking(true).unwrap();
        let arrived = self.listener.accept();
        assert!(
            arrived.is_err(),
            "{what}: a connection reached the listener: {arrived:?}"
        );
    }
}

fn annotation(value: &str) -> String {
    format!("--annotation={EGRESS}={value}")
}

fn config_flag(path: &PathBuf) -> String {
    format!("--runtime-config-path={}", path.display())
}

#[test]
fn a_component_connects_without_a_policy() {
    require_integration!();
    let net = Net::new("egress-open");
    let out = net.connect("egress-open", &[]);
    net.assert_connected("no policy", &out);
    let name = net.ns.name().to_string();
    drop(net);
    assert!(
        !NetNs::exists(&name),
        "the test's network namespace {name} is left"
    );
}

#[test]
fn the_annotation_allows_its_destinations_and_denies_the_rest() {
    require_integration!();
    let net = Net::new("egress-annotation");
    let out = net.connect("egress-ann-allow", &[annotation(&net.target)]);
    net.assert_connected("the exact address allowed", &out);

    let out = net.connect("egress-ann-deny", &[annotation("10.0.0.0/8:*")]);
    net.assert_denied("10.0.0.0/8:* only", &out, &format!("annotation {EGRESS}"));

    let out = net.connect("egress-ann-none", &[annotation("none")]);
    net.assert_denied("none", &out, &format!("annotation {EGRESS}"));
}

#[test]
fn the_operators_default_deny_holds_unless_its_allow_list_matches() {
    require_integration!();
    let net = Net::new("egress-operator");
    let deny = config_file(
        &net.containerd,
        "egress-deny",
        "[egress]\ndefault = \"deny\"\n",
    );
    let out = net.connect("egress-op-deny", &[config_flag(&deny)]);
    let source = format!("{} (egress.default = \"deny\")", deny.display());
    net.assert_denied("default deny, empty allow list", &out, &source);

    let allow = config_file(
        &net.containerd,
        "egress-allow",
        "[egress]\ndefault = \"deny\"\nallow = [\"127.0.0.0/8:*\"]\n",
    );
    let out = net.connect("egress-op-allow", &[config_flag(&allow)]);
    net.assert_connected("default deny, loopback allowed", &out);

    // A pod narrows the operator's list but never widens it: both layers must allow.
    let out = net.connect(
        "egress-op-narrow",
        &[config_flag(&allow), annotation("10.0.0.0/8:*")],
    );
    net.assert_denied(
        "operator allows, annotation does not",
        &out,
        &format!("annotation {EGRESS}"),
    );
    let out = net.connect(
        "egress-op-widen",
        &[config_flag(&deny), annotation(&net.target)],
    );
    net.assert_denied("annotation allows, operator does not", &out, &source);
}

/// Binds: any port as under runc; with the operator's `listen.bind_undeclared = false`, only
/// what `wasmbox.dev/listen` declares, each refusal on stderr.
#[test]
fn binds_follow_the_declared_listeners_when_the_operator_says_so() {
    require_integration!();
    let net = Net::new("bind-policy");
    let listen = |value: &str| format!("--annotation=wasmbox.dev/listen={value}");
    let out = net.run("bind-open", &["bind", "9090"], &[]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "listening\n"),
        "no policy: {out:?}"
    );

    let strict = config_file(
        &net.containerd,
        "bind-strict",
        "[listen]\nbind_undeclared = false\n",
    );
    let out = net.run(
        "bind-declared",
        &["bind", "8080"],
        &[config_flag(&strict), listen("tcp:8080")],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "listening\n"),
        "declared: {out:?}"
    );
    let out = net.run(
        "bind-undeclared",
        &["bind", "9090"],
        &[config_flag(&strict), listen("tcp:8080")],
    );
    assert_eq!(out.code, 1, "undeclared: {out:?}");
    assert!(out.stdout.starts_with("bind failed: "), "{out:?}");
    assert!(
        out.stderr
            .contains("wasmbox: bind to 0.0.0.0:9090 denied: not declared in wasmbox.dev/listen"),
        "{out:?}"
    );
    // Connecting out still works: its implicit bind is to an ephemeral port.
    let out = net.connect("bind-strict-connect", &[config_flag(&strict)]);
    net.assert_connected("connect under strict binds", &out);
}

/// Listeners a guest cannot have fail Create: a unix socket for a component (`wasi:sockets`
/// has none), more listeners than the operator allows.
#[test]
fn listeners_a_guest_cannot_have_fail_create() {
    require_integration!();
    let net = Net::new("listen-refused");
    let out = net.run(
        "listen-unix",
        &["bind", "8080"],
        &["--annotation=wasmbox.dev/listen=unix:/tmp/app.sock".to_string()],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("components have no unix sockets"),
        "{out:?}"
    );

    let capped = config_file(&net.containerd, "listen-capped", "[listen]\nmax = 1\n");
    let out = net.run(
        "listen-capped",
        &["bind", "8080"],
        &[
            config_flag(&capped),
            "--annotation=wasmbox.dev/listen=tcp:8080,tcp:8081".to_string(),
        ],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("more than listen.max (1)"), "{out:?}");
}
