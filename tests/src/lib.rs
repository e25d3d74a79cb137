//! Host-side harness for end-to-end tests: starts a QEMU machine for a board,
//! reads its console with a deadline, kills it on timeout, and reads device trees
//! with the independent `fdtget` tool so that tests check the firmware's output
//! against the tree it was given, not against strings it could have made up.
//!
//! The firmware and guest artifacts come from `cargo xtask`, which passes their
//! paths in [`ENV_BOOT_IMAGE`] and [`ENV_GUEST_DIR`].
#![forbid(unsafe_code)]

pub mod fdtget;
pub mod fixtures;
pub mod qemu;

use std::path::PathBuf;

/// Path of the packed boot-stage image (`cargo xtask build` writes it).
pub const ENV_BOOT_IMAGE: &str = "AMP_BOOT_IMAGE";
/// Path of the demo RTOS partition's ELF (`cargo xtask build` writes it).
pub const ENV_RTOS_IMAGE: &str = "AMP_RTOS_IMAGE";
/// Path of the Linux-side bridge (static arm64 Linux, `cargo xtask build`).
pub const ENV_BRIDGE_IMAGE: &str = "AMP_BRIDGE_IMAGE";
/// Folder of guest artifacts unpacked from Debian's arm64 packages.
pub const ENV_GUEST_DIR: &str = "AMP_GUEST_DIR";

/// A path the test run needs from `cargo xtask`; fails loudly when absent, since
/// a test that cannot run must not pass.
pub fn required_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "{var} is not set: the end-to-end tests need the firmware and guest artifacts \
             that `cargo xtask test` builds and fetches; run that instead of `cargo test`"
        ),
    }
}

/// The boot-stage image under test.
pub fn boot_image() -> PathBuf {
    let path = required_path(ENV_BOOT_IMAGE);
    assert!(
        path.is_file(),
        "{} does not exist; run `cargo xtask build`",
        path.display()
    );
    path
}

/// The demo RTOS partition's ELF under test.
pub fn rtos_image() -> PathBuf {
    let path = required_path(ENV_RTOS_IMAGE);
    assert!(
        path.is_file(),
        "{} does not exist; run `cargo xtask build`",
        path.display()
    );
    path
}

/// The Linux-side bridge under test.
pub fn bridge_image() -> PathBuf {
    let path = required_path(ENV_BRIDGE_IMAGE);
    assert!(
        path.is_file(),
        "{} does not exist; run `cargo xtask build`",
        path.display()
    );
    path
}

/// A board's device tree file from Debian's kernel package, for `-dtb`.
pub fn board_dtb(board: &boards::Board) -> Option<PathBuf> {
    match board.dtb {
        boards::DtbSource::QemuGenerated => None,
        boards::DtbSource::DebianKernel(rel) => {
            let path = required_path(ENV_GUEST_DIR).join("dtbs").join(rel);
            assert!(
                path.is_file(),
                "{} is missing; `cargo xtask setup` unpacks it from Debian's arm64 kernel package",
                path.display()
            );
            Some(path)
        }
    }
}

/// A scratch folder for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh folder named after the test, unique within this process.
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("amp-e2e-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What goes into a packed split's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// Stand-in images of the right kinds (nothing meant to run).
    StandIns,
    /// The demo RTOS in every ELF partition, stand-ins elsewhere.
    DemoRtos,
    /// The demo RTOS in every ELF partition, and in each Linux partition
    /// Debian's kernel with the initramfs that starts `avps-bridge`.
    Real,
}

/// Packs `manifest` (a path relative to the repository) against its board's
/// tree with `images`, into `scratch`: the firmware image and its plan.
pub fn pack(
    manifest: &str,
    scratch: &Scratch,
    images: Images,
) -> (PathBuf, partitioner::plan::Plan) {
    use partitioner::host::{pack_firmware, validate_and_plan, DirImages};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(manifest);
    let dir = scratch.0.join("images");
    std::fs::create_dir_all(&dir).unwrap();
    fixtures::images_for(&path, &dir);
    if images != Images::StandIns {
        fixtures::demo_rtos_for(&path, &dir, &rtos_image());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let (m, diags) = partitioner::parse::parse(&text);
    let m = m.unwrap_or_else(|| panic!("{manifest}: {diags:?}"));
    if images == Images::Real {
        let guest = required_path(ENV_GUEST_DIR);
        for p in &m.partitions {
            let Some(image) = p
                .image
                .as_ref()
                .filter(|i| i.kind.value == partitioner::manifest::ImageKind::Linux)
            else {
                continue;
            };
            // `images_for` put the real kernel in place; the initramfs is
            // the one a user boots.
            if let Some(initrd) = &image.initrd {
                let out = dir.join(&initrd.value);
                let _ = std::fs::remove_file(&out);
                fixtures::initramfs(&guest, &bridge_image(), &out).unwrap();
            }
        }
    }
    let board = boards::Board::by_name(&m.board.value).unwrap();
    let tree = partitioner::tree::Tree::parse(
        &std::fs::read(boards::host::board_dtb(board).unwrap()).unwrap(),
    )
    .unwrap();
    let dram = board.dram(&partitioner::rules::board_dram(&tree)).to_vec();
    let boot_region = partitioner::rules::boot_region(&dram, board.boot_region_size);
    let (_, plan, diags) = validate_and_plan(&m, &tree, dram, boot_region, &DirImages(dir.clone()));
    let plan = plan.unwrap_or_else(|| panic!("{manifest} must be valid: {diags:?}"));
    let boot = std::fs::read(boot_image()).unwrap();
    let firmware = scratch.0.join("firmware.img");
    std::fs::write(&firmware, pack_firmware(&boot, &plan, &dir).unwrap()).unwrap();
    (firmware, plan)
}

/// Size of the disk the default split's Linux partition gets.
pub const LINUX_DISK_BYTES: u64 = 16 << 20;

/// A zeroed raw disk image in `scratch` for the default split's Linux
/// partition (its `/virtio_mmio@a003e00`, which the bridge serves to the
/// RTOS), attached to `machine`; its path.
pub fn attach_linux_disk(machine: &mut qemu::Machine, scratch: &Scratch) -> PathBuf {
    let disk = scratch.0.join("linux-disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(LINUX_DISK_BYTES))
        .expect("the disk image");
    machine.disks.push(disk.clone());
    disk
}

/// What the benchmarks read off a transcript.
pub mod figures {
    /// The median, if there is any value.
    pub fn median(mut v: Vec<f64>) -> Option<f64> {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// The number after `marker` in `line`, up to the next character in
    /// `stop`.
    pub fn number_after(line: &str, marker: &str, stop: &[char]) -> Option<f64> {
        let rest = &line[line.find(marker)? + marker.len()..];
        rest.split(stop).next()?.trim().parse().ok()
    }
}
