;; Exports only an interface of a world wasmbox does not run (neither a command's
;; `wasi:cli/run` nor an HTTP handler): Create must fail with one line naming what it exports.
(component
  (core module $m (func (export "poke")))
  (core instance $i (instantiate $m))
  (func $poke (canon lift (core func $i "poke")))
  (instance $thing (export "poke" (func $poke)))
  (export "wasi:nonexistent/world@0.3.0" (instance $thing)))
