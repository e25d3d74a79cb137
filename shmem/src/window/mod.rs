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
//! The accessors are written once, over the few primitive accesses of
//! `Access`, which a backend provides and `cfg` chooses once (`Memory`):
//! `raw` over real memory, or under `--cfg loom` `model`, loom's atomics, so
//! the ring protocol above can be model-checked unchanged. The rest of the
//! window: [`Span`] (`span`), a checked byte range of it; [`RingFields`]
//! (`ring`), a ring's fields checked once; `arch`, the aarch64 instructions.

use core::fmt;

#[cfg(all(target_arch = "aarch64", not(loom)))]
mod arch;
#[cfg(loom)]
mod model;
#[cfg(not(loom))]
mod raw;
mod ring;
mod span;
#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(target_arch = "aarch64", not(loom)))]
pub(crate) use arch::write_icc_sgi1r_el1;
#[cfg(all(target_arch = "aarch64", not(loom)))]
pub use arch::PointOfCoherency;
pub use ring::RingFields;
pub use span::{Span, Words};

/// The unit a window is built from when it is not raw mapped memory: a heap or
/// static array of these stands in for a shared window in tests and benchmarks.
#[cfg(not(loom))]
pub type Word = core::sync::atomic::AtomicU64;
/// The unit a window is built from under loom: loom's own atomic, so the model
/// checker sees every access.
#[cfg(loom)]
pub type Word = loom::sync::atomic::AtomicU64;

/// The memory behind every window: real memory, or loom's model of it.
#[cfg(not(loom))]
type Memory<'a> = raw::Raw<'a>;
/// The memory behind every window: real memory, or loom's model of it.
#[cfg(loom)]
type Memory<'a> = model::Model<'a>;

/// The primitive accesses a backend provides; everything else in this module
/// is written once on top of them. Offsets are relative to the backend's first
/// byte; scalar fields are little-endian.
///
/// # Safety
///
/// For every `unsafe fn` here: the bytes accessed, `offset .. offset + size`
/// (`advance`: `offset` alone, which may be one past the end), lie inside the
/// region the backend was made for, and for scalar and word accesses `offset`
/// is a multiple of the access size (the region's base is 8-byte aligned).
/// Callers check this first ([`Window`]'s accessors), or rely on a layout
/// checked once ([`RingFields`]).
trait Access: Copy {
    /// The address alignment is measured on.
    fn addr(&self) -> usize;
    /// The same region from `offset` on.
    unsafe fn advance(self, offset: usize) -> Self;
    /// A byte, relaxed atomic.
    unsafe fn load_u8(&self, offset: usize) -> u8;
    /// A little-endian `u16` field, relaxed atomic.
    unsafe fn load_u16(&self, offset: usize) -> u16;
    /// A little-endian `u32` field, relaxed atomic.
    unsafe fn load_u32(&self, offset: usize) -> u32;
    /// A little-endian `u64` field, relaxed atomic where the target has one.
    unsafe fn load_u64(&self, offset: usize) -> u64;
    /// Stores a byte, relaxed atomic.
    unsafe fn store_u8(&self, offset: usize, value: u8);
    /// Stores a little-endian `u16` field, relaxed atomic.
    unsafe fn store_u16(&self, offset: usize, value: u16);
    /// Stores a little-endian `u32` field, relaxed atomic.
    unsafe fn store_u32(&self, offset: usize, value: u32);
    /// Stores a little-endian `u64` field, relaxed atomic where the target
    /// has one.
    unsafe fn store_u64(&self, offset: usize, value: u64);
    /// A little-endian payload word, one volatile load.
    unsafe fn load_word(&self, offset: usize) -> u64;
    /// Stores a little-endian payload word, one volatile store.
    unsafe fn store_word(&self, offset: usize, word: u64);
    /// Copies payload bytes out (volatile).
    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]);
    /// Copies payload bytes in (volatile).
    unsafe fn copy_in(&self, offset: usize, src: &[u8]);
    /// Writes a 32-bit device register: one volatile store, native order.
    unsafe fn write_register(&self, offset: usize, value: u32);
}

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
    /// The region's first byte: valid for `'a` (by `from_words`' borrow or by
    /// `from_raw`'s contract) and accessed only atomically or volatilely.
    mem: Memory<'a>,
    len: usize,
    bus: u64,
    cache: Option<&'a dyn CacheMaintenance>,
}

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
            mem: Memory::from_words(words),
            len: words.len() * 8,
            bus: 0,
            cache: None,
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
        let base = core::ptr::NonNull::new(base).ok_or(WindowError::BadBase)?;
        if !(base.as_ptr() as usize).is_multiple_of(8)
            || (base.as_ptr() as usize).checked_add(len).is_none()
        {
            return Err(WindowError::BadBase);
        }
        Ok(Self {
            // SAFETY: the caller's contract is the backend's.
            mem: unsafe { Memory::from_ptr(base) },
            len,
            bus: 0,
            cache: None,
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
        // SAFETY: `check` proved `offset + len <= self.len`, so the new base
        // stays inside (or one past the end of) the same region, and 8-byte
        // aligned.
        sub.mem = unsafe { self.mem.advance(offset) };
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
        Some((self.mem.addr() + offset, len))
    }
}

