//! The boot stage's heap: a bump allocator over a region of `.bss`.
//!
//! The boot stage runs once, on one core, and hands everything over at the end,
//! so memory is never given back: `dealloc` is a no-op and the whole region is
//! dropped at hand-off. The loader reserves the region with the rest of the
//! image (`image_size` in the Image header covers `.bss`).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Heap size: room for the board's device tree, one edited copy per partition
/// and the decoded plan. It lives in the boot stage's region.
const HEAP_SIZE: usize = 4 << 20;

#[repr(C, align(16))]
struct Region(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the region is only reached through `Bump::alloc`, which hands out
// disjoint ranges (the offset only grows, atomically).
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; HEAP_SIZE]));

struct Bump {
    next: AtomicUsize,
}

// SAFETY: `alloc` returns ranges inside REGION that never overlap (the offset is
// advanced with a compare-exchange before the range is handed out), aligned as
// asked; `dealloc` never reuses memory, so no range is handed out twice.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = REGION.0.get() as usize;
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + current).checked_next_multiple_of(layout.align()) else {
                return core::ptr::null_mut();
            };
            let end = start - base + layout.size();
            if end > HEAP_SIZE {
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

#[global_allocator]
static HEAP: Bump = Bump {
    next: AtomicUsize::new(0),
};
