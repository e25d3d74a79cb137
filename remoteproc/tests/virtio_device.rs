//! The device side of a virtio device (`VirtioDevice`) driven by hand
//! through virtio-msg requests and a driver queue of our own: negotiation,
//! the block device's discard, write-zeroes, unsupported requests and its
//! write cache, and a driver that breaks the rules stopping its device
//! (DEVICE_NEEDS_RESET) until it resets it.

mod common;

use common::*;
use remoteproc::virtio::blk::{self, Blk, RamDisk, SECTOR};
use remoteproc::virtio::{feature, status, DeviceModel, Reply, VirtioDevice};
use remoteproc::virtio_msg::{Config, Message, Transport, Vqueue, Words, MAX_CONFIG_DATA};
use shmem::virtqueue::{Notification, RingLayout, Segment};
use shmem::{DriverQueue, Window};

/// Ring parts and buffers of the test's one queue, as window offsets.
const DESC: usize = 0x1000;
const AVAIL: usize = 0x2000;
const USED: usize = 0x3000;
const BUFS: usize = 0x8000;
const QUEUE: u16 = 16;

fn ask<M: DeviceModel>(dev: &mut VirtioDevice<'_, M>, t: Transport<'_>) -> Option<u32> {
    let (mut c, mut f) = ([0u8; MAX_CONFIG_DATA], [0u8; 8]);
    match dev.handle(&t, &mut c, &mut f) {
        Reply::Answer(Message::Transport(Transport::DeviceStatus(s))) => Some(s),
        Reply::Answer(Message::Transport(Transport::DeviceFeatures { features, .. })) => {
            features.get(0)
        }
        Reply::Answer(Message::Transport(Transport::ConfigRead(c))) => {
            c.data.first().map(|b| u32::from(*b))
        }
        Reply::Event(Message::Transport(Transport::EventUsed { vq })) => Some(vq),
        _ => None,
    }
}

fn set_features<M: DeviceModel>(dev: &mut VirtioDevice<'_, M>, f: u64) {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&(f as u32).to_le_bytes());
    bytes[4..].copy_from_slice(&((f >> 32) as u32).to_le_bytes());
    ask(
        dev,
        Transport::SetDriverFeatures {
            block: 0,
            features: Words::new(&bytes),
        },
    );
}

/// Brings the device up with `features` and one queue; the driver's queue.
fn up<'w, M: DeviceModel>(
    w: Window<'w>,
    dev: &mut VirtioDevice<'w, M>,
    features: u64,
) -> DriverQueue<'w, 16> {
    ask(
        dev,
        Transport::SetDeviceStatus(status::ACKNOWLEDGE | status::DRIVER),
    );
    set_features(dev, features);
    let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    assert_eq!(
        ask(dev, Transport::SetDeviceStatus(s)),
        Some(s),
        "features accepted"
    );
    let layout = RingLayout::split(&w, QUEUE, DESC, AVAIL, USED).unwrap();
    let q = DriverQueue::new(w, layout, Notification::default()).unwrap();
    ask(
        dev,
        Transport::SetVqueue(Vqueue {
            index: 0,
            max_size: 0,
            size: QUEUE.into(),
            flags: 1,
            descriptors: BUS + DESC as u64,
            driver: BUS + AVAIL as u64,
            device: BUS + USED as u64,
        }),
    );
    ask(dev, Transport::SetDeviceStatus(s | status::DRIVER_OK));
    q
}

