//! One way to reach a memory-mapped register block: `Block::at(base)`, the
//! only place its address becomes a reference, with the contract written
//! once, here.

/// Gives each register block named an `unsafe fn at(base) -> &'static Self`.
macro_rules! register_block_at {
    ($($block:ty),* $(,)?) => {
        $(
            impl $block {
                /// The register block at physical address `base`.
                ///
                /// # Safety
                ///
                /// `base` must be the address of this kind of register block
                /// (aligned as the block's registers need), reachable as device
                /// memory (MMU off, or mapped so) for the rest of the program.
                /// Its methods are volatile register accesses, so two holders
                /// race only as the hardware allows; drivers that must not
                /// share a block say so at the caller.
                pub unsafe fn at(base: usize) -> &'static Self {
                    // SAFETY: the caller's promise: a block of this kind lives
                    // at `base` for 'static, and is touched only through its
                    // registers' volatile accessors.
                    unsafe { &*(base as *const Self) }
                }
            }
        )*
    };
}
pub(crate) use register_block_at;

register_block_at!(
    crate::gic::Gicv2Distributor,
    crate::gic::Gicv3Distributor,
    crate::gic::Gicv3Redistributor,
    crate::power::Bcm2835Pm,
    crate::rtc::Pl031,
);

/// The affinity fields of an MPIDR (Aff3 at bits 32-39, Aff2-Aff0 at 0-23):
/// how device trees write a core's `reg`, and a GICv3 `GICD_IROUTER` value.
pub const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// `mpidr`'s affinity fields ([`MPIDR_AFFINITY`]).
pub const fn affinity(mpidr: u64) -> u64 {
    mpidr & MPIDR_AFFINITY
}

/// `mpidr`'s affinity packed into 32 bits, Aff3 at 24-31 (`GICR_TYPER`'s
/// form).
pub const fn packed_affinity(mpidr: u64) -> u64 {
    (mpidr & 0x00ff_ffff) | ((mpidr >> 32) & 0xff) << 24
}

/// The running core's affinity fields.
#[cfg(target_arch = "aarch64")]
pub fn own_affinity() -> u64 {
    use aarch64_cpu::registers::{Readable, MPIDR_EL1};
    affinity(MPIDR_EL1.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_keeps_aff3_to_aff0_and_drops_the_flags() {
        // U (bit 30) and MT (bit 24) are flags, not affinity.
        let mpidr = 0x12_4100_0203 | 1 << 30;
        assert_eq!(affinity(mpidr), 0x12_0000_0203);
        assert_eq!(packed_affinity(mpidr), 0x1200_0203);
    }
}
