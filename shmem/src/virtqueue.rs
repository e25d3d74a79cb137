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

use crate::sync::{fence, Ordering};
use crate::window::{RingFields, Window, WindowError};
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

/// `chain_len` of a descriptor [`DriverQueue::reserve`] handed out and not
/// yet offered or given back (a real chain is at most the queue size long).
const RESERVED: u16 = u16::MAX;

/// A driver's free descriptors: a FIFO list from `head` to `tail`, `len`
/// long, linked through the driver's private `next` shadow.
#[derive(Clone, Copy, Debug, Default)]
struct FreeList {
    head: u16,
    tail: u16,
    len: u16,
}

impl FreeList {
    /// Puts the chain `head` .. `tail` (`count` descriptors, linked in
    /// `next`) at the back.
    #[inline(always)]
    fn push(&mut self, next: &mut [u16], head: u16, tail: u16, count: u16) {
        if self.len == 0 {
            self.head = head;
        } else {
            next[usize::from(self.tail)] = head;
        }
        self.tail = tail;
        self.len += count;
    }
}

/// Offsets of the fields of one descriptor (`struct vring_desc`, 16 bytes).
pub mod desc {
    /// `le64 addr`: the buffer's bus address.
    pub const ADDR: usize = 0;
    /// `le32 len`.
    pub const LEN: usize = 8;
    /// `le16 flags`.
    pub const FLAGS: usize = 12;
    /// `le16 next`.
    pub const NEXT: usize = 14;
}

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

/// Where the three parts of one split virtqueue lie, as offsets in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Queue size (number of descriptors), a power of two.
    pub size: u16,
    /// Offset of the descriptor table (16-byte aligned).
    pub desc: usize,
    /// Offset of the available ring (2-byte aligned).
    pub avail: usize,
    /// Offset of the used ring (4-byte aligned).
    pub used: usize,
}

