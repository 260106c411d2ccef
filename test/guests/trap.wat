;; Traps at once: the runtime must report a non-zero exit and the trap on stderr.
(module
  (memory (export "memory") 1)
  (func $boom unreachable)
  (func (export "_start") (call $boom)))
