//! Two threads standing in for two partitions over one window: the device
//! side serves one of our device models over virtio-msg on its end of a
//! real link; the driver side's link, transport and Hal are set up for the
//! test to run a `virtio-drivers` driver on.
#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use remoteproc::rpmsg::MAX_PAYLOAD;
use remoteproc::virtio::bus::{serve, Served, Slots};
use remoteproc::virtio::{DeviceModel, VirtioDevice};
use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::window::Word;
use shmem::Window;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use virtio_msg_driver::WindowHal;

pub(crate) const BUS: u64 = 0x7000_0000;
pub(crate) const WINDOW: usize = 0x60000;
/// The driver side's pool: between the rpmsg buffers and our header.
pub(crate) const POOL: usize = 0x1_0000;
pub(crate) const POOL_LEN: usize = 0x4_0000;
pub(crate) const EP: u32 = 0x500;

/// The Hal's pool is one per process: one test at a time.
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

/// A zeroed, page-aligned heap region standing in for the window: the
/// pool's pages must be pages.
pub(crate) struct Region(*mut u8);

impl Region {
    fn layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(WINDOW, 0x1000).unwrap()
    }
    pub(crate) fn new() -> Self {
        // SAFETY: a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(Self::layout()) };
        assert!(!p.is_null());
        Region(p)
    }
    pub(crate) fn words(&self) -> &[Word] {
        // SAFETY: `WINDOW` zeroed bytes, 8-byte aligned, alive as long as
        // `self`; zero is a valid `Word` and the words are atomics, which
        // the other thread and the driver's raw writes may share.
        unsafe { std::slice::from_raw_parts(self.0.cast::<Word>(), WINDOW / 8) }
    }
    /// Gives the pool part of the region to the driver side's Hal.
    pub(crate) fn give_pool(&self) {
        // SAFETY: the pool lies inside the region (page-aligned), which
        // lives to the end of the test, and on this side only the Hal
        // touches it; the device side reaches it through its `Window`.
        let ok = unsafe { WindowHal::init(self.0.add(POOL), BUS + POOL as u64, POOL_LEN) };
        assert!(ok);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.0, Self::layout()) };
    }
}

pub(crate) fn config(role: Role) -> LinkConfig {
    let mut c = LinkConfig::resource_table(role, 0, [0x1000, 0x4000], 0x8000, 16);
    c.header = Some(0x5_8000);
    c
}

pub(crate) type TestLink<'w> = Link<'w, Polling, 256, 4>;

/// The device side: serves `devices` (device number = index) on its end
/// of the link, answering every request and serving every kick, until told
/// to stop.
pub(crate) fn serve_devices(w: Window<'_>, devices: &mut Slots<'_, '_>, stop: &AtomicBool) {
    let mut link = TestLink::new(w, config(Role::Remote), Polling).unwrap();
    link.create_endpoint(Some(EP)).unwrap();
    let (mut buf, mut out) = ([0u8; MAX_PAYLOAD], [0u8; MAX_PAYLOAD]);
    // A driver side that failed an assertion never says stop: the device
    // side gives up after a while rather than hang the test.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the driver side never finished");
        let _ = link.poll();
        let Ok(Some(Incoming::Message(m))) = link.receive() else {
            // Idle: devices with input for their driver deliver it now.
            for d in devices.iter_mut().flatten() {
                d.poll();
            }
            std::hint::spin_loop();
            continue;
        };
        let n = m.copy_to(&mut buf).unwrap();
        let src = m.src();
        link.release(m).unwrap();
        match serve(devices, &buf[..n], &mut out) {
            Served::Reply(len) => {
                while !matches!(link.send(EP, src, &out[..len]), Ok(true)) {
                    std::hint::spin_loop();
                }
            }
            // An event goes if there is room, else it is dropped.
            Served::Event(len) => {
                let _ = link.send(EP, src, &out[..len]);
            }
            Served::Nothing | Served::Refused => {}
        }
    }
}

/// The device side with one device of `model`; gives the model back.
pub(crate) fn device_side<M: DeviceModel>(w: Window<'_>, model: M, stop: &AtomicBool) -> M {
    let mut device = VirtioDevice::new(model, w);
    serve_devices(w, &mut [Some(&mut device)], stop);
    assert_eq!(device.error(), None, "the device stopped on a driver fault");
    device.into_model()
}

/// The driver side's link, up.
pub(crate) fn driver_link(w: Window<'_>) -> TestLink<'_> {
    let mut link = TestLink::new(w, config(Role::Host), Polling).unwrap();
    link.create_endpoint(Some(EP)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link.is_up() {
        let _ = link.poll();
        assert!(Instant::now() < deadline, "link never came up");
    }
    link
}
