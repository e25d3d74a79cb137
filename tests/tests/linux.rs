//! The default Linux + RTOS split on QEMU virt: Debian's unmodified arm64
//! kernel in its partition, the Linux-side bridge mapping the link window
//! through /dev/mem, and the RTOS's log readable at /dev/avps/<link>/console.

use std::path::Path;
use std::time::Duration;

use boards::Board;
use partitioner::host::{pack_firmware, validate_and_plan, DirImages};
use partitioner::rules;
use partitioner::tree::Tree;
use tests::qemu::Machine;
use tests::Scratch;

#[test]
fn linux_reads_the_rtos_console_through_the_bridge() {
    let scratch = Scratch::new("linux-rtos");
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/qemu-virt/linux-rtos.toml");
    let images = scratch.0.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let guest = tests::required_path(tests::ENV_GUEST_DIR);
    std::fs::copy(guest.join("vmlinuz"), images.join("Image")).unwrap();
    tests::fixtures::initramfs(&guest, &tests::bridge_image(), &images.join("initrd.cpio"))
        .unwrap();
    std::fs::copy(tests::rtos_image(), images.join("rtos.elf")).unwrap();

    let text = std::fs::read_to_string(&manifest).unwrap();
    let m = partitioner::parse::parse(&text).0.expect("manifest parses");
    let board = Board::by_name("qemu-virt").unwrap();
    let tree =
        Tree::parse(&std::fs::read(boards::host::board_dtb(board).unwrap()).unwrap()).unwrap();
    let dram = board.dram(&rules::board_dram(&tree)).to_vec();
    let boot_region = rules::boot_region(&dram, board.boot_region_size);
    let (_, plan, diags) =
        validate_and_plan(&m, &tree, dram, boot_region, &DirImages(images.clone()));
    let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
    let boot = std::fs::read(tests::boot_image()).unwrap();
    let firmware = scratch.0.join("firmware.img");
    std::fs::write(&firmware, pack_firmware(&boot, &plan, &images).unwrap()).unwrap();

    let machine = Machine::new(board, &firmware, None);
    let t = tests::qemu::run_scripted(
        &machine,
        Duration::from_secs(180),
        &[(
            "announced its console",
            "cat /dev/avps/linux-rtos/console &\n",
        )],
        |l| l.contains("[rtos] cores up: 2"),
    )
    .expect("QEMU starts");
    assert!(t.reached, "the RTOS's log did not reach Linux:\n{t}");
    // Linux sees its two cores and its memory only.
    assert!(
        t.lines
            .iter()
            .any(|l| l.starts_with("linux partition: 2 CPUs,")),
        "{t}"
    );
    // The bridge found the link in Linux's device tree and met the RTOS.
    assert!(
        t.lines.iter().any(|l| l.contains(
            "avps-bridge: link linux-rtos: console of rtos at /dev/avps/linux-rtos/console"
        )),
        "{t}"
    );
    assert!(
        t.lines
            .iter()
            .any(|l| l.contains("avps-bridge: link linux-rtos: rtos announced its console")),
        "{t}"
    );
    // What `cat` printed: the RTOS's own view of its partition.
    assert!(
        t.lines.iter().any(|l| l.contains(
            "[rtos] up at 0x60000000 on core 0x2; cores 0x2 0x3; memory 0x60000000+0x4000000"
        )),
        "{t}"
    );
}
