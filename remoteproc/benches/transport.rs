//! The transport against the physical limits of this machine, measured side by
//! side in one run on two pinned cores (threads standing in for partitions,
//! a heap region for the shared window):
//!
//! (a) raw cache-line ping-pong round trip: the latency floor;
//! (b) rpmsg round trip with 16-byte payloads;
//! (c) a raw single-producer single-consumer ring of 496-byte slots, copy in and
//!     copy out: the throughput ceiling of any shared-memory transport;
//! (d) rpmsg throughput with 496-byte payloads, copying (`send` / `copy_to`) and
//!     zero-copy (fill the TX buffer in place / read the RX buffer in place).
//!
//! Reports b/a and d/c, each taken within one round of the five measurements
//! (the median over rounds, with the spread). Run with `cargo bench -p remoteproc --bench transport`;
//! `AMP_BENCH_SCALE` (default 1) multiplies the iteration counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::window::Word;
use shmem::Window;

const PAYLOAD: usize = 496;

fn scale() -> u64 {
    std::env::var("AMP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Pins the calling thread to `cpu`; says so loudly when it cannot.
fn pin(cpu: usize) {
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

/// (a) Round trips of one cache line between two cores.
fn ping_pong(rounds: u64) -> Duration {
    let (ping, pong) = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1);
            for i in 1..=rounds {
                while ping.0.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.0.store(i, Ordering::Release);
            }
        });
        pin(0);
        let start = Instant::now();
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
fn raw_ring(messages: u64) -> f64 {
    const SLOTS: usize = 256;
    let slots: Vec<Word> = (0..SLOTS * PAYLOAD / 8 + 1).map(|_| Word::new(0)).collect();
    let window = Window::from_words(&slots);
    let (head, tail) = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1);
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
    });
    (messages * PAYLOAD as u64) as f64 / start.elapsed().as_secs_f64()
}

const WINDOW: usize = 0x60000;

fn config(role: Role) -> LinkConfig {
    let mut c = LinkConfig::resource_table(role, 0, [0x1000, 0x4000], 0x8000, 256);
    c.header = Some(0x5_8000);
    c.renotify_interval = 0;
    c
}

fn links(mem: &[Word]) -> (Link<'_, Polling, 256, 4>, Link<'_, Polling, 256, 4>) {
    let w = Window::from_words(mem);
    let mut r = Link::new(w, config(Role::Remote), Polling).expect("remote");
    let mut h = Link::new(w, config(Role::Host), Polling).expect("host");
    h.poll().unwrap();
    r.poll().unwrap();
    assert!(h.is_up() && r.is_up(), "link up");
    h.create_endpoint(Some(0x400)).unwrap();
    r.create_endpoint(Some(0x401)).unwrap();
    (h, r)
}

/// (b) rpmsg round trips with 16-byte payloads.
fn rpmsg_round_trip(rounds: u64) -> Duration {
    let mem: Vec<Word> = (0..WINDOW / 8).map(|_| Word::new(0)).collect();
    let (mut h, mut r) = links(&mem);
    std::thread::scope(|s| {
        s.spawn(move || {
            pin(1);
            let mut buf = [0u8; 16];
            let mut echoed = 0;
            while echoed < rounds {
                if let Ok(Some(Incoming::Message(m))) = r.receive() {
                    let n = m.copy_to(&mut buf).unwrap();
                    r.release(m).unwrap();
                    while !r.send(0x401, 0x400, &buf[..n]).unwrap() {}
                    echoed += 1;
                }
            }
        });
        pin(0);
        let payload = [1u8; 16];
        let mut buf = [0u8; 16];
        let start = Instant::now();
        for _ in 0..rounds {
            while !h.send(0x400, 0x401, &payload).unwrap() {}
            loop {
                if let Ok(Some(Incoming::Message(m))) = h.receive() {
                    m.copy_to(&mut buf).unwrap();
                    h.release(m).unwrap();
                    break;
                }
            }
        }
        start.elapsed() / rounds as u32
    })
}

