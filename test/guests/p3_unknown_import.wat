;; A WASI 0.3 command that imports an interface no host provides: Create must fail with one
;; line naming the import.
(component
  (import "wasi:nonexistent/thing@0.3.0" (instance $thing
    (export "poke" (func))))
  (core func $poke (canon lower (func $thing "poke")))
  (core module $m
    (import "x" "poke" (func))
    (func (export "run") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m (with "x" (instance (export "poke" (func $poke))))))
  (type $run-ty (func async (result (result))))
  (func $run (type $run-ty) (canon lift (core func $i "run")))
  (instance $run-inst (export "run" (func $run)))
  (export "wasi:cli/run@0.3.0" (instance $run-inst)))
