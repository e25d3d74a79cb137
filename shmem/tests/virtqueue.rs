//! Driver and device sides of one split virtqueue over a heap window: the data
//! path, notification suppression, and a device peer that lies.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmem::virtqueue::{
    desc, need_event, Notification, RingError, RingLayout, Segment, AVAIL_F_NO_INTERRUPT,
    DESC_F_NEXT, DESC_F_WRITE,
};
use shmem::window::Word;
use shmem::{DeviceQueue, DriverQueue, Window};

const BUS: u64 = 0x7000_0000;

fn region(bytes: usize) -> Vec<Word> {
    (0..bytes / 8).map(|_| Word::new(0)).collect()
}

fn pair<'a>(w: Window<'a>, n: Notification) -> (DriverQueue<'a, 8>, DeviceQueue<'a>, RingLayout) {
    let layout = RingLayout::legacy(&w, 0, 8, 0x1000).unwrap();
    let driver = DriverQueue::new(w, layout, n).unwrap();
    let device = DeviceQueue::attach(w, layout, n).unwrap();
    (driver, device, layout)
}

#[test]
fn a_legacy_ring_with_an_impossible_alignment_fits_no_window() {
    for align in [0, 3, 0x1001] {
        assert_eq!(
            RingLayout::legacy_size(4, align),
            usize::MAX,
            "align {align}"
        );
    }
}

#[test]
fn legacy_layout_matches_linux_vring_size() {
    // Worked examples from include/uapi/linux/virtio_ring.h `vring_size`.
    assert_eq!(RingLayout::legacy_size(2, 0x1000), 0x1016);
    assert_eq!(RingLayout::legacy_size(256, 0x1000), 0x2806);
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let l = RingLayout::legacy(&w, 0, 256, 0x1000).unwrap();
    assert_eq!((l.desc, l.avail, l.used), (0, 0x1000, 0x2000));
    assert_eq!(RingLayout::legacy(&w, 0, 256, 0x1000).unwrap().size, 256);
    assert_eq!(
        RingLayout::legacy(&w, 0x10, 2, 0x1000),
        Err(RingError::Layout)
    );
    assert_eq!(RingLayout::legacy(&w, 0, 3, 0x1000), Err(RingError::Layout));
    assert_eq!(
        RingLayout::legacy(&w, 0, 512, 0x1000),
        Err(RingError::Layout)
    );
}

#[test]
fn need_event_follows_the_spec_example() {
    // used_event = 0: notify after the first buffer only.
    assert!(need_event(0, 1, 0));
    assert!(!need_event(0, 2, 1));
    assert!(need_event(5, 7, 3));
    assert!(!need_event(9, 7, 3));
    assert!(need_event(0xffff, 1, 0xfffe));
}

#[test]
fn chains_round_trip_with_tokens_and_lengths() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, mut dev, _) = pair(w, Notification::default());
    let buf = BUS + 0x3000;
    let head = drv
        .add(
            &[
                Segment {
                    addr: buf,
                    len: 16,
                    device_writable: false,
                },
                Segment {
                    addr: buf + 16,
                    len: 100,
                    device_writable: true,
                },
            ],
            42,
        )
        .unwrap();
    assert!(
        dev.pop_available().unwrap().is_none(),
        "not visible before publish"
    );
    assert!(
        drv.publish().unwrap(),
        "device did not suppress notifications"
    );
    let chain = dev.pop_available().unwrap().unwrap();
    assert_eq!(chain.head(), head);
    assert_eq!(chain.buffers().len(), 2);
    assert_eq!(chain.buffers()[1].offset, 0x3010);
    assert_eq!(chain.writable_len(), 100);
    assert_eq!(
        dev.push_used(chain, 101),
        Err(RingError::UsedLength {
            len: 101,
            capacity: 100
        })
    );
    let chain = {
        // push_used consumed the chain on error; take a fresh one.
        drv.add(
            &[Segment {
                addr: buf,
                len: 8,
                device_writable: true,
            }],
            7,
        )
        .unwrap();
        drv.publish().unwrap();
        dev.pop_available().unwrap().unwrap()
    };
    assert!(dev.push_used(chain, 8).unwrap());
    assert_eq!(drv.num_free(), 5);
    let used = drv.pop_used().unwrap().unwrap();
    assert_eq!((used.token, used.len), (7, 8));
    assert!(drv.pop_used().unwrap().is_none());
}