fn align_up(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

impl RingLayout {
    /// The legacy contiguous layout at `offset` (Linux `vring_init(vr, num, p,
    /// align)`): descriptors, then the available ring with `used_event`, then
    /// the used ring at the next multiple of `align`. `align` is measured on
    /// the peer's bus address, so `offset` must be `align`-aligned there too.
    pub fn legacy(
        window: &Window<'_>,
        offset: usize,
        size: u16,
        align: usize,
    ) -> Result<Self, RingError> {
        if !align.is_power_of_two() || align < 4 {
            return Err(RingError::Layout);
        }
        if !window.bus_address_of(offset).is_multiple_of(align as u64) {
            return Err(RingError::Layout);
        }
        let n = usize::from(size);
        let avail = offset + DESCRIPTOR_SIZE * n;
        let used =
            offset + align_up(DESCRIPTOR_SIZE * n + 2 * (3 + n), align).ok_or(RingError::Layout)?;
        let layout = Self {
            size,
            desc: offset,
            avail,
            used,
        };
        layout.check(window)?;
        Ok(layout)
    }

    /// Bytes the legacy layout occupies (Linux `vring_size(num, align)`).
    pub fn legacy_size(size: u16, align: usize) -> usize {
        let n = usize::from(size);
        align_up(DESCRIPTOR_SIZE * n + 2 * (3 + n), align).unwrap_or(usize::MAX) + 6 + 8 * n
    }

    /// A modern layout with the three parts placed independently.
    pub fn split(
        window: &Window<'_>,
        size: u16,
        desc: usize,
        avail: usize,
        used: usize,
    ) -> Result<Self, RingError> {
        let layout = Self {
            size,
            desc,
            avail,
            used,
        };
        layout.check(window)?;
        Ok(layout)
    }

    /// Checks size, alignment and that every part lies inside `window`.
    ///
    /// [`RingFields`]' accesses rely on this check for staying inside the
    /// window: they take its offsets without checking them again.
    pub fn check(&self, window: &Window<'_>) -> Result<(), RingError> {
        let n = usize::from(self.size);
        if !self.size.is_power_of_two() || self.size > MAX_QUEUE_SIZE {
            return Err(RingError::Layout);
        }
        if !self.desc.is_multiple_of(16)
            || !self.avail.is_multiple_of(2)
            || !self.used.is_multiple_of(4)
        {
            return Err(RingError::Layout);
        }
        let fits =
            |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= window.len());
        if !fits(self.desc, 16 * n) || !fits(self.avail, 6 + 2 * n) || !fits(self.used, 6 + 8 * n) {
            return Err(RingError::Layout);
        }
        Ok(())
    }

    fn avail_flags(&self) -> usize {
        self.avail
    }
    pub(crate) fn avail_idx(&self) -> usize {
        self.avail + 2
    }
    pub(crate) fn avail_ring(&self, idx: u16) -> usize {
        self.avail + 4 + 2 * usize::from(idx & (self.size - 1))
    }
    fn used_event(&self) -> usize {
        self.avail + 4 + 2 * usize::from(self.size)
    }
    fn used_flags(&self) -> usize {
        self.used
    }
    pub(crate) fn used_idx(&self) -> usize {
        self.used + 2
    }
    pub(crate) fn used_elem(&self, idx: u16) -> usize {
        self.used + 4 + 8 * usize::from(idx & (self.size - 1))
    }
    fn avail_event(&self) -> usize {
        self.used + 4 + 8 * usize::from(self.size)
    }
    pub(crate) fn descriptor(&self, i: u16) -> usize {
        self.desc + DESCRIPTOR_SIZE * usize::from(i)
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

/// The driver side of one virtqueue: offers buffers, takes them back used.
///
/// `N` is the largest queue size this instance can track (its shadow arrays);
/// the actual size comes from the layout.
#[derive(Debug)]
pub struct DriverQueue<'a, const N: usize> {
    window: Window<'a>,
    layout: RingLayout,
    /// The layout's fields, checked once against the window.
    fields: RingFields<'a>,
    notification: Notification,
    want_interrupts: bool,
    // Private shadow of the descriptor table: free list and chain links, token
    // and writable capacity per head. Never read back from shared memory.
    next: [u16; N],
    chain_len: [u16; N],
    token: [u16; N],
    capacity: [u32; N],
    /// Free descriptors form a FIFO list (`free.head` .. `free.tail`): a freed
    /// chain goes to the back, so descriptors are reused in the order they were
    /// used. With in-order completion each buffer then keeps its descriptor and
    /// avail slot, whose contents stay the same and are not written again (see
    /// [`DriverQueue::add`]).
    free: FreeList,
    outstanding: u16,
    avail_idx: u16,
    published: u16,
    last_used: u16,
    /// used.idx as last read (and checked); entries up to it are known.
    used_seen: u16,
}

impl<'a, const N: usize> DriverQueue<'a, N> {
    /// Takes ownership of the ring at `layout`: zeroes it (the driver
    /// initialises the ring, VSPEC 2.7 and Linux `vring_new_virtqueue`), with
    /// interrupts wanted.
    pub fn new(
        window: Window<'a>,
        layout: RingLayout,
        notification: Notification,
    ) -> Result<Self, RingError> {
        let fields = window.ring_fields(layout)?;
        if usize::from(layout.size) > N {
            return Err(RingError::Layout);
        }
        let mut q = Self {
            window,
            layout,
            fields,
            notification,
            want_interrupts: true,
            next: [0; N],
            chain_len: [0; N],
            token: [0; N],
            capacity: [0; N],
            free: FreeList::default(),
            outstanding: 0,
            avail_idx: 0,
            published: 0,
            last_used: 0,
            used_seen: 0,
        };
        q.reset()?;
        Ok(q)
    }

    /// Forgets every outstanding chain and zeroes the ring again (link reset).
    pub fn reset(&mut self) -> Result<(), RingError> {
        let l = self.layout;
        let n = usize::from(l.size);
        self.window.fill(l.desc, 16 * n, 0)?;
        self.window.fill(l.avail, 6 + 2 * n, 0)?;
        self.window.fill(l.used, 6 + 8 * n, 0)?;
        for i in 0..l.size {
            self.next[usize::from(i)] = i + 1;
            self.chain_len[usize::from(i)] = 0;
        }
        self.free = FreeList {
            head: 0,
            tail: l.size - 1,
            len: l.size,
        };
        self.outstanding = 0;
        self.avail_idx = 0;
        self.published = 0;
        self.last_used = 0;
        self.used_seen = 0;
        self.want_interrupts = true;
        self.window.clean(l.desc, 16 * n);
        self.window.clean(l.avail, 6 + 2 * n);
        self.window.clean(l.used, 6 + 8 * n);
        Ok(())
    }

    /// The ring's layout.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Free descriptors.
    pub fn num_free(&self) -> u16 {
        self.free.len
    }

    /// Writes a chain's descriptors and its `avail.ring` slot; the device sees
    /// it after [`DriverQueue::publish`]. `token` comes back with it in
    /// [`Used`]. Device-readable segments must come first.
    #[inline(always)]
    pub fn add(&mut self, chain: &[Segment], token: u16) -> Result<u16, RingError> {
        if chain.is_empty() {
            return Err(RingError::EmptyChain);
        }
        if chain.len() > usize::from(self.free.len) {
            return Err(RingError::Full);
        }
        let mut writable_seen = false;
        let mut capacity: u32 = 0;
        for s in chain {
            if writable_seen && !s.device_writable {
                return Err(RingError::ReadableAfterWritable);
            }
            writable_seen |= s.device_writable;
            if s.device_writable {
                capacity = capacity.checked_add(s.len).ok_or(RingError::ChainLength)?;
            }
        }
        let head = self.free.head;
        let mut i = head;
        for (k, s) in chain.iter().enumerate() {
            let last = k + 1 == chain.len();
            let at = self.layout.descriptor(i);
            let mut flags = if s.device_writable { DESC_F_WRITE } else { 0 };
            let next = self.next[usize::from(i)];
            if !last {
                flags |= DESC_F_NEXT;
            }
            let next_field = if last { 0 } else { next };
            // `len`, `flags` and `next` (little-endian) as one word.
            let word = u64::from(s.len) | (u64::from(flags) << 32) | (u64::from(next_field) << 48);
            write_unless_same(&self.fields, &self.window, at, i, s.addr, word);
            if !last {
                i = next;
            } else {
                self.free.head = next;
            }
        }
        self.free.len -= chain.len() as u16;
        self.offer(head, chain.len() as u16, token, capacity);
        Ok(head)
    }

    /// The descriptor [`DriverQueue::reserve`] takes next, if any is free.
    #[inline(always)]
    pub fn peek_free(&self) -> Option<u16> {
        (self.free.len != 0).then_some(self.free.head)
    }

    /// Takes one free descriptor, to be offered later as a chain of one
    /// segment ([`DriverQueue::offer_reserved`]) or given back
    /// ([`DriverQueue::unreserve`]). A driver that binds each of its buffers
    /// to one descriptor (rpmsg's TX buffers) keeps its free buffers as this
    /// queue's free descriptors: one list, not two kept in step.
    #[inline(always)]
    pub fn reserve(&mut self) -> Option<u16> {
        let head = self.peek_free()?;
        self.free.head = self.next[usize::from(head)];
        self.free.len -= 1;
        self.chain_len[usize::from(head)] = RESERVED;
        Some(head)
    }

    /// Offers reserved descriptor `head` as a chain of one segment (as
    /// [`DriverQueue::add`] does, without the chain loop and its checks).
    #[inline(always)]
    pub fn offer_reserved(
        &mut self,
        head: u16,
        segment: Segment,
        token: u16,
    ) -> Result<(), RingError> {
        if self.chain_len.get(usize::from(head)) != Some(&RESERVED) {
            return Err(RingError::NotReserved(head));
        }
        let (word, capacity) = lone_descriptor(&segment);
        let at = self.layout.descriptor(head);
        write_unless_same(&self.fields, &self.window, at, head, segment.addr, word);
        self.offer(head, 1, token, capacity);
        Ok(())
    }

    /// Offers free descriptors one after another, each as a chain of one
    /// segment whose token is the descriptor's index: `segment(d)` makes
    /// descriptor `d`'s segment (typically filling the buffer bound to it),
    /// or returns `None` to stop, leaving `d` free. At most `max`; returns
    /// how many were offered. [`DriverQueue::publish`] shows them to the
    /// device. For a driver streaming through buffers bound to descriptors
    /// (as [`DriverQueue::reserve`] and [`DriverQueue::offer_reserved`],
    /// without a call and its checks per buffer).
    #[inline(always)]
    pub fn offer_each(&mut self, max: u16, mut segment: impl FnMut(u16) -> Option<Segment>) -> u16 {
        // The free list, the counters and the ring's fields in locals (as
        // in `take_seen`), written back once.
        let (fields, window, layout) = (self.fields, self.window, self.layout);
        let mut free = self.free;
        let (mut avail_idx, mut outstanding) = (self.avail_idx, self.outstanding);
        let mut n = 0;
        while n < max && free.len != 0 {
            let d = free.head;
            let Some(seg) = segment(d) else { break };
            free.head = self.next[usize::from(d)];
            free.len -= 1;
            let (word, capacity) = lone_descriptor(&seg);
            write_unless_same(&fields, &window, layout.descriptor(d), d, seg.addr, word);
            self.chain_len[usize::from(d)] = 1;
            self.token[usize::from(d)] = d;
            self.capacity[usize::from(d)] = capacity;
            write_slot_unless_same(&fields, &window, layout.avail_ring(avail_idx), avail_idx, d);
            avail_idx = avail_idx.wrapping_add(1);
            outstanding += 1;
            n += 1;
        }
        self.free = free;
        (self.avail_idx, self.outstanding) = (avail_idx, outstanding);
        n
    }

    /// Gives reserved descriptor `head` back unused.
    pub fn unreserve(&mut self, head: u16) -> Result<(), RingError> {
        if self.chain_len.get(usize::from(head)) != Some(&RESERVED) {
            return Err(RingError::NotReserved(head));
        }
        self.chain_len[usize::from(head)] = 0;
        self.free.push(&mut self.next, head, head, 1);
        Ok(())
    }

    /// Records the chain at `head` (`len` descriptors, already written) and
    /// puts it in the next `avail.ring` slot.
    #[inline(always)]
    fn offer(&mut self, head: u16, len: u16, token: u16, capacity: u32) {
        self.chain_len[usize::from(head)] = len;
        self.token[usize::from(head)] = token;
        self.capacity[usize::from(head)] = capacity;
        let slot = self.layout.avail_ring(self.avail_idx);
        write_slot_unless_same(&self.fields, &self.window, slot, self.avail_idx, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.outstanding += 1;
    }

    /// Makes every chain added since the last publish visible to the device.
    /// Returns whether the device asked to be notified (ring the doorbell then).
    #[inline(always)]
    pub fn publish(&mut self) -> Result<bool, RingError> {
        if self.avail_idx == self.published {
            return Ok(false);
        }
        let old = self.published;
        let new = self.avail_idx;
        // Barrier *publish*: descriptors and avail.ring[] before avail.idx.
        fence(Ordering::Release);
        self.fields.set_avail_idx(new);
        self.window.clean(self.layout.avail_idx(), 2);
        self.published = new;
        if self.notification.polled {
            return Ok(false);
        }
        // Barrier *notify-check*: avail.idx store before the used.flags /
        // avail_event load, or a device going to sleep is never woken.
        fence(Ordering::SeqCst);
        if self.notification.event_idx {
            self.window.invalidate(self.layout.avail_event(), 2);
            let event = self.window.read_u16(self.layout.avail_event())?;
            Ok(need_event(event, new, old))
        } else {
            self.window.invalidate(self.layout.used_flags(), 2);
            Ok(self.window.read_u16(self.layout.used_flags())? & USED_F_NO_NOTIFY == 0)
        }
    }

    /// Whether the device has returned chains this driver has not taken yet.
    pub fn has_used(&self) -> Result<bool, RingError> {
        self.window.invalidate(self.layout.used_idx(), 2);
        Ok(self.window.read_u16(self.layout.used_idx())? != self.last_used)
    }

    /// Takes back the next used chain, checked: the index must not run ahead of
    /// what is outstanding, the id must be an outstanding head, the length must
    /// fit the chain's writable part.
    #[inline(always)]
    pub fn pop_used(&mut self) -> Result<Option<Used>, RingError> {
        // used.idx is read (a cross-core miss) only once the entries seen with
        // its last value, checked then, are all taken.
        if self.used_seen == self.last_used && self.refresh_used()? == 0 {
            return Ok(None);
        }
        self.window
            .invalidate(self.layout.used_elem(self.last_used), 8);
        let mut used = None;
        self.take_seen(1, |u| used = Some(u))?;
        self.ask_interrupt()?;
        Ok(used)
    }

    /// Takes back every used chain the device has returned (checked as by
    /// [`DriverQueue::pop_used`]), handing each to `each`: one read of
    /// used.idx and one interrupt request for all of them. Returns how many.
    #[inline(always)]
    pub fn drain_used(&mut self, each: impl FnMut(Used)) -> Result<u16, RingError> {
        if self.used_seen == self.last_used {
            self.refresh_used()?;
        }
        let n = self.used_seen.wrapping_sub(self.last_used);
        // The cache maintenance for all of them first: the loop that takes
        // them then calls no hook.
        if !self.window.is_coherent() {
            for k in 0..n {
                let at = self.layout.used_elem(self.last_used.wrapping_add(k));
                self.window.invalidate(at, 8);
            }
        }
        self.take_seen(n, each)?;
        if n != 0 {
            self.ask_interrupt()?;
        }
        Ok(n)
    }

    /// Takes the next `n` used elements (below `used_seen`, their cache
    /// maintenance done), each checked, its chain freed and handed to
    /// `each`; stops at the first that is wrong.
    #[inline(always)]
    fn take_seen(&mut self, n: u16, mut each: impl FnMut(Used)) -> Result<(), RingError> {
        // The free list, the counters and the ring's fields in locals (the
        // free list and counters written back once, on an error too): the
        // compiler cannot tell the shadow arrays' stores from the queue's
        // own fields and would reload them all per entry.
        let mut free = self.free;
        let (mut last_used, mut outstanding) = (self.last_used, self.outstanding);
        let (fields, size) = (self.fields, self.layout.size);
        let mut taken = Ok(());
        for _ in 0..n {
            let (id, len) = fields.used_elem(last_used);
            let (head, len) = match self.check_used(size, id, len) {
                Ok(used) => used,
                Err(e) => {
                    taken = Err(e);
                    break;
                }
            };
            // Freed through the private shadow: its links were set by `add`
            // and are unaffected by anything the device wrote.
            let count = self.chain_len[usize::from(head)];
            let mut tail = head;
            for _ in 1..count {
                tail = self.next[usize::from(tail)];
            }
            free.push(&mut self.next, head, tail, count);
            self.chain_len[usize::from(head)] = 0;
            outstanding -= 1;
            last_used = last_used.wrapping_add(1);
            each(Used {
                head,
                token: self.token[usize::from(head)],
                len,
            });
        }
        self.free = free;
        (self.last_used, self.outstanding) = (last_used, outstanding);
        taken
    }

    /// Reads used.idx; returns how many entries it adds (checked against what
    /// is outstanding).
    #[inline(always)]
    fn refresh_used(&mut self) -> Result<u16, RingError> {
        self.window.invalidate(self.layout.used_idx(), 2);
        let idx = self.fields.used_idx();
        let new = idx.wrapping_sub(self.last_used);
        if new > self.outstanding {
            return Err(RingError::UsedIndex {
                idx,
                seen: self.last_used,
            });
        }
        // Barrier *consume*: used.idx before the used elements and buffers.
        fence(Ordering::Acquire);
        self.used_seen = idx;
        Ok(new)
    }

    /// The chain head a used element `(id, len)` names, and the length to
    /// believe: `id` must be an outstanding head, `len` must fit the chain's
    /// writable part.
    #[inline(always)]
    fn check_used(&self, size: u16, id: u32, len: u32) -> Result<(u16, u32), RingError> {
        let head = match self.chain_len.get(id as usize) {
            // Outstanding: offered, not free (0) nor only reserved.
            Some(&n) if n != 0 && n != RESERVED && id < u32::from(size) => id as u16,
            _ => return Err(RingError::UsedId(id)),
        };
        let capacity = self.capacity[usize::from(head)];
        // A chain with nothing device-writable (a sent message): the device
        // wrote nothing, whatever it reports, and nothing is read on the
        // strength of `len`. rpmsg-lite's remote reports the message length
        // there when it gives back a consumed RX buffer on vring 1.
        let len = if capacity == 0 { 0 } else { len };
        if len > capacity {
            return Err(RingError::UsedLength { len, capacity });
        }
        Ok((head, len))
    }

    /// With the event index, asks to be interrupted when the next entry is
    /// used.
    #[inline(always)]
    fn ask_interrupt(&mut self) -> Result<(), RingError> {
        if self.notification.event_idx && self.want_interrupts {
            self.window
                .write_u16(self.layout.used_event(), self.last_used)?;
            self.window.clean(self.layout.used_event(), 2);
        }
        Ok(())
    }

    /// Asks the device for interrupts again. Returns whether used entries are
    /// already waiting (then process them rather than wait: the device may
    /// have completed them while interrupts were off).
    pub fn enable_interrupts(&mut self) -> Result<bool, RingError> {
        self.want_interrupts = true;
        if self.notification.event_idx {
            self.window
                .write_u16(self.layout.used_event(), self.last_used)?;
            self.window.clean(self.layout.used_event(), 2);
        } else {
            self.window.write_u16(self.layout.avail_flags(), 0)?;
            self.window.clean(self.layout.avail_flags(), 2);
        }
        // Barrier *notify-check*: the flag store before re-reading used.idx.
        fence(Ordering::SeqCst);
        self.has_used()
    }

    /// Tells the device interrupts are not needed (advisory).
    pub fn disable_interrupts(&mut self) -> Result<(), RingError> {
        self.want_interrupts = false;
        if !self.notification.event_idx {
            self.window
                .write_u16(self.layout.avail_flags(), AVAIL_F_NO_INTERRUPT)?;
            self.window.clean(self.layout.avail_flags(), 2);
        }
        Ok(())
    }
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

/// A chain the device side took from the available ring. Not `Clone`: it must
/// be returned exactly once, through [`DeviceQueue::push_used`].
///
/// It keeps the first `M` buffers of the chain (every buffer, up to
/// [`MAX_CHAIN`], is checked either way). A user that only ever reads the
/// first buffer, such as rpmsg, takes it from [`DeviceQueue::pop_first`] with
/// a `Chain<0>`: 8 bytes, which moves around in registers.
#[derive(Debug, PartialEq, Eq)]
pub struct Chain<const M: usize = MAX_CHAIN> {
    head: u16,
    count: u8,
    buffers: [Buffer; M],
    writable: u32,
    readable: u32,
}

impl<const M: usize> Chain<M> {
    /// Head descriptor index.
    pub fn head(&self) -> u16 {
        self.head
    }
    /// The chain's buffers, in order, device-readable ones first: all of them,
    /// or the first `M` of a longer chain.
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers[..usize::from(self.count)]
    }
    /// Total device-writable bytes.
    pub fn writable_len(&self) -> u32 {
        self.writable
    }
    /// Total device-readable bytes.
    pub fn readable_len(&self) -> u32 {
        self.readable
    }
}

/// The `len` / `flags` / `next` word (little-endian, as one) and the
/// writable capacity of a chain of one segment.
#[inline(always)]
fn lone_descriptor(segment: &Segment) -> (u64, u32) {
    let (flags, capacity) = match segment.device_writable {
        true => (DESC_F_WRITE, segment.len),
        false => (0, 0),
    };
    (u64::from(segment.len) | (u64::from(flags) << 32), capacity)
}

/// Writes descriptor `i` (at `at`) unless its `addr` and `len` / `flags`
/// / `next` words already hold these values. A buffer
/// reposted with the same address, length and flags (every rpmsg RX
/// buffer, and TX buffers of one message size) then leaves its cache line
/// shared with the device instead of taking it back, a cross-core
/// transfer the device would otherwise pay on its next read.
///
/// The read is not trust in the device: what it returns only decides
/// whether to store. If the device rewrote the word, it differs and is
/// written; if the device rewrites it afterwards, it only misleads itself
/// (the driver's own view of each chain is its private shadow). On a
/// non-coherent window this side's cached copy could differ from memory,
/// so there every word is written.
#[inline(always)]
fn write_unless_same(
    fields: &RingFields<'_>,
    window: &Window<'_>,
    at: usize,
    i: u16,
    addr: u64,
    word: u64,
) {
    let coherent = window.is_coherent();
    let (old_addr, old_word) = fields.descriptor(i);
    if !coherent || old_addr != addr {
        fields.set_descriptor_addr(i, addr);
        window.clean(at + desc::ADDR, 8);
    }
    if !coherent || old_word != word {
        fields.set_descriptor_word(i, word);
        window.clean(at + desc::LEN, 8);
    }
}

/// Puts `head` in `avail.ring[idx]` (at `at`), as for descriptors unless
/// the slot already names it (a buffer reposted in order).
#[inline(always)]
fn write_slot_unless_same(
    fields: &RingFields<'_>,
    window: &Window<'_>,
    at: usize,
    idx: u16,
    head: u16,
) {
    if !window.is_coherent() || fields.avail_slot(idx) != head {
        fields.set_avail_slot(idx, head);
        window.clean(at, 2);
    }
}

/// The device side of one virtqueue: takes offered chains, returns them used.
#[derive(Debug)]
pub struct DeviceQueue<'a> {
    window: Window<'a>,
    layout: RingLayout,
    /// The layout's fields, checked once against the window.
    fields: RingFields<'a>,
    notification: Notification,
    last_avail: u16,
    /// avail.idx as last read (and checked); entries up to it are known.
    avail_seen: u16,
    used_idx: u16,
    /// `used_idx` as last stored in the ring ([`DeviceQueue::publish_used`]).
    used_published: u16,
    /// `used_idx` has been read from the ring (see [`DeviceQueue::attach`]).
    used_known: bool,
    in_flight: u16,
    want_notifications: bool,
}

impl<'a> DeviceQueue<'a> {
    /// Attaches to a ring the driver initialised. The used index is taken from
    /// the ring, not assumed 0: rpmsg-lite's master pre-fills the device's used
    /// ring with its own TX buffers. It is read with the first offered chain,
    /// not now: that master fills vring 0 first and pre-fills vring 1's used
    /// ring after, so a device attaching in between would read 0 here. The
    /// driver must finish the pre-fill before it offers a chain (rpmsg-lite
    /// takes every buffer it offers from that used ring), and the chain's
    /// *consume* barrier orders our read after the driver's used.idx store.
    pub fn attach(
        window: Window<'a>,
        layout: RingLayout,
        notification: Notification,
    ) -> Result<Self, RingError> {
        let fields = window.ring_fields(layout)?;
        let mut q = Self {
            window,
            layout,
            fields,
            notification,
            last_avail: 0,
            avail_seen: 0,
            used_idx: 0,
            used_published: 0,
            used_known: false,
            in_flight: 0,
            want_notifications: true,
        };
        q.reset()?;
        Ok(q)
    }

    /// Forgets the ring's state (after the driver re-initialised it); the used
    /// index is read again with the next offered chain.
    pub fn reset(&mut self) -> Result<(), RingError> {
        self.used_idx = 0;
        self.used_published = 0;
        self.used_known = false;
        self.last_avail = 0;
        self.avail_seen = 0;
        self.in_flight = 0;
        self.want_notifications = true;
        Ok(())
    }

    /// The ring's layout.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Whether the driver has offered chains not taken yet.
    pub fn has_available(&self) -> Result<bool, RingError> {
        self.window.invalidate(self.layout.avail_idx(), 2);
        Ok(self.window.read_u16(self.layout.avail_idx())? != self.last_avail)
    }

    /// Takes the next offered chain, every descriptor copied out once and
    /// checked (index, flags, order, address and length inside the window,
    /// length overflow, chain length, loops).
    pub fn pop_available(&mut self) -> Result<Option<Chain>, RingError> {
        self.pop_chain()
    }

    /// [`DeviceQueue::pop_available`], keeping only the first `M` buffers
    /// (the others are still checked).
    pub fn pop_chain<const M: usize>(&mut self) -> Result<Option<Chain<M>>, RingError> {
        Ok(self.pop::<M>()?.map(|(chain, _)| chain))
    }

    /// The next chain's first buffer, and the chain (keeping no buffers) to
    /// give back through [`DeviceQueue::push_used`]. The whole chain is
    /// checked as by [`DeviceQueue::pop_available`].
    #[inline(always)]
    pub fn pop_first(&mut self) -> Result<Option<(Chain<0>, Buffer)>, RingError> {
        self.pop::<0>()
    }

    #[inline(always)]
    fn pop<const M: usize>(&mut self) -> Result<Option<(Chain<M>, Buffer)>, RingError> {
        const { assert!(M <= MAX_CHAIN) };
        let size = self.layout.size;
        // avail.idx is read (a cross-core miss) only once the entries seen with
        // its last value, checked then, are all taken.
        if self.avail_seen == self.last_avail {
            self.window.invalidate(self.layout.avail_idx(), 2);
            let idx = self.fields.avail_idx();
            if idx == self.last_avail {
                return Ok(None);
            }
            // More new entries than the ring has slots, or than could be
            // outstanding given what we still hold, is a lie.
            if idx.wrapping_sub(self.last_avail) > size - self.in_flight.min(size) {
                return Err(RingError::AvailIndex {
                    idx,
                    seen: self.last_avail,
                });
            }
            // Barrier *consume*: avail.idx before avail.ring[], descriptors,
            // buffers, and (first time) the driver's pre-filled used.idx.
            fence(Ordering::Acquire);
            self.avail_seen = idx;
            if !self.used_known {
                // Our own index from now on: any value is a valid start, as
                // every slot it names is inside the ring.
                self.window.invalidate(self.layout.used_idx(), 2);
                self.used_idx = self.window.read_u16(self.layout.used_idx())?;
                self.used_published = self.used_idx;
                self.used_known = true;
            }
        }
        self.window
            .invalidate(self.layout.avail_ring(self.last_avail), 2);
        let head = self.fields.avail_slot(self.last_avail);
        if head >= size {
            return Err(RingError::DescriptorIndex(head.into()));
        }
        // The common chain, one descriptor (every rpmsg buffer): copied out in
        // two loads (`addr`; `len`, `flags` and `next` as one word), checked,
        // and done without the walk below.
        self.window
            .invalidate(self.layout.descriptor(head), DESCRIPTOR_SIZE);
        let (addr, word) = self.fields.descriptor(head);
        let (len, flags) = (word as u32, (word >> 32) as u16);
        let (chain, first) = if flags & (DESC_F_NEXT | DESC_F_INDIRECT) == 0 {
            let offset = self.window.offset_of(addr, len.into())?;
            let writable = flags & DESC_F_WRITE != 0;
            let first = Buffer {
                offset,
                len,
                device_writable: writable,
            };
            let mut chain = Chain {
                head,
                count: 0,
                buffers: [Buffer::default(); M],
                writable: if writable { len } else { 0 },
                readable: if writable { 0 } else { len },
            };
            if let Some(b) = chain.buffers.first_mut() {
                *b = first;
                chain.count = 1;
            }
            (chain, first)
        } else {
            self.walk::<M>(head)?
        };
        self.last_avail = self.last_avail.wrapping_add(1);
        self.in_flight += 1;
        if self.notification.event_idx && self.want_notifications {
            // Ask to be notified when the driver publishes past this entry.
            self.window
                .write_u16(self.layout.avail_event(), self.last_avail)?;
            self.window.clean(self.layout.avail_event(), 2);
        }
        Ok(Some((chain, first)))
    }

    /// Every descriptor of the chain at `head`, copied out once and checked
    /// (index, flags, order, address and length inside the window, length
    /// overflow, chain length, loops); the first `M` buffers kept.
    fn walk<const M: usize>(&self, head: u16) -> Result<(Chain<M>, Buffer), RingError> {
        let size = self.layout.size;
        let mut chain = Chain {
            head,
            count: 0,
            buffers: [Buffer::default(); M],
            writable: 0,
            readable: 0,
        };
        let mut first = Buffer::default();
        let mut total: u32 = 0;
        let mut writable_seen = false;
        let mut i = head;
        let mut visited: u16 = 0;
        loop {
            // Bounded by the queue size: a chain visiting more descriptors than
            // exist must loop.
            if usize::from(visited) >= MAX_CHAIN || visited >= size {
                return Err(RingError::ChainTooLong);
            }
            let at = self.layout.descriptor(i);
            self.window.invalidate(at, DESCRIPTOR_SIZE);
            let addr = self.window.read_u64(at + desc::ADDR)?;
            let len = self.window.read_u32(at + desc::LEN)?;
            // `flags` and `next` in one load (both little-endian u16s).
            let word = self.window.read_u32(at + desc::FLAGS)?;
            let (flags, next) = (word as u16, (word >> 16) as u16);
            if flags & DESC_F_INDIRECT != 0 {
                return Err(RingError::Indirect);
            }
            let writable = flags & DESC_F_WRITE != 0;
            if writable_seen && !writable {
                return Err(RingError::ReadableAfterWritable);
            }
            writable_seen |= writable;
            total = total.checked_add(len).ok_or(RingError::ChainLength)?;
            let offset = self.window.offset_of(addr, len.into())?;
            let buffer = Buffer {
                offset,
                len,
                device_writable: writable,
            };
            if visited == 0 {
                first = buffer;
            }
            if let Some(b) = chain.buffers.get_mut(usize::from(visited)) {
                *b = buffer;
                chain.count += 1;
            }
            visited += 1;
            if writable {
                chain.writable += len;
            } else {
                chain.readable += len;
            }
            if flags & DESC_F_NEXT == 0 {
                break;
            }
            if next >= size {
                return Err(RingError::DescriptorIndex(next.into()));
            }
            i = next;
        }
        Ok((chain, first))
    }

    /// Returns a chain with `written` bytes written into its writable part.
    /// A chain with no writable part may instead report its readable length
    /// ([`Chain::readable_len`]): virtio tells drivers not to rely on the used
    /// length of a device-read-only buffer, but OpenAMP's rpmsg host takes
    /// it as the size of the TX buffer it gets back.
    /// Returns whether the driver should be interrupted.
    #[inline(always)]
    pub fn push_used<const M: usize>(
        &mut self,
        chain: Chain<M>,
        written: u32,
    ) -> Result<bool, RingError> {
        self.stage_used(chain, written)?;
        self.publish_used()
    }

    /// Writes a chain's used element without publishing it: the driver sees
    /// it, with every chain staged before it, at the next
    /// [`DeviceQueue::publish_used`] (one `used.idx` store, one notify check
    /// for a batch). The chain counts as returned at once.
    #[inline(always)]
    pub fn stage_used<const M: usize>(
        &mut self,
        chain: Chain<M>,
        written: u32,
    ) -> Result<(), RingError> {
        let read_back = chain.writable == 0 && written == chain.readable;
        if written > chain.writable && !read_back {
            return Err(RingError::UsedLength {
                len: written,
                capacity: chain.writable,
            });
        }
        let at = self.layout.used_elem(self.used_idx);
        // An element that already says this (a chain taken and given back in
        // ring order, as rpmsg does) is not written again: its cache line
        // stays shared with the driver. As with the driver's descriptors,
        // what is read only decides whether to store, and a non-coherent
        // window (where this side's cached copy may be stale, for example
        // after the driver zeroed the ring) is always written.
        let same = self.window.is_coherent()
            && self.fields.used_elem(self.used_idx) == (u32::from(chain.head), written);
        if !same {
            self.fields
                .set_used_elem(self.used_idx, chain.head.into(), written);
            self.window.clean(at, 8);
        }
        self.used_idx = self.used_idx.wrapping_add(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        Ok(())
    }

    /// Makes every used element staged since the last publish visible to the
    /// driver. Returns whether the driver should be interrupted.
    #[inline(always)]
    pub fn publish_used(&mut self) -> Result<bool, RingError> {
        let (old, new) = (self.used_published, self.used_idx);
        if old == new {
            return Ok(false);
        }
        // Barrier *publish*: the used elements (and the bytes written into
        // the buffers) before used.idx.
        fence(Ordering::Release);
        self.fields.set_used_idx(new);
        self.window.clean(self.layout.used_idx(), 2);
        self.used_published = new;
        if self.notification.polled {
            return Ok(false);
        }
        // Barrier *notify-check*: used.idx store before reading avail.flags /
        // used_event.
        fence(Ordering::SeqCst);
        if self.notification.ignore_no_interrupt {
            return Ok(true);
        }
        if self.notification.event_idx {
            self.window.invalidate(self.layout.used_event(), 2);
            let event = self.window.read_u16(self.layout.used_event())?;
            Ok(need_event(event, new, old))
        } else {
            self.window.invalidate(self.layout.avail_flags(), 2);
            Ok(self.window.read_u16(self.layout.avail_flags())? & AVAIL_F_NO_INTERRUPT == 0)
        }
    }

    /// Asks the driver for notifications again. Returns whether chains are
    /// already waiting (process them rather than wait).
    pub fn enable_notifications(&mut self) -> Result<bool, RingError> {
        self.want_notifications = true;
        if self.notification.event_idx {
            self.window
                .write_u16(self.layout.avail_event(), self.last_avail)?;
            self.window.clean(self.layout.avail_event(), 2);
        } else {
            self.window.write_u16(self.layout.used_flags(), 0)?;
            self.window.clean(self.layout.used_flags(), 2);
        }
        // Barrier *notify-check*: the flag store before re-reading avail.idx.
        fence(Ordering::SeqCst);
        self.has_available()
    }

    /// Tells the driver notifications are not needed (advisory).
    pub fn disable_notifications(&mut self) -> Result<(), RingError> {
        // With the event index, leaving `avail_event` behind is the
        // suppression: the driver notifies only when it crosses it.
        self.want_notifications = false;
        if !self.notification.event_idx {
            self.window
                .write_u16(self.layout.used_flags(), USED_F_NO_NOTIFY)?;
            self.window.clean(self.layout.used_flags(), 2);
        }
        Ok(())
    }
}
