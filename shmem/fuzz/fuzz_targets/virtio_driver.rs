//! The driver side of virtio devices over virtio-msg against a hostile
//! device: `virtio-drivers`' block, console, network and entropy drivers on
//! our `MsgTransport` and `WindowHal`, fed answers that a real device model
//! gives but the fuzzer corrupts, messages of its own, refused sends, and
//! arbitrary writes into the drivers' pool (their rings and buffers) between
//! calls. Only calls that do not wait for the device are made after start-up
//! (virtio-drivers' blocking calls spin on the used ring without a bound).
//! Asserts: no panic in our code, no hang (every transport wait is
//! bounded), nothing touched outside the pool.
//!
//! virtio-drivers 0.13 trusts the used ring, so a hostile device reaches
//! assertions of its own: `VirtIOConsole` asserts a used length is not
//! zero, and `VirtQueue::pop_used` recycles a chain without checking it is
//! in flight (a device that returns one id twice underflows its count of
//! descriptors in use). Those panics are the crate's: they are let through
//! here (counted on stderr once) and every other panic aborts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remoteproc::virtio::blk::{Blk, RamDisk};
use remoteproc::virtio::bus::{serve, BusDevice, Served};
use remoteproc::virtio::console::{Console, ConsolePort};
use remoteproc::virtio::net::{Net, NetPort};
use remoteproc::virtio::rng::{Entropy, Rng};
use remoteproc::virtio::VirtioDevice;
use shmem::Window;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::device::rng::VirtIORng;
use virtio_msg_driver::{MessageBus, MsgTransport, Options, WindowHal};

const BUS: u64 = 0x7000_0000;
const POOL: usize = 0x1_0000;

/// The pool, page-aligned, for the life of the process (the Hal is static).
fn pool() -> *mut u8 {
    use std::sync::OnceLock;
    static AT: OnceLock<usize> = OnceLock::new();
    *AT.get_or_init(|| {
        let layout = std::alloc::Layout::from_size_align(POOL, 0x1000).unwrap();
        // SAFETY: a non-zero size; leaked on purpose.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!p.is_null());
        p as usize
    }) as *mut u8
}

struct Bytes;
impl Entropy for Bytes {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        out.fill(0x42);
        out.len()
    }
}

struct Port;
impl ConsolePort for Port {
    fn output(&mut self, _: &[u8]) {}
    fn input(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(7);
        out[..n].fill(b'x');
        n
    }
}
impl NetPort for Port {
    fn transmit(&mut self, _: &[u8]) {}
    fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        out[..60].fill(0xee);
        Some(60)
    }
}

/// The hostile device: a real model answers, the fuzzer decides what
/// arrives.
struct Hostile<'d, 'w> {
    data: &'d [u8],
    device: &'d mut dyn BusDevice,
    window: Window<'w>,
    /// Replies of the device model not yet delivered.
    replies: Vec<Vec<u8>>,
}

impl Hostile<'_, '_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(*b)
    }
}

impl MessageBus for Hostile<'_, '_> {
    fn send(&mut self, message: &[u8]) -> bool {
        // Out of input: every send goes (the driver finishes quickly).
        if self.byte().is_some_and(|b| b == 0) {
            return false;
        }
        let mut out = [0u8; 496];
        let mut slots: [Option<&mut dyn BusDevice>; 1] = [Some(&mut *self.device)];
        if let Served::Reply(n) | Served::Event(n) = serve(&mut slots, message, &mut out) {
            self.replies.push(out[..n].to_vec());
        }
        true
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let Some(op) = self.byte() else {
            // Out of input: the model's answers arrive as they are.
            let r = self.replies.pop()?;
            buf[..r.len()].copy_from_slice(&r);
            return Some(r.len());
        };
        match op % 5 {
            // Nothing now.
            0 => None,
            // The model's answer as it is.
            1 => {
                let r = self.replies.pop()?;
                buf[..r.len()].copy_from_slice(&r);
                Some(r.len())
            }
            // The model's answer with one byte changed.
            2 => {
                let mut r = self.replies.pop()?;
                let (at, x) = (self.byte()?, self.byte()?);
                let i = usize::from(at) % r.len().max(1);
                if let Some(b) = r.get_mut(i) {
                    *b ^= x;
                }
                buf[..r.len()].copy_from_slice(&r);
                Some(r.len())
            }
            // A message of the fuzzer's own.
            3 => {
                let n = usize::from(self.byte()?)
                    .min(self.data.len())
                    .min(buf.len());
                let (m, rest) = self.data.split_at(n);
                buf[..n].copy_from_slice(m);
                self.data = rest;
                Some(n)
            }
            // The device writes the pool (rings, buffers) anywhere.
            _ => {
                let at = u16::from_le_bytes([self.byte()?, self.byte()?]) as usize % POOL;
                let b = self.byte()?;
                let n = usize::from(self.byte()? % 16).min(POOL - at);
                let _ = self.window.fill(at, n, b);
                None
            }
        }
    }
}

