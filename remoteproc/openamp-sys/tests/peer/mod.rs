//! OpenAMP's side of a link over one shared window, for the interop test and
//! the transport benchmark: libmetal initialised once, a libmetal I/O region
//! over the window with a 32-bit bus address, and OpenAMP brought up in either
//! role over a resource table:
//!
//! - [`Peer::host`]: the virtio driver. It reads the resource table the remote
//!   wrote, creates the vdev (`rproc_virtio_create_vdev`, which negotiates
//!   the features), gives it the two vrings the table lists
//!   (`rproc_virtio_init_vring`) and rpmsg a shared buffer pool
//!   (`rpmsg_init_vdev`, which posts the RX buffers and sets `DRIVER_OK`).
//! - [`Peer::remote`]: the virtio device. It writes its own resource table
//!   into the window (OpenAMP's `resource_table` / `fw_rsc_vdev` structs, as a
//!   firmware's static table), creates the vdev and vrings from it and waits
//!   in `rpmsg_init_vdev` for the host's `DRIVER_OK`.
//!
//! Kicks: the OpenAMP side runs on one thread, which owns its rpmsg device;
//! its callbacks run inside its own calls, never concurrently. Our side's
//! doorbell ([`Bell`]) counts rings per notify id; the OpenAMP thread takes
//! them in [`Peer::service`] and passes each id to `rproc_virtio_notified`,
//! as a mailbox interrupt handler would. Whether OpenAMP acted on a kick is
//! observed, not assumed: each virtqueue's callback is wrapped to count its
//! runs, so a kick that `rproc_virtio_notified` does not route to a vring (an
//! id it does not know, or one equal to the vdev's own notify id, which it
//! ignores) is counted as dropped. OpenAMP's own kicks (the `notify` callback
//! given to `rproc_virtio_create_vdev`) are counted per notify id in its
//! outbox [`Line`], which our side reads ([`Kicks`] holds both directions).
//! Two OpenAMP peers (the benchmark's pair) each take the other's outbox as
//! their inbox.
//!
//! Addresses: OpenAMP converts between descriptor addresses and pointers
//! with `metal_io_phys_to_virt` / `metal_io_virt_to_phys`; the region maps
//! the whole window to one physical base (the bus address), as our
//! `Window::with_bus_address` does on our side, so the window may sit
//! anywhere in this 64-bit process while descriptors carry 32-bit addresses.

use core::ffi::{c_char, c_int, c_void};
use openamp_sys as oa;
use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Once;

/// Notify ids counted one by one; any higher id is counted in the last slot.
pub(crate) const IDS: usize = 4;

/// The window's layout in both roles: the resource table at the base, the
/// vrings at `VRINGS`, the buffer pool (2 x queue size buffers) at `BUFFERS`.
pub(crate) const TABLE: usize = 0;
pub(crate) const VRINGS: [usize; 2] = [0x1000, 0x4000];
pub(crate) const BUFFERS: usize = 0x8000;
/// Legacy vring alignment (OpenAMP's and ours).
pub(crate) const ALIGN: u32 = 0x1000;
/// rpmsg buffer size, header included (OpenAMP's `RPMSG_BUFFER_SIZE`).
pub(crate) const BUFFER: usize = oa::RPMSG_BUFFER_SIZE as usize;
/// The vdev's notify id in the table an OpenAMP remote writes (the vrings
/// get 0 and 1, which our host confirms when it accepts the table).
pub(crate) const REMOTE_VDEV_NOTIFYID: u32 = 2;

/// Bytes of window a link with `queue` buffers per direction needs.
pub(crate) const fn window_len(queue: u16) -> usize {
    BUFFERS + 2 * (queue as usize) * BUFFER
}

/// Initialises libmetal once for the process (`metal_init`, errors to its
/// default log handler on stderr). Its device buses are not
/// needed, and may be missing.
pub(crate) fn metal() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let params = oa::metal_init_params {
            log_handler: Some(oa::metal_default_log_handler),
            // Not warnings: tearing a device down with buffers still in its
            // rings (as both the test and the bench do) warns.
            log_level: oa::metal_log_level_METAL_LOG_ERROR,
        };
        // SAFETY: `params` is a valid, initialised struct; libmetal copies it.
        let r = unsafe { oa::metal_init(&params) };
        // On Linux, libmetal's init ends with probing its device buses
        // (sysfs, the UIO drivers, trying `modprobe` for them) and fails
        // with -ENODEV where there are none, as in a container. What runs
        // before that (the log handler, the page sizes) is all this side
        // uses besides I/O regions, which need no init (`metal_io_init` maps
        // nothing on Linux), mutexes, sleeps and allocation.
        let enodev = -19;
        assert!(r == 0 || r == enodev, "metal_init: {r}");
    });
}

