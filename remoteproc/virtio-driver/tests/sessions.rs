//! Two partitions that each provide a device to the other and drive the
//! other's, over one link, through `remoteproc::avps::Session` and
//! `SessionBus`: A serves an entropy device and drives B's console, B
//! serves the console and drives A's entropy device with virtio-drivers'
//! blocking `request_entropy`, while both exchange numbered messages on an
//! endpoint of their own. Neither may wait for the other forever, nothing
//! may be lost, and every byte must arrive as sent.

mod common;

use common::*;
use remoteproc::avps::session::{DeviceEnd, Devices, Kind, Provided, Received, Session, KINDS};
use remoteproc::virtio::bus::BusDevice;
use remoteproc::virtio::console::{Console, ConsolePort};
use remoteproc::virtio::rng::{Entropy, Rng};
use remoteproc::virtio::VirtioDevice;
use remoteproc::{Role, RxMessage};
use shmem::doorbell::Polling;
use shmem::Window;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::rng::VirtIORng;
use virtio_msg_driver::{MsgTransport, Options, SessionBus, WindowHal};

/// Numbered messages each side sends the other.
const MESSAGES: u32 = 2000;
const TEST_EP: u32 = 0x500;
/// What B's console says, and what A writes to it.
const FROM_B: &[u8] = b"hello from B's console\n";
const FROM_A: &[u8] = b"typed on A\n";
/// Entropy draws B makes, 64 bytes each.
const DRAWS: usize = 40;

struct Counter(u8);

impl Entropy for Counter {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        for b in out.iter_mut() {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        out.len()
    }
}

#[derive(Default)]
struct Port {
    input: Vec<u8>,
    output: Vec<u8>,
}

impl ConsolePort for Port {
    fn output(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }
    fn input(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.input.len());
        out[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        n
    }
}

struct DevicesOf<'w> {
    console: Option<VirtioDevice<'w, Console<Port>>>,
    rng: Option<VirtioDevice<'w, Rng<Counter>>>,
    /// The peer's numbered messages taken so far, checked in order.
    received: u32,
}

impl DevicesOf<'_> {
    fn count(&mut self, m: &RxMessage<'_>) {
        assert_eq!(m.dst(), TEST_EP, "only test messages reach the partition");
        let mut b = [0u8; 4];
        m.read(0, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), self.received, "in order, none lost");
        self.received += 1;
    }
}

impl Provided for DevicesOf<'_> {
    fn slots(&mut self) -> [Option<&mut dyn BusDevice>; KINDS] {
        let mut s: [Option<&mut dyn BusDevice>; KINDS] = [None, None, None, None];
        s[Kind::Console as usize] = self.console.as_mut().map(|d| d as &mut dyn BusDevice);
        s[Kind::Rng as usize] = self.rng.as_mut().map(|d| d as &mut dyn BusDevice);
        s
    }

    // The numbered messages keep coming while a driver here waits.
    fn take(&mut self, m: &RxMessage<'_>) -> bool {
        self.count(m);
        true
    }
}

type Side<'w> = RefCell<Session<'w, Polling, DevicesOf<'w>>>;

/// Sides done with their own part (they serve on until both are).
static DONE: AtomicU32 = AtomicU32::new(0);

/// Sends what is due of this side's numbered messages, takes the peer's
/// (checked in order) and everything else the session hands out.
fn exchange(side: &Side<'_>, sent: &mut u32, peer_bus: &mut bool) -> u32 {
    let mut s = side.borrow_mut();
    let _ = s.poll();
    while *sent < MESSAGES {
        let bytes = sent.to_le_bytes();
        match s.link.send(TEST_EP, TEST_EP, &bytes) {
            Ok(true) => *sent += 1,
            _ => break,
        }
    }
    loop {
        let r = match s.receive() {
            Ok(r) => r,
            // Before the link is up.
            Err(e) if !e.is_fatal() => break,
            Err(e) => panic!("link error {e:?}"),
        };
        match r {
            Some(Received::PeerBus) => *peer_bus = true,
            Some(Received::Message(m)) => {
                s.provided.count(&m);
                s.link.release(m).unwrap();
            }
            Some(Received::Service(_)) => {}
            None => break,
        }
    }
    s.provided.received
}

fn serve_until_both_done(side: &Side<'_>, deadline: Instant) {
    while DONE.load(Ordering::Acquire) < 2 {
        let mut s = side.borrow_mut();
        let _ = s.poll();
        while let Ok(Some(r)) = s.receive() {
            if let Received::Message(m) = r {
                s.link.release(m).unwrap();
            }
        }
        drop(s);
        assert!(Instant::now() < deadline, "the peer never finished");
    }
}

