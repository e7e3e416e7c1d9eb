//! The handshake: each side sends a [`Hello`] and checks the other's. A link is up only once
//! the peer's hello has arrived and passed the checks (under TLS 1.3 the dialer's handshake
//! can finish before the acceptor has checked its certificate).
//!
//! Call order: create with [`Handshake::new`], send [`Handshake::poll_transmit`] if any, feed
//! each received frame to [`Handshake::handle_frame`], send `poll_transmit` again, until
//! [`Handshake::peer`] is `Some` or an error is returned.

use super::{Frame, Hello, MAX_NODE_NAME_BYTES, PROTOCOL_VERSION};

/// Which side of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection; speaks first.
    Dialer,
    /// Accepted it; answers the dialer's hello.
    Acceptor,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first frame was not a hello.
    #[error("expected a hello, got another frame first")]
    NotHello,
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {theirs}, this node {ours}")]
    Version {
        /// Its version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// The peer's name is malformed.
    #[error("peer claims a bad node name `{0}`")]
    BadName(String),
    /// The caller's check (certificate, duplicates) refused the peer.
    #[error("{0}")]
    Refused(String),
    /// A frame arrived after the handshake ended or failed.
    #[error("handshake already over")]
    Over,
}

/// The handshake state machine.
#[derive(Debug)]
pub enum Handshake {
    /// Our hello is still to be sent (dialer, or acceptor after checking the peer).
    SendHello {
        /// Our hello.
        ours: Hello,
        /// The peer's hello, once received (acceptor).
        peer: Option<Hello>,
    },
    /// Our hello is sent; waiting for the peer's (dialer).
    AwaitHello {
        /// Our hello.
        ours: Hello,
    },
    /// Waiting for the dialer's hello before answering (acceptor).
    AwaitDialer {
        /// Our hello.
        ours: Hello,
    },
    /// Done: the peer's hello passed the checks.
    Ready {
        /// The peer.
        peer: Hello,
    },
    /// Failed; terminal.
    Closed,
}

impl Handshake {
    /// Starts a handshake for `role` with our hello.
    pub fn new(role: Role, ours: Hello) -> Self {
        match role {
            Role::Dialer => Self::SendHello { ours, peer: None },
            Role::Acceptor => Self::AwaitDialer { ours },
        }
    }

    /// The frame to send now, if any.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        match std::mem::replace(self, Self::Closed) {
            Self::SendHello { ours, peer } => {
                let frame = Frame::Hello(ours.clone());
                *self = match peer {
                    Some(peer) => Self::Ready { peer },
                    None => Self::AwaitHello { ours },
                };
                Some(frame)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// Consumes a received frame; `check` decides whether this peer is acceptable (its
    /// certificate names it, it is not a duplicate).
    pub fn handle_frame(
        &mut self,
        frame: Frame,
        check: impl FnOnce(&Hello) -> Result<(), String>,
    ) -> Result<(), HandshakeError> {
        let (ours, dialer) = match std::mem::replace(self, Self::Closed) {
            Self::AwaitHello { ours } => (ours, true),
            Self::AwaitDialer { ours } => (ours, false),
            _ => return Err(HandshakeError::Over),
        };
        let Frame::Hello(peer) = frame else { return Err(HandshakeError::NotHello) };
        if peer.version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version { theirs: peer.version, ours: PROTOCOL_VERSION });
        }
        if !valid_node_name(&peer.name) {
            return Err(HandshakeError::BadName(peer.name));
        }
        check(&peer).map_err(HandshakeError::Refused)?;
        // The dialer has sent its hello already; the acceptor answers now.
        *self = if dialer { Self::Ready { peer } } else { Self::SendHello { ours, peer: Some(peer) } };
        Ok(())
    }

    /// The peer's hello once the handshake is complete.
    pub fn peer(&self) -> Option<&Hello> {
        match self {
            Self::Ready { peer } => Some(peer),
            _ => None,
        }
    }
}

/// A node name: `name@host`, both parts non-empty, printable, bounded.
pub fn valid_node_name(name: &str) -> bool {
    let Some((short, host)) = name.split_once('@') else { return false };
    !short.is_empty()
        && !host.is_empty()
        && !host.contains('@')
        && name.len() <= MAX_NODE_NAME_BYTES
        && name.chars().all(|c| c.is_ascii_graphic())
}