#[test]
fn full_ring_is_back_pressure() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, _dev, _) = pair(w, Notification::default());
    for t in 0..8 {
        drv.add(
            &[Segment {
                addr: BUS,
                len: 1,
                device_writable: true,
            }],
            t,
        )
        .unwrap();
    }
    assert_eq!(
        drv.add(
            &[Segment {
                addr: BUS,
                len: 1,
                device_writable: true
            }],
            9
        ),
        Err(RingError::Full)
    );
}

#[test]
fn suppression_flags_and_event_index() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let seg = [Segment {
        addr: BUS,
        len: 1,
        device_writable: true,
    }];
    let (mut drv, mut dev, _) = pair(w, Notification::default());
    dev.disable_notifications().unwrap();
    drv.add(&seg, 0).unwrap();
    assert!(!drv.publish().unwrap());
    assert!(
        dev.enable_notifications().unwrap(),
        "pending work seen on re-enable"
    );
    drv.disable_interrupts().unwrap();
    let c = dev.pop_available().unwrap().unwrap();
    assert!(!dev.push_used(c, 0).unwrap());

    // rpmsg-lite master: NO_INTERRUPT forever; the quirk notifies anyway.
    let quirk = Notification {
        event_idx: false,
        ignore_no_interrupt: true,
        polled: false,
    };
    let (mut drv, mut dev, l) = pair(w, quirk);
    w.write_u16(l.avail, AVAIL_F_NO_INTERRUPT).unwrap();
    drv.add(&seg, 0).unwrap();
    drv.publish().unwrap();
    let c = dev.pop_available().unwrap().unwrap();
    assert!(dev.push_used(c, 0).unwrap());

    // EVENT_IDX: each side asks for the next entry only.
    let ev = Notification {
        event_idx: true,
        ignore_no_interrupt: false,
        polled: false,
    };
    let (mut drv, mut dev, _) = pair(w, ev);
    drv.add(&seg, 0).unwrap();
    assert!(
        drv.publish().unwrap(),
        "avail_event 0: first entry notifies"
    );
    drv.add(&seg, 1).unwrap();
    assert!(!drv.publish().unwrap(), "device has not consumed yet");
    let a = dev.pop_available().unwrap().unwrap();
    let b = dev.pop_available().unwrap().unwrap();
    assert!(
        dev.push_used(a, 0).unwrap(),
        "used_event 0: first completion interrupts"
    );
    assert!(!dev.push_used(b, 0).unwrap(), "driver has not caught up");
    drv.pop_used().unwrap().unwrap();
    drv.pop_used().unwrap().unwrap();
    drv.add(&seg, 2).unwrap();
    assert!(
        drv.publish().unwrap(),
        "device asked for the entry after the ones it took"
    );
    // A busy device stops asking: taking entries no longer moves avail_event.
    dev.disable_notifications().unwrap();
    dev.pop_available().unwrap().unwrap();
    drv.add(&seg, 3).unwrap();
    assert!(
        !drv.publish().unwrap(),
        "suppressed while the device is busy"
    );
    assert!(
        dev.enable_notifications().unwrap(),
        "re-enabling finds the pending entry"
    );
    dev.pop_available().unwrap().unwrap();
    drv.add(&seg, 4).unwrap();
    assert!(drv.publish().unwrap(), "armed again");
}

#[test]
fn rpmsg_lite_prefilled_used_ring_is_respected() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let layout = RingLayout::legacy(&w, 0, 8, 0x1000).unwrap();
    let mut drv: DriverQueue<'_, 8> = DriverQueue::new(w, layout, Notification::default()).unwrap();
    w.write_u16(layout.used + 2, 8).unwrap(); // master pre-placed 8 TX buffers
    let mut dev = DeviceQueue::attach(w, layout, Notification::default()).unwrap();
    offer_one_and_use_it(&mut drv, &mut dev);
    assert_eq!(w.read_u16(layout.used + 2).unwrap(), 9);
    assert_eq!(
        w.read_u32(layout.used + 4).unwrap(),
        0,
        "written at slot 8 % 8"
    );
}

