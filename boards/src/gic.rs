//! The Arm GIC distributor, as far as the boot stage needs it: turned on once,
//! before any OS starts, and each partition's shared peripheral interrupts
//! (SPIs) routed to that partition's boot core. Enabling them is left to each
//! OS. Register maps: GICv3 architecture specification, chapter 12 (GICD,
//! GICR) and chapter 12.11 (ICC system registers); the GIC-400 (GICv2) TRM.
//!
//! For partitions that take interrupts on GICv3: a core's redistributor
//! ([`Gicv3Redistributor`]), its CPU interface ([`cpu`]), and a check that an
//! SPI is still set up as its owner left it ([`Gicv3Distributor::claimed_by`]),
//! since another OS booting (a stock Linux) resets every SPI in the shared
//! distributor.

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

use crate::mmio::{affinity, packed_affinity};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

/// First SPI interrupt ID.
pub const FIRST_SPI: u32 = 32;

/// Which distributor a GIC is, from its node's `compatible` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// GIC-400 and the Cortex-A15/A7 GICs ([`Gicv2Distributor`]).
    V2,
    /// GICv3 ([`Gicv3Distributor`]).
    V3,
}

/// `compatible` strings of the GICv2 distributors the boards have.
const V2_COMPATIBLES: &[&str] = &["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a7-gic"];

impl Version {
    /// The distributor a node with these `compatible` strings is; a node
    /// that says GICv3 anywhere is one.
    pub fn from_compatibles<'a>(compatibles: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut v2 = false;
        for c in compatibles {
            if c == "arm,gic-v3" {
                return Some(Version::V3);
            }
            v2 |= V2_COMPATIBLES.contains(&c);
        }
        v2.then_some(Version::V2)
    }
}

/// The interrupt ID of an SPI, from its specifier in the device-tree binding
/// of both GIC versions (three cells: type, number, flags; type 0 is an SPI,
/// numbered from [`FIRST_SPI`]); `None` for a PPI or another width.
pub fn spi_id(specifier: &[u32]) -> Option<u32> {
    match *specifier {
        [0, number, _] => number.checked_add(FIRST_SPI),
        _ => None,
    }
}

register_bitfields! [u32,
    /// GICD_CTLR when the GIC has a single security state (DS = 1, as on QEMU
    /// virt without EL3) or as seen from the non-secure side.
    CTLR [
        ENABLE_GRP0 OFFSET(0) NUMBITS(1) [],
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) [],
        /// Affinity routing (GICv3).
        ARE OFFSET(4) NUMBITS(1) [],
    ],
];

register_structs! {
    /// GICv3 distributor (the parts used here).
    pub Gicv3Distributor {
        (0x0000 => ctlr: ReadWrite<u32, CTLR::Register>),
        (0x0004 => typer: ReadOnly<u32>),
        (0x0008 => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => _reserved1),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 1024]),
        (0x0800 => _reserved2),
        (0x6100 => irouter: [ReadWrite<u64>; 988]),
        (0x7fe0 => @END),
    }
}

register_structs! {
    /// One core's GICv3 redistributor: its RD frame and, 64 KiB above, its
    /// SGI frame (the parts used here).
    pub Gicv3Redistributor {
        (0x0000 => _rd_ctlr),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => _statusr),
        (0x0014 => waker: ReadWrite<u32>),
        (0x0018 => _reserved0),
        (0x10080 => igroupr0: ReadWrite<u32>),
        (0x10084 => _reserved1),
        (0x10100 => isenabler0: ReadWrite<u32>),
        (0x10104 => _reserved2),
        (0x10400 => ipriorityr: [ReadWrite<u8>; 32]),
        (0x10420 => @END),
    }
}

/// Bytes between two cores' redistributors (an RD and an SGI frame).
const REDISTRIBUTOR_STRIDE: usize = 0x2_0000;
/// GICR_TYPER.Last: the last redistributor of the region.
const TYPER_LAST: u64 = 1 << 4;
/// GICR_WAKER.ProcessorSleep and ChildrenAsleep.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