/// One direction's kicks: how many were sent per notify id (the last slot:
/// any higher id), shared by both threads. A mailbox's interrupt lines, with
/// a count instead of a pending bit.
#[derive(Debug, Default)]
pub(crate) struct Line([AtomicU32; IDS + 1]);

impl Line {
    fn slot(id: u32) -> usize {
        (id as usize).min(IDS)
    }

    /// Sends a kick with notify id `id`.
    pub(crate) fn kick(&self, id: u32) {
        self.0[Self::slot(id)].fetch_add(1, Ordering::Release);
    }

    /// Kicks so far, per notify id.
    pub(crate) fn counts(&self) -> [u32; IDS + 1] {
        self.0.each_ref().map(|k| k.load(Ordering::Acquire))
    }
}

/// Kicks between our side and OpenAMP.
#[derive(Debug, Default)]
pub(crate) struct Kicks {
    /// Our doorbell's rings (OpenAMP's inbox).
    pub(crate) to_openamp: Line,
    /// OpenAMP's notify calls (its outbox).
    pub(crate) from_openamp: Line,
}

impl Kicks {
    /// OpenAMP's kicks so far, per notify id.
    pub(crate) fn theirs(&self) -> [u32; IDS + 1] {
        self.from_openamp.counts()
    }

    /// Our kicks so far, per notify id.
    pub(crate) fn ours(&self) -> [u32; IDS + 1] {
        self.to_openamp.counts()
    }
}

/// Our side's doorbell: rings OpenAMP's (simulated) mailbox with the notify
/// id of the vring (our queue number is the vring's notify id).
#[derive(Debug)]
pub(crate) struct Bell<'k>(pub(crate) &'k Kicks);

impl shmem::Doorbell for Bell<'_> {
    fn ring(&mut self, queue: u16) {
        self.0.to_openamp.kick(queue.into());
    }
}

/// OpenAMP's notify callback (`rpvdev_notify_func`): sends the kick.
///
/// # Safety
/// `priv_` is the outbox `Line` given to `rproc_virtio_create_vdev`, which
/// outlives the vdev.
unsafe extern "C" fn notify(priv_: *mut c_void, id: u32) -> c_int {
    // SAFETY: the function's contract.
    unsafe { &*priv_.cast::<Line>() }.kick(id);
    0
}

/// A virtqueue's own callback, wrapped: how many times OpenAMP ran it.
struct Tap {
    inner: unsafe extern "C" fn(*mut oa::virtqueue),
    runs: Cell<u64>,
}

/// The wrapper installed as each virtqueue's callback.
///
/// # Safety
/// `vq` is a virtqueue whose `priv_` is its `Tap` (set by [`Peer::tap`]),
/// called by OpenAMP on the thread that owns the peer.
unsafe extern "C" fn tapped(vq: *mut oa::virtqueue) {
    // SAFETY: the function's contract; the tap outlives the virtqueue.
    let tap = unsafe { &*(*vq).priv_.cast::<Tap>() };
    tap.runs.set(tap.runs.get() + 1);
    // SAFETY: the callback OpenAMP installed for this virtqueue.
    unsafe { (tap.inner)(vq) };
}

thread_local! {
    /// Name-service announcements OpenAMP reported to `ns_bind_cb` on this
    /// thread (no local endpoint had the name): (name, address).
    static ANNOUNCED: RefCell<Vec<(Vec<u8>, u32)>> = const { RefCell::new(Vec::new()) };
}

/// `rpmsg_ns_bind_cb`: records the announcement.
///
/// # Safety
/// `name` is a NUL-terminated string (OpenAMP copied it out of the message).
unsafe extern "C" fn ns_bind(_rdev: *mut oa::rpmsg_device, name: *const c_char, dest: u32) {
    // SAFETY: the function's contract.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }
        .to_bytes()
        .to_vec();
    ANNOUNCED.with(|a| a.borrow_mut().push((name, dest)));
}