/// Panics inside virtio-drivers' own code are its findings (see above);
/// any other panic aborts the run, as libFuzzer expects.
fn hook() {
    use std::sync::Once;
    static SET: Once = Once::new();
    SET.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let theirs = info
                .location()
                .is_some_and(|l| l.file().contains("virtio-drivers-"));
            if !theirs {
                eprintln!("{info}");
                std::process::abort();
            }
            static TOLD: Once = Once::new();
            TOLD.call_once(|| {
                eprintln!("virtio-drivers' own assertion (a hostile device): {info}")
            });
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    hook();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(data)));
});

fn run(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let base = pool();
    // SAFETY: the pool is ours for the process, page-aligned; only the Hal
    // and the device model's window (atomics) reach it, one run at a time.
    assert!(unsafe { WindowHal::init(base, BUS, POOL) });
    // SAFETY: as above; the window sees the same memory the Hal hands out.
    let w = unsafe { Window::from_raw(base, POOL) }
        .unwrap()
        .with_bus_address(BUS);
    w.fill(0, POOL, 0).unwrap();
    let mut disk = [0u8; 8 * 512];
    let mut blk = VirtioDevice::new(Blk::new(RamDisk(&mut disk), b"fuzz", false), w);
    let mut rng = VirtioDevice::new(Rng::new(Bytes), w);
    let mut console = VirtioDevice::new(Console::new(Port), w);
    let mut net = VirtioDevice::new(Net::new(Port, [2, 0, 0, 0, 0, 1], 1500), w);
    let device: &mut dyn BusDevice = match which % 4 {
        0 => &mut blk,
        1 => &mut rng,
        2 => &mut console,
        _ => &mut net,
    };
    let bus = Hostile {
        data,
        device,
        window: w,
        replies: Vec::new(),
    };
    let options = Options::default().patience(16).kicks_wait(which & 4 != 0);
    let Ok(t) = MsgTransport::with(bus, 0, options) else {
        return;
    };
    match which % 4 {
        0 => {
            let Ok(mut d) = VirtIOBlk::<WindowHal, _>::new(t) else {
                return;
            };
            let _ = d.capacity();
            let mut req = Default::default();
            let mut resp = Default::default();
            let mut buf = [0u8; 512];
            // SAFETY: the buffers live until the request is completed or
            // the driver (and its queue) is dropped below.
            if let Ok(token) = unsafe { d.read_blocks_nb(0, &mut req, &mut buf, &mut resp) } {
                for _ in 0..4 {
                    if d.peek_used() == Some(token) {
                        // SAFETY: the same buffers as above.
                        let _ = unsafe { d.complete_read_blocks(token, &req, &mut buf, &mut resp) };
                        break;
                    }
                }
            }
        }
        1 => {
            let _ = VirtIORng::<WindowHal, _>::new(t);
        }
        2 => {
            let Ok(mut d) = VirtIOConsole::<WindowHal, _>::new(t) else {
                return;
            };
            for _ in 0..8 {
                if d.recv(true).is_err() {
                    break;
                }
            }
        }
        _ => {
            let Ok(mut d) = VirtIONetRaw::<WindowHal, _, 4>::new(t) else {
                return;
            };
            let mut rx = [0u8; 1526];
            let mut tx = [0u8; 64];
            // SAFETY: the buffers outlive the driver, dropped first below.
            let got = unsafe { d.receive_begin(&mut rx) };
            let sent = d.fill_buffer_header(&mut tx).map_or(0, |hdr| hdr + 14);
            let mut done = sent == 0;
            if sent > 0 {
                // SAFETY: as above.
                let _ = unsafe { d.transmit_begin(&tx[..sent]) };
            }
            for _ in 0..4 {
                if let (Some(token), Ok(t)) = (d.poll_receive(), &got) {
                    if token == *t {
                        // SAFETY: the buffer given to `receive_begin`.
                        let _ = unsafe { d.receive_complete(token, &mut rx) };
                        break;
                    }
                }
                // Only a token still in flight, as the bridge does.
                if let (Some(token), false) = (d.poll_transmit(), done) {
                    // SAFETY: the buffer given to `transmit_begin`.
                    let _ = unsafe { d.transmit_complete(token, &tx[..sent]) };
                    done = true;
                }
            }
            drop(d);
        }
    }
}
