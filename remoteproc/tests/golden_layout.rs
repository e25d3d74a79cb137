//! Byte offsets of every wire structure, written as facts with their source, and
//! checked against bytes our code actually put in a window.

mod common;

use common::*;
use remoteproc::resource_table::{self, TableSpec};
use remoteproc::rpmsg;
use remoteproc::{Incoming, Link, Role};
use shmem::virtqueue::{Notification, RingLayout, Segment};
use shmem::{DriverQueue, Window};

fn u32_at(w: &Window<'_>, at: usize) -> u32 {
    w.read_u32(at).unwrap()
}

/// Linux include/linux/remoteproc.h: struct resource_table { u32 ver; u32 num;
/// u32 reserved[2]; u32 offset[]; }, struct fw_rsc_hdr { u32 type; }, struct
/// fw_rsc_vdev { u32 id, notifyid, dfeatures, gfeatures, config_len; u8 status,
/// num_of_vrings, reserved[2]; struct fw_rsc_vdev_vring vring[]; }, struct
/// fw_rsc_vdev_vring { u32 da, align, num, notifyid, pa; }; all packed.
#[test]
fn resource_table_offsets() {
    assert_eq!(resource_table::header::VER, 0);
    assert_eq!(resource_table::header::NUM, 4);
    assert_eq!(resource_table::header::RESERVED, 8);
    assert_eq!(resource_table::header::OFFSET, 16);
    assert_eq!(resource_table::vdev::VRING, 28);
    assert_eq!(resource_table::vring::SIZE, 20);
    assert_eq!(resource_table::TABLE_SIZE, 16 + 4 + 28 + 40);

    let mem = region(0x8000);
    let w = Window::from_words(&mem);
    let spec = TableSpec {
        dfeatures: 0x1,
        vrings: [(0x1000, 0x1000, 256), (0x4000, 0x1000, 256)],
    };
    resource_table::write(&w, 0x100, &spec).unwrap();
    let t = 0x100;
    assert_eq!(u32_at(&w, t), 1, "ver");
    assert_eq!(u32_at(&w, t + 4), 1, "num");
    assert_eq!((u32_at(&w, t + 8), u32_at(&w, t + 12)), (0, 0), "reserved");
    let e = t + u32_at(&w, t + 16) as usize;
    assert_eq!(e, t + 20);
    assert_eq!(u32_at(&w, e), 3, "type RSC_VDEV");
    assert_eq!(u32_at(&w, e + 4), 7, "id VIRTIO_ID_RPMSG");
    assert_eq!(
        u32_at(&w, e + 8),
        2,
        "notifyid: the vdev's own, after vrings 0 and 1"
    );
    assert_eq!(u32_at(&w, e + 12), 1, "dfeatures = VIRTIO_RPMSG_F_NS");
    assert_eq!(u32_at(&w, e + 16), 0, "gfeatures");
    assert_eq!(u32_at(&w, e + 20), 0, "config_len");
    assert_eq!(w.read_u8(e + 24).unwrap(), 0, "status");
    assert_eq!(w.read_u8(e + 25).unwrap(), 2, "num_of_vrings");
    assert_eq!(w.read_u16(e + 26).unwrap(), 0, "reserved");
    for (j, da) in [(0, 0x1000), (1, 0x4000)] {
        let v = e + 28 + 20 * j;
        assert_eq!(u32_at(&w, v), da, "vring da");
        assert_eq!(u32_at(&w, v + 4), 0x1000, "vring align");
        assert_eq!(u32_at(&w, v + 8), 256, "vring num");
        assert_eq!(u32_at(&w, v + 16), 0, "vring pa/reserved");
    }
    let dev = resource_table::find_rpmsg(&w, t, resource_table::TABLE_SIZE).unwrap();
    resource_table::accept(&w, &dev, 1, 7).unwrap();
    assert_eq!(w.read_u8(e + 24).unwrap(), 7, "status ACK|DRIVER|DRIVER_OK");
    assert_eq!(u32_at(&w, e + 16), 1, "gfeatures written back");
    assert_eq!(
        (u32_at(&w, e + 28 + 12), u32_at(&w, e + 48 + 12)),
        (0, 1),
        "notifyids"
    );
}

