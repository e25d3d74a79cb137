//! The window under `--cfg loom`: the region is an array of loom's atomic
//! words, so the model checker sees (and reorders) every access the ring
//! protocol makes, through the same [`super::Window`] code as on hardware.

use super::{Access, Word};
use loom::sync::atomic::Ordering;

/// A range of a model region: the region's words and the range's first byte
/// in them.
#[derive(Clone, Copy)]
pub(super) struct Model<'a> {
    words: &'a [Word],
    start: usize,
}

impl<'a> Model<'a> {
    /// The region of `words`.
    pub(super) fn from_words(words: &'a [Word]) -> Self {
        Self { words, start: 0 }
    }

    /// The word holding byte `offset` of this range. Indexing the slice keeps
    /// a wrong offset a panic, never an access elsewhere.
    fn word(&self, offset: usize) -> &'a Word {
        &self.words[(self.start + offset) / 8]
    }

    fn load_bits(&self, offset: usize, bytes: usize) -> u64 {
        let shift = ((self.start + offset) % 8) * 8;
        let v = self.word(offset).load(Ordering::Relaxed) >> shift;
        if bytes == 8 {
            v
        } else {
            v & ((1u64 << (bytes * 8)) - 1)
        }
    }

    // Sub-word stores are a load and a store of the containing word. That is
    // only sound because every 8-byte word of a ring has a single writer
    // (driver or device), which the virtqueue layout guarantees for the fields
    // it models.
    fn store_bits(&self, offset: usize, bytes: usize, value: u64) {
        let shift = ((self.start + offset) % 8) * 8;
        let mask = if bytes == 8 {
            u64::MAX
        } else {
            ((1u64 << (bytes * 8)) - 1) << shift
        };
        let word = self.word(offset);
        let old = word.load(Ordering::Relaxed);
        word.store((old & !mask) | ((value << shift) & mask), Ordering::Relaxed);
    }
}

// Nothing here is unsafe: the contract of `Access` only keeps offsets inside
// the range, which slice indexing enforces anyway.
impl Access for Model<'_> {
    /// The range's offset in its region's words: what alignment is measured
    /// on, and what a span's offset in its window is computed from.
    fn addr(&self) -> usize {
        self.start
    }

    unsafe fn advance(self, offset: usize) -> Self {
        Self {
            start: self.start + offset,
            ..self
        }
    }

    unsafe fn load_u8(&self, offset: usize) -> u8 {
        self.load_bits(offset, 1) as u8
    }

    unsafe fn load_u16(&self, offset: usize) -> u16 {
        self.load_bits(offset, 2) as u16
    }

    unsafe fn load_u32(&self, offset: usize) -> u32 {
        self.load_bits(offset, 4) as u32
    }

    /// Two 32-bit loads: descriptor addresses are written by one side only
    /// and copied out once.
    unsafe fn load_u64(&self, offset: usize) -> u64 {
        let lo = self.load_bits(offset, 4);
        let hi = self.load_bits(offset + 4, 4);
        lo | (hi << 32)
    }

    unsafe fn store_u8(&self, offset: usize, value: u8) {
        self.store_bits(offset, 1, value.into());
    }

    unsafe fn store_u16(&self, offset: usize, value: u16) {
        self.store_bits(offset, 2, value.into());
    }

    unsafe fn store_u32(&self, offset: usize, value: u32) {
        self.store_bits(offset, 4, value.into());
    }

    unsafe fn store_u64(&self, offset: usize, value: u64) {
        self.store_bits(offset, 4, value & 0xffff_ffff);
        self.store_bits(offset + 4, 4, value >> 32);
    }

    unsafe fn load_word(&self, offset: usize) -> u64 {
        self.word(offset).load(Ordering::Relaxed)
    }

    unsafe fn store_word(&self, offset: usize, word: u64) {
        self.word(offset).store(word, Ordering::Relaxed);
    }

    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.load_bits(offset + i, 1) as u8;
        }
    }

    unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        for (i, b) in src.iter().enumerate() {
            self.store_bits(offset + i, 1, (*b).into());
        }
    }

    unsafe fn write_register(&self, offset: usize, value: u32) {
        self.store_bits(offset, 4, value.into());
    }
}
