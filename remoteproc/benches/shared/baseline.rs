//! The parts of the transport benchmark that do not depend on the transport
//! under test: thread pinning, the two physical baselines ((a) cache-line
//! ping-pong, (c) raw SPSC ring of 496-byte slots) and the report. Shared by
//! `remoteproc/benches/transport.rs` (ours) and
//! `rpmsg-lite-sys/benches/transport.rs` (rpmsg-lite), both including this
//! file with `#[path]`, so the two measure against the same code and print the
//! same table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use shmem::window::Word;
use shmem::Window;

/// The throughput payload: rpmsg's 512-byte buffer less its 16-byte header.
pub(crate) const PAYLOAD: usize = 496;

/// Page size: every window in these benchmarks starts on a page.
const PAGE: usize = 4096;

/// Rounds of the five interleaved measurements.
pub(crate) const ROUNDS: usize = 5;

/// `AMP_BENCH_SCALE` (default 1): multiplies the iteration counts.
pub(crate) fn scale() -> u64 {
    std::env::var("AMP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// At least `bytes` of zeroed words, and the index of the first word on a
/// page boundary: every window in these benchmarks starts on a page, as a
/// mapped one does. (Where an allocation happens to start moved (c) by half
/// between two binaries; and a large one, mapped by the C library, starts 16
/// bytes past a page, which put each of our 512-byte buffers across nine
/// cache lines, the last shared with the next buffer's header.)
pub(crate) fn page_aligned(bytes: usize) -> (Vec<Word>, usize) {
    let words: Vec<Word> = (0..(bytes + PAGE) / 8).map(|_| Word::new(0)).collect();
    let skip = words.as_ptr().align_offset(PAGE);
    (words, skip)
}

/// Pins the calling thread to `cpu`; says so loudly when it cannot.
pub(crate) fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it;
    // sched_setaffinity reads it for the calling thread only.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        eprintln!("warning: could not pin a thread to CPU {cpu}; figures are less stable");
    }
}

#[repr(align(128))]
struct Line(AtomicU64);

/// Every measurement starts its clock only once both of its threads are
/// pinned and have met here: thread start-up and migration are not measured,
/// nor a side that starts late (a producer running alone fills the ring and
/// then waits, which would be charged to the transport).
pub(crate) fn both_ready(barrier: &Barrier) -> Instant {
    barrier.wait();
    Instant::now()
}

/// (a) Round trips of one cache line between two cores.
pub(crate) fn ping_pong(rounds: u64) -> Duration {
    let (ping, pong) = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1);
            ready.wait();
            for i in 1..=rounds {
                while ping.0.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.0.store(i, Ordering::Release);
            }
        });
        pin(0);
        let start = both_ready(&ready);
        for i in 1..=rounds {
            ping.0.store(i, Ordering::Release);
            while pong.0.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
        }
        start.elapsed() / rounds as u32
    })
}

/// (c) A raw SPSC ring of 496-byte slots; returns bytes per second. Each side
/// keeps the other's index and reads it again only when the ring looks full
/// (producer) or empty (consumer): the fastest any shared-memory ring can be.
pub(crate) fn raw_ring(messages: u64) -> f64 {
    const SLOTS: usize = 256;
    let (slots, skip) = page_aligned(SLOTS * PAYLOAD);
    let window = Window::from_words(&slots[skip..]);
    let (head, tail) = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    let ready = Barrier::new(2);
    let start = std::thread::scope(|s| {
        s.spawn(|| {
            pin(1);
            ready.wait();
            let mut buf = [0u8; PAYLOAD];
            let (mut sum, mut seen_head) = (0u64, 0u64);
            for i in 0..messages {
                while seen_head == i {
                    seen_head = head.0.load(Ordering::Acquire);
                    std::hint::spin_loop();
                }
                window
                    .read_bytes((i as usize % SLOTS) * PAYLOAD, &mut buf)
                    .unwrap();
                sum = sum.wrapping_add(u64::from(buf[0]));
                tail.0.store(i + 1, Ordering::Release);
            }
            std::hint::black_box(sum);
        });
        pin(0);
        let start = both_ready(&ready);
        let buf = [7u8; PAYLOAD];
        let mut seen_tail = 0u64;
        for i in 0..messages {
            while i - seen_tail >= SLOTS as u64 {
                seen_tail = tail.0.load(Ordering::Acquire);
                std::hint::spin_loop();
            }
            window
                .write_bytes((i as usize % SLOTS) * PAYLOAD, &buf)
                .unwrap();
            head.0.store(i + 1, Ordering::Release);
        }
        start
    });
    // After the scope: the consumer has taken the last slot.
    (messages * PAYLOAD as u64) as f64 / start.elapsed().as_secs_f64()
}

