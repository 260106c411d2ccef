//! Which program a process runs: native, or wasm resolved in the container, compiled into the
//! compile cache (or read from containerd's content store) and handed to the create helper.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use wasmbox_wasm::compile::cache::CompileCache;
use wasmbox_wasm::compile::entrypoint::{self, Entrypoint};
use wasmbox_wasm::compile::kind::FileKind;
use wasmbox_wasm::WasmError;

use crate::helper::request::WasmRequest;

use super::tasks::*;

/// What a program name turned out to be in the container.
pub(super) enum Resolved {
    Native,
    Wasm(WasmRequest),
    Missing,
}

impl Service {
    /// Compiles (or finds in the cache) the wasm entrypoint of `spec`; None for native ones.
    pub(super) fn prepare_wasm(
        &self,
        id: &str,
        spec: &Spec,
        rootfs: &Path,
    ) -> Result<Option<WasmRequest>, String> {
        let process = spec.process().as_ref().ok_or("the spec has no process")?;
        let args = process.args().as_deref().unwrap_or_default();
        let Some(arg0) = args.first() else {
            // A Wasm OCI image may leave the entrypoint out: its layer is the program.
            let wasm = crate::artifact::image_entrypoint(self.content.as_ref(), id, None)?
                .ok_or("the spec's process has no args")?;
            return self.compile(wasm).map(Some);
        };
        let env = process.env().clone().unwrap_or_default();
        let cwd = process.cwd().display().to_string();
        match self.prepare_program(id, spec, rootfs, arg0, &env, &cwd)? {
            Resolved::Native => Ok(None),
            Resolved::Wasm(w) => Ok(Some(w)),
            Resolved::Missing => Err(WasmError::EntrypointNotFound(arg0.clone()).to_string()),
        }
    }

    /// Resolves `arg0` as the container sees it (the rootfs and the spec's bind mounts) and
    /// compiles it if it is wasm.
    pub(super) fn prepare_program(
        &self,
        id: &str,
        spec: &Spec,
        rootfs: &Path,
        arg0: &str,
        env: &[String],
        cwd: &str,
    ) -> Result<Resolved, String> {
        let fs = entrypoint::ContainerFs::from_spec(rootfs, spec);
        let wasm = match entrypoint::resolve(&fs, arg0, env, cwd).map_err(|e| e.to_string())? {
            Entrypoint::Native => return Ok(Resolved::Native),
            // Wasm OCI images: the module is a layer of the image, not a file in the rootfs.
            Entrypoint::NotInRootfs => {
                match crate::artifact::image_entrypoint(self.content.as_ref(), id, Some(arg0))? {
                    Some(w) => w,
                    None => return Ok(Resolved::Missing),
                }
            }
            Entrypoint::Wasm(w) => w,
        };
        self.compile(wasm).map(Resolved::Wasm)
    }

    /// Compiles `wasm` into the cache (or finds it there) and describes it for the helper.
    pub(super) fn compile(
        &self,
        mut wasm: entrypoint::WasmEntrypoint,
    ) -> Result<WasmRequest, String> {
        let engine = self.engine.as_ref().map_err(|e| e.clone())?;
        let cache = self.cache.as_ref().map_err(|e| e.clone())?;
        let (artifact, baseline) = self.artifact(engine, cache, &mut wasm)?;
        let trampoline = if wasm.kind == FileKind::Component {
            None
        } else {
            // Loaded into the guest's store, so compiled by the guest's compiler.
            let engine = if baseline {
                self.baseline_engine()?
            } else {
                engine
            };
            let wasm = wasmbox_wasm::p1::trampoline_wasm();
            let label = "the WASI trampoline";
            let compile = || cache.get_or_compile(engine, wasm, FileKind::Module, label);
            let path = cache.entry_path(engine, wasm, FileKind::Module);
            let made = if path.is_file() {
                compile()
            } else {
                crate::tiering::compile_once(cache.dir(), &path, label, compile)
            };
            Some(made.map_err(|e| e.to_string())?)
        };
        Ok(WasmRequest {
            artifact,
            component: wasm.kind == FileKind::Component,
            guest_path: wasm.guest_path,
            func: wasm.func,
            trampoline,
            baseline,
            policy: Default::default(),
        })
    }

