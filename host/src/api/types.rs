//! Conversions between generated WIT types and the host's.

use super::wit;
use crate::process::{ExitReason, NodeId, Pid};

impl super::spore::process::types::Host for crate::process::state::ProcState {}

impl From<Pid> for wit::Pid {
    fn from(p: Pid) -> Self {
        Self { node: p.node.0, incarnation: p.incarnation, index: p.index }
    }
}

impl From<wit::Pid> for Pid {
    fn from(p: wit::Pid) -> Self {
        Self { node: NodeId(p.node), incarnation: p.incarnation, index: p.index }
    }
}

impl From<ExitReason> for wit::ExitReason {
    fn from(r: ExitReason) -> Self {
        match r {
            ExitReason::Normal => Self::Normal,
            ExitReason::Killed => Self::Killed,
            ExitReason::Shutdown => Self::Shutdown,
            ExitReason::Noproc => Self::Noproc,
            ExitReason::Noconnection => Self::Noconnection,
            ExitReason::Trap(m) => Self::Trap(m),
            ExitReason::Panic(m) => Self::Panic(m),
            ExitReason::Limit(m) => Self::Limit(m),
            ExitReason::Error(m) => Self::Error(m),
        }
    }
}

impl From<wit::ExitReason> for ExitReason {
    fn from(r: wit::ExitReason) -> Self {
        match r {
            wit::ExitReason::Normal => Self::Normal,
            wit::ExitReason::Killed => Self::Killed,
            wit::ExitReason::Shutdown => Self::Shutdown,
            wit::ExitReason::Noproc => Self::Noproc,
            wit::ExitReason::Noconnection => Self::Noconnection,
            wit::ExitReason::Trap(m) => Self::Trap(bounded(m)),
            wit::ExitReason::Panic(m) => Self::Panic(bounded(m)),
            wit::ExitReason::Limit(m) => Self::Limit(bounded(m)),
            wit::ExitReason::Error(m) => Self::Error(bounded(m)),
        }
    }
}

/// Longest exit-reason text a guest can give: reasons travel in every link's exit signal.
const MAX_REASON_BYTES: usize = 4096;

/// `text` cut to [`MAX_REASON_BYTES`] at a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