/// The address of the first announcement whose name starts with `prefix`
/// that OpenAMP reported on this thread, taken out of the list.
pub(crate) fn announced(prefix: &[u8]) -> Option<u32> {
    ANNOUNCED.with(|a| {
        let mut a = a.borrow_mut();
        let i = a.iter().position(|(n, _)| n.starts_with(prefix))?;
        Some(a.remove(i).1)
    })
}

/// One OpenAMP rpmsg device over the window, in either role. Everything
/// OpenAMP keeps a pointer to is boxed here and outlives it (`Drop` tears
/// OpenAMP down first).
pub(crate) struct Peer<'k> {
    /// The kicks this side takes.
    inbox: &'k Line,
    vdev: *mut oa::virtio_device,
    rvdev: Box<oa::rpmsg_virtio_device>,
    _pool: Box<oa::rpmsg_virtio_shm_pool>,
    _io: Box<oa::metal_io_region>,
    _physmap: Box<oa::metal_phys_addr_t>,
    #[allow(
        clippy::vec_box,
        reason = "OpenAMP holds a pointer to each tap: boxed, it stays put"
    )]
    taps: Vec<Box<Tap>>,
    /// Our kicks taken so far, per notify id.
    taken: [u32; IDS + 1],
    /// Our kicks on which OpenAMP ran a virtqueue callback, per notify id.
    pub(crate) delivered: [u32; IDS + 1],
    /// Our kicks `rproc_virtio_notified` ran no callback for, per notify id.
    pub(crate) dropped: [u32; IDS + 1],
    /// The vdev's notify id and the vrings', as OpenAMP holds them.
    pub(crate) vdev_notifyid: u32,
    pub(crate) vring_notifyids: [u32; 2],
    /// Buffers per direction.
    pub(crate) queue: u16,
}

impl<'k> Peer<'k> {
    /// An I/O region over `len` bytes at `base`, physical address `bus`.
    fn io(
        base: *mut u8,
        len: usize,
        bus: u32,
    ) -> (Box<oa::metal_io_region>, Box<oa::metal_phys_addr_t>) {
        metal();
        let physmap = Box::new(oa::metal_phys_addr_t::from(bus));
        let mut io = Box::<oa::metal_io_region>::default();
        // SAFETY: `io` and `physmap` are boxed and live as long as the peer
        // that uses them; the window is mapped for `len` bytes at `base`. A
        // page shift of all ones maps the whole region to `physmap[0]`.
        unsafe {
            oa::metal_io_init(
                &mut *io,
                base.cast(),
                &*physmap,
                len,
                u32::MAX,
                0,
                ptr::null(),
            )
        };
        (io, physmap)
    }

