//! A program loaded from the compile cache and checked against its imports and entry export.
//!
//! Loading and linking happen in the short-lived `create` helper, before the container's init
//! process is cloned from it: so every error (bad export, missing import) surfaces at Create,
//! and the init inherits the loaded code copy-on-write.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module};
use wasmtime_wasi::p2::bindings::sync::CommandPre;


use crate::compile::kind::FileKind;
use crate::http::{HandlerPre, Pooled};
use crate::p1::P1State;
use crate::p2::P2State;
use crate::WasmError;

/// The entry point the runner calls.
pub(crate) enum Code {
    /// A core module: `_start` (`func` is `None`), or the export named by `path#func`.
    /// `base` holds Wasmtime's own WASI functions, which `trampoline` forwards to for the
    /// wrappers in `pre`'s linker (see [`crate::p1::layer`]).
    Module {
        pre: InstancePre<P1State>,
        func: Option<String>,
        base: Linker<P1State>,
        trampoline: Option<Module>,
    },
    /// A `wasi:cli/command@0.2` component.
    Component(CommandPre<P2State>),
    /// A `wasi:cli/command@0.3` component (see [`crate::p3`]).
    ComponentP3(wasmtime_wasi::p3::bindings::CommandPre<P2State>),
    /// An HTTP handler (0.2 `wasi:http/proxy` or 0.3 `wasi:http/service`): served, not run
    /// (see [`crate::http`]); `pooled` is the
    /// same artifact on an engine with a pooling allocator ([`Program::pool_http`]).
    HttpProxy {
        pre: HandlerPre,
        artifact: std::path::PathBuf,
        pooled: Option<Pooled>,
    },
}

/// A loaded, link-checked program.
pub struct Program {
    pub(crate) engine: Engine,
    pub(crate) code: Code,
    /// The module path as the container sees it (used as argv[0] and in messages).
    pub guest_path: String,
}

impl Program {
    /// Loads `artifact`, an entry of the shim's own compile cache, and links it; for a core
    /// module, `trampoline` is the cache entry of [`crate::p1::trampoline_wasm`] (without
    /// it, writes to read-only mounts fail with EIO rather than EROFS); `sockets` wraps every
    /// function that takes a descriptor, for preopened listeners (see [`crate::p1::sockets`]).
    ///
    /// Artifacts must come from [`crate::compile::cache::CompileCache`]: Wasmtime trusts precompiled
    /// code, so nothing an image supplies may ever be passed here.
    pub fn load(
        engine: &Engine,
        artifact: &Path,
        kind: FileKind,
        guest_path: &str,
        func: Option<&str>,
        trampoline: Option<&Path>,
        sockets: bool,
    ) -> Result<Self, WasmError> {
        let entry_err = |e: wasmtime::Error| WasmError::CacheEntry {
            path: artifact.to_path_buf(),
            message: format!("{e:#}"),
        };
        let code = match kind {
            FileKind::Component => {
                if func.is_some() {
                    return Err(WasmError::FuncOnComponent {
                        path: guest_path.to_string(),
                    });
                }
                // SAFETY: the artifact was written by our own compile cache (see above).
                let component =
                    unsafe { Component::deserialize_file(engine, artifact) }.map_err(entry_err)?;
                if crate::http::is_proxy(engine, &component) {
                    let pre = crate::http::link(engine, &component)
                        .map_err(|e| link_err(guest_path, e))?;
                    return Ok(Self {
                        engine: engine.clone(),
                        code: Code::HttpProxy {
                            pre,
                            artifact: artifact.to_path_buf(),
                            pooled: None,
                        },
                        guest_path: guest_path.to_string(),
                    });
                }
                if crate::p3::is_command(engine, &component) {
                    Code::ComponentP3(
                        crate::p3::link(engine, &component).map_err(|e| link_err(guest_path, e))?,
                    )
                } else if let Some(why) = unserved(engine, &component) {
                    return Err(WasmError::Unserved {
                        path: guest_path.to_string(),
                        message: why,
                    });
                } else {
                    Code::Component(
                        crate::p2::link(engine, &component).map_err(|e| link_err(guest_path, e))?,
                    )
                }
            }
            _ => {
                // SAFETY: the artifact was written by our own compile cache (see above).
                let module =
                    unsafe { Module::deserialize_file(engine, artifact) }.map_err(entry_err)?;
                check_export(&module, guest_path, func.unwrap_or("_start"))?;
                let mut base = Linker::<P1State>::new(engine);
                wasmtime_wasi::p1::add_to_linker_sync(&mut base, |s: &mut P1State| &mut s.wasi)
                    .map_err(|e| link_err(guest_path, e))?;
                let mut linker = base.clone();
                let wrapped = crate::p1::layer::wrap(&mut linker, &module, sockets)
                    .map_err(|e| link_err(guest_path, e))?;
                if sockets && (!crate::p1::layer::memory_ok(&module) || trampoline.is_none()) {
                    return Err(link_err(
                        guest_path,
                        wasmtime::format_err!(
                            "annotation {}: preopened listeners need a module that exports its (32-bit, unshared) memory as \"memory\"",
                            crate::policy::LISTEN
                        ),
                    ));
                }
                let trampoline = match trampoline.filter(|_| wrapped) {
                    // SAFETY: the artifact was written by our own compile cache (see above).
                    Some(t) => {
                        Some(unsafe { Module::deserialize_file(engine, t) }.map_err(|e| {
                            WasmError::CacheEntry {
                                path: t.to_path_buf(),
                                message: format!("{e:#}"),
                            }
                        })?)
                    }
                    None => None,
                };
                let pre = linker
                    .instantiate_pre(&module)
                    .map_err(|e| link_err(guest_path, e))?;
                Code::Module {
                    pre,
                    func: func.map(str::to_string),
                    base,
                    trampoline,
                }
            }
        };
        Ok(Self {
            engine: engine.clone(),
            code,
            guest_path: guest_path.to_string(),
        })
    }
}

