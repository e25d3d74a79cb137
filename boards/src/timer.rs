//! The Arm generic timer as an `embedded-hal` delay: the one clock every
//! supported core has, with its frequency in `CNTFRQ_EL0`.

use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use embedded_hal::delay::DelayNs;

/// The EL1 virtual timer's interrupt, a PPI (INTID 27, as the Arm Base
/// System Architecture assigns it and QEMU virt's /timer node lists it).
pub const VIRTUAL_TIMER_PPI: u32 = 27;

/// Busy-wait delays on the physical counter.
#[derive(Debug, Default, Clone, Copy)]
pub struct GenericTimer;

impl GenericTimer {
    /// Counter ticks since reset.
    pub fn ticks(&self) -> u64 {
        CNTPCT_EL0.get()
    }

    /// Ticks per second.
    pub fn frequency(&self) -> u64 {
        CNTFRQ_EL0.get()
    }
}

impl DelayNs for GenericTimer {
    fn delay_ns(&mut self, ns: u32) {
        let freq = self.frequency().max(1);
        let wait = (u64::from(ns) * freq).div_ceil(1_000_000_000);
        let start = self.ticks();
        while self.ticks().wrapping_sub(start) < wait {
            core::hint::spin_loop();
        }
    }
}
