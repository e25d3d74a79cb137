//! rpmsg wire format: the 16-byte message header and the name-service message.
//!
//! Facts from Linux `drivers/rpmsg/virtio_rpmsg_bus.c` (`struct rpmsg_hdr`,
//! `struct rpmsg_ns_msg`, `RPMSG_NS_ADDR`, `MAX_RPMSG_BUF_SIZE`), OpenAMP
//! `rpmsg_virtio.h` and NXP rpmsg-lite `rpmsg_lite.h` (`RL_BUFFER_PAYLOAD_SIZE`);
//! all little-endian and packed.

use shmem::{Span, Window, WindowError};

/// Name-service endpoint address (`RPMSG_NS_ADDR`).
pub const NS_ADDR: u32 = 53;
/// "Any address" (`RPMSG_ADDR_ANY`); never valid on the wire.
pub const ADDR_ANY: u32 = 0xFFFF_FFFF;
/// Addresses below this are never handed out dynamically (Linux, OpenAMP).
pub const RESERVED_ADDRESSES: u32 = 1024;
/// Default buffer size, header included (`MAX_RPMSG_BUF_SIZE`, rpmsg-lite
/// `RL_BUFFER_SIZE`).
pub const BUFFER_SIZE: usize = 512;
/// Message header size (`sizeof(struct rpmsg_hdr)`).
pub const HEADER_SIZE: usize = 16;
/// Largest payload in a default buffer (rpmsg-lite `RL_BUFFER_PAYLOAD_SIZE`).
pub const MAX_PAYLOAD: usize = BUFFER_SIZE - HEADER_SIZE;
/// Feature bit number of `VIRTIO_RPMSG_F_NS`.
pub const F_NS: u32 = 0;
/// Name length in a name-service message (`RPMSG_NAME_SIZE`).
pub const NAME_SIZE: usize = 32;
/// Size of a name-service message (`sizeof(struct rpmsg_ns_msg)`).
pub const NS_MESSAGE_SIZE: usize = 40;
/// Name-service flag: a service was created (`RPMSG_NS_CREATE`).
pub const NS_CREATE: u32 = 0;
/// Name-service flag: a service was destroyed (`RPMSG_NS_DESTROY`).
pub const NS_DESTROY: u32 = 1;

/// Field offsets of `struct rpmsg_hdr`.
pub mod header {
    /// `u32 src`.
    pub const SRC: usize = 0;
    /// `u32 dst`.
    pub const DST: usize = 4;
    /// `u32 reserved` (receivers may use it as scratch; senders write 0).
    pub const RESERVED: usize = 8;
    /// `u16 len`: payload length.
    pub const LEN: usize = 12;
    /// `u16 flags`.
    pub const FLAGS: usize = 14;
    /// Payload.
    pub const DATA: usize = 16;
}

/// The header of a `len`-byte payload from `src` to `dst`, as the two
/// little-endian 64-bit words it fills (`reserved` and `flags` zero): what
/// every sender stores, in two word stores where the buffer is aligned.
pub const fn header_words(src: u32, dst: u32, len: u16) -> [u64; 2] {
    const {
        assert!(
            header::SRC == 0
                && header::DST == 4
                && header::RESERVED == 8
                && header::LEN == 12
                && header::FLAGS == 14
        )
    };
    [src as u64 | (dst as u64) << 32, (len as u64) << 32]
}

/// Field offsets of `struct rpmsg_ns_msg`.
pub mod ns {
    /// `char name[32]`.
    pub const NAME: usize = 0;
    /// `u32 addr`.
    pub const ADDR: usize = 32;
    /// `u32 flags`.
    pub const FLAGS: usize = 36;
}

/// Encodes a name-service message.
pub fn ns_message(name: &[u8], addr: u32, flags: u32) -> [u8; NS_MESSAGE_SIZE] {
    let mut m = [0u8; NS_MESSAGE_SIZE];
    let n = name.len().min(NAME_SIZE - 1);
    m[ns::NAME..ns::NAME + n].copy_from_slice(&name[..n]);
    m[ns::ADDR..ns::ADDR + 4].copy_from_slice(&addr.to_le_bytes());
    m[ns::FLAGS..ns::FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
    m
}

/// A name-service record the peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceEvent {
    /// Service name, NUL-padded (byte 31 is always NUL).
    pub name: [u8; NAME_SIZE],
    /// The peer endpoint offering it.
    pub addr: u32,
    /// Created (else destroyed).
    pub created: bool,
}

impl ServiceEvent {
    /// The name up to its first NUL.
    pub fn name(&self) -> &[u8] {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        &self.name[..end]
    }
}

/// (src, dst, len) of the rpmsg header at `offset`: two 64-bit loads
/// when it is 8-byte aligned (every buffer a sane peer offers), else a
/// byte copy (any alignment a hostile one gives).
#[inline(always)]
pub fn read_header(w: &Window<'_>, offset: usize) -> Result<(u32, u32, u16), WindowError> {
    const { assert!(header::SRC == 0 && header::DST == 4 && header::LEN == 12) };
    if offset.is_multiple_of(8) {
        let a = w.read_u64(offset)?;
        let b = w.read_u64(offset + 8)?;
        return Ok((a as u32, (a >> 32) as u32, (b >> 32) as u16));
    }
    let mut h = [0u8; HEADER_SIZE];
    w.read_bytes(offset, &mut h)?;
    let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let len = u16::from_le_bytes([h[header::LEN], h[header::LEN + 1]]);
    Ok((word(header::SRC), word(header::DST), len))
}

/// A name-service message's record, checked: its size, an address that is
/// not `ADDR_ANY`, known flags; the name NUL-terminated as Linux makes it.
pub fn parse_ns(payload: &Span<'_>) -> Option<ServiceEvent> {
    if payload.len() != NS_MESSAGE_SIZE {
        return None;
    }
    let mut m = [0u8; NS_MESSAGE_SIZE];
    payload.read_bytes(0, &mut m).ok()?;
    let mut name = [0u8; NAME_SIZE];
    name.copy_from_slice(&m[ns::NAME..ns::NAME + NAME_SIZE]);
    name[NAME_SIZE - 1] = 0; // as Linux does
    let addr = u32::from_le_bytes([
        m[ns::ADDR],
        m[ns::ADDR + 1],
        m[ns::ADDR + 2],
        m[ns::ADDR + 3],
    ]);
    let flags = u32::from_le_bytes([
        m[ns::FLAGS],
        m[ns::FLAGS + 1],
        m[ns::FLAGS + 2],
        m[ns::FLAGS + 3],
    ]);
    if addr == ADDR_ANY || flags > NS_DESTROY {
        return None;
    }
    Some(ServiceEvent {
        name,
        addr,
        created: flags == NS_CREATE,
    })
}
