//! What the boot stage decides to do with a packed split (`partitioner::prepare`),
//! on the host: the committed manifests planned against the real board trees
//! (QEMU virt's own, dumped by QEMU, and Debian's Raspberry Pi 4 tree), packed
//! with stand-in images, then opened, checked and prepared as the boot stage
//! does before it touches the machine. No QEMU run; a missing fixture fails
//! the test and says how to fetch it.

use std::path::Path;

use amp_plan::dt::DeviceTree;
use amp_plan::{ImageKind, Plan};
use boards::gic::{self, Version};
use boards::Board;
use partitioner::host::{pack_firmware, validate_and_plan, DirImages};
use partitioner::plan::DTB_ROOM;
use partitioner::prepare::{self, Prepared, TRAMPOLINE_ROOM};
use partitioner::tree::Tree;
use tests::Scratch;

/// A stand-in boot stage: an arm64 Image header claiming `0x3000` bytes.
const TOC: usize = 0x3000;

fn boot_stage() -> Vec<u8> {
    let mut boot = vec![0u8; 0x40];
    boot[0x38..0x3c].copy_from_slice(b"ARM\x64");
    boot[16..24].copy_from_slice(&(TOC as u64).to_le_bytes());
    boot
}

/// The board tree as the boot stage's loader hands it over.
fn board_tree(board: &'static Board) -> Vec<u8> {
    let path = boards::host::board_dtb(board)
        .unwrap_or_else(|e| panic!("FIXTURE MISSING: {}'s device tree: {e}", board.name));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Plans and packs `manifest` with stand-in images in `scratch`, then runs
/// the boot stage's open, check and prepare on it: the plan, the packed file,
/// the images folder and what to do.
fn prepared(manifest: &str, scratch: &Scratch) -> (Plan, Vec<u8>, std::path::PathBuf, Prepared) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(manifest);
    let images = scratch.0.join("images");
    std::fs::create_dir_all(&images).unwrap();
    tests::fixtures::images_for(&path, &images);
    let (m, diags) = partitioner::parse::parse(&std::fs::read_to_string(&path).unwrap());
    let m = m.unwrap_or_else(|| panic!("{manifest}: {diags:?}"));
    let board = Board::by_name(&m.board.value).unwrap();
    let blob = board_tree(board);
    let tree = Tree::parse(&blob).unwrap();
    let dram = board.dram(&partitioner::rules::board_dram(&tree)).to_vec();
    let region = partitioner::rules::boot_region(&dram, board.boot_region_size);
    let (_, plan, diags) =
        validate_and_plan(&m, &tree, dram.clone(), region, &DirImages(images.clone()));
    let plan = plan.unwrap_or_else(|| panic!("{manifest} must be valid: {diags:?}"));
    let file = pack_firmware(&boot_stage(), &plan, &images).unwrap();

    let opened = prepare::open(&file[TOC..], TOC).unwrap();
    assert_eq!(
        opened.plan, plan,
        "{manifest}: the packed plan decodes as planned"
    );
    let found = DeviceTree::new(&blob).unwrap();
    assert_eq!(
        prepare::check(&opened.plan, &found, &dram, region, 2),
        Ok(region.unwrap())
    );
    let p =
        prepare::prepare(&opened, &blob, &found).unwrap_or_else(|r| panic!("{manifest}: {r:?}"));
    (plan, file, images, p)
}

/// The interrupt IDs routed, each with its core, as the boot stage's GIC
/// driver gets them.
fn routes(p: &Prepared) -> Vec<(u32, u64)> {
    p.routes
        .iter()
        .filter_map(|r| Some((gic::spi_id(&r.specifier)?, r.mpidr)))
        .collect()
}

fn version(p: &Prepared) -> Option<Version> {
    let c = p.controller.as_ref()?;
    Version::from_compatibles(c.compatibles.iter().map(String::as_str))
}

