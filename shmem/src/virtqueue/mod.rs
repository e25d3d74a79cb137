//! Virtio split virtqueues (virtio 1.x §2.7, and the legacy contiguous `vring`
//! layout remoteproc uses): the driver side, which owns the descriptors, and
//! the device side, which consumes them.
//!
//! Layout facts (offsets, flags, the `vring_need_event` rule) are from the virtio
//! specification and Linux `include/uapi/linux/virtio_ring.h`; the code is ours.
//!
//! Trust: each side treats everything the other side writes as a claim. The
//! driver never reads its own descriptors back (a device could have rewritten
//! them); it keeps a private shadow of each chain. The device copies each
//! descriptor out once and checks index, address, length, flags and chain length
//! before use. Every violation is a [`RingError`]; after one, the caller should
//! stop using the queue until the link is reset.
//!
//! Barriers (each call site names which of these it is):
//! - **publish**: `fence(Release)` between writing ring entries (descriptors,
//!   `avail.ring[]` / `used.ring[]`) and the index store that hands them over, so
//!   a peer that sees the new index sees the entries (VSPEC 2.7.13 step 3).
//! - **consume**: `fence(Acquire)` between reading the peer's index and reading
//!   the entries and buffers it covers (the mirror of *publish*).
//! - **notify-check**: `fence(SeqCst)` between storing our index and reading the
//!   peer's suppression word (`flags` / event index), and on the other side
//!   between re-enabling notifications and re-reading the index. Without it both
//!   sides could read stale values (a store-load reorder) and each decide not to
//!   notify / not to look: a lost wake-up (VSPEC 2.7.13 step 5).
//!
//! On aarch64 these are `dmb ish` variants, enough for cores in one
//! inner-shareable domain (all Cortex-A cores of one SoC). A doorbell write
//! additionally needs `dsb` (see `doorbell`); a non-coherent peer additionally
//! needs the window's cache hook, which the rings call around every access.
//!
//! The module's parts: [`RingLayout`] (`layout`), where a ring's fields lie and
//! how big it is, the one place the ring format's offsets and sizes are
//! written; [`DriverQueue`] (`driver`); [`DeviceQueue`] and the [`Chain`]s it
//! takes (`device`). The types both sides share are here.

mod device;
mod driver;
mod layout;

pub use device::{Chain, DeviceQueue};
pub use driver::DriverQueue;
pub use layout::{desc, RingLayout};

use crate::window::WindowError;
use core::fmt;

/// Descriptor flag: the chain continues at `next` (`VRING_DESC_F_NEXT`).
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer (`VRING_DESC_F_WRITE`).
pub const DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors (`VRING_DESC_F_INDIRECT`).
pub const DESC_F_INDIRECT: u16 = 4;
/// `avail.flags` bit: the driver asks not to be interrupted (`VRING_AVAIL_F_NO_INTERRUPT`).
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// `used.flags` bit: the device asks not to be notified (`VRING_USED_F_NO_NOTIFY`).
pub const USED_F_NO_NOTIFY: u16 = 1;
/// Feature bit number of `VIRTIO_F_INDIRECT_DESC`.
pub const F_INDIRECT_DESC: u32 = 28;
/// Feature bit number of `VIRTIO_F_EVENT_IDX` (`VIRTIO_RING_F_EVENT_IDX`).
pub const F_EVENT_IDX: u32 = 29;
/// Largest queue size the 16-bit indices allow.
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Size of one descriptor in bytes.
pub const DESCRIPTOR_SIZE: usize = 16;
/// Longest descriptor chain the device side accepts. The spec allows up to the
/// queue size; rpmsg uses 1 and the AVPS devices at most 3, and a fixed bound
/// keeps a [`Chain`] allocation-free.
pub const MAX_CHAIN: usize = 8;

