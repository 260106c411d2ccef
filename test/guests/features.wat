;; Uses every WebAssembly proposal wasmbox enables (those `wasmtime run` enables by default):
;; exits (WASI proc_exit) 42 when each works, else the number of the first check that failed.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; multi-memory and memory64 (creating shared memories stays off: see engine.rs)
  (memory $wide i64 1)
  ;; exception handling (exnref)
  (tag $oops (param i32))
  ;; GC and function references
  (type $point (struct (field $x i32) (field $y i32)))
  (type $thunk (func (result i32)))
  (elem declare func $seven)
  ;; extended constant expressions
  (global $three i32 (i32.add (i32.const 1) (i32.const 2)))

  (func $seven (result i32) (i32.const 7))
  (func $throws (param i32) (throw $oops (local.get 0)))
  ;; tail calls
  (func $count (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 100))
      (else (return_call $count (i32.sub (local.get $n) (i32.const 1))))))

  (func $check (param $ok i32) (param $n i32)
    (if (i32.eqz (local.get $ok)) (then (call $proc_exit (local.get $n)))))

  (func (export "_start")
    ;; 1: exceptions
    (call $check
      (i32.eq
        (block $caught (result i32)
          (try_table (catch $oops $caught) (call $throws (i32.const 5)))
          (i32.const 0))
        (i32.const 5))
      (i32.const 1))
    ;; 2: tail calls (deep enough to overflow a stack without them)
    (call $check (i32.eq (call $count (i32.const 1000000)) (i32.const 100)) (i32.const 2))
    ;; 3: GC
    (call $check
      (i32.eq (struct.get $point $y (struct.new $point (i32.const 1) (i32.const 9))) (i32.const 9))
      (i32.const 3))
    ;; 4: function references
    (call $check (i32.eq (call_ref $thunk (ref.func $seven)) (i32.const 7)) (i32.const 4))
    ;; 5: multi-memory and memory64
    (i32.store $wide (i64.const 8) (i32.const 11))
    (call $check (i32.eq (i32.load $wide (i64.const 8)) (i32.const 11)) (i32.const 5))
    ;; 6: relaxed SIMD
    (call $check
      (i32.eq
        (i32x4.extract_lane 0 (i32x4.relaxed_trunc_f32x4_s (f32x4.splat (f32.const 3.0))))
        (i32.const 3))
      (i32.const 6))
    ;; 7: threads' atomics (on an unshared memory)
    (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 4)))
    (call $check (i32.eq (i32.atomic.load (i32.const 16)) (i32.const 4)) (i32.const 7))
    ;; 8: extended constant expressions
    (call $check (i32.eq (global.get $three) (i32.const 3)) (i32.const 8))
    (call $proc_exit (i32.const 42)))
)
