;; A WASI 0.3 command in the component text format (no toolchain emits 0.3 for C here yet):
;; prints "hello from wasi 0.3", then each argument on a line of its own, to stdout through
;; wasi:cli/stdout@0.3.0 (a stream<u8>), waits for the write's result, and exits through
;; wasi:cli/exit@0.3.0 with the number of arguments (argv[0] included) as its status. When its
;; last argument is "spinning" it loops forever instead, without host calls, so only the
;; runtime's interruption (a signal) can stop it.
;;
;; `run` has wasi:cli/run@0.3.0's async type but is lifted synchronously, so it may block in
;; waitable-set.wait. Memory layout: [0..8) an event, [16..18) the write's result, [32..40)
;; get-arguments' list, [64..) the greeting, [4096..) the output, [65536..) the allocator's.
(component
  (import "wasi:cli/types@0.3.0" (instance $types
    (type $ec (enum "io" "illegal-byte-sequence" "pipe"))
    (export "error-code" (type (eq $ec)))))
  (alias export $types "error-code" (type $error-code))
  (import "wasi:cli/environment@0.3.0" (instance $env
    (type $args (list string))
    (export "get-arguments" (func (result $args)))))
  (import "wasi:cli/stdout@0.3.0" (instance $stdout
    (alias outer 1 $error-code (type $ec0))
    (export "error-code" (type $ec (eq $ec0)))
    (type $r (result (error $ec)))
    (type $f (future $r))
    (type $s (stream u8))
    (export "write-via-stream" (func (param "data" $s) (result $f)))))
  (import "wasi:cli/exit@0.3.0" (instance $exit
    (export "exit-with-code" (func (param "status-code" u8)))))

  (type $s (stream u8))
  (type $r (result (error $error-code)))
  (type $f (future $r))

  ;; Memory and the allocator (a bump allocator: the guest lives for one run) in a module of
  ;; their own, so the canonical built-ins can name them before the main module exists.
  (core module $libc
    (memory (export "memory") 2)
    (global $next (mut i32) (i32.const 65536))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      ;; Aligned up to the requested alignment.
      (local.set $at (i32.and
        (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $at) (local.get 3)))
      (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.const 1)
          (i32.shr_u (i32.sub (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
            (i32.const 16)))))))
      (local.get $at)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))

  (core func $stream-new (canon stream.new $s))
  (core func $stream-write (canon stream.write $s async (memory $mem)))
  (core func $stream-drop-writable (canon stream.drop-writable $s))
  (core func $future-read (canon future.read $f async (memory $mem)))
  (core func $future-drop-readable (canon future.drop-readable $f))
  (core func $ws-new (canon waitable-set.new))
  (core func $ws-wait (canon waitable-set.wait (memory $mem)))
  (core func $ws-drop (canon waitable-set.drop))
  (core func $join (canon waitable.join))
  (core func $get-arguments (canon lower (func $env "get-arguments") (memory $mem) (realloc $realloc)))
  (core func $write-via-stream (canon lower (func $stdout "write-via-stream")))
  (core func $exit-with-code (canon lower (func $exit "exit-with-code")))

  (core module $main
    (import "libc" "memory" (memory 1))
    (import "cm" "stream-new" (func $stream-new (result i64)))
    (import "cm" "stream-write" (func $stream-write (param i32 i32 i32) (result i32)))
    (import "cm" "stream-drop-writable" (func $stream-drop-writable (param i32)))
    (import "cm" "future-read" (func $future-read (param i32 i32) (result i32)))
    (import "cm" "future-drop-readable" (func $future-drop-readable (param i32)))
    (import "cm" "waitable-set-new" (func $ws-new (result i32)))
    (import "cm" "waitable-set-wait" (func $ws-wait (param i32 i32) (result i32)))
    (import "cm" "waitable-set-drop" (func $ws-drop (param i32)))
    (import "cm" "waitable-join" (func $join (param i32 i32)))
    (import "wasi" "get-arguments" (func $get-arguments (param i32)))
    (import "wasi" "write-via-stream" (func $write-via-stream (param i32) (result i32)))
    (import "wasi" "exit-with-code" (func $exit-with-code (param i32)))
    (data (i32.const 64) "hello from wasi 0.3\n")

    ;; Blocks until `waitable` (joined to a fresh set) has an event; returns its payload.
    (func $wait (param $waitable i32) (result i32)
      (local $set i32)
      (local.set $set (call $ws-new))
      (call $join (local.get $waitable) (local.get $set))
      (drop (call $ws-wait (local.get $set) (i32.const 0)))
      (call $join (local.get $waitable) (i32.const 0))
      (call $ws-drop (local.get $set))
      (i32.load offset=4 (i32.const 0)))

    ;; Appends `len` bytes at `src` to the output at `end`; returns the new end.
    (func $append (param $end i32) (param $src i32) (param $len i32) (result i32)
      (memory.copy (local.get $end) (local.get $src) (local.get $len))
      (i32.add (local.get $end) (local.get $len)))

    (func (export "run") (result i32)
      (local $pair i64) (local $rd i32) (local $wr i32) (local $fut i32) (local $st i32)
      (local $end i32) (local $off i32) (local $i i32) (local $n i32) (local $arg i32)
      ;; The output: the greeting, then each argument and a newline.
      (local.set $end (call $append (i32.const 4096) (i32.const 64) (i32.const 20)))
      (call $get-arguments (i32.const 32))
      (local.set $n (i32.load offset=36 (i32.const 0)))
      (block $done
        (loop $each
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $arg (i32.add (i32.load offset=32 (i32.const 0))
            (i32.mul (local.get $i) (i32.const 8))))
          (local.set $end (call $append (local.get $end)
            (i32.load (local.get $arg)) (i32.load offset=4 (local.get $arg))))
          (i32.store8 (local.get $end) (i32.const 10))
          (local.set $end (i32.add (local.get $end) (i32.const 1)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $each)))
      (local.set $pair (call $stream-new))
      (local.set $rd (i32.wrap_i64 (local.get $pair)))
      (local.set $wr (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32))))
      (local.set $fut (call $write-via-stream (local.get $rd)))
      ;; Write until all is taken: a result is (count << 4) | status, or -1 for "blocked".
      (local.set $off (i32.const 4096))
      (block $written
        (loop $more
          (br_if $written (i32.ge_u (local.get $off) (local.get $end)))
          (local.set $st (call $stream-write (local.get $wr) (local.get $off)
            (i32.sub (local.get $end) (local.get $off))))
          (if (i32.eq (local.get $st) (i32.const -1))
            (then (local.set $st (call $wait (local.get $wr)))))
          (local.set $off (i32.add (local.get $off) (i32.shr_u (local.get $st) (i32.const 4))))
          ;; Status 1: the reader is gone.
          (br_if $written (i32.eq (i32.and (local.get $st) (i32.const 15)) (i32.const 1)))
          (br $more)))
      (call $stream-drop-writable (local.get $wr))
      ;; The write's result: result<_, error-code> at [16] (tag byte, error byte).
      (local.set $st (call $future-read (local.get $fut) (i32.const 16)))
      (if (i32.eq (local.get $st) (i32.const -1))
        (then (drop (call $wait (local.get $fut)))))
      (call $future-drop-readable (local.get $fut))
      ;; The last argument "spinning" (8 bytes, little-endian as one i64): loop forever.
      (local.set $arg (i32.add (i32.load offset=32 (i32.const 0))
        (i32.mul (i32.sub (local.get $n) (i32.const 1)) (i32.const 8))))
      (if (i32.and (i32.eq (i32.load offset=4 (local.get $arg)) (i32.const 8))
                   (i64.eq (i64.load (i32.load (local.get $arg))) (i64.const 0x676e696e6e697073)))
        (then (loop $forever (br $forever))))
      (call $exit-with-code (local.get $n))
      unreachable))

  (core instance $i (instantiate $main
    (with "libc" (instance $libc))
    (with "cm" (instance
      (export "stream-new" (func $stream-new))
      (export "stream-write" (func $stream-write))
      (export "stream-drop-writable" (func $stream-drop-writable))
      (export "future-read" (func $future-read))
      (export "future-drop-readable" (func $future-drop-readable))
      (export "waitable-set-new" (func $ws-new))
      (export "waitable-set-wait" (func $ws-wait))
      (export "waitable-set-drop" (func $ws-drop))
      (export "waitable-join" (func $join))))
    (with "wasi" (instance
      (export "get-arguments" (func $get-arguments))
      (export "write-via-stream" (func $write-via-stream))
      (export "exit-with-code" (func $exit-with-code))))))

  (type $run-ty (func async (result (result))))
  (func $run (type $run-ty) (canon lift (core func $i "run")))
  (instance $run-inst (export "run" (func $run)))
  (export "wasi:cli/run@0.3.0" (instance $run-inst)))
