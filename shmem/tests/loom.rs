//! Loom model of the split-virtqueue protocol over the real `DriverQueue` and
//! `DeviceQueue` code (the window is backed by loom atomics under `--cfg loom`).
//!
//! Checks, over every interleaving and every weak-memory outcome loom models:
//! a buffer's contents are visible to the side that takes it (the *publish* /
//! *consume* barriers), and a side that re-enables notifications and then
//! sleeps is always woken (the *notify-check* barrier): no lost wake-up.
//!
//! Removing any one of the driver's or device's *notify-check* fences, or the
//! driver's *publish* fence, makes these models fail (checked by hand).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shmem --release --test loom`.
#![cfg(loom)]

use loom::sync::atomic::AtomicU64;
use shmem::virtqueue::{Notification, RingLayout, Segment};
use shmem::{DeviceQueue, DriverQueue, Window};

const BUFFER: usize = 0x80;
const PAYLOAD: [u8; 8] = *b"loomdata";

/// A fresh region per execution, leaked so both threads can hold `'static`
/// windows on it (loom has no scoped threads); 192 bytes per execution.
fn region() -> &'static [AtomicU64] {
    Box::leak(
        (0..24)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

fn layout(w: &Window<'_>) -> RingLayout {
    // N = 2, align 16: every 8-byte word has one writer (driver or device).
    RingLayout::legacy(w, 0, 2, 16).unwrap()
}

fn model(notification: Notification) {
    loom::model(move || {
        let w = Window::from_words(region());
        let l = layout(&w);
        let mut driver: DriverQueue<'_, 2> = DriverQueue::new(w, l, notification).unwrap();
        let mut device = DeviceQueue::attach(w, l, notification).unwrap();
        let readable = |at: usize| {
            [Segment {
                addr: at as u64,
                len: 8,
                device_writable: false,
            }]
        };
        // Chain A is already published; the device is busy and asked not to
        // be notified (without event index: used.flags; with it, the device's
        // avail_event still says 0).
        driver.add(&readable(BUFFER + 8), 0).unwrap();
        driver.publish().unwrap();
        device.disable_notifications().unwrap();

        // Meanwhile the driver publishes chain B.
        let producer = loom::thread::spawn(move || {
            w.write_bytes(BUFFER, &PAYLOAD).unwrap();
            driver.add(&readable(BUFFER), 1).unwrap();
            driver.publish().unwrap()
        });

        // The device takes A (with event index this re-arms avail_event
        // concurrently with the driver's check), re-enables notifications,
        // and either sees B or goes to sleep.
        let a = device.pop_available().unwrap().expect("chain A");
        assert_eq!(a.head(), 0);
        let mut taken = false;
        for _ in 0..2 {
            if let Some(b) = device.pop_available().unwrap() {
                let mut got = [0u8; 8];
                w.read_bytes(b.buffers()[0].offset, &mut got).unwrap();
                assert_eq!(got, PAYLOAD, "buffer visible after the index");
                taken = true;
                break;
            }
            if !device.enable_notifications().unwrap() {
                break;
            }
        }
        let rang = producer.join().unwrap();
        assert!(
            taken || rang,
            "device slept and the driver did not ring: lost wake-up"
        );
    });
}

#[test]
fn publish_and_wake_without_event_index() {
    model(Notification::default());
}

#[test]
fn publish_and_wake_with_event_index() {
    model(Notification {
        event_idx: true,
        ignore_no_interrupt: false,
        polled: false,
    });
}

/// The completion direction: the device writes into a device-writable buffer
/// and returns it; the driver, re-enabling interrupts, either sees it (with the
/// bytes) or is interrupted.
#[test]
fn completion_is_visible_or_interrupts() {
    loom::model(|| {
        let w = Window::from_words(region());
        let l = layout(&w);
        let n = Notification::default();
        let mut driver: DriverQueue<'_, 2> = DriverQueue::new(w, l, n).unwrap();
        driver
            .add(
                &[Segment {
                    addr: BUFFER as u64,
                    len: 8,
                    device_writable: true,
                }],
                7,
            )
            .unwrap();
        driver.publish().unwrap();
        let mut device = DeviceQueue::attach(w, l, n).unwrap();
        let chain = device.pop_available().unwrap().unwrap();
        driver.disable_interrupts().unwrap();

        let consumer = loom::thread::spawn(move || {
            w.write_bytes(BUFFER, &PAYLOAD).unwrap();
            device.push_used(chain, 8).unwrap()
        });

        let mut seen = false;
        if driver.enable_interrupts().unwrap() {
            let used = driver.pop_used().unwrap().expect("used entry");
            assert_eq!((used.token, used.len), (7, 8));
            let mut got = [0u8; 8];
            w.read_bytes(BUFFER, &mut got).unwrap();
            assert_eq!(got, PAYLOAD, "bytes visible after used.idx");
            seen = true;
        }
        let interrupted = consumer.join().unwrap();
        assert!(seen || interrupted, "lost interrupt");
    });
}

/// Three messages through a ring of two: indices wrap past the ring size,
/// descriptors and buffers are reused only after the device returned them, and
/// every message arrives once, in order, with its own bytes.
#[test]
fn ring_reuse_keeps_order_and_contents() {
    // The spin-waits make the unbounded search explode (over 10 minutes);
    // three preemptions cover every reuse hand-off in about 3 s.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let w = Window::from_words(region());
        let l = layout(&w);
        let n = Notification::default();
        let mut driver: DriverQueue<'_, 2> = DriverQueue::new(w, l, n).unwrap();
        let mut device = DeviceQueue::attach(w, l, n).unwrap();
        const MESSAGES: u8 = 3;

        let producer = loom::thread::spawn(move || {
            for i in 0..MESSAGES {
                let at = BUFFER + 8 * usize::from(i % 2);
                // Wait for a free descriptor (and thus a free buffer).
                while driver.num_free() == 0 {
                    if driver.pop_used().unwrap().is_none() {
                        loom::thread::yield_now();
                    }
                }
                w.write_bytes(at, &[i; 8]).unwrap();
                let seg = Segment {
                    addr: at as u64,
                    len: 8,
                    device_writable: false,
                };
                driver.add(&[seg], u16::from(i)).unwrap();
                driver.publish().unwrap();
            }
        });

        for i in 0..MESSAGES {
            let chain = loop {
                match device.pop_available().unwrap() {
                    Some(c) => break c,
                    None => loom::thread::yield_now(),
                }
            };
            let mut got = [0u8; 8];
            w.read_bytes(chain.buffers()[0].offset, &mut got).unwrap();
            assert_eq!(got, [i; 8], "message {i} arrives once, in order, intact");
            device.push_used(chain, 0).unwrap();
        }
        producer.join().unwrap();
    });
}
