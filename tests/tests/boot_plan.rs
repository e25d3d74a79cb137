//! The boot stage with a packed plan (`amp pack`): it finds the plan after
//! itself, decodes it and re-checks it against the machine it boots on, and
//! refuses, with the reason, a plan whose cores or memory this machine lacks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use boards::Board;
use partitioner::plan::Plan;
use tests::qemu::{Machine, Transcript};
use tests::Scratch;

const DEADLINE: Duration = Duration::from_secs(60);

fn packed(manifest: &str, scratch: &Scratch) -> (PathBuf, Plan) {
    tests::pack(manifest, scratch, tests::Images::StandIns)
}

fn boot(firmware: &Path, cores: u32, memory_mib: u32) -> Transcript {
    let board = Board::by_name("qemu-virt").unwrap();
    let mut machine = Machine::new(board, firmware, None);
    machine.cores = cores;
    machine.memory_mib = memory_mib;
    let t = tests::qemu::run(&machine, DEADLINE).expect("QEMU starts");
    assert!(
        t.exited_cleanly,
        "the boot stage powers the machine off:\n{t}"
    );
    t
}

#[test]
fn the_default_split_starts_linux_on_its_two_cores() {
    let scratch = Scratch::new("plan-ok");
    let (firmware, plan) = packed("manifests/qemu-virt/linux-rtos.toml", &scratch);
    let board = Board::by_name("qemu-virt").unwrap();
    let machine = Machine::new(board, &firmware, None);
    // Linux (Debian's kernel) runs in its partition until it looks for an init
    // the stand-in initramfs lacks; stop once it has brought up its cores.
    let t = tests::qemu::run_until(&machine, Duration::from_secs(120), |l| {
        l.contains("smp: Brought up")
    })
    .expect("QEMU starts");
    assert!(t.reached, "Linux did not bring up its cores:\n{t}");
    assert!(
        t.values("plan")
            .any(|l| l.starts_with("board qemu-virt, 2 partitions, 1 links")),
        "{t}"
    );
    for p in &plan.partitions {
        let cores: String = p.cores.iter().map(|c| format!(" {:#x}", c.1)).collect();
        let memory: String = p
            .memory
            .iter()
            .map(|m| format!(", memory {:#x}+{:#x}", m.0, m.1))
            .collect();
        let line = format!("partition {} cores{cores}{memory}", p.name);
        assert!(
            t.values("plan").any(|l| l == line),
            "missing `{line}`:\n{t}"
        );
    }
    assert_eq!(t.value("plan check"), "the plan fits this board", "{t}");
    // (The hand-off counter line varies with timing; its figure is for notes.)
    let steps: Vec<&str> = t
        .values("boot stage")
        .filter(|s| !s.starts_with("hand-off at"))
        .collect();
    assert_eq!(
        steps,
        [
            "moving to 0x7f000000, out of the partitions' memory",
            "running from its own region at 0x7f000000",
            "interrupt 33 to core 0x0",
            // Linux's virtio-mmio disk (SPI 47).
            "interrupt 79 to core 0x0",
            "interrupt 34 to core 0x2",
            "starting rtos on core 0x2 at 0x60000000",
            "entering linux at 0x40000000; the boot stage is done",
        ],
        "{t}"
    );
    // Linux sees exactly its two cores and its 512 MiB, from the tree the boot
    // stage wrote for it.
    assert!(
        t.lines
            .iter()
            .any(|l| l.ends_with("smp: Brought up 1 node, 2 CPUs")),
        "{t}"
    );
    assert!(
        t.has("node   0: [mem 0x0000000040000000-0x000000005fffffff]"),
        "{t}"
    );
}

#[test]
fn a_plan_naming_a_core_the_machine_lacks_is_refused() {
    let scratch = Scratch::new("plan-cores");
    let (firmware, _) = packed("manifests/qemu-virt/linux-rtos.toml", &scratch);
    // The plan gives cores 2 and 3 to the RTOS; this machine has two cores.
    let t = boot(&firmware, 2, 1024);
    assert_eq!(
        t.value("plan refused"),
        "partition rtos: core with MPIDR 0x2 is not on this board; nothing started",
        "{t}"
    );
    assert!(t.values("plan check").next().is_none(), "{t}");
}

#[test]
fn a_plan_with_memory_beyond_dram_is_refused() {
    let scratch = Scratch::new("plan-dram");
    let (firmware, _) = packed("manifests/qemu-virt/two-rtos.toml", &scratch);
    // 128 MiB of DRAM ends at 0x4800_0000, where rtos-b's memory begins.
    let t = boot(&firmware, 4, 128);
    assert_eq!(
        t.value("plan refused"),
        "partition rtos-b: memory 0x48000000+0x4000000 is outside this board's DRAM; nothing started",
        "{t}"
    );
}

#[test]
fn a_corrupted_packed_image_is_refused() {
    let scratch = Scratch::new("plan-corrupt");
    let (firmware, _) = packed("manifests/qemu-virt/two-rtos.toml", &scratch);
    let mut bytes = std::fs::read(&firmware).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&firmware, bytes).unwrap();
    let t = boot(&firmware, 4, 1024);
    assert_eq!(
        t.value("plan refused"),
        "a packed payload is corrupted (checksum mismatch); nothing started",
        "{t}"
    );
}

