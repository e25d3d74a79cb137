//! The packed payload after the boot stage: find it, decode the boot plan,
//! re-check it against the hardware found at boot, and apply it: move the boot
//! stage out of the partitions' way, place every image, write every partition's
//! device tree, clear the link windows and start each partition's boot core.
//! Nothing is started when any part of it does not fit.

use alloc::vec::Vec;

use aarch64_cpu::registers::Readable;
use amp_plan::dt::DeviceTree;
use amp_plan::pack::{self, Entry, EntryKind, PACK_ALIGN};
use amp_plan::{ImageKind, Plan};
use boards::power::Conduit;
use boards::uart::Console;
use boards::Board;
use partitioner::elf::Elf;
use partitioner::recheck::{recheck, Mismatch};
use partitioner::rules::overlaps;
use partitioner::tree::Tree;
use ufmt::{uwrite, uwriteln};

extern "C" {
    /// End of the boot stage's own image (code, data, bss, stack), from link.ld.
    static __image_end: u8;
    /// Start of the image.
    static __image_start: u8;
    /// start.s: copies the boot stage to `base` and starts it again there.
    fn relocate_and_restart(base: usize, dtb: usize, package: usize) -> !;
    /// start.s: enters an OS at `entry` with `x0 = dtb`, `x1-x3 = 0`.
    fn enter_partition(entry: usize, dtb: usize) -> !;
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
    Apply(Prepared),
}

/// One copy into a partition's memory: `len` bytes from `src` to `dest`, then
/// `zero` bytes of zeros.
struct Copy {
    dest: u64,
    src: usize,
    len: usize,
    zero: u64,
}

/// Everything `apply` needs, owned: after this no device-tree or package
/// reference is used, since applying overwrites both.
pub(crate) struct Prepared {
    copies: Vec<Copy>,
    /// Device trees to write: `(address, blob)`.
    dtbs: Vec<(u64, Vec<u8>)>,
    /// Windows to clear: `(base, size)`.
    windows: Vec<(u64, u64)>,
    /// Partitions to start.
    starts: Vec<Start>,
    conduit: Option<Conduit>,
    /// The interrupt distributor and the SPIs to route: `(interrupt ID, MPIDR)`.
    gic: Option<(Gic, usize)>,
    routes: Vec<(u32, u64)>,
}

/// One partition to start.
struct Start {
    name: alloc::string::String,
    /// Its boot core.
    mpidr: u64,
    entry: u64,
    dtb: u64,
    /// The boot core's spin-table release address, on boards without PSCI.
    release: Option<u64>,
}

/// Which distributor the board has.
#[derive(Clone, Copy)]
enum Gic {
    V2,
    V3,
}

fn refuse(con: &mut Console, why: &str) -> Next {
    let _ = uwriteln!(con, "plan refused: {}; nothing started", why);
    Next::Refuse
}

