//! The Arm GIC distributor, as far as the boot stage needs it: turned on once,
//! before any OS starts, and each partition's shared peripheral interrupts
//! (SPIs) routed to that partition's boot core. Enabling them is left to each
//! OS. Register maps: GICv3 architecture specification, chapter 12 (GICD); the
//! GIC-400 (GICv2) TRM.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

/// First SPI interrupt ID.
pub const FIRST_SPI: u32 = 32;

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
        (0x0100 => _reserved1),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 1024]),
        (0x0800 => _reserved2),
        (0x6100 => irouter: [ReadWrite<u64>; 988]),
        (0x7fe0 => @END),
    }
}

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
        // Aff3 moves to bits 32-39; Interrupt_Routing_Mode 0: this core only.
        let affinity = (mpidr & 0x00ff_ffff) | ((mpidr >> 32) & 0xff) << 32;
        self.irouter[i - FIRST_SPI as usize].set(affinity);
        true
    }

    /// The MPIDR affinity an SPI is routed to.
    pub fn routed_to(&self, intid: u32) -> Option<u64> {
        let i = intid.checked_sub(FIRST_SPI)? as usize;
        let r = self.irouter.get(i)?.get();
        Some((r & 0x00ff_ffff) | ((r >> 32) & 0xff) << 32)
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
