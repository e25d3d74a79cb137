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

/// A four-instruction trampoline that enters `entry` with `x0 = arg`: what a
/// core released from a spin table needs, since that protocol passes no
/// argument (`ldr x0, =arg; ldr x1, =entry; br x1`). 32 bytes, position
/// independent; write it where the started core may run.
pub fn trampoline(arg: u64, entry: u64) -> [u8; 32] {
    const LDR_X0_PC16: u32 = 0x5800_0080; // LDR (literal) x0, pc+16
    const LDR_X1_PC20: u32 = 0x5800_00a1; // LDR (literal) x1, pc+20 (from +4)
    const BR_X1: u32 = 0xd61f_0020;
    const NOP: u32 = 0xd503_201f;
    let mut code = [0u8; 32];
    for (i, word) in [LDR_X0_PC16, LDR_X1_PC20, BR_X1, NOP].iter().enumerate() {
        code[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    code[16..24].copy_from_slice(&arg.to_le_bytes());
    code[24..32].copy_from_slice(&entry.to_le_bytes());
    code
}

/// Releases a core waiting on a spin table (`enable-method = "spin-table"`):
/// writes `entry` to its `cpu-release-addr`, makes it visible and wakes it.
///
/// # Safety
///
/// `release_addr` must be the waiting core's release address from the device
/// tree, and `entry` code (see [`trampoline`]) that core may run, placed whole
/// and cleaned to the point of coherency.
#[cfg(target_arch = "aarch64")]
pub unsafe fn spin_table_release(release_addr: u64, entry: u64) {
    // SAFETY: the caller guarantees the release address is the core's own
    // mailbox, which the waiting core only reads.
    unsafe { core::ptr::write_volatile(release_addr as *mut u64, entry) };
    crate::cache::clean_invalidate(release_addr as usize, 8);
    // SAFETY: SEV only wakes cores waiting in WFE.
    unsafe { core::arch::asm!("sev") };
}

/// How a secondary core is started: PSCI `CPU_ON`, or the spin table's
/// release address (`cpu-release-addr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreStart {
    /// `CPU_ON` through this conduit.
    Psci(Conduit),
    /// The core waits on a spin table at this release address.
    SpinTable(u64),
}

/// Starts core `mpidr` at `entry` with `x0 = arg`, the one routine the boot
/// stage and partitions share. A spin-table core takes no argument, so it is
/// released into a trampoline (see [`trampoline`]) written at `trampoline_at`.
/// Returns whether the core was started (PSCI may refuse).
///
/// # Safety
///
/// `entry` is code that expects `x0 = arg` and may run on that core with the
/// caller's memory; the core is not running. For a spin table, the release
/// address is the core's own from the device tree, and `trampoline_at` is 32
/// bytes of memory that core may execute and nothing else uses.
#[cfg(target_arch = "aarch64")]
pub unsafe fn start_core(
    how: CoreStart,
    mpidr: u64,
    entry: u64,
    arg: u64,
    trampoline_at: u64,
) -> bool {
    match how {
        // SAFETY: the caller's contract is `psci_cpu_on`'s.
        CoreStart::Psci(conduit) => unsafe { psci_cpu_on(conduit, mpidr, entry, arg) }.is_ok(),
        CoreStart::SpinTable(release) => {
            let code = trampoline(arg, entry);
            // SAFETY: the caller gives us the 32 bytes at `trampoline_at`; the
            // code is written whole and made visible to instruction fetch
            // before the core is released into it.
            unsafe {
                core::ptr::copy_nonoverlapping(code.as_ptr(), trampoline_at as *mut u8, code.len());
                crate::cache::clean_invalidate(trampoline_at as usize, code.len());
                core::arch::asm!("ic iallu", "dsb sy", "isb");
                spin_table_release(release, trampoline_at);
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trampoline_literals_sit_where_its_loads_read_them() {
        let t = trampoline(0x1122_3344_5566_7788, 0x4000_0000);
        // The first LDR (at 0) reads pc+16, the second (at 4) pc+20 = 24.
        assert_eq!(
            u64::from_le_bytes(t[16..24].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        assert_eq!(
            u64::from_le_bytes(t[24..32].try_into().unwrap()),
            0x4000_0000
        );
        let imm19 = |w: u32| ((w >> 5) & 0x7ffff) * 4;
        let w0 = u32::from_le_bytes(t[0..4].try_into().unwrap());
        let w1 = u32::from_le_bytes(t[4..8].try_into().unwrap());
        assert_eq!((imm19(w0), w0 & 0x1f), (16, 0));
        assert_eq!((4 + imm19(w1), w1 & 0x1f), (24, 1));
    }
}
