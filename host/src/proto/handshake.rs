//! The handshake: each side sends a [`Hello`] and checks the other's. A link is up only once
//! the peer's hello has arrived and passed the checks.
//!
//! The acceptor speaks first: it has admitted the dialer by the claim of its TLS ClientHello
//! (see [`crate::transport::tls::Claim`]), and its hello leaves with its half of the TLS
//! handshake, as 0.5-RTT data. The dialer answers once its TLS handshake is done, with its
//! `Finished`: so its link is up one round trip after the first packet, and the acceptor's
//! half a round trip later, once it has checked the dialer's certificate and hello.
//!
//! Call order: create with [`Handshake::new`], send [`Handshake::poll_transmit`] if any, feed
//! each received frame to [`Handshake::handle_frame`], send `poll_transmit` again, until
//! [`Handshake::peer`] is `Some` or an error is returned.

use super::{Frame, Hello, MAX_NODE_NAME_BYTES, PROTOCOL_VERSION};

/// Which side of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection; answers the acceptor's hello.
    Dialer,
    /// Accepted it; speaks first.
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
    /// Our hello is still to be sent (acceptor, or dialer after checking the peer).
    SendHello {
        /// Our hello.
        ours: Hello,
        /// The peer's hello, once received (dialer).
        peer: Option<Hello>,
    },
    /// Our hello is sent; waiting for the peer's (acceptor).
    AwaitHello {
        /// Our hello.
        ours: Hello,
    },
    /// Waiting for the acceptor's hello before answering (dialer).
    AwaitAcceptor {
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
            Role::Acceptor => Self::SendHello { ours, peer: None },
            Role::Dialer => Self::AwaitAcceptor { ours },
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

    /// Consumes a received frame; `check` decides whether this peer is acceptable (the
    /// acceptor: its certificate names it and it is who it claimed to be; the dialer: it is
    /// the node dialled).
    pub fn handle_frame(
        &mut self,
        frame: Frame,
        check: impl FnOnce(&Hello) -> Result<(), String>,
    ) -> Result<(), HandshakeError> {
        let (ours, spoke_first) = match std::mem::replace(self, Self::Closed) {
            Self::AwaitHello { ours } => (ours, true),
            Self::AwaitAcceptor { ours } => (ours, false),
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
        // The acceptor has sent its hello already; the dialer answers now.
        *self = if spoke_first { Self::Ready { peer } } else { Self::SendHello { ours, peer: Some(peer) } };
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