/// Finds, decodes and re-checks the plan; on the first pass (`package == 0`,
/// the packed image is where the boot stage runs) asks to move out of the
/// partitions' way, on the second prepares everything to apply.
pub(crate) fn prepare(
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
    let entries = match pack::entries(tail, toc) {
        Ok(e) => e,
        Err(e) => return refuse(con, e.as_str()),
    };
    let find = |kind: EntryKind, partition: u32| -> Option<&'static [u8]> {
        let e = entries
            .iter()
            .find(|e| e.kind == kind && e.partition == partition)?;
        pack::payload(tail, toc, e)
    };
    let Some(bytes) = find(EntryKind::Plan, 0) else {
        return refuse(con, "the packed image holds no plan");
    };
    let plan = match amp_plan::format::decode(bytes) {
        Ok(p) => p,
        Err(e) => return refuse(con, e.as_str()),
    };
    if first {
        summary(con, &plan, &entries);
    }
    let tree_dram: Vec<(u64, u64)> = tree
        .memory()
        .filter(|r| r.size > 0)
        .map(|r| (r.base, r.size))
        .collect();
    let dram: Vec<(u64, u64)> = board
        .map_or(&tree_dram[..], |b| b.dram(&tree_dram))
        .to_vec();
    let Some(boot_region) =
        board.and_then(|b| partitioner::rules::boot_region(&dram, b.boot_region_size))
    else {
        return refuse(
            con,
            "this board is not a supported one, so the boot stage has no region of its own",
        );
    };
    let el = aarch64_cpu::registers::CurrentEL.read(aarch64_cpu::registers::CurrentEL::EL) as u8;
    if let Some(p) = plan.partitions.iter().find(|p| p.entry_el > el) {
        let _ = uwriteln!(
            con,
            "plan refused: partition {} is to be entered at EL{}, but the boot stage runs at EL{}; nothing started",
            p.name.as_str(),
            p.entry_el,
            el
        );
        return Next::Refuse;
    }
    if let Err(m) = recheck(&plan, tree, &dram, Some(boot_region)) {
        let _ = uwrite!(con, "plan refused: ");
        mismatch(con, &m);
        let _ = uwriteln!(con, "; nothing started");
        return Next::Refuse;
    }
    if first {
        let _ = uwriteln!(con, "plan check: the plan fits this board");
        let packed = (package as u64, packed_len(package) as u64);
        if own_size() as u64 > boot_region.1 {
            return refuse(con, "the boot stage is larger than its region");
        }
        if overlaps(packed, boot_region) {
            return refuse(
                con,
                "the loader placed the packed image over the boot stage's region",
            );
        }
        return Next::Relocate {
            to: boot_region.0 as usize,
            package,
        };
    }

    let board_tree = match Tree::parse(dtb) {
        Ok(t) => t,
        Err(e) => return refuse(con, e.as_str()),
    };
    let mut copies = Vec::new();
    for (index, p) in plan.partitions.iter().enumerate() {
        let Some(image) = &p.image else { continue };
        let first = copies.len();
        let Some(bytes) = find(EntryKind::Image, index as u32) else {
            return refuse(con, "an image named by the plan is not packed");
        };
        let src = bytes.as_ptr() as usize;
        match image.kind {
            ImageKind::Linux | ImageKind::Raw => copies.push(Copy {
                dest: image.load,
                src,
                len: bytes.len(),
                zero: image.size.saturating_sub(bytes.len() as u64),
            }),
            ImageKind::Elf => {
                let Ok(elf) = Elf::parse(bytes) else {
                    return refuse(con, "a packed ELF image does not parse");
                };
                let base = p.memory.first().map_or(0, |m| m.0);
                for seg in elf.segments(base) {
                    let (Ok(off), Ok(len)) =
                        (usize::try_from(seg.offset), usize::try_from(seg.filesz))
                    else {
                        return refuse(con, "a packed ELF segment is out of range");
                    };
                    if off.checked_add(len).is_none_or(|end| end > bytes.len()) {
                        return refuse(con, "a packed ELF segment lies outside its file");
                    }
                    copies.push(Copy {
                        dest: seg.addr,
                        src: src + off,
                        len,
                        zero: seg.memsz - seg.filesz,
                    });
                }
            }
        }
        if let Some((_, at, _)) = &image.initrd {
            let Some(initrd) = find(EntryKind::Initrd, index as u32) else {
                return refuse(con, "an initrd named by the plan is not packed");
            };
            copies.push(Copy {
                dest: *at,
                src: initrd.as_ptr() as usize,
                len: initrd.len(),
                zero: 0,
            });
        }
        // Everything placed for a partition stays inside its memory.
        let inside = |c: &Copy| {
            let end = c.dest.saturating_add(c.len as u64).saturating_add(c.zero);
            p.memory
                .iter()
                .any(|&(b, s)| c.dest >= b && end <= b.saturating_add(s))
        };
        if !copies[first..].iter().all(inside) {
            return refuse(con, "an image would land outside its partition's memory");
        }
    }
    let mut dtbs = Vec::new();
    for (index, p) in plan.partitions.iter().enumerate() {
        let blob = partitioner::dtgen::partition_tree(&board_tree, &plan, index).to_blob();
        // The last 32 bytes of the room may hold a spin-table trampoline.
        if blob.len() as u64 > partitioner::plan::DTB_ROOM - 32 {
            return refuse(
                con,
                "a partition's device tree is larger than the room kept for it",
            );
        }
        dtbs.push((p.dtb, blob));
    }
    // Every SPI of a partition's devices goes to that partition's boot core.
    let root_ic = board_tree
        .prop(partitioner::tree::ROOT, "interrupt-parent")
        .and_then(|v| amp_plan::cells::read_cells(v, 1))
        .and_then(|p| board_tree.by_phandle(p as u32));
    let gic = root_ic.and_then(|ic| {
        let kind = if board_tree
            .prop_strings(ic, "compatible")
            .any(|c| c == "arm,gic-v3")
        {
            Gic::V3
        } else if board_tree.prop_strings(ic, "compatible").any(|c| {
            matches!(
                c,
                "arm,gic-400" | "arm,cortex-a15-gic" | "arm,cortex-a7-gic"
            )
        }) {
            Gic::V2
        } else {
            return None;
        };
        let base = board_tree.reg(ic).first().copied().flatten()?.0;
        Some((kind, usize::try_from(base).ok()?))
    });
    let mut routes = Vec::new();
    for p in &plan.partitions {
        let Some(&(_, boot_core)) = p.cores.first() else {
            continue;
        };
        for path in &p.devices {
            let Some(id) = board_tree.find(path) else {
                continue;
            };
            for (ctrl, spec) in board_tree.interrupts(id) {
                if Some(ctrl) == root_ic && spec.len() == 3 && spec[0] == 0 {
                    routes.push((spec[1] + 32, boot_core));
                }
            }
        }
    }
    let starts = plan
        .partitions
        .iter()
        .zip(&dtbs)
        .filter_map(|(p, (dtb, _))| {
            let mpidr = p.cores.first()?.1;
            let cpu = tree.cpus().find(|c| c.mpidr == Some(mpidr));
            Some(Start {
                name: p.name.clone(),
                mpidr,
                entry: p.image.as_ref()?.entry,
                dtb: *dtb,
                release: cpu
                    .filter(|c| c.enable_method == Some("spin-table"))
                    .and_then(|c| c.release_addr),
            })
        })
        .collect();
    Next::Apply(Prepared {
        copies,
        dtbs,
        windows: plan.links.iter().map(|l| (l.base, l.size)).collect(),
        starts,
        conduit: tree.psci_method().and_then(Conduit::from_method),
        gic,
        routes,
    })
}