/// Whether this machine has the two cores the benchmark pins to; says
/// `SKIPPED` when not.
pub(crate) fn two_cores(what: &str) -> bool {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIPPED: the {what} benchmark needs two cores");
        return false;
    }
    true
}

/// A transport under test: (b) `round_trip(iterations)`, time per round trip
/// with 16-byte payloads; (d) `throughput(messages, zero_copy)`, bytes per
/// second with 496-byte payloads. `name` labels its rows.
pub(crate) struct Transport<'a> {
    pub(crate) name: &'a str,
    pub(crate) round_trip: &'a dyn Fn(u64) -> Duration,
    pub(crate) throughput: &'a dyn Fn(u64, bool) -> f64,
}

/// One transport's figures over the rounds: (b) in ns, (d) in MB/s.
#[derive(Default)]
struct Figures {
    b: Vec<f64>,
    d_copy: Vec<f64>,
    d_zero: Vec<f64>,
}

/// Measures `ROUNDS` rounds, each running (a), every transport's (b), (c),
/// every transport's (d) copying and zero-copy, side by side; then prints
/// the medians (min .. max) and each transport's b/a and d/c.
///
/// Each ratio is taken within a round: where the two threads land (same core
/// complex or not) can change between rounds on a shared or virtual machine,
/// and a ratio across rounds would compare two different machines. For the
/// same reason transports compared with each other are best measured in one
/// run.
pub(crate) fn run(transports: &[Transport<'_>]) {
    let k = scale();
    let (mut a, mut c) = (vec![], vec![]);
    let mut figures: Vec<Figures> = transports.iter().map(|_| Figures::default()).collect();
    for _ in 0..ROUNDS {
        a.push(ping_pong(200_000 * k).as_secs_f64() * 1e9);
        for (t, f) in transports.iter().zip(&mut figures) {
            f.b.push((t.round_trip)(50_000 * k).as_secs_f64() * 1e9);
        }
        c.push(raw_ring(1_000_000 * k) / 1e6);
        for (t, f) in transports.iter().zip(&mut figures) {
            f.d_copy.push((t.throughput)(500_000 * k, false) / 1e6);
            f.d_zero.push((t.throughput)(500_000 * k, true) / 1e6);
        }
    }
    let ratio =
        |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(x, y)| x / y).collect() };
    let row = |label: &str, unit: &str, v: &[f64]| {
        let (lo, hi) = spread(v);
        println!(
            "{label:<42} {:>8.0} {unit:<5} ({lo:.0} .. {hi:.0})",
            median(v.to_vec())
        );
    };
    let ratio_row = |label: &str, v: &[f64]| {
        let (lo, hi) = spread(v);
        println!(
            "{label:<42} {:>8.2}       ({lo:.2} .. {hi:.2})",
            median(v.to_vec())
        );
    };
    let names: Vec<&str> = transports.iter().map(|t| t.name).collect();
    println!(
        "transport ({}) on two pinned cores: median of {ROUNDS} rounds (min .. max)",
        names.join(", ")
    );
    row("(a) cache-line ping-pong round trip", "ns", &a);
    for (t, f) in transports.iter().zip(&figures) {
        row(
            &format!("(b) {} round trip, 16-byte payload", t.name),
            "ns",
            &f.b,
        );
    }
    row("(c) raw SPSC ring, 496-byte slots", "MB/s", &c);
    for (t, f) in transports.iter().zip(&figures) {
        let name = t.name;
        row(&format!("(d) {name} 496-byte, copying"), "MB/s", &f.d_copy);
        row(
            &format!("(d) {name} 496-byte, zero-copy"),
            "MB/s",
            &f.d_zero,
        );
    }
    for (t, f) in transports.iter().zip(&figures) {
        let name = t.name;
        ratio_row(&format!("{name} b/a (per round)"), &ratio(&f.b, &a));
        ratio_row(
            &format!("{name} d/c copying (per round)"),
            &ratio(&f.d_copy, &c),
        );
        ratio_row(
            &format!("{name} d/c zero-copy (per round)"),
            &ratio(&f.d_zero, &c),
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}