    /// OpenAMP as the virtio driver (host) over the window at `base` (`len`
    /// bytes, bus address `bus`), reading the resource table the remote
    /// wrote at [`TABLE`] and giving rpmsg the buffer pool at [`BUFFERS`].
    ///
    /// # Safety
    /// `base` is mapped for `len` bytes for the life of the peer, and only
    /// shared with the other side of the link.
    pub(crate) unsafe fn host(
        base: *mut u8,
        len: usize,
        bus: u32,
        inbox: &'k Line,
        outbox: &'k Line,
    ) -> Box<Self> {
        let (mut io, physmap) = Self::io(base, len, bus);
        // A remote started at the same time may still be writing its table:
        // it writes the version word last.
        // SAFETY: the version word lies in the window (the caller's
        // contract); the remote writes it, hence volatile.
        while unsafe { ptr::read_volatile(base.add(TABLE).cast::<u32>()) } == 0 {
            std::thread::yield_now();
        }
        fence(Ordering::Acquire);
        // SAFETY: the table lies in the window (the caller's contract); the
        // remote wrote it before this side started. Packed: read unaligned.
        let (rsc, vdev_rsc) = unsafe {
            let table = base.add(TABLE);
            let header = ptr::read_unaligned(table.cast::<oa::resource_table>());
            assert_eq!((header.ver, header.num), (1, 1), "resource table header");
            let offset = ptr::read_unaligned(
                table
                    .add(core::mem::size_of::<oa::resource_table>())
                    .cast::<u32>(),
            );
            let rsc = table.add(offset as usize);
            (rsc, ptr::read_unaligned(rsc.cast::<oa::fw_rsc_vdev>()))
        };
        assert_eq!(
            (vdev_rsc.type_, vdev_rsc.id, vdev_rsc.num_of_vrings),
            (oa::fw_resource_type_RSC_VDEV, oa::VIRTIO_ID_RPMSG, 2),
            "the remote's table has no rpmsg vdev"
        );
        let outbox_ptr = ptr::from_ref(outbox).cast_mut().cast::<c_void>();
        // SAFETY: `rsc` is the vdev entry inside the window and `io` maps it;
        // `outbox` outlives the vdev (removed in `Drop`).
        let vdev = unsafe {
            oa::rproc_virtio_create_vdev(
                oa::VIRTIO_DEV_DRIVER,
                vdev_rsc.notifyid,
                rsc.cast(),
                &mut *io,
                outbox_ptr,
                Some(notify),
                None,
            )
        };
        assert!(!vdev.is_null(), "rproc_virtio_create_vdev");
        let mut vring_notifyids = [0; 2];
        let mut queue = 0;
        for (i, id) in vring_notifyids.iter_mut().enumerate() {
            // SAFETY: vring entry `i` of the vdev entry, inside the window.
            let v = unsafe {
                ptr::read_unaligned(
                    rsc.add(core::mem::size_of::<oa::fw_rsc_vdev>())
                        .cast::<oa::fw_rsc_vdev_vring>()
                        .add(i),
                )
            };
            // SAFETY: `io` is initialised; an address outside it gives NULL.
            let va = unsafe { oa::metal_io_phys_to_virt(&mut *io, v.da.into()) };
            let da = v.da;
            assert!(!va.is_null(), "vring {i} at {da:#x} outside the window");
            // SAFETY: `vdev` was just created with two vrings; `va` lies in
            // the window `io` maps.
            let r = unsafe {
                oa::rproc_virtio_init_vring(
                    vdev, i as u32, v.notifyid, va, &mut *io, v.num, v.align,
                )
            };
            assert_eq!(r, 0, "rproc_virtio_init_vring {i}");
            *id = v.notifyid;
            queue = v.num as u16;
        }
        let mut pool = Box::<oa::rpmsg_virtio_shm_pool>::default();
        // SAFETY: the pool lies in the window, after the rings; `pool` is
        // boxed and outlives the rpmsg device.
        unsafe {
            oa::rpmsg_virtio_init_shm_pool(
                &mut *pool,
                base.add(BUFFERS).cast(),
                2 * usize::from(queue) * BUFFER,
            )
        };
        let mut rvdev = Box::<oa::rpmsg_virtio_device>::default();
        // SAFETY: everything passed is boxed and outlives the device; the
        // callback matches `rpmsg_ns_bind_cb`.
        let r =
            unsafe { oa::rpmsg_init_vdev(&mut *rvdev, vdev, Some(ns_bind), &mut *io, &mut *pool) };
        assert_eq!(r, 0, "rpmsg_init_vdev (host)");
        let mut peer = Box::new(Self {
            inbox,
            vdev,
            rvdev,
            _pool: pool,
            _io: io,
            _physmap: physmap,
            taps: Vec::new(),
            taken: [0; IDS + 1],
            delivered: [0; IDS + 1],
            dropped: [0; IDS + 1],
            vdev_notifyid: vdev_rsc.notifyid,
            vring_notifyids,
            queue,
        });
        peer.tap();
        peer
    }

