;; Exports `wasi:http/handler@0.3.0` only (a WASI 0.3 HTTP handler's world): wasmbox does not
;; serve 0.3 handlers yet, and must say so at Create rather than fail obscurely.
(component
  (core module $m (func (export "handle")))
  (core instance $i (instantiate $m))
  (func $handle (canon lift (core func $i "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/handler@0.3.0" (instance $handler)))
