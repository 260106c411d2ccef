//! The Wasmtime engine configuration.
//!
//! Compile (in the shim) and run (in the container) must agree on every setting that affects
//! generated code, or a cached artifact would not load; so both build their engine here.

pub use wasmtime::Engine;
use wasmtime::Config;

use crate::WasmError;

/// Builds the engine used for compiling and for running guests.
pub fn new_engine() -> Result<Engine, WasmError> {
    let mut config = Config::new();
    // Termination (SIGTERM) interrupts running guest code through the epoch counter; only the
    // signal path bumps the epoch, so there is no ticker thread and no cost while running.
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))
}