/// The notification rule with `VIRTIO_F_EVENT_IDX`: having moved an index from
/// `old` to `new`, notify iff the peer's event index was passed
/// (`vring_need_event` in the spec and Linux `virtio_ring.h`).
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// A ring whose contents broke the protocol, or a call that would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The geometry does not fit: size not a power of two, too large for the
    /// queue's capacity, misaligned, or the ring does not fit in the window.
    Layout,
    /// `avail.idx` claims more new entries than the queue can hold.
    AvailIndex {
        /// Index the driver published.
        idx: u16,
        /// Last index this device consumed.
        seen: u16,
    },
    /// `used.idx` claims more completions than chains outstanding.
    UsedIndex {
        /// Index the device published.
        idx: u16,
        /// Last index this driver consumed.
        seen: u16,
    },
    /// A head or `next` index is not below the queue size.
    DescriptorIndex(u32),
    /// A used element names a chain this driver does not have outstanding.
    UsedId(u32),
    /// A used element claims more bytes written than the chain could take.
    UsedLength {
        /// Length the device reported.
        len: u32,
        /// Device-writable bytes in the chain.
        capacity: u32,
    },
    /// A chain longer than the queue size or [`MAX_CHAIN`] (or a loop).
    ChainTooLong,
    /// An indirect descriptor; not negotiated, so not accepted.
    Indirect,
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
    /// A chain whose total length overflows 32 bits.
    ChainLength,
    /// A descriptor or ring access outside the window.
    Window(WindowError),
    /// No free descriptors (driver) for a chain of this length: back-pressure,
    /// not a protocol error.
    Full,
    /// An empty chain was offered.
    EmptyChain,
    /// A descriptor offered or given back that [`DriverQueue::reserve`] did
    /// not hand out (a local misuse).
    NotReserved(u16),
}

impl From<WindowError> for RingError {
    fn from(e: WindowError) -> Self {
        Self::Window(e)
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Layout => f.write_str("ring geometry does not fit"),
            Self::AvailIndex { idx, seen } => {
                write!(f, "avail.idx {idx} is out of range (consumed {seen})")
            }
            Self::UsedIndex { idx, seen } => {
                write!(f, "used.idx {idx} is out of range (consumed {seen})")
            }
            Self::DescriptorIndex(i) => write!(f, "descriptor index {i} is out of range"),
            Self::UsedId(i) => write!(f, "used id {i} is not outstanding"),
            Self::UsedLength { len, capacity } => write!(f, "used length {len} exceeds {capacity}"),
            Self::ChainTooLong => f.write_str("descriptor chain too long or looping"),
            Self::Indirect => f.write_str("indirect descriptor not negotiated"),
            Self::ReadableAfterWritable => f.write_str("readable descriptor after a writable one"),
            Self::ChainLength => f.write_str("chain length overflows"),
            Self::Window(e) => write!(f, "{e}"),
            Self::Full => f.write_str("no free descriptors"),
            Self::EmptyChain => f.write_str("empty chain"),
            Self::NotReserved(i) => write!(f, "descriptor {i} is not reserved"),
        }
    }
}

impl RingError {
    /// Whether the error means the peer broke the protocol (as opposed to
    /// back-pressure or a local misuse that touched nothing shared).
    pub fn is_protocol_violation(&self) -> bool {
        !matches!(self, Self::Full | Self::EmptyChain | Self::NotReserved(_))
    }
}

/// How the queues decide whether to notify the peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// `VIRTIO_F_EVENT_IDX` was negotiated: use `used_event` / `avail_event`.
    pub event_idx: bool,
    /// Device side only: notify after every used entry even when the driver set
    /// `VRING_AVAIL_F_NO_INTERRUPT`. rpmsg-lite's master sets that flag on both
    /// rings at init and never clears it, yet relies on being interrupted.
    pub ignore_no_interrupt: bool,
    /// Neither side ever waits for a notification (both poll the rings): the
    /// notify check after publishing (a full fence and a read of the peer's
    /// flags, a cross-core cache miss per message) is skipped.
    pub polled: bool,
}

/// One buffer of a chain the driver offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Bus address of the buffer.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// The device writes it (else reads it).
    pub device_writable: bool,
}

/// A chain the device returned: the token the driver gave with it, and the
/// number of bytes the device says it wrote (checked against the chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    /// Head descriptor index.
    pub head: u16,
    /// The driver's token for the chain (see [`DriverQueue::add`]).
    pub token: u16,
    /// Bytes written by the device, at most the chain's writable capacity
    /// (0 for a chain with no device-writable buffer, whatever it reported).
    pub len: u32,
}

/// One buffer of a chain the device took, translated and checked: `offset ..
/// offset + len` lies inside the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Buffer {
    /// Offset in the window.
    pub offset: usize,
    /// Length in bytes.
    pub len: u32,
    /// The device may write it.
    pub device_writable: bool,
}