/// Linux include/uapi/linux/virtio_ring.h: struct vring_desc { le64 addr; le32
/// len; le16 flags; le16 next; }, vring_avail { flags; idx; ring[] } with
/// used_event after ring[num], vring_used { flags; idx; {le32 id; le32 len}[] }
/// with avail_event after ring[num]; used ring at align_up(avail end + 2).
#[test]
fn vring_offsets() {
    let mem = region(0x4000);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let l = RingLayout::legacy(&w, 0, 4, 0x1000).unwrap();
    assert_eq!((l.desc, l.avail, l.used), (0, 64, 0x1000));
    let mut q: DriverQueue<'_, 4> = DriverQueue::new(w, l, Notification::default()).unwrap();
    q.add(
        &[
            Segment {
                addr: BUS + 0x2000,
                len: 0x10,
                device_writable: false,
            },
            Segment {
                addr: BUS + 0x3000,
                len: 0x200,
                device_writable: true,
            },
        ],
        0,
    )
    .unwrap();
    q.publish().unwrap();
    assert_eq!(w.read_u64(0).unwrap(), BUS + 0x2000, "desc[0].addr @0");
    assert_eq!(u32_at(&w, 8), 0x10, "desc[0].len @8");
    assert_eq!(w.read_u16(12).unwrap(), 1, "desc[0].flags @12 = NEXT");
    assert_eq!(w.read_u16(14).unwrap(), 1, "desc[0].next @14");
    assert_eq!(w.read_u64(16).unwrap(), BUS + 0x3000, "desc[1] @16");
    assert_eq!(w.read_u16(16 + 12).unwrap(), 2, "desc[1].flags = WRITE");
    assert_eq!(w.read_u16(64).unwrap(), 0, "avail.flags @0");
    assert_eq!(w.read_u16(66).unwrap(), 1, "avail.idx @2");
    assert_eq!(w.read_u16(68).unwrap(), 0, "avail.ring[0] @4");
    // used_event at avail + 4 + 2*num; used ring after align_up.
    assert_eq!(RingLayout::legacy_size(4, 0x1000), 0x1000 + 6 + 32);
}

/// drivers/rpmsg/virtio_rpmsg_bus.c: struct rpmsg_hdr { u32 src; u32 dst; u32
/// reserved; u16 len; u16 flags; u8 data[]; } (packed, 16 bytes); struct
/// rpmsg_ns_msg { char name[32]; u32 addr; u32 flags; } (40 bytes);
/// RPMSG_NS_ADDR 53; 512-byte buffers. rpmsg-lite rpmsg_lite.h: same header,
/// RL_BUFFER_PAYLOAD_SIZE 496, RL_NS_EPT_ADDR 0x35.
#[test]
fn rpmsg_header_and_name_service_offsets() {
    assert_eq!(
        (
            rpmsg::header::SRC,
            rpmsg::header::DST,
            rpmsg::header::RESERVED
        ),
        (0, 4, 8)
    );
    assert_eq!(
        (
            rpmsg::header::LEN,
            rpmsg::header::FLAGS,
            rpmsg::header::DATA
        ),
        (12, 14, 16)
    );
    assert_eq!(
        (rpmsg::NS_ADDR, rpmsg::BUFFER_SIZE, rpmsg::MAX_PAYLOAD),
        (53, 512, 496)
    );
    let m = rpmsg::ns_message(b"rpmsg-tty", 0x400, rpmsg::NS_DESTROY);
    assert_eq!(m.len(), 40);
    assert_eq!(&m[..10], b"rpmsg-tty\0");
    assert_eq!(&m[32..36], &0x400u32.to_le_bytes());
    assert_eq!(&m[36..40], &1u32.to_le_bytes());

    // A message as the host writes it into its first TX buffer (index N).
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut host: Link<'_, Bell, 8> =
        Link::new(w, lite_config(Role::Host, 8), Bell::default()).unwrap();
    let mut remote: Link<'_, Bell, 8> =
        Link::new(w, lite_config(Role::Remote, 8), Bell::default()).unwrap();
    let ept = remote.create_endpoint(Some(0x401)).unwrap();
    assert!(host.send(0x400, ept.addr(), b"hello").unwrap());
    // rpmsg-lite's layout: buffers after both vrings; the host's TX buffers
    // are the second half, lent first to last.
    let buf = 0x10000 + 8 * 512;
    assert_eq!(u32_at(&w, buf), 0x400, "src @0");
    assert_eq!(u32_at(&w, buf + 4), 0x401, "dst @4");
    assert_eq!(u32_at(&w, buf + 8), 0, "reserved @8");
    assert_eq!(w.read_u16(buf + 12).unwrap(), 5, "len @12");
    assert_eq!(w.read_u16(buf + 14).unwrap(), 0, "flags @14");
    let mut data = [0u8; 5];
    w.read_bytes(buf + 16, &mut data).unwrap();
    assert_eq!(&data, b"hello");
    // vring 1 (host TX) sits one 0x8000 stride after vring 0 (rpmsg-lite VRING_SIZE).
    assert_eq!(w.read_u64(0x8000).unwrap(), BUS + buf as u64);
    match remote.receive().unwrap() {
        Some(Incoming::Message(m)) => assert_eq!((m.src(), m.len()), (0x400, 5)),
        other => panic!("{other:?}"),
    }
}
