//! The window over real memory (a mapping, or a heap or static array of
//! [`Word`]s): a base pointer, and every access to it an atomic or volatile
//! operation through a pointer, never a reference.
//!
//! Scalar fields are relaxed atomics of their own size (the plain `ldr`/`str`
//! a C peer uses on aarch64; on the host they keep two threads sharing one
//! window free of data races in Rust's model). Payload bytes and words are
//! volatile copies.

use super::{Access, Word};
use core::marker::PhantomData;
use core::ptr::NonNull;
#[cfg(target_has_atomic = "64")]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, Ordering};

/// The start of a window's region (or of a range of it), valid for `'a`.
#[derive(Clone, Copy)]
pub(super) struct Raw<'a> {
    base: NonNull<u8>,
    _region: PhantomData<&'a [Word]>,
}

// SAFETY: a `Raw` only ever accesses its region through atomic or volatile
// operations (never through references), exactly as a `&[AtomicU64]` would
// permit; the region itself is required (by `Window::from_words`' borrow or
// by `Window::from_raw`'s contract) to stay valid for `'a` on every thread.
unsafe impl Send for Raw<'_> {}
// SAFETY: as for `Send`: shared use from several threads is the purpose of the
// type and all of its accesses are atomic or volatile.
unsafe impl Sync for Raw<'_> {}

impl<'a> Raw<'a> {
    /// The region of `words`, which the borrow keeps valid for `'a`.
    pub(super) fn from_words(words: &'a [Word]) -> Self {
        Self {
            base: NonNull::from(words).cast::<u8>(),
            _region: PhantomData,
        }
    }

    /// The region starting at `base`.
    ///
    /// # Safety
    ///
    /// As [`super::Window::from_raw`]: the region is mapped, readable and
    /// writable for `'a` and never accessed through references meanwhile.
    pub(super) unsafe fn from_ptr(base: NonNull<u8>) -> Self {
        Self {
            base,
            _region: PhantomData,
        }
    }

    /// The address of the byte at `offset`.
    ///
    /// # Safety
    ///
    /// `offset` is inside the region or one past its end.
    #[inline(always)]
    unsafe fn at(&self, offset: usize) -> *mut u8 {
        // SAFETY: the caller's contract keeps the result inside the region.
        unsafe { self.base.as_ptr().add(offset) }
    }
}

// Every method's contract is `Access`'s: the accessed bytes lie inside the
// region, aligned to the access (the region's base is 8-byte aligned), and
// the region is valid for `'a` with every access to it atomic or volatile, so
// an atomic view of a field is sound.
impl Access for Raw<'_> {
    #[inline(always)]
    fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    #[inline(always)]
    unsafe fn advance(self, offset: usize) -> Self {
        Self {
            // SAFETY: `offset` is inside the region or one past its end
            // (the caller's contract).
            base: unsafe { self.base.add(offset) },
            _region: PhantomData,
        }
    }

    #[inline(always)]
    unsafe fn load_u8(&self, offset: usize) -> u8 {
        // SAFETY: inside the region (the contract); a byte is always aligned.
        unsafe { AtomicU8::from_ptr(self.at(offset)) }.load(Ordering::Relaxed)
    }

    #[inline(always)]
    unsafe fn load_u16(&self, offset: usize) -> u16 {
        // SAFETY: inside the region and 2-byte aligned (the contract).
        let v = unsafe { AtomicU16::from_ptr(self.at(offset).cast()) }.load(Ordering::Relaxed);
        u16::from_le(v)
    }

    #[inline(always)]
    unsafe fn load_u32(&self, offset: usize) -> u32 {
        // SAFETY: inside the region and 4-byte aligned (the contract).
        let v = unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }.load(Ordering::Relaxed);
        u32::from_le(v)
    }

    #[cfg(target_has_atomic = "64")]
    #[inline(always)]
    unsafe fn load_u64(&self, offset: usize) -> u64 {
        // SAFETY: inside the region and 8-byte aligned (the contract).
        let v = unsafe { AtomicU64::from_ptr(self.at(offset).cast()) }.load(Ordering::Relaxed);
        u64::from_le(v)
    }

    /// Two 32-bit loads where there is no 64-bit atomic: every user reads
    /// such a field only after the index that publishes it, or treats it as
    /// an unchecked claim.
    #[cfg(not(target_has_atomic = "64"))]
    #[inline(always)]
    unsafe fn load_u64(&self, offset: usize) -> u64 {
        // SAFETY: both halves are inside the region and 4-byte aligned (the
        // contract, for the 8 bytes at an 8-byte aligned `offset`).
        let (lo, hi) = unsafe { (self.load_u32(offset), self.load_u32(offset + 4)) };
        u64::from(lo) | (u64::from(hi) << 32)
    }

    #[inline(always)]
    unsafe fn store_u8(&self, offset: usize, value: u8) {
        // SAFETY: as in `load_u8`.
        unsafe { AtomicU8::from_ptr(self.at(offset)) }.store(value, Ordering::Relaxed);
    }

    #[inline(always)]
    unsafe fn store_u16(&self, offset: usize, value: u16) {
        // SAFETY: as in `load_u16`.
        unsafe { AtomicU16::from_ptr(self.at(offset).cast()) }
            .store(value.to_le(), Ordering::Relaxed);
    }

    #[inline(always)]
    unsafe fn store_u32(&self, offset: usize, value: u32) {
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }
            .store(value.to_le(), Ordering::Relaxed);
    }

    #[cfg(target_has_atomic = "64")]
    #[inline(always)]
    unsafe fn store_u64(&self, offset: usize, value: u64) {
        // SAFETY: as in `load_u64`.
        unsafe { AtomicU64::from_ptr(self.at(offset).cast()) }
            .store(value.to_le(), Ordering::Relaxed);
    }

    #[cfg(not(target_has_atomic = "64"))]
    #[inline(always)]
    unsafe fn store_u64(&self, offset: usize, value: u64) {
        // SAFETY: as in `load_u64`.
        unsafe {
            self.store_u32(offset, value as u32);
            self.store_u32(offset + 4, (value >> 32) as u32);
        }
    }

    #[inline(always)]
    unsafe fn load_word(&self, offset: usize) -> u64 {
        // SAFETY: inside the region and 8-byte aligned (the contract).
        u64::from_le(unsafe { self.at(offset).cast::<u64>().read_volatile() })
    }

    #[inline(always)]
    unsafe fn store_word(&self, offset: usize, word: u64) {
        // SAFETY: inside the region and 8-byte aligned (the contract).
        unsafe { self.at(offset).cast::<u64>().write_volatile(word.to_le()) };
    }

    #[inline(always)]
    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        // SAFETY: `offset .. offset + dst.len()` is inside the region (the
        // contract).
        unsafe { copy_out(self.at(offset), dst) };
    }

    #[inline(always)]
    unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        // SAFETY: `offset .. offset + src.len()` is inside the region (the
        // contract).
        unsafe { copy_in(self.at(offset), src) };
    }

    #[inline(always)]
    unsafe fn write_register(&self, offset: usize, value: u32) {
        // SAFETY: inside the mapping and 4-byte aligned (the contract). A
        // register write is a single volatile store.
        unsafe { self.at(offset).cast::<u32>().write_volatile(value) };
    }
}

