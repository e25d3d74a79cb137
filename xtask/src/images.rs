//! Images for `cargo xtask run --manifest`: what this build can provide for a
//! split, packed with the integrators' tool's own code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use partitioner::host::{pack_firmware, validate_and_plan, DirImages};
use partitioner::manifest::ImageKind;

use crate::firmware::Firmware;

/// The init a Linux partition runs: mounts the usual filesystems, shows what the
/// partition got, and gives a shell on its console.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo \"linux partition: $(grep -c ^processor /proc/cpuinfo) CPUs, $(grep MemTotal /proc/meminfo)\"
exec setsid cttyhack sh
";

/// Builds `target/images/<manifest>/` and packs `target/images/<manifest>.img`;
/// returns the board and the packed image.
pub(crate) fn pack(
    manifest: &Path,
    firmware: &Firmware,
    guest: &Path,
) -> Result<(&'static boards::Board, PathBuf), String> {
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
                    initramfs(guest, &dir.join(&initrd.value))?;
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
    Ok((board, out))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

/// A busybox initramfs (`cpio -H newc`) with [`INIT`].
fn initramfs(guest: &Path, out: &Path) -> Result<(), String> {
    let root = out.with_extension("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin")).map_err(|e| format!("{}: {e}", root.display()))?;
    copy(&guest.join("busybox"), &root.join("bin/busybox"))?;
    std::fs::write(root.join("init"), INIT).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    for f in ["init", "bin/busybox"] {
        std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let list = "init\nbin\nbin/busybox\n";
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut child = Command::new("cpio")
        .args(["--quiet", "-o", "-H", "newc"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("cannot run cpio: {e}"))?;
    use std::io::Write;
    child
        .stdin
        .take()
        .ok_or("cpio stdin")?
        .write_all(list.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cpio failed ({status})"))
    }
}
