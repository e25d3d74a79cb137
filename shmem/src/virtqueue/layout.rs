//! Where the parts of one split virtqueue lie in a window, and how many bytes
//! each takes: the ring format's offsets and sizes, written once.

use super::{RingError, DESCRIPTOR_SIZE, MAX_QUEUE_SIZE};
use crate::window::Window;

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

/// `v` rounded up to a multiple of `align`; `None` if `align` is not a power
/// of two or the result overflows.
const fn align_up(v: usize, align: usize) -> Option<usize> {
    if !align.is_power_of_two() {
        return None;
    }
    match v.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The ring format's sizes: every count of bytes a ring part takes is
/// written here and nowhere else.
impl RingLayout {
    /// Bytes of a `size`-entry descriptor table: one `struct vring_desc`
    /// ([`DESCRIPTOR_SIZE`]) per entry.
    pub const fn desc_bytes(size: u16) -> usize {
        DESCRIPTOR_SIZE * size as usize
    }

    /// Bytes of a `size`-entry available ring: `le16 flags`, `le16 idx`,
    /// `le16 ring[size]` and `le16 used_event`.
    pub const fn avail_bytes(size: u16) -> usize {
        6 + 2 * size as usize
    }

    /// Bytes of a `size`-entry used ring: `le16 flags`, `le16 idx`,
    /// `ring[size]` of (`le32 id`, `le32 len`) and `le16 avail_event`.
    pub const fn used_bytes(size: u16) -> usize {
        6 + 8 * size as usize
    }

    /// Bytes the legacy layout occupies (Linux `vring_size(num, align)`):
    /// the descriptors and the available ring, then the used ring at the next
    /// multiple of `align`. `usize::MAX` when `align` is not a power of two
    /// or the size overflows, so that no window is ever big enough.
    pub const fn legacy_size(size: u16, align: usize) -> usize {
        match align_up(Self::desc_bytes(size) + Self::avail_bytes(size), align) {
            Some(used) => used.saturating_add(Self::used_bytes(size)),
            None => usize::MAX,
        }
    }

    /// The three parts, as (offset, bytes): the descriptor table, the
    /// available ring and the used ring.
    pub fn parts(&self) -> [(usize, usize); 3] {
        [
            (self.desc, Self::desc_bytes(self.size)),
            (self.avail, Self::avail_bytes(self.size)),
            (self.used, Self::used_bytes(self.size)),
        ]
    }
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
        let desc = Self::desc_bytes(size);
        let avail = offset + desc;
        let used =
            offset + align_up(desc + Self::avail_bytes(size), align).ok_or(RingError::Layout)?;
        let layout = Self {
            size,
            desc: offset,
            avail,
            used,
        };
        layout.check(window)?;
        Ok(layout)
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
    /// [`RingFields`](crate::window::RingFields)' accesses rely on this check for staying inside the
    /// window: they take its offsets without checking them again.
    pub fn check(&self, window: &Window<'_>) -> Result<(), RingError> {
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
        if !self.parts().into_iter().all(|(off, len)| fits(off, len)) {
            return Err(RingError::Layout);
        }
        Ok(())
    }

    pub(crate) fn avail_flags(&self) -> usize {
        self.avail
    }
    pub(crate) fn avail_idx(&self) -> usize {
        self.avail + 2
    }
    pub(crate) fn avail_ring(&self, idx: u16) -> usize {
        self.avail + 4 + 2 * usize::from(idx & (self.size - 1))
    }
    pub(crate) fn used_event(&self) -> usize {
        self.avail + 4 + 2 * usize::from(self.size)
    }
    pub(crate) fn used_flags(&self) -> usize {
        self.used
    }
    pub(crate) fn used_idx(&self) -> usize {
        self.used + 2
    }
    pub(crate) fn used_elem(&self, idx: u16) -> usize {
        self.used + 4 + 8 * usize::from(idx & (self.size - 1))
    }
    pub(crate) fn avail_event(&self) -> usize {
        self.used + 4 + 8 * usize::from(self.size)
    }
    pub(crate) fn descriptor(&self, i: u16) -> usize {
        self.desc + DESCRIPTOR_SIZE * usize::from(i)
    }
}
