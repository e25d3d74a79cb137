//! One host and one remote on one heap window, driven from one thread: the
//! protocol in both layouts and roles, the readiness handshakes, back-pressure,
//! zero copy, and a peer that corrupts each kind of field.

mod common;

use common::*;
use proptest::prelude::*;
use remoteproc::link::{LinkConfig, MessageError};
use remoteproc::resource_table::{self, vdev, vring};
use remoteproc::{Incoming, Link, LinkError, Role};
use shmem::virtqueue::{RingError, RingLayout};
use shmem::Window;

type L<'a> = Link<'a, Bell, 16, 4>;

fn up<'a>(w: Window<'a>, host: LinkConfig, remote: LinkConfig) -> (L<'a>, L<'a>, Bell, Bell) {
    let (hb, rb) = (Bell::default(), Bell::default());
    let mut r = L::new(w, remote, rb.clone()).unwrap();
    let mut h = L::new(w, host, hb.clone()).unwrap();
    h.poll().unwrap();
    r.poll().unwrap();
    assert!(h.is_up() && r.is_up());
    (h, r, hb, rb)
}

fn expect_message(link: &mut L<'_>) -> (u32, u32, Vec<u8>) {
    match link.receive().unwrap() {
        Some(Incoming::Message(m)) => {
            let mut v = vec![0; m.len()];
            m.read(0, &mut v).unwrap();
            let out = (m.src(), m.dst(), v);
            link.release(m).unwrap();
            out
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

/// One endpoint on each side, at the first dynamic addresses: (host's, remote's).
fn endpoints(h: &mut L<'_>, r: &mut L<'_>) -> (u32, u32) {
    (
        h.create_endpoint(None).unwrap().addr(),
        r.create_endpoint(None).unwrap().addr(),
    )
}

fn configs() -> Vec<(&'static str, LinkConfig, LinkConfig)> {
    vec![
        (
            "resource table",
            table_config(Role::Host, 16),
            table_config(Role::Remote, 16),
        ),
        (
            "rpmsg-lite static",
            lite_config(Role::Host, 16),
            lite_config(Role::Remote, 16),
        ),
        (
            "ours with epochs",
            ours(Role::Host, 16),
            ours(Role::Remote, 16),
        ),
    ]
}

#[test]
fn both_roles_talk_in_every_layout() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, _, _) = up(w, hc, rc);
        let he = h.create_endpoint(None).unwrap();
        let re = r.create_endpoint(Some(30)).unwrap();
        assert_eq!(he.addr(), 1024, "{name}");
        r.announce(re, b"rpmsg-tty").unwrap();
        match h.receive().unwrap() {
            Some(Incoming::Service(s)) => {
                assert_eq!(
                    (s.name(), s.addr, s.created),
                    (&b"rpmsg-tty"[..], 30, true),
                    "{name}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
        for i in 0..100u32 {
            let msg = i.to_le_bytes().repeat(1 + (i as usize % 100));
            assert!(h.send(he.addr(), re.addr(), &msg).unwrap());
            assert_eq!(
                expect_message(&mut r),
                (he.addr(), re.addr(), msg.clone()),
                "{name}"
            );
            assert!(r.send(re.addr(), he.addr(), &msg).unwrap());
            assert_eq!(
                expect_message(&mut h),
                (re.addr(), he.addr(), msg),
                "{name}"
            );
        }
        r.destroy_endpoint(re, b"rpmsg-tty").unwrap();
        match h.receive().unwrap() {
            Some(Incoming::Service(s)) => assert!(!s.created && s.addr == 30, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(h.stats().received, 100);
        assert_eq!(r.stats().sent, 102);
        // Messages to an address nobody opened are dropped and counted.
        assert!(h.send(he.addr(), 999, b"x").unwrap());
        assert!(r.receive().unwrap().is_none());
        assert_eq!(r.stats().unknown_destination, 1);
    }
}

#[test]
fn full_rings_are_back_pressure_not_loss() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, _, _) = up(w, hc, rc);
        let he = h.create_endpoint(None).unwrap();
        let re = r.create_endpoint(None).unwrap();
        let mut sent = 0u32;
        while h.send(he.addr(), re.addr(), &sent.to_le_bytes()).unwrap() {
            sent += 1;
        }
        assert_eq!(sent, 16, "{name}: one message per host TX buffer");
        let mut back = 0u32;
        while r.send(re.addr(), he.addr(), &back.to_le_bytes()).unwrap() {
            back += 1;
        }
        assert_eq!(back, 16, "{name}: one message per host RX buffer");
        for i in 0..16u32 {
            assert_eq!(expect_message(&mut r).2, i.to_le_bytes(), "{name}");
            assert_eq!(expect_message(&mut h).2, i.to_le_bytes(), "{name}");
        }
        assert!(h.send(he.addr(), re.addr(), b"again").unwrap());
        assert!(r.send(re.addr(), he.addr(), b"again").unwrap());
    }
}

#[test]
fn zero_copy_fill_in_place_and_read_through_the_guard() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, mut r, _, _) = up(
        w,
        lite_config(Role::Host, 16),
        lite_config(Role::Remote, 16),
    );
    let re = r.create_endpoint(Some(5)).unwrap();
    let mut tx = h.alloc_tx().unwrap().unwrap();
    assert_eq!(tx.capacity(), 496);
    tx.write(0, b"head").unwrap();
    tx.write(490, b"tail!!").unwrap();
    assert_eq!(tx.write(491, b"tail!!"), Err(LinkError::Usage));
    h.send_buffer(tx, 1, re.addr(), 496).unwrap();
    let Some(Incoming::Message(m)) = r.receive().unwrap() else {
        panic!()
    };
    let mut b = [0u8; 6];
    m.read(490, &mut b).unwrap();
    assert_eq!(&b, b"tail!!");
    assert_eq!(m.read(491, &mut b), Err(LinkError::Usage));
    r.release(m).unwrap();
    // Words produced and used in place.
    let mut tx = h.alloc_tx().unwrap().unwrap();
    assert_eq!(
        tx.write_words(0, (1..).map(|i| i * 0x0101_0101)).unwrap(),
        496
    );
    h.send_buffer(tx, 1, re.addr(), 496).unwrap();
    let Some(Incoming::Message(m)) = r.receive().unwrap() else {
        panic!()
    };
    assert!(m.words().eq((1..=62).map(|i| i * 0x0101_0101)));
    r.release(m).unwrap();
    // A lent buffer given back unsent is reusable.
    let tx = r.alloc_tx().unwrap().unwrap();
    r.discard_tx(tx).unwrap();
    assert!(r.send(5, 1, b"ok").unwrap());
}

