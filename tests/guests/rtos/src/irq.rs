//! The demo RTOS's interrupts (GICv3 boards, at EL1): the alarm of the PL031
//! RTC it owns, an SPI in the distributor every partition shares, and the SGI
//! the plan gives its link as a doorbell.
//!
//! The doorbell: the Linux side of the link is a userspace program, which
//! cannot raise an SGI (`ICC_SGI1R_EL1` needs EL1), so on that link both
//! sides poll. The RTOS still takes the link's SGI in its redistributor, and
//! its second core rings it every 100 ms in the peer's place: the path a
//! kernel-side peer would use, checked to work before and after Linux boots.
//!
//! Why they survive another OS booting. A stock Linux resets the whole
//! distributor once when it boots: it turns group 1 forwarding off and on,
//! disables every SPI and routes them all to its boot core. It never touches
//! the redistributors (SGIs, PPIs) of cores outside its device tree. So:
//! - SGIs and PPIs keep working as they are;
//! - the RTOS checks its SPIs every [`CHECK_MS`] ms with
//!   `Gicv3Distributor::claimed_by` and puts back what was undone (route,
//!   group, enable, group 1 forwarding). The PL031 alarm is a level
//!   interrupt that stays raised until the handler clears it, so an alarm
//!   that falls into the gap is late by at most the check period, not lost.
//!   Start order does not matter: the check runs for the partition's life.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use amp_plan::dt::DeviceTree;
use boards::gic::{self, cpu, Gicv3Distributor, Gicv3Redistributor};
use boards::rtc::Pl031;
use shmem::doorbell::{Doorbell, Gicv3Sgi, SystemSgiRegister};

/// Seconds between two alarms.
pub(crate) const PERIOD: u32 = 1;
/// How often the RTOS checks that its SPIs are still set up.
pub(crate) const CHECK_MS: u64 = 10;
static RTC: AtomicUsize = AtomicUsize::new(0);
/// The redistributor region, for the second core to find its own.
static GICR: AtomicUsize = AtomicUsize::new(0);
static GICR_SIZE: AtomicUsize = AtomicUsize::new(0);
static RTC_SPI: AtomicU32 = AtomicU32::new(0);
/// The second the next alarm is set for.
static NEXT: AtomicU32 = AtomicU32::new(0);
/// Alarms taken.
pub(crate) static ALARMS: AtomicU32 = AtomicU32::new(0);
/// Alarm periods missed (an alarm taken a second or more late).
pub(crate) static GAPS: AtomicU32 = AtomicU32::new(0);
/// Doorbells taken.
pub(crate) static DOORBELLS: AtomicU32 = AtomicU32::new(0);
/// The doorbell's SGI (`NO_SGI`: none).
static DOORBELL_SGI: AtomicU32 = AtomicU32::new(NO_SGI);
const NO_SGI: u32 = u32::MAX;
/// The core that takes the doorbell (`NOBODY` until set up).
static DOORBELL_TARGET: AtomicU64 = AtomicU64::new(NOBODY);
const NOBODY: u64 = u64::MAX;

extern "C" {
    static rtos_vectors: u8;
}

/// What the periodic check found undone.
pub(crate) struct Undone {
    pub(crate) intid: u32,
    pub(crate) was_enabled: bool,
    pub(crate) was_routed_to: u64,
}

/// The interrupts this partition set up.
pub(crate) struct Interrupts {
    gicd: &'static Gicv3Distributor,
    me: u64,
    rtc_spi: u32,
    pub(crate) rtc_second: u32,
    /// The doorbell's SGI, if a link has one.
    pub(crate) doorbell: Option<u32>,
}

fn current_el() -> u64 {
    use aarch64_cpu::registers::{CurrentEL, Readable};
    CurrentEL.read(CurrentEL::EL)
}

