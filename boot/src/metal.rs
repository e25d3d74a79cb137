//! Entry, exception reporting and the first-light banner on bare metal.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use aarch64_cpu::registers::{CurrentEL, Readable};
use amp_plan::dt::{self, DeviceTree, Located, NodeName};
use boards::uart::{Console, UartKind};
use boards::{power, Board};
use ufmt::{uwrite, uwriteln};

use crate::locate::{self, Next};

core::arch::global_asm!(include_str!("start.s"));

/// Largest device tree accepted from a loader.
const MAX_DTB_SIZE: usize = 2 << 20;

/// The console found in the device tree, for the panic and exception paths.
static CONSOLE_BASE: AtomicUsize = AtomicUsize::new(0);
static CONSOLE_KIND: AtomicU8 = AtomicU8::new(0);

const KINDS: [UartKind; 3] = [UartKind::Pl011, UartKind::BcmMini, UartKind::Imx];

fn remember_console(kind: UartKind, base: usize) {
    let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    CONSOLE_KIND.store(index as u8, Ordering::Relaxed);
    CONSOLE_BASE.store(base, Ordering::Release);
}

/// The console, once `boot_main` has found it.
fn console() -> Option<Console> {
    let base = CONSOLE_BASE.load(Ordering::Acquire);
    let kind = KINDS[usize::from(CONSOLE_KIND.load(Ordering::Relaxed)) % KINDS.len()];
    // SAFETY: a non-zero base was stored by `boot_main` after it read this UART's
    // kind and register address from the device tree; only this single core runs
    // and it drives the UART through one `Console` at a time.
    (base != 0).then(|| unsafe { Console::new(kind, base) })
}

/// This core's MPIDR affinity fields, as device trees write them in `reg`.
pub(crate) fn own_mpidr() -> u64 {
    boards::mmio::own_affinity()
}

/// Called by `start.s` with the loader's `x0`, the address the image runs at,
/// and where the packed image is (0: right here, as loaded).
#[no_mangle]
extern "C" fn boot_main(dtb_addr: usize, image_base: usize, package: usize) -> ! {
    let Some(blob) = device_tree_blob(dtb_addr) else {
        // No device tree, so no console to say so on.
        halt();
    };
    let Ok(tree) = DeviceTree::new(blob) else {
        halt()
    };
    let Some((kind, base)) = console_of(&tree) else {
        halt()
    };
    remember_console(kind, base);
    let Some(mut con) = console() else { halt() };

    let board = Board::from_compatibles(tree.compatibles());
    if package == 0 {
        banner(&mut con, &tree, board, dtb_addr, image_base);
    } else {
        let _ = uwriteln!(
            con,
            "boot stage: running from its own region at {:#x}",
            image_base
        );
    }
    match locate::locate(&mut con, &tree, blob, board, image_base, package) {
        Next::Nothing | Next::Refuse => power_off(&mut con, &tree, board),
        Next::Relocate { to, package } => locate::relocate(&mut con, dtb_addr, to, package),
        // From here on neither the device tree nor the packed image is read
        // through a reference: applying overwrites both.
        Next::Apply(work) => crate::apply::apply(&mut con, work),
    }
}

/// The device tree at `addr`, if its header is sane.
fn device_tree_blob(addr: usize) -> Option<&'static [u8]> {
    if addr == 0 || addr % 8 != 0 {
        return None;
    }
    // SAFETY: the arm64 boot protocol puts a device tree (8-byte aligned, in RAM
    // the kernel does not own) at x0; we read its 8-byte header first to learn
    // its size and accept only a tree with the FDT magic and a sane size.
    let header = unsafe { core::ptr::read_volatile(addr as *const [u8; 8]) };
    let size = dt::total_size(&header).filter(|s| (40..=MAX_DTB_SIZE).contains(s))?;
    // SAFETY: the header says the tree spans `size` bytes from `addr`; nothing
    // writes to it while the boot stage runs.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, size) })
}

/// The console UART named by `/chosen/stdout-path`: its kind and address.
fn console_of(tree: &DeviceTree<'_>) -> Option<(UartKind, usize)> {
    let node = tree.stdout()?;
    let kind = UartKind::from_compatibles(node.compatibles())?;
    let base = usize::try_from(node.reg()?.base).ok()?;
    Some((kind, base))
}

