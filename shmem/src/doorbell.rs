//! Doorbells: how one side tells the other that a ring changed.
//!
//! A doorbell only signals; it carries no data the receiver must trust. The
//! receiver learns what changed from the ring indices it validates anyway, so a
//! spurious, repeated or lost ring is harmless to correctness (a lost one only
//! delays, which is why the polling and "re-notify" paths exist).

use crate::window::{barrier_before_doorbell, Window};

/// Signals the peer that queue `queue` has something new.
pub trait Doorbell {
    /// Ring the doorbell for `queue` (the vring's notify id: rpmsg uses 0 for
    /// the host's RX ring, 1 for its TX ring). Must not block.
    fn ring(&mut self, queue: u16);

    /// Whether the peer only ever polls (no interrupt behind this doorbell), so
    /// the queues can skip the check of whether to ring.
    fn polled(&self) -> bool {
        false
    }
}

/// No interrupt: the peer polls the rings. Ringing does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Polling;

impl Doorbell for Polling {
    fn ring(&mut self, _queue: u16) {}

    fn polled(&self) -> bool {
        true
    }
}

impl<D: Doorbell + ?Sized> Doorbell for &mut D {
    fn ring(&mut self, queue: u16) {
        (**self).ring(queue);
    }
}

/// GICv2 distributor offset of `GICD_SGIR` (Arm IHI 0048B, GICv2 architecture
/// specification, 4.3.15).
pub const GICD_SGIR: usize = 0xF00;

/// A GICv2 software-generated interrupt sent through the distributor's
/// `GICD_SGIR` register (the distributor page mapped as a [`Window`]).
#[derive(Clone, Copy, Debug)]
pub struct Gicv2Sgi<'a> {
    distributor: Window<'a>,
    value: u32,
}

impl<'a> Gicv2Sgi<'a> {
    /// SGI `intid` (0..=15) to the CPU interfaces in `targets` (bit n = CPU n).
    /// `None` if `intid` is not an SGI number.
    pub fn new(distributor: Window<'a>, intid: u8, targets: u8) -> Option<Self> {
        if intid > 15 {
            return None;
        }
        // TargetListFilter = 0 (use the list), CPUTargetList [23:16], NSATT 0,
        // SGIINTID [3:0].
        let value = (u32::from(targets) << 16) | u32::from(intid);
        Some(Self { distributor, value })
    }

    /// The `GICD_SGIR` value this doorbell writes.
    pub fn sgir_value(&self) -> u32 {
        self.value
    }
}

impl Doorbell for Gicv2Sgi<'_> {
    fn ring(&mut self, _queue: u16) {
        barrier_before_doorbell();
        // The register is inside the mapped page or the constructor's caller
        // mapped too little; either way the window refuses rather than stray.
        let _ = self.distributor.write_register(GICD_SGIR, self.value);
    }
}

/// The one register write a GICv3 SGI needs, behind a trait so the encoding is
/// tested on the host and the board (or a test) decides how it is written.
pub trait SgiRegister {
    /// Write `value` to `ICC_SGI1R_EL1`.
    fn write_sgi1r(&mut self, value: u64);
}

/// This core's own `ICC_SGI1R_EL1` system register.
#[cfg(all(target_arch = "aarch64", not(loom)))]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemSgiRegister;

#[cfg(all(target_arch = "aarch64", not(loom)))]
impl SgiRegister for SystemSgiRegister {
    fn write_sgi1r(&mut self, value: u64) {
        crate::window::write_icc_sgi1r_el1(value);
    }
}

/// A GICv3 Group 1 SGI written to `ICC_SGI1R_EL1`.
#[derive(Clone, Copy, Debug)]
pub struct Gicv3Sgi<R> {
    register: R,
    value: u64,
}

