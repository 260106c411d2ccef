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

mod image;
mod layers;
mod watch;

use std::path::PathBuf;

use anyhow::Context;
use wasmbox_wasm::compile::cache::CompileCache;
use wasmbox_wasm::compile::engine::Engine;
use wasmbox_wasm::compile::kind::FileKind;

use crate::artifact::Client;
use crate::tiering::{compile_unless_under_way, Compiled};
pub use image::Scope;
use image::{wasm_of_image, Found};

/// argv[1] of the pull-time compile.
pub const PRECOMPILE_ARG: &str = "precompile";
/// containerd's gRPC socket unless `--address` says otherwise.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";

const USAGE: &str = "usage: containerd-shim-wasmbox-v1 precompile [--address SOCKET] [--namespace NS] IMAGE...
       containerd-shim-wasmbox-v1 precompile --watch [--address SOCKET] [--namespace NS]...
Compiles the wasm of containerd images into wasmbox's compile cache (WASMBOX_CACHE_DIR, default
/var/lib/wasmbox/cache): the named images (namespace `default` unless given), or with --watch
every wasm image on the node and each one pulled later (all namespaces unless given).";

#[derive(Debug, PartialEq, Eq)]
struct Options {
    address: String,
    namespaces: Vec<String>,
    watch: bool,
    images: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        address: DEFAULT_ADDRESS.to_string(),
        namespaces: Vec::new(),
        watch: false,
        images: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--address" | "-a" => o.address = value(arg)?,
            "--namespace" | "-n" => o.namespaces.push(value(arg)?),
            "--watch" => o.watch = true,
            "--help" | "-h" => return Err(String::new()),
            a if a.starts_with('-') => return Err(format!("unknown flag {a}")),
            image => o.images.push(image.to_string()),
        }
    }
    match (o.watch, o.images.is_empty(), o.namespaces.len()) {
        (true, false, _) => Err("--watch takes no image names".into()),
        (false, true, _) => Err("name at least one image, or --watch".into()),
        (false, false, n) if n > 1 => Err("name one --namespace for the images".into()),
        _ => Ok(o),
    }
}

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

/// The shim's optimizing engine and the node's compile cache.
pub struct Compiler {
    engine: Engine,
    cache: CompileCache,
}

/// What became of one image.
#[derive(Debug)]
pub enum Outcome {
    Compiled { origin: String, message: String },
    Cached { origin: String },
    Nothing(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Compiled { origin, message } => write!(f, "compiled {origin}: {message}"),
            Outcome::Cached { origin } => write!(f, "{origin} is compiled already"),
            Outcome::Nothing(why) => write!(f, "nothing to compile: {why}"),
        }
    }
}

impl Compiler {
    pub fn new() -> anyhow::Result<Self> {
        let dir: PathBuf = wasmbox_wasm::compile::cache::default_dir();
        let cache = CompileCache::open(&dir).with_context(|| format!("the compile cache {}", dir.display()))?;
        Ok(Self {
            engine: wasmbox_wasm::compile::engine::new_engine()?,
            cache,
        })
    }

    /// Compiles the wasm of image `name` in `namespace` unless the cache has it; returns when
    /// the artifact is in the cache (or the image has no wasm).
    pub fn image(&self, client: &mut Client, namespace: &str, name: &str, scope: Scope) -> anyhow::Result<Outcome> {
        client.set_namespace(namespace);
        let target = client.image_target(name)?;
        let w = match wasm_of_image(client, name, &target, scope)? {
            Found::Wasm(w) => w,
            Found::Nothing(why) => return Ok(Outcome::Nothing(why)),
        };
        if w.kind == FileKind::Module {
            // Every module's start also runs the shim's WASI trampoline: one small artifact.
            let trampoline = wasmbox_wasm::p1::trampoline_wasm();
            self.cache
                .get_or_compile(&self.engine, trampoline, FileKind::Module, "the WASI trampoline")
                .context("compiling the WASI trampoline")?;
        }
        let label = format!("{name} {}", w.origin);
        let message = match compile_unless_under_way(&self.cache, &self.engine, &w.wasm, w.kind, &label)? {
            Compiled::Cached => return Ok(Outcome::Cached { origin: w.origin }),
            Compiled::Made(message) => message,
            Compiled::UnderWay(artifact) => {
                // Another process is making the artifact we want: wait for it.
                crate::tiering::wait_for_compile_elsewhere(self.cache.dir(), &artifact, &label);
                if !artifact.is_file() {
                    anyhow::bail!("the compile under way in another process ended without an artifact");
                }
                format!("compiled by another process into {}", artifact.display())
            }
        };
        Ok(Outcome::Compiled { origin: w.origin, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options() {
        let o = parse(&args("-n k8s.io docker.io/x:1 y:2")).unwrap();
        assert_eq!(o.namespaces, ["k8s.io"]);
        assert_eq!(o.images, ["docker.io/x:1", "y:2"]);
        assert_eq!(o.address, DEFAULT_ADDRESS);
        let o = parse(&args("--watch --address /s.sock -n a -n b")).unwrap();
        assert!(o.watch);
        assert_eq!((o.address.as_str(), o.namespaces.len()), ("/s.sock", 2));
        assert!(parse(&args("--watch x:1")).is_err());
        assert!(parse(&args("")).is_err());
        assert!(parse(&args("-n a -n b x:1")).is_err());
        assert!(parse(&args("--address")).is_err());
        assert!(parse(&args("--bogus x")).is_err());
    }
}
