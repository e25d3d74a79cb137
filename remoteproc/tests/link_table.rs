//! The resource-table layout between our two ends: readiness, what the
//! remote reports back, notify ids, event index negotiation, and corrupt
//! tables keeping the host down.

mod common;

use common::*;
use remoteproc::resource_table::{self, vdev, vring};
use remoteproc::{LinkError, Role};
use shmem::virtqueue::RingLayout;
use shmem::Window;

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
