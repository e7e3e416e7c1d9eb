;; A hand-written guest that calls `send` (whose arguments the host reads by hand): its one
;; entry, `main`, sends the CBOR text "hello from wat" with tag 7 to the pid <1.1.1>, of a
;; node no one knows (the send fails as unreachable, and the guest ignores its result), and
;; ends normally. The tests rewrite the payload's (pointer, length) to check that a payload
;; outside the guest's memory ends the process with the same trap as any other call's.
(component
  (import "spore:process/mailbox@0.1.0" (instance $mailbox
    (type $pid' (record (field "node" u64) (field "incarnation" u32) (field "index" u64)))
    (export "pid" (type $pid (eq $pid')))
    (type $send-error' (variant
      (case "too-large" u64)
      (case "mailbox-full")
      (case "not-registered" string)
      (case "unreachable" string)))
    (export "send-error" (type $send-error (eq $send-error')))
    (export "send" (func
      (param "to" $pid) (param "tag" u64) (param "payload" (list u8))
      (result (result (error $send-error)))))))

  (core module $heap
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $at i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (global.set $next (i32.add (local.get $at) (local.get $size)))
      (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
        (then
          (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))))
      (local.get $at)))
  (core instance $heap (instantiate $heap))
  (alias core export $heap "memory" (core memory $memory))
  (alias core export $heap "cabi_realloc" (core func $realloc))

  ;; send flattened: to (node, incarnation, index), tag, payload (ptr, len), and where to
  ;; write the result.
  (core func $send (canon lower (func $mailbox "send") (memory $memory) (realloc $realloc)))

  (core module $guest
    (import "env" "memory" (memory 1))
    (import "env" "send" (func $send (param i64 i32 i64 i64 i32 i32 i32)))
    (data (i32.const 16) "main")
    ;; list<string> of the entries: one (ptr, len) pair, then the list (ptr, len).
    (data (i32.const 32) "\10\00\00\00\04\00\00\00")
    (data (i32.const 48) "\20\00\00\00\01\00\00\00")
    ;; CBOR: a text (major type 3) of 14 bytes.
    (data (i32.const 80) "\6ehello from wat")
    (func (export "entries") (result i32) (i32.const 48))
    (func (export "start") (param $entry i32) (param $entry-len i32) (param $args i32) (param $args-len i32)
      (call $send
        (i64.const 1) (i32.const 1) (i64.const 1)
        (i64.const 7)
        (i32.const 80) (i32.const 15)
        (i32.const 128))))
  (core instance $env
    (export "memory" (memory $memory))
    (export "send" (func $send)))
  (core instance $guest (instantiate $guest (with "env" (instance $env))))

  (func (export "entries") (result (list string))
    (canon lift (core func $guest "entries") (memory $memory)))
  (func (export "start") (param "entry" string) (param "args" (list u8))
    (canon lift (core func $guest "start") (memory $memory) (realloc $realloc))))
