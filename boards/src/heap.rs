//! A bump allocator over a static region, for bare-metal programs that
//! allocate a little and never give back (the boot stage, the demo RTOS).
//!
//! `dealloc` is a no-op: the boot stage runs once and hands everything over;
//! the demo RTOS allocates only while it starts.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A heap of `N` bytes, placed in `.bss` when declared as a static.
#[repr(C, align(16))]
pub struct BumpHeap<const N: usize> {
    region: UnsafeCell<[u8; N]>,
    next: AtomicUsize,
}

// SAFETY: the region is only reached through `alloc`, which hands out disjoint
// ranges (the offset only grows, atomically).
unsafe impl<const N: usize> Sync for BumpHeap<N> {}

impl<const N: usize> BumpHeap<N> {
    /// An empty heap.
    pub const fn new() -> Self {
        BumpHeap {
            region: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
        }
    }
}

impl<const N: usize> Default for BumpHeap<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `alloc` returns ranges inside the region that never overlap (the
// offset is advanced with a compare-exchange before the range is handed out),
// aligned as asked; `dealloc` never reuses memory, so no range is handed out
// twice.
unsafe impl<const N: usize> GlobalAlloc for BumpHeap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.region.get() as usize;
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + current).checked_next_multiple_of(layout.align()) else {
                return core::ptr::null_mut();
            };
            let end = start - base + layout.size();
            if end > N {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange(current, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return start as *mut u8,
                Err(seen) => current = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_aligned_disjoint_ranges_until_full() {
        let heap: BumpHeap<256> = BumpHeap::new();
        // SAFETY: layouts are valid; the pointers are only compared.
        let (a, b, c) = unsafe {
            (
                heap.alloc(Layout::from_size_align(10, 1).unwrap()),
                heap.alloc(Layout::from_size_align(16, 16).unwrap()),
                heap.alloc(Layout::from_size_align(512, 8).unwrap()),
            )
        };
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(b as usize % 16, 0);
        assert!(b as usize >= a as usize + 10);
        assert!(c.is_null(), "a request larger than the heap fails");
    }
}