/// The driver offers one 4-byte readable buffer; the device takes it and
/// gives it back.
fn offer_one_and_use_it(drv: &mut DriverQueue<'_, 8>, dev: &mut DeviceQueue<'_>) {
    drv.add(
        &[Segment {
            addr: BUS,
            len: 4,
            device_writable: false,
        }],
        0,
    )
    .unwrap();
    drv.publish().unwrap();
    let c = dev.pop_available().unwrap().unwrap();
    dev.push_used(c, 0).unwrap();
}

/// The device attaches before the driver pre-fills the used ring (rpmsg-lite's
/// master fills vring 0 first, vring 1's used ring after): the used index is
/// taken with the first offered chain, not at attach.
#[test]
fn used_index_prefilled_after_attach_is_respected() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let layout = RingLayout::legacy(&w, 0, 8, 0x1000).unwrap();
    let mut drv: DriverQueue<'_, 8> = DriverQueue::new(w, layout, Notification::default()).unwrap();
    let mut dev = DeviceQueue::attach(w, layout, Notification::default()).unwrap();
    assert!(
        dev.pop_available().unwrap().is_none(),
        "nothing offered yet"
    );
    w.write_u16(layout.used + 2, 8).unwrap(); // pre-fill lands now
    offer_one_and_use_it(&mut drv, &mut dev);
    assert_eq!(w.read_u16(layout.used + 2).unwrap(), 9);
}

/// rpmsg-lite's remote gives a consumed RX buffer back with the message length
/// as used `len`, though the buffer was device-readable only: the driver
/// takes the chain back as "nothing written" instead of failing the ring.
#[test]
fn used_length_of_a_read_only_chain_is_ignored() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, _dev, l) = pair(w, Notification::default());
    drv.add(
        &[Segment {
            addr: BUS + 0x3000,
            len: 56,
            device_writable: false,
        }],
        7,
    )
    .unwrap();
    drv.publish().unwrap();
    w.write_u32(l.used + 4, 0).unwrap(); // id 0
    w.write_u32(l.used + 8, 56).unwrap(); // len: the message length
    w.write_u16(l.used + 2, 1).unwrap();
    let u = drv.pop_used().unwrap().unwrap();
    assert_eq!((u.token, u.len), (7, 0));
}

/// A device may give a chain it only read back with its readable length (what
/// OpenAMP's rpmsg host expects), for one descriptor or a chain of them; any
/// other length is still refused, and a chain with a writable part reports
/// only what was written into that part.
#[test]
fn a_read_only_chain_may_report_its_readable_length() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, mut dev, _) = pair(w, Notification::default());
    let seg = |at: u64, len: u32, device_writable: bool| Segment {
        addr: BUS + at,
        len,
        device_writable,
    };
    let mut offer = |segments: &[Segment], token: u16| {
        drv.add(segments, token).unwrap();
        drv.publish().unwrap();
    };
    offer(&[seg(0x3000, 56, false)], 1);
    offer(&[seg(0x3100, 16, false), seg(0x3200, 40, false)], 2);
    offer(&[seg(0x3300, 16, false), seg(0x3400, 8, true)], 3);
    let one = dev.pop_available().unwrap().unwrap();
    assert_eq!((one.readable_len(), one.writable_len()), (56, 0));
    let two = dev.pop_available().unwrap().unwrap();
    assert_eq!((two.readable_len(), two.writable_len()), (56, 0));
    let mixed = dev.pop_available().unwrap().unwrap();
    assert_eq!((mixed.readable_len(), mixed.writable_len()), (16, 8));
    assert_eq!(
        dev.push_used(one, 55),
        Err(RingError::UsedLength {
            len: 55,
            capacity: 0
        })
    );
    assert!(dev.push_used(two, 56).is_ok());
    assert_eq!(
        dev.push_used(mixed, 16),
        Err(RingError::UsedLength {
            len: 16,
            capacity: 8
        })
    );
}

