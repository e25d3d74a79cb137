//! [`RingFields`]: the fields of one virtqueue's rings, checked to fit once
//! and then accessed without a check of their own.

use super::{Access, Window};
use crate::virtqueue::{desc, RingError, RingLayout};

/// The fields of one virtqueue's rings in a window, checked to fit once
/// ([`Window::ring_fields`]): every later access is at a fixed field of the
/// layout or at an index masked to the queue size, so it is in bounds and
/// aligned by construction and needs no check of its own (one AND instead of
/// a bounds and an alignment test on each of the few accesses a message
/// makes). The offsets are [`RingLayout`]'s, the one place they are written.
#[derive(Clone, Copy, Debug)]
pub struct RingFields<'a> {
    window: Window<'a>,
    layout: RingLayout,
}

impl<'a> Window<'a> {
    /// The fields of `layout`'s rings, once [`RingLayout::check`] has found
    /// them inside this window and aligned.
    pub fn ring_fields(&self, layout: RingLayout) -> Result<RingFields<'a>, RingError> {
        layout.check(self)?;
        Ok(RingFields {
            window: *self,
            layout,
        })
    }
}

/// The raw accesses behind [`RingFields`]: `offset` must be inside the
/// window and aligned to the access, which `RingLayout::check` proved (in
/// `ring_fields`) for every offset the fields use: fixed fields of the
/// layout, or its ring and descriptor indices masked below the queue size.
impl RingFields<'_> {
    #[inline(always)]
    fn ld16(&self, offset: usize) -> u16 {
        // SAFETY: inside the window and 2-byte aligned (the impl's contract).
        unsafe { self.window.mem.load_u16(offset) }
    }
    #[inline(always)]
    fn st16(&self, offset: usize, v: u16) {
        // SAFETY: as in `ld16`.
        unsafe { self.window.mem.store_u16(offset, v) }
    }
    #[inline(always)]
    fn ld32(&self, offset: usize) -> u32 {
        // SAFETY: inside the window and 4-byte aligned (the impl's contract).
        unsafe { self.window.mem.load_u32(offset) }
    }
    #[inline(always)]
    fn st32(&self, offset: usize, v: u32) {
        // SAFETY: as in `ld32`.
        unsafe { self.window.mem.store_u32(offset, v) }
    }
    #[inline(always)]
    fn ld64(&self, offset: usize) -> u64 {
        // SAFETY: inside the window and 8-byte aligned (the impl's contract).
        unsafe { self.window.mem.load_u64(offset) }
    }
    #[inline(always)]
    fn st64(&self, offset: usize, v: u64) {
        // SAFETY: as in `ld64`.
        unsafe { self.window.mem.store_u64(offset, v) }
    }
}

impl RingFields<'_> {
    fn mask(&self, i: u16) -> u16 {
        i & (self.layout.size - 1)
    }

    /// `avail.idx`.
    #[inline(always)]
    pub fn avail_idx(&self) -> u16 {
        self.ld16(self.layout.avail_idx())
    }

    /// Stores `avail.idx`.
    #[inline(always)]
    pub fn set_avail_idx(&self, v: u16) {
        self.st16(self.layout.avail_idx(), v)
    }

    /// `avail.ring[idx % size]`.
    #[inline(always)]
    pub fn avail_slot(&self, idx: u16) -> u16 {
        self.ld16(self.layout.avail_ring(idx))
    }

    /// Stores `avail.ring[idx % size]`.
    #[inline(always)]
    pub fn set_avail_slot(&self, idx: u16, v: u16) {
        self.st16(self.layout.avail_ring(idx), v)
    }

    /// Descriptor `i % size`: its `addr`, and `len`, `flags` and `next` as
    /// one little-endian word (two loads).
    #[inline(always)]
    pub fn descriptor(&self, i: u16) -> (u64, u64) {
        let at = self.layout.descriptor(self.mask(i));
        (self.ld64(at + desc::ADDR), self.ld64(at + desc::LEN))
    }

    /// Stores descriptor `i % size`'s `addr` word.
    #[inline(always)]
    pub fn set_descriptor_addr(&self, i: u16, addr: u64) {
        self.st64(self.layout.descriptor(self.mask(i)) + desc::ADDR, addr)
    }

    /// Stores descriptor `i % size`'s `len`, `flags` and `next` word.
    #[inline(always)]
    pub fn set_descriptor_word(&self, i: u16, word: u64) {
        self.st64(self.layout.descriptor(self.mask(i)) + desc::LEN, word)
    }

    /// `used.idx`.
    #[inline(always)]
    pub fn used_idx(&self) -> u16 {
        self.ld16(self.layout.used_idx())
    }

    /// Stores `used.idx`.
    #[inline(always)]
    pub fn set_used_idx(&self, v: u16) {
        self.st16(self.layout.used_idx(), v)
    }

    /// `used.ring[idx % size]`: (id, len).
    #[inline(always)]
    pub fn used_elem(&self, idx: u16) -> (u32, u32) {
        let at = self.layout.used_elem(idx);
        (self.ld32(at), self.ld32(at + 4))
    }

    /// Stores `used.ring[idx % size]`.
    #[inline(always)]
    pub fn set_used_elem(&self, idx: u16, id: u32, len: u32) {
        let at = self.layout.used_elem(idx);
        self.st32(at, id);
        self.st32(at + 4, len);
    }
}