fn banner(
    con: &mut Console,
    tree: &DeviceTree<'_>,
    board: Option<&Board>,
    dtb_addr: usize,
    image_base: usize,
) {
    let _ = uwriteln!(con, "\namp-boot {}: first light", env!("CARGO_PKG_VERSION"));
    let _ = uwriteln!(
        con,
        "board: {} ({})",
        board.map_or("unknown", |b| b.name),
        tree.model().unwrap_or("no model")
    );
    let _ = uwriteln!(
        con,
        "entry: EL{}, image at {:#x}, device tree at {:#x} ({} bytes)",
        CurrentEL.read(CurrentEL::EL),
        image_base,
        dtb_addr,
        tree.size()
    );

    let _ = uwriteln!(con, "cpus: {}", tree.cpus().count());
    for cpu in tree.cpus() {
        let _ = uwrite!(con, "cpu: ");
        node_name(con, cpu.name);
        let _ = uwrite!(con, " mpidr=");
        match cpu.mpidr {
            Some(m) => {
                let _ = uwrite!(con, "{:#x}", m);
            }
            None => {
                let _ = uwrite!(con, "?");
            }
        }
        let _ = uwrite!(
            con,
            " enable-method={}",
            cpu.enable_method.unwrap_or("none")
        );
        if let Some(addr) = cpu.release_addr {
            let _ = uwrite!(con, " release-addr={:#x}", addr);
        }
        let _ = uwriteln!(con, "");
    }

    let _ = uwriteln!(con, "memory ranges: {}", tree.memory().count());
    for r in tree.memory() {
        let _ = uwriteln!(
            con,
            "memory: {:#x}-{:#x} ({} MiB)",
            r.base,
            r.end(),
            r.size >> 20
        );
    }

    device_line(con, "interrupt-controller", tree.interrupt_controller());
    device_line(con, "console", tree.stdout());

    let _ = uwrite!(con, "start-method:");
    match tree.psci_method() {
        Some(method) => {
            let _ = uwrite!(con, " psci conduit={}", method);
        }
        None => {
            let _ = uwrite!(con, " no psci");
        }
    }
    let spin = tree
        .cpus()
        .filter(|c| c.enable_method == Some("spin-table"))
        .count();
    if spin > 0 {
        let _ = uwrite!(con, ", spin-table for {} cpus", spin);
    }
    let _ = uwriteln!(con, "");
}

pub(crate) fn device_line(con: &mut Console, what: &str, node: Option<Located<'_>>) {
    let _ = uwrite!(con, "{}: ", what);
    let Some(node) = node else {
        let _ = uwriteln!(con, "none");
        return;
    };
    for segment in node.path_segments() {
        let _ = uwrite!(con, "/");
        node_name(con, segment);
    }
    let _ = uwrite!(con, " {}", node.compatible().unwrap_or("?"));
    match node.reg() {
        Some(r) => {
            let _ = uwriteln!(con, " @ {:#x}", r.base);
        }
        None => {
            let _ = uwriteln!(con, " @ ?");
        }
    }
}

fn node_name(con: &mut Console, name: NodeName<'_>) {
    let _ = uwrite!(con, "{}", name.name);
    if let Some(unit) = name.unit_address {
        let _ = uwrite!(con, "@{}", unit);
    }
}

pub(crate) fn power_off(con: &mut Console, tree: &DeviceTree<'_>, board: Option<&Board>) -> ! {
    let method = board.map_or(boards::table::PowerOff::Psci, |b| b.power_off);
    match method {
        boards::table::PowerOff::Psci => {
            if let Some(conduit) = tree.psci_method().and_then(power::Conduit::from_method) {
                let _ = uwriteln!(con, "power-off: psci system-off via {}", conduit.as_str());
                con.flush();
                let _ = power::psci_system_off(conduit);
                let _ = uwriteln!(con, "power-off: psci refused");
            }
        }
        boards::table::PowerOff::Bcm2835Watchdog => {
            let pm = tree
                .find_compatible(&["brcm,bcm2835-pm", "brcm,bcm2835-pm-wdt"])
                .and_then(|n| n.reg());
            if let Some(pm) = pm {
                let _ = uwriteln!(con, "power-off: bcm2835 watchdog halt @ {:#x}", pm.base);
                con.flush();
                // SAFETY: the device tree names this as the SoC's power-management
                // block; nothing else drives it, and the write resets the SoC.
                let pm = unsafe { power::Bcm2835Pm::at(pm.base as usize) };
                pm.halt();
                let mut timer = boards::timer::GenericTimer;
                embedded_hal::delay::DelayNs::delay_ms(&mut timer, 100);
                let _ = uwriteln!(con, "power-off: watchdog did not reset the board");
            }
        }
    }
    let _ = uwriteln!(con, "halted");
    con.flush();
    halt()
}

fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Reached from the exception vectors: reports what happened and stops.
#[no_mangle]
extern "C" fn boot_exception(kind: u64) -> ! {
    if let Some(mut con) = console() {
        let (esr, elr, far) = syndrome();
        let _ = uwriteln!(
            con,
            "\nboot stage: unexpected exception {} (vector), esr={:#x} elr={:#x} far={:#x}; halted",
            kind,
            esr,
            elr,
            far
        );
        con.flush();
    }
    halt()
}

/// ESR, ELR and FAR of the current exception level.
fn syndrome() -> (u64, u64, u64) {
    use aarch64_cpu::registers::*;
    match CurrentEL.read(CurrentEL::EL) {
        1 => (ESR_EL1.get(), ELR_EL1.get(), FAR_EL1.get()),
        2 => (ESR_EL2.get(), ELR_EL2.get(), FAR_EL2.get()),
        _ => (ESR_EL3.get(), ELR_EL3.get(), FAR_EL3.get()),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if let Some(mut con) = console() {
        let _ = uwrite!(con, "\nboot stage panicked");
        if let Some(loc) = info.location() {
            let _ = uwrite!(con, " at {}:{}", loc.file(), loc.line());
        }
        let _ = uwriteln!(con, "; halted");
        con.flush();
    }
    halt()
}
