//! virtio-drivers' own block driver (`VirtIOBlk`), unchanged, against our
//! block device over a RAM disk, across a real link (see `common`): reads
//! and writes of one and many sectors, flush, the device id, capacity, and
//! a request past the end refused without stopping the device.

mod common;

use common::*;
use remoteproc::virtio::blk::{Blk, RamDisk, SECTOR};
use shmem::Window;
use std::sync::atomic::{AtomicBool, Ordering};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_msg_driver::{LinkBus, MsgTransport, WindowHal};

const SECTORS: usize = 2048; // 1 MiB

fn pattern(sector: usize, i: usize) -> u8 {
    (sector.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8
}

#[test]
fn virtio_drivers_blk_reads_and_writes_our_ram_disk_over_a_link() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let region = Region::new();
    let w = Window::from_words(region.words()).with_bus_address(BUS);
    region.give_pool();
    let mut disk = vec![0u8; SECTORS * SECTOR];
    // Sector 7 holds something before the driver starts.
    disk[7 * SECTOR..8 * SECTOR].fill(0x77);
    let stop = AtomicBool::new(false);
    let stats = std::thread::scope(|s| {
        let model = Blk::new(RamDisk(&mut disk), b"avps-test-disk", false);
        let device = s.spawn(|| device_side(w, model, &stop));
        let mut link = driver_link(w);
        let transport = MsgTransport::new(LinkBus::new(&mut link, EP, EP), 0).unwrap();
        assert_eq!(transport.info().device_id, 2, "a block device");
        let mut blk = VirtIOBlk::<WindowHal, _>::new(transport).unwrap();
        assert_eq!(blk.capacity(), SECTORS as u64);
        assert!(!blk.readonly());
        let mut id = [0u8; 20];
        let n = blk.device_id(&mut id).unwrap();
        assert_eq!(&id[..n], b"avps-test-disk");

        let mut one = [0u8; SECTOR];
        blk.read_blocks(7, &mut one).unwrap();
        assert!(one.iter().all(|b| *b == 0x77), "what was on the disk");

        // 64 KiB at sector 100, then read back one sector and all of it.
        let mut big = vec![0u8; 128 * SECTOR];
        for (k, chunk) in big.chunks_mut(SECTOR).enumerate() {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = pattern(100 + k, i);
            }
        }
        blk.write_blocks(100, &big).unwrap();
        blk.flush().unwrap();
        blk.read_blocks(150, &mut one).unwrap();
        assert_eq!(&one[..], &big[50 * SECTOR..51 * SECTOR]);
        let mut back = vec![0u8; 128 * SECTOR];
        blk.read_blocks(100, &mut back).unwrap();
        assert!(back == big, "64 KiB read back as written");

        // Past the end: an error for this request, the device goes on.
        assert!(blk.read_blocks(SECTORS, &mut one).is_err());
        blk.read_blocks(SECTORS - 1, &mut one).unwrap();

        drop(blk);
        stop.store(true, Ordering::Relaxed);
        device.join().unwrap().stats
    });
    // The device side's own view: the bytes really are on its disk.
    for k in 0..128 {
        for i in 0..SECTOR {
            assert_eq!(disk[(100 + k) * SECTOR + i], pattern(100 + k, i));
        }
    }
    assert_eq!(stats.written, 128);
    assert_eq!(stats.flushes, 1);
    assert_eq!(stats.errors, 1, "the read past the end");
    assert_eq!(WindowHal::pages_in_use(), 0, "every DMA page given back");
}