impl<R: SgiRegister> Gicv3Sgi<R> {
    /// SGI `intid` (0..=15) to the cores `aff3.aff2.aff1.n` for each bit n set
    /// in `target_list` (n = Aff0, 0..=15). `None` if `intid` is not an SGI.
    ///
    /// Encoding (Arm IHI 0069, `ICC_SGI1R_EL1`): TargetList bits 15:0, Aff1
    /// bits 23:16, INTID bits 27:24, Aff2 bits 39:32, IRM bit 40 = 0, RS bits
    /// 47:44 = 0, Aff3 bits 55:48.
    pub fn new(
        register: R,
        intid: u8,
        aff3: u8,
        aff2: u8,
        aff1: u8,
        target_list: u16,
    ) -> Option<Self> {
        if intid > 15 {
            return None;
        }
        let value = u64::from(target_list)
            | (u64::from(aff1) << 16)
            | (u64::from(intid) << 24)
            | (u64::from(aff2) << 32)
            | (u64::from(aff3) << 48);
        Some(Self { register, value })
    }

    /// The `ICC_SGI1R_EL1` value this doorbell writes.
    pub fn sgi1r_value(&self) -> u64 {
        self.value
    }
}

impl<R: SgiRegister> Doorbell for Gicv3Sgi<R> {
    fn ring(&mut self, _queue: u16) {
        // A system-register write is not ordered by `dmb` against the ring
        // stores: complete them first (`dsb`), as Linux does before an IPI.
        barrier_before_doorbell();
        self.register.write_sgi1r(self.value);
    }
}

/// A mailbox doorbell: one 32-bit register write (an i.MX MU transmit register,
/// a GIC SPI "set pending" register used as a software mailbox, ...). The value
/// written is `base_value | queue`, so the receiver can tell the rings apart.
#[derive(Clone, Copy, Debug)]
pub struct MailboxRegister<'a> {
    registers: Window<'a>,
    offset: usize,
    base_value: u32,
}

impl<'a> MailboxRegister<'a> {
    /// Writes to the register at `offset` inside `registers`.
    pub fn new(registers: Window<'a>, offset: usize, base_value: u32) -> Self {
        Self {
            registers,
            offset,
            base_value,
        }
    }
}

impl Doorbell for MailboxRegister<'_> {
    fn ring(&mut self, queue: u16) {
        barrier_before_doorbell();
        let _ = self
            .registers
            .write_register(self.offset, self.base_value | u32::from(queue));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::window::Word;

    #[test]
    fn gicv2_writes_sgir() {
        let page: Vec<Word> = (0..512).map(|_| Word::new(0)).collect();
        let gicd = Window::from_words(&page);
        let mut sgi = Gicv2Sgi::new(gicd, 7, 0b0100).unwrap();
        sgi.ring(0);
        assert_eq!(gicd.read_u32(GICD_SGIR).unwrap(), 0x0004_0007);
        assert!(Gicv2Sgi::new(gicd, 16, 1).is_none());
    }

    #[test]
    fn gicv2_on_a_too_small_mapping_writes_nothing() {
        let page: Vec<Word> = (0..4).map(|_| Word::new(0)).collect();
        let mut sgi = Gicv2Sgi::new(Window::from_words(&page), 1, 1).unwrap();
        sgi.ring(0);
        assert!(page
            .iter()
            .all(|w| w.load(core::sync::atomic::Ordering::Relaxed) == 0));
    }

    struct Recorder(Vec<u64>);
    impl SgiRegister for Recorder {
        fn write_sgi1r(&mut self, value: u64) {
            self.0.push(value);
        }
    }

    #[test]
    fn gicv3_encodes_affinity_and_intid() {
        let mut sgi = Gicv3Sgi::new(Recorder(Vec::new()), 9, 0x12, 0x34, 0x56, 0b1010).unwrap();
        sgi.ring(1);
        assert_eq!(sgi.register.0, vec![0x0012_0034_0956_000a]);
        assert!(Gicv3Sgi::new(Recorder(Vec::new()), 16, 0, 0, 0, 1).is_none());
    }

    #[test]
    fn mailbox_writes_value_with_queue() {
        let regs: Vec<Word> = (0..8).map(|_| Word::new(0)).collect();
        let w = Window::from_words(&regs);
        let mut mb = MailboxRegister::new(w, 0x20, 0x8000_0000);
        mb.ring(1);
        assert_eq!(w.read_u32(0x20).unwrap(), 0x8000_0001);
    }
}
