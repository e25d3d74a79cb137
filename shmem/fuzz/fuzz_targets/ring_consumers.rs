//! Arbitrary shared-window contents and arbitrary peer writes between calls,
//! against both virtqueue sides and both rpmsg roles. Asserts: no panic, no
//! hang (every call is bounded), nothing written outside the window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::virtqueue::{Notification, RingLayout, Segment};
use shmem::window::Word;
use shmem::{DeviceQueue, DriverQueue, Window};

const BUS: u64 = 0x7000_0000;
const GUARD: usize = 0x100;
const WINDOW: usize = 0x14000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let mem: Vec<Word> = (0..(WINDOW + 2 * GUARD) / 8).map(|_| Word::new(0)).collect();
    let whole = Window::from_words(&mem);
    whole.fill(0, WINDOW + 2 * GUARD, 0x5a).unwrap();
    let w = whole.slice(GUARD, WINDOW).unwrap().with_bus_address(BUS);
    w.fill(0, WINDOW, 0).unwrap();

    let (ctl, rest) = data.split_at(4);
    let split = rest.len() / 2;
    let (image, script) = rest.split_at(split);
    let event_idx = ctl[0] & 1 != 0;
    let n = Notification { event_idx, ignore_no_interrupt: ctl[0] & 2 != 0, polled: false };

    if ctl[1] & 1 == 0 {
        // Raw virtqueue sides over a garbage ring.
        let l = RingLayout::legacy(&w, 0, 8, 0x1000).unwrap();
        let mut drv: DriverQueue<'_, 8> = DriverQueue::new(w, l, n).unwrap();
        let mut dev = DeviceQueue::attach(w, l, n).unwrap();
        let _ = w.write_bytes(0, image);
        let mut held = Vec::new();
        for (i, op) in script.iter().enumerate() {
            match op % 6 {
                0 => {
                    if let Ok(Some(c)) = dev.pop_available() {
                        held.push(c);
                    }
                }
                1 => {
                    if let Some(c) = held.pop() {
                        let _ = dev.push_used(c, u32::from(*op));
                    }
                }
                2 => {
                    let _ = drv.pop_used();
                }
                3 => {
                    let seg = Segment { addr: BUS + 0x2000, len: 64, device_writable: op & 8 != 0 };
                    if op & 16 == 0 {
                        let _ = drv.add(&[seg], i as u16);
                    } else if op & 64 != 0 {
                        // A stream of free descriptors, which the producer
                        // may stop early.
                        let (max, stop) = (u16::from(*op) % 5, usize::from(*op >> 5) % 4);
                        let mut k = 0;
                        let _ = drv.offer_each(max, |_| {
                            k += 1;
                            (k <= stop).then_some(seg)
                        });
                    } else if let Some(d) = drv.reserve() {
                        // A lent descriptor, offered or given back.
                        if op & 32 == 0 {
                            let _ = drv.offer_reserved(d, seg, i as u16);
                        } else {
                            let _ = drv.unreserve(d);
                        }
                    }
                    let _ = drv.publish();
                }
                4 => {
                    let _ = dev.enable_notifications();
                    let _ = drv.enable_interrupts();
                }
                _ => {
                    let at = (usize::from(*op) * 8 + i) % 0x1100;
                    let _ = w.write_u16(at & !1, u16::from(*op) << 3 | i as u16);
                }
            }
        }
    } else {
        // rpmsg roles over the rpmsg-lite layout (small: 4 buffers a way).
        let cfg = |role| {
            let mut c = LinkConfig::rpmsg_lite(role, 0, 4);
            c.placement = remoteproc::Placement::Static { base: 0, stride: 0x2000 };
            c
        };
        let mut host: Link<'_, Polling, 4, 2> = match Link::new(w, cfg(Role::Host), Polling) {
            Ok(l) => l,
            Err(_) => return,
        };
        let mut remote: Link<'_, Polling, 4, 2> = Link::new(w, cfg(Role::Remote), Polling).unwrap();
        remote.doorbell_rang();
        let _ = host.create_endpoint(Some(1));
        let _ = remote.create_endpoint(Some(2));
        let _ = w.write_bytes(usize::from(ctl[2]) * 16, image);
        let mut buf = [0u8; 512];
        for (i, op) in script.iter().enumerate() {
            let link = if op & 1 == 0 { &mut host } else { &mut remote };
            match (op >> 1) % 7 {
                0 => {
                    let _ = link.send(1, 2, &buf[..usize::from(*op) % 64]);
                }
                1 => {
                    if let Ok(Some(Incoming::Message(m))) = link.receive() {
                        let _ = m.copy_to(&mut buf);
                        let _ = link.release(m);
                    }
                }
                2 => {
                    let _ = link.poll();
                }
                3 => {
                    if link.is_broken() {
                        let _ = link.reset();
                    }
                }
                4 => {
                    // Everything pending, used in place, released together.
                    let mut sum = 0u64;
                    let _ = link.dispatch(|m| sum = m.words().fold(sum, u64::wrapping_add), |_| {});
                    std::hint::black_box(sum);
                }
                5 if op & 0x80 != 0 => {
                    // A burst produced in place: stopped early, or with a
                    // length that does not fit.
                    let mut k = 0;
                    let _ = link.send_burst(1, 2, usize::from(*op) % 6, |tx| {
                        k += 1;
                        let n = tx.write_words_with(0, k, |w| w as u64 * 0x0101).ok()?;
                        match k {
                            4 => None,
                            3 if op & 0x40 != 0 => Some(tx.capacity() + 1),
                            _ => Some(n),
                        }
                    });
                }
                5 => {
                    // A batch of sends, produced in place.
                    let mut batch = link.batch();
                    for k in 0..usize::from(*op) % 6 {
                        if let Ok(Some(mut tx)) = batch.alloc_tx() {
                            if k == 4 {
                                let _ = batch.discard_tx(tx);
                                continue;
                            }
                            let words = (0..k as u64).map(|w| w * 0x0101);
                            let n = tx.write_words(0, words).unwrap_or(0);
                            let _ = batch.send_buffer(tx, 1, 2, n);
                        }
                    }
                }
                _ => {
                    let at = (usize::from(*op) * 64 + i * 4) % WINDOW;
                    let _ = w.write_u32(at & !3, u32::from(*op) * 0x0101_0101);
                }
            }
        }
    }
    for i in (0..GUARD).chain(GUARD + WINDOW..WINDOW + 2 * GUARD) {
        assert_eq!(whole.read_u8(i).unwrap(), 0x5a, "write outside the window at {i:#x}");
    }
});
