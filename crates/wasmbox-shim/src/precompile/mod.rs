//! Compiling at pull time: `containerd-shim-wasmbox-v1 precompile` puts the optimized
//! artifact of an image's wasm into the node's compile cache before any container of it
//! starts, so that first start is a cache hit like every later one.
//!
//! - `precompile [--namespace NS] IMAGE...` compiles the named images and returns when their
//!   artifacts are in the cache (after `ctr image pull`, in a node's provisioning).
//! - `precompile --watch [--namespace NS]...` is the node daemon (deploy/daemonset.yaml): it
//!   compiles the wasm images already on the node, then each one containerd creates or updates
//!   (a pull, an import, a tag), from containerd's event stream.
//!
//! The wasm comes from containerd's content store only (see [`image`]); it is compiled by the
//! same engine as the shim's, into the same cache, through the background compile's path
//! ([`crate::tiering::compile_unless_under_way`]): `SCHED_IDLE`, one compile per node, one per
//! module. A start that finds its module being compiled waits for that compile (raising it to
//! normal priority) instead of compiling it a second time.

mod compiler;
mod image;
mod layers;
mod options;
mod watch;

use compiler::Compiler;
use image::Scope;
use options::{parse, Options, USAGE};
use crate::artifact::Client;

/// argv[1] of the pull-time compile.
pub const PRECOMPILE_ARG: &str = "precompile";

/// The pull-time compile's entry point; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let options = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return 2;
        }
    };
    crate::logging::init_stderr();
    crate::tiering::lower_priority("pull-time compile");
    let compiler = match Compiler::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wasmbox precompile: {e:#}");
            return 1;
        }
    };
    if options.watch {
        watch::run(&options, &compiler)
    } else {
        one_shot(&options, &compiler)
    }
}

fn one_shot(options: &Options, compiler: &Compiler) -> i32 {
    let namespace = options.namespaces.first().map_or("default", String::as_str);
    let mut client = match Client::connect(&options.address, namespace) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wasmbox precompile: {e}");
            return 1;
        }
    };
    let mut failed = false;
    for name in &options.images {
        match compiler.image(&mut client, namespace, name, Scope::Any) {
            Ok(outcome) => println!("{name}: {outcome}"),
            Err(e) => {
                eprintln!("wasmbox precompile: {name}: {e:#}");
                failed = true;
            }
        }
    }
    i32::from(failed)
}
