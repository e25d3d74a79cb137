//! The packed payload after the boot stage: find it, open and check the boot
//! plan against the hardware found at boot, move the boot stage out of the
//! partitions' way, and hand what to do (`partitioner::prepare`) to
//! [`crate::apply`]. Nothing is started when any part of it does not fit.

use aarch64_cpu::registers::Readable;
use amp_plan::dt::DeviceTree;
use amp_plan::pack::{Entry, PACK_ALIGN};
use amp_plan::Plan;
use boards::power::Conduit;
use boards::uart::Console;
use boards::Board;
use partitioner::prepare::{self, Refusal};
use partitioner::recheck::Mismatch;
use ufmt::{uwrite, uwriteln};

use crate::apply::Work;

extern "C" {
    /// End of the boot stage's own image (code, data, bss, stack), from link.ld.
    static __image_end: u8;
    /// Start of the image.
    static __image_start: u8;
    /// start.s: copies the boot stage to `base` and starts it again there.
    fn relocate_and_restart(base: usize, dtb: usize, package: usize) -> !;
}

/// The boot stage's own footprint in bytes.
fn own_size() -> usize {
    // Only the linker symbols' addresses are taken, never their contents.
    (&raw const __image_end as usize) - (&raw const __image_start as usize)
}

/// The packed file's length, from the Image header `pack` widened.
fn packed_len(package: usize) -> usize {
    // SAFETY: the Image header at `package` is ours (start.s); `pack` set its
    // image_size field (offset 16) to the whole packed file's length.
    unsafe { core::ptr::read_volatile((package + 16) as *const u64) as usize }
}

/// The packed file from its table of contents on, and the table's file offset.
fn packed_tail(package: usize) -> Option<(&'static [u8], usize)> {
    let toc = own_size().next_multiple_of(PACK_ALIGN);
    let total = packed_len(package);
    if total <= toc {
        return None;
    }
    // SAFETY: the loader placed the whole file (image_size bytes) at `package`.
    // The part from `toc` on lies past the boot stage's .bss and stack, and
    // nothing writes it until `apply`, which no longer reads through this slice.
    Some((
        unsafe { core::slice::from_raw_parts((package + toc) as *const u8, total - toc) },
        toc,
    ))
}

/// What to do once the plan is known good.
pub(crate) enum Next {
    /// No plan packed: a bare boot stage.
    Nothing,
    /// Refused (the reason is printed): start nothing.
    Refuse,
    /// Move the boot stage to its region first.
    Relocate { to: usize, package: usize },
    /// Everything prepared: copy, write, start.
    Apply(Work),
}

/// Finds, opens and checks the plan; on the first pass (`package == 0`, the
/// packed image is where the boot stage runs) asks to move out of the
/// partitions' way, on the second prepares everything to apply.
pub(crate) fn locate(
    con: &mut Console,
    tree: &DeviceTree<'_>,
    dtb: &[u8],
    board: Option<&Board>,
    image_base: usize,
    package: usize,
) -> Next {
    let first = package == 0;
    let package = if first { image_base } else { package };
    let Some((tail, toc)) = packed_tail(package) else {
        let _ = uwriteln!(con, "plan: none packed (a bare boot stage)");
        return Next::Nothing;
    };
    let opened = match prepare::open(tail, toc) {
        Ok(o) => o,
        Err(r) => return refuse(con, &r),
    };
    if first {
        summary(con, &opened.plan, &opened.entries);
    }
    let tree_dram: alloc::vec::Vec<(u64, u64)> = tree
        .memory()
        .filter(|r| r.size > 0)
        .map(|r| (r.base, r.size))
        .collect();
    let dram = board.map_or(&tree_dram[..], |b| b.dram(&tree_dram));
    let boot_region = board.and_then(|b| partitioner::rules::boot_region(dram, b.boot_region_size));
    let el = aarch64_cpu::registers::CurrentEL.read(aarch64_cpu::registers::CurrentEL::EL) as u8;
    let region = match prepare::check(&opened.plan, tree, dram, boot_region, el) {
        Ok(r) => r,
        Err(r) => return refuse(con, &r),
    };
    if first {
        let _ = uwriteln!(con, "plan check: the plan fits this board");
        let packed = (package as u64, packed_len(package) as u64);
        return match prepare::relocation(own_size() as u64, packed, region) {
            Ok(to) => Next::Relocate {
                to: to as usize,
                package,
            },
            Err(r) => refuse(con, &r),
        };
    }
    match prepare::prepare(&opened, dtb, tree) {
        Ok(prepared) => Next::Apply(Work {
            prepared,
            package,
            conduit: tree.psci_method().and_then(Conduit::from_method),
        }),
        Err(r) => refuse(con, &r),
    }
}

