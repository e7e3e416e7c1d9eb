;; A Spore guest written by hand in the WebAssembly text format, without Rust or the SDK:
;; whatever produces a component of the spore:process/guest world runs on Spore. It shows
;; the whole contract at its smallest: the two exports, one import, the canonical ABI.
;;
;; Entries: `main` sends the CBOR text "hello from wat" to the process registered as
;; `collector` on this node and ends normally; `trap` traps. A failed send traps too.
(component
  ;; The one import it uses, declared with only what it uses: the host's instance has more.
  (import "spore:process/mailbox@0.1.0" (instance $mailbox
    (type $send-error' (variant
      (case "too-large" u64)
      (case "mailbox-full")
      (case "not-registered" string)
      (case "unreachable" string)))
    (export "send-error" (type $send-error (eq $send-error')))
    (export "send-named" (func
      (param "name" string) (param "node" (option string)) (param "tag" u64) (param "payload" (list u8))
      (result (result (error $send-error)))))))

  ;; The linear memory and its allocator (`cabi_realloc`, a bump allocator), in a module of
  ;; their own: the lowered import needs both before the guest's code is instantiated.
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

  ;; send-named flattened: name (ptr, len), node (is-some, ptr, len), tag, payload (ptr,
  ;; len), and where to write the result.
  (core func $send-named (canon lower (func $mailbox "send-named") (memory $memory) (realloc $realloc)))

  (core module $guest
    (import "env" "memory" (memory 1))
    (import "env" "send-named" (func $send-named (param i32 i32 i32 i32 i32 i64 i32 i32 i32)))
    (data (i32.const 16) "main")
    (data (i32.const 20) "trap")
    ;; list<string> of the entries: two (ptr, len) pairs...
    (data (i32.const 32) "\10\00\00\00\04\00\00\00\14\00\00\00\04\00\00\00")
    ;; ...and the list itself, (ptr, len), which `entries` returns the address of.
    (data (i32.const 48) "\20\00\00\00\02\00\00\00")
    (data (i32.const 64) "collector")
    ;; CBOR: a text (major type 3) of 14 bytes.
    (data (i32.const 80) "\6ehello from wat")
    (func (export "entries") (result i32) (i32.const 48))
    (func (export "start") (param $entry i32) (param $entry-len i32) (param $args i32) (param $args-len i32)
      ;; Only the loaded module's entries reach `start`: `main` or `trap`.
      (if (i32.ne (i32.load8_u (local.get $entry)) (i32.const 0x6d)) (then unreachable))
      (call $send-named
        (i32.const 64) (i32.const 9)
        (i32.const 0) (i32.const 0) (i32.const 0)
        (i64.const 0)
        (i32.const 80) (i32.const 15)
        (i32.const 128))
      ;; The result's discriminant: 0 is ok.
      (if (i32.load8_u (i32.const 128)) (then unreachable))))
  (core instance $env
    (export "memory" (memory $memory))
    (export "send-named" (func $send-named)))
  (core instance $guest (instantiate $guest (with "env" (instance $env))))

  (func (export "entries") (result (list string))
    (canon lift (core func $guest "entries") (memory $memory)))
  (func (export "start") (param "entry" string) (param "args" (list u8))
    (canon lift (core func $guest "start") (memory $memory) (realloc $realloc))))