register_structs! {
    /// GICv2 distributor (the parts used here).
    pub Gicv2Distributor {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => typer: ReadOnly<u32>),
        (0x0008 => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => _reserved1),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 1024]),
        (0x0800 => itargetsr: [ReadWrite<u8>; 1024]),
        (0x0c00 => @END),
    }
}

/// Priority given to every routed SPI (middle of the non-secure range).
const PRIORITY: u8 = 0xa0;

/// Interrupt lines the distributor implements (ITLinesNumber).
fn lines(typer: u32) -> u32 {
    32 * ((typer & 0x1f) + 1)
}

impl Gicv3Distributor {
    /// Turns on affinity routing and group 1; idempotent.
    pub fn enable(&self) {
        self.ctlr.write(CTLR::ARE::SET + CTLR::ENABLE_GRP1::SET);
    }

    /// Routes SPI `intid` to the core with `mpidr` (group 1, mid priority).
    /// Returns false for an ID the distributor does not have.
    pub fn route(&self, intid: u32, mpidr: u64) -> bool {
        if !(FIRST_SPI..lines(self.typer.get()).min(1020)).contains(&intid) {
            return false;
        }
        let i = intid as usize;
        let group = &self.igroupr[i / 32];
        group.set(group.get() | 1 << (i % 32));
        self.ipriorityr[i].set(PRIORITY);
        // GICD_IROUTER holds the affinity as MPIDR does; Interrupt_Routing_Mode
        // 0: this core only.
        self.irouter[i - FIRST_SPI as usize].set(affinity(mpidr));
        true
    }

    /// The MPIDR affinity an SPI is routed to.
    pub fn routed_to(&self, intid: u32) -> Option<u64> {
        let i = intid.checked_sub(FIRST_SPI)? as usize;
        Some(affinity(self.irouter.get(i)?.get()))
    }

    /// Whether SPI `intid` is enabled.
    pub fn is_enabled(&self, intid: u32) -> bool {
        let i = intid as usize;
        self.isenabler
            .get(i / 32)
            .is_some_and(|r| r.get() & 1 << (i % 32) != 0)
    }

    /// Whether SPI `intid` reaches the core with `mpidr`: the distributor
    /// forwards group 1 with affinity routing, and the SPI is group 1,
    /// enabled and routed there. [`Self::claim`] makes it so.
    pub fn claimed_by(&self, intid: u32, mpidr: u64) -> bool {
        let i = intid as usize;
        self.ctlr.is_set(CTLR::ARE)
            && self.ctlr.is_set(CTLR::ENABLE_GRP1)
            && self
                .igroupr
                .get(i / 32)
                .is_some_and(|r| r.get() & 1 << (i % 32) != 0)
            && self.is_enabled(intid)
            && self.routed_to(intid) == Some(affinity(mpidr))
    }

    /// Routes SPI `intid` to the core with `mpidr` and enables it, turning
    /// the distributor's group 1 forwarding back on if it is off. Returns
    /// false for an ID the distributor does not have.
    pub fn claim(&self, intid: u32, mpidr: u64) -> bool {
        if !self.route(intid, mpidr) {
            return false;
        }
        if !(self.ctlr.is_set(CTLR::ARE) && self.ctlr.is_set(CTLR::ENABLE_GRP1)) {
            self.ctlr.modify(CTLR::ARE::SET + CTLR::ENABLE_GRP1::SET);
        }
        let i = intid as usize;
        // Writing 1 enables; zeros leave the other interrupts alone.
        self.isenabler[i / 32].set(1 << (i % 32));
        true
    }
}

impl Gicv3Redistributor {
    /// The redistributor of the core with `mpidr` among those at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the start of the GICv3 redistributor region, `size`
    /// bytes long, mapped as device memory for the rest of the program.
    pub unsafe fn find(base: usize, size: usize, mpidr: u64) -> Option<&'static Self> {
        let want = packed_affinity(mpidr);
        let mut at = base;
        while at + REDISTRIBUTOR_STRIDE <= base + size {
            // SAFETY: `at` is a redistributor frame inside the region (the
            // caller's promise); reading GICR_TYPER has no side effect.
            let rd = unsafe { Self::at(at) };
            let typer = rd.typer.get();
            if typer >> 32 == want {
                return Some(rd);
            }
            if typer & TYPER_LAST != 0 {
                break;
            }
            at += REDISTRIBUTOR_STRIDE;
        }
        None
    }

    /// Wakes the redistributor so it forwards interrupts to its core.
    pub fn wake(&self) {
        self.waker.set(self.waker.get() & !WAKER_PROCESSOR_SLEEP);
        while self.waker.get() & WAKER_CHILDREN_ASLEEP != 0 {
            core::hint::spin_loop();
        }
    }

    /// Makes SGI or PPI `intid` (0-31) a group 1 interrupt of mid priority
    /// and enables it.
    pub fn enable_private(&self, intid: u32) {
        let bit = 1 << (intid % 32);
        self.igroupr0.set(self.igroupr0.get() | bit);
        self.ipriorityr[(intid % 32) as usize].set(PRIORITY);
        self.isenabler0.set(bit);
    }
}