#[test]
fn openamp_remote_waits_for_driver_ok_and_host_for_the_table() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    // Host first: no table yet, it waits.
    let mut h = L::new(w, table_config(Role::Host, 16), Bell::default()).unwrap();
    assert_eq!(h.poll(), Err(LinkError::NotReady));
    let mut r = L::new(w, table_config(Role::Remote, 16), Bell::default()).unwrap();
    assert_eq!(
        r.receive().unwrap_err(),
        LinkError::NotReady,
        "status not DRIVER_OK yet"
    );
    h.poll().unwrap();
    let entry = resource_table::header::OFFSET + 4;
    assert_eq!(w.read_u8(entry + vdev::STATUS).unwrap(), 7);
    assert_eq!(
        w.read_u32(entry + vdev::GFEATURES).unwrap(),
        1,
        "NS negotiated, no EVENT_IDX"
    );
    r.poll().unwrap();
    assert!(r.is_up());
}

#[test]
fn a_remote_gives_host_tx_buffers_back_with_their_length() {
    // OpenAMP's host takes the used length of a TX buffer it gets back as
    // that buffer's size; 0 there made it compute a payload room of
    // 0xFFFF_FFF0 and crash. Copying and zero-copy receives, and a buffer
    // released through dispatch, all report the descriptor's length.
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, mut r, _, _) = up(
        w,
        table_config(Role::Host, 16),
        table_config(Role::Remote, 16),
    );
    let (he, re) = endpoints(&mut h, &mut r);
    let tx = RingLayout::legacy(&w, 0x4000, 16, 0x1000).unwrap();
    let sizes = [1usize, 17, 200, 496];
    for (i, n) in sizes.iter().enumerate() {
        assert!(h.send(he, re, &vec![i as u8; *n]).unwrap());
        assert_eq!(expect_message(&mut r).2.len(), *n);
    }
    for (j, n) in sizes.iter().enumerate() {
        let elem = tx.used + 4 + 8 * j;
        let id = w.read_u32(elem).unwrap() as usize;
        let used_len = w.read_u32(elem + 4).unwrap();
        let desc_len = w.read_u32(tx.desc + 16 * id + 8).unwrap();
        assert_ne!(used_len, 0, "message {j} given back with used.len 0");
        assert_eq!(used_len, desc_len, "message {j}: the descriptor's length");
        assert!(
            used_len as usize >= 16 + n,
            "message {j}: header and payload"
        );
    }
    // The host still sends after taking those buffers back.
    assert!(h.send(he, re, b"again").unwrap());
    assert_eq!(expect_message(&mut r).2, b"again");
}

#[test]
fn the_vdev_notify_id_is_its_own() {
    // OpenAMP drops every kick whose id equals the vdev's as a config change.
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (_h, _r, _, _) = up(
        w,
        table_config(Role::Host, 16),
        table_config(Role::Remote, 16),
    );
    const ENTRY: usize = resource_table::header::OFFSET + 4;
    let vdev_id = w.read_u32(ENTRY + vdev::NOTIFYID).unwrap();
    let ids = [0, 1].map(|j| {
        w.read_u32(ENTRY + vdev::VRING + j * vring::SIZE + vring::NOTIFYID)
            .unwrap()
    });
    assert_eq!(vdev_id, resource_table::VDEV_NOTIFYID);
    assert!(
        ids[0] != ids[1] && !ids.contains(&vdev_id),
        "vdev {vdev_id}, vrings {ids:?}"
    );

    // A table whose vdev claims the id a host would give vring 0 (several
    // OpenAMP examples give their vdev 0): the host assigns around it.
    for (claimed, want) in [(0, [1, 2]), (1, [0, 2]), (2, [0, 1]), (31, [0, 1])] {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let mut r = L::new(w, table_config(Role::Remote, 16), Bell::default()).unwrap();
        w.write_u32(ENTRY + vdev::NOTIFYID, claimed).unwrap();
        let mut h = L::new(w, table_config(Role::Host, 16), Bell::default()).unwrap();
        h.poll().unwrap();
        r.poll().unwrap();
        let ids = [0, 1].map(|j| {
            w.read_u32(ENTRY + vdev::VRING + j * vring::SIZE + vring::NOTIFYID)
                .unwrap()
        });
        assert_eq!(ids, want, "vdev id {claimed}");
        assert!(h.is_up() && r.is_up(), "vdev id {claimed}");
        let (he, re) = endpoints(&mut h, &mut r);
        assert!(h.send(he, re, b"ok").unwrap());
        assert_eq!(expect_message(&mut r).2, b"ok", "vdev id {claimed}");
    }
}

#[test]
fn event_index_only_when_both_sides_offer_it() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut hc = table_config(Role::Host, 16);
    let mut rc = table_config(Role::Remote, 16);
    hc.event_idx = true;
    rc.event_idx = true;
    let (mut h, mut r, hb, _) = up(w, hc, rc);
    assert_eq!(w.read_u32(20 + vdev::GFEATURES).unwrap(), 1 | 1 << 29);
    let re = r.create_endpoint(None).unwrap();
    let before = hb.count(1);
    for _ in 0..4 {
        assert!(h.send(1, re.addr(), b"x").unwrap());
    }
    assert_eq!(
        hb.count(1),
        before + 1,
        "event index: one kick until the remote catches up"
    );
    for _ in 0..4 {
        expect_message(&mut r);
    }
}

