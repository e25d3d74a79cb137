//! BCM2835 auxiliary mini-UART, transmit side. Offsets are relative to the
//! `uart1` node's `reg` (AUX base + 0x40). Register map: BCM2835 ARM Peripherals,
//! section 2.2.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    LSR [
        /// Transmitter idle: FIFO empty and the last bit sent.
        TX_IDLE OFFSET(6) NUMBITS(1) [],
        /// Transmit FIFO can accept at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
    ],
];

register_structs! {
    /// Mini-UART register block.
    pub MiniUart {
        (0x00 => io: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x14 => lsr: ReadOnly<u32, LSR::Register>),
        (0x18 => @END),
    }
}

impl MiniUart {
    pub(super) fn write_byte(&self, byte: u8) {
        while !self.lsr.is_set(LSR::TX_EMPTY) {
            core::hint::spin_loop();
        }
        self.io.set(u32::from(byte));
    }

    pub(super) fn flush(&self) {
        while !self.lsr.is_set(LSR::TX_IDLE) {
            core::hint::spin_loop();
        }
    }
}
