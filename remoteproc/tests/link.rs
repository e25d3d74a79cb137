//! One host and one remote on one heap window, driven from one thread: the
//! protocol in both layouts and roles, the readiness handshakes, back-pressure,
//! zero copy, and a peer that corrupts each kind of field.

mod common;

use common::*;
use proptest::prelude::*;
use remoteproc::link::MessageError;
use remoteproc::{Incoming, LinkError, Role};
use shmem::virtqueue::RingError;
use shmem::Window;

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
