//! The Linux + RTOS split's disks, measured under QEMU (TCG): Linux reads the
//! RTOS's RAM disk over the link (`/dev/avps/linux-rtos/block`: the kernel's
//! NBD client, the bridge, virtio-drivers' block driver over virtio-msg, our
//! block device in the RTOS) and, in the same boot, the virtio-mmio disk QEMU
//! attaches to Linux directly (`/dev/vda`: the kernel's own virtio-blk
//! driver), each with `avps-bridge read-bench` (no page cache): 1 MiB
//! sequential reads and 4 KiB random reads over 4 MiB, median of 5 runs,
//! and the ratio of the first to the second. Run with `cargo xtask bench
//! blk`, which builds the images.
//!
//! Not a test: it asserts nothing about time, it reports.

use std::time::Duration;

use boards::Board;
use tests::figures::{median, number_after};
use tests::qemu::Machine;
use tests::Scratch;

const RUNS: usize = 5;
const MIB: u32 = 4;
const DONE: &str = "bench: done";
const LINKED: &str = "/dev/avps/linux-rtos/block";
const DIRECT: &str = "/dev/vda";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scratch = Scratch::new("bench-blk");
    let (firmware, _) = tests::pack(
        "manifests/qemu-virt/linux-rtos.toml",
        &scratch,
        tests::Images::Real,
    );
    let mut machine = Machine::new(Board::by_name("qemu-virt").unwrap(), &firmware, None);
    tests::attach_linux_disk(&mut machine, &scratch);
    let command = format!(
        "for i in $(seq {RUNS}); do avps-bridge read-bench {LINKED} {MIB}; \
         avps-bridge read-bench {DIRECT} {MIB}; done; echo bench: do''ne\n"
    );
    eprintln!(
        "bench: booting the Linux + RTOS split; {RUNS} x ({LINKED}, {DIRECT}), {MIB} MiB each"
    );
    let t = tests::qemu::run_scripted(
        &machine,
        Duration::from_secs(900),
        &[("disk of rtos at", &command)],
        |l| l == DONE,
    )
    .expect("QEMU starts");
    if !t.reached {
        eprintln!("bench: the run did not finish:\n{t}");
        std::process::exit(1);
    }
    let runs = |device: &str, marker: &str| -> Vec<f64> {
        let prefix = format!("read-bench {device}: ");
        t.lines
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| number_after(l, marker, &[' ']))
            .collect()
    };
    let seq = |d| runs(d, "sequential 1 MiB reads ");
    let random = |d| runs(d, "random 4 KiB reads ");
    let (Some(seq_link), Some(seq_direct), Some(rnd_link), Some(rnd_direct)) = (
        median(seq(LINKED)),
        median(seq(DIRECT)),
        median(random(LINKED)),
        median(random(DIRECT)),
    ) else {
        eprintln!("bench: missing figures:\n{t}");
        std::process::exit(1);
    };
    println!("disks read by Linux, QEMU virt TCG, same boot ({RUNS} runs each, {MIB} MiB span):");
    println!("  over the link ({LINKED}, the RTOS's RAM disk):");
    println!("    1 MiB sequential, per run: {:?} MiB/s", seq(LINKED));
    println!("    4 KiB random, per run: {:?} reads/s", random(LINKED));
    println!("  direct ({DIRECT}, QEMU's virtio-mmio disk, Linux's virtio-blk driver):");
    println!("    1 MiB sequential, per run: {:?} MiB/s", seq(DIRECT));
    println!("    4 KiB random, per run: {:?} reads/s", random(DIRECT));
    println!("medians and ratios (link / direct; goal 0.5 or better):");
    println!(
        "  1 MiB sequential: {seq_link:.2} / {seq_direct:.2} MiB/s = {:.3}",
        seq_link / seq_direct
    );
    println!(
        "  4 KiB random: {rnd_link:.0} / {rnd_direct:.0} reads/s = {:.3}",
        rnd_link / rnd_direct
    );
}
