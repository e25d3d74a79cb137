//! The shared window: a bounds-checked view of memory that another partition can
//! write at any time.
//!
//! This module owns all of the crate's `unsafe` code. Everything else reaches the
//! shared memory through [`Window`]'s copy-in / copy-out accessors, which check
//! every offset against the window before touching memory, so a value read from
//! the peer can at worst produce an error, never an access outside the window.
//! No method hands out a reference into the window: the peer could change the
//! bytes under it, which Rust's aliasing rules do not allow for a `&T`.
//!
//! Scalar fields (ring indices, flags, descriptor words) are accessed with
//! relaxed atomics of their natural size. On aarch64 these compile to the plain
//! `ldr`/`str` of the right width a C peer uses, and on the host they keep two
//! test threads sharing one window free of data races in Rust's memory model, so
//! the barriers in `virtqueue` are what orders them, as on the hardware. Byte
//! ranges (message payloads) are copied with volatile accesses. Registers (MMIO
//! doorbells) are written with volatile 32-bit stores.
//!
//! Under `--cfg loom` the window is backed by loom's atomics instead of raw
//! memory, so the ring protocol above it can be model-checked unchanged.

use crate::virtqueue::{desc, RingError, RingLayout};
use core::fmt;
use core::marker::PhantomData;

#[cfg(not(loom))]
use core::ptr::NonNull;
#[cfg(all(not(loom), target_has_atomic = "64"))]
use core::sync::atomic::AtomicU64;
#[cfg(not(loom))]
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, Ordering};
#[cfg(loom)]
use loom::sync::atomic::Ordering;

/// The unit a window is built from when it is not raw mapped memory: a heap or
/// static array of these stands in for a shared window in tests and benchmarks.
#[cfg(not(loom))]
pub type Word = core::sync::atomic::AtomicU64;
/// The unit a window is built from under loom: loom's own atomic, so the model
/// checker sees every access.
#[cfg(loom)]
pub type Word = loom::sync::atomic::AtomicU64;

/// Why an access to a window was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowError {
    /// `offset .. offset + len` is not inside the window.
    OutOfBounds {
        /// First byte asked for, relative to the window base.
        offset: usize,
        /// Number of bytes asked for.
        len: usize,
    },
    /// A scalar access at an offset that is not a multiple of its size.
    Misaligned {
        /// Offending offset, relative to the window base.
        offset: usize,
    },
    /// A bus address (as a peer writes it into a descriptor) that does not
    /// fall entirely inside the window.
    AddressOutside {
        /// The address the peer gave.
        addr: u64,
        /// The length the peer gave with it.
        len: u64,
    },
    /// A raw window whose base is null or not 8-byte aligned.
    BadBase,
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfBounds { offset, len } => {
                write!(
                    f,
                    "{len} bytes at offset {offset:#x} are outside the window"
                )
            }
            Self::Misaligned { offset } => write!(f, "misaligned access at offset {offset:#x}"),
            Self::AddressOutside { addr, len } => {
                write!(f, "buffer {addr:#x}+{len:#x} is outside the window")
            }
            Self::BadBase => f.write_str("window base is null or not 8-byte aligned"),
        }
    }
}

/// Cache maintenance for a window whose peer does not snoop this core's caches
/// (for example a Cortex-M7 with its own D-cache, or a window mapped cacheable
/// on one side and non-cacheable on the other).
///
/// The rings call [`Window::clean`] after writing anything the peer reads and
/// [`Window::invalidate`] before reading anything the peer wrote. On a coherent
/// system (all Cortex-A cores of one SoC in one inner-shareable domain, both
/// sides mapping the window with the same attributes) leave the window without
/// a hook: both calls are then no-ops.
pub trait CacheMaintenance: Sync {
    /// Write back any dirty lines covering `len` bytes at `addr` (a CPU virtual
    /// address inside the window) to the point of coherency.
    fn clean(&self, addr: usize, len: usize);
    /// Discard (after writing back) any lines covering `len` bytes at `addr`, so
    /// the next read fetches what the peer wrote.
    fn invalidate(&self, addr: usize, len: usize);
}

/// A view of `len` bytes of shared memory, valid for `'a`.
///
/// `Copy`: a window is a description of a region (base, length, bus address),
/// not an owner; every copy checks every access the same way.
#[derive(Clone, Copy)]
pub struct Window<'a> {
    #[cfg(not(loom))]
    base: NonNull<u8>,
    #[cfg(loom)]
    words: &'a [Word],
    len: usize,
    bus: u64,
    cache: Option<&'a dyn CacheMaintenance>,
    _region: PhantomData<&'a [Word]>,
}

// SAFETY: a `Window` only ever accesses its region through atomic or volatile
// operations (never through references), exactly as a `&[AtomicU64]` would
// permit; the region itself is required (by `from_words`' borrow or by
// `from_raw`'s contract) to stay valid for `'a` on every thread.
#[cfg(not(loom))]
unsafe impl Send for Window<'_> {}
// SAFETY: as for `Send`: shared use from several threads is the purpose of the
// type and all of its accesses are atomic or volatile.
#[cfg(not(loom))]
unsafe impl Sync for Window<'_> {}

impl fmt::Debug for Window<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("len", &self.len)
            .field("bus", &format_args!("{:#x}", self.bus))
            .field("coherent", &self.cache.is_none())
            .finish()
    }
}

impl<'a> Window<'a> {
    /// A window over memory this program owns: a heap or static array standing
    /// in for a shared window (tests, benchmarks, two partitions simulated by
    /// two threads). Its bus address starts at 0; see [`Window::with_bus_address`].
    pub fn from_words(words: &'a [Word]) -> Self {
        Self {
            #[cfg(not(loom))]
            base: NonNull::from(words).cast::<u8>(),
            #[cfg(loom)]
            words,
            len: words.len() * 8,
            bus: 0,
            cache: None,
            _region: PhantomData,
        }
    }