/// A: provides entropy, drives B's console.
fn side_a(w: Window<'_>, deadline: Instant) -> Vec<u8> {
    let mut devices = Devices::default();
    devices.set(Kind::Rng, DeviceEnd::Provides, true);
    devices.set(Kind::Console, DeviceEnd::Uses, true);
    let ours = DevicesOf {
        console: None,
        rng: Some(VirtioDevice::new(Rng::new(Counter(0)), w)),
        received: 0,
    };
    let side: Side<'_> =
        RefCell::new(Session::open(w, config(Role::Host), Polling, devices, ours).unwrap());
    side.borrow_mut()
        .link
        .create_endpoint(Some(TEST_EP))
        .unwrap();
    let (mut sent, mut received, mut peer_bus) = (0, 0, false);
    let mut console = None;
    let mut got = Vec::new();
    let mut typed = false;
    while sent < MESSAGES || received < MESSAGES || got.len() < FROM_B.len() || !typed {
        assert!(
            Instant::now() < deadline,
            "A: sent {sent}, received {received}, console {got:?}"
        );
        received = exchange(&side, &mut sent, &mut peer_bus);
        if peer_bus && console.is_none() {
            let dev_num = devices.dev_num(Kind::Console, DeviceEnd::Uses).unwrap();
            let options = Options::default().patience_micros(5_000_000, micros);
            let t = MsgTransport::with(SessionBus::new(&side), dev_num, options).unwrap();
            console = Some(VirtIOConsole::<WindowHal, _>::new(t).unwrap());
        }
        if let Some(c) = &mut console {
            while let Some(b) = c.recv(true).unwrap() {
                got.push(b);
            }
            if !typed && received > MESSAGES / 2 {
                // Blocking: B may be blocked in its own entropy request.
                c.send_bytes(FROM_A).unwrap();
                typed = true;
            }
        }
    }
    // Dropping the driver resets its queues: the peer must still serve.
    drop(console);
    DONE.fetch_add(1, Ordering::AcqRel);
    serve_until_both_done(&side, deadline);
    let st = side.borrow().stats();
    assert_eq!((st.refused, st.unanswered), (0, 0), "{st:?}");
    got
}

/// B: provides the console, drives A's entropy device.
fn side_b(w: Window<'_>, deadline: Instant) -> (Vec<u8>, Vec<u8>) {
    let mut devices = Devices::default();
    devices.set(Kind::Console, DeviceEnd::Provides, true);
    devices.set(Kind::Rng, DeviceEnd::Uses, true);
    let port = Port {
        input: FROM_B.to_vec(),
        output: Vec::new(),
    };
    let ours = DevicesOf {
        console: Some(VirtioDevice::new(Console::new(port), w)),
        rng: None,
        received: 0,
    };
    let side: Side<'_> =
        RefCell::new(Session::open(w, config(Role::Remote), Polling, devices, ours).unwrap());
    side.borrow_mut()
        .link
        .create_endpoint(Some(TEST_EP))
        .unwrap();
    let (mut sent, mut received, mut peer_bus) = (0, 0, false);
    let mut rng = None;
    let mut entropy = Vec::new();
    let output = |side: &Side<'_>| {
        let mut s = side.borrow_mut();
        s.provided
            .console
            .as_mut()
            .unwrap()
            .model()
            .port()
            .output
            .clone()
    };
    while sent < MESSAGES
        || received < MESSAGES
        || entropy.len() < DRAWS * 64
        || output(&side).len() < FROM_A.len()
    {
        assert!(
            Instant::now() < deadline,
            "B: sent {sent}, received {received}"
        );
        received = exchange(&side, &mut sent, &mut peer_bus);
        if peer_bus && rng.is_none() {
            let dev_num = devices.dev_num(Kind::Rng, DeviceEnd::Uses).unwrap();
            let options = Options::default().patience_micros(5_000_000, micros);
            let t = MsgTransport::with(SessionBus::new(&side), dev_num, options).unwrap();
            rng = Some(VirtIORng::<WindowHal, _>::new(t).unwrap());
        }
        if let (Some(r), true) = (&mut rng, entropy.len() < DRAWS * 64) {
            let mut buf = [0u8; 64];
            assert_eq!(r.request_entropy(&mut buf).unwrap(), 64);
            entropy.extend_from_slice(&buf);
        }
    }
    drop(rng);
    DONE.fetch_add(1, Ordering::AcqRel);
    serve_until_both_done(&side, deadline);
    let out = output(&side);
    (entropy, out)
}

fn micros() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[test]
fn two_partitions_drive_each_others_devices_over_one_link_without_waiting_forever() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let region = Region::new();
    let w = Window::from_words(region.words()).with_bus_address(BUS);
    region.give_pool();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (console, (entropy, typed)) = std::thread::scope(|s| {
        let a = s.spawn(|| side_a(w, deadline));
        let b = s.spawn(|| side_b(w, deadline));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(console, FROM_B, "A read B's console");
    assert_eq!(typed, FROM_A, "B's console got what A wrote");
    for (i, b) in entropy.iter().enumerate() {
        assert_eq!(*b, i as u8, "entropy byte {i} as the device gave it");
    }
}
