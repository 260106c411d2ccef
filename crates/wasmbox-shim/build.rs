//! Link options for the shim binary.
//!
//! `WASMBOX_NO_PIE=1` links a position-dependent executable. A PIE's relocated data
//! (~1.1 MiB here) is private to every process that maps it, so each idle container pays it
//! in its shim and its init; without PIE those pages stay shared file pages, at the price of
//! a fixed address for the binary's own code (libraries, heap, stacks and the guest's
//! compiled code stay randomized). Debian builds runc and containerd that way; wasmbox keeps
//! PIE by default. Measurements: docs/performance.md.
fn main() {
    println!("cargo:rerun-if-env-changed=WASMBOX_NO_PIE");
    if std::env::var("WASMBOX_NO_PIE").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
