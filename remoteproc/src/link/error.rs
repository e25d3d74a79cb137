//! What can go wrong on a link, and what a link counts.

use crate::resource_table::TableError;
use core::fmt;
use shmem::{RingError, WindowError};

/// A malformed message: dropped, counted, the link goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// The header's payload length does not fit the buffer.
    Length {
        /// Claimed payload length.
        len: u16,
        /// Room in the buffer.
        room: u32,
    },
    /// Source or destination is `RPMSG_ADDR_ANY`.
    Address {
        /// Source address.
        src: u32,
        /// Destination address.
        dst: u32,
    },
    /// A buffer shorter than the rpmsg header, or a TX buffer the host did not
    /// mark device-writable.
    Buffer,
    /// A name-service message of the wrong size or with an invalid address.
    NameService,
}

/// Why a link call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The peer broke the ring protocol (fatal).
    Ring(RingError),
    /// The peer's resource table is unusable (the link stays down).
    Table(TableError),
    /// A malformed message was dropped (not fatal).
    Message(MessageError),
    /// The peer restarted (its epoch changed): reset the link (fatal).
    PeerRestarted,
    /// The link failed earlier; call [`Link::reset`](super::Link::reset).
    Broken,
    /// The peer is not up yet.
    NotReady,
    /// The configuration does not fit the window.
    Config,
    /// Local misuse: address taken or invalid, no endpoint slot, payload too
    /// long, or a buffer from before a reset.
    Usage,
}

impl LinkError {
    /// Whether the link is now broken and needs [`Link::reset`](super::Link::reset).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Ring(_) | Self::PeerRestarted | Self::Broken)
    }
}

impl From<RingError> for LinkError {
    fn from(e: RingError) -> Self {
        match e {
            // Only a lent buffer used after it went back gets here.
            RingError::NotReserved(_) => Self::Usage,
            e => Self::Ring(e),
        }
    }
}

impl From<WindowError> for LinkError {
    fn from(e: WindowError) -> Self {
        Self::Ring(RingError::Window(e))
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "ring protocol violated: {e}"),
            Self::Table(e) => write!(f, "resource table unusable: {e:?}"),
            Self::Message(e) => write!(f, "message dropped: {e:?}"),
            Self::PeerRestarted => f.write_str("peer restarted"),
            Self::Broken => f.write_str("link broken; reset it"),
            Self::NotReady => f.write_str("peer not ready"),
            Self::Config => f.write_str("configuration does not fit the window"),
            Self::Usage => f.write_str("invalid call"),
        }
    }
}

/// Counters a link keeps (never reset, so a monitor sees totals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Messages sent.
    pub sent: u64,
    /// Messages delivered to a local endpoint.
    pub received: u64,
    /// Ring protocol violations seen.
    pub ring_errors: u32,
    /// Malformed messages dropped.
    pub message_errors: u32,
    /// Unusable resource tables seen.
    pub table_errors: u32,
    /// Messages for an address with no local endpoint (dropped).
    pub unknown_destination: u32,
    /// Peer restarts seen.
    pub peer_restarts: u32,
    /// Resets of this side.
    pub resets: u32,
    /// Extra vring-0 kicks sent while waiting for the remote.
    pub renotifies: u32,
}
