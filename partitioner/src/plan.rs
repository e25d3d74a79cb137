//! The planner: places what the manifest leaves open (link windows, the ring and
//! buffer layout inside each, notification IDs, where each image, initrd and
//! device tree goes) deterministically, and produces the [`Plan`] (the plan
//! contract's type, `amp_plan`) the boot stage applies. Same manifest and tree in, same plan out.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::diag::{Code, Diagnostic};
use amp_plan::layout::{window_layout, RING_ENTRIES, VRING_ALIGN};
pub use amp_plan::{Plan, PlannedImage, PlannedLink, PlannedPartition};

use crate::manifest::{DoorbellKind, Manifest, AVPS_KINDS};
use crate::rules::{Resolved, LINUX_ALIGN, PAGE};
use crate::tree::Tree;

pub use amp_plan::layout::{DTB_ROOM, FIRST_DOORBELL_SGI, WINDOW_ALIGN, WINDOW_LIMIT};

/// Builds the plan of a manifest that validated without errors.
pub fn plan(
    m: &Manifest,
    tree: &Tree,
    resolved: &Resolved,
    boot_region: Option<(u64, u64)>,
) -> Result<Plan, Diagnostic> {
    let index = |name: &str| {
        m.partitions
            .iter()
            .position(|p| p.name.value == name)
            .unwrap_or(0) as u32
    };
    let mut partitions = Vec::new();
    for (pi, p) in m.partitions.iter().enumerate() {
        let boot = p.boot_core().unwrap_or(0);
        let mut cores: Vec<(u32, u64)> = p
            .cores
            .value
            .iter()
            .filter_map(|c| {
                resolved
                    .cpus
                    .get(c.value as usize)
                    .map(|&(_, mpidr)| (c.value, mpidr))
            })
            .collect();
        cores.sort_by_key(|&(i, _)| (i != boot, i));
        let memory: Vec<(u64, u64)> = p
            .memory
            .iter()
            .map(|r| (r.base.value, r.size.value))
            .collect();
        let first = memory.first().copied().unwrap_or((0, 0));
        let top = first.0 + first.1;
        let dtb = top.saturating_sub(DTB_ROOM).max(first.0) & !(PAGE - 1);
        let facts = resolved
            .images
            .get(pi)
            .copied()
            .flatten()
            .unwrap_or_default();
        let image = p.image.as_ref().map(|i| {
            let initrd = i.initrd.as_ref().map(|path| {
                let at = (facts.load + facts.size).next_multiple_of(LINUX_ALIGN);
                (path.value.clone(), at, facts.initrd_len)
            });
            PlannedImage {
                kind: i.kind.value,
                path: i.path.value.clone(),
                load: facts.load,
                entry: facts.entry,
                size: facts.size,
                initrd,
                bootargs: i
                    .bootargs
                    .as_ref()
                    .map_or(String::new(), |b| b.value.clone()),
            }
        });
        partitions.push(PlannedPartition {
            name: p.name.value.clone(),
            cores,
            memory,
            entry_el: p.entry_el(),
            system_control: p.system_control.as_ref().is_some_and(|s| s.value),
            devices: resolved
                .devices
                .get(pi)
                .into_iter()
                .flatten()
                .map(|&d| tree.path(d))
                .collect(),
            console: resolved
                .consoles
                .get(pi)
                .copied()
                .flatten()
                .map(|c| tree.path(c)),
            image,
            dtb,
        });
    }

    // Free memory: DRAM less partitions, fixed windows and the boot region.
    let mut taken: Vec<(u64, u64)> = partitions
        .iter()
        .flat_map(|p| p.memory.iter().copied())
        .collect();
    taken.extend(
        m.links
            .iter()
            .filter_map(|l| l.base.as_ref().map(|b| (b.value, l.size.value))),
    );
    taken.extend(boot_region);
    let layout = window_layout();
    let mut links = Vec::new();
    let mut sgi = FIRST_DOORBELL_SGI;
    for (li, l) in m.links.iter().enumerate() {
        let size = l.size.value.next_multiple_of(PAGE);
        let base = match &l.base {
            Some(b) => b.value,
            None => {
                let Some(base) = highest_free(&resolved.dram, &taken, size) else {
                    return Err(Diagnostic::new(
                        Code::NoSpace,
                        l.size.span,
                        format!(
                            "no free memory of {} bytes left for link `{}`'s window",
                            size, l.name.value
                        ),
                        "shrink a partition's memory or the window, or give the window a `base`",
                    ));
                };
                taken.push((base, size));
                base
            }
        };
        let doorbell = l.doorbell.as_ref().map_or(DoorbellKind::Poll, |d| d.value);
        let this_sgi = (doorbell == DoorbellKind::Sgi).then(|| {
            let s = sgi;
            sgi += 1;
            s
        });
        let names = &l.between.value;
        links.push(PlannedLink {
            name: l.name.value.clone(),
            host: index(&names[0].value),
            remote: index(&names[1].value),
            base,
            size,
            doorbell,
            sgi: this_sgi,
            vring0: base + layout.vring0,
            vring1: base + layout.vring1,
            buffers: base + layout.buffers,
            ring_entries: RING_ENTRIES as u32,
            vring_align: VRING_ALIGN as u32,
            notify_ids: [2 * li as u32, 2 * li as u32 + 1],
            devices: l
                .devices
                .iter()
                .map(|d| {
                    let id = AVPS_KINDS
                        .iter()
                        .find(|(k, _)| *k == d.kind.value)
                        .map_or(0, |(_, id)| *id);
                    amp_plan::LinkDevice {
                        kind: d.kind.value.to_string(),
                        virtio_id: id,
                        provider: index(&d.provider.value),
                        backing: d
                            .backing
                            .as_ref()
                            .map_or(String::new(), |b| b.value.clone()),
                        disk_size: d.size.as_ref().map_or(0, |s| s.value),
                    }
                })
                .collect(),
        });
    }
    Ok(Plan {
        board: m.board.value.clone(),
        partitions,
        links,
    })
}

/// The highest `WINDOW_ALIGN`-aligned place for `size` bytes in `dram`, below
/// [`WINDOW_LIMIT`], that overlaps nothing in `taken`.
fn highest_free(dram: &[(u64, u64)], taken: &[(u64, u64)], size: u64) -> Option<u64> {
    let mut best: Option<u64> = None;
    for &(base, len) in dram {
        let mut top = base.checked_add(len)?.min(WINDOW_LIMIT);
        // Walk down from the top of this range, jumping below whatever is in the way.
        loop {
            let start = top.checked_sub(size)? & !(WINDOW_ALIGN - 1);
            if start < base {
                break;
            }
            let hit = taken
                .iter()
                .filter(|&&(b, s)| start < b.saturating_add(s) && b < start + size)
                .map(|&(b, _)| b)
                .min();
            match hit {
                None => {
                    best = best.max(Some(start));
                    break;
                }
                Some(b) => top = b,
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_go_to_the_highest_free_aligned_place() {
        let dram = [(0x4000_0000, 0x4000_0000)];
        assert_eq!(highest_free(&dram, &[], 0x10_0000), Some(0x7ff0_0000));
        let taken = [(0x7f00_0000, 0x100_0000)];
        assert_eq!(highest_free(&dram, &taken, 0x10_0000), Some(0x7ef0_0000));
        // Full: nothing fits.
        assert_eq!(
            highest_free(&dram, &[(0x4000_0000, 0x4000_0000)], 0x1000),
            None
        );
    }
}
