//! `virtio-drivers`' `Hal` over the part of a link window that this side's
//! drivers own: their virtqueues are allocated there (so the device side
//! reaches them with bus addresses inside the window), and a buffer a
//! driver shares from outside the window is bounced through it.
//!
//! The `Hal` is static functions, so the pools are the program's: one per
//! link whose devices it drives ([`WindowHal::add_pool`], at most
//! [`MAX_POOLS`]). Allocations and bounce buffers come from the selected
//! pool ([`WindowHal::select`]): select a link's pool before calling into
//! a driver of a device on that link. Buffers go back to the pool they
//! came from, whichever is selected.
//!
//! The pool may be mapped as Device memory (a window mapped through
//! `/dev/mem` on Linux, or anything with the MMU off), where an unaligned
//! access faults and `memset` may use `DC ZVA`, which faults too: every
//! access this module makes to the pool is an aligned volatile word (or a
//! byte at the ends), whatever the other buffer's alignment.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Pages the pool can hold (a 1 MiB pool of 4 KiB pages).
const MAX_PAGES: usize = 256;

/// The pool: where it is, its bus address, and which pages are taken.
struct Pool {
    base: usize,
    bus: u64,
    pages: usize,
    used: [bool; MAX_PAGES],
}

impl Pool {
    /// `n` contiguous free pages, taken: the first page's index.
    fn take(&mut self, n: usize) -> Option<usize> {
        if n == 0 || n > self.pages {
            return None;
        }
        let start = (0..=self.pages - n).find(|&s| self.used[s..s + n].iter().all(|u| !u))?;
        self.used[start..start + n].fill(true);
        Some(start)
    }

    fn give(&mut self, start: usize, n: usize) {
        if let Some(pages) = self.used.get_mut(start..start + n) {
            pages.fill(false);
        }
    }

    /// The page index of bus address `paddr`, if it is in the pool.
    fn page_of(&self, paddr: PhysAddr) -> Option<usize> {
        let off = paddr.checked_sub(self.bus)?;
        let page = usize::try_from(off).ok()? / PAGE_SIZE;
        (page < self.pages).then_some(page)
    }

    fn contains(&self, addr: usize, len: usize) -> bool {
        addr >= self.base && addr.saturating_add(len) <= self.base + self.pages * PAGE_SIZE
    }
}

/// Pools a program can have (links whose devices it drives).
pub const MAX_POOLS: usize = 4;

/// One of the program's pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolId(usize);

/// The pools, and the one allocations come from.
struct Pools {
    pools: [Option<Pool>; MAX_POOLS],
    selected: usize,
}

impl Pools {
    fn selected(&mut self) -> Option<&mut Pool> {
        self.pools.get_mut(self.selected)?.as_mut()
    }

    /// The pool holding `len` bytes at `addr`.
    fn holding(&mut self, addr: usize, len: usize) -> Option<&mut Pool> {
        self.pools
            .iter_mut()
            .flatten()
            .find(|p| p.contains(addr, len))
    }

    /// The pool holding bus address `paddr`, and its page there.
    fn at_bus(&mut self, paddr: PhysAddr) -> Option<(usize, &mut Pool)> {
        self.pools
            .iter_mut()
            .flatten()
            .find_map(|p| Some((p.page_of(paddr)?, p)))
    }
}

/// A spin lock around the pools: the drivers may run on more than one core.
struct Locked {
    busy: AtomicBool,
    pools: core::cell::UnsafeCell<Pools>,
}

// SAFETY: the pools are only reached through `with`, which holds `busy`.
unsafe impl Sync for Locked {}

static POOLS: Locked = Locked {
    busy: AtomicBool::new(false),
    pools: core::cell::UnsafeCell::new(Pools {
        pools: [const { None }; MAX_POOLS],
        selected: 0,
    }),
};