#[test]
fn two_rtos_partitions_see_only_their_share_and_exchange_100000_messages_each_way() {
    let scratch = Scratch::new("two-rtos");
    let (firmware, plan) = tests::pack(
        "manifests/qemu-virt/two-rtos.toml",
        &scratch,
        tests::Images::DemoRtos,
    );
    let t = boot(&firmware, 4, 1024);
    for p in &plan.partitions {
        // Each partition prints what its own device tree lists: its cores and
        // memory only. rtos-b owns no UART: its lines come over the link's
        // AVPS console and rtos-a prints them.
        let cores: String = p.cores.iter().map(|c| format!(" {:#x}", c.1)).collect();
        let memory: String = p
            .memory
            .iter()
            .map(|m| format!("; memory {:#x}+{:#x}", m.0, m.1))
            .collect();
        let prefix = format!("[{}] ", p.name);
        let said: Vec<&str> = t
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect();
        let up = format!("cores{cores}{memory}");
        assert!(
            said.iter()
                .any(|l| l.starts_with("up at ") && l.ends_with(&up)),
            "{} must say `{up}`:\n{t}",
            p.name
        );
        assert!(said.contains(&"cores up: 2"), "{t}");
        assert!(
            said.contains(
                &"link a-b: sent 100000, received 100000, errors 0, link errors 0 -- done"
            ),
            "{}'s exchange:\n{t}",
            p.name
        );
    }
    assert!(
        t.lines.iter().any(|l| l == "[rtos-a] all links done: ok"),
        "{t}"
    );
}

#[test]
fn three_partitions_relay_messages_along_a_chain_and_back_intact() {
    let scratch = Scratch::new("chain");
    let (firmware, plan) = tests::pack(
        "manifests/qemu-virt/rtos-chain.toml",
        &scratch,
        tests::Images::DemoRtos,
    );
    assert_eq!(plan.partitions.len(), 3);
    let t = boot(&firmware, 4, 1024);
    // rtos-1 and rtos-3 each send 100,000 checked messages; every one crosses
    // rtos-2, which forwards them between its two links.
    for (who, line) in [
        (
            "rtos-1",
            "link one-two: sent 100000, received 100000, errors 0, link errors 0 -- done",
        ),
        (
            "rtos-3",
            "link two-three: sent 100000, received 100000, errors 0, link errors 0 -- done",
        ),
        (
            "rtos-2",
            "relayed 200000 messages between one-two and two-three, link errors 0 -- done",
        ),
    ] {
        assert!(
            t.lines.iter().any(|l| *l == format!("[{who}] {line}")),
            "{who}:\n{t}"
        );
    }
    // rtos-3's log crossed two links to reach the UART.
    assert!(
        t.lines
            .iter()
            .any(|l| l.starts_with("[rtos-3] up at 0x48000000 on core 0x2; cores 0x2 0x3;")),
        "{t}"
    );
    assert!(
        t.lines.iter().any(|l| l == "[rtos-1] all links done: ok"),
        "{t}"
    );
}

/// Boots `manifests/<board>/two-rtos.toml` on that board's QEMU machine with
/// the board's real device tree, until rtos-a reports every link done.
fn two_rtos_on(board_name: &str) -> Transcript {
    let scratch = Scratch::new(board_name);
    let (firmware, _) = tests::pack(
        &format!("manifests/{board_name}/two-rtos.toml"),
        &scratch,
        tests::Images::DemoRtos,
    );
    let board = Board::by_name(board_name).unwrap();
    let machine = Machine::new(board, &firmware, tests::board_dtb(board));
    // Boards without PSCI cannot be powered off from a partition: stop at the end.
    let t = tests::qemu::run_until(&machine, DEADLINE, |l| l == "[rtos-a] all links done: ok")
        .expect("QEMU starts");
    assert!(t.reached, "{board_name}: rtos-a did not finish:\n{t}");
    t
}

fn assert_two_rtos_ran(t: &Transcript, a: u64, b: u64) {
    for line in [
        format!("[rtos-a] up at {a:#x} on core 0x0; cores 0x0 0x1; memory {a:#x}+0x4000000"),
        format!("[rtos-b] up at {b:#x} on core 0x2; cores 0x2 0x3; memory {b:#x}+0x4000000"),
        "[rtos-a] cores up: 2".into(),
        "[rtos-b] cores up: 2".into(),
        "[rtos-b] link a-b: sent 100000, received 100000, errors 0, link errors 0 -- done".into(),
        "[rtos-a] link a-b: sent 100000, received 100000, errors 0, link errors 0 -- done".into(),
    ] {
        assert!(t.lines.contains(&line), "missing `{line}`:\n{t}");
    }
}

#[test]
fn two_rtos_partitions_run_on_the_imx8mp_evk_with_its_real_device_tree() {
    // EL2, PSCI over smc, the i.MX UART, GICv3 at 0x3880_0000.
    let t = two_rtos_on("imx8mp-evk");
    assert!(t.value("entry").starts_with("EL2,"), "{t}");
    assert_two_rtos_ran(&t, 0x4000_0000, 0x4800_0000);
}

#[test]
fn two_rtos_partitions_run_on_the_raspberry_pi_4_released_from_the_spin_table() {
    // EL2, no PSCI (spin table), the mini-UART, a GIC-400 (GICv2 targets).
    let t = two_rtos_on("rpi4");
    assert!(
        t.value("start-method").starts_with("no psci, spin-table"),
        "{t}"
    );
    assert!(
        t.lines
            .iter()
            .any(|l| l.starts_with("boot stage: interrupt ") && l.ends_with(" to core 0x0")),
        "{t}"
    );
    assert_two_rtos_ran(&t, 0x1000_0000, 0x1800_0000);
}

#[test]
fn two_rtos_partitions_run_on_the_raspberry_pi_3_without_a_gic() {
    let t = two_rtos_on("rpi3");
    assert_two_rtos_ran(&t, 0x1000_0000, 0x1800_0000);
}