/// Sends one block request (header, then `data` as device-readable, then
/// `room` device-writable bytes and the status byte); returns the status
/// and what the device wrote.
fn request<M: DeviceModel>(
    w: &Window<'_>,
    dev: &mut VirtioDevice<'_, M>,
    q: &mut DriverQueue<'_, 16>,
    kind: u32,
    sector: u64,
    data: &[u8],
    room: usize,
) -> (u8, Vec<u8>) {
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&kind.to_le_bytes());
    header[8..].copy_from_slice(&sector.to_le_bytes());
    w.write_bytes(BUFS, &header).unwrap();
    w.write_bytes(BUFS + 0x100, data).unwrap();
    let (room_at, status_at) = (BUFS + 0x1000, BUFS + 0x3000);
    w.write_u8(status_at, 0xff).unwrap();
    let seg = |at: usize, len: usize, device_writable| Segment {
        addr: BUS + at as u64,
        len: len as u32,
        device_writable,
    };
    let mut chain = vec![seg(BUFS, 16, false)];
    if !data.is_empty() {
        chain.push(seg(BUFS + 0x100, data.len(), false));
    }
    if room > 0 {
        chain.push(seg(room_at, room, true));
    }
    chain.push(seg(status_at, 1, true));
    q.add(&chain, 1).unwrap();
    q.publish().unwrap();
    assert_eq!(
        ask(dev, Transport::EventAvail { vq: 0, next: 0 }),
        Some(0),
        "EVENT_USED"
    );
    let used = q.pop_used().unwrap().expect("the request was used");
    assert_eq!(used.len as usize, room + 1, "every writable byte accounted");
    let mut out = vec![0u8; room];
    w.read_bytes(room_at, &mut out).unwrap();
    (w.read_u8(status_at).unwrap(), out)
}

const FEATURES: u64 =
    feature::VERSION_1 | blk::feature::FLUSH | blk::feature::DISCARD | blk::feature::WRITE_ZEROES;

#[test]
fn discard_write_zeroes_and_unsupported_requests() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut disk = vec![0xaau8; 64 * SECTOR];
    let mut dev = VirtioDevice::new(Blk::new(RamDisk(&mut disk), b"d", false), w);
    let mut q = up(w, &mut dev, FEATURES);
    let range = |s: u64, n: u32| {
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&s.to_le_bytes());
        r[8..12].copy_from_slice(&n.to_le_bytes());
        r
    };
    let (st, _) = request(
        &w,
        &mut dev,
        &mut q,
        blk::request::WRITE_ZEROES,
        0,
        &range(2, 3),
        0,
    );
    assert_eq!(st, blk::status::OK);
    let two = [range(10, 1), range(20, 2)].concat();
    let (st, _) = request(&w, &mut dev, &mut q, blk::request::DISCARD, 0, &two, 0);
    assert_eq!(st, blk::status::OK);
    let (st, _) = request(
        &w,
        &mut dev,
        &mut q,
        blk::request::DISCARD,
        0,
        &range(63, 2),
        0,
    );
    assert_eq!(st, blk::status::IOERR, "a range past the end");
    let (st, _) = request(&w, &mut dev, &mut q, 99, 0, &[], 0);
    assert_eq!(st, blk::status::UNSUPP);
    let (st, data) = request(&w, &mut dev, &mut q, blk::request::IN, 1, &[], 5 * SECTOR);
    assert_eq!(st, blk::status::OK);
    assert!(
        data[..SECTOR].iter().all(|b| *b == 0xaa),
        "sector 1 untouched"
    );
    assert!(
        data[SECTOR..4 * SECTOR].iter().all(|b| *b == 0),
        "sectors 2-4 zeroed"
    );
    assert!(
        data[4 * SECTOR..].iter().all(|b| *b == 0xaa),
        "sector 5 untouched"
    );
    // A write whose data is not whole sectors.
    let (st, _) = request(&w, &mut dev, &mut q, blk::request::OUT, 0, &[1; 100], 0);
    assert_eq!(st, blk::status::IOERR);
    assert_eq!(dev.error(), None, "bad requests are answered, not fatal");
    let _ = dev.into_model();
    let zeroed: Vec<usize> = (0..64).filter(|s| disk[s * SECTOR] == 0).collect();
    assert_eq!(zeroed, vec![2, 3, 4, 10, 20, 21]);
}