#[test]
fn rpmsg_lite_remote_kicks_even_with_no_interrupt_set() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, mut r, _, rb) = up(
        w,
        lite_config(Role::Host, 16),
        lite_config(Role::Remote, 16),
    );
    h.create_endpoint(Some(1)).unwrap();
    // An rpmsg-lite master sets NO_INTERRUPT on both avail rings forever.
    w.write_u16(16 * 16, 1).unwrap();
    w.write_u16(0x8000 + 16 * 16, 1).unwrap();
    assert!(r.send(2, 1, b"x").unwrap());
    assert_eq!(rb.count(0), 1, "remote TX still rang vring 0");
    expect_message(&mut h);
}

#[test]
fn host_renotifies_until_the_remote_answers() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut hc = lite_config(Role::Host, 16);
    hc.renotify_interval = 4;
    let hb = Bell::default();
    let mut h = L::new(w, hc, hb.clone()).unwrap();
    assert_eq!(hb.count(0), 1, "the host-online kick");
    for _ in 0..12 {
        h.poll().unwrap();
    }
    assert_eq!(hb.count(0), 4, "re-kicked every 4 polls");
    let mut r = L::new(w, lite_config(Role::Remote, 16), Bell::default()).unwrap();
    r.poll().unwrap();
    h.create_endpoint(Some(1)).unwrap();
    assert!(r.send(2, 1, b"here").unwrap());
    expect_message(&mut h);
    for _ in 0..12 {
        h.poll().unwrap();
    }
    assert_eq!(
        hb.count(0),
        5,
        "quiet once the remote answered (+1 for the RX re-post)"
    );
    assert_eq!(h.stats().renotifies, 3);
}

#[test]
fn rpmsg_lite_remote_comes_up_on_the_kick() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut r = L::new(w, lite_config(Role::Remote, 16), Bell::default()).unwrap();
    assert_eq!(r.poll(), Err(LinkError::NotReady));
    r.doorbell_rang();
    r.poll().unwrap();
    assert!(r.is_up());
}

/// Offsets in the `ours` layout (table at 0, vring 0 at 0x1000, vring 1 at
/// 0x4000, N = 16, align 0x1000).
mod at {
    pub(crate) const V0: usize = 0x1000;
    pub(crate) const V1: usize = 0x4000;
    pub(crate) const AVAIL: usize = 16 * 16;
    pub(crate) const USED: usize = 0x1000;
}

fn first_tx_buffer() -> usize {
    0x8000 + 16 * 512 // host TX buffers are 16..32, lent first to last
}