/// The checked accessors: each checks bounds and alignment against the window,
/// then makes one access of the backend.
impl Window<'_> {
    /// Read one byte.
    pub fn read_u8(&self, offset: usize) -> Result<u8, WindowError> {
        self.check(offset, 1, 1)?;
        // SAFETY: in bounds (checked).
        Ok(unsafe { self.mem.load_u8(offset) })
    }

    /// Read a little-endian `u16` at a 2-byte aligned offset.
    pub fn read_u16(&self, offset: usize) -> Result<u16, WindowError> {
        self.check(offset, 2, 2)?;
        // SAFETY: in bounds and 2-byte aligned (checked).
        Ok(unsafe { self.mem.load_u16(offset) })
    }

    /// Read a little-endian `u32` at a 4-byte aligned offset.
    pub fn read_u32(&self, offset: usize) -> Result<u32, WindowError> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and 4-byte aligned (checked).
        Ok(unsafe { self.mem.load_u32(offset) })
    }

    /// Read a little-endian `u64` at an 8-byte aligned offset, in one access
    /// where the target has 64-bit atomics (else, and under loom, two 32-bit
    /// ones). A peer with 32-bit stores may write the halves separately; every
    /// user reads such a field only after the index that publishes it
    /// (ordered by a barrier), or treats it as an unchecked claim.
    pub fn read_u64(&self, offset: usize) -> Result<u64, WindowError> {
        self.check(offset, 8, 8)?;
        // SAFETY: in bounds and 8-byte aligned (checked).
        Ok(unsafe { self.mem.load_u64(offset) })
    }

    /// Write one byte.
    pub fn write_u8(&self, offset: usize, value: u8) -> Result<(), WindowError> {
        self.check(offset, 1, 1)?;
        // SAFETY: as in `read_u8`.
        unsafe { self.mem.store_u8(offset, value) };
        Ok(())
    }

    /// Write a little-endian `u16` at a 2-byte aligned offset.
    pub fn write_u16(&self, offset: usize, value: u16) -> Result<(), WindowError> {
        self.check(offset, 2, 2)?;
        // SAFETY: as in `read_u16`.
        unsafe { self.mem.store_u16(offset, value) };
        Ok(())
    }

    /// Write a little-endian `u32` at a 4-byte aligned offset.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), WindowError> {
        self.check(offset, 4, 4)?;
        // SAFETY: as in `read_u32`.
        unsafe { self.mem.store_u32(offset, value) };
        Ok(())
    }

    /// Write a little-endian `u64` at an 8-byte aligned offset (as
    /// [`Window::read_u64`], in one access where the target allows).
    pub fn write_u64(&self, offset: usize, value: u64) -> Result<(), WindowError> {
        self.check(offset, 8, 8)?;
        // SAFETY: as in `read_u64`.
        unsafe { self.mem.store_u64(offset, value) };
        Ok(())
    }

    /// Copy `dst.len()` bytes at `offset` out of the window.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), WindowError> {
        self.check(offset, dst.len(), 1)?;
        // SAFETY: `check` proved `offset .. offset + dst.len()` inside the region.
        unsafe { self.mem.copy_out(offset, dst) };
        Ok(())
    }

    /// Copy `src` into the window at `offset`.
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), WindowError> {
        self.check(offset, src.len(), 1)?;
        // SAFETY: `check` proved `offset .. offset + src.len()` inside the region.
        unsafe { self.mem.copy_in(offset, src) };
        Ok(())
    }

    /// Write a 32-bit device register (a doorbell, `GICD_SGIR`, a mailbox) with
    /// one volatile store, when this window maps a register block.
    pub fn write_register(&self, offset: usize, value: u32) -> Result<(), WindowError> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and 4-byte aligned (checked).
        unsafe { self.mem.write_register(offset, value) };
        Ok(())
    }

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

/// Complete every earlier memory access before the doorbell write that follows:
/// `dsb sy` on aarch64 (Linux issues the same before an IPI), a sequentially
/// consistent fence elsewhere.
pub fn barrier_before_doorbell() {
    #[cfg(all(target_arch = "aarch64", not(loom)))]
    arch::dsb_sy();
    #[cfg(not(all(target_arch = "aarch64", not(loom))))]
    crate::sync::fence(crate::sync::Ordering::SeqCst);
}
