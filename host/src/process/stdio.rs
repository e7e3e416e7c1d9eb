//! A process's stdout and stderr, forwarded write by write to its group leader.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::{GroupEvent, Pid, Stream};
use crate::node::NodeInner;

/// Largest write accepted at once; a guest writing more gets it split by WASI.
const MAX_WRITE_BYTES: usize = 64 << 10;

/// Longest a write waits for a remote group leader's acknowledgement; past it the process
/// goes on (the leader's node is likely gone, and nodedown handling will detach it).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Acknowledgements of a process's output to a group leader on another node.
pub(crate) struct OutputAcks {
    /// Output frames sent.
    sent: AtomicU64,
    /// The last frame the leader's node delivered.
    acked: watch::Sender<u64>,
    /// The leader's node is gone: stop waiting.
    detached: AtomicBool,
}

impl OutputAcks {
    pub fn new() -> Self {
        Self { sent: AtomicU64::new(0), acked: watch::channel(0).0, detached: AtomicBool::new(false) }
    }

    /// The leader's node delivered frames up to `seq`.
    pub fn ack(&self, seq: u64) {
        self.acked.send_if_modified(|a| {
            let newer = seq > *a;
            *a = (*a).max(seq);
            newer
        });
    }

    /// Stops waiting for acknowledgements (the leader's node is down).
    pub fn detach(&self) {
        self.detached.store(true, Ordering::Release);
        self.acked.send_modify(|_| {});
    }

    async fn all_acked(&self) {
        let target = self.sent.load(Ordering::Acquire);
        let mut acked = self.acked.subscribe();
        let done = acked.wait_for(|a| *a >= target || self.detached.load(Ordering::Acquire));
        if tokio::time::timeout(ACK_TIMEOUT, done).await.is_err() {
            tracing::warn!("output not acknowledged by the group leader's node within {ACK_TIMEOUT:?}");
        }
    }
}

/// The WASI output stream of one process: each write becomes a [`GroupEvent::Output`] for
/// the group leader, in order. When the leader is on another node, a write completes only
/// once the leader's node has delivered it, so that output follows the causal order of the
/// program across nodes (as Erlang's io requests do).
#[derive(Clone)]
pub(crate) struct ForwardOutput {
    node: Weak<NodeInner>,
    from: Pid,
    leader: Pid,
    stream: Stream,
    acks: Option<std::sync::Arc<OutputAcks>>,
}

impl ForwardOutput {
    pub fn new(
        node: Weak<NodeInner>,
        from: Pid,
        leader: Pid,
        stream: Stream,
        acks: Option<std::sync::Arc<OutputAcks>>,
    ) -> Self {
        Self { node, from, leader, stream, acks }
    }
}

impl IsTerminal for ForwardOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ForwardOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ForwardOutput {
    async fn ready(&mut self) {
        if let Some(acks) = &self.acks {
            acks.all_acked().await;
        }
    }
}

impl OutputStream for ForwardOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        // WASI lets a guest write only what `check_write` allowed; a larger piece would also
        // be over the frame limit of a leader's node.
        if bytes.len() > MAX_WRITE_BYTES {
            return Err(StreamError::trap(&format!(
                "a write of {} bytes, over the {MAX_WRITE_BYTES} that check-write allows",
                bytes.len()
            )));
        }
        let Some(node) = self.node.upgrade() else { return Ok(()) };
        match &self.acks {
            Some(acks) => {
                let seq = acks.sent.fetch_add(1, Ordering::AcqRel) + 1;
                node.output_remote(self.leader, self.from, self.stream, bytes, seq);
            }
            None => node
                .group_event(self.leader, GroupEvent::Output { from: self.from, stream: self.stream, bytes }),
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_WRITE_BYTES)
    }
}