    /// A window over mapped shared memory (a carveout, a `/dev/mem` mapping).
    ///
    /// # Safety
    ///
    /// `base .. base + len` must be mapped, readable and writable for all of `'a`
    /// and must not be accessed through Rust references by this program while
    /// any window over it exists (the peer may write it at any time). `base`
    /// must be 8-byte aligned (checked).
    #[cfg(not(loom))]
    pub unsafe fn from_raw(base: *mut u8, len: usize) -> Result<Self, WindowError> {
        let base = NonNull::new(base).ok_or(WindowError::BadBase)?;
        if !(base.as_ptr() as usize).is_multiple_of(8)
            || (base.as_ptr() as usize).checked_add(len).is_none()
        {
            return Err(WindowError::BadBase);
        }
        Ok(Self {
            base,
            len,
            bus: 0,
            cache: None,
            _region: PhantomData,
        })
    }

    /// The same window, with the address the *peer* uses for its first byte
    /// (the physical or device address written into descriptors and the
    /// resource table).
    #[must_use]
    pub fn with_bus_address(mut self, bus: u64) -> Self {
        self.bus = bus;
        self
    }

    /// The same window, with cache maintenance for a non-coherent peer.
    #[must_use]
    pub fn with_cache(mut self, cache: &'a dyn CacheMaintenance) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the window has no cache hook (both sides see one coherent
    /// view of it).
    pub fn is_coherent(&self) -> bool {
        self.cache.is_none()
    }

    /// The peer's address of the window's first byte.
    pub fn bus_address(&self) -> u64 {
        self.bus
    }

    /// `len` bytes at `offset` as a window of their own (8-byte aligned offset).
    pub fn slice(&self, offset: usize, len: usize) -> Result<Window<'a>, WindowError> {
        self.check(offset, len, 8)?;
        let mut sub = *self;
        #[cfg(not(loom))]
        {
            // SAFETY: `check` proved `offset + len <= self.len`, so the new base
            // stays inside (or one past the end of) the same region.
            sub.base = unsafe { self.base.add(offset) };
        }
        #[cfg(loom)]
        {
            if !len.is_multiple_of(8) {
                return Err(WindowError::Misaligned { offset: len });
            }
            sub.words = &self.words[offset / 8..(offset + len) / 8];
        }
        sub.len = len;
        sub.bus = self.bus.wrapping_add(offset as u64);
        Ok(sub)
    }

    /// The window offset of a peer-supplied bus address range, if the whole range
    /// lies inside the window.
    pub fn offset_of(&self, addr: u64, len: u64) -> Result<usize, WindowError> {
        let outside = WindowError::AddressOutside { addr, len };
        let offset = addr.checked_sub(self.bus).ok_or(outside)?;
        let end = offset.checked_add(len).ok_or(outside)?;
        if end > self.len as u64 {
            return Err(outside);
        }
        Ok(offset as usize)
    }

    /// The peer's address of the byte at `offset`.
    pub fn bus_address_of(&self, offset: usize) -> u64 {
        self.bus.wrapping_add(offset as u64)
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), WindowError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {}
            _ => return Err(WindowError::OutOfBounds { offset, len }),
        }
        if !offset.is_multiple_of(align) {
            return Err(WindowError::Misaligned { offset });
        }
        Ok(())
    }

    /// Write back `len` bytes at `offset` for a non-coherent peer (no-op when
    /// coherent). Out-of-window ranges are clipped, never touched.
    pub fn clean(&self, offset: usize, len: usize) {
        if let Some(cache) = self.cache {
            if let Some((addr, len)) = self.cpu_range(offset, len) {
                cache.clean(addr, len);
            }
        }
    }

    /// Drop stale cached copies of `len` bytes at `offset` before reading what a
    /// non-coherent peer wrote (no-op when coherent).
    pub fn invalidate(&self, offset: usize, len: usize) {
        if let Some(cache) = self.cache {
            if let Some((addr, len)) = self.cpu_range(offset, len) {
                cache.invalidate(addr, len);
            }
        }
    }

    fn cpu_range(&self, offset: usize, len: usize) -> Option<(usize, usize)> {
        if offset >= self.len {
            return None;
        }
        let len = len.min(self.len - offset);
        #[cfg(not(loom))]
        let base = self.base.as_ptr() as usize;
        #[cfg(loom)]
        let base = self.words.as_ptr() as usize;
        Some((base + offset, len))
    }
}

