//! The pull-time compiler: the shim's optimizing engine and the node's compile cache, and
//! what became of each image.

use std::path::PathBuf;

use anyhow::Context;
use wasmbox_wasm::compile::cache::CompileCache;
use wasmbox_wasm::compile::engine::Engine;
use wasmbox_wasm::compile::kind::FileKind;

use super::image::{wasm_of_image, Found, Scope};
use crate::artifact::Client;
use crate::tiering::{compile_unless_under_way, Compiled};

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
        let cache = CompileCache::open(&dir)
            .with_context(|| format!("the compile cache {}", dir.display()))?;
        Ok(Self {
            engine: wasmbox_wasm::compile::engine::new_engine()?,
            cache,
        })
    }

    /// Compiles the wasm of image `name` in `namespace` unless the cache has it; returns when
    /// the artifact is in the cache (or the image has no wasm).
    pub fn image(
        &self,
        client: &mut Client,
        namespace: &str,
        name: &str,
        scope: Scope,
    ) -> anyhow::Result<Outcome> {
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
                .get_or_compile(
                    &self.engine,
                    trampoline,
                    FileKind::Module,
                    "the WASI trampoline",
                )
                .context("compiling the WASI trampoline")?;
        }
        let label = format!("{name} {}", w.origin);
        let message =
            match compile_unless_under_way(&self.cache, &self.engine, &w.wasm, w.kind, &label)? {
                Compiled::Cached => return Ok(Outcome::Cached { origin: w.origin }),
                Compiled::Made(message) => message,
                Compiled::UnderWay(artifact) => {
                    // Another process is making the artifact we want: wait for it.
                    crate::tiering::wait_for_compile_elsewhere(self.cache.dir(), &artifact, &label);
                    if !artifact.is_file() {
                        anyhow::bail!(
                            "the compile under way in another process ended without an artifact"
                        );
                    }
                    format!("compiled by another process into {}", artifact.display())
                }
            };
        Ok(Outcome::Compiled {
            origin: w.origin,
            message,
        })
    }
}
