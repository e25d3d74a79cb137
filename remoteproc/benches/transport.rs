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
//! Reports b/a and d/c. Run with `cargo bench -p remoteproc --bench transport`;
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

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIPPED: the transport benchmark needs two cores");
        return;
    }
    let k = scale();
    let runs = 5;
    let a = median((0..runs).map(|_| ping_pong(200_000 * k)).collect());
    let b = median((0..runs).map(|_| rpmsg_round_trip(50_000 * k)).collect());
    let c = median((0..runs).map(|_| raw_ring(1_000_000 * k)).collect());
    let d_copy = median(
        (0..runs)
            .map(|_| rpmsg_throughput(500_000 * k, false))
            .collect(),
    );
    let d_zero = median(
        (0..runs)
            .map(|_| rpmsg_throughput(500_000 * k, true))
            .collect(),
    );
    let mb = |x: f64| x / 1e6;
    println!("transport on two pinned cores, median of {runs} runs");
    println!(
        "(a) cache-line ping-pong round trip      {:>10.0} ns",
        a.as_nanos()
    );
    println!(
        "(b) rpmsg round trip, 16-byte payload     {:>10.0} ns   b/a = {:.2}",
        b.as_nanos(),
        b.as_secs_f64() / a.as_secs_f64()
    );
    println!(
        "(c) raw SPSC ring, 496-byte slots          {:>10.0} MB/s",
        mb(c)
    );
    println!(
        "(d) rpmsg 496-byte payloads, copying       {:>10.0} MB/s   d/c = {:.2}",
        mb(d_copy),
        d_copy / c
    );
    println!(
        "(d) rpmsg 496-byte payloads, zero-copy     {:>10.0} MB/s   d/c = {:.2}",
        mb(d_zero),
        d_zero / c
    );
}
