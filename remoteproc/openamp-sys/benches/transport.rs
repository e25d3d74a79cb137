//! OpenAMP through the same harness as our transport
//! (`remoteproc/benches/transport.rs`, whose `shared/` modules this includes):
//! an OpenAMP host (virtio driver) and an OpenAMP remote (virtio device) over
//! one window, one thread each on two pinned cores, measured in the same
//! rounds as the baselines and as our rpmsg (each round runs (a), ours and
//! OpenAMP's (b), (c), ours and OpenAMP's (d)), so the two transports are
//! compared on the same machine state:
//!
//! (a) raw cache-line ping-pong round trip (shared code);
//! (b) OpenAMP round trip with 16-byte payloads (the host sends, the remote
//!     copies the message out and echoes it, both with `rpmsg_trysend`);
//! (c) raw SPSC ring of 496-byte slots (shared code);
//! (d) OpenAMP one-way throughput with 496-byte payloads, host to remote:
//!     copying (`rpmsg_trysend`, the callback copies out) and zero-copy
//!     (`rpmsg_get_tx_payload_buffer`, the payload produced in it word by
//!     word, `rpmsg_send_nocopy`; the callback holds the buffer with
//!     `rpmsg_hold_rx_buffer`, its words are summed in place and it is given
//!     back with `rpmsg_release_rx_buffer`), as ours does in (d).
//!
//! The remote writes its resource table (vrings of 256 entries, as ours) at
//! the window's base; the host reads it and gives rpmsg the buffer pool. The
//! two share the interop test's OpenAMP set-up (`tests/peer`): each takes
//! the other's kicks (`rproc_virtio_notified`) when it polls, which is how
//! our side polls its rings.
//!
//! Needs the OpenAMP bindings (see the README); without them it prints
//! `SKIPPED` and exits 0. `AMP_BENCH_SCALE` multiplies the iteration counts.

#[cfg(not(openamp))]
fn main() {
    eprintln!(
        "\n\
         ******************************************************************\n\
         * SKIPPED: OpenAMP transport benchmark (no OpenAMP bindings).    *\n\
         *   Set OPENAMP_INCLUDE (':'-separated: the include dirs of your *\n\
         *   installed open-amp and libmetal) and OPENAMP_LIB (the dirs   *\n\
         *   holding libopen_amp.a and libmetal.a), then run              *\n\
         *   cargo bench -p openamp-sys --features bindgen --bench transport\n\
         * See remoteproc/openamp-sys/README.md.                          *\n\
         ******************************************************************\n"
    );
    const { assert!(!openamp_sys::AVAILABLE) };
}

#[cfg(openamp)]
#[path = "../tests/peer/mod.rs"]
#[allow(dead_code, reason = "the interop test's doorbell and kick report")]
mod peer;

#[cfg(openamp)]
#[path = "../../benches/shared/baseline.rs"]
mod baseline;

#[cfg(openamp)]
#[path = "../../benches/shared/ours.rs"]
mod ours;

#[cfg(openamp)]
fn main() {
    if !baseline::two_cores("OpenAMP transport") {
        return;
    }
    baseline::run(&[
        baseline::Transport {
            name: "rpmsg",
            round_trip: &ours::rpmsg_round_trip,
            throughput: &ours::rpmsg_throughput,
        },
        baseline::Transport {
            name: "OpenAMP",
            round_trip: &bench::round_trip,
            throughput: &bench::throughput,
        },
    ]);
}

#[cfg(openamp)]
mod bench {
    use super::baseline::{pin, PAYLOAD};
    use super::peer::{self, Endpoint, Line, Peer};
    use core::ffi::c_void;
    use openamp_sys as oa;
    use shmem::Window;
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    /// Buffers per direction, as ours.
    const QUEUE: u16 = 256;
    const WINDOW: usize = peer::window_len(QUEUE);
    const BUS: u32 = 0x8000_0000;
    const HOST_ADDR: u32 = 0x400;
    const REMOTE_ADDR: u32 = 0x401;

    /// A zeroed, page-aligned region standing in for the shared window.
    struct Region(*mut u8);

    impl Region {
        fn layout() -> Layout {
            Layout::from_size_align(WINDOW, 0x1000).unwrap()
        }