/// Moves the boot stage to `to` and runs it again there.
pub(crate) fn relocate(con: &mut Console, dtb: usize, to: usize, package: usize) -> ! {
    let _ = uwriteln!(
        con,
        "boot stage: moving to {:#x}, out of the partitions' memory",
        to
    );
    con.flush();
    // SAFETY: `prepare` checked that the boot stage fits its region and that the
    // region overlaps neither the packed image nor any partition; nothing there
    // is in use. The device tree and packed image stay where they are.
    unsafe { relocate_and_restart(to, dtb, package) }
}

/// Copies every image into place, writes the device trees, clears the windows
/// and starts every partition, the boot core's own last.
pub(crate) fn apply(con: &mut Console, mut prepared: Prepared) -> ! {
    // Copy in an order where no copy overwrites a packed source still to read.
    while !prepared.copies.is_empty() {
        let ready = prepared.copies.iter().position(|c| {
            let dest = (c.dest, c.len as u64 + c.zero);
            prepared
                .copies
                .iter()
                .filter(|o| !core::ptr::eq(*o, c))
                .all(|o| !overlaps(dest, (o.src as u64, o.len as u64)))
        });
        let Some(i) = ready else {
            let _ = uwriteln!(
                con,
                "plan refused: the images overlap each other's packed copies; nothing started"
            );
            halt_with(con)
        };
        let c = prepared.copies.swap_remove(i);
        // SAFETY: `prepare` checked that the destination lies inside the
        // partition's memory, which the plan (re-checked against this board)
        // reserves for it and which nothing else uses while the boot stage runs
        // from its own region; the source lies inside the loaded packed image,
        // and no later copy reads what this one overwrites. `copy` allows overlap.
        unsafe {
            core::ptr::copy(c.src as *const u8, c.dest as *mut u8, c.len);
            core::ptr::write_bytes((c.dest + c.len as u64) as *mut u8, 0, c.zero as usize);
        }
        boards::cache::clean_invalidate(c.dest as usize, c.len + c.zero as usize);
    }
    for (at, blob) in &prepared.dtbs {
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
    if let Some((kind, base)) = prepared.gic {
        for &(intid, mpidr) in &prepared.routes {
            // SAFETY: `base` is the distributor the board's device tree names as
            // the root interrupt controller; no OS runs yet, so nothing else
            // touches it.
            let routed = unsafe {
                match kind {
                    Gic::V3 => {
                        let d = &*(base as *const boards::gic::Gicv3Distributor);
                        d.enable();
                        d.route(intid, mpidr)
                    }
                    Gic::V2 => {
                        let d = &*(base as *const boards::gic::Gicv2Distributor);
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
        let started = match (prepared.conduit, release) {
            // SAFETY: `entry` is the entry of the image just placed whole in that
            // partition's memory, which expects x0 = its device tree; the core
            // is one the plan gives that partition and has not been started.
            (Some(conduit), _) => {
                unsafe { boards::power::psci_cpu_on(conduit, mpidr, entry, dtb) }.is_ok()
            }
            (None, Some(release)) => {
                // The spin table passes no argument: enter through a trampoline
                // that loads x0 = device tree, at the end of the room the plan
                // keeps for the tree, inside the partition's memory.
                let at = dtb + partitioner::plan::DTB_ROOM - 32;
                let code = boards::power::trampoline(dtb, entry);
                // SAFETY: `at` lies in the partition's DTB room, past its tree
                // (checked to fit), in memory the plan gives the partition; the
                // release address is the core's own, from the device tree.
                unsafe {
                    core::ptr::copy_nonoverlapping(code.as_ptr(), at as *mut u8, code.len());
                    boards::cache::clean_invalidate(at as usize, code.len());
                    core::arch::asm!("ic iallu", "dsb sy", "isb");
                    boards::power::spin_table_release(release, at);
                }
                true
            }
            (None, None) => false,
        };
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
