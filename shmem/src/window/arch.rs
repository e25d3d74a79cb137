//! The few aarch64 instructions the transport needs that Rust has no safe
//! spelling for, and the cache hook built on them. Each is safe to call: none
//! touches memory Rust knows about.

use super::CacheMaintenance;
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
    unsafe { asm!("mrs {c}, ctr_el0", c = out(reg) ctr, options(nomem, nostack, preserves_flags)) };
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

/// Cache maintenance by virtual address to the point of coherency (`dc cvac` /
/// `dc civac`), for a window shared with a non-coherent peer.
#[derive(Clone, Copy, Debug, Default)]
pub struct PointOfCoherency;

impl CacheMaintenance for PointOfCoherency {
    fn clean(&self, addr: usize, len: usize) {
        maintain(addr, len, false);
    }
    fn invalidate(&self, addr: usize, len: usize) {
        maintain(addr, len, true);
    }
}