impl Interrupts {
    /// Sets up the RTC alarm and the doorbell, if this partition owns a
    /// PL031 on a GICv3 board and runs at EL1; otherwise says why not.
    pub(crate) fn start(tree: &DeviceTree<'_>, me: u64) -> Result<Self, &'static str> {
        let (rtc_base, rtc_spi) = tree
            .owned_devices()
            .filter_map(|path| {
                let node = tree.locate_path(path)?;
                node.compatibles().any(|c| c == "arm,pl031").then_some(())?;
                let base = usize::try_from(node.reg()?.base).ok()?;
                let spi = tree
                    .gic_interrupts(path)
                    .iter()
                    .find_map(|s| gic::spi_id(s))?;
                Some((base, spi))
            })
            .next()
            .ok_or("no PL031 RTC among this partition's devices")?;
        let ic = tree
            .interrupt_controller()
            .filter(|ic| gic::Version::from_compatibles(ic.compatibles()) == Some(gic::Version::V3))
            .ok_or("no GICv3")?;
        if current_el() != 1 {
            return Err("interrupts are only set up at EL1");
        }
        let gicd_base = usize::try_from(ic.reg().ok_or("GIC without reg")?.base)
            .map_err(|_| "GIC out of reach")?;
        let gicr = ic
            .reg_entry(1)
            .flatten()
            .ok_or("GICv3 without redistributors")?;
        // SAFETY: our device tree names this GICv3's redistributor region and
        // distributor; with the MMU off both are device memory for good. Only
        // this core's redistributor is written.
        let (rd, gicd) = unsafe {
            (
                Gicv3Redistributor::find(gicr.base as usize, gicr.size as usize, me)
                    .ok_or("no redistributor for this core")?,
                Gicv3Distributor::at(gicd_base),
            )
        };
        // SAFETY: the vectors are 2 KiB aligned in this image (start.s);
        // VBAR_EL1 only affects this core's exceptions.
        unsafe {
            core::arch::asm!("msr vbar_el1, {}", "isb", in(reg) &raw const rtos_vectors);
        }
        rd.wake();
        rd.enable_private(boards::timer::VIRTUAL_TIMER_PPI);
        let doorbell = tree.links().find_map(|l| l.sgi.filter(|s| *s < 16));
        if let Some(sgi) = doorbell {
            DOORBELL_SGI.store(sgi, Ordering::Relaxed);
            rd.enable_private(sgi);
        }
        cpu::enable();
        if !gicd.claim(rtc_spi, me) {
            return Err("the RTC's interrupt is not an SPI of this GIC");
        }
        RTC.store(rtc_base, Ordering::Relaxed);
        GICR.store(gicr.base as usize, Ordering::Relaxed);
        GICR_SIZE.store(gicr.size as usize, Ordering::Relaxed);
        RTC_SPI.store(rtc_spi, Ordering::Relaxed);
        // SAFETY: our device tree gives this PL031 to this partition alone.
        let rtc = unsafe { Pl031::at(rtc_base) };
        let now = rtc.now();
        // The first alarm fires at once (the count already matches), then
        // one every PERIOD seconds.
        NEXT.store(now, Ordering::Relaxed);
        rtc.set_alarm(now);
        if doorbell.is_some() {
            DOORBELL_TARGET.store(me, Ordering::Release);
            // Wake the second core from its WFE.
            aarch64_cpu::asm::sev();
        }
        // SAFETY: the handler and its vectors are in place; unmask IRQs.
        unsafe { core::arch::asm!("msr daifclr, #2", "isb") };
        Ok(Interrupts {
            gicd,
            me,
            rtc_spi,
            rtc_second: now,
            doorbell,
        })
    }

    /// The RTC's interrupt ID.
    pub(crate) fn rtc_spi(&self) -> u32 {
        self.rtc_spi
    }

    /// Sleeps (WFI) until an interrupt, or `micros` from now at the latest:
    /// a polling loop with nothing to do gives its host CPU back (under QEMU,
    /// to the other partitions' virtual CPUs).
    pub(crate) fn nap(&self, micros: u64) {
        use aarch64_cpu::registers::{Writeable, CNTV_CTL_EL0, CNTV_TVAL_EL0};
        let ticks = boards::timer::GenericTimer.frequency() * micros / 1_000_000;
        CNTV_TVAL_EL0.set(ticks.max(1));
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
        aarch64_cpu::asm::wfi();
        // The handler stopped the timer if it fired; stop it if it did not.
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR);
    }

