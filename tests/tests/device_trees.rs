//! The boot stage's device-tree reader (`amp_plan::dt`, the same code the
//! firmware runs) agrees with `fdtget` on the real board trees: the files from
//! Debian's arm64 kernel package as shipped, and QEMU virt's own tree.

use std::path::Path;

use amp_plan::dt::{DeviceTree, Located};
use boards::{Board, DtbSource};
use tests::qemu::Machine;
use tests::{fdtget, Scratch};

fn path_of(node: &Located<'_>) -> String {
    node.path_segments().map(|n| format!("/{n}")).collect()
}

fn agree(name: &str, dtb: &Path) {
    let blob = std::fs::read(dtb).unwrap();
    let tree = DeviceTree::new(&blob).unwrap_or_else(|e| panic!("{name}: {}", e.as_str()));

    let ours: Vec<u64> = tree.cpus().map(|c| c.mpidr.expect("cpu reg")).collect();
    assert_eq!(ours, fdtget::cpu_mpidrs(dtb), "{name}: cpus");
    for (cpu, node) in tree.cpus().zip(fdtget::cpu_nodes(dtb)) {
        assert_eq!(
            cpu.enable_method,
            fdtget::string(dtb, &node, "enable-method").as_deref()
        );
        let release =
            fdtget::cells(dtb, &node, "cpu-release-addr").map(|c| fdtget::numbers(&c, 2)[0]);
        assert_eq!(cpu.release_addr, release, "{name}: {node} release address");
    }

    let ours: Vec<(u64, u64)> = tree.memory().map(|r| (r.base, r.size)).collect();
    assert_eq!(ours, fdtget::memory_ranges(dtb), "{name}: memory");

    let console = tree.stdout().expect("console");
    assert_eq!(
        Some(path_of(&console)),
        fdtget::stdout_path(dtb),
        "{name}: console"
    );
    assert!(
        console.reg().is_some(),
        "{name}: console address translates"
    );

    let intc = tree.interrupt_controller().expect("interrupt controller");
    assert!(
        fdtget::is_root_interrupt_parent(dtb, &path_of(&intc)),
        "{name}: interrupt parent"
    );

    assert_eq!(
        tree.psci_method(),
        fdtget::string(dtb, "/psci", "method").as_deref(),
        "{name}: psci"
    );
    assert_eq!(
        Board::from_compatibles(tree.compatibles()).map(|b| b.name),
        Some(name),
        "{name}: board recognised"
    );
}

#[test]
fn debian_board_trees_as_shipped() {
    for board in boards::BOARDS {
        if let Some(dtb) = tests::board_dtb(board) {
            agree(board.name, &dtb);
        }
    }
}

#[test]
fn qemu_virt_tree() {
    let board = Board::by_name("qemu-virt").unwrap();
    assert_eq!(board.dtb, DtbSource::QemuGenerated);
    let scratch = Scratch::new("virt-dtb");
    let machine = Machine::new(board, Path::new("/dev/null"), None);
    let dtb = scratch.0.join("virt.dtb");
    machine.guest_dtb(&dtb).expect("QEMU dumps its tree");
    agree("qemu-virt", &dtb);
}

#[test]
fn truncated_and_corrupted_trees_are_refused_not_panicked_on() {
    let board = boards::BOARDS
        .iter()
        .find(|b| tests::board_dtb(b).is_some())
        .unwrap();
    let blob = std::fs::read(tests::board_dtb(board).unwrap()).unwrap();
    for len in [0, 7, 39, 40, blob.len() / 2, blob.len() - 1] {
        assert!(
            DeviceTree::new(&blob[..len]).is_err(),
            "truncated to {len} bytes"
        );
    }
    // Flip bytes across the structure block: each result is either a clean
    // error or a tree whose queries all return.
    for i in (0..blob.len()).step_by(97) {
        let mut bad = blob.clone();
        bad[i] ^= 0xa5;
        if let Ok(tree) = DeviceTree::new(&bad) {
            let _ = (
                tree.cpus().count(),
                tree.memory().count(),
                tree.psci_method(),
            );
            let _ = (
                tree.stdout().map(|s| s.reg()),
                tree.interrupt_controller().map(|s| s.reg()),
            );
        }
    }
}