/// Each way a driver can lie to the device, and each way a device can lie to
/// the driver, is refused with the matching error.
#[test]
fn hostile_ring_fields_are_refused() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let offer = |drv: &mut DriverQueue<'_, 8>| {
        drv.add(
            &[Segment {
                addr: BUS + 0x3000,
                len: 64,
                device_writable: true,
            }],
            0,
        )
        .unwrap();
        drv.publish().unwrap();
    };
    type Corrupt = fn(Window<'_>, RingLayout);
    type Expect = fn(&RingError) -> bool;
    let device_cases: &[(Corrupt, Expect)] = &[
        (
            |w, l| w.write_u16(l.avail + 2, 200).unwrap(),
            |e| matches!(e, RingError::AvailIndex { .. }),
        ),
        (
            |w, l| w.write_u16(l.avail + 4, 8).unwrap(),
            |e| *e == RingError::DescriptorIndex(8),
        ),
        (
            |w, l| w.write_u64(l.desc + desc::ADDR, 0).unwrap(),
            |e| matches!(e, RingError::Window(_)),
        ),
        (
            |w, l| w.write_u32(l.desc + desc::LEN, 0x1001).unwrap(),
            |e| matches!(e, RingError::Window(_)),
        ),
        (
            |w, l| w.write_u32(l.desc + desc::LEN, u32::MAX).unwrap(),
            |e| matches!(e, RingError::Window(_)),
        ),
        (
            |w, l| w.write_u16(l.desc + desc::FLAGS, 4).unwrap(),
            |e| *e == RingError::Indirect,
        ),
        (
            |w, l| {
                w.write_u16(l.desc + desc::FLAGS, DESC_F_NEXT | DESC_F_WRITE)
                    .unwrap();
                w.write_u16(l.desc + desc::NEXT, 0).unwrap();
            },
            |e| *e == RingError::ChainTooLong,
        ),
        (
            |w, l| {
                w.write_u16(l.desc + desc::FLAGS, DESC_F_NEXT).unwrap();
                w.write_u16(l.desc + desc::NEXT, 9).unwrap();
            },
            |e| *e == RingError::DescriptorIndex(9),
        ),
        (
            |w, l| {
                w.write_u16(l.desc + desc::FLAGS, DESC_F_NEXT | DESC_F_WRITE)
                    .unwrap();
                w.write_u16(l.desc + desc::NEXT, 1).unwrap();
                w.write_u64(l.desc + 16, BUS).unwrap();
            },
            |e| *e == RingError::ReadableAfterWritable,
        ),
    ];
    for (i, (corrupt, expected)) in device_cases.iter().enumerate() {
        let (mut drv, mut dev, l) = pair(w, Notification::default());
        offer(&mut drv);
        corrupt(w, l);
        let err = dev.pop_available().expect_err("corruption accepted");
        assert!(expected(&err), "case {i}: {err:?}");
        assert!(err.is_protocol_violation());
    }

    let driver_cases: &[(Corrupt, Expect)] = &[
        (
            |w, l| w.write_u16(l.used + 2, 2).unwrap(),
            |e| matches!(e, RingError::UsedIndex { .. }),
        ),
        (
            |w, l| {
                w.write_u32(l.used + 4, 5).unwrap();
                w.write_u16(l.used + 2, 1).unwrap();
            },
            |e| *e == RingError::UsedId(5),
        ),
        (
            |w, l| {
                w.write_u32(l.used + 4, 0xffff).unwrap();
                w.write_u16(l.used + 2, 1).unwrap();
            },
            |e| *e == RingError::UsedId(0xffff),
        ),
        (
            |w, l| {
                w.write_u32(l.used + 8, 65).unwrap();
                w.write_u16(l.used + 2, 1).unwrap();
            },
            |e| {
                matches!(
                    e,
                    RingError::UsedLength {
                        len: 65,
                        capacity: 64
                    }
                )
            },
        ),
    ];
    for (i, (corrupt, expected)) in driver_cases.iter().enumerate() {
        let (mut drv, _dev, l) = pair(w, Notification::default());
        offer(&mut drv);
        corrupt(w, l);
        let err = drv.pop_used().expect_err("corruption accepted");
        assert!(expected(&err), "case {i}: {err:?}");
    }
}

