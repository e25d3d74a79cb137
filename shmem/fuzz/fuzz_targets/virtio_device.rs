//! The device side of virtio devices over virtio-msg against a hostile
//! driver: arbitrary message streams (every transport and bus message,
//! well-formed or not) and arbitrary window contents written between
//! them, through the block, entropy, console and network devices on one
//! bus. Asserts: no panic, no hang (every call is bounded), nothing written
//! outside the window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remoteproc::virtio::blk::{Blk, RamDisk};
use remoteproc::virtio::bus::{serve, BusDevice};
use remoteproc::virtio::console::{Console, ConsolePort};
use remoteproc::virtio::net::{Net, NetPort};
use remoteproc::virtio::rng::{Entropy, Rng};
use remoteproc::virtio::VirtioDevice;
use remoteproc::virtio_msg::HEADER_SIZE;
use shmem::window::Word;
use shmem::Window;

const BUS: u64 = 0x7000_0000;
const GUARD: usize = 0x100;
const WINDOW: usize = 0x8000;

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

fuzz_target!(|data: &[u8]| {
    let mem: Vec<Word> = (0..(WINDOW + 2 * GUARD) / 8).map(|_| Word::new(0)).collect();
    let whole = Window::from_words(&mem);
    whole.fill(0, WINDOW + 2 * GUARD, 0x5a).unwrap();
    let w = whole.slice(GUARD, WINDOW).unwrap().with_bus_address(BUS);
    w.fill(0, WINDOW, 0).unwrap();

    let mut disk = [0u8; 16 * 512];
    let mut blk = VirtioDevice::new(Blk::new(RamDisk(&mut disk), b"fuzz", false), w);
    let mut rng = VirtioDevice::new(Rng::new(Bytes), w);
    let mut console = VirtioDevice::new(Console::new(Port), w);
    let mut net = VirtioDevice::new(Net::new(Port, [2, 0, 0, 0, 0, 1], 1500), w);
    let mut devices: [Option<&mut dyn BusDevice>; 4] =
        [Some(&mut blk), Some(&mut rng), Some(&mut console), Some(&mut net)];
    let mut out = [0u8; 496];

    // Records: op byte, then a length byte and that many bytes.
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        match op % 4 {
            // A message as it came (any bytes at all).
            0 => {
                let _ = serve(&mut devices, body, &mut out);
            }
            // A message with a right header: type, id, device from the op
            // and the body, the size set, so decoding gets past the header.
            1 if body.len() >= 3 => {
                let mut m = [0u8; 496];
                let len = (HEADER_SIZE + body.len() - 3).min(m.len());
                m[0] = body[0] & 3;
                m[1] = body[1];
                m[2] = body[2] % 5;
                m[6..8].copy_from_slice(&(len as u16).to_le_bytes());
                m[HEADER_SIZE..len].copy_from_slice(&body[3..3 + len - HEADER_SIZE]);
                let _ = serve(&mut devices, &m[..len], &mut out);
            }
            // The driver writes the window (its rings and buffers) anywhere.
            2 if body.len() >= 2 => {
                let at = usize::from(u16::from_le_bytes([body[0], body[1]])) % WINDOW;
                let n = (body.len() - 2).min(WINDOW - at);
                let _ = w.write_bytes(at, &body[2..2 + n]);
            }
            // The device side polls its queues.
            _ => {
                for d in devices.iter_mut().flatten() {
                    d.poll();
                }
            }
        }
    }
    for i in (0..GUARD).chain(GUARD + WINDOW..WINDOW + 2 * GUARD) {
        assert_eq!(whole.read_u8(i).unwrap(), 0x5a, "guard byte {i:#x}");
    }
});