#[cfg(not(loom))]
impl Window<'_> {
    fn at(&self, offset: usize) -> *mut u8 {
        // SAFETY: only called after `check`, so `offset <= self.len` and the
        // result stays inside the region (or one past its end for empty copies).
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// Read one byte.
    pub fn read_u8(&self, offset: usize) -> Result<u8, WindowError> {
        self.check(offset, 1, 1)?;
        // SAFETY: in bounds (checked); the region is valid for `'a`, and every
        // access to it is atomic or volatile, so an atomic view is sound.
        Ok(unsafe { AtomicU8::from_ptr(self.at(offset)) }.load(Ordering::Relaxed))
    }

    /// Read a little-endian `u16` at a 2-byte aligned offset.
    pub fn read_u16(&self, offset: usize) -> Result<u16, WindowError> {
        self.check(offset, 2, 2)?;
        // SAFETY: in bounds and 2-byte aligned (checked; the base is 8-aligned);
        // valid for `'a`; all accesses to the region are atomic or volatile.
        let v = unsafe { AtomicU16::from_ptr(self.at(offset).cast()) }.load(Ordering::Relaxed);
        Ok(u16::from_le(v))
    }

    /// Read a little-endian `u32` at a 4-byte aligned offset.
    pub fn read_u32(&self, offset: usize) -> Result<u32, WindowError> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and 4-byte aligned (checked); valid for `'a`; all
        // accesses to the region are atomic or volatile.
        let v = unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }.load(Ordering::Relaxed);
        Ok(u32::from_le(v))
    }

    /// Write one byte.
    pub fn write_u8(&self, offset: usize, value: u8) -> Result<(), WindowError> {
        self.check(offset, 1, 1)?;
        // SAFETY: as in `read_u8`.
        unsafe { AtomicU8::from_ptr(self.at(offset)) }.store(value, Ordering::Relaxed);
        Ok(())
    }

    /// Write a little-endian `u16` at a 2-byte aligned offset.
    pub fn write_u16(&self, offset: usize, value: u16) -> Result<(), WindowError> {
        self.check(offset, 2, 2)?;
        // SAFETY: as in `read_u16`.
        unsafe { AtomicU16::from_ptr(self.at(offset).cast()) }
            .store(value.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// Write a little-endian `u32` at a 4-byte aligned offset.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), WindowError> {
        self.check(offset, 4, 4)?;
        // SAFETY: as in `read_u32`.
        unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }
            .store(value.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// Copy `dst.len()` bytes at `offset` out of the window.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), WindowError> {
        self.check(offset, dst.len(), 1)?;
        // SAFETY: `check` proved `offset .. offset + dst.len()` inside the region.
        unsafe { copy_out(self.at(offset), dst) };
        Ok(())
    }

    /// Copy `src` into the window at `offset`.
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), WindowError> {
        self.check(offset, src.len(), 1)?;
        // SAFETY: `check` proved `offset .. offset + src.len()` inside the region.
        unsafe { copy_in(self.at(offset), src) };
        Ok(())
    }

    /// Write a 32-bit device register (a doorbell, `GICD_SGIR`, a mailbox) with
    /// one volatile store, when this window maps a register block.
    pub fn write_register(&self, offset: usize, value: u32) -> Result<(), WindowError> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and 4-byte aligned (checked); the mapping is valid
        // for `'a` by construction. A register write is a single volatile store.
        unsafe { self.at(offset).cast::<u32>().write_volatile(value) };
        Ok(())
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
#[cfg(not(loom))]
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
#[cfg(not(loom))]
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

/// A checked byte range of a window, for copying bytes in and out: what a
/// lent message buffer holds. Checked once when made; each copy then checks
/// only against the span's own length. 16 bytes (a pointer and a length), so
/// the guards holding one move around cheaply; it has no cache hook: the user
/// of the span does the range's cache maintenance through the window.
#[derive(Clone, Copy)]
pub struct Span<'a> {
    #[cfg(not(loom))]
    base: NonNull<u8>,
    #[cfg(loom)]
    window: Window<'a>,
    #[cfg(loom)]
    offset: usize,
    len: usize,
    _region: PhantomData<&'a [Word]>,
}

// SAFETY: as for `Window`: a span is a range of a window's region, which is
// valid for `'a` on every thread and accessed only with volatile operations.
#[cfg(not(loom))]
unsafe impl Send for Span<'_> {}
// SAFETY: as for `Send`.
#[cfg(not(loom))]
unsafe impl Sync for Span<'_> {}

impl fmt::Debug for Span<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span").field("len", &self.len).finish()
    }
}

impl<'a> Window<'a> {
    /// `len` bytes at `offset` as a [`Span`] (any alignment).
    pub fn span(&self, offset: usize, len: usize) -> Result<Span<'a>, WindowError> {
        self.check(offset, len, 1)?;
        Ok(Span {
            #[cfg(not(loom))]
            // SAFETY: `check` proved `offset + len <= self.len`, so the base
            // stays inside (or one past the end of) the region.
            base: unsafe { self.base.add(offset) },
            #[cfg(loom)]
            window: *self,
            #[cfg(loom)]
            offset,
            len,
            _region: PhantomData,
        })
    }

    /// The offset in this window of a span made from it (by [`Window::span`]
    /// on this window or a copy of it). For a span of another window the
    /// result is meaningless, but every use of it is still bounds-checked.
    pub fn span_offset(&self, span: &Span<'_>) -> usize {
        #[cfg(not(loom))]
        {
            (span.base.as_ptr() as usize).wrapping_sub(self.base.as_ptr() as usize)
        }
        #[cfg(loom)]
        {
            span.offset
        }
    }
}

/// The words of a span, loaded as iterated (see [`Span::words`]).
#[derive(Clone, Debug)]
pub struct Words<'a> {
    span: Span<'a>,
    at: usize,
}

impl Iterator for Words<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if self.at > self.span.len || self.span.len - self.at < 8 {
            return None;
        }
        let word = self.span.load_word(self.at);
        self.at += 8;
        Some(word)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.span.len.saturating_sub(self.at) / 8;
        (n, Some(n))
    }

    /// Aligned words in one tight loop (alignment and length checked once),
    /// else word by word.
    #[cfg(not(loom))]
    #[inline]
    fn fold<B, F: FnMut(B, u64) -> B>(self, init: B, mut f: F) -> B {
        let n = self.span.len.saturating_sub(self.at) / 8;
        if n == 0 {
            return init;
        }
        // SAFETY: `at + 8 * n <= len` (n is the whole words left), and the
        // span lies inside the region (checked when made).
        let p = unsafe { self.span.base.as_ptr().add(self.at) }.cast::<u64>();
        if !(p as usize).is_multiple_of(8) {
            let mut acc = init;
            for word in self {
                acc = f(acc, word);
            }
            return acc;
        }
        // Called only with `k < n` (both loops below).
        let load = |k: usize| {
            debug_assert!(k < n);
            // SAFETY: word `k < n` lies inside the span (above); aligned
            // (tested).
            u64::from_le(unsafe { p.add(k).read_volatile() })
        };
        let mut acc = init;
        let mut k = 0;
        // Four words per turn: the loop's own count and branch are paid once
        // for four loads.
        while k + 4 <= n {
            let (a, b, c, d) = (load(k), load(k + 1), load(k + 2), load(k + 3));
            acc = f(acc, a);
            acc = f(acc, b);
            acc = f(acc, c);
            acc = f(acc, d);
            k += 4;
        }
        while k < n {
            acc = f(acc, load(k));
            k += 1;
        }
        acc
    }
}