proptest! {
    // Under Miri two cases (each takes some fifteen seconds there), and no
    // failure file: Miri's isolation has no file system.
    #![proptest_config(if cfg!(miri) {
        ProptestConfig { cases: 2, failure_persistence: None, ..ProptestConfig::default() }
    } else {
        ProptestConfig { cases: 256, ..ProptestConfig::default() }
    })]

    /// Whatever the ring memory holds, neither side panics, loops or touches
    /// memory outside its window (guard words around the window stay intact).
    #[test]
    fn arbitrary_ring_contents_never_escape(
        bytes in proptest::collection::vec(any::<u8>(), 0x1100),
        ops in proptest::collection::vec(0u8..4, 1..40),
    ) {
        let mem = region(0x1200 + 0x200);
        let guard = 0xa5a5_a5a5_a5a5_a5a5u64;
        let whole = Window::from_words(&mem);
        whole.fill(0, mem.len() * 8, 0xa5).unwrap();
        let w = whole.slice(0x100, 0x1200).unwrap().with_bus_address(BUS);
        let layout = RingLayout::legacy(&w, 0, 8, 0x1000).unwrap();
        let mut dev = DeviceQueue::attach(w, layout, Notification { event_idx: true, ignore_no_interrupt: false, polled: false }).unwrap();
        let mut drv: DriverQueue<'_, 8> = DriverQueue::new(w, layout, Notification::default()).unwrap();
        w.write_bytes(0, &bytes).unwrap();
        let mut held = Vec::new();
        for op in ops {
            match op {
                0 => if let Ok(Some(c)) = dev.pop_available() { held.push(c) },
                1 => if let Some(c) = held.pop() { let _ = dev.push_used(c, 0); },
                2 => { let _ = drv.pop_used(); }
                _ => { let _ = drv.add(&[Segment { addr: BUS + 0x1100, len: 16, device_writable: true }], 1); let _ = drv.publish(); }
            }
        }
        for (i, word) in mem.iter().enumerate() {
            let inside = (0x100 / 8..(0x100 + 0x1200) / 8).contains(&i);
            if !inside {
                prop_assert_eq!(word.load(std::sync::atomic::Ordering::Relaxed), guard);
            }
        }
    }
}

/// A non-coherent window: the rings clean what they write and invalidate what
/// they read, always inside the window.
#[test]
fn cache_hook_sees_every_ring_access_inside_the_window() {
    use shmem::CacheMaintenance;
    use std::sync::Mutex;
    #[derive(Default)]
    struct Record(Mutex<Vec<(bool, usize, usize)>>);
    impl CacheMaintenance for Record {
        fn clean(&self, addr: usize, len: usize) {
            self.0.lock().unwrap().push((true, addr, len));
        }
        fn invalidate(&self, addr: usize, len: usize) {
            self.0.lock().unwrap().push((false, addr, len));
        }
    }
    let mem = region(0x4000);
    let rec = Record::default();
    let w = Window::from_words(&mem)
        .with_bus_address(BUS)
        .with_cache(&rec);
    let (mut drv, mut dev, l) = pair(w, Notification::default());
    rec.0.lock().unwrap().clear();
    drv.add(
        &[Segment {
            addr: BUS + 0x3000,
            len: 8,
            device_writable: true,
        }],
        0,
    )
    .unwrap();
    drv.publish().unwrap();
    let base = mem.as_ptr() as usize;
    let cleaned = |off: usize| {
        rec.0
            .lock()
            .unwrap()
            .iter()
            .any(|&(c, a, n)| c && a <= base + off && base + off < a + n)
    };
    let invalidated = |off: usize| {
        rec.0
            .lock()
            .unwrap()
            .iter()
            .any(|&(c, a, n)| !c && a <= base + off && base + off < a + n)
    };
    assert!(
        cleaned(l.desc) && cleaned(l.avail + 4) && cleaned(l.avail + 2),
        "driver cleans desc, ring, idx"
    );
    assert!(invalidated(l.used), "driver reads used.flags fresh");
    let c = dev.pop_available().unwrap().unwrap();
    assert!(
        invalidated(l.desc) && invalidated(l.avail + 2),
        "device reads desc and idx fresh"
    );
    dev.push_used(c, 8).unwrap();
    assert!(
        cleaned(l.used + 4) && cleaned(l.used + 2),
        "device cleans used element and idx"
    );
    for &(_, a, n) in rec.0.lock().unwrap().iter() {
        assert!(a >= base && a + n <= base + 0x4000);
    }
}