/// The GICv3 CPU interface of the running core, through its system
/// registers (ICC_*_EL1), at EL1.
#[cfg(target_arch = "aarch64")]
pub mod cpu {
    /// INTIDs from here on are special (1023: nothing pending).
    pub const SPURIOUS: u32 = 1020;

    /// Turns on the system-register interface, unmasks every priority and
    /// enables group 1 interrupts at this core.
    pub fn enable() {
        // SAFETY: writes the running core's own CPU-interface registers at
        // EL1; ICC_SRE_EL1.SRE = 1, ICC_PMR_EL1 = 0xff (lowest priority
        // threshold), ICC_IGRPEN1_EL1 = 1; the ISBs make each take effect.
        unsafe {
            core::arch::asm!(
                "mrs {t}, icc_sre_el1",
                "orr {t}, {t}, #1",
                "msr icc_sre_el1, {t}",
                "isb",
                "mov {t}, #0xff",
                "msr icc_pmr_el1, {t}",
                "mov {t}, #1",
                "msr icc_igrpen1_el1, {t}",
                "isb",
                t = out(reg) _,
            );
        }
    }

    /// Acknowledges the highest-priority pending group 1 interrupt.
    pub fn acknowledge() -> u32 {
        let intid: u64;
        // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt of this core.
        unsafe { core::arch::asm!("mrs {}, icc_iar1_el1", out(reg) intid) };
        (intid & 0xff_ffff) as u32
    }

    /// Ends the handling of `intid`.
    pub fn end(intid: u32) {
        // SAFETY: writing ICC_EOIR1_EL1 ends an interrupt this core acknowledged.
        unsafe { core::arch::asm!("msr icc_eoir1_el1, {}", "isb", in(reg) u64::from(intid)) };
    }
}

impl Gicv2Distributor {
    /// Turns the distributor on; idempotent.
    pub fn enable(&self) {
        self.ctlr.set(self.ctlr.get() | 1);
    }

    /// Routes SPI `intid` to CPU interface `cpu` (on the GIC-400 boards, a
    /// core's Aff0). Returns false for an ID or CPU out of range.
    pub fn route(&self, intid: u32, cpu: u64) -> bool {
        if !(FIRST_SPI..lines(self.typer.get()).min(1020)).contains(&intid) || cpu >= 8 {
            return false;
        }
        let i = intid as usize;
        self.ipriorityr[i].set(PRIORITY);
        self.itargetsr[i].set(1 << cpu);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_compatible_strings() {
        let v3 = ["arm,gic-v3"];
        let v2 = ["brcm,bcm2711-gic", "arm,gic-400"];
        let none = ["brcm,bcm2836-l1-intc"];
        assert_eq!(Version::from_compatibles(v3), Some(Version::V3));
        assert_eq!(Version::from_compatibles(v2), Some(Version::V2));
        assert_eq!(Version::from_compatibles(none), None);
    }

    #[test]
    fn spis_count_from_32_and_ppis_are_not_spis() {
        // QEMU virt's PL011: <GIC_SPI 1 IRQ_TYPE_LEVEL_HIGH>.
        assert_eq!(spi_id(&[0, 1, 4]), Some(33));
        // The generic timer's PPI.
        assert_eq!(spi_id(&[1, 11, 4]), None);
        assert_eq!(spi_id(&[0, 1]), None);
        assert_eq!(spi_id(&[0, u32::MAX, 4]), None);
    }
}
