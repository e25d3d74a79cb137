//! virtio-drivers' own console and network drivers, unchanged, against our
//! console and network devices across a real link (see `common`): bytes
//! both ways on the console, frames both ways on the network device.

mod common;

use common::*;
use remoteproc::virtio::console::{Console, ConsolePort};
use remoteproc::virtio::net::{Net, NetPort};
use remoteproc::virtio::VirtioDevice;
use shmem::Window;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_msg_driver::{LinkBus, MsgTransport, WindowHal};

/// A console port: keeps what the driver wrote, offers a greeting.
#[derive(Default)]
struct Port {
    out: Vec<u8>,
    input: VecDeque<u8>,
}

impl ConsolePort for Port {
    fn output(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
    fn input(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.input.len());
        for b in &mut out[..n] {
            *b = self.input.pop_front().unwrap();
        }
        n
    }
}

/// A network port: echoes every frame back with the addresses swapped.
#[derive(Default)]
struct Echo {
    queued: VecDeque<Vec<u8>>,
    seen: usize,
}

impl NetPort for Echo {
    fn transmit(&mut self, frame: &[u8]) {
        let mut back = frame.to_vec();
        back[..6].copy_from_slice(&frame[6..12]);
        back[6..12].copy_from_slice(&frame[..6]);
        self.queued.push_back(back);
        self.seen += 1;
    }
    fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        let f = self.queued.pop_front()?;
        out[..f.len()].copy_from_slice(&f);
        Some(f.len())
    }
}

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

#[test]
fn console_and_net_drivers_use_our_devices() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let region = Region::new();
    let w = Window::from_words(region.words()).with_bus_address(BUS);
    region.give_pool();
    let stop = AtomicBool::new(false);
    let mut port = Port::default();
    port.input.extend(b"hello from the device\n");
    let (out, echoed) = std::thread::scope(|s| {
        let device = s.spawn(|| {
            let mut console = VirtioDevice::new(Console::new(port), w);
            let mut net = VirtioDevice::new(Net::new(Echo::default(), MAC, 1500), w);
            serve_devices(w, &mut [Some(&mut console), Some(&mut net)], &stop);
            (
                console.into_model().port().out.clone(),
                net.into_model().port().seen,
            )
        });
        let mut link = driver_link(w);
        let bus = std::cell::RefCell::new(LinkBus::new(&mut link, EP, EP));
        let mut console =
            VirtIOConsole::<WindowHal, _>::new(MsgTransport::new(&bus, 0).unwrap()).unwrap();
        let mut net =
            VirtIONetRaw::<WindowHal, _, 16>::new(MsgTransport::new(&bus, 1).unwrap()).unwrap();
        assert_eq!(net.mac_address(), MAC);

        console.send_bytes(b"hello from the driver\n").unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.len() < 22 {
            // The device writes input as buffers come; poll it along.
            if let Some(b) = console.recv(true).unwrap() {
                got.push(b);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "console input: {got:?}"
            );
        }
        assert_eq!(got, b"hello from the device\n");

        // `send` puts the virtio-net header before the frame itself.
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&MAC);
        frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        for (i, b) in frame[14..].iter_mut().enumerate() {
            *b = i as u8;
        }
        for _ in 0..3 {
            net.send(&frame).unwrap();
            let mut rx = vec![0u8; 2048];
            let (hdr, len) = net.receive_wait(&mut rx).unwrap();
            assert_eq!((hdr, len), (12, 60));
            assert_eq!(&rx[12..18], &frame[6..12], "addresses swapped");
            assert_eq!(&rx[12 + 12..12 + 60], &frame[12..], "payload intact");
        }
        drop((console, net));
        stop.store(true, Ordering::Relaxed);
        device.join().unwrap()
    });
    assert_eq!(out, b"hello from the driver\n");
    assert_eq!(echoed, 3);
    // virtio-drivers' console keeps one receive buffer posted and does not
    // take it back when dropped: its bounce page stays with the device.
    assert_eq!(WindowHal::pages_in_use(), 1, "the queues' pages given back");
}
