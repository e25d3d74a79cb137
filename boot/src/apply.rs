//! Carries out what `partitioner::prepare` decided: copies every image into
//! place, writes every partition's device tree, clears the link windows,
//! routes the interrupts and starts each partition's boot core. Everything
//! here touches the machine; nothing here decides.

use boards::gic::{self, Gicv2Distributor, Gicv3Distributor, Version};
use boards::power::Conduit;
use boards::uart::Console;
use partitioner::prepare::{Prepared, Start};
use partitioner::rules::overlaps;
use ufmt::uwriteln;

extern "C" {
    /// start.s: enters an OS at `entry` with `x0 = dtb`, `x1-x3 = 0`.
    fn enter_partition(entry: usize, dtb: usize) -> !;
}

/// What to apply, and where from.
pub(crate) struct Work {
    /// What to do.
    pub(crate) prepared: Prepared,
    /// Where the packed file is: each load's source is an offset in it.
    pub(crate) package: usize,
    /// How to start cores, if the board has PSCI.
    pub(crate) conduit: Option<Conduit>,
}

/// Copies every image into place, writes the device trees, clears the windows,
/// routes the interrupts and starts every partition, the boot core's own last.
pub(crate) fn apply(con: &mut Console, work: Work) -> ! {
    let Work {
        prepared,
        package,
        conduit,
    } = work;
    let mut loads = prepared.loads;
    // Copy in an order where no copy overwrites a packed source still to read.
    while !loads.is_empty() {
        let ready = loads.iter().position(|l| {
            loads
                .iter()
                .filter(|o| !core::ptr::eq(*o, l))
                .all(|o| !overlaps(l.written(), ((package + o.src) as u64, o.len as u64)))
        });
        let Some(i) = ready else {
            let _ = uwriteln!(
                con,
                "plan refused: the images overlap each other's packed copies; nothing started"
            );
            halt_with(con)
        };
        let l = loads.swap_remove(i);
        // SAFETY: `prepare` checked that the destination lies inside the
        // partition's memory, which the plan (re-checked against this board)
        // reserves for it and which nothing else uses while the boot stage runs
        // from its own region; the source lies inside the loaded packed image,
        // and no later copy reads what this one overwrites. `copy` allows overlap.
        unsafe {
            core::ptr::copy((package + l.src) as *const u8, l.dest as *mut u8, l.len);
            core::ptr::write_bytes((l.dest + l.len as u64) as *mut u8, 0, l.zero as usize);
        }
        boards::cache::clean_invalidate(l.dest as usize, l.len + l.zero as usize);
    }
    for (at, blob) in &prepared.trees {
        // SAFETY: the plan keeps DTB_ROOM bytes at `at` inside the partition's
        // memory for its tree, and `prepare` checked the blob fits.
        unsafe { core::ptr::copy_nonoverlapping(blob.as_ptr(), *at as *mut u8, blob.len()) };
        boards::cache::clean_invalidate(*at as usize, blob.len());
    }
    for &(base, size) in &prepared.windows {
        // SAFETY: the window is the link's alone (no partition owns it) and
        // inside DRAM, as re-checked; both sides start from zeros.
        unsafe { core::ptr::write_bytes(base as *mut u8, 0, size as usize) };
        boards::cache::clean_invalidate(base as usize, size as usize);
    }
    // Every range written was cleaned to the point of coherency above; make
    // sure no core fetches stale instructions.
    // SAFETY: invalidating the instruction cache has no other effect.
    unsafe { core::arch::asm!("ic iallu", "dsb sy", "isb") };

    // The distributor is set up once, here, before any OS runs.
    let gic = prepared.controller.as_ref().and_then(|c| {
        let version = Version::from_compatibles(c.compatibles.iter().map(|s| s.as_str()))?;
        Some((version, usize::try_from(c.base).ok()?))
    });
    if let Some((version, base)) = gic {
        for r in &prepared.routes {
            let Some(intid) = gic::spi_id(&r.specifier) else {
                continue;
            };
            let mpidr = r.mpidr;
            // SAFETY: `base` is the distributor the board's device tree names as
            // the root interrupt controller; no OS runs yet, so nothing else
            // touches it.
            let routed = unsafe {
                match version {
                    Version::V3 => {
                        let d = Gicv3Distributor::at(base);
                        d.enable();
                        d.route(intid, mpidr)
                    }
                    Version::V2 => {
                        let d = Gicv2Distributor::at(base);
                        d.enable();
                        d.route(intid, mpidr & 0xff)
                    }
                }
            };
            let _ = uwriteln!(
                con,
                "boot stage: interrupt {} to core {:#x}{}",
                intid,
                mpidr,
                if routed {
                    ""
                } else {
                    " refused by the distributor"
                }
            );
        }
    }
    let me = crate::metal::own_mpidr();
    let mut own = None;
    for start in &prepared.starts {
        let Start {
            mpidr,
            entry,
            dtb,
            release,
            trampoline,
            ..
        } = *start;
        if mpidr == me {
            own = Some((start.name.clone(), entry, dtb));
            continue;
        }
        let _ = uwriteln!(
            con,
            "boot stage: starting {} on core {:#x} at {:#x}",
            start.name.as_str(),
            mpidr,
            entry
        );
        let how = match (conduit, release) {
            (Some(conduit), _) => Some(boards::power::CoreStart::Psci(conduit)),
            (None, Some(release)) => Some(boards::power::CoreStart::SpinTable(release)),
            (None, None) => None,
        };
        // SAFETY: `entry` is the entry of the image just placed whole in that
        // partition's memory, which expects x0 = its device tree; the core is
        // one the plan gives that partition and has not been started. A
        // spin-table core enters through a trampoline at the end of the room
        // the plan keeps for the tree (checked to fit), inside the
        // partition's memory; the release address is the core's own.
        let started = how.is_some_and(|how| unsafe {
            boards::power::start_core(how, mpidr, entry, dtb, trampoline)
        });
        if !started {
            let _ = uwriteln!(con, "boot stage: core {:#x} did not start", mpidr);
        }
    }
    let Some((name, entry, dtb)) = own else {
        let _ = uwriteln!(
            con,
            "boot stage: every partition started; this core is no partition's and stops"
        );
        halt_with(con)
    };
    // With QEMU's -icount the counter advances with instructions retired, which
    // makes this a deterministic measure of the boot stage's cost.
    let timer = boards::timer::GenericTimer;
    let _ = uwriteln!(
        con,
        "boot stage: hand-off at counter tick {} of {} Hz",
        timer.ticks(),
        timer.frequency()
    );
    let _ = uwriteln!(
        con,
        "boot stage: entering {} at {:#x}; the boot stage is done",
        name.as_str(),
        entry
    );
    con.flush();
    // SAFETY: as for the other partitions; this core is its boot core. The boot
    // stage's region is left behind and nothing of it runs again.
    unsafe { enter_partition(entry as usize, dtb as usize) }
}

fn halt_with(con: &mut Console) -> ! {
    con.flush();
    loop {
        aarch64_cpu::asm::wfe();
    }
}
