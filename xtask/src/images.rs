//! Images for `cargo xtask run --manifest`: what this build can provide for a
//! split, packed with the integrators' tool's own code.

use std::path::{Path, PathBuf};

use partitioner::host::{pack_firmware, validate_and_plan, DirImages};
use partitioner::manifest::ImageKind;

use crate::firmware::Firmware;

/// Builds `target/images/<manifest>/` and packs `target/images/<manifest>.img`;
/// returns the board and the packed image.
pub(crate) fn pack(
    manifest: &Path,
    firmware: &Firmware,
    guest: &Path,
) -> Result<(&'static boards::Board, PathBuf, Vec<PathBuf>), String> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let (m, diags) = partitioner::parse::parse(&text);
    let Some(m) = m else {
        return Err(format!(
            "{} does not parse ({} problems): run `amp check` on it",
            manifest.display(),
            diags.len()
        ));
    };
    let board = boards::Board::by_name(&m.board.value)
        .ok_or_else(|| format!("unknown board {}", m.board.value))?;
    let stem = manifest
        .file_stem()
        .map_or("split".into(), |s| s.to_string_lossy().into_owned());
    let dir = crate::workspace_root().join("target/images").join(&stem);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for p in &m.partitions {
        let Some(image) = &p.image else { continue };
        let path = dir.join(&image.path.value);
        let _ = std::fs::remove_file(&path);
        match image.kind.value {
            ImageKind::Elf => copy(&firmware.rtos, &path)?,
            ImageKind::Linux => {
                copy(&guest.join("vmlinuz"), &path)?;
                if let Some(initrd) = &image.initrd {
                    harness::fixtures::initramfs(
                        guest,
                        &firmware.bridge,
                        &dir.join(&initrd.value),
                    )?;
                }
            }
            ImageKind::Raw => {
                return Err(format!(
                    "this build makes no raw image for `{}`",
                    image.path.value
                ))
            }
        }
    }
    let tree_path = boards::host::board_dtb(board)?;
    let blob = std::fs::read(&tree_path).map_err(|e| format!("{}: {e}", tree_path.display()))?;
    let tree = partitioner::tree::Tree::parse(&blob)
        .map_err(|e| format!("{}: {}", tree_path.display(), e.as_str()))?;
    let dram = board.dram(&partitioner::rules::board_dram(&tree)).to_vec();
    let boot_region = partitioner::rules::boot_region(&dram, board.boot_region_size);
    let (_, plan, diags) = validate_and_plan(&m, &tree, dram, boot_region, &DirImages(dir.clone()));
    let Some(plan) = plan.filter(|_| diags.is_empty()) else {
        return Err(format!(
            "{} is not valid on {} ({} problems): run `amp check` on it",
            manifest.display(),
            board.name,
            diags.len()
        ));
    };
    let boot =
        std::fs::read(&firmware.boot).map_err(|e| format!("{}: {e}", firmware.boot.display()))?;
    let out = dir.with_extension("img");
    std::fs::write(&out, pack_firmware(&boot, &plan, &dir)?)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("packed {} into {}", manifest.display(), out.display());
    let disks = disks(&m, &dir)?;
    Ok((board, out, disks))
}

/// Size of a disk image made for a partition's virtio-mmio slot.
const DISK_BYTES: u64 = 64 << 20;

/// A raw disk image for each virtio-mmio slot a partition owns, made (sparse,
/// zeroed) if missing and kept across runs, in the order QEMU fills the
/// slots: the highest address first.
fn disks(m: &partitioner::manifest::Manifest, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut slots: Vec<u64> = m
        .partitions
        .iter()
        .flat_map(|p| &p.devices)
        .filter_map(|d| d.value.strip_prefix("/virtio_mmio@"))
        .filter_map(|a| u64::from_str_radix(a, 16).ok())
        .collect();
    slots.sort_unstable_by(|a, b| b.cmp(a));
    slots.dedup();
    let mut out = Vec::new();
    for slot in slots {
        let path = dir.join(format!("disk-{slot:x}.img"));
        if !path.exists() {
            let f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            f.set_len(DISK_BYTES)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "made {} ({} MiB) for /virtio_mmio@{slot:x}",
                path.display(),
                DISK_BYTES >> 20
            );
        }
        out.push(path);
    }
    Ok(out)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}
