;; A WASI 0.3 command that grows its memory 1 MiB at a time until `memory.grow` fails, then
;; exits (wasi:cli/exit@0.3.0) with the MiB it got as its status (at most 255).
(component
  (import "wasi:cli/exit@0.3.0" (instance $exit
    (export "exit-with-code" (func (param "status-code" u8)))))
  (core func $exit-with-code (canon lower (func $exit "exit-with-code")))
  (core module $m
    (import "wasi" "exit-with-code" (func $exit (param i32)))
    (memory 1)
    (func (export "run") (result i32)
      (local $mib i32)
      (block $full
        (loop $grow
          (br_if $full (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
          (local.set $mib (i32.add (local.get $mib) (i32.const 1)))
          (br_if $full (i32.ge_u (local.get $mib) (i32.const 255)))
          (br $grow)))
      (call $exit (local.get $mib))
      unreachable))
  (core instance $i (instantiate $m
    (with "wasi" (instance (export "exit-with-code" (func $exit-with-code))))))
  (type $run-ty (func async (result (result))))
  (func $run (type $run-ty) (canon lift (core func $i "run")))
  (instance $run-inst (export "run" (func $run)))
  (export "wasi:cli/run@0.3.0" (instance $run-inst)))
