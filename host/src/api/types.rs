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
            wit::ExitReason::Trap(m) => Self::Trap(m),
            wit::ExitReason::Panic(m) => Self::Panic(m),
            wit::ExitReason::Limit(m) => Self::Limit(m),
            wit::ExitReason::Error(m) => Self::Error(m),
        }
        .bounded()
    }
}
