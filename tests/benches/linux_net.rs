//! The Linux + RTOS split's network device, measured under QEMU (TCG): ping
//! round trip and TCP echo throughput from Linux to the RTOS over the link,
//! each the median of 5 runs, set against what the RTOS's own stack does
//! alone on a loopback interface in the same boot (a 0-byte ICMP echo, 1 MiB
//! of TCP echo), and against Linux pinging its own loopback interface (what
//! a ping costs Linux itself under TCG). Run with `cargo xtask bench`, which
//! builds the images.
//!
//! Not a test: it asserts nothing about time, it reports.

use std::time::Duration;

use boards::Board;
use tests::qemu::Machine;
use tests::Scratch;

use tests::figures::{median, number_after};

const RUNS: usize = 5;
const PINGS: u32 = 10;
const DONE: &str = "bench: done";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scratch = Scratch::new("bench-net");
    let (firmware, _) = tests::pack(
        "manifests/qemu-virt/linux-rtos.toml",
        &scratch,
        tests::Images::Real,
    );
    let mut machine = Machine::new(Board::by_name("qemu-virt").unwrap(), &firmware, None);
    tests::attach_linux_disk(&mut machine, &scratch);
    let command = format!(
        "for i in $(seq {RUNS}); do ping -c {PINGS} -i 0.2 127.0.0.1; done; \
         for i in $(seq {RUNS}); do ping -c {PINGS} -i 0.2 10.77.0.2; done; \
         for i in $(seq {RUNS}); do avps-bridge echo; done; echo {DONE}\n"
    );
    eprintln!(
        "bench: booting the Linux + RTOS split; {RUNS} x {PINGS} pings, {RUNS} x 1 MiB TCP echo"
    );
    let t = tests::qemu::run_scripted(
        &machine,
        Duration::from_secs(600),
        &[
            (
                "network device of rtos up",
                "cat /dev/avps/linux-rtos/console &\n",
            ),
            ("TCP echo through the stack alone", &command),
        ],
        |l| l == DONE,
    )
    .expect("QEMU starts");
    if !t.reached {
        eprintln!("bench: the run did not finish:\n{t}");
        std::process::exit(1);
    }
    // Each ping run: the median of its round trips, in ms.
    let ping_runs = |target: &str| -> Vec<f64> {
        let mut runs = Vec::new();
        let mut times = Vec::new();
        for l in &t.lines {
            if l.contains(&format!("bytes from {target}:")) {
                times.extend(number_after(l, "time=", &[' ']));
            } else if l.contains(&format!("--- {target} ping statistics")) {
                runs.extend(median(std::mem::take(&mut times)));
            }
        }
        runs
    };
    let pings = ping_runs("10.77.0.2");
    let local_pings = ping_runs("127.0.0.1");
    let echoes: Vec<f64> = t
        .lines
        .iter()
        .filter(|l| l.contains("bytes came back identical"))
        .filter_map(|l| number_after(l, "s (", &[' ']))
        .collect();
    let loop_echo_ns = t
        .lines
        .iter()
        .filter_map(|l| {
            number_after(l, "(loopback): ", &[' ']).filter(|_| l.contains("0-byte echo"))
        })
        .next();
    let loop_tcp = t
        .lines
        .iter()
        .filter_map(|l| number_after(l, "(loopback): ", &[' ']).filter(|_| l.contains("TCP echo")))
        .next();
    let (Some(ping_ms), Some(local_ms), Some(echo_kib), Some(loop_ns), Some(loop_kib)) = (
        median(pings.clone()),
        median(local_pings.clone()),
        median(echoes.clone()),
        loop_echo_ns,
        loop_tcp,
    ) else {
        eprintln!("bench: missing figures (pings {pings:?}, echoes {echoes:?}):\n{t}");
        std::process::exit(1);
    };
    let ping_us = ping_ms * 1000.0;
    let loop_us = loop_ns / 1000.0;
    println!("network device, Linux -> RTOS over the link, QEMU virt TCG ({RUNS} runs each):");
    println!("  ping round trip (median of {PINGS}, 56-byte payload), per run: {pings:?} ms");
    println!("  TCP echo of 1 MiB, per run: {echoes:?} KiB/s each way");
    println!("the RTOS's stack alone, loopback interface, same boot:");
    println!("  0-byte ICMP echo round trip: {loop_us:.1} us (median of 5 x 1000)");
    println!("  TCP echo of 1 MiB: {loop_kib:.0} KiB/s (median of 5)");
    println!("Linux alone, same boot:");
    println!("  ping 127.0.0.1 (median of {PINGS}), per run: {local_pings:?} ms");
    println!("medians and ratios:");
    println!(
        "  ping {ping_us:.0} us = {:.0} x the RTOS stack-alone round trip, {:.1} x Linux's own loopback ping ({:.0} us)",
        ping_us / loop_us,
        ping_ms / local_ms,
        local_ms * 1000.0
    );
    println!(
        "  TCP echo {echo_kib:.1} KiB/s = {:.3} of the stack-alone throughput",
        echo_kib / loop_kib
    );
}