impl<'a> Span<'a> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `len` bytes at `at` (relative to this span) as a span of their own.
    #[inline]
    pub fn sub(&self, at: usize, len: usize) -> Result<Span<'a>, WindowError> {
        self.check(at, len)?;
        Ok(Span {
            #[cfg(not(loom))]
            // SAFETY: `at + len <= self.len` (checked), and this span lies
            // inside the region.
            base: unsafe { self.base.add(at) },
            #[cfg(loom)]
            window: self.window,
            #[cfg(loom)]
            offset: self.offset + at,
            len,
            _region: PhantomData,
        })
    }

    /// Whether the span is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, at: usize, len: usize) -> Result<(), WindowError> {
        match at.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(WindowError::OutOfBounds { offset: at, len }),
        }
    }

    /// Stores `words` as consecutive little-endian `u64`s from `at`, each
    /// with one volatile store (eight byte stores where the address is not
    /// 8-byte aligned), for as many as fit in the span; returns the bytes
    /// written. For producing data in place, with no staging copy.
    #[inline]
    pub fn write_words(
        &self,
        at: usize,
        words: impl IntoIterator<Item = u64>,
    ) -> Result<usize, WindowError> {
        self.check(at, 0)?;
        let n = (self.len - at) / 8;
        #[cfg(not(loom))]
        {
            // SAFETY: `at <= len` (checked), so the pointer stays inside the
            // span, which lies inside the region (checked when made).
            let p = unsafe { self.base.as_ptr().add(at) }.cast::<u64>();
            if (p as usize).is_multiple_of(8) {
                let mut k = 0;
                for word in words.into_iter().take(n) {
                    // SAFETY: word `k < n` lies inside the span; aligned (tested).
                    unsafe { p.add(k).write_volatile(word.to_le()) };
                    k += 1;
                }
                return Ok(8 * k);
            }
        }
        let mut k = 0;
        for word in words.into_iter().take(n) {
            self.store_word(at + 8 * k, word);
            k += 1;
        }
        Ok(8 * k)
    }

    /// Stores `count` little-endian `u64`s from `at`, word `k` being
    /// `word(k)`, as many as fit in the span; returns the bytes written. As
    /// [`Span::write_words`], for a producer that makes each word from its
    /// index: with no iterator to ask whether a word follows, the aligned
    /// loop stores four words per turn.
    #[inline]
    pub fn write_words_with(
        &self,
        at: usize,
        count: usize,
        mut word: impl FnMut(usize) -> u64,
    ) -> Result<usize, WindowError> {
        self.check(at, 0)?;
        let n = count.min((self.len - at) / 8);
        #[cfg(not(loom))]
        {
            // SAFETY: `at <= len` (checked), so the pointer stays inside the
            // span, which lies inside the region (checked when made).
            let p = unsafe { self.base.as_ptr().add(at) }.cast::<u64>();
            if (p as usize).is_multiple_of(8) {
                // Called only with `k < n` (both loops below).
                let store = |k: usize, w: u64| {
                    debug_assert!(k < n);
                    // SAFETY: word `k < n` lies inside the span; aligned
                    // (tested).
                    unsafe { p.add(k).write_volatile(w.to_le()) };
                };
                let mut k = 0;
                while k + 4 <= n {
                    store(k, word(k));
                    store(k + 1, word(k + 1));
                    store(k + 2, word(k + 2));
                    store(k + 3, word(k + 3));
                    k += 4;
                }
                while k < n {
                    store(k, word(k));
                    k += 1;
                }
                return Ok(8 * n);
            }
        }
        for k in 0..n {
            self.store_word(at + 8 * k, word(k));
        }
        Ok(8 * n)
    }

    /// The little-endian `u64`s from `at` up to the span's last whole word
    /// (none when `at` is past it), each loaded once (volatile) when the
    /// iterator reaches it: for using data in place, with no staging copy.
    pub fn words(&self, at: usize) -> Words<'a> {
        Words { span: *self, at }
    }

    /// One word at `at` (`at + 8 <= len`, checked by the caller).
    #[inline(always)]
    fn store_word(&self, at: usize, word: u64) {
        #[cfg(not(loom))]
        {
            // SAFETY: `at + 8 <= self.len` (caller), and the span lies inside
            // the region (checked when made). The word store is aligned (tested).
            unsafe {
                let p = self.base.as_ptr().add(at);
                if (p as usize).is_multiple_of(8) {
                    p.cast::<u64>().write_volatile(word.to_le());
                } else {
                    copy_in(p, &word.to_le_bytes());
                }
            }
        }
        #[cfg(loom)]
        let _ = self
            .window
            .write_bytes(self.offset + at, &word.to_le_bytes());
    }

    /// One word at `at` (`at + 8 <= len`, checked by the caller).
    #[inline(always)]
    fn load_word(&self, at: usize) -> u64 {
        #[cfg(not(loom))]
        {
            // SAFETY: as in `store_word`.
            unsafe {
                let p = self.base.as_ptr().add(at);
                if (p as usize).is_multiple_of(8) {
                    u64::from_le(p.cast::<u64>().read_volatile())
                } else {
                    let mut b = [0u8; 8];
                    copy_out(p, &mut b);
                    u64::from_le_bytes(b)
                }
            }
        }
        #[cfg(loom)]
        {
            let mut b = [0u8; 8];
            let _ = self.window.read_bytes(self.offset + at, &mut b);
            u64::from_le_bytes(b)
        }
    }

    /// Copy `dst.len()` bytes at `at` (relative to the span) out.
    #[inline]
    pub fn read_bytes(&self, at: usize, dst: &mut [u8]) -> Result<(), WindowError> {
        self.check(at, dst.len())?;
        #[cfg(not(loom))]
        // SAFETY: `at .. at + dst.len()` is inside the span (checked), which
        // `Window::span` checked is inside the region.
        unsafe {
            copy_out(self.base.as_ptr().add(at), dst)
        };
        #[cfg(loom)]
        self.window.read_bytes(self.offset + at, dst)?;
        Ok(())
    }

    /// Copy `src` in at `at` (relative to the span).
    #[inline]
    pub fn write_bytes(&self, at: usize, src: &[u8]) -> Result<(), WindowError> {
        self.check(at, src.len())?;
        #[cfg(not(loom))]
        // SAFETY: as in `read_bytes`.
        unsafe {
            copy_in(self.base.as_ptr().add(at), src)
        };
        #[cfg(loom)]
        self.window.write_bytes(self.offset + at, src)?;
        Ok(())
    }
}

