//! [`ExitReason`]: why a process ended.

use crate::prelude::*;

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::bindings::spore::process::types as wit;

/// Why a process ended, as links and monitors report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// Its entry returned.
    Normal,
    /// Killed (untrappable).
    Killed,
    /// Its node shut down, or a supervisor stopped it.
    Shutdown,
    /// It did not exist.
    Noproc,
    /// The connection to its node was lost.
    Noconnection,
    /// It trapped.
    Trap(String),
    /// It panicked.
    Panic(String),
    /// It exceeded a limit (memory, fuel, mailbox).
    Limit(String),
    /// Any other reason.
    Error(String),
}

impl ExitReason {
    /// True for [`ExitReason::Normal`].
    pub fn is_normal(&self) -> bool {
        matches!(self, Self::Normal)
    }

    pub(crate) fn to_wit(&self) -> wit::ExitReason {
        match self.clone() {
            Self::Normal => wit::ExitReason::Normal,
            Self::Killed => wit::ExitReason::Killed,
            Self::Shutdown => wit::ExitReason::Shutdown,
            Self::Noproc => wit::ExitReason::Noproc,
            Self::Noconnection => wit::ExitReason::Noconnection,
            Self::Trap(m) => wit::ExitReason::Trap(m),
            Self::Panic(m) => wit::ExitReason::Panic(m),
            Self::Limit(m) => wit::ExitReason::Limit(m),
            Self::Error(m) => wit::ExitReason::Error(m),
        }
    }

    pub(crate) fn from_wit(r: wit::ExitReason) -> Self {
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
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Killed => f.write_str("killed"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Noproc => f.write_str("noproc"),
            Self::Noconnection => f.write_str("noconnection"),
            Self::Trap(m) => write!(f, "trap: {m}"),
            Self::Panic(m) => write!(f, "panic: {m}"),
            Self::Limit(m) => write!(f, "limit: {m}"),
            Self::Error(m) => f.write_str(m),
        }
    }
}