#[test]
fn linux_and_the_rtos_on_qemu_virt() {
    let scratch = Scratch::new("prepare-virt");
    let (plan, file, images, p) = prepared("manifests/qemu-virt/linux-rtos.toml", &scratch);
    let linux = &plan.partitions[0];
    let rtos = &plan.partitions[1];
    let kernel = std::fs::read(images.join("Image")).unwrap();
    let initrd = std::fs::read(images.join("initrd.cpio")).unwrap();
    let linux_image = linux.image.as_ref().unwrap();
    assert_eq!(linux_image.kind, ImageKind::Linux);

    // The kernel whole at its load address with its reserved room zeroed,
    // its initramfs after it, then the RTOS ELF's segment; every source is
    // the packed copy of that file.
    let kernel_load = &p.loads[0];
    assert_eq!(
        (kernel_load.dest, kernel_load.len),
        (linux_image.load, kernel.len())
    );
    assert_eq!(
        kernel_load.written().1,
        linux_image.size.max(kernel.len() as u64)
    );
    assert_eq!(&file[kernel_load.src..][..kernel.len()], &kernel[..]);
    let initrd_load = &p.loads[1];
    assert_eq!(initrd_load.dest, linux_image.initrd.as_ref().unwrap().1);
    assert_eq!(&file[initrd_load.src..][..initrd.len()], &initrd[..]);
    let rtos_path = &rtos.image.as_ref().unwrap().path;
    let elf_file = std::fs::read(images.join(rtos_path)).unwrap();
    let seg = &p.loads[2];
    assert_eq!(p.loads.len(), 3);
    assert_eq!(seg.dest, rtos.memory[0].0);
    assert_eq!(&file[seg.src..][..seg.len], &elf_file[0x1000..][..seg.len]);
    for l in &p.loads {
        let (dest, len) = l.written();
        let owner = if l.dest >= rtos.memory[0].0 {
            rtos
        } else {
            linux
        };
        assert!(owner
            .memory
            .iter()
            .any(|&(b, s)| dest >= b && dest + len <= b + s));
    }

    // QEMU virt's GICv3; the RTC (SPI 2, interrupt 34) to the RTOS's boot core
    // and the UART (SPI 1) to Linux's.
    assert_eq!(version(&p), Some(Version::V3));
    assert_eq!(p.controller.as_ref().unwrap().base, 0x800_0000);
    let routes = routes(&p);
    assert!(routes.contains(&(33, linux.cores[0].1)), "{routes:?}");
    assert!(routes.contains(&(34, rtos.cores[0].1)), "{routes:?}");

    // Both boot cores by PSCI (no release address), each at its entry with
    // its own tree, which reads back as that partition's.
    assert_eq!(p.starts.len(), 2);
    for (s, part) in p.starts.iter().zip(&plan.partitions) {
        assert_eq!(
            (s.mpidr, s.dtb, s.release),
            (part.cores[0].1, part.dtb, None)
        );
        assert_eq!(s.entry, part.image.as_ref().unwrap().entry);
        assert_eq!(s.trampoline, s.dtb + DTB_ROOM - TRAMPOLINE_ROOM);
    }
    for ((at, blob), part) in p.trees.iter().zip(&plan.partitions) {
        assert_eq!(*at, part.dtb);
        let t = DeviceTree::new(blob).unwrap();
        assert_eq!(t.partition_name(), Some(part.name.as_str()));
        assert_eq!(t.cpus().count(), part.cores.len());
        assert_eq!(t.links().count(), 1);
    }
    assert_eq!(p.windows, [(plan.links[0].base, plan.links[0].size)]);
}

#[test]
fn two_rtos_on_the_raspberry_pi_4_start_from_the_spin_table() {
    let scratch = Scratch::new("prepare-rpi4");
    let (plan, _, _, p) = prepared("manifests/rpi4/two-rtos.toml", &scratch);
    assert_eq!(version(&p), Some(Version::V2), "the BCM2711's GIC-400");
    let blob = board_tree(Board::by_name("rpi4").unwrap());
    let tree = DeviceTree::new(&blob).unwrap();
    assert_eq!(p.starts.len(), plan.partitions.len());
    for s in &p.starts {
        let cpu = tree.cpus().find(|c| c.mpidr == Some(s.mpidr)).unwrap();
        assert_eq!(cpu.enable_method, Some("spin-table"));
        assert_eq!(
            s.release, cpu.release_addr,
            "{}: released from its core's spin table",
            s.name
        );
        assert!(s.release.is_some());
    }
}
