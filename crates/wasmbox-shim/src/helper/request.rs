//! The helper's request and answer.

/// argv[1] that selects the helper.
pub const HELPER_ARG: &str = "create-helper";

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The wasm program the container runs, already compiled into the shim's cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WasmRequest {
    /// Entry of the shim's compile cache (never a file from the image).
    pub artifact: PathBuf,
    pub component: bool,
    /// The module path as the container sees it.
    pub guest_path: String,
    pub func: Option<String>,
    /// Cache entry of the WASI trampoline, for core modules (see `wasmbox_wasm::p1::layer`).
    pub trampoline: Option<PathBuf>,
    /// The artifacts (program and trampoline) are the baseline compiler's (Winch): they load
    /// only in its engine (see `crate::tiering`).
    #[serde(default)]
    pub baseline: bool,
    /// What the guest may do beyond the spec (operator config and annotations).
    #[serde(default)]
    pub policy: wasmbox_wasm::policy::Policy,
}

/// An exec into the container instead of a create: the process runs in the existing container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecSpec {
    pub exec_id: String,
    /// The exec's OCI process spec, written by the shim as JSON.
    pub process: PathBuf,
}

/// Everything the helper needs to create one container (or, with `exec`, to run a process in
/// it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateRequest {
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub stdout: String,
    pub stderr: String,
    pub systemd: bool,
    pub wasm: Option<WasmRequest>,
    #[serde(default)]
    pub exec: Option<ExecSpec>,
    /// A terminal: the shim's console socket, which receives the process's pty master.
    #[serde(default)]
    pub console_socket: Option<PathBuf>,
}

/// The helper's answer, one JSON line on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Created {
        pid: i32,
    },
    Failed {
        message: String,
        bad_cache_entry: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r = CreateRequest {
            id: "a".into(),
            bundle: "/b".into(),
            root: "/b/.wasmbox".into(),
            stdout: "/f/1".into(),
            stderr: String::new(),
            systemd: false,
            wasm: Some(WasmRequest {
                artifact: "/c/x.cwasm".into(),
                component: false,
                guest_path: "/app.wasm".into(),
                func: Some("run".into()),
                trampoline: Some("/c/t.cwasm".into()),
                baseline: true,
                policy: wasmbox_wasm::policy::Policy {
                    timeout: Some(std::time::Duration::from_secs(3)),
                    ..Default::default()
                },
            }),
            exec: Some(ExecSpec {
                exec_id: "e1".into(),
                process: "/b/.wasmbox/exec-e1.json".into(),
            }),
            console_socket: Some("/tmp/wasmbox-pty-x/console.sock".into()),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<CreateRequest>(&json).unwrap(), r);
        let a = Answer::Failed {
            message: "m".into(),
            bad_cache_entry: true,
        };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Answer>(&json).unwrap(), a);
    }
}