    /// OpenAMP as the virtio device (remote): writes its resource table at
    /// [`TABLE`] (one rpmsg vdev with the name-service feature, vrings of
    /// `queue` entries at [`VRINGS`]), then waits in `rpmsg_init_vdev` until
    /// the host sets `DRIVER_OK`.
    ///
    /// # Safety
    /// As for [`Peer::host`].
    pub(crate) unsafe fn remote(
        base: *mut u8,
        len: usize,
        bus: u32,
        queue: u16,
        inbox: &'k Line,
        outbox: &'k Line,
    ) -> Box<Self> {
        let (mut io, physmap) = Self::io(base, len, bus);
        let header_len = core::mem::size_of::<oa::resource_table>();
        let entry = header_len + 4;
        let vdev_rsc = oa::fw_rsc_vdev {
            type_: oa::fw_resource_type_RSC_VDEV,
            id: oa::VIRTIO_ID_RPMSG,
            notifyid: REMOTE_VDEV_NOTIFYID,
            dfeatures: 1 << oa::VIRTIO_RPMSG_F_NS,
            num_of_vrings: 2,
            ..Default::default()
        };
        let vrings = [0, 1].map(|i| oa::fw_rsc_vdev_vring {
            da: bus + VRINGS[i] as u32,
            align: ALIGN,
            num: queue.into(),
            notifyid: i as u32,
            reserved: 0,
        });
        // SAFETY: the table (header, one offset, the vdev entry with two
        // vrings: 88 bytes) lies in the window below the first vring; packed
        // structs, written unaligned. The version word goes last, after a
        // fence: a host polling it sees the whole table.
        let rsc = unsafe {
            let table = base.add(TABLE);
            let rsc = table.add(entry);
            ptr::write_unaligned(table.add(header_len).cast::<u32>(), entry as u32);
            ptr::write_unaligned(rsc.cast::<oa::fw_rsc_vdev>(), vdev_rsc);
            let ring0 = rsc
                .add(core::mem::size_of::<oa::fw_rsc_vdev>())
                .cast::<oa::fw_rsc_vdev_vring>();
            for (i, v) in vrings.iter().enumerate() {
                ptr::write_unaligned(ring0.add(i), *v);
            }
            ptr::write_unaligned(
                table.cast::<oa::resource_table>(),
                oa::resource_table {
                    ver: 0,
                    num: 1,
                    ..Default::default()
                },
            );
            fence(Ordering::Release);
            ptr::write_volatile(table.cast::<u32>(), 1);
            rsc
        };
        let outbox_ptr = ptr::from_ref(outbox).cast_mut().cast::<c_void>();
        // SAFETY: as in `host`.
        let vdev = unsafe {
            oa::rproc_virtio_create_vdev(
                oa::VIRTIO_DEV_DEVICE,
                REMOTE_VDEV_NOTIFYID,
                rsc.cast(),
                &mut *io,
                outbox_ptr,
                Some(notify),
                None,
            )
        };
        assert!(!vdev.is_null(), "rproc_virtio_create_vdev");
        for (i, v) in vrings.iter().enumerate() {
            // SAFETY: as in `host`.
            let r = unsafe {
                let (da, notifyid, num, align) = (v.da, v.notifyid, v.num, v.align);
                let va = oa::metal_io_phys_to_virt(&mut *io, da.into());
                oa::rproc_virtio_init_vring(vdev, i as u32, notifyid, va, &mut *io, num, align)
            };
            assert_eq!(r, 0, "rproc_virtio_init_vring {i}");
        }
        let mut rvdev = Box::<oa::rpmsg_virtio_device>::default();
        // SAFETY: as in `host`; a device takes no pool.
        let r = unsafe {
            oa::rpmsg_init_vdev(&mut *rvdev, vdev, Some(ns_bind), &mut *io, ptr::null_mut())
        };
        assert_eq!(r, 0, "rpmsg_init_vdev (remote)");
        let mut peer = Box::new(Self {
            inbox,
            vdev,
            rvdev,
            _pool: Box::default(),
            _io: io,
            _physmap: physmap,
            taps: Vec::new(),
            taken: [0; IDS + 1],
            delivered: [0; IDS + 1],
            dropped: [0; IDS + 1],
            vdev_notifyid: REMOTE_VDEV_NOTIFYID,
            vring_notifyids: [0, 1],
            queue,
        });
        peer.tap();
        peer
    }

    /// Wraps each virtqueue's callback to count its runs.
    fn tap(&mut self) {
        for i in 0..2 {
            // SAFETY: `rpmsg_init_vdev` created both virtqueues; OpenAMP does
            // not use a virtqueue's `priv_`. The taps are boxed and live as
            // long as the peer.
            unsafe {
                let vq = (*(*self.vdev).vrings_info.add(i)).vq;
                let inner = (*vq).callback.expect("rpmsg installs a callback");
                let tap = Box::new(Tap {
                    inner,
                    runs: Cell::new(0),
                });
                (*vq).priv_ = ptr::from_ref(&*tap).cast_mut().cast();
                (*vq).callback = Some(tapped);
                self.taps.push(tap);
            }
        }
    }