#[test]
fn each_corrupted_field_is_reported_counted_and_survives_reset() {
    type Corrupt = fn(&Window<'_>);
    type Check = fn(&LinkError) -> bool;
    // (what the peer corrupts, which side detects it, what error)
    let cases: &[(&str, Corrupt, Role, Check)] = &[
        (
            "avail.idx",
            |w| w.write_u16(at::V1 + at::AVAIL + 2, 999).unwrap(),
            Role::Remote,
            |e| matches!(e, LinkError::Ring(RingError::AvailIndex { .. })),
        ),
        (
            "avail.ring head",
            |w| w.write_u16(at::V1 + at::AVAIL + 4, 77).unwrap(),
            Role::Remote,
            |e| *e == LinkError::Ring(RingError::DescriptorIndex(77)),
        ),
        (
            "descriptor addr",
            |w| w.write_u64(at::V1, 0x1000).unwrap(),
            Role::Remote,
            |e| matches!(e, LinkError::Ring(RingError::Window(_))),
        ),
        (
            "descriptor len",
            |w| w.write_u32(at::V1 + 8, 0x7fff_0000).unwrap(),
            Role::Remote,
            |e| matches!(e, LinkError::Ring(RingError::Window(_))),
        ),
        (
            "descriptor chain loop",
            |w| {
                w.write_u16(at::V1 + 12, 1).unwrap();
                w.write_u16(at::V1 + 14, 0).unwrap();
            },
            Role::Remote,
            |e| *e == LinkError::Ring(RingError::ChainTooLong),
        ),
        (
            "descriptor next",
            |w| {
                w.write_u16(at::V1 + 12, 1).unwrap();
                w.write_u16(at::V1 + 14, 300).unwrap();
            },
            Role::Remote,
            |e| *e == LinkError::Ring(RingError::DescriptorIndex(300)),
        ),
        (
            "buffer address on the rings, inside the window",
            |w| w.write_u64(at::V1, BUS + at::V1 as u64).unwrap(),
            Role::Remote,
            |e| *e == LinkError::Message(MessageError::Buffer),
        ),
        (
            "indirect flag",
            |w| w.write_u16(at::V1 + 12, 4).unwrap(),
            Role::Remote,
            |e| *e == LinkError::Ring(RingError::Indirect),
        ),
        (
            "rpmsg len",
            |w| w.write_u16(first_tx_buffer() + 12, 497).unwrap(),
            Role::Remote,
            |e| matches!(e, LinkError::Message(MessageError::Length { len: 497, .. })),
        ),
        (
            "rpmsg dst",
            |w| w.write_u32(first_tx_buffer() + 4, u32::MAX).unwrap(),
            Role::Remote,
            |e| matches!(e, LinkError::Message(MessageError::Address { .. })),
        ),
        (
            "rpmsg src",
            |w| w.write_u32(first_tx_buffer(), u32::MAX).unwrap(),
            Role::Remote,
            |e| matches!(e, LinkError::Message(MessageError::Address { .. })),
        ),
        (
            "used.idx",
            |w| w.write_u16(at::V0 + at::USED + 2, 40).unwrap(),
            Role::Host,
            |e| matches!(e, LinkError::Ring(RingError::UsedIndex { .. })),
        ),
        (
            "used.id",
            |w| {
                w.write_u32(at::V0 + at::USED + 4, 16).unwrap();
                w.write_u16(at::V0 + at::USED + 2, 1).unwrap();
            },
            Role::Host,
            |e| *e == LinkError::Ring(RingError::UsedId(16)),
        ),
        (
            "used.len",
            |w| {
                w.write_u32(at::V0 + at::USED + 8, 513).unwrap();
                w.write_u16(at::V0 + at::USED + 2, 1).unwrap();
            },
            Role::Host,
            |e| {
                matches!(
                    e,
                    LinkError::Ring(RingError::UsedLength {
                        len: 513,
                        capacity: 512
                    })
                )
            },
        ),
        (
            "used.len shorter than a header",
            |w| {
                w.write_u32(at::V0 + at::USED + 8, 3).unwrap();
                w.write_u16(at::V0 + at::USED + 2, 1).unwrap();
            },
            Role::Host,
            |e| *e == LinkError::Message(MessageError::Buffer),
        ),
    ];
    for (name, corrupt, detector, check) in cases {
        // The window sits inside a larger region whose guard bytes must survive.
        let mem = region(WINDOW + 0x2000);
        let whole = Window::from_words(&mem);
        whole.fill(0, WINDOW + 0x2000, 0x5a).unwrap();
        let w = whole.slice(0x1000, WINDOW).unwrap().with_bus_address(BUS);
        w.fill(0, WINDOW, 0).unwrap();
        let (mut h, mut r, _, _) = up(w, ours(Role::Host, 16), ours(Role::Remote, 16));
        let he = h.create_endpoint(Some(1)).unwrap();
        let re = r.create_endpoint(Some(2)).unwrap();
        assert!(h.send(he.addr(), re.addr(), b"first").unwrap());
        corrupt(&w);
        let victim = if *detector == Role::Remote {
            &mut r
        } else {
            &mut h
        };
        let err = victim.receive().expect_err(name);
        assert!(check(&err), "{name}: {err:?}");
        let stats = victim.stats();
        if err.is_fatal() {
            assert_eq!(stats.ring_errors, 1, "{name}");
            assert_eq!(victim.receive().unwrap_err(), LinkError::Broken, "{name}");
            assert_eq!(
                victim.send(1, 2, b"x").unwrap_err(),
                LinkError::Broken,
                "{name}"
            );
        } else {
            assert_eq!(stats.message_errors, 1, "{name}");
        }
        // Recover: the detecting side resets; the other sees the restart
        // through the window header and resets too; traffic flows again.
        victim.reset().unwrap();
        for _ in 0..3 {
            for link in [&mut h, &mut r] {
                match link.poll() {
                    Err(e) if e.is_fatal() => link.reset().unwrap(),
                    _ => {}
                }
            }
        }
        assert!(h.is_up() && r.is_up(), "{name}: both up again");
        while let Ok(Some(m)) = r.receive() {
            if let Incoming::Message(m) = m {
                r.release(m).unwrap();
            }
        }
        assert!(h.send(1, 2, b"after").unwrap(), "{name}");
        assert_eq!(expect_message(&mut r).2, b"after", "{name}");
        assert!(r.send(2, 1, b"back").unwrap(), "{name}");
        assert_eq!(expect_message(&mut h).2, b"back", "{name}");
        for i in (0..0x1000).chain(0x1000 + WINDOW..WINDOW + 0x2000) {
            assert_eq!(whole.read_u8(i).unwrap(), 0x5a, "{name}: guard byte {i:#x}");
        }
    }
}

#[test]
fn corrupt_resource_tables_keep_the_host_down() {
    type Corrupt = fn(&Window<'_>);
    const ENTRY: usize = 20;
    let cases: &[(&str, Corrupt)] = &[
        ("version", |w| w.write_u32(0, 2).unwrap()),
        ("entry count", |w| w.write_u32(4, 0x1000_0000).unwrap()),
        ("entry offset", |w| w.write_u32(16, 0xffff_fff0).unwrap()),
        ("vring count", |w| {
            w.write_u8(ENTRY + vdev::NUM_OF_VRINGS, 3).unwrap()
        }),
        ("vring num", |w| {
            w.write_u32(ENTRY + vdev::VRING + vring::NUM, 17).unwrap()
        }),
        ("vring num too big", |w| {
            w.write_u32(ENTRY + vdev::VRING + vring::NUM, 1024).unwrap()
        }),
        ("vring align", |w| {
            w.write_u32(ENTRY + vdev::VRING + vring::ALIGN, 0).unwrap()
        }),
        ("vring da", |w| {
            w.write_u32(ENTRY + vdev::VRING + vring::DA, 0x1000)
                .unwrap()
        }),
        ("vrings overlap", |w| {
            w.write_u32(ENTRY + vdev::VRING + 20 + vring::DA, 0x7000_1000)
                .unwrap()
        }),
        ("vring over the table", |w| {
            w.write_u32(ENTRY + vdev::VRING + vring::DA, 0x7000_0000)
                .unwrap()
        }),
        ("vring over the buffers", |w| {
            w.write_u32(ENTRY + vdev::VRING + vring::DA, 0x7000_8000)
                .unwrap()
        }),
        ("config_len", |w| {
            w.write_u32(ENTRY + vdev::CONFIG_LEN, u32::MAX).unwrap()
        }),
    ];
    for (name, corrupt) in cases {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let _r = L::new(w, table_config(Role::Remote, 16), Bell::default()).unwrap();
        corrupt(&w);
        let mut h = L::new(w, table_config(Role::Host, 16), Bell::default()).unwrap();
        let err = h.poll().unwrap_err();
        assert!(matches!(err, LinkError::Table(_)), "{name}: {err:?}");
        assert!(!h.is_up(), "{name}");
        assert_eq!(
            h.stats().table_errors,
            2,
            "{name}: counted at new and at poll"
        );
        assert_eq!(
            w.read_u8(ENTRY + vdev::STATUS).unwrap(),
            0,
            "{name}: status untouched"
        );
    }
}

#[test]
fn a_peer_restart_is_seen_through_the_epoch() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, mut r, _, _) = up(w, ours(Role::Host, 16), ours(Role::Remote, 16));
    h.poll().unwrap();
    // The remote restarts (a new instance over the same window).
    drop(r);
    r = L::new(w, ours(Role::Remote, 16), Bell::default()).unwrap();
    assert_eq!(h.poll(), Err(LinkError::PeerRestarted));
    assert_eq!(h.stats().peer_restarts, 1);
    h.reset().unwrap();
    r.poll().unwrap();
    assert!(r.is_up());
    r.create_endpoint(Some(9)).unwrap();
    assert!(h.send(1, 9, b"welcome back").unwrap());
    assert_eq!(expect_message(&mut r).2, b"welcome back");
}

