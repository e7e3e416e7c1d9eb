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
    ensure!(matches!(reason, ExitReason::Trap(_)), "{reason}");

    // The entries it lists are the ones a spawn may name.
    let refused = node.spawn(SpawnRequest::new(module, "other")).unwrap_err().to_string();
    ensure!(refused.contains("main, trap"), "{refused}");
    Ok(())
}