/// Moves the boot stage to `to` and runs it again there.
pub(crate) fn relocate(con: &mut Console, dtb: usize, to: usize, package: usize) -> ! {
    let _ = uwriteln!(
        con,
        "boot stage: moving to {:#x}, out of the partitions' memory",
        to
    );
    con.flush();
    // SAFETY: `locate` checked that the boot stage fits its region and that the
    // region overlaps neither the packed image nor any partition; nothing there
    // is in use. The device tree and packed image stay where they are.
    unsafe { relocate_and_restart(to, dtb, package) }
}

fn refuse(con: &mut Console, why: &Refusal<'_>) -> Next {
    let _ = uwrite!(con, "plan refused: ");
    let _ = match *why {
        Refusal::EntryLevel {
            partition,
            wanted,
            current,
        } => uwrite!(
            con,
            "partition {} is to be entered at EL{}, but the boot stage runs at EL{}",
            partition,
            wanted,
            current
        ),
        Refusal::Mismatch(m) => {
            mismatch(con, &m);
            Ok(())
        }
        _ => uwrite!(con, "{}", why.as_str().unwrap_or("?")),
    };
    let _ = uwriteln!(con, "; nothing started");
    Next::Refuse
}

fn summary(con: &mut Console, plan: &Plan, entries: &[Entry]) {
    let _ = uwriteln!(
        con,
        "plan: board {}, {} partitions, {} links, {} packed files",
        plan.board.as_str(),
        plan.partitions.len(),
        plan.links.len(),
        entries.len()
    );
    for p in &plan.partitions {
        let _ = uwrite!(con, "plan: partition {} cores", p.name.as_str());
        for &(_, mpidr) in &p.cores {
            let _ = uwrite!(con, " {:#x}", mpidr);
        }
        for &(base, size) in &p.memory {
            let _ = uwrite!(con, ", memory {:#x}+{:#x}", base, size);
        }
        let _ = uwriteln!(con, "");
    }
}

fn mismatch(con: &mut Console, m: &Mismatch<'_>) {
    let _ = match *m {
        Mismatch::NoSuchCore { partition, mpidr } => {
            uwrite!(
                con,
                "partition {}: core with MPIDR {:#x} is not on this board",
                partition,
                mpidr
            )
        }
        Mismatch::MemoryOutsideDram {
            partition,
            base,
            size,
        } => uwrite!(
            con,
            "partition {}: memory {:#x}+{:#x} is outside this board's DRAM",
            partition,
            base,
            size
        ),
        Mismatch::MemoryOverBootStage {
            partition,
            base,
            size,
        } => uwrite!(
            con,
            "partition {}: memory {:#x}+{:#x} overlaps the boot stage's region",
            partition,
            base,
            size
        ),
        Mismatch::NoSuchDevice { partition, path } => {
            uwrite!(
                con,
                "partition {}: device {} is not in this board's device tree",
                partition,
                path
            )
        }
        Mismatch::WindowOutsideDram { link, base, size } => uwrite!(
            con,
            "link {}: window {:#x}+{:#x} is outside free DRAM",
            link,
            base,
            size
        ),
    };
}