#[test]
fn a_peer_restart_during_a_batch_is_seen_when_it_ends() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, r, _, _) = up(w, ours(Role::Host, 16), ours(Role::Remote, 16));
    h.poll().unwrap();
    let mut b = h.batch();
    assert!(b.send(1, 9, b"before").unwrap());
    drop(r);
    let _r = L::new(w, ours(Role::Remote, 16), Bell::default()).unwrap();
    // The epoch was checked when the batch opened; the rings are still
    // checked at every access.
    assert!(b.send(1, 9, b"during").unwrap());
    drop(b);
    assert_eq!(h.send(1, 9, b"after"), Err(LinkError::PeerRestarted));
    assert_eq!(h.stats().peer_restarts, 1);
}

#[test]
fn dispatch_calls_back_per_message_and_service() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, mut r, _, _) = up(
        w,
        table_config(Role::Host, 16),
        table_config(Role::Remote, 16),
    );
    h.create_endpoint(Some(1)).unwrap();
    h.create_endpoint(Some(3)).unwrap();
    let re = r.create_endpoint(Some(2)).unwrap();
    r.announce(re, b"echo").unwrap();
    for dst in [1, 3, 1] {
        assert!(r.send(2, dst, &[dst as u8; 3]).unwrap());
    }
    let mut seen = Vec::new();
    let mut services = Vec::new();
    let n = h
        .dispatch(
            |m| {
                let mut b = [0u8; 3];
                m.read(0, &mut b).unwrap();
                seen.push((m.dst(), b[0]));
            },
            |s| services.push(s.name().to_vec()),
        )
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(seen, vec![(1, 1), (3, 3), (1, 1)]);
    assert_eq!(services, vec![b"echo".to_vec()]);
    // Every RX buffer went back: the remote can fill the ring again.
    let mut sent = 0;
    while r.send(2, 1, b"x").unwrap() {
        sent += 1;
    }
    assert_eq!(sent, 16);
}

#[test]
fn a_host_restart_costs_one_reset_on_each_side() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (h, mut r, _, _) = up(w, ours(Role::Host, 16), ours(Role::Remote, 16));
    drop(h);
    let mut h = L::new(w, ours(Role::Host, 16), Bell::default()).unwrap();
    assert_eq!(r.poll(), Err(LinkError::PeerRestarted));
    r.reset().unwrap();
    r.poll().unwrap();
    assert!(r.is_up());
    h.poll().unwrap();
    assert_eq!(
        h.stats().peer_restarts,
        0,
        "the remote re-attached without restarting"
    );
    h.create_endpoint(Some(1)).unwrap();
    assert!(r.send(2, 1, b"still here").unwrap());
    assert_eq!(expect_message(&mut h).2, b"still here");
}

/// Headers are read and written in two 64-bit accesses when 8-byte aligned;
/// a host may place buffers at any alignment, and those still work.
#[test]
fn buffers_at_odd_addresses_still_carry_messages() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, mut r, _, _) = up(w, ours(Role::Host, 16), ours(Role::Remote, 16));
    h.create_endpoint(Some(1)).unwrap();
    r.create_endpoint(Some(2)).unwrap();
    // Host to remote: move the sent message 3 bytes up and say so in its
    // descriptor (vring 1, descriptor 0).
    assert!(h.send(1, 2, b"odd").unwrap());
    let mut bytes = [0u8; 19];
    w.read_bytes(first_tx_buffer(), &mut bytes).unwrap();
    w.write_bytes(first_tx_buffer() + 3, &bytes).unwrap();
    w.write_u64(at::V1, BUS + first_tx_buffer() as u64 + 3)
        .unwrap();
    assert_eq!(expect_message(&mut r), (1, 2, b"odd".to_vec()));
    // Remote to host: vring 0's descriptor 0 now points 5 bytes into buffer 0.
    w.write_u64(at::V0, BUS + 0x8000 + 5).unwrap();
    w.write_u32(at::V0 + 8, 500).unwrap();
    assert!(r.send(2, 1, b"back").unwrap());
    let mut hdr = [0u8; 20];
    w.read_bytes(0x8000 + 5, &mut hdr).unwrap();
    assert_eq!(&hdr[..4], &2u32.to_le_bytes(), "src");
    assert_eq!(&hdr[4..8], &1u32.to_le_bytes(), "dst");
    assert_eq!(&hdr[12..14], &4u16.to_le_bytes(), "len");
    assert_eq!(&hdr[16..], b"back");
}