#[cfg(loom)]
impl Window<'_> {
    fn load_word(&self, offset: usize) -> u64 {
        self.words[offset / 8].load(Ordering::Relaxed)
    }

    // Sub-word stores are a load and a store of the containing word. That is only
    // sound because every 8-byte word of a ring has a single writer (driver or
    // device), which the virtqueue layout guarantees for the fields it models.
    fn store_bits(&self, offset: usize, bytes: usize, value: u64) {
        let shift = (offset % 8) * 8;
        let mask = if bytes == 8 {
            u64::MAX
        } else {
            ((1u64 << (bytes * 8)) - 1) << shift
        };
        let word = &self.words[offset / 8];
        let old = word.load(Ordering::Relaxed);
        word.store((old & !mask) | ((value << shift) & mask), Ordering::Relaxed);
    }

    fn load_bits(&self, offset: usize, bytes: usize) -> u64 {
        let shift = (offset % 8) * 8;
        let v = self.load_word(offset) >> shift;
        if bytes == 8 {
            v
        } else {
            v & ((1u64 << (bytes * 8)) - 1)
        }
    }

    /// Read one byte.
    pub fn read_u8(&self, offset: usize) -> Result<u8, WindowError> {
        self.check(offset, 1, 1)?;
        Ok(self.load_bits(offset, 1) as u8)
    }

    /// Read a little-endian `u16`.
    pub fn read_u16(&self, offset: usize) -> Result<u16, WindowError> {
        self.check(offset, 2, 2)?;
        Ok(self.load_bits(offset, 2) as u16)
    }

    /// Read a little-endian `u32`.
    pub fn read_u32(&self, offset: usize) -> Result<u32, WindowError> {
        self.check(offset, 4, 4)?;
        Ok(self.load_bits(offset, 4) as u32)
    }

    /// Write one byte.
    pub fn write_u8(&self, offset: usize, value: u8) -> Result<(), WindowError> {
        self.check(offset, 1, 1)?;
        self.store_bits(offset, 1, value.into());
        Ok(())
    }

    /// Write a little-endian `u16`.
    pub fn write_u16(&self, offset: usize, value: u16) -> Result<(), WindowError> {
        self.check(offset, 2, 2)?;
        self.store_bits(offset, 2, value.into());
        Ok(())
    }

    /// Write a little-endian `u32`.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), WindowError> {
        self.check(offset, 4, 4)?;
        self.store_bits(offset, 4, value.into());
        Ok(())
    }

    /// Copy bytes out of the window.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), WindowError> {
        self.check(offset, dst.len(), 1)?;
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.load_bits(offset + i, 1) as u8;
        }
        Ok(())
    }

    /// Copy bytes into the window.
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), WindowError> {
        self.check(offset, src.len(), 1)?;
        for (i, b) in src.iter().enumerate() {
            self.store_bits(offset + i, 1, (*b).into());
        }
        Ok(())
    }

    /// Write a 32-bit register.
    pub fn write_register(&self, offset: usize, value: u32) -> Result<(), WindowError> {
        self.write_u32(offset, value)
    }
}

