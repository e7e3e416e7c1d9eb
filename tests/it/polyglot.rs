//! A guest that is not Rust: a component written by hand in the WebAssembly text format
//! (tests/guests/wat/hello.wat), with no SDK and no WASI. Whatever targets the
//! spore:process/guest world runs on Spore, whatever language produced it.

use anyhow::ensure;
use spore_host::{ExitReason, SpawnRequest};
use spore_tests::{next_down, next_message, node, text};

#[tokio::test]
async fn a_guest_written_by_hand_in_wat_lists_its_entries_sends_and_traps() -> anyhow::Result<()> {
    let bytes = wat::parse_file(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/wat/hello.wat"))?;
    let node = node("wat@localhost");
    let module = node.load(bytes).await?;
    let mut me = node.host_process();
    node.register("collector", me.pid())?;

    let (pid, monitor) = me.spawn_monitor(SpawnRequest::new(module, "main"))?;
    let (from, hello) = next_message(&mut me).await?;
    ensure!(from == pid && hello == text("hello from wat"), "from {from:?}: {hello:?}");
    let reason = next_down(&mut me, monitor).await?;
    ensure!(reason == ExitReason::Normal, "{reason}");

    let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "trap"))?;
    let reason = next_down(&mut me, monitor).await?;
    ensure!(reason.to_string() == "trap: wasm `unreachable` instruction executed", "{reason}");

    // The entries it lists are the ones a spawn may name.
    let refused = node.spawn(SpawnRequest::new(module, "other")).unwrap_err().to_string();
    ensure!(refused.contains("main, trap"), "{refused}");
    Ok(())
}

/// The body of a core module whose `entries` is ["main"] (the list, (20, 1) at 28, holds
/// the pair (16, 4) at 20, which is "main" at 16) and whose `start` does nothing.
const MAIN_ONLY: &str = r#"(data (i32.const 16) "main\10\00\00\00\04\00\00\00\14\00\00\00\01\00\00\00")
                           (func (export "entries") (result i32) (i32.const 28))
                           (func (export "start") (param i32 i32 i32 i32))"#;

/// A component of the world without imports whose core module is `body` (which must
/// export `entries` and `start`), with the memory (of one 64 KiB page) and allocator both
/// need.
fn component(body: &str) -> anyhow::Result<Vec<u8>> {
    component_with(body, 1, "(i32.const 1024)")
}

/// [`component`] with a memory of `pages` 64 KiB pages from its start and `realloc` as the
/// body of its `cabi_realloc`.
fn component_with(body: &str, pages: u32, realloc: &str) -> anyhow::Result<Vec<u8>> {
    Ok(wat::parse_str(format!(
        r#"(component
             (core module $m
               (memory (export "memory") {pages})
               (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) {realloc})
               {body})
             (core instance $i (instantiate $m))
             (alias core export $i "memory" (core memory $memory))
             (alias core export $i "cabi_realloc" (core func $realloc))
             (func (export "entries") (result (list string))
               (canon lift (core func $i "entries") (memory $memory)))
             (func (export "start") (param "entry" string) (param "args" (list u8))
               (canon lift (core func $i "start") (memory $memory) (realloc $realloc))))"#
    ))?)
}

