//! A process's stdout and stderr, forwarded write by write to its group leader.

use std::sync::Weak;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::{GroupEvent, Pid, Stream};
use crate::node::NodeInner;

/// Largest write accepted at once; a guest writing more gets it split by WASI.
const MAX_WRITE_BYTES: usize = 64 << 10;

/// The WASI output stream of one process: each write becomes a
/// [`GroupEvent::Output`] for the group leader, in order.
#[derive(Clone)]
pub(crate) struct ForwardOutput {
    node: Weak<NodeInner>,
    from: Pid,
    leader: Pid,
    stream: Stream,
}

impl ForwardOutput {
    pub fn new(node: Weak<NodeInner>, from: Pid, leader: Pid, stream: Stream) -> Self {
        Self { node, from, leader, stream }
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
    async fn ready(&mut self) {}
}

impl OutputStream for ForwardOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if let Some(node) = self.node.upgrade() {
            node.group_event(self.leader, GroupEvent::Output { from: self.from, stream: self.stream, bytes });
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