#[test]
fn features_the_device_does_not_offer_are_refused() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut disk = vec![0u8; 8 * SECTOR];
    let mut dev = VirtioDevice::new(Blk::new(RamDisk(&mut disk), b"d", false), w);
    let offered = ask(
        &mut dev,
        Transport::GetDeviceFeatures { block: 0, count: 1 },
    )
    .unwrap();
    assert_ne!(offered & (1 << 13), 0, "DISCARD offered");
    let high = ask(
        &mut dev,
        Transport::GetDeviceFeatures { block: 1, count: 1 },
    )
    .unwrap();
    assert_eq!(high, 1, "VERSION_1 (bit 32)");
    ask(
        &mut dev,
        Transport::SetDeviceStatus(status::ACKNOWLEDGE | status::DRIVER),
    );
    for bad in [FEATURES | 1 << 20, FEATURES & !feature::VERSION_1] {
        set_features(&mut dev, bad);
        let s = ask(
            &mut dev,
            Transport::SetDeviceStatus(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
        )
        .unwrap();
        assert_eq!(s & status::FEATURES_OK, 0, "{bad:#x} refused");
    }
}

#[test]
fn the_write_cache_is_the_drivers_to_turn_off() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut disk = vec![0u8; 8 * SECTOR];
    let mut dev = VirtioDevice::new(Blk::new(RamDisk(&mut disk), b"d", false), w);
    let _q = up(w, &mut dev, FEATURES | blk::feature::CONFIG_WCE);
    let writeback = |dev: &mut VirtioDevice<'_, _>| {
        ask(
            dev,
            Transport::GetConfig {
                offset: blk::config::WRITEBACK,
                len: 1,
            },
        )
    };
    assert_eq!(writeback(&mut dev), Some(1), "on with FLUSH negotiated");
    let (mut c, mut f) = ([0u8; MAX_CONFIG_DATA], [0u8; 8]);
    let _ = dev.handle(
        &Transport::SetConfig(Config {
            generation: 0,
            offset: blk::config::WRITEBACK,
            data: &[0],
        }),
        &mut c,
        &mut f,
    );
    assert_eq!(writeback(&mut dev), Some(0));
    let capacity = ask(&mut dev, Transport::GetConfig { offset: 0, len: 8 });
    assert_eq!(capacity, Some(8), "capacity's low byte: 8 sectors");
}

#[test]
fn a_driver_that_breaks_the_rules_stops_its_device_until_it_resets_it() {
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let mut disk = vec![0u8; 8 * SECTOR];
    let mut dev = VirtioDevice::new(Blk::new(RamDisk(&mut disk), b"d", false), w);
    // A queue outside the window.
    ask(
        &mut dev,
        Transport::SetDeviceStatus(status::ACKNOWLEDGE | status::DRIVER),
    );
    set_features(&mut dev, FEATURES);
    ask(
        &mut dev,
        Transport::SetVqueue(Vqueue {
            index: 0,
            max_size: 0,
            size: 16,
            flags: 1,
            descriptors: BUS + WINDOW as u64,
            driver: BUS,
            device: BUS,
        }),
    );
    let s = ask(&mut dev, Transport::GetDeviceStatus).unwrap();
    assert_ne!(s & status::NEEDS_RESET, 0, "status {s:#x}");
    assert!(dev.error().is_some());
    // Reset, then a descriptor pointing outside the window.
    ask(&mut dev, Transport::SetDeviceStatus(0));
    assert_eq!(dev.error(), None);
    let mut q = up(w, &mut dev, FEATURES);
    q.add(
        &[Segment {
            addr: BUS + BUFS as u64,
            len: 16,
            device_writable: false,
        }],
        1,
    )
    .unwrap();
    q.publish().unwrap();
    w.write_u64(DESC, BUS + 2 * WINDOW as u64).unwrap(); // the peer rewrites it
                                                         // The kick is still answered (a driver waiting for the device to have
                                                         // seen it goes on); the status says the device stopped.
    assert_eq!(
        ask(&mut dev, Transport::EventAvail { vq: 0, next: 0 }),
        Some(0)
    );
    let s = ask(&mut dev, Transport::GetDeviceStatus).unwrap();
    assert_ne!(s & status::NEEDS_RESET, 0, "status {s:#x}");
    // Further kicks use nothing until the reset (each still answered).
    assert_eq!(
        ask(&mut dev, Transport::EventAvail { vq: 0, next: 0 }),
        Some(0)
    );
    assert!(q.pop_used().unwrap().is_none());
}