/// (d) rpmsg one-way throughput with 496-byte payloads; bytes per second.
fn rpmsg_throughput(messages: u64, zero_copy: bool) -> f64 {
    let mem: Vec<Word> = (0..WINDOW / 8).map(|_| Word::new(0)).collect();
    let (mut h, mut r) = links(&mem);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            pin(1);
            let mut buf = [0u8; PAYLOAD];
            let (mut got, mut sum) = (0, 0u64);
            while got < messages {
                if let Ok(Some(Incoming::Message(m))) = r.receive() {
                    if zero_copy {
                        m.read(0, &mut buf).unwrap();
                    } else {
                        m.copy_to(&mut buf).unwrap();
                    }
                    sum = sum.wrapping_add(u64::from(buf[0]));
                    r.release(m).unwrap();
                    got += 1;
                }
            }
            std::hint::black_box(sum);
        });
        pin(0);
        let payload = [7u8; PAYLOAD];
        let mut sent = 0;
        while sent < messages {
            if zero_copy {
                if let Some(mut tx) = h.alloc_tx().unwrap() {
                    tx.write(0, &payload).unwrap();
                    h.send_buffer(tx, 0x400, 0x401, PAYLOAD).unwrap();
                    sent += 1;
                } else {
                    let _ = h.receive();
                }
            } else if h.send(0x400, 0x401, &payload).unwrap() {
                sent += 1;
            } else {
                let _ = h.receive();
            }
        }
    });
    (messages * PAYLOAD as u64) as f64 / start.elapsed().as_secs_f64()
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

fn main() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIPPED: the transport benchmark needs two cores");
        return;
    }
    let k = scale();
    let runs = 5;
    // Each round measures all five side by side, and each ratio is taken within
    // a round: where the two threads land (same core complex or not) can change
    // between rounds on a shared or virtual machine, and a ratio across rounds
    // would compare two different machines.
    let (mut a, mut b, mut c, mut d_copy, mut d_zero) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        a.push(ping_pong(200_000 * k).as_secs_f64() * 1e9);
        b.push(rpmsg_round_trip(50_000 * k).as_secs_f64() * 1e9);
        c.push(raw_ring(1_000_000 * k) / 1e6);
        d_copy.push(rpmsg_throughput(500_000 * k, false) / 1e6);
        d_zero.push(rpmsg_throughput(500_000 * k, true) / 1e6);
    }
    let ratio =
        |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(x, y)| x / y).collect() };
    let (ba, dc_copy, dc_zero) = (ratio(&b, &a), ratio(&d_copy, &c), ratio(&d_zero, &c));
    let row = |name: &str, unit: &str, v: &[f64]| {
        let (lo, hi) = spread(v);
        println!(
            "{name:<42} {:>8.0} {unit:<5} ({lo:.0} .. {hi:.0})",
            median(v.to_vec())
        );
    };
    let ratio_row = |name: &str, v: &[f64]| {
        let (lo, hi) = spread(v);
        println!(
            "{name:<42} {:>8.2}       ({lo:.2} .. {hi:.2})",
            median(v.to_vec())
        );
    };
    println!("transport on two pinned cores: median of {runs} rounds (min .. max)");
    row("(a) cache-line ping-pong round trip", "ns", &a);
    row("(b) rpmsg round trip, 16-byte payload", "ns", &b);
    row("(c) raw SPSC ring, 496-byte slots", "MB/s", &c);
    row("(d) rpmsg 496-byte payloads, copying", "MB/s", &d_copy);
    row("(d) rpmsg 496-byte payloads, zero-copy", "MB/s", &d_zero);
    ratio_row("b/a (per round)", &ba);
    ratio_row("d/c copying (per round)", &dc_copy);
    ratio_row("d/c zero-copy (per round)", &dc_zero);
}
