//! The packed payload after the boot stage: find it, decode the boot plan and
//! re-check it against the hardware found at boot. Nothing is started when any
//! part of it does not fit.

use alloc::vec::Vec;

use boards::uart::Console;
use boards::Board;
use partitioner::dt::DeviceTree;
use partitioner::pack::{self, EntryKind, PACK_ALIGN};
use partitioner::recheck::{recheck, Mismatch};
use ufmt::{uwrite, uwriteln};

extern "C" {
    /// End of the boot stage's own image (code, data, bss, stack), from link.ld.
    static __image_end: u8;
    /// Start of the image.
    static __image_start: u8;
}

/// The packed file from its table of contents on, and the table's file offset.
fn packed_tail(image_base: usize) -> Option<(&'static [u8], usize)> {
    // Only the linker symbols' addresses are taken, never their contents.
    let own = (&raw const __image_end as usize) - (&raw const __image_start as usize);
    let toc = own.next_multiple_of(PACK_ALIGN);
    // SAFETY: the Image header at image_base is ours (start.s); `pack` set its
    // image_size field (offset 16) to the whole packed file's length.
    let total = unsafe { core::ptr::read_volatile((image_base + 16) as *const u64) } as usize;
    if total <= toc {
        return None;
    }
    // SAFETY: the loader placed the whole file (image_size bytes) at image_base.
    // The part from `toc` on lies past our .bss and stack, so nothing writes it
    // while this shared slice lives.
    Some((
        unsafe { core::slice::from_raw_parts((image_base + toc) as *const u8, total - toc) },
        toc,
    ))
}

/// Decodes and re-checks the packed plan, printing what it finds.
pub(crate) fn run(
    con: &mut Console,
    tree: &DeviceTree<'_>,
    board: Option<&Board>,
    image_base: usize,
) {
    let Some((tail, toc)) = packed_tail(image_base) else {
        let _ = uwriteln!(con, "plan: none packed (a bare boot stage)");
        return;
    };
    let entries = match pack::entries(tail, toc) {
        Ok(e) => e,
        Err(e) => {
            let _ = uwriteln!(con, "plan refused: {}; nothing started", e.as_str());
            return;
        }
    };
    let Some(bytes) = entries
        .iter()
        .find(|e| e.kind == EntryKind::Plan)
        .and_then(|e| pack::payload(tail, toc, e))
    else {
        let _ = uwriteln!(
            con,
            "plan refused: the packed image holds no plan; nothing started"
        );
        return;
    };
    let plan = match partitioner::planfile::decode(bytes) {
        Ok(p) => p,
        Err(e) => {
            let _ = uwriteln!(con, "plan refused: {}; nothing started", e.as_str());
            return;
        }
    };
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

    let mut dram: Vec<(u64, u64)> = tree
        .memory()
        .filter(|r| r.size > 0)
        .map(|r| (r.base, r.size))
        .collect();
    if dram.is_empty() {
        dram.extend(board.map_or(&[][..], |b| b.default_dram));
    }
    let boot_region =
        board.and_then(|b| partitioner::rules::boot_region(&dram, b.boot_region_size));
    match recheck(&plan, tree, &dram, boot_region) {
        Ok(()) => {
            let _ = uwriteln!(con, "plan check: the plan fits this board");
            let _ = uwriteln!(
                con,
                "plan: starting partitions is not in this build yet; nothing started"
            );
        }
        Err(m) => {
            let _ = uwrite!(con, "plan refused: ");
            mismatch(con, &m);
            let _ = uwriteln!(con, "; nothing started");
        }
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
