//! virtio-drivers' own entropy driver (`VirtIORng`), unchanged, against our
//! entropy device across a real link (see `common`).

mod common;

use common::*;
use remoteproc::virtio::rng::{Entropy, Rng};
use shmem::Window;
use std::sync::atomic::{AtomicBool, Ordering};
use virtio_drivers::device::rng::VirtIORng;
use virtio_msg_driver::{LinkBus, MsgTransport, WindowHal};

/// A counter as the entropy source: the test can check every byte.
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

#[test]
fn virtio_drivers_rng_reads_our_device_over_a_link() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let region = Region::new();
    let w = Window::from_words(region.words()).with_bus_address(BUS);
    region.give_pool();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let device = s.spawn(|| device_side(w, Rng::new(Counter(0)), &stop));
        let mut link = driver_link(w);
        let transport = MsgTransport::new(LinkBus::new(&mut link, EP, EP), 0).unwrap();
        assert_eq!(transport.info().device_id, 4, "an entropy device");
        let mut rng = VirtIORng::<WindowHal, _>::new(transport).unwrap();
        let mut expect = 0u8;
        let mut total = 0;
        for size in [1usize, 16, 100, 4096, 5000] {
            let mut buf = vec![0xffu8; size];
            let n = rng.request_entropy(&mut buf).unwrap();
            assert_eq!(n, size, "the device fills the whole buffer");
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, expect, "byte {i} of a {size}-byte request");
                expect = expect.wrapping_add(1);
            }
            total += n;
        }
        drop(rng);
        stop.store(true, Ordering::Relaxed);
        let model = device.join().unwrap();
        assert_eq!(model.given as usize, total);
    });
    assert_eq!(WindowHal::pages_in_use(), 0, "every DMA page given back");
}
