//! Two devices on one link's bus, used at once through one endpoint: the
//! driver side enumerates the bus (GET_DEVICES), then virtio-drivers' block
//! and entropy drivers, unchanged, each on its own transport, interleave
//! their requests (see `common`).

mod common;

use common::*;
use remoteproc::virtio::blk::{Blk, RamDisk, SECTOR};
use remoteproc::virtio::rng::{Entropy, Rng};
use remoteproc::virtio::VirtioDevice;
use shmem::Window;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::device::rng::VirtIORng;
use virtio_msg_driver::{devices, LinkBus, MsgTransport, WindowHal, PATIENCE};

struct Sevens;

impl Entropy for Sevens {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        out.fill(7);
        out.len()
    }
}

#[test]
fn block_and_entropy_share_one_bus() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let region = Region::new();
    let w = Window::from_words(region.words()).with_bus_address(BUS);
    region.give_pool();
    let mut disk = vec![0u8; 256 * SECTOR];
    let stop = AtomicBool::new(false);
    let (given, written) = std::thread::scope(|s| {
        let device = s.spawn(|| {
            let mut blk = VirtioDevice::new(Blk::new(RamDisk(&mut disk), b"disk", false), w);
            let mut rng = VirtioDevice::new(Rng::new(Sevens), w);
            serve_devices(w, &mut [Some(&mut blk), Some(&mut rng)], &stop);
            (rng.into_model().given, blk.into_model().stats.written)
        });
        let mut link = driver_link(w);
        let bus = RefCell::new(LinkBus::new(&mut link, EP, EP));
        assert_eq!(devices(&bus, PATIENCE).unwrap(), 0b11, "devices 0 and 1");
        let mut disk = VirtIOBlk::<WindowHal, _>::new(MsgTransport::new(&bus, 0).unwrap()).unwrap();
        let mut rng = VirtIORng::<WindowHal, _>::new(MsgTransport::new(&bus, 1).unwrap()).unwrap();
        let mut entropy = [0u8; 64];
        let mut sector = [0u8; SECTOR];
        for i in 0..100u8 {
            assert_eq!(rng.request_entropy(&mut entropy).unwrap(), 64);
            assert!(entropy.iter().all(|b| *b == 7));
            sector.fill(i);
            disk.write_blocks(usize::from(i), &sector).unwrap();
        }
        for i in 0..100u8 {
            disk.read_blocks(usize::from(i), &mut sector).unwrap();
            assert!(sector.iter().all(|b| *b == i), "sector {i}");
        }
        drop((disk, rng));
        stop.store(true, Ordering::Relaxed);
        device.join().unwrap()
    });
    assert_eq!((given, written), (6400, 100));
    assert_eq!(WindowHal::pages_in_use(), 0, "every DMA page given back");
}