#[test]
fn the_bus_enumerates_its_devices_answers_pings_and_refuses_strangers() {
    use remoteproc::virtio::bus::{serve, Served};
    use remoteproc::virtio_msg::{decode, encode, Bus};
    let mem = region(WINDOW);
    let w = Window::from_words(&mem).with_bus_address(BUS);
    let (mut d0, mut d1) = (vec![0u8; SECTOR], vec![0u8; SECTOR]);
    let mut a = VirtioDevice::new(Blk::new(RamDisk(&mut d0), b"a", false), w);
    let mut b = VirtioDevice::new(Blk::new(RamDisk(&mut d1), b"b", true), w);
    let mut devices: [Option<&mut dyn remoteproc::virtio::bus::BusDevice>; 2] =
        [Some(&mut a), Some(&mut b)];
    let (mut msg, mut out) = ([0u8; 64], [0u8; 64]);
    let mut ask =
        |m: Message<'_>, dev: u16, devices: &mut remoteproc::virtio::bus::Slots<'_, '_>| {
            let n = encode(&m, dev, 9, &mut msg).unwrap();
            match serve(devices, &msg[..n], &mut out) {
                Served::Reply(len) => Some(out[..len].to_vec()),
                _ => None,
            }
        };
    let r = ask(
        Message::Bus(Bus::GetDevices {
            offset: 0,
            count: 16,
        }),
        0,
        &mut devices,
    )
    .unwrap();
    match decode(&r).unwrap().1 {
        Message::Bus(Bus::Devices {
            count,
            bitmap,
            next,
            ..
        }) => {
            assert_eq!((count, bitmap, next), (16, &[0b11u8, 0][..], 0))
        }
        other => panic!("{other:?}"),
    }
    let r = ask(
        Message::Bus(Bus::GetDevices {
            offset: 0,
            count: 1,
        }),
        0,
        &mut devices,
    )
    .unwrap();
    match decode(&r).unwrap().1 {
        Message::Bus(Bus::Devices { next, .. }) => assert_eq!(next, 1, "device 1 after these"),
        other => panic!("{other:?}"),
    }
    let r = ask(Message::Bus(Bus::Ping(0x1234)), 0, &mut devices).unwrap();
    let (h, m) = decode(&r).unwrap();
    assert!(h.is_response() && h.token == 9);
    assert_eq!(m, Message::Bus(Bus::Ping(0x1234)));
    // Device 1 answers as itself (read-only: RO offered), device 2 is nobody.
    let r = ask(
        Message::Transport(Transport::GetDeviceFeatures { block: 0, count: 1 }),
        1,
        &mut devices,
    )
    .unwrap();
    match decode(&r).unwrap() {
        (h, Message::Transport(Transport::DeviceFeatures { features, .. })) => {
            assert_eq!(h.dev_num, 1);
            assert_ne!(features.get(0).unwrap() & 1 << 5, 0, "RO");
        }
        other => panic!("{other:?}"),
    }
    let n = encode(
        &Message::Transport(Transport::GetDeviceStatus),
        2,
        0,
        &mut msg,
    )
    .unwrap();
    assert_eq!(serve(&mut devices, &msg[..n], &mut out), Served::Refused);
    assert_eq!(serve(&mut devices, &[1, 2, 3], &mut out), Served::Refused);
}
