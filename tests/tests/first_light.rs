//! First light: the boot stage boots on each board's QEMU machine, prints what it
//! read from the device tree its loader handed over, and powers the machine off.
//! Every printed fact is checked against that same tree, read with `fdtget`.

use std::path::Path;
use std::time::Duration;

use boards::Board;
use tests::qemu::{Machine, Transcript};
use tests::{fdtget, Scratch};

/// Bare-metal first light takes well under a second under TCG; the deadline only
/// stops a hung machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn parse_hex(s: &str) -> u64 {
    let s = s
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("not hex: {s}"));
    u64::from_str_radix(s, 16).unwrap_or_else(|e| panic!("not hex: {s}: {e}"))
}

/// The value of `key=` in a `cpu:` line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn boot(board_name: &str, cores: Option<u32>, memory_mib: Option<u32>) -> (Transcript, Scratch) {
    let board = Board::by_name(board_name).expect("board in the table");
    let mut machine = Machine::new(board, &tests::boot_image(), tests::board_dtb(board));
    if let Some(c) = cores {
        machine.cores = c;
    }
    if let Some(m) = memory_mib {
        machine.memory_mib = m;
    }
    let scratch = Scratch::new(board_name);
    let raw = scratch.0.join("guest-raw.dtb");
    machine
        .guest_dtb(&raw)
        .expect("QEMU dumps the guest device tree");
    fdtget::normalise(&raw, &scratch.0.join("guest.dtb")).expect("dtc reads the guest tree");
    let transcript = tests::qemu::run(&machine, DEADLINE).expect("QEMU starts");
    assert!(
        transcript.exited_cleanly,
        "{board_name}: the boot stage must power the machine off by itself:\n{transcript}"
    );
    (transcript, scratch)
}

/// Checks every fact of the banner against the device tree QEMU gave the guest.
fn check_banner(board_name: &str, t: &Transcript, dtb: &Path) {
    assert!(
        t.value("board").starts_with(&format!("{board_name} (")),
        "board line:\n{t}"
    );
    let el = t.value("entry");
    assert!(
        el.starts_with("EL1,") || el.starts_with("EL2,"),
        "entry level:\n{t}"
    );

    // Cores: the count and every MPIDR, in tree order.
    let mpidrs = fdtget::cpu_mpidrs(dtb);
    assert!(!mpidrs.is_empty(), "the tree lists CPUs");
    assert_eq!(t.value("cpus"), mpidrs.len().to_string(), "cpu count:\n{t}");
    let printed: Vec<u64> = t
        .values("cpu")
        .map(|l| parse_hex(field(l, "mpidr").expect("mpidr field")))
        .collect();
    assert_eq!(printed, mpidrs, "MPIDRs:\n{t}");

    // Memory ranges.
    let ranges = fdtget::memory_ranges(dtb);
    assert!(!ranges.is_empty(), "the tree has memory");
    assert_eq!(
        t.value("memory ranges"),
        ranges.len().to_string(),
        "range count:\n{t}"
    );
    let printed: Vec<(u64, u64)> = t
        .values("memory")
        .map(|l| {
            let span = l.split_whitespace().next().unwrap();
            let (start, end) = span.split_once('-').unwrap();
            let (start, end) = (parse_hex(start), parse_hex(end));
            (start, end - start)
        })
        .collect();
    assert_eq!(printed, ranges, "memory ranges:\n{t}");

    // Console: the node stdout-path names, with its compatible.
    let console = fdtget::stdout_path(dtb).expect("tree names its console");
    let line = t.value("console");
    let (path, rest) = line.split_once(' ').unwrap();
    assert_eq!(path, console, "console node:\n{t}");
    let compatible = fdtget::string(dtb, &console, "compatible").unwrap();
    assert!(
        rest.starts_with(compatible.split_whitespace().next().unwrap()),
        "console compatible:\n{t}"
    );

    // Interrupt controller: the root's interrupt parent.
    let line = t.value("interrupt-controller");
    let path = line.split_whitespace().next().unwrap();
    let parent = fdtget::cells(dtb, "/", "interrupt-parent").expect("root interrupt-parent");
    let phandle = fdtget::cells(dtb, path, "phandle").expect("printed node exists with a phandle");
    assert_eq!(
        parent, phandle,
        "interrupt controller is the root's interrupt parent:\n{t}"
    );

    // Start method: the PSCI conduit, or spin-table release addresses per core.
    let method = t.value("start-method");
    match fdtget::string(dtb, "/psci", "method") {
        Some(conduit) => assert!(
            method.starts_with(&format!("psci conduit={conduit}")),
            "{t}"
        ),
        None => assert!(method.starts_with("no psci"), "{t}"),
    }
    let cpus: Vec<String> = fdtget::subnodes(dtb, "/cpus")
        .into_iter()
        .filter(|n| {
            fdtget::string(dtb, &format!("/cpus/{n}"), "device_type").as_deref() == Some("cpu")
        })
        .collect();
    for (cpu, line) in cpus.iter().zip(t.values("cpu")) {
        let node = format!("/cpus/{cpu}");
        let enable = fdtget::string(dtb, &node, "enable-method").unwrap_or_else(|| "none".into());
        assert_eq!(field(line, "enable-method"), Some(enable.as_str()), "{t}");
        let release =
            fdtget::cells(dtb, &node, "cpu-release-addr").map(|c| fdtget::numbers(&c, 2)[0]);
        assert_eq!(field(line, "release-addr").map(parse_hex), release, "{t}");
    }
    assert!(
        t.values("power-off").next().is_some(),
        "power-off line:\n{t}"
    );
}

#[test]
fn qemu_virt_gicv3_four_cores() {
    let (t, scratch) = boot("qemu-virt", None, None);
    let dtb = scratch.0.join("guest.dtb");
    check_banner("qemu-virt", &t, &dtb);
    assert_eq!(fdtget::cpu_mpidrs(&dtb).len(), 4);
    assert!(
        t.value("interrupt-controller").contains("arm,gic-v3"),
        "{t}"
    );
}

#[test]
fn qemu_virt_reports_what_it_is_given_not_a_fixed_layout() {
    let (t, scratch) = boot("qemu-virt", Some(2), Some(768));
    check_banner("qemu-virt", &t, &scratch.0.join("guest.dtb"));
    assert_eq!(t.value("cpus"), "2", "{t}");
    assert!(t.value("memory").ends_with("(768 MiB)"), "{t}");
}

#[test]
fn raspberry_pi_4() {
    let (t, scratch) = boot("rpi4", None, None);
    check_banner("rpi4", &t, &scratch.0.join("guest.dtb"));
}

#[test]
fn raspberry_pi_3() {
    let (t, scratch) = boot("rpi3", None, None);
    check_banner("rpi3", &t, &scratch.0.join("guest.dtb"));
}

#[test]
fn imx8mp_evk() {
    let (t, scratch) = boot("imx8mp-evk", None, None);
    check_banner("imx8mp-evk", &t, &scratch.0.join("guest.dtb"));
}
