//! Two threads, one window: a host and a remote exchange messages of random
//! sizes between random endpoints, both ways at once, through the zero-copy
//! API (lent buffers one at a time and bursts, in turn). Every message is
//! checked for sequence (nothing lost, duplicated or reordered), addresses,
//! length and checksum; full rings must only slow the sender down.
//!
//! `AMP_STRESS_MESSAGES` sets the count per direction (default 100 000, about a
//! second each in a debug build); the acceptance run uses 10 000 000 in `--release`.

mod common;
#[path = "shared/messages.rs"]
mod messages;

use common::*;
use messages::{checksum, mix};
use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::Window;
use std::time::{Duration, Instant};

const HOST_EPTS: [u32; 3] = [1024, 1025, 1026];
const REMOTE_EPTS: [u32; 3] = [2048, 2049, 2050];

fn messages() -> u64 {
    std::env::var("AMP_STRESS_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// What message `seq` in direction `dir` must look like: (src index, dst
/// index, payload length 12..=496). The endpoints change every four
/// messages (a run a burst can send), the length with each.
fn shape(dir: u64, seq: u64) -> (usize, usize, usize) {
    let (e, h) = (mix((seq / 4) ^ (dir << 63)), mix(seq ^ (dir << 63)));
    (
        (e % 3) as usize,
        ((e >> 8) % 3) as usize,
        12 + ((h >> 16) % 485) as usize,
    )
}

fn fill(dir: u64, seq: u64, buf: &mut [u8]) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let mut x = mix(seq.wrapping_mul(3) ^ dir);
    for chunk in buf[8..n - 4].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let c = checksum(&buf[..n - 4]);
    buf[n - 4..].copy_from_slice(&c.to_le_bytes());
}

/// One side's loop: send `count` messages, receive `count`, check each.
fn run_side(link: &mut Link<'_, Polling, 256, 4>, role: Role, count: u64) -> (u64, u64) {
    let (mine, theirs, out_dir) = match role {
        Role::Host => (HOST_EPTS, REMOTE_EPTS, 0),
        Role::Remote => (REMOTE_EPTS, HOST_EPTS, 1),
    };
    for a in mine {
        link.create_endpoint(Some(a)).unwrap();
    }
    let (mut sent, mut received, mut full) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 512];
    let mut last_progress = Instant::now();
    let mut round = 0u64;
    while sent < count || received < count {
        let mut progress = false;
        round += 1;
        // Every other round sends in bursts (one per run of messages with
        // the same endpoints), the others one lent buffer at a time.
        while round.is_multiple_of(2) && sent < count {
            let (s, d, _) = shape(out_dir, sent);
            let run = (sent..count.min(sent + 32))
                .take_while(|&i| shape(out_dir, i).0 == s && shape(out_dir, i).1 == d)
                .count();
            let mut seq = sent;
            let n = link
                .send_burst(mine[s], theirs[d], run, |tx| {
                    let len = shape(out_dir, seq).2;
                    fill(out_dir, seq, &mut buf[..len]);
                    tx.write(0, &buf[..len]).ok()?;
                    seq += 1;
                    Some(len)
                })
                .unwrap();
            sent += n as u64;
            progress |= n != 0;
            if n < run {
                full += 1;
                break;
            }
        }
        for _ in 0..32 {
            if sent == count || round.is_multiple_of(2) {
                break;
            }
            match link.alloc_tx().unwrap() {
                Some(mut tx) => {
                    let (s, d, len) = shape(out_dir, sent);
                    fill(out_dir, sent, &mut buf[..len]);
                    tx.write(0, &buf[..len]).unwrap();
                    link.send_buffer(tx, mine[s], theirs[d], len).unwrap();
                    sent += 1;
                    progress = true;
                }
                None => {
                    full += 1;
                    break;
                }
            }
        }
        loop {
            match link.receive().unwrap() {
                Some(Incoming::Message(m)) => {
                    let (s, d, len) = shape(1 - out_dir, received);
                    assert_eq!(
                        (m.src(), m.dst(), m.len()),
                        (theirs[s], mine[d], len),
                        "message {received}"
                    );
                    let n = m.copy_to(&mut buf).unwrap();
                    assert_eq!(
                        u64::from_le_bytes(buf[..8].try_into().unwrap()),
                        received,
                        "sequence"
                    );
                    let c = u32::from_le_bytes(buf[n - 4..n].try_into().unwrap());
                    assert_eq!(checksum(&buf[..n - 4]), c, "checksum of message {received}");
                    link.release(m).unwrap();
                    received += 1;
                    progress = true;
                }
                Some(Incoming::Service(s)) => panic!("unexpected {s:?}"),
                None => break,
            }
        }
        if progress {
            last_progress = Instant::now();
        } else {
            assert!(
                last_progress.elapsed() < Duration::from_secs(20),
                "{role:?} stalled: sent {sent}, received {received}"
            );
            std::thread::yield_now();
        }
    }
    // Let the peer finish draining before this side's link is dropped.
    (received, full)
}

fn stress(host: LinkConfig, remote: LinkConfig) {
    let count = messages();
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut r: Link<'_, Polling, 256, 4> = Link::new(w, remote, Polling).unwrap();
    let mut h: Link<'_, Polling, 256, 4> = Link::new(w, host, Polling).unwrap();
    h.poll().unwrap();
    r.poll().unwrap();
    assert!(h.is_up() && r.is_up());
    let start = Instant::now();
    let ((hr, hfull), (rr, rfull)) = std::thread::scope(|s| {
        let a = s.spawn(|| run_side(&mut h, Role::Host, count));
        let b = s.spawn(|| run_side(&mut r, Role::Remote, count));
        (a.join().unwrap(), b.join().unwrap())
    });
    let t = start.elapsed();
    assert_eq!((hr, rr), (count, count));
    assert_eq!(h.stats().ring_errors + r.stats().ring_errors, 0);
    assert_eq!(h.stats().received, count);
    assert_eq!(r.stats().sent, count);
    eprintln!(
        "{count} messages each way in {:.2?} ({:.0} ns per message per direction); full-ring waits: host {hfull}, remote {rfull}",
        t,
        t.as_nanos() as f64 / count as f64
    );
}

#[test]
fn two_threads_resource_table_layout_with_event_index() {
    let mut hc = ours(Role::Host, 256);
    let mut rc = ours(Role::Remote, 256);
    hc.event_idx = true;
    rc.event_idx = true;
    stress(hc, rc);
}

#[test]
fn two_threads_rpmsg_lite_layout() {
    let mut hc = lite_config(Role::Host, 256);
    let mut rc = lite_config(Role::Remote, 256);
    // Both sides ours: the epoch header after the buffers.
    hc.header = Some(HEADER);
    rc.header = Some(HEADER);
    stress(hc, rc);
}

/// A benchmark harness drives each end from its own thread, as here: the link
/// types must stay `Send` (and the window `Sync`).
#[test]
fn links_and_windows_cross_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Link<'static, Polling, 256, 16>>();
    send::<remoteproc::TxBuffer<'static>>();
    send::<remoteproc::RxMessage<'static>>();
    sync::<Window<'static>>();
}