#[cfg(any(loom, not(target_has_atomic = "64")))]
impl Window<'_> {
    /// Read a little-endian `u64` at an 8-byte aligned offset (two 32-bit reads:
    /// descriptor addresses are written by one side only and copied out once).
    pub fn read_u64(&self, offset: usize) -> Result<u64, WindowError> {
        self.check(offset, 8, 8)?;
        let lo = self.read_u32(offset)?;
        let hi = self.read_u32(offset + 4)?;
        Ok(u64::from(lo) | (u64::from(hi) << 32))
    }

    /// Write a little-endian `u64` at an 8-byte aligned offset.
    pub fn write_u64(&self, offset: usize, value: u64) -> Result<(), WindowError> {
        self.check(offset, 8, 8)?;
        self.write_u32(offset, value as u32)?;
        self.write_u32(offset + 4, (value >> 32) as u32)
    }
}

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
/// Under loom, the checked accessors.
impl RingFields<'_> {
    #[cfg(not(loom))]
    #[inline(always)]
    fn ld16(&self, offset: usize) -> u16 {
        // SAFETY: inside and 2-byte aligned (the impl's contract; the base is
        // 8-byte aligned); all accesses to the region are atomic or volatile.
        let a = unsafe { AtomicU16::from_ptr(self.window.at(offset).cast()) };
        u16::from_le(a.load(Ordering::Relaxed))
    }
    #[cfg(not(loom))]
    #[inline(always)]
    fn st16(&self, offset: usize, v: u16) {
        // SAFETY: as in `ld16`.
        let a = unsafe { AtomicU16::from_ptr(self.window.at(offset).cast()) };
        a.store(v.to_le(), Ordering::Relaxed)
    }
    #[cfg(not(loom))]
    #[inline(always)]
    fn ld32(&self, offset: usize) -> u32 {
        // SAFETY: as in `ld16`, 4-byte aligned.
        let a = unsafe { AtomicU32::from_ptr(self.window.at(offset).cast()) };
        u32::from_le(a.load(Ordering::Relaxed))
    }
    #[cfg(not(loom))]
    #[inline(always)]
    fn st32(&self, offset: usize, v: u32) {
        // SAFETY: as in `ld32`.
        let a = unsafe { AtomicU32::from_ptr(self.window.at(offset).cast()) };
        a.store(v.to_le(), Ordering::Relaxed)
    }
    #[cfg(all(not(loom), target_has_atomic = "64"))]
    #[inline(always)]
    fn ld64(&self, offset: usize) -> u64 {
        // SAFETY: as in `ld16`, 8-byte aligned.
        let a = unsafe { AtomicU64::from_ptr(self.window.at(offset).cast()) };
        u64::from_le(a.load(Ordering::Relaxed))
    }
    #[cfg(all(not(loom), target_has_atomic = "64"))]
    #[inline(always)]
    fn st64(&self, offset: usize, v: u64) {
        // SAFETY: as in `ld64`.
        let a = unsafe { AtomicU64::from_ptr(self.window.at(offset).cast()) };
        a.store(v.to_le(), Ordering::Relaxed)
    }
    #[cfg(any(loom, not(target_has_atomic = "64")))]
    fn ld64(&self, offset: usize) -> u64 {
        u64::from(self.ld32(offset)) | (u64::from(self.ld32(offset + 4)) << 32)
    }
    #[cfg(any(loom, not(target_has_atomic = "64")))]
    fn st64(&self, offset: usize, v: u64) {
        self.st32(offset, v as u32);
        self.st32(offset + 4, (v >> 32) as u32);
    }
    #[cfg(loom)]
    fn ld16(&self, offset: usize) -> u16 {
        self.window.read_u16(offset).unwrap_or_default()
    }
    #[cfg(loom)]
    fn st16(&self, offset: usize, v: u16) {
        let _ = self.window.write_u16(offset, v);
    }
    #[cfg(loom)]
    fn ld32(&self, offset: usize) -> u32 {
        self.window.read_u32(offset).unwrap_or_default()
    }
    #[cfg(loom)]
    fn st32(&self, offset: usize, v: u32) {
        let _ = self.window.write_u32(offset, v);
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

#[cfg(all(not(loom), target_has_atomic = "64"))]
impl Window<'_> {
    /// Read a little-endian `u64` at an 8-byte aligned offset, in one access.
    /// A peer with 32-bit stores may write the halves separately; every user
    /// reads such a field only after the index that publishes it (ordered by a
    /// barrier), or treats it as an unchecked claim.
    pub fn read_u64(&self, offset: usize) -> Result<u64, WindowError> {
        self.check(offset, 8, 8)?;
        // SAFETY: in bounds and 8-byte aligned (checked; the base is 8-aligned);
        // valid for `'a`; all accesses to the region are atomic or volatile.
        let v = unsafe { AtomicU64::from_ptr(self.at(offset).cast()) }.load(Ordering::Relaxed);
        Ok(u64::from_le(v))
    }

    /// Write a little-endian `u64` at an 8-byte aligned offset, in one access.
    pub fn write_u64(&self, offset: usize, value: u64) -> Result<(), WindowError> {
        self.check(offset, 8, 8)?;
        // SAFETY: as in `read_u64`.
        unsafe { AtomicU64::from_ptr(self.at(offset).cast()) }
            .store(value.to_le(), Ordering::Relaxed);
        Ok(())
    }
}

impl Window<'_> {
    /// Set `len` bytes at `offset` to `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), WindowError> {
        self.check(offset, len, 1)?;
        let chunk = [byte; 64];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            self.write_bytes(offset + done, &chunk[..n])?;
            done += n;
        }
        Ok(())
    }
}

/// The few aarch64 instructions the transport needs that Rust has no safe
/// spelling for. Each is safe to call: none touches memory Rust knows about.
#[cfg(all(target_arch = "aarch64", not(loom)))]
pub(crate) mod arch {
    use core::arch::asm;

    /// `dsb sy`: completes every earlier memory access before any later
    /// instruction, so ring updates are visible before an SGI or mailbox write
    /// that is not itself ordered by `dmb` (system register writes are not).
    pub(crate) fn dsb_sy() {
        // SAFETY: a barrier has no operands and no effect besides ordering.
        unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
    }

    /// Write `ICC_SGI1R_EL1` (GICv3: generate a Group 1 SGI), then `isb` so the
    /// write takes effect before this core goes on (for example to `wfi`).
    pub(crate) fn write_icc_sgi1r_el1(value: u64) {
        // SAFETY: writing this register only sends an interrupt; it accesses no
        // memory. The caller chose the target list and INTID.
        unsafe {
            asm!("msr S3_0_C12_C11_5, {v}", "isb", v = in(reg) value, options(nostack, preserves_flags));
        }
    }

    /// Smallest data-cache line size in bytes (`CTR_EL0.DminLine`).
    fn dcache_line() -> usize {
        let ctr: u64;
        // SAFETY: reading CTR_EL0 has no side effects (EL0-readable on Linux).
        unsafe {
            asm!("mrs {c}, ctr_el0", c = out(reg) ctr, options(nomem, nostack, preserves_flags))
        };
        4 << ((ctr >> 16) & 0xf)
    }

