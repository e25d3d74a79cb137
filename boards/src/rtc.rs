//! The Arm PrimeCell PL031 real-time clock (QEMU virt has one at 0x0901_0000,
//! interrupt SPI 2): a seconds counter with one match register whose alarm
//! is a level interrupt that stays raised until cleared. Register map: the
//! PL031 TRM (DDI 0224), section 3.3.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// PL031 registers.
    pub Pl031 {
        /// RTCDR: the current count, in seconds.
        (0x00 => data: ReadOnly<u32>),
        /// RTCMR: the alarm fires when the count equals this.
        (0x04 => match_value: ReadWrite<u32>),
        /// RTCLR: loads the count.
        (0x08 => _load),
        /// RTCCR: bit 0 starts the counter.
        (0x0c => control: ReadWrite<u32>),
        /// RTCIMSC: bit 0 unmasks the alarm interrupt.
        (0x10 => mask: ReadWrite<u32>),
        /// RTCRIS: bit 0, the alarm is raised.
        (0x14 => raw_status: ReadOnly<u32>),
        (0x18 => _masked_status),
        /// RTCICR: writing bit 0 clears the alarm.
        (0x1c => clear: WriteOnly<u32>),
        (0x20 => @END),
    }
}

impl Pl031 {
    /// The current count, in seconds.
    pub fn now(&self) -> u32 {
        self.data.get()
    }

    /// Starts the counter (if it is not running) and sets the alarm for
    /// second `at`, with its interrupt unmasked.
    pub fn set_alarm(&self, at: u32) {
        self.control.set(1);
        self.match_value.set(at);
        self.mask.set(1);
    }

    /// Whether the alarm is raised.
    pub fn alarm_raised(&self) -> bool {
        self.raw_status.get() & 1 != 0
    }

    /// Lowers a raised alarm.
    pub fn clear_alarm(&self) {
        self.clear.set(1);
    }
}