    fn callback_runs(&self) -> u64 {
        self.taps.iter().map(|t| t.runs.get()).sum()
    }

    /// The rpmsg device, for endpoints.
    pub(crate) fn rdev(&mut self) -> *mut oa::rpmsg_device {
        &raw mut self.rvdev.rdev
    }

    /// Takes our pending kicks: one `rproc_virtio_notified` per notify id
    /// that was rung since the last call (a mailbox latches a line), with the
    /// kicks counted as delivered if OpenAMP ran a virtqueue callback for it,
    /// dropped if not. Returns whether any kick was pending.
    pub(crate) fn service(&mut self) -> bool {
        let mut any = false;
        for id in 0..=IDS {
            let now = self.inbox.0[id].load(Ordering::Acquire);
            let n = now.wrapping_sub(self.taken[id]);
            if n == 0 {
                continue;
            }
            self.taken[id] = now;
            any = true;
            let before = self.callback_runs();
            // SAFETY: the vdev is live; OpenAMP runs the callbacks on this,
            // its owning thread.
            unsafe { oa::rproc_virtio_notified(self.vdev, id as u32) };
            if self.callback_runs() > before {
                self.delivered[id] += n;
            } else {
                self.dropped[id] += n;
            }
        }
        any
    }

    /// Total kicks dropped.
    pub(crate) fn dropped_total(&self) -> u32 {
        self.dropped.iter().sum()
    }

    /// Why kicks were dropped, for a failure message.
    pub(crate) fn explain_dropped(&self) -> String {
        format!(
            "OpenAMP ran no virtqueue callback for {:?} of our kicks (per notify id 0..{IDS}, \
             last: higher ids); its vdev notify id is {} and its vrings' are {:?}, and \
             rproc_virtio_notified ignores the vdev's id before it looks at the vrings'",
            self.dropped, self.vdev_notifyid, self.vring_notifyids
        )
    }
}

impl Drop for Peer<'_> {
    fn drop(&mut self) {
        // SAFETY: endpoints were destroyed by their owners first (declared
        // after the peer); nothing uses the device afterwards. The boxes
        // OpenAMP pointed into are freed after this.
        unsafe {
            oa::rpmsg_deinit_vdev(&mut *self.rvdev);
            oa::rproc_virtio_remove_vdev(self.vdev);
        }
    }
}

/// An OpenAMP endpoint, destroyed when dropped (before its [`Peer`]: declare
/// it after the peer).
pub(crate) struct Endpoint {
    ept: Box<oa::rpmsg_endpoint>,
}

impl Endpoint {
    /// Creates an endpoint named `name` (NUL-terminated) at `src`
    /// (`RPMSG_ADDR_ANY`: OpenAMP picks) sending to `dest`, calling `cb` with
    /// `priv_`. With the name service on, a named endpoint with no `dest`
    /// (`RPMSG_ADDR_ANY`) is announced.
    ///
    /// # Safety
    /// `priv_` is what `cb` expects and outlives the endpoint.
    pub(crate) unsafe fn new(
        peer: &mut Peer<'_>,
        name: &[u8],
        [src, dest]: [u32; 2],
        cb: oa::rpmsg_ept_cb,
        priv_: *mut c_void,
    ) -> Self {
        assert_eq!(name.last(), Some(&0), "NUL-terminated name");
        let mut ept = Box::<oa::rpmsg_endpoint>::default();
        ept.priv_ = priv_;
        // SAFETY: `ept` is boxed and lives until `Drop` destroys it; `name`
        // is NUL-terminated; the callback and `priv_` per the contract.
        let r = unsafe {
            oa::rpmsg_create_ept(
                &mut *ept,
                peer.rdev(),
                name.as_ptr().cast(),
                src,
                dest,
                cb,
                None,
            )
        };
        assert_eq!(r, 0, "rpmsg_create_ept");
        Self { ept }
    }

    /// The endpoint, for OpenAMP's calls.
    pub(crate) fn ptr(&mut self) -> *mut oa::rpmsg_endpoint {
        &mut *self.ept
    }

    /// Its local address.
    pub(crate) fn addr(&self) -> u32 {
        self.ept.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        unsafe { oa::rpmsg_destroy_ept(&mut *self.ept) };
    }
}
