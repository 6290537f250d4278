;; Shared by the hand-written test modules of abi_wat.rs and wasi.rs, spliced
;; in after each module's imports (which must include `$proxy_log`).
;;
;; Memory map:
;;   0    .. 512    result slots: 64 x i64, set to -1 by _initialize; the
;;                  module stores what it saw, the test reads them back
;;   512  .. 1024   out-parameters the host writes (pointers, sizes, tokens)
;;   1024 .. 8192   constant data (strings, iovecs)
;;   8192 .. 65536  scratch
;;   65536 ..       heap of the bump allocator
(memory (export "memory") 4)
(global $heap (mut i32) (i32.const 65536))

(func $alloc (export "proxy_on_memory_allocate") (param $size i32) (result i32)
  (local $at i32)
  (local.set $at (global.get $heap))
  (global.set $heap
    (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7)) (i32.const -8)))
  (local.get $at))

(func (export "_initialize")
  (memory.fill (i32.const 0) (i32.const 255) (i32.const 512)))

;; Stores an i32 (sign-extended) / an i64 in result slot $slot.
(func $put (param $slot i32) (param $value i32)
  (i64.store (i32.shl (local.get $slot) (i32.const 3)) (i64.extend_i32_s (local.get $value))))
(func $put64 (param $slot i32) (param $value i64)
  (i64.store (i32.shl (local.get $slot) (i32.const 3)) (local.get $value)))

;; Logs $len bytes at $ptr at info.
(func $log (param $ptr i32) (param $len i32)
  (drop (call $proxy_log (i32.const 2) (local.get $ptr) (local.get $len))))
