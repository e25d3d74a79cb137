//! i.MX UART (i.MX8M Plus reference manual, UART chapter), transmit side.

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    UCR1 [
        UARTEN OFFSET(0) NUMBITS(1) [],
    ],
    UCR2 [
        /// Software reset, active low: 1 = out of reset.
        SRST OFFSET(0) NUMBITS(1) [],
        TXEN OFFSET(2) NUMBITS(1) [],
    ],
    USR2 [
        /// Transmitter complete.
        TXDC OFFSET(3) NUMBITS(1) [],
    ],
    UTS [
        TXFULL OFFSET(4) NUMBITS(1) [],
    ],
];

register_structs! {
    /// i.MX UART register block.
    pub ImxUart {
        (0x00 => _reserved0),
        (0x40 => utxd: WriteOnly<u32>),
        (0x44 => _reserved1),
        (0x80 => ucr1: ReadWrite<u32, UCR1::Register>),
        (0x84 => ucr2: ReadWrite<u32, UCR2::Register>),
        (0x88 => _reserved2),
        (0x98 => usr2: ReadOnly<u32, USR2::Register>),
        (0x9c => _reserved3),
        (0xb4 => uts: ReadOnly<u32, UTS::Register>),
        (0xb8 => @END),
    }
}

impl ImxUart {
    /// Turns the UART and its transmitter on, keeping the rest of the set-up
    /// (baud rate, receiver) as the firmware left it.
    pub(super) fn enable_transmitter(&self) {
        self.ucr1.modify(UCR1::UARTEN::SET);
        self.ucr2.modify(UCR2::SRST::SET + UCR2::TXEN::SET);
    }

    pub(super) fn write_byte(&self, byte: u8) {
        while self.uts.is_set(UTS::TXFULL) {
            core::hint::spin_loop();
        }
        self.utxd.set(u32::from(byte));
    }

    pub(super) fn flush(&self) {
        while !self.usr2.is_set(USR2::TXDC) {
            core::hint::spin_loop();
        }
    }
}