fn with<R>(f: impl FnOnce(&mut Pools) -> R) -> R {
    while POOLS
        .busy
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    // SAFETY: `busy` is held: no other reference to the pools exists.
    let r = f(unsafe { &mut *POOLS.pools.get() });
    POOLS.busy.store(false, Ordering::Release);
    r
}

/// The `Hal` of drivers whose device is across a link.
#[derive(Debug)]
pub struct WindowHal;

impl WindowHal {
    /// Makes `len` bytes at `base` the program's only pool, selected; see
    /// [`WindowHal::add_pool`]. Returns false if the region is unusable.
    ///
    /// # Safety
    ///
    /// As for [`WindowHal::add_pool`].
    pub unsafe fn init(base: *mut u8, bus: u64, len: usize) -> bool {
        with(|p| p.pools = [const { None }; MAX_POOLS]);
        // SAFETY: the caller's contract.
        match unsafe { Self::add_pool(base, bus, len) } {
            Some(id) => {
                Self::select(id);
                true
            }
            None => false,
        }
    }

    /// Gives the drivers another pool: `len` bytes at `base` (page-aligned,
    /// whole pages, at most 1 MiB), which the device side sees at bus
    /// address `bus`. `None` if the region is unusable or the program has
    /// [`MAX_POOLS`] already.
    ///
    /// # Safety
    ///
    /// `base..base + len` is mapped, readable and writable for the rest of
    /// the program, lies in the link window the device side also maps,
    /// overlaps no other pool, and nothing else in this program reads or
    /// writes it: it is the drivers' (and the device side's, through its
    /// own window accesses).
    pub unsafe fn add_pool(base: *mut u8, bus: u64, len: usize) -> Option<PoolId> {
        let addr = base as usize;
        if !addr.is_multiple_of(PAGE_SIZE)
            || !bus.is_multiple_of(PAGE_SIZE as u64)
            || !len.is_multiple_of(PAGE_SIZE)
        {
            return None;
        }
        let pages = len / PAGE_SIZE;
        if pages == 0 || pages > MAX_PAGES {
            return None;
        }
        with(|p| {
            let free = p.pools.iter().position(Option::is_none)?;
            p.pools[free] = Some(Pool {
                base: addr,
                bus,
                pages,
                used: [false; MAX_PAGES],
            });
            Some(PoolId(free))
        })
    }

    /// Allocations and bounce buffers come from pool `id` from now on.
    pub fn select(id: PoolId) {
        with(|p| p.selected = id.0);
    }

    /// Frees every page of pool `id`: its link was reset, the device side
    /// forgot the queues, and the drivers that used the pages are dropped
    /// (what they did not give back is recovered here).
    pub fn clear_pool(id: PoolId) {
        with(|p| {
            if let Some(Some(pool)) = p.pools.get_mut(id.0) {
                pool.used = [false; MAX_PAGES];
            }
        });
    }

    /// Pages taken now in every pool (for a test or a monitor to check
    /// nothing leaks).
    pub fn pages_in_use() -> usize {
        with(|p| {
            p.pools
                .iter()
                .flatten()
                .map(|p| p.used.iter().filter(|u| **u).count())
                .sum()
        })
    }
}

