//! The boot stage's re-check of a plan against the hardware it finds: the plan
//! was checked on the host against a board's device tree, but the board the
//! firmware boots on may differ (another revision, less memory, a different
//! loader). Nothing is started unless every partition's cores, memory and
//! devices and every link window exist here.

use crate::rules::{inside_any as inside, overlaps};
use amp_plan::dt::DeviceTree;
use amp_plan::Plan;

/// The first way a plan does not fit the hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch<'p> {
    /// A partition's core is not in `/cpus`.
    NoSuchCore {
        /// Partition.
        partition: &'p str,
        /// The core's MPIDR.
        mpidr: u64,
    },
    /// A partition's memory is not inside DRAM.
    MemoryOutsideDram {
        /// Partition.
        partition: &'p str,
        /// Range base.
        base: u64,
        /// Range size.
        size: u64,
    },
    /// A partition's memory overlaps the boot stage's region.
    MemoryOverBootStage {
        /// Partition.
        partition: &'p str,
        /// Range base.
        base: u64,
        /// Range size.
        size: u64,
    },
    /// A partition's device is not in the tree.
    NoSuchDevice {
        /// Partition.
        partition: &'p str,
        /// Device path.
        path: &'p str,
    },
    /// A link window is not inside DRAM or overlaps the boot stage.
    WindowOutsideDram {
        /// Link.
        link: &'p str,
        /// Window base.
        base: u64,
        /// Window size.
        size: u64,
    },
}

/// Checks `plan` against the tree found at boot, its DRAM (`dram`: the tree's
/// memory, or the board's defaults) and the boot stage's region.
pub fn recheck<'p>(
    plan: &'p Plan,
    tree: &DeviceTree<'_>,
    dram: &[(u64, u64)],
    boot_region: Option<(u64, u64)>,
) -> Result<(), Mismatch<'p>> {
    for p in &plan.partitions {
        let partition = p.name.as_str();
        for &(_, mpidr) in &p.cores {
            if !tree.cpus().any(|c| c.mpidr == Some(mpidr)) {
                return Err(Mismatch::NoSuchCore { partition, mpidr });
            }
        }
        for &(base, size) in &p.memory {
            if !inside((base, size), dram) {
                return Err(Mismatch::MemoryOutsideDram {
                    partition,
                    base,
                    size,
                });
            }
            if boot_region.is_some_and(|b| overlaps((base, size), b)) {
                return Err(Mismatch::MemoryOverBootStage {
                    partition,
                    base,
                    size,
                });
            }
        }
        for path in &p.devices {
            if tree.locate_path(path).is_none() {
                return Err(Mismatch::NoSuchDevice { partition, path });
            }
        }
    }
    for l in &plan.links {
        let w = (l.base, l.size);
        if !inside(w, dram) || boot_region.is_some_and(|b| overlaps(w, b)) {
            return Err(Mismatch::WindowOutsideDram {
                link: &l.name,
                base: l.base,
                size: l.size,
            });
        }
    }
    Ok(())
}