    /// Clean (`dc cvac`) or clean+invalidate (`dc civac`) a VA range to the
    /// point of coherency, then `dsb sy`.
    pub(crate) fn maintain(addr: usize, len: usize, invalidate: bool) {
        let line = dcache_line();
        let mut at = addr & !(line - 1);
        let end = addr.saturating_add(len);
        while at < end {
            if invalidate {
                // SAFETY: `dc civac` writes back then drops a line; the data is
                // unchanged from the program's point of view. `at` lies in the
                // window the caller holds.
                unsafe { asm!("dc civac, {a}", a = in(reg) at, options(nostack, preserves_flags)) };
            } else {
                // SAFETY: `dc cvac` only writes a line back; no data changes.
                unsafe { asm!("dc cvac, {a}", a = in(reg) at, options(nostack, preserves_flags)) };
            }
            at += line;
        }
        dsb_sy();
    }
}

/// Cache maintenance by virtual address to the point of coherency (`dc cvac` /
/// `dc civac`), for a window shared with a non-coherent peer.
#[cfg(all(target_arch = "aarch64", not(loom)))]
#[derive(Clone, Copy, Debug, Default)]
pub struct PointOfCoherency;

#[cfg(all(target_arch = "aarch64", not(loom)))]
impl CacheMaintenance for PointOfCoherency {
    fn clean(&self, addr: usize, len: usize) {
        arch::maintain(addr, len, false);
    }
    fn invalidate(&self, addr: usize, len: usize) {
        arch::maintain(addr, len, true);
    }
}

/// Complete every earlier memory access before the doorbell write that follows:
/// `dsb sy` on aarch64 (Linux issues the same before an IPI), a sequentially
/// consistent fence elsewhere.
pub fn barrier_before_doorbell() {
    #[cfg(all(target_arch = "aarch64", not(loom)))]
    arch::dsb_sy();
    #[cfg(not(all(target_arch = "aarch64", not(loom))))]
    crate::sync::fence(crate::sync::Ordering::SeqCst);
}

