//! The workload of the container's init process.
//!
//! libcontainer calls `validate` inside the container before reporting the init ready (so its
//! errors fail Create) and `exec` once Start arrives. A wasm program was loaded and linked in
//! the `create` helper before the init was cloned from it, so the init already holds it;
//! `exec` runs it here, inside every namespace, cgroup, seccomp filter and credential the spec
//! set. Anything else is exec'd like runc does.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use wasmbox_wasm::entrypoint::search_paths;
use wasmbox_wasm::program::Program;
use wasmbox_wasm::sandbox::SandboxSpec;

/// The wasm side of a container: the loaded program and the argv[0] the guest sees.
pub struct WasmWorkload {
    pub program: Program,
    pub argv0: String,
}

/// Runs the wasm workload if there is one, else execs natively.
#[derive(Clone, Default)]
pub struct WasmboxExecutor {
    wasm: Option<Arc<WasmWorkload>>,
}

impl WasmboxExecutor {
    pub fn native() -> Self {
        Self { wasm: None }
    }

    pub fn wasm(workload: WasmWorkload) -> Self {
        Self {
            wasm: Some(Arc::new(workload)),
        }
    }
}

fn args(spec: &Spec) -> Option<&Vec<String>> {
    spec.process().as_ref()?.args().as_ref().filter(|a| !a.is_empty())
}

fn env(spec: &Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default()
}

impl Executor for WasmboxExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        if self.wasm.is_some() {
            // Resolved, compiled and linked before the container was created.
            return Ok(());
        }
        let arg0 = args(spec)
            .map(|a| a[0].clone())
            .ok_or_else(|| ExecutorValidationError::ArgValidationError("the spec's process has no args".into()))?;
        let cwd = spec
            .process()
            .as_ref()
            .map(|p| p.cwd().display().to_string())
            .unwrap_or_else(|| "/".into());
        // We are inside the container here: resolve as execvp will.
        let found = search_paths(&arg0, &env(spec), &cwd).into_iter().find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
        match found {
            Some(_) => Ok(()),
            None => Err(ExecutorValidationError::ArgValidationError(format!(
                "entrypoint {arg0:?} not found (or not executable) in the container"
            ))),
        }
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(w) = &self.wasm {
            let sandbox = SandboxSpec::from_spec(spec, &w.argv0).map_err(|e| ExecutorError::Other(e.to_string()))?;
            // `ps` shows the guest's command line, as it would a native process's.
            crate::proctitle::set(&sandbox.args.join(" "));
            let status = wasmbox_wasm::run::run(&w.program, &sandbox);
            std::process::exit(status);
        }
        exec_native(spec)
    }
}

fn exec_native(spec: &Spec) -> Result<(), ExecutorError> {
    let args = args(spec).ok_or(ExecutorError::InvalidArg)?;
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ExecutorError::InvalidArg)?;
    // The process environment was set from the spec by libcontainer, so execvp sees its PATH.
    let err = nix::unistd::execvp(&cargs[0], &cargs).unwrap_err();
    Err(ExecutorError::Other(format!("exec {:?}: {err}", args[0])))
}