#[tokio::test]
async fn a_module_whose_entries_misbehave_is_refused_at_load_and_the_node_keeps_serving() -> anyhow::Result<()>
{
    let node = node("watbad@localhost");
    let start = r#"(func (export "start") (param i32 i32 i32 i32))"#;
    let cases = [
        (
            "traps",
            r#"(func (export "entries") (result i32) unreachable)"#,
            "trap: wasm `unreachable` instruction executed",
        ),
        (
            "points outside its memory",
            r#"(func (export "entries") (result i32) (i32.const 65532))"#,
            "out of bounds",
        ),
        (
            "lists a string outside its memory",
            r#"(data (i32.const 0) "\00\00\ff\7f\04\00\00\00\00\00\00\00\01\00\00\00")
               (func (export "entries") (result i32) (i32.const 8))"#,
            "out of bounds",
        ),
        (
            "lists a string that is not UTF-8",
            r#"(data (i32.const 0) "\ff\fe\00\00\00\00\00\00\00\00\00\00\02\00\00\00\08\00\00\00\01\00\00\00")
               (func (export "entries") (result i32) (i32.const 16))"#,
            "utf-8",
        ),
        (
            "never returns",
            r#"(func (export "entries") (result i32) (loop $l (br $l)) unreachable)"#,
            "within 2 s",
        ),
        (
            "grows its memory by 125 MiB",
            r#"(func (export "entries") (result i32) (drop (memory.grow (i32.const 2000))) (i32.const 0))"#,
            "limit: memory limit of 16.1 mib exceeded (asked for 125.1 mib)",
        ),
    ];
    for (what, entries, expected) in cases {
        let refused = node.load(component(&format!("{entries} {start}"))?).await;
        let Err(error) = refused else { anyhow::bail!("an `entries` that {what} was accepted") };
        let message = error.to_string();
        ensure!(
            message.starts_with("module failed while listing its entries")
                && message.to_lowercase().contains(expected),
            "an `entries` that {what}: {message}"
        );
    }
    // The node still loads and runs modules.
    let bytes = wat::parse_file(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/wat/hello.wat"))?;
    let module = node.load(bytes).await?;
    let mut me = node.host_process();
    node.register("collector", me.pid())?;
    node.spawn(SpawnRequest::new(module, "main"))?;
    let (_, hello) = next_message(&mut me).await?;
    ensure!(hello == text("hello from wat"), "{hello:?}");
    Ok(())
}

#[tokio::test]
async fn a_host_call_given_memory_the_guest_does_not_have_ends_that_process_only() -> anyhow::Result<()> {
    let hello = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/wat/hello.wat"))?;
    let (name, payload) = ("(i32.const 64) (i32.const 9)", "(i32.const 80) (i32.const 15)");
    ensure!(hello.contains(name) && hello.contains(payload), "hello.wat's send-named call changed");
    let node = node("watcall@localhost");
    let mut me = node.host_process();
    node.register("collector", me.pid())?;
    let cases = [
        ("a name outside its memory", hello.replace(name, "(i32.const 65530) (i32.const 9)"), "string"),
        (
            "a payload longer than its memory",
            hello.replace(payload, "(i32.const 80) (i32.const 2000000000)"),
            "list",
        ),
    ];
    for (what, source, kind) in cases {
        let module = node.load(wat::parse_str(&source)?).await?;
        let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "main"))?;
        let reason = next_down(&mut me, monitor).await?;
        // The cause alone, as the guest's author needs it (the wasm backtrace is logged at debug).
        let expected = format!("trap: {kind} pointer/length out of bounds of memory");
        ensure!(reason.to_string() == expected, "send-named with {what}: {reason}");
    }
    // Nothing arrived from them, and the node still runs the well-formed guest.
    let module = node.load(wat::parse_str(&hello)?).await?;
    let good = node.spawn(SpawnRequest::new(module, "main"))?;
    let (from, first) = next_message(&mut me).await?;
    ensure!(from == good && first == text("hello from wat"), "from {from:?}: {first:?}");
    Ok(())
}

#[tokio::test]
async fn a_send_whose_payload_lies_outside_the_guests_memory_ends_that_process_only() -> anyhow::Result<()> {
    let send = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/wat/send.wat"))?;
    let payload = "(i32.const 80) (i32.const 15)";
    ensure!(send.contains(payload), "send.wat's send call changed");
    let node = node("watsend@localhost");
    let mut me = node.host_process();
    let cases = [
        ("a well-formed payload", send.clone(), "normal".to_owned()),
        (
            "a payload longer than its memory",
            send.replace(payload, "(i32.const 80) (i32.const 2000000000)"),
            "trap: list pointer/length out of bounds of memory".to_owned(),
        ),
        (
            "a payload running past its memory's end",
            send.replace(payload, "(i32.const 65530) (i32.const 15)"),
            "trap: list pointer/length out of bounds of memory".to_owned(),
        ),
    ];
    for (what, source, expected) in cases {
        let module = node.load(wat::parse_str(&source)?).await?;
        let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "main"))?;
        let reason = next_down(&mut me, monitor).await?;
        ensure!(reason.to_string() == expected, "send with {what}: {reason}");
    }
    Ok(())
}

#[tokio::test]
async fn a_module_whose_memory_starts_larger_than_a_default_process_loads_and_runs_when_given_room()
-> anyhow::Result<()> {
    let node = node("watbig@localhost");
    // 80 MiB of memory from the start, over the default limit of 64 MiB.
    let module = node.load(component_with(MAIN_ONLY, 1280, "(i32.const 1024)")?).await?;
    let mut me = node.host_process();

    let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "main"))?;
    let reason = next_down(&mut me, monitor).await?;
    ensure!(
        reason.to_string() == "limit: memory limit of 64.0 MiB exceeded (asked for 80.0 MiB)",
        "{reason}"
    );

    let roomy = SpawnRequest { memory_limit: Some(96 << 20), ..SpawnRequest::new(module, "main") };
    let (_, monitor) = me.spawn_monitor(roomy)?;
    let reason = next_down(&mut me, monitor).await?;
    ensure!(reason == ExitReason::Normal, "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_guest_whose_allocator_misbehaves_ends_with_a_clear_reason() -> anyhow::Result<()> {
    let node = node("watrealloc@localhost");
    let mut me = node.host_process();
    // Spawning `main`, the host asks the guest's allocator for room for the text "main".
    let cases = [
        (
            "returns room past its memory's end",
            "(i32.const 65534)",
            "trap: realloc return: beyond end of memory",
        ),
        ("traps", "unreachable", "trap: wasm `unreachable` instruction executed"),
    ];
    for (what, realloc, expected) in cases {
        // `entries` needs no allocation: the module loads.
        let module = node.load(component_with(MAIN_ONLY, 1, realloc)?).await?;
        let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "main"))?;
        let reason = next_down(&mut me, monitor).await?;
        ensure!(reason.to_string() == expected, "an allocator that {what}: {reason}");
    }
    Ok(())
}
