//! Powering a board off: PSCI `SYSTEM_OFF`, or the BCM2835 watchdog on the
//! Raspberry Pi, whose firmware has no PSCI.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::ReadWrite;

/// How PSCI calls reach the firmware, as the device tree's `/psci/method` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc`: a hypervisor (or QEMU's built-in PSCI at EL2) answers.
    Hvc,
    /// `smc`: the secure monitor (TF-A, or QEMU's built-in PSCI at EL3) answers.
    Smc,
}

impl Conduit {
    /// Parses a `/psci` node's `method` property value.
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "hvc" => Some(Conduit::Hvc),
            "smc" => Some(Conduit::Smc),
            _ => None,
        }
    }

    /// The device-tree spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Conduit::Hvc => "hvc",
            Conduit::Smc => "smc",
        }
    }
}

/// Asks the PSCI firmware to power the system off. Returns only if it refused.
#[cfg(target_arch = "aarch64")]
pub fn psci_system_off(conduit: Conduit) -> smccc::psci::Error {
    let result = match conduit {
        Conduit::Hvc => smccc::psci::system_off::<smccc::Hvc>(),
        Conduit::Smc => smccc::psci::system_off::<smccc::Smc>(),
    };
    match result {
        Ok(()) => smccc::psci::Error::Denied,
        Err(e) => e,
    }
}

/// Starts core `mpidr` at `entry` with `context` in its `x0`, through PSCI
/// `CPU_ON`. It starts at the caller's exception level with the MMU off.
///
/// # Safety
///
/// `entry` must be the entry point of code placed, whole, in memory that the
/// started core may run from (an image the boot plan put in its partition's
/// memory), expecting `x0 = context`; the core must not be running.
#[cfg(target_arch = "aarch64")]
pub unsafe fn psci_cpu_on(
    conduit: Conduit,
    mpidr: u64,
    entry: u64,
    context: u64,
) -> Result<(), smccc::psci::Error> {
    match conduit {
        Conduit::Hvc => smccc::psci::cpu_on::<smccc::Hvc>(mpidr, entry, context),
        Conduit::Smc => smccc::psci::cpu_on::<smccc::Smc>(mpidr, entry, context),
    }
}

register_structs! {
    /// The BCM2835 power-management block's reset registers (offsets from the
    /// `brcm,bcm2835-pm` / `-pm-wdt` node's first `reg`).
    pub Bcm2835Pm {
        (0x00 => _reserved0),
        (0x1c => rstc: ReadWrite<u32>),
        (0x20 => rsts: ReadWrite<u32>),
        (0x24 => wdog: ReadWrite<u32>),
        (0x28 => @END),
    }
}

/// Every write to the PM block must carry this password in its top byte.
const PM_PASSWORD: u32 = 0x5a00_0000;
/// RSTC: the watchdog-reset configuration field.
const PM_RSTC_WRCFG_MASK: u32 = 0x0000_0030;
/// RSTC: a full reset when the watchdog expires.
const PM_RSTC_WRCFG_FULL_RESET: u32 = 0x0000_0020;
/// RSTS: boot partition 63, which the Raspberry Pi firmware treats as "halt".
const PM_RSTS_PARTITION_HALT: u32 = 0x0000_0555;
/// Watchdog ticks (~16 us each) before the reset.
const PM_WDOG_TICKS: u32 = 10;

impl Bcm2835Pm {
    /// Arms the watchdog to reset the SoC into the firmware's halt partition.
    /// The reset follows within microseconds; QEMU run with `-no-reboot` exits.
    pub fn halt(&self) {
        let rsts = self.rsts.get() & !PM_PASSWORD_MASK;
        self.rsts.set(PM_PASSWORD | rsts | PM_RSTS_PARTITION_HALT);
        self.wdog.set(PM_PASSWORD | PM_WDOG_TICKS);
        let rstc = self.rstc.get() & !(PM_PASSWORD_MASK | PM_RSTC_WRCFG_MASK);
        self.rstc.set(PM_PASSWORD | rstc | PM_RSTC_WRCFG_FULL_RESET);
    }
}

const PM_PASSWORD_MASK: u32 = 0xff00_0000;