/// Why a component that is neither an HTTP handler nor a 0.3 command is not a 0.2 command
/// either, naming what it exports; None when it is one.
fn unserved(engine: &Engine, component: &Component) -> Option<String> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2")) {
        return None;
    }
    Some(format!(
        "it exports no world wasmbox runs (wasi:cli/run or an HTTP handler: \
         wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3); its exports: {}",
        if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
    ))
}

fn link_err(path: &str, e: wasmtime::Error) -> WasmError {
    WasmError::Link {
        path: path.to_string(),
        message: format!("{e:#}"),
    }
}

fn check_export(module: &Module, path: &str, func: &str) -> Result<(), WasmError> {
    match module.get_export(func) {
        Some(ExternType::Func(_)) => Ok(()),
        Some(_) => Err(WasmError::NotAFunction {
            path: path.to_string(),
            func: func.to_string(),
        }),
        None => {
            let funcs: Vec<&str> = module
                .exports()
                .filter(|e| matches!(e.ty(), ExternType::Func(_)))
                .map(|e| e.name())
                .collect();
            Err(WasmError::ExportNotFound {
                path: path.to_string(),
                func: func.to_string(),
                available: if funcs.is_empty() {
                    "none".into()
                } else {
                    funcs.join(", ")
                },
            })
        }
    }
}

impl Program {
    /// For an HTTP component: loads its artifact once more, on an engine whose pooling
    /// allocator holds `concurrency` requests' instances (plus the readiness check's), which
    /// serving prefers. Done here, before the init is cloned, because the init no longer sees
    /// the compile cache. Without it (an error is logged) requests map their own instances.
    pub fn pool_http(&mut self, concurrency: usize) {
        let Code::HttpProxy {
            artifact, pooled, ..
        } = &mut self.code
        else {
            return;
        };
        let instances = u32::try_from(concurrency.saturating_add(1)).unwrap_or(u32::MAX);
        let load = || -> wasmtime::Result<Pooled> {
            let engine = crate::compile::engine::new_pooling_engine(instances)?;
            // SAFETY: the same compile cache entry `load` took (see there).
            let component = unsafe { Component::deserialize_file(&engine, &*artifact) }?;
            let pre = crate::http::link(&engine, &component)?;
            Ok(Pooled {
                engine,
                pre,
                concurrency,
            })
        };
        match load() {
            Ok(p) => *pooled = Some(p),
            Err(e) => log::warn!(
                "{}: no pooling allocator for serving: {e:#}",
                self.guest_path
            ),
        }
    }
}
