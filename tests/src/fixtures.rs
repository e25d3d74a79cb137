//! Test fixtures for what no real source provides yet: stand-in RTOS images
//! (minimal AArch64 ELFs placed where a manifest puts them) and a tiny
//! initramfs. The Linux kernel is always Debian's real arm64 one.

use std::path::Path;

use partitioner::manifest::ImageKind;

/// A minimal AArch64 ELF with one loadable segment of `size` bytes at `addr`:
/// the stand-in for RTOS images that later build steps produce.
pub fn elf(addr: u64, size: u64) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&addr.to_le_bytes()); // e_entry
    f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0x1000u64, addr, addr, 0x100, size, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.resize(0x1100, 0);
    f
}

/// A newc cpio archive holding one empty `init`.
pub fn cpio() -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode) in [("init", 0o100755u32), ("TRAILER!!!", 0)] {
        let header =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1, mode, 0, 0, 1, 0, 0, 0, 0, 0, 0, name.len() + 1, 0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

/// An images folder for `manifest`: Debian's real arm64 kernel as `Image`, a
/// small initramfs, and for every ELF image an ELF placed at the start of its
/// partition's memory.
pub fn images_for(manifest: &Path, dir: &Path) {
    let guest = boards::host::guest_dir().unwrap();
    let kernel = guest.join("vmlinuz");
    assert!(
        kernel.is_file(),
        "{} missing: run `cargo xtask setup`",
        kernel.display()
    );
    std::os::unix::fs::symlink(&kernel, dir.join("Image")).unwrap();
    std::fs::write(dir.join("initrd.cpio"), cpio()).unwrap();
    let text = std::fs::read_to_string(manifest).unwrap();
    if let (Some(m), _) = partitioner::parse::parse(&text) {
        for p in &m.partitions {
            let (Some(image), Some(first)) = (&p.image, p.memory.first()) else {
                continue;
            };
            if image.kind.value == ImageKind::Elf && !image.path.value.starts_with("missing") {
                let size = first.size.value.clamp(0x1000, 0x1_0000);
                // Replace, never write through, the `Image` link to the cached kernel.
                let path = dir.join(&image.path.value);
                let _ = std::fs::remove_file(&path);
                std::fs::write(path, elf(first.base.value, size)).unwrap();
            }
        }
    }
}

/// Puts the demo RTOS partition (`elf`, position-independent) in place of every
/// ELF image `manifest` names, so those partitions run the real thing.
pub fn demo_rtos_for(manifest: &Path, dir: &Path, elf: &Path) {
    let text = std::fs::read_to_string(manifest).unwrap();
    let (Some(m), _) = partitioner::parse::parse(&text) else {
        panic!("{} does not parse", manifest.display())
    };
    for p in &m.partitions {
        if let Some(image) = p.image.as_ref().filter(|i| i.kind.value == ImageKind::Elf) {
            let path = dir.join(&image.path.value);
            let _ = std::fs::remove_file(&path);
            std::fs::copy(elf, &path).unwrap();
        }
    }
}

/// The init a Linux partition runs: mounts the usual filesystems, reports what
/// the partition got, loads [`GUEST_MODULES`] (`@MODULES@`), starts the
/// bridge to its links, and gives a shell on its
/// console. `poweroff` (busybox signals PID 1), `halt` or leaving the shell
/// powers the partition off.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
echo \"linux partition: $(grep -c ^processor /proc/cpuinfo) CPUs, $(grep MemTotal /proc/meminfo)\"
ip link set lo up
for m in @MODULES@; do insmod /lib/modules/$m.ko $(test $m = nbd && echo nbds_max=4); done
/bin/avps-bridge &
sleep 1
for c in /dev/avps/*/console; do [ -e \"$c\" ] && echo \"the console of the partition on the other end of a link: cat $c\"; done
trap 'poweroff -f' USR1 USR2
setsid cttyhack sh &
wait $!
poweroff -f
";

/// The kernel modules a Linux partition loads (from Debian's kernel package,
/// where its config builds them as modules), by their path under the
/// package's `kernel/` folder, in load order (dependencies first): the TAP
/// driver for the network device, NBD for a disk the peer provides,
/// virtio-mmio and virtio-blk for a disk QEMU gives Linux, and ext4 (which
/// mounts ext2, what busybox's `mke2fs` makes) with what it needs.
pub const GUEST_MODULES: [&str; 9] = [
    "drivers/net/tun.ko",
    "drivers/block/nbd.ko",
    "drivers/virtio/virtio_mmio.ko",
    "drivers/block/virtio_blk.ko",
    "lib/crc16.ko",
    // ext4 asks the crypto API for crc32c at every mount.
    "crypto/crc32c_generic.ko",
    "fs/mbcache.ko",
    "fs/jbd2/jbd2.ko",
    "fs/ext4/ext4.ko",
];

/// A busybox initramfs (`cpio -H newc`, Debian's static arm64 busybox and
/// the kernel's [`GUEST_MODULES`] from `guest`) holding the Linux-side
/// `bridge` and [`INIT`], written to `out`.
pub fn initramfs(guest: &Path, bridge: &Path, out: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let root = out.with_extension("root");
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["bin", "lib/modules"] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| format!("{}: {e}", root.display()))?;
    }
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, root.join(to))
            .map(drop)
            .map_err(|e| format!("{} -> {to}: {e}", from.display()))
    };
    copy(&guest.join("busybox"), "bin/busybox")?;
    copy(bridge, "bin/avps-bridge")?;
    let mut listed = String::from("init\nbin\nbin/busybox\nbin/avps-bridge\nlib\nlib/modules\n");
    for m in GUEST_MODULES {
        let name = module_name(m);
        copy(
            &guest.join("modules").join(name),
            &format!("lib/modules/{name}"),
        )?;
        listed.push_str(&format!("lib/modules/{name}\n"));
    }
    let names: Vec<&str> = GUEST_MODULES
        .iter()
        .map(|m| module_name(m).trim_end_matches(".ko"))
        .collect();
    let init = INIT.replace("@MODULES@", &names.join(" "));
    std::fs::write(root.join("init"), init).map_err(|e| e.to_string())?;
    for f in ["init", "bin/busybox", "bin/avps-bridge"] {
        std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut child = std::process::Command::new("cpio")
        .args(["--quiet", "-o", "-H", "newc"])
        .current_dir(&root)
        .stdin(std::process::Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("cannot run cpio: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("cpio stdin")?
        .write_all(listed.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cpio failed ({status})"))
    }
}

/// A module's file name (`tun.ko` of `drivers/net/tun.ko`).
pub fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