/// A remote with nothing to receive takes its next TX buffer from vring 0
/// then: the reply uses it; a buffer the host offered wrongly is reported
/// (from that receive) and counted; one taken before a host restart is not
/// used after the reset.
#[test]
fn an_idle_remote_takes_its_next_tx_buffer_early() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut h, mut r, _, _) = up(w, ours(Role::Host, 16), ours(Role::Remote, 16));
    h.create_endpoint(Some(1)).unwrap();
    r.create_endpoint(Some(2)).unwrap();
    // vring 0's first descriptor is buffer 0; the idle receive takes it.
    assert!(r.receive().unwrap().is_none());
    w.write_u64(at::V0, 0).unwrap(); // too late to matter: already checked
    assert!(r.send(2, 1, b"early").unwrap());
    assert_eq!(expect_message(&mut h), (2, 1, b"early".to_vec()));
    // The next one (descriptor 1) is made device-readable before the remote
    // takes it: reported by the idle receive, counted, given back.
    w.write_u16(at::V0 + 16 + 12, 0).unwrap();
    assert_eq!(
        r.receive().unwrap_err(),
        LinkError::Message(MessageError::Buffer)
    );
    assert_eq!(r.stats().message_errors, 1);
    assert!(!r.is_broken());
    // The host takes the refused buffer back (and reposts it).
    assert!(h.receive().is_err_and(|e| !e.is_fatal()));
    assert!(
        r.receive().unwrap().is_none(),
        "takes descriptor 2 as spare"
    );
    // The host restarts: the spare belongs to the old rings.
    drop(h);
    let mut h = L::new(w, ours(Role::Host, 16), Bell::default()).unwrap();
    h.create_endpoint(Some(1)).unwrap();
    assert_eq!(r.poll(), Err(LinkError::PeerRestarted));
    r.reset().unwrap();
    r.poll().unwrap();
    assert!(r.send(2, 1, b"after").unwrap());
    assert_eq!(expect_message(&mut h), (2, 1, b"after".to_vec()));
    assert_eq!(h.stats().ring_errors, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A hostile peer writing arbitrary bytes anywhere in the window, between
    /// arbitrary calls on both sides: no panic, no endless loop, nothing
    /// written outside the window.
    #[test]
    fn arbitrary_window_contents_never_escape(
        seed_bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        pokes in proptest::collection::vec((0usize..0x10000, any::<u32>()), 0..64),
        ops in proptest::collection::vec(0u8..8, 1..120),
        layout in 0usize..3,
    ) {
        let mem = region(WINDOW + 0x2000);
        let whole = Window::from_words(&mem);
        whole.fill(0, WINDOW + 0x2000, 0x5a).unwrap();
        let w = whole.slice(0x1000, WINDOW).unwrap().with_bus_address(BUS);
        w.fill(0, WINDOW, 0).unwrap();
        let (_, hc, rc) = configs().swap_remove(layout);
        let mut r = L::new(w, rc, Bell::default()).unwrap();
        let mut h = L::new(w, hc, Bell::default()).unwrap();
        r.doorbell_rang();
        let _ = h.create_endpoint(Some(1));
        let _ = r.create_endpoint(Some(2));
        // Garbage over the rings and the first buffers.
        let _ = w.write_bytes(0x1000, &seed_bytes);
        let _ = w.write_bytes(0x4000, &seed_bytes);
        let mut pokes = pokes.into_iter();
        let mut held = Vec::new();
        for op in ops {
            let link = if op & 1 == 0 { &mut h } else { &mut r };
            match op >> 1 {
                0 => { let _ = link.send(1, 2, b"payload"); }
                1 => {
                    if let Ok(Some(Incoming::Message(m))) = link.receive() {
                        let mut buf = [0u8; 512];
                        let _ = m.copy_to(&mut buf);
                        if held.len() < 4 { held.push(m) } else { let _ = link.release(m); }
                    }
                }
                2 => { let _ = link.poll(); }
                _ => if link.is_broken() { let _ = link.reset(); }
                     else if let Some((at, v)) = pokes.next() { let _ = w.write_u32(at & !3, v); },
            }
        }
        drop(held);
        for i in (0..0x1000).chain(0x1000 + WINDOW..WINDOW + 0x2000) {
            prop_assert_eq!(whole.read_u8(i).unwrap(), 0x5a);
        }
    }
}

