//! Our rpmsg's half of the transport benchmark: (b) the 16-byte round trip and
//! (d) 496-byte throughput over `remoteproc::Link`. Included by `#[path]` from
//! remoteproc's transport bench and from rpmsg-lite-sys's, which measures
//! rpmsg-lite in the same rounds; needs `baseline` as a sibling module.

use std::sync::Barrier;
use std::time::Duration;

use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::window::Word;
use shmem::Window;

use super::baseline::{both_ready, page_aligned, pin, PAYLOAD};

const WINDOW: usize = 0x60000;
/// Messages per batch in (d): a streaming sender publishes its ring updates
/// once per batch ([`remoteproc::Link::batch`], [`remoteproc::Link::send_burst`]).
const BATCH: u64 = 32;
/// A word of (d)'s payload, whose bytes are all 7.
const WORD: u64 = u64::from_ne_bytes([7; 8]);

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
pub(crate) fn rpmsg_round_trip(rounds: u64) -> Duration {
    let (mem, skip) = page_aligned(WINDOW);
    let (mut h, mut r) = links(&mem[skip..]);
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        let ready = &ready;
        s.spawn(move || {
            pin(1);
            ready.wait();
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
        let start = both_ready(ready);
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
pub(crate) fn rpmsg_throughput(messages: u64, zero_copy: bool) -> f64 {
    let (mem, skip) = page_aligned(WINDOW);
    let (mut h, mut r) = links(&mem[skip..]);
    let ready = Barrier::new(2);
    let start = std::thread::scope(|s| {
        let ready = &ready;
        s.spawn(move || {
            pin(1);
            ready.wait();
            let mut buf = [0u8; PAYLOAD];
            let (mut got, mut sum) = (0, 0u64);
            while got < messages {
                // Everything pending, each message released inline and the
                // buffers published together (every eighth of the ring).
                let n = r
                    .dispatch(
                        |m| {
                            if zero_copy {
                                // Every word used where it lies.
                                sum = m.words().fold(sum, u64::wrapping_add);
                            } else {
                                m.copy_to(&mut buf).unwrap();
                                sum = sum.wrapping_add(u64::from(buf[0]));
                            }
                        },
                        |_| {},
                    )
                    .unwrap() as u64;
                if n == 0 {
                    // Nothing yet: wait as (c)'s consumer does. Polling
                    // flat out takes the ring's index line from the sender
                    // just as it stores to it.
                    std::hint::spin_loop();
                }
                got += n;
            }
            std::hint::black_box(sum);
        });
        pin(0);
        let start = both_ready(ready);
        let payload = [7u8; PAYLOAD];
        let mut sent = 0;
        while sent < messages {
            let n = if zero_copy {
                // A burst of up to BATCH messages, each produced in place
                // (the same bytes as `payload`), published together.
                h.send_burst(0x400, 0x401, BATCH.min(messages - sent) as usize, |tx| {
                    tx.write_words_with(0, PAYLOAD / 8, |_| WORD).ok()?;
                    Some(PAYLOAD)
                })
                .unwrap() as u64
            } else {
                let mut h = h.batch();
                let mut n = 0;
                while n < BATCH.min(messages - sent) && h.send(0x400, 0x401, &payload).unwrap() {
                    n += 1;
                }
                n
            };
            if n == 0 {
                // No free buffer: wait as (c)'s producer does.
                let _ = h.receive();
                std::hint::spin_loop();
            }
            sent += n;
        }
        start
    });
    // After the scope: the receiver has taken the last message.
    (messages * PAYLOAD as u64) as f64 / start.elapsed().as_secs_f64()
}