/// Copies `dst.len()` bytes from `src` with volatile loads: bytes up to an
/// 8-byte boundary, then whole words (four per turn while they last), then
/// the tail (the word loop keeps 496-byte payload copies cheap without
/// reading past the range).
///
/// # Safety
///
/// `src .. src + dst.len()` must lie inside a window's region.
unsafe fn copy_out(src: *const u8, dst: &mut [u8]) {
    let mut i = 0;
    while i < dst.len() && !(src as usize + i).is_multiple_of(8) {
        // SAFETY: `i < dst.len()`, so inside the caller's range.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
    let d = dst.as_mut_ptr();
    // Four words per turn, then one at a time.
    while i + 32 <= dst.len() {
        // SAFETY: `i + 32 <= dst.len()`: the four words lie inside the
        // caller's range and inside `dst`; the window side is 8-byte aligned
        // (the loop above), `dst` any (unaligned stores).
        unsafe {
            let (s, t) = (src.add(i).cast::<u64>(), d.add(i).cast::<u64>());
            let w = [
                s.read_volatile(),
                s.add(1).read_volatile(),
                s.add(2).read_volatile(),
                s.add(3).read_volatile(),
            ];
            t.write_unaligned(w[0]);
            t.add(1).write_unaligned(w[1]);
            t.add(2).write_unaligned(w[2]);
            t.add(3).write_unaligned(w[3]);
        }
        i += 32;
    }
    while i + 8 <= dst.len() {
        // SAFETY: `i + 8 <= dst.len()`: inside the caller's range; the address
        // is 8-byte aligned (checked by the loop above).
        let word = unsafe { src.add(i).cast::<u64>().read_volatile() };
        dst[i..i + 8].copy_from_slice(&word.to_ne_bytes());
        i += 8;
    }
    while i < dst.len() {
        // SAFETY: `i < dst.len()`, so inside the caller's range.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
}

/// Copies `src` to `dst` with volatile stores (as [`copy_out`]).
///
/// # Safety
///
/// `dst .. dst + src.len()` must lie inside a window's region.
unsafe fn copy_in(dst: *mut u8, src: &[u8]) {
    let mut i = 0;
    while i < src.len() && !(dst as usize + i).is_multiple_of(8) {
        // SAFETY: `i < src.len()`, so inside the caller's range.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
    let s = src.as_ptr();
    // Four words per turn, then one at a time.
    while i + 32 <= src.len() {
        // SAFETY: `i + 32 <= src.len()`: the four words lie inside `src` and
        // inside the caller's range; the window side is 8-byte aligned (see
        // `copy_out`), `src` any (unaligned loads).
        unsafe {
            let (f, t) = (s.add(i).cast::<u64>(), dst.add(i).cast::<u64>());
            let w = [
                f.read_unaligned(),
                f.add(1).read_unaligned(),
                f.add(2).read_unaligned(),
                f.add(3).read_unaligned(),
            ];
            t.write_volatile(w[0]);
            t.add(1).write_volatile(w[1]);
            t.add(2).write_volatile(w[2]);
            t.add(3).write_volatile(w[3]);
        }
        i += 32;
    }
    while i + 8 <= src.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&src[i..i + 8]);
        // SAFETY: inside the caller's range and 8-byte aligned (see `copy_out`).
        unsafe {
            dst.add(i)
                .cast::<u64>()
                .write_volatile(u64::from_ne_bytes(word))
        };
        i += 8;
    }
    while i < src.len() {
        // SAFETY: `i < src.len()`, so inside the caller's range.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
}
