//! Arm PrimeCell UART (PL011), transmit side. Register map: PL011 TRM, 3.2.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) [],
    ],
];

register_structs! {
    /// PL011 register block.
    pub Pl011 {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => @END),
    }
}

impl Pl011 {
    pub(super) fn write_byte(&self, byte: u8) {
        while self.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.dr.set(u32::from(byte));
    }

    pub(super) fn flush(&self) {
        while self.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}