    pub(super) fn baseline_engine(&self) -> Result<&wasmbox_wasm::compile::engine::Engine, String> {
        self.baseline
            .get_or_init(|| {
                wasmbox_wasm::compile::engine::new_baseline_engine().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// The artifact to run and whether it is the baseline tier's: Cranelift's when the cache
    /// has it; else, for a large module, Winch's, with Cranelift's compile started in the
    /// background for the next starts (see `crate::tiering`); else Cranelift's, compiled now.
    pub(super) fn artifact(
        &self,
        engine: &wasmbox_wasm::compile::engine::Engine,
        cache: &CompileCache,
        wasm: &mut entrypoint::WasmEntrypoint,
    ) -> Result<(PathBuf, bool), String> {
        if let Some(a) = cache
            .find_entrypoint(engine, wasm)
            .map_err(|e| e.to_string())?
        {
            return Ok((a, false));
        }
        let optimized = |wasm: &mut entrypoint::WasmEntrypoint| {
            let compile = |wasm: &mut entrypoint::WasmEntrypoint| -> Result<PathBuf, wasmbox_wasm::WasmError> {
                // A pull-time or background compile of this module may be under way.
                let path = cache.entrypoint_path(engine, wasm)?;
                let guest_path = wasm.guest_path.clone();
                crate::tiering::compile_once(cache.dir(), &path, &guest_path, || {
                    crate::tiering::with_compile_arenas(|| cache.get_or_compile_entrypoint(engine, wasm))
                })
            };
            compile(wasm).map(|a| (a, false)).map_err(|e| e.to_string())
        };
        let Some(min_bytes) =
            crate::tiering::min_bytes().filter(|_| wasm.kind != FileKind::Component)
        else {
            return optimized(wasm);
        };
        if (wasm.bytes().map_err(|e| e.to_string())?.len() as u64) < min_bytes {
            return optimized(wasm);
        }
        let baseline = match self.baseline_engine() {
            Ok(b) => b,
            Err(e) => {
                log::warn!(
                    "no baseline compiler ({e}); compiling {} with Cranelift now",
                    wasm.guest_path
                );
                return optimized(wasm);
            }
        };
        let baseline_artifact = cache
            .entrypoint_path(baseline, wasm)
            .map_err(|e| e.to_string())?;
        let guest_path = wasm.guest_path.clone();
        let made =
            crate::tiering::compile_once(cache.dir(), &baseline_artifact, &guest_path, || {
                crate::tiering::with_compile_arenas(|| {
                    cache.get_or_compile_entrypoint(baseline, wasm)
                })
            });
        match made {
            Ok(a) => {
                let guest_path = wasm.guest_path.clone();
                crate::tiering::schedule(
                    cache,
                    wasm.bytes().map_err(|e| e.to_string())?,
                    &guest_path,
                );
                Ok((a, true))
            }
            Err(e) => {
                log::info!("{}: the baseline compiler does not take it ({e}); compiling with Cranelift now", wasm.guest_path);
                optimized(wasm)
            }
        }
    }
}

/// True when the spec's `args[0]` is a native program in the container (resolved as Create
/// resolves it, without compiling anything).
pub(super) fn runs_natively(spec: &Spec, fs: &entrypoint::ContainerFs) -> bool {
    let Some(process) = spec.process() else {
        return false;
    };
    let Some(arg0) = process.args().as_deref().and_then(<[String]>::first) else {
        return false;
    };
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().display().to_string();
    matches!(
        entrypoint::resolve(fs, arg0, &env, &cwd),
        Ok(Entrypoint::Native)
    )
}

/// The container's rootfs: the spec's `root.path`, relative to the bundle unless absolute.
pub(super) fn rootfs_of(bundle: &Path, spec: &Spec) -> PathBuf {
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    if root_path.is_absolute() {
        root_path
    } else {
        bundle.join(root_path)
    }
}

/// Why an exec cannot run: its program is nowhere in the container.
pub(super) fn nothing_runnable(arg0: &str) -> String {
    let name = arg0.rsplit('/').next().unwrap_or(arg0);
    if matches!(name, "sh" | "bash" | "ash" | "dash") {
        format!("no {arg0} in this image; exec a binary or a wasm module that is in it")
    } else {
        format!("{arg0:?} is not in the container (its rootfs and bind mounts); exec a binary or a wasm module that is in it")
    }
}

/// The bundle's OCI spec, or an error naming the bundle (it reaches `ctr`/`kubectl`).
pub(super) fn load_spec(bundle: &Path) -> Result<Spec, String> {
    Spec::load(bundle.join("config.json")).map_err(|e| {
        format!(
            "cannot read the bundle's config.json in {}: {e}",
            bundle.display()
        )
    })
}

#[cfg(test)]
mod bundle_tests {
    use super::load_spec;

    #[test]
    fn an_unreadable_bundle_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_spec(dir.path()).unwrap_err();
        assert!(
            missing.contains("cannot read the bundle's config.json"),
            "{missing}"
        );
        assert!(
            missing.contains(&dir.path().display().to_string()),
            "{missing}"
        );
        std::fs::write(dir.path().join("config.json"), b"{not json").unwrap();
        let garbled = load_spec(dir.path()).unwrap_err();
        assert!(
            garbled.contains("cannot read the bundle's config.json"),
            "{garbled}"
        );
    }
}