/// `pop_first` and `pop_chain::<M>` check the whole chain but keep less of it.
#[test]
fn a_chain_can_be_taken_keeping_fewer_buffers() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, mut dev, _) = pair(w, Notification::default());
    let chain = [
        Segment {
            addr: BUS + 0x3000,
            len: 16,
            device_writable: false,
        },
        Segment {
            addr: BUS + 0x3100,
            len: 64,
            device_writable: true,
        },
    ];
    drv.add(&chain, 1).unwrap();
    drv.add(&chain, 2).unwrap();
    drv.publish().unwrap();
    let (c, first) = dev.pop_first().unwrap().unwrap();
    assert_eq!(
        (first.offset, first.len, first.device_writable),
        (0x3000, 16, false)
    );
    assert!(c.buffers().is_empty());
    assert_eq!(c.writable_len(), 64);
    dev.push_used(c, 64).unwrap();
    let c = dev.pop_chain::<1>().unwrap().unwrap();
    assert_eq!(c.buffers().len(), 1);
    assert_eq!(c.writable_len(), 64);
    assert!(
        dev.push_used(c, 65).is_err(),
        "still bounded by the whole chain"
    );
    assert_eq!(
        drv.pop_used().unwrap().map(|u| (u.token, u.len)),
        Some((1, 64))
    );
}

/// Buffers reposted in order keep their descriptor and avail slot (FIFO free
/// descriptors), so an unchanged descriptor is not written again; one the
/// device scribbled on is written again in full.
#[test]
fn reposted_buffers_keep_their_descriptors_and_scribbles_are_overwritten() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, mut dev, l) = pair(w, Notification::default());
    let seg = |k: u64| Segment {
        addr: BUS + 0x3000 + 0x40 * k,
        len: 0x40,
        device_writable: true,
    };
    // Two laps of the 8-entry ring, each buffer given back in order.
    for lap in 0..2u16 {
        for k in 0..8u16 {
            assert_eq!(drv.add(&[seg(k.into())], k).unwrap(), k, "lap {lap}");
        }
        drv.publish().unwrap();
        for k in 0..8u16 {
            let (c, b) = dev.pop_first().unwrap().unwrap();
            assert_eq!((c.head(), b.offset), (k, 0x3000 + 0x40 * usize::from(k)));
            dev.push_used(c, 0).unwrap();
        }
        for k in 0..8u16 {
            assert_eq!(drv.pop_used().unwrap().map(|u| u.token), Some(k));
        }
    }
    // The device rewrites descriptor 0's address and flags and avail slot 0;
    // the driver's next post of buffer 0 puts back what it means.
    w.write_u64(l.desc + desc::ADDR, BUS + 0x100).unwrap();
    w.write_u16(l.desc + desc::FLAGS, 0).unwrap();
    w.write_u16(l.avail + 4, 5).unwrap();
    assert_eq!(drv.add(&[seg(0)], 0).unwrap(), 0);
    drv.publish().unwrap();
    assert_eq!(w.read_u64(l.desc + desc::ADDR).unwrap(), BUS + 0x3000);
    assert_eq!(w.read_u16(l.desc + desc::FLAGS).unwrap(), DESC_F_WRITE);
    assert_eq!(w.read_u16(l.avail + 4).unwrap(), 0);
    let (c, b) = dev.pop_first().unwrap().unwrap();
    assert_eq!((c.head(), b.offset, b.device_writable), (0, 0x3000, true));
    // The used element the device wrote last lap says the same; a rewritten
    // one is written again.
    w.write_u32(l.used + 4, 7).unwrap();
    dev.push_used(c, 0x10).unwrap();
    assert_eq!(
        (
            w.read_u32(l.used + 4).unwrap(),
            w.read_u32(l.used + 8).unwrap()
        ),
        (0, 0x10)
    );
    assert_eq!(
        drv.pop_used().unwrap().map(|u| (u.token, u.len)),
        Some((0, 0x10))
    );
}

