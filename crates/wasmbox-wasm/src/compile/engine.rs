//! The Wasmtime engine configuration.
//!
//! Compile (in the shim) and run (in the container) must agree on every setting that affects
//! generated code, or a cached artifact would not load; so both build their engine here.
//!
//! WebAssembly proposals: the ones `wasmtime run` enables by default are on, because toolchains
//! emit them by default now. That is Wasmtime's default set (WebAssembly 3.0: exceptions, tail
//! calls, function references, GC, multi-memory, memory64, relaxed SIMD, extended constants,
//! plus SIMD, bulk memory, reference types, multi-value, sign extension, saturating
//! conversions) and threads' atomics, given the crate features that compile them in (`gc`,
//! `gc-drc`, `threads`; see the workspace Cargo.toml). Not on: creating shared memories
//! (`Config::shared_memory`, off by default in Wasmtime, which ranks them tier 2: no security
//! fixes for a sandbox to rely on), and what Wasmtime leaves off by default: stack switching,
//! wide arithmetic, custom page sizes, shared-everything threads.
//!
//! The component model's async (`stream`, `future`, `async func`) is on: WASI 0.3 is built on it
//! (crate feature `component-model-async`), as in `wasmtime run` and `wasmtime serve`.

pub use wasmtime::Engine;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

use crate::WasmError;

/// What every engine shares: the settings that shape generated code.
fn config() -> Config {
    let mut config = Config::new();
    // Termination (SIGTERM) interrupts running guest code through the epoch counter; only the
    // signal path bumps the epoch, so there is no ticker thread and no cost while running.
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config
}

/// Builds the engine used for compiling and for running guests.
pub fn new_engine() -> Result<Engine, WasmError> {
    Engine::new(&config()).map_err(|e| WasmError::Engine(format!("{e:#}")))
}

/// Wasmtime's baseline compiler (Winch) with the same runtime settings: it compiles several
/// times faster than Cranelift into slower code, so a large module's first start on a node
/// runs on its output while Cranelift compiles the module for the next starts (see the shim's
/// `tiering`). Winch lacks some proposals (GC, function references, tail calls, exceptions,
/// relaxed SIMD): it refuses modules that use them, which then wait for Cranelift.
pub fn new_baseline_engine() -> Result<Engine, WasmError> {
    let mut config = config();
    config.strategy(Strategy::Winch);
    // What a first run can do without, for a compile about a quarter faster (CPython's 20 MB:
    // 0.77 s against 1.05 s on 2 cores): native unwind tables (only for outside unwinders;
    // Wasmtime's own backtraces do not use them) and the map from machine code back to wasm
    // byte offsets (a trap's backtrace still names the functions, without the offsets).
    config.native_unwind_info(false);
    config.generate_address_map(false);
    Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))
}

/// Per component instance, the most core instances, memories and tables the pool holds
/// (a C component with the preview 1 adapter has a few of each).
const POOL_CORE_INSTANCES: u32 = 8;
const POOL_MEMORIES: u32 = 4;
const POOL_TABLES: u32 = 8;
/// What a pool slot keeps resident between requests, at most.
const POOL_KEEP_RESIDENT: usize = 256 << 10;

/// The engine an HTTP component is served on, which makes an instance per request: the same
/// code settings as [`new_engine`] (the compile cache's artifacts load in it), with instances
/// from a pool of `instances` component instances (as `wasmtime serve` does), so a request
/// reuses the memory mappings of an earlier one instead of mapping and unmapping its own.
pub fn new_pooling_engine(instances: u32) -> Result<Engine, WasmError> {
    let instances = instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(POOL_CORE_INSTANCES))
        .total_memories(instances.saturating_mul(POOL_MEMORIES))
        .total_tables(instances.saturating_mul(POOL_TABLES))
        .total_gc_heaps(instances.saturating_mul(POOL_MEMORIES))
        // A request's guest code runs on a fiber (an async store).
        .total_stacks(instances)
        // The slots a burst used stay warm, up to one per instance.
        .max_unused_warm_slots(instances.saturating_mul(POOL_MEMORIES))
        // A freed slot's first pages are reset with memset instead of being unmapped: no page
        // faults for the next request and no TLB shootdown across the cores per request.
        // (Not PAGEMAP_SCAN: the engine is made in the create helper, and the descriptor of
        // /proc/self/pagemap it opens would not be the init's.)
        .linear_memory_keep_resident(POOL_KEEP_RESIDENT)
        .table_keep_resident(POOL_KEEP_RESIDENT / 16);
    let mut config = config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One module per proposal, so a failure names it.
    const PROPOSALS: &[(&str, &str)] = &[
        ("exceptions", r#"(module (tag $e (param i32)) (func (result i32)
            (block $h (result i32) (try_table (catch $e $h) (throw $e (i32.const 1))) (i32.const 0))))"#),
        ("tail calls", r#"(module (func $f (result i32) (return_call $f)))"#),
        ("gc", r#"(module (type $p (struct (field i32))) (func (result i32)
            (struct.get $p 0 (struct.new $p (i32.const 1)))))"#),
        ("function references", r#"(module (type $t (func)) (elem declare func $f) (func $f)
            (func (call_ref $t (ref.func $f))))"#),
        ("multi-memory", r#"(module (memory 1) (memory $b 1) (func (i32.store $b (i32.const 0) (i32.const 1))))"#),
        ("memory64", r#"(module (memory i64 1) (func (result i32) (i32.load (i64.const 0))))"#),
        ("relaxed simd", r#"(module (func (result v128) (i32x4.relaxed_trunc_f32x4_s (f32x4.splat (f32.const 1)))))"#),
        ("threads' atomics", r#"(module (memory 1) (func (result i32) (i32.atomic.rmw.add (i32.const 0) (i32.const 1))))"#),
        ("extended const", r#"(module (global i32 (i32.add (i32.const 1) (i32.const 2))))"#),
    ];

    #[test]
    fn artifacts_load_in_the_pooling_engine() {
        let engine = new_engine().unwrap();
        let pooling = new_pooling_engine(4).unwrap();
        let hash = |e: &Engine| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            e.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&engine), hash(&pooling), "the compile cache's key would differ");
        let component = wasmtime::component::Component::new(&engine, "(component)").unwrap();
        let bytes = component.serialize().unwrap();
        // SAFETY: serialized just above by the same configuration.
        unsafe { wasmtime::component::Component::deserialize(&pooling, &bytes) }.unwrap();
    }

    #[test]
    fn the_baseline_tier_has_its_own_cache_key_and_refuses_what_winch_lacks() {
        let optimized = new_engine().unwrap();
        let baseline = new_baseline_engine().unwrap();
        assert_ne!(
            crate::compile::digest::engine_tag(&optimized),
            crate::compile::digest::engine_tag(&baseline),
            "a baseline artifact must never be taken for an optimized one"
        );
        let plain = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
        let bytes = baseline.precompile_module(&plain).unwrap();
        // SAFETY: compiled just above by the same configuration.
        unsafe { wasmtime::Module::deserialize(&baseline, &bytes) }.unwrap();
        let (_, exceptions) = PROPOSALS[0];
        assert!(baseline.precompile_module(&wat::parse_str(exceptions).unwrap()).is_err());
    }

    #[test]
    fn compiles_what_wasmtime_run_accepts_by_default() {
        let engine = new_engine().unwrap();
        for (name, wat) in PROPOSALS {
            let wasm = wat::parse_str(wat).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Err(e) = wasmtime::Module::new(&engine, &wasm) {
                panic!("{name} is refused: {e:#}");
            }
        }
    }
}