    /// Puts back our SPI's set-up if another OS undid it; says what it found.
    pub(crate) fn check(&self) -> Option<Undone> {
        if self.gicd.claimed_by(self.rtc_spi, self.me) {
            return None;
        }
        let undone = Undone {
            intid: self.rtc_spi,
            was_enabled: self.gicd.is_enabled(self.rtc_spi),
            was_routed_to: self.gicd.routed_to(self.rtc_spi).unwrap_or(u64::MAX),
        };
        self.gicd.claim(self.rtc_spi, self.me);
        Some(undone)
    }
}

fn alarm() {
    // SAFETY: set in `Interrupts::start` before the alarm was enabled.
    let rtc = unsafe { Pl031::at(RTC.load(Ordering::Relaxed)) };
    rtc.clear_alarm();
    let now = rtc.now();
    let due = NEXT.load(Ordering::Relaxed);
    let next = if now > due {
        // Taken late: the periods in between had no alarm.
        GAPS.fetch_add(now - due, Ordering::Relaxed);
        now + PERIOD
    } else {
        due + PERIOD
    };
    NEXT.store(next, Ordering::Relaxed);
    rtc.set_alarm(next);
    // A second that ticked past `next` meanwhile would never match again.
    if rtc.now() >= next && !rtc.alarm_raised() {
        NEXT.store(rtc.now(), Ordering::Relaxed);
        rtc.set_alarm(rtc.now());
    }
    ALARMS.fetch_add(1, Ordering::Release);
}

/// Called from the IRQ vector (start.s) with IRQs masked.
#[no_mangle]
extern "C" fn rtos_irq() {
    loop {
        let intid = cpu::acknowledge();
        if intid >= cpu::SPURIOUS {
            return;
        }
        if intid == RTC_SPI.load(Ordering::Relaxed) {
            alarm();
        } else if intid == boards::timer::VIRTUAL_TIMER_PPI {
            // A nap's end: stop the timer, whose interrupt is a level.
            use aarch64_cpu::registers::{Writeable, CNTV_CTL_EL0};
            CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR);
        } else if intid == DOORBELL_SGI.load(Ordering::Relaxed) {
            DOORBELLS.fetch_add(1, Ordering::Relaxed);
        }
        cpu::end(intid);
    }
}

/// The second core's work: once the first core takes its doorbell, ring it
/// every 100 ms, sleeping in WFI on its virtual timer in between (a busy
/// wait would take a host CPU from the other partitions under QEMU). Never
/// returns.
pub(crate) fn ring_doorbells(me: u64) -> ! {
    use aarch64_cpu::registers::{Writeable, CNTV_CTL_EL0, CNTV_TVAL_EL0};
    let target = loop {
        match DOORBELL_TARGET.load(Ordering::Acquire) {
            NOBODY => aarch64_cpu::asm::wfe(),
            t => break t,
        }
    };
    let sgi = DOORBELL_SGI.load(Ordering::Relaxed);
    // MPIDR affinity: Aff0 [7:0], Aff1 [15:8], Aff2 [23:16], Aff3 [39:32].
    let aff = |shift: u64| (target >> shift) as u8;
    let doorbell = Gicv3Sgi::new(
        SystemSgiRegister,
        sgi as u8,
        aff(32),
        aff(16),
        aff(8),
        1 << (aff(0) % 16),
    );
    // SAFETY: the region the first core found in our device tree; only this
    // core's redistributor is written.
    let rd = unsafe {
        Gicv3Redistributor::find(
            GICR.load(Ordering::Relaxed),
            GICR_SIZE.load(Ordering::Relaxed),
            me,
        )
    };
    let (Some(mut doorbell), Some(rd)) = (doorbell, rd) else {
        loop {
            aarch64_cpu::asm::wfe();
        }
    };
    rd.wake();
    rd.enable_private(boards::timer::VIRTUAL_TIMER_PPI);
    cpu::enable();
    let period = boards::timer::GenericTimer.frequency() / 10;
    loop {
        doorbell.ring(0);
        CNTV_TVAL_EL0.set(period);
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
        // IRQs stay masked on this core: WFI wakes on the pending timer
        // interrupt, which is taken here by hand.
        aarch64_cpu::asm::wfi();
        let intid = cpu::acknowledge();
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR);
        if intid < cpu::SPURIOUS {
            cpu::end(intid);
        }
    }
}