        fn new() -> Self {
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc_zeroed(Self::layout()) };
            assert!(!ptr.is_null());
            Self(ptr)
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with the same layout; both OpenAMP
            // devices were torn down before (their threads joined).
            unsafe { dealloc(self.0, Self::layout()) };
        }
    }

    /// The window's address, handed to both threads.
    #[derive(Clone, Copy)]
    struct Shared(*mut u8);
    // SAFETY: only the address crosses threads; the memory is shared memory by
    // design, which each OpenAMP device accesses through raw pointers.
    unsafe impl Send for Shared {}
    // SAFETY: as for `Send`: the pointer itself is never written.
    unsafe impl Sync for Shared {}

    /// What an endpoint callback records; lives on the thread of its device.
    struct Rx {
        ept: Cell<*mut oa::rpmsg_endpoint>,
        received: Cell<u64>,
        /// The last message, copied out (copying mode).
        buf: RefCell<[u8; PAYLOAD]>,
        len: Cell<usize>,
        sum: Cell<u64>,
        /// Zero-copy mode: held buffers (payload, length), read and released
        /// outside the callback.
        hold: bool,
        held: RefCell<VecDeque<(*mut u8, usize)>>,
    }

    impl Rx {
        fn new(hold: bool) -> Self {
            Self {
                ept: Cell::new(std::ptr::null_mut()),
                received: Cell::new(0),
                buf: RefCell::new([0; PAYLOAD]),
                len: Cell::new(0),
                sum: Cell::new(0),
                hold,
                held: RefCell::new(VecDeque::with_capacity(QUEUE.into())),
            }
        }
    }

    /// # Safety
    /// Called by OpenAMP: `data` readable for `len` bytes (until released,
    /// when held), `priv_` the `Rx` given at endpoint creation, on its
    /// owning thread.
    unsafe extern "C" fn on_message(
        _ept: *mut oa::rpmsg_endpoint,
        data: *mut c_void,
        len: usize,
        _src: u32,
        priv_: *mut c_void,
    ) -> i32 {
        // SAFETY: the function's contract.
        let rx = unsafe { &*priv_.cast::<Rx>() };
        let len = len.min(PAYLOAD);
        rx.received.set(rx.received.get() + 1);
        if rx.hold {
            // SAFETY: `data` is the payload OpenAMP passed to this callback.
            unsafe { oa::rpmsg_hold_rx_buffer(rx.ept.get(), data) };
            rx.held.borrow_mut().push_back((data.cast(), len));
            return oa::RPMSG_SUCCESS as i32;
        }
        let mut buf = rx.buf.borrow_mut();
        // SAFETY: OpenAMP checked `len` against its buffer size; `buf` is
        // ours and at least `len` long.
        unsafe { std::ptr::copy_nonoverlapping(data.cast::<u8>(), buf.as_mut_ptr(), len) };
        rx.len.set(len);
        rx.sum.set(rx.sum.get().wrapping_add(u64::from(buf[0])));
        oa::RPMSG_SUCCESS as i32
    }

    /// One OpenAMP device and its endpoint (declared after the peer, so
    /// dropped before it).
    struct Side<'k> {
        peer: Box<Peer<'k>>,
        ept: Endpoint,
    }

    impl<'k> Side<'k> {
        /// This thread's OpenAMP device on `window` and an endpoint at
        /// `addr` sending to `dest`, delivering to `rx`. The remote writes
        /// its table first and waits for the host's `DRIVER_OK`; the host
        /// waits for the table.
        fn new(window: Shared, host: bool, lines: [&'k Line; 2], rx: &Rx) -> Self {
            let [inbox, outbox] = lines;
            // SAFETY: the region outlives both sides (dropped after the
            // scope); only the two devices use it.
            let mut peer = unsafe {
                if host {
                    Peer::host(window.0, WINDOW, BUS, inbox, outbox)
                } else {
                    Peer::remote(window.0, WINDOW, BUS, QUEUE, inbox, outbox)
                }
            };
            assert_eq!(peer.queue, QUEUE);
            let addrs = if host {
                [HOST_ADDR, REMOTE_ADDR]
            } else {
                [REMOTE_ADDR, HOST_ADDR]
            };
            let rx_ptr = std::ptr::from_ref(rx).cast_mut().cast::<c_void>();
            // SAFETY: `rx` outlives the endpoint (every `Rx` is declared
            // before its `Side`). No name: nothing to announce.
            let mut ept =
                unsafe { Endpoint::new(&mut peer, b"\0", addrs, Some(on_message), rx_ptr) };
            rx.ept.set(ept.ptr());
            Self { peer, ept }
        }

        /// Takes the other side's kicks; whether there were any.
        fn service(&mut self) -> bool {
            self.peer.service()
        }

        /// Sends `data`, taking kicks while no buffer is free.
        fn send(&mut self, data: &[u8]) {
            loop {
                // SAFETY: the endpoint is live; `data` is readable for its
                // length, which OpenAMP only reads.
                let r = unsafe {
                    oa::rpmsg_trysend(self.ept.ptr(), data.as_ptr().cast(), data.len() as i32)
                };
                if r == data.len() as i32 {
                    return;
                }
                assert_eq!(r, oa::RPMSG_ERR_NO_BUFF, "rpmsg_trysend");
                if !self.service() {
                    // No buffer: wait as (c)'s producer (and ours) do.
                    std::hint::spin_loop();
                }
            }
        }

        /// Zero-copy send: borrows a TX buffer, produces `data`'s bytes in
        /// it word by word with the loop ours uses
        /// (`Span::write_words_with`; no staging copy), sends it.
        fn send_nocopy(&mut self, data: &[u8]) {
            let mut room = 0u32;
            let buf = loop {
                // SAFETY: the endpoint is live; `room` is writable.
                let b = unsafe { oa::rpmsg_get_tx_payload_buffer(self.ept.ptr(), &mut room, 0) };
                if !b.is_null() {
                    break b;
                }
                if !self.service() {
                    std::hint::spin_loop();
                }
            };
            assert!(room as usize >= data.len());
            let word = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
            // SAFETY: OpenAMP lent `room` writable bytes at `buf`, inside the
            // mapped region, and reads them only once sent; this program
            // holds no reference to them. (Alignment is checked.)
            let lent = unsafe { Window::from_raw(buf.cast(), room as usize) }.expect("window");
            let n = data.len() / 8;
            let written = lent
                .span(0, 8 * n)
                .and_then(|s| s.write_words_with(0, n, |_| word));
            assert_eq!(written, Ok(8 * n));
            // SAFETY: `buf` came from rpmsg_get_tx_payload_buffer on this
            // endpoint and is not touched again.
            let r = unsafe { oa::rpmsg_send_nocopy(self.ept.ptr(), buf, data.len() as i32) };
            assert_eq!(r, data.len() as i32, "rpmsg_send_nocopy");
        }

        /// Zero-copy receive: uses each held buffer in place (every word
        /// loaded once and summed with the loop ours uses, `Span::words`),
        /// then gives it back. Returns how many.
        fn drain_held(&mut self, rx: &Rx) -> u64 {
            let mut n = 0;
            while let Some((p, len)) = rx.held.borrow_mut().pop_front() {
                // SAFETY: a payload OpenAMP handed to `on_message`, held and
                // not yet released: `len` bytes inside the mapped region,
                // which this program holds no reference to. (Alignment is
                // checked.)
                let held = unsafe { Window::from_raw(p, len) }.expect("window");
                let words = held.span(0, len).expect("span").words(0);
                rx.sum.set(words.fold(rx.sum.get(), u64::wrapping_add));
                // SAFETY: as above; `p` is a held RX payload, released once.
                unsafe { oa::rpmsg_release_rx_buffer(self.ept.ptr(), p.cast()) };
                n += 1;
            }
            n
        }
    }

    /// Runs `host` on this thread (core 0) and `remote` on another (core 1),
    /// each with its OpenAMP device up over one fresh window; both get a
    /// barrier to meet at before tearing down. Returns `host`'s value.
    fn pair<T>(
        hold: bool,
        host: impl FnOnce(&mut Side<'_>, &Rx, &Barrier) -> T,
        remote: impl FnOnce(&mut Side<'_>, &Rx, &Barrier) + Send,
    ) -> T {
        let region = Region::new();
        let window = Shared(region.0);
        let (to_host, to_remote) = (Line::default(), Line::default());
        let (up, done) = (Barrier::new(2), Barrier::new(2));
        let t = std::thread::scope(|s| {
            s.spawn(|| {
                pin(1);
                let rx = Rx::new(hold);
                let mut side = Side::new(window, false, [&to_remote, &to_host], &rx);
                up.wait();
                remote(&mut side, &rx, &done);
            });
            pin(0);
            let rx = Rx::new(false);
            let mut side = Side::new(window, true, [&to_host, &to_remote], &rx);
            up.wait();
            host(&mut side, &rx, &done)
        });
        drop(region);
        t
    }

    /// (b) Round trips with 16-byte payloads: the host sends, the remote
    /// copies the message out and sends it back.
    pub(crate) fn round_trip(rounds: u64) -> Duration {
        pair(
            false,
            |h, rx, done| {
                let payload = [1u8; 16];
                let start = Instant::now();
                for i in 1..=rounds {
                    h.send(&payload);
                    while rx.received.get() < i {
                        h.service();
                    }
                }
                let t = start.elapsed() / rounds as u32;
                done.wait();
                t
            },
            |r, rx, done| {
                let mut buf = [0u8; 16];
                for i in 1..=rounds {
                    while rx.received.get() < i {
                        r.service();
                    }
                    let n = rx.len.get();
                    buf[..n].copy_from_slice(&rx.buf.borrow()[..n]);
                    r.send(&buf[..n]);
                }
                done.wait();
            },
        )
    }

    /// (d) One-way throughput with 496-byte payloads, host to remote; bytes
    /// per second.
    pub(crate) fn throughput(messages: u64, zero_copy: bool) -> f64 {
        pair(
            zero_copy,
            |h, _rx, done| {
                let payload = [7u8; PAYLOAD];
                let start = Instant::now();
                for _ in 0..messages {
                    if zero_copy {
                        h.send_nocopy(&payload);
                    } else {
                        h.send(&payload);
                    }
                }
                // The remote has taken the last one.
                done.wait();
                (messages * PAYLOAD as u64) as f64 / start.elapsed().as_secs_f64()
            },
            |r, rx, done| {
                let mut got = 0;
                while got < messages {
                    let ran = r.service();
                    if zero_copy {
                        got += r.drain_held(rx);
                    } else {
                        got = rx.received.get();
                    }
                    if !ran {
                        // Nothing yet: wait as (c)'s consumer (and ours) do.
                        std::hint::spin_loop();
                    }
                }
                std::hint::black_box(rx.sum.get());
                done.wait();
            },
        )
    }
}