#[cfg(all(target_arch = "aarch64", not(loom)))]
pub(crate) use arch::write_icc_sgi1r_el1;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<Word> {
        (0..n).map(|_| Word::new(0)).collect()
    }

    #[test]
    fn scalars_round_trip_little_endian() {
        let mem = words(4);
        let w = Window::from_words(&mem);
        w.write_u32(4, 0x1122_3344).unwrap();
        w.write_u16(8, 0xaabb).unwrap();
        w.write_u64(16, 0x0102_0304_0506_0708).unwrap();
        let mut b = [0u8; 4];
        w.read_bytes(4, &mut b).unwrap();
        assert_eq!(b, [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(w.read_u16(8).unwrap(), 0xaabb);
        assert_eq!(w.read_u64(16).unwrap(), 0x0102_0304_0506_0708);
    }

    #[test]
    fn words_in_place_at_any_alignment_stop_at_the_span_end() {
        let mem = words(8);
        let w = Window::from_words(&mem);
        for start in [8, 11] {
            w.fill(0, 64, 0).unwrap();
            let s = w.span(start, 21).unwrap();
            // Two whole words fit in 21 bytes: the third is not written.
            assert_eq!(s.write_words(0, [1, 2, 3]).unwrap(), 16, "at {start}");
            assert_eq!(w.read_u8(start + 16).unwrap(), 0, "at {start}");
            let mut b = [0u8; 8];
            w.read_bytes(start + 8, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), 2, "at {start}: little-endian");
            assert_eq!(s.words(0).collect::<Vec<_>>(), [1, 2], "at {start}");
            assert_eq!(s.words(8).size_hint(), (1, Some(1)));
            assert_eq!(s.words(14).count(), 0, "at {start}: no partial word");
            assert_eq!(s.words(usize::MAX).count(), 0, "at {start}: past the end");
            assert_eq!(
                s.write_words(22, [9]),
                Err(WindowError::OutOfBounds { offset: 22, len: 0 })
            );
        }
    }

    #[test]
    fn words_in_place_take_what_the_producer_gives_up_to_the_span_end() {
        let mem = words(16);
        let w = Window::from_words(&mem);
        // Spans of 0..=13 whole words, producers of 0..=13 words: every
        // split between the four-word turns and the tail of `fold`.
        for room in 0..=13usize {
            for given in 0..=13u64 {
                w.fill(0, 128, 0xee).unwrap();
                let s = w.span(8, 8 * room).unwrap();
                let n = (given as usize).min(room);
                assert_eq!(s.write_words(0, 1..=given).unwrap(), 8 * n);
                let got: Vec<u64> = s.words(0).collect();
                let mut want: Vec<u64> = (1..=n as u64).collect();
                want.resize(room, u64::from_le_bytes([0xee; 8]));
                assert_eq!(got, want, "room {room}, given {given}");
                assert_eq!(w.read_u8(8 + 8 * room).unwrap(), 0xee, "past the span");
                let sum = s.words(0).fold(0u64, u64::wrapping_add);
                assert_eq!(sum, want.iter().copied().fold(0, u64::wrapping_add));
            }
        }
    }

    #[test]
    fn indexed_words_fill_up_to_the_count_or_the_span_end_at_any_alignment() {
        let mem = words(16);
        let w = Window::from_words(&mem);
        // Aligned (the four-word turns and their tail) and not.
        for start in [8, 11] {
            for room in 0..=9usize {
                for count in 0..=9usize {
                    w.fill(0, 128, 0xee).unwrap();
                    let s = w.span(start, 8 * room + 3).unwrap();
                    let n = count.min(room);
                    let k = |k: usize| 0x0101 * (k as u64 + 1);
                    assert_eq!(s.write_words_with(0, count, k).unwrap(), 8 * n);
                    let got: Vec<u64> = s.words(0).collect();
                    let mut want: Vec<u64> = (0..n).map(k).collect();
                    want.resize(room, u64::from_le_bytes([0xee; 8]));
                    assert_eq!(got, want, "at {start}, room {room}, count {count}");
                    assert_eq!(w.read_u8(start + 8 * n).unwrap(), 0xee, "past the words");
                }
            }
        }
        let s = w.span(8, 16).unwrap();
        assert_eq!(
            s.write_words_with(17, 1, |_| 0),
            Err(WindowError::OutOfBounds { offset: 17, len: 0 })
        );
    }

    #[test]
    fn a_span_of_a_span_stays_inside_it() {
        let mem = words(8);
        let w = Window::from_words(&mem);
        let s = w.span(8, 32).unwrap();
        let t = s.sub(8, 16).unwrap();
        t.write_bytes(0, &[1; 16]).unwrap();
        assert_eq!((w.read_u8(15).unwrap(), w.read_u8(16).unwrap()), (0, 1));
        assert_eq!((w.read_u8(31).unwrap(), w.read_u8(32).unwrap()), (1, 0));
        assert_eq!(w.span_offset(&t), 16);
        assert_eq!(s.sub(32, 0).map(|t| t.len()), Ok(0));
        assert_eq!(
            s.sub(17, 16).map(|t| t.len()),
            Err(WindowError::OutOfBounds {
                offset: 17,
                len: 16
            })
        );
        assert!(s.sub(usize::MAX, 2).is_err());
    }

    #[test]
    fn ring_fields_are_checked_once_and_indices_wrap_inside() {
        let mem = words(64); // 512 bytes: a 4-entry ring needs 64 + 14 + 38
        let w = Window::from_words(&mem);
        let layout = |desc, avail, used, size| RingLayout {
            size,
            desc,
            avail,
            used,
        };
        let f = w.ring_fields(layout(0, 64, 128, 4)).unwrap();
        f.set_descriptor_addr(5, 0xaa); // index 5 is descriptor 1
        f.set_descriptor_word(1, 0xbb);
        assert_eq!(f.descriptor(1), (0xaa, 0xbb));
        assert_eq!(w.read_u64(16).unwrap(), 0xaa);
        f.set_avail_slot(7, 9); // slot 3
        assert_eq!((f.avail_slot(3), w.read_u16(64 + 4 + 6).unwrap()), (9, 9));
        f.set_used_elem(6, 2, 40); // element 2
        assert_eq!(f.used_elem(2), (2, 40));
        assert_eq!(w.read_u32(128 + 4 + 16).unwrap(), 2);
        f.set_avail_idx(0x1234);
        f.set_used_idx(0x4321);
        assert_eq!((f.avail_idx(), f.used_idx()), (0x1234, 0x4321));
        assert_eq!(w.read_u16(66).unwrap(), 0x1234);
        // Anything that does not fit, or is misaligned, is refused up front.
        for (bad, why) in [
            (layout(0, 64, 480, 4), "used ring past the end"),
            (layout(8, 64, 128, 4), "descriptors not 16-aligned"),
            (layout(0, 65, 128, 4), "avail not 2-aligned"),
            (layout(0, 64, 130, 4), "used not 4-aligned"),
            (layout(0, 64, 128, 3), "size not a power of two"),
        ] {
            assert_eq!(w.ring_fields(bad).err(), Some(RingError::Layout), "{why}");
        }
    }

    #[test]
    fn every_access_is_bounds_and_alignment_checked() {
        let mem = words(2);
        let w = Window::from_words(&mem);
        assert_eq!(
            w.read_u32(16),
            Err(WindowError::OutOfBounds { offset: 16, len: 4 })
        );
        assert_eq!(
            w.read_u32(14),
            Err(WindowError::OutOfBounds { offset: 14, len: 4 })
        );
        assert_eq!(w.read_u16(3), Err(WindowError::Misaligned { offset: 3 }));
        assert!(w.write_bytes(usize::MAX, &[1]).is_err());
        assert!(w.read_bytes(10, &mut [0; 7]).is_err());
        assert!(w.fill(0, 17, 0).is_err());
        assert!(w.slice(8, 9).is_err());
    }

    #[test]
    fn byte_copies_of_every_alignment_and_length() {
        let mem = words(16);
        let w = Window::from_words(&mem);
        // Up to three turns of the four-word loop and every tail, at every
        // alignment of the window side and of the private side (`pad`).
        for off in 0..16 {
            for len in 0..100 {
                for pad in [0, 1, 3, 4, 7] {
                    let mut src = vec![0u8; pad + len];
                    for (i, b) in src[pad..].iter_mut().enumerate() {
                        *b = (i * 7 + off) as u8;
                    }
                    w.fill(0, 128, 0xee).unwrap();
                    w.write_bytes(off, &src[pad..]).unwrap();
                    let mut dst = vec![0x11u8; pad + len + 1];
                    w.read_bytes(off, &mut dst[pad..pad + len]).unwrap();
                    assert_eq!(
                        src[pad..],
                        dst[pad..pad + len],
                        "at {off}, {len} bytes, {pad}"
                    );
                    assert!(dst[..pad].iter().all(|&b| b == 0x11) && dst[pad + len] == 0x11);
                    if off > 0 {
                        assert_eq!(w.read_u8(off - 1).unwrap(), 0xee);
                    }
                    assert_eq!(w.read_u8(off + len).unwrap(), 0xee);
                }
            }
        }
    }

    #[test]
    fn bus_addresses_translate_only_inside() {
        let mem = words(16);
        let w = Window::from_words(&mem).with_bus_address(0x8000_0000);
        assert_eq!(w.offset_of(0x8000_0010, 16), Ok(16));
        assert_eq!(w.offset_of(0x8000_0000, 128), Ok(0));
        assert!(w.offset_of(0x8000_0001, 128).is_err());
        assert!(w.offset_of(0x7fff_ffff, 1).is_err());
        assert!(w.offset_of(u64::MAX, 2).is_err());
        assert!(w.offset_of(0x8000_0000, u64::MAX).is_err());
        let sub = w.slice(64, 64).unwrap();
        assert_eq!(sub.bus_address(), 0x8000_0040);
        sub.write_u8(0, 9).unwrap();
        assert_eq!(w.read_u8(64).unwrap(), 9);
    }
}