#[test]
fn reserved_descriptors_are_offered_or_given_back_and_never_taken_as_used() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, mut dev, l) = pair(w, Notification::default());
    let seg = |d: u16| Segment {
        addr: BUS + 0x3000 + 0x40 * u64::from(d),
        len: 0x20,
        device_writable: false,
    };
    // Descriptors come out in FIFO order; peek names the next one.
    assert_eq!(drv.peek_free(), Some(0));
    let (a, b) = (drv.reserve().unwrap(), drv.reserve().unwrap());
    assert_eq!((a, b, drv.num_free()), (0, 1, 6));
    // Offered, `a` reaches the device.
    drv.offer_reserved(a, seg(a), 7).unwrap();
    drv.publish().unwrap();
    let (c, buf) = dev.pop_first().unwrap().unwrap();
    assert_eq!((c.head(), buf.offset, buf.len), (0, 0x3000, 0x20));
    // A device naming reserved `b`, never offered, lies.
    w.write_u32(l.used + 4, u32::from(b)).unwrap();
    w.write_u16(l.used + 2, 1).unwrap();
    assert_eq!(drv.pop_used(), Err(RingError::UsedId(b.into())));
    // `a` comes back; `b` goes back unused.
    dev.push_used(c, 0).unwrap();
    assert_eq!(
        drv.pop_used().unwrap().map(|u| (u.head, u.token)),
        Some((a, 7))
    );
    drv.unreserve(b).unwrap();
    assert_eq!(drv.num_free(), 8);
    // Neither can be offered or given back twice.
    assert_eq!(
        drv.offer_reserved(a, seg(a), 0),
        Err(RingError::NotReserved(a))
    );
    assert_eq!(drv.unreserve(b), Err(RingError::NotReserved(b)));
    assert_eq!(drv.unreserve(99), Err(RingError::NotReserved(99)));
    assert!(!RingError::NotReserved(0).is_protocol_violation());
    // The freed descriptors go to the back of the list, in order.
    let order: Vec<u16> = (0..8).map(|_| drv.reserve().unwrap()).collect();
    assert_eq!(order, [2, 3, 4, 5, 6, 7, 0, 1]);
    assert_eq!(drv.reserve(), None);
}

#[test]
fn offer_each_streams_free_descriptors_in_order_and_stops_when_asked() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut drv, mut dev, _) = pair(w, Notification::default());
    let seg = |d: u16| Segment {
        addr: BUS + 0x3000 + 0x40 * u64::from(d),
        len: 0x20 + u32::from(d),
        device_writable: false,
    };
    // Three offered in one go, in free-list order, tokens their indices.
    let mut asked = vec![];
    let n = drv.offer_each(3, |d| {
        asked.push(d);
        Some(seg(d))
    });
    assert_eq!(
        (n, asked.as_slice(), drv.num_free()),
        (3, &[0, 1, 2][..], 5)
    );
    assert!(
        dev.pop_first().unwrap().is_none(),
        "seen only once published"
    );
    drv.publish().unwrap();
    for d in 0..3u16 {
        let (c, b) = dev.pop_first().unwrap().unwrap();
        assert_eq!(
            (c.head(), b.offset, b.len),
            (d, 0x3000 + 0x40 * usize::from(d), 0x20 + u32::from(d))
        );
        dev.push_used(c, 0).unwrap();
    }
    // `None` stops: the descriptor it was asked for stays free, first in line.
    let mut calls = 0;
    let n = drv.offer_each(8, |d| {
        calls += 1;
        (calls == 1).then(|| seg(d))
    });
    assert_eq!((n, calls, drv.peek_free()), (1, 2, Some(4)));
    // The rest of the ring, then nothing without asking.
    let n = drv.offer_each(100, |d| Some(seg(d)));
    assert_eq!((n, drv.num_free()), (4, 0));
    assert_eq!(drv.offer_each(1, |_| panic!("no descriptor is free")), 0);
    drv.publish().unwrap();
    // Taken back with the tokens offer_each gave them.
    let tokens: Vec<u16> =
        std::iter::from_fn(|| drv.pop_used().unwrap().map(|u| u.token)).collect();
    assert_eq!(tokens, [0, 1, 2]);
    let heads: Vec<u16> =
        std::iter::from_fn(|| dev.pop_first().unwrap().map(|(c, _)| c.head())).collect();
    assert_eq!(heads, [3, 4, 5, 6, 7]);
}