/// An rpmsg-lite master initialises vring 0 (its RX buffers on the avail ring)
/// and only then pre-fills vring 1's *used* ring with its TX buffers. A polled
/// remote can come up in between, when vring 1's used.idx is still 0. The
/// window is built in exactly that state, by hand, as the master writes it.
#[test]
fn rpmsg_lite_remote_attaching_before_the_used_prefill_tracks_it() {
    const N: u16 = 16;
    const V1: usize = 0x8000;
    const AVAIL: usize = 16 * N as usize;
    const USED: usize = 0x1000;
    const BUFS: usize = 0x10000;
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let desc = |ring: usize, i: u16, buf: usize, flags: u16| {
        let at = ring + 16 * usize::from(i);
        w.write_u64(at, BUS + (BUFS + buf * 512) as u64).unwrap();
        w.write_u32(at + 8, 512).unwrap();
        w.write_u16(at + 12, flags).unwrap();
        w.write_u16(at + 14, 0).unwrap();
    };
    // Vring 0: every master RX buffer offered, device-writable, NO_INTERRUPT.
    for i in 0..N {
        desc(0, i, usize::from(i), 2);
        w.write_u16(AVAIL + 4 + 2 * usize::from(i), i).unwrap();
    }
    w.write_u16(AVAIL, 1).unwrap();
    w.write_u16(AVAIL + 2, N).unwrap();

    // The remote polls now and comes up (vring 0 has buffers).
    let mut r = L::new(w, lite_config(Role::Remote, N), Bell::default()).unwrap();
    r.poll().unwrap();
    assert!(r.is_up());
    let ept = r.create_endpoint(Some(30)).unwrap();

    // The master goes on: vring 1's used ring pre-filled with its TX buffers.
    for i in 0..N {
        desc(V1, i, usize::from(N + i), 0);
        w.write_u32(V1 + USED + 4 + 8 * usize::from(i), i.into())
            .unwrap();
        w.write_u32(V1 + USED + 8 + 8 * usize::from(i), 512)
            .unwrap();
    }
    w.write_u16(V1 + AVAIL, 1).unwrap();
    w.write_u16(V1 + USED + 2, N).unwrap();

    // It sends one message: takes used entry 0 (descriptor 0), fills its
    // buffer, offers it on vring 1's avail ring.
    let buf = BUFS + usize::from(N) * 512;
    w.write_u32(buf, 1).unwrap(); // src
    w.write_u32(buf + 4, ept.addr()).unwrap(); // dst
    w.write_u16(buf + 12, 4).unwrap(); // len
    w.write_bytes(buf + 16, b"ping").unwrap();
    w.write_u32(V1 + 8, 16 + 4).unwrap(); // desc[0].len
    w.write_u16(V1 + AVAIL + 4, 0).unwrap();
    w.write_u16(V1 + AVAIL + 2, 1).unwrap();

    assert_eq!(expect_message(&mut r), (1, ept.addr(), b"ping".to_vec()));
    // The remote gave the buffer back as entry N, after the master's N
    // pre-filled ones (slot N mod N = 0, which the master has consumed), so
    // used.idx moves N -> N + 1 and not back to 1.
    assert_eq!(w.read_u16(V1 + USED + 2).unwrap(), N + 1, "used.idx");
    assert_eq!(w.read_u32(V1 + USED + 4).unwrap(), 0, "used[N].id");
    assert_eq!(
        w.read_u32(V1 + USED + 8).unwrap(),
        16 + 4,
        "used[N].len: the descriptor's length, as rpmsg-lite's remote reports"
    );
    assert_eq!(r.stats().ring_errors, 0);
    // And the remote's own sends still start at vring 0's used index 0.
    assert!(r.send(ept.addr(), 1, b"pong").unwrap());
    assert_eq!(w.read_u16(USED + 2).unwrap(), 1);
}

#[test]
fn a_batch_is_seen_whole_at_its_end_and_never_stalls_the_peer() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, hb, rb) = up(w, hc, rc);
        let (he, re) = endpoints(&mut h, &mut r);
        let word = |i: u32| i.to_le_bytes();

        // Sends in a batch reach the peer together, at its end, with at most
        // one doorbell.
        let rings = hb.count(1);
        let mut b = h.batch();
        for i in 0..5 {
            assert!(b.send(he, re, &word(i)).unwrap(), "{name}");
        }
        assert!(
            r.receive().unwrap().is_none(),
            "{name}: seen before the batch ended"
        );
        b.finish().unwrap();
        assert!(hb.count(1) - rings <= 1, "{name}: one doorbell per batch");
        for i in 0..5 {
            assert_eq!(expect_message(&mut r), (he, re, word(i).to_vec()), "{name}");
        }

        // The remote's sends too; dropping the batch ends it.
        let rings = rb.count(0);
        {
            let mut b = r.batch();
            for i in 0..3 {
                assert!(b.send(re, he, &word(i)).unwrap(), "{name}");
            }
            assert!(
                h.receive().unwrap().is_none(),
                "{name}: seen before the batch ended"
            );
        }
        assert!(rb.count(0) - rings <= 1, "{name}: one doorbell per batch");
        for i in 0..3 {
            assert_eq!(expect_message(&mut h).2, word(i), "{name}");
        }

        // A batch holding every TX buffer publishes them when it runs out:
        // the peer gets all of them while the batch is still open, and the
        // batch goes on once buffers come back.
        let mut b = h.batch();
        let mut sent = 0;
        while b.send(he, re, &word(sent)).unwrap() {
            sent += 1;
        }
        assert_eq!(sent, 16, "{name}: every TX buffer");
        for i in 0..sent {
            assert_eq!(expect_message(&mut r).2, word(i), "{name}");
        }
        assert!(
            b.send(he, re, &word(sent)).unwrap(),
            "{name}: buffers came back"
        );
        drop(b);
        assert_eq!(expect_message(&mut r).2, word(sent), "{name}");

        // Releases in a batch are published once the receiver runs dry: the
        // sender is out of buffers until then, never for longer.
        for i in 0..16 {
            assert!(h.send(he, re, &word(i)).unwrap(), "{name}");
        }
        let mut b = r.batch();
        for i in 0..16 {
            assert_eq!(expect_message(&mut b).2, word(i), "{name}");
        }
        assert!(
            !h.send(he, re, b"x").unwrap(),
            "{name}: releases seen early"
        );
        assert!(b.receive().unwrap().is_none(), "{name}");
        assert!(h.send(he, re, b"x").unwrap(), "{name}: releases not seen");
        drop(b);
        assert_eq!(expect_message(&mut r).2, b"x", "{name}");

        // dispatch gives buffers back every eighth of the ring (two here) as
        // it goes, inside a batch too: a sender that filled the ring refills
        // while the receiver still works through it. The rest go back at
        // its end.
        for i in 0..16 {
            assert!(h.send(he, re, &word(i)).unwrap(), "{name}");
        }
        assert!(!h.send(he, re, b"x").unwrap(), "{name}: ring full");
        let (mut seen, mut refilled) = (0, None);
        let mut b = r.batch();
        let n = b
            .dispatch(
                |_| {
                    seen += 1;
                    if seen == 3 {
                        refilled = Some(h.send(he, re, b"x").unwrap());
                    }
                },
                |_| {},
            )
            .unwrap();
        assert_eq!(refilled, Some(true), "{name}: nothing released as it went");
        assert_eq!(n, 17, "{name}: the refill is taken by the same call");
        drop(b);
        for i in 0..16 {
            assert!(
                h.send(he, re, &word(i)).unwrap(),
                "{name}: not all released at the end"
            );
        }
        assert_eq!(r.dispatch(|_| {}, |_| {}).unwrap(), 16, "{name}");
        assert!(
            h.send(he, re, b"y").unwrap(),
            "{name}: dispatch released nothing"
        );
        assert_eq!(expect_message(&mut r).2, b"y", "{name}");

        // A batch opened inside another ends nothing: the outer one publishes.
        let mut outer = h.batch();
        let mut inner = outer.batch();
        assert!(inner.send(he, re, b"inner").unwrap(), "{name}");
        inner.finish().unwrap();
        assert!(
            r.receive().unwrap().is_none(),
            "{name}: the inner batch published"
        );
        outer.finish().unwrap();
        assert_eq!(expect_message(&mut r).2, b"inner", "{name}");
    }
}

