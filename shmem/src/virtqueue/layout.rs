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
    /// [`RingFields`](crate::window::RingFields)' accesses rely on this check for staying inside the
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