// SAFETY: `dma_alloc` hands out zeroed, page-aligned pages of the pool that
// no other allocation holds until `dma_dealloc`; `share` returns the bus
// address of the buffer itself when it lies in the pool, else of a bounce
// copy that `unshare` copies back and frees.
unsafe impl Hal for WindowHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        with(|p| {
            let Some(pool) = p.selected() else {
                return (0, NonNull::dangling());
            };
            let Some(start) = pool.take(pages) else {
                return (0, NonNull::dangling());
            };
            let addr = pool.base + start * PAGE_SIZE;
            let ptr = addr as *mut u8;
            // SAFETY: the pages are in the pool (mapped, ours, by `init`'s
            // contract) and were free: nothing else points into them.
            unsafe { zero_pool(ptr, pages * PAGE_SIZE) };
            let bus = pool.bus + (start * PAGE_SIZE) as u64;
            (bus, NonNull::new(ptr).unwrap_or(NonNull::dangling()))
        })
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        with(|p| match p.at_bus(paddr) {
            Some((start, pool)) => {
                pool.give(start, pages);
                0
            }
            None => -1,
        })
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // No MMIO transport here: virtio-msg has no registers to map.
        NonNull::dangling()
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        let addr = buffer.as_ptr().cast::<u8>() as usize;
        with(|p| {
            if let Some(pool) = p.holding(addr, len) {
                return pool.bus + (addr - pool.base) as u64;
            }
            let Some(pool) = p.selected() else { return 0 };
            let Some(start) = pool.take(len.div_ceil(PAGE_SIZE)) else {
                return 0;
            };
            let bounce = (pool.base + start * PAGE_SIZE) as *mut u8;
            if direction != BufferDirection::DeviceToDriver {
                // SAFETY: `buffer` is valid for `len` bytes (the caller's
                // contract), the bounce pages were free and hold `len`.
                unsafe { copy_to_pool(addr as *const u8, bounce, len) };
            }
            pool.bus + (start * PAGE_SIZE) as u64
        })
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let len = buffer.len();
        let addr = buffer.as_ptr().cast::<u8>() as usize;
        with(|p| {
            if p.holding(addr, len).is_some() {
                return;
            }
            let Some((start, pool)) = p.at_bus(paddr) else {
                return;
            };
            let bounce = (pool.base + start * PAGE_SIZE) as *const u8;
            if direction != BufferDirection::DriverToDevice {
                // SAFETY: as in `share`: the bounce pages still hold `len`
                // bytes (given back only here), `buffer` is valid for them.
                unsafe { copy_from_pool(bounce, addr as *mut u8, len) };
            }
            pool.give(start, len.div_ceil(PAGE_SIZE));
        })
    }
}

/// Zeroes `len` bytes (a multiple of 8) at `at`, 8-byte aligned, in aligned
/// volatile words.
///
/// # Safety
///
/// `at..at + len` is pool memory no one else uses.
unsafe fn zero_pool(at: *mut u8, len: usize) {
    for i in 0..len / 8 {
        // SAFETY: inside the range, 8-byte aligned (`at` is a page).
        unsafe { at.cast::<u64>().add(i).write_volatile(0) };
    }
}

/// Copies `len` bytes from `src` (any alignment, normal memory) to the pool
/// at `dst` (8-byte aligned): aligned volatile words, then bytes.
///
/// # Safety
///
/// `src` is readable and `dst` writable for `len` bytes; they do not overlap.
unsafe fn copy_to_pool(src: *const u8, dst: *mut u8, len: usize) {
    let words = len / 8;
    for i in 0..words {
        // SAFETY: inside both ranges; the read may be unaligned (normal
        // memory), the write is aligned.
        unsafe {
            let w = src.add(8 * i).cast::<u64>().read_unaligned();
            dst.cast::<u64>().add(i).write_volatile(w);
        }
    }
    for i in 8 * words..len {
        // SAFETY: inside both ranges.
        unsafe { dst.add(i).write_volatile(src.add(i).read()) };
    }
}

/// Copies `len` bytes from the pool at `src` (8-byte aligned) to `dst` (any
/// alignment, normal memory): aligned volatile words, then bytes.
///
/// # Safety
///
/// `src` is readable and `dst` writable for `len` bytes; they do not overlap.
unsafe fn copy_from_pool(src: *const u8, dst: *mut u8, len: usize) {
    let words = len / 8;
    for i in 0..words {
        // SAFETY: inside both ranges; the read is aligned, the write may be
        // unaligned (normal memory).
        unsafe {
            let w = src.cast::<u64>().add(i).read_volatile();
            dst.add(8 * i).cast::<u64>().write_unaligned(w);
        }
    }
    for i in 8 * words..len {
        // SAFETY: inside both ranges.
        unsafe { dst.add(i).write(src.add(i).read_volatile()) };
    }
}