#[test]
fn bursts_fill_in_place_publish_once_and_stop_at_back_pressure() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, hb, rb) = up(w, hc, rc);
        let (he, re) = endpoints(&mut h, &mut r);
        // Message `i` is `i + 1` words, word `k` holding `i * 100 + k`.
        let fill = |i: &mut u64| {
            let n = *i;
            *i += 1;
            move |tx: &mut remoteproc::TxBuffer<'_>| {
                let len = tx
                    .write_words_with(0, n as usize + 1, |k| n * 100 + k as u64)
                    .unwrap();
                Some(len)
            }
        };
        let expect = |link: &mut L<'_>, n: u64, src: u32, dst: u32| {
            let words: Vec<u64> = (0..=n).map(|k| n * 100 + k).collect();
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert_eq!(
                expect_message(link),
                (src, dst, bytes),
                "{name}: message {n}"
            );
        };

        // Five messages in one burst: one doorbell, all seen in order.
        let mut next = 0;
        let rings = hb.count(1);
        let sent = h.send_burst(he, re, 5, |tx| fill(&mut next)(tx)).unwrap();
        assert_eq!(sent, 5, "{name}");
        assert!(hb.count(1) - rings <= 1, "{name}: one doorbell per burst");
        for n in 0..5 {
            expect(&mut r, n, he, re);
        }

        // More than there are buffers: the ring's worth, then none until
        // the remote gives some back; nothing lost.
        let sent = h.send_burst(he, re, 100, |tx| fill(&mut next)(tx)).unwrap();
        assert_eq!(sent, 16, "{name}: one message per TX buffer");
        let none = h.send_burst(he, re, 1, |_| panic!("no buffer is free"));
        assert_eq!(none, Ok(0), "{name}");
        for n in 5..21 {
            expect(&mut r, n, he, re);
        }

        // `None` stops the burst without sending, and the buffer stays free.
        let mut calls = 0;
        let sent = h
            .send_burst(he, re, 10, |tx| {
                calls += 1;
                (calls <= 2).then(|| fill(&mut next)(tx)).flatten()
            })
            .unwrap();
        assert_eq!((sent, calls), (2, 3), "{name}");
        expect(&mut r, 21, he, re);
        expect(&mut r, 22, he, re);
        assert!(r.receive().unwrap().is_none(), "{name}: only two sent");

        // The remote streams too (its buffers come from the host's ring).
        let rings = rb.count(0);
        let sent = r.send_burst(re, he, 3, |tx| fill(&mut next)(tx)).unwrap();
        assert_eq!(sent, 3, "{name}");
        assert!(rb.count(0) - rings <= 1, "{name}: one doorbell per burst");
        for n in 23..26 {
            expect(&mut h, n, re, he);
        }

        // Inside a batch, a burst is seen at the batch's end.
        let mut b = h.batch();
        assert_eq!(b.send_burst(he, re, 2, |tx| fill(&mut next)(tx)), Ok(2));
        assert!(
            r.receive().unwrap().is_none(),
            "{name}: seen before the batch ended"
        );
        b.finish().unwrap();
        expect(&mut r, 26, he, re);
        expect(&mut r, 27, he, re);
    }
}

#[test]
fn a_burst_refuses_misuse_and_keeps_what_it_sent() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, _, _) = up(w, hc, rc);
        let (he, re) = endpoints(&mut h, &mut r);
        for link in [&mut h, &mut r] {
            assert_eq!(
                link.send_burst(u32::MAX, 5, 1, |_| Some(1)),
                Err(LinkError::Usage),
                "{name}: ADDR_ANY"
            );
        }
        // The third payload claims more than its buffer holds: the first
        // two are delivered, the third is not, and the buffer is not lost.
        let mut k = 0u8;
        let long = h.send_burst(he, re, 5, |tx| {
            k += 1;
            tx.write(0, &[k]).unwrap();
            Some(if k == 3 { tx.capacity() + 1 } else { 1 })
        });
        assert_eq!(long, Err(LinkError::Usage), "{name}");
        assert_eq!(expect_message(&mut r).2, [1], "{name}");
        assert_eq!(expect_message(&mut r).2, [2], "{name}");
        assert!(r.receive().unwrap().is_none(), "{name}");
        assert!(!h.is_broken(), "{name}: misuse does not break the link");
        // A buffer swapped for another lent one is refused, and the one
        // swapped in given back; the one swapped out cannot be sent.
        let mut other = h.alloc_tx().unwrap().unwrap();
        let swapped = h.send_burst(he, re, 1, |tx| {
            std::mem::swap(tx, &mut other);
            Some(1)
        });
        assert_eq!(swapped, Err(LinkError::Usage), "{name}");
        assert_eq!(
            h.send_buffer(other, he, re, 1),
            Err(LinkError::Usage),
            "{name}"
        );
        assert!(r.receive().unwrap().is_none(), "{name}");
        // No buffer was lost.
        let mut sent = 0;
        while h.send(he, re, b"x").unwrap() {
            sent += 1;
        }
        assert_eq!(sent, 16, "{name}: every buffer");
        for _ in 0..sent {
            assert_eq!(expect_message(&mut r).2, b"x", "{name}");
        }
    }
}
