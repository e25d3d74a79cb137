//! virtio-drivers' own entropy driver (`VirtIORng`), unchanged, against our
//! entropy device, across a real link: two threads standing in for two
//! partitions, one window. The driver side runs over `MsgTransport` on an
//! rpmsg endpoint and allocates its virtqueue in its part of the window
//! (`WindowHal`); the device side is `remoteproc::virtio::VirtioDevice`
//! serving virtio-msg on the other end of the same link.

use remoteproc::rpmsg::MAX_PAYLOAD;
use remoteproc::virtio::rng::{Entropy, Rng};
use remoteproc::virtio::{device::Reply, VirtioDevice};
use remoteproc::virtio_msg::{decode, encode, encode_response, Message, MAX_CONFIG_DATA};
use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::window::Word;
use shmem::Window;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use virtio_drivers::device::rng::VirtIORng;
use virtio_msg_driver::{LinkBus, MsgTransport, WindowHal};

const BUS: u64 = 0x7000_0000;
const WINDOW: usize = 0x60000;
/// The driver side's pool: between the rpmsg buffers and our header.
const POOL: usize = 0x1_0000;
const POOL_LEN: usize = 0x4_0000;
const EP: u32 = 0x500;

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

/// A zeroed, page-aligned heap region standing in for the window: the
/// pool's pages must be pages.
struct Region(*mut u8);

impl Region {
    fn layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(WINDOW, 0x1000).unwrap()
    }
    fn new() -> Self {
        // SAFETY: a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(Self::layout()) };
        assert!(!p.is_null());
        Region(p)
    }
    fn words(&self) -> &[Word] {
        // SAFETY: `WINDOW` zeroed bytes, 8-byte aligned, alive as long as
        // `self`; zero is a valid `Word` and the words are atomics, which
        // the other thread and the driver's raw writes may share.
        unsafe { std::slice::from_raw_parts(self.0.cast::<Word>(), WINDOW / 8) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.0, Self::layout()) };
    }
}

fn config(role: Role) -> LinkConfig {
    let mut c = LinkConfig::resource_table(role, 0, [0x1000, 0x4000], 0x8000, 16);
    c.header = Some(0x5_8000);
    c
}

/// The device side: answers every request, serves every kick, until told
/// to stop.
fn device_side(w: Window<'_>, stop: &AtomicBool) -> u64 {
    let mut link: Link<'_, Polling, 256, 4> = Link::new(w, config(Role::Remote), Polling).unwrap();
    link.create_endpoint(Some(EP)).unwrap();
    let mut device = VirtioDevice::new(Rng::new(Counter(0)), w);
    let (mut buf, mut out) = ([0u8; MAX_PAYLOAD], [0u8; MAX_PAYLOAD]);
    let mut config = [0u8; MAX_CONFIG_DATA];
    let mut features = [0u8; 8];
    while !stop.load(Ordering::Relaxed) {
        let _ = link.poll();
        let Ok(Some(Incoming::Message(m))) = link.receive() else {
            std::hint::spin_loop();
            continue;
        };
        let n = m.copy_to(&mut buf).unwrap();
        let src = m.src();
        link.release(m).unwrap();
        let Ok((h, Message::Transport(t))) = decode(&buf[..n]) else {
            continue;
        };
        let len = match device.handle(&t, &mut config, &mut features) {
            Reply::Answer(a) => encode_response(&a, &h, &mut out).unwrap(),
            Reply::Event(e) => encode(&e, h.dev_num, 0, &mut out).unwrap(),
            Reply::Nothing => continue,
        };
        while !matches!(link.send(EP, src, &out[..len]), Ok(true)) {
            std::hint::spin_loop();
        }
    }
    device.model().given
}

#[test]
fn virtio_drivers_rng_reads_our_device_over_a_link() {
    let region = Region::new();
    let mem = region.words();
    let w = Window::from_words(mem).with_bus_address(BUS);
    let base = mem.as_ptr().cast::<u8>().cast_mut();
    // SAFETY: the pool lies inside `mem` (page-aligned), which lives to the
    // end of the test, and only the driver's Hal touches it on this
    // side; the device side reaches it through its `Window`.
    let pool = unsafe { base.add(POOL) };
    // SAFETY: as above.
    assert!(unsafe { WindowHal::init(pool, BUS + POOL as u64, POOL_LEN) });
    let stop = AtomicBool::new(false);
    let given = std::thread::scope(|s| {
        let device = s.spawn(|| device_side(w, &stop));
        let mut link: Link<'_, Polling, 256, 4> =
            Link::new(w, config(Role::Host), Polling).unwrap();
        link.create_endpoint(Some(EP)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !link.is_up() {
            let _ = link.poll();
            assert!(Instant::now() < deadline, "link never came up");
        }
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
        let given = device.join().unwrap();
        assert_eq!(given as usize, total);
        given
    });
    assert!(given > 0);
    assert_eq!(WindowHal::pages_in_use(), 0, "every DMA page given back");
}
