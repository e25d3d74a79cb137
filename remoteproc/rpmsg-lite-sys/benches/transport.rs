//! NXP rpmsg-lite through the same harness as our transport
//! (`remoteproc/benches/transport.rs`, whose `shared/` modules this includes):
//! an rpmsg-lite master and an rpmsg-lite remote over one window, one thread
//! each on two pinned cores, measured in the same rounds as the baselines and
//! as our rpmsg (each round runs (a), ours and rpmsg-lite's (b), (c), ours and
//! rpmsg-lite's (d)), so the two transports are compared on the same machine
//! state:
//!
//! (a) raw cache-line ping-pong round trip (shared code);
//! (b) rpmsg-lite round trip with 16-byte payloads (master sends, the remote
//!     echoes);
//! (c) raw SPSC ring of 496-byte slots (shared code);
//! (d) rpmsg-lite one-way throughput with 496-byte payloads, master to
//!     remote: copying (`rpmsg_lite_send`, the callback copies out) and
//!     zero-copy (`rpmsg_lite_alloc_tx_buffer`, the payload produced in it
//!     word by word, `rpmsg_lite_send_nocopy`; the callback holds the
//!     buffer, whose words are summed in place before it is given back with
//!     `rpmsg_lite_release_rx_buffer`), as ours does in (d).
//!
//! rpmsg-lite runs as on bare metal with the environment of the interop test
//! (`tests/host_env`): its interrupts are lines each thread takes when it
//! polls them, which is how our side polls its rings. The two instances use
//! link ids 0 (master) and 1 (remote), wired together by `host_env::connect`.
//! Ring size is rpmsg-lite's compile-time `RL_BUFFER_COUNT` (16 with this
//! crate's `host/rpmsg_config.h`; ours runs with 256).
//!
//! Needs the rpmsg-lite bindings (see the README); without them it prints
//! `SKIPPED` and exits 0. `AMP_BENCH_SCALE` multiplies the iteration counts.

#[cfg(not(rpmsg_lite))]
fn main() {
    eprintln!(
        "\n\
         ******************************************************************\n\
         * SKIPPED: rpmsg-lite transport benchmark (no rpmsg-lite         *\n\
         *   bindings). Set RPMSG_LITE_INCLUDE (':'-separated: rpmsg-lite *\n\
         *   lib/include, lib/include/environment/bm, and this crate's    *\n\
         *   host/ folder) and RPMSG_LITE_LIB (folder holding             *\n\
         *   librpmsg_lite.a), then run                                   *\n\
         *   cargo bench -p rpmsg-lite-sys --features bindgen --bench transport\n\
         * See remoteproc/rpmsg-lite-sys/README.md.                       *\n\
         ******************************************************************\n"
    );
    const { assert!(!rpmsg_lite_sys::AVAILABLE) };
}

#[cfg(rpmsg_lite)]
#[path = "../tests/host_env/mod.rs"]
#[allow(dead_code, reason = "the interop test's doorbell and kick counters")]
mod host_env;

#[cfg(rpmsg_lite)]
#[path = "../../benches/shared/baseline.rs"]
mod baseline;

#[cfg(rpmsg_lite)]
#[path = "../../benches/shared/ours.rs"]
mod ours;

#[cfg(rpmsg_lite)]
fn main() {
    if !baseline::two_cores("rpmsg-lite transport") {
        return;
    }
    baseline::run(&[
        baseline::Transport {
            name: "rpmsg",
            round_trip: &ours::rpmsg_round_trip,
            throughput: &ours::rpmsg_throughput,
        },
        baseline::Transport {
            name: "rpmsg-lite",
            round_trip: &bench::round_trip,
            throughput: &bench::throughput,
        },
    ]);
}

#[cfg(rpmsg_lite)]
mod bench {
    use super::baseline::{pin, PAYLOAD};
    use super::host_env;
    use core::ffi::c_void;
    use rpmsg_lite_sys as rl;
    use shmem::Window;
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    const BUFFERS: usize = rl::RL_BUFFER_COUNT as usize;
    /// The two vrings and 2 x `RL_BUFFER_COUNT` 512-byte buffers.
    const WINDOW: usize = rl::RL_VRING_OVERHEAD as usize + 2 * BUFFERS * 512;
    const BUS: u32 = 0x8000_0000;
    const MASTER_LINK: u32 = 0;
    const REMOTE_LINK: u32 = 1;
    const MASTER_ADDR: u32 = 0x400;
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
            host_env::add_window(ptr, WINDOW, BUS);
            Self(ptr)
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            host_env::remove_window(self.0);
            // SAFETY: allocated in `new` with the same layout; both rpmsg-lite
            // instances were deinitialised before (their threads joined).
            unsafe { dealloc(self.0, Self::layout()) };
        }
    }

    /// The window's address, handed to the remote's thread.
    #[derive(Clone, Copy)]
    struct Shared(*mut c_void);
    // SAFETY: only the address crosses threads; the memory is shared memory by
    // design, which each rpmsg-lite instance accesses through raw pointers.
    unsafe impl Send for Shared {}
    // SAFETY: as for `Send`: the pointer itself is never written.
    unsafe impl Sync for Shared {}

    /// What an endpoint callback records; lives on the thread of its instance.
    struct Rx {
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
                received: Cell::new(0),
                buf: RefCell::new([0; PAYLOAD]),
                len: Cell::new(0),
                sum: Cell::new(0),
                hold,
                held: RefCell::new(VecDeque::with_capacity(BUFFERS)),
            }
        }
    }

    /// # Safety
    /// Called by rpmsg-lite: `payload` readable for `len` bytes (until
    /// released, when held), `private` the `Rx` given at endpoint creation,
    /// on its owning thread.
    unsafe extern "C" fn on_message(
        payload: *mut c_void,
        len: u32,
        _src: u32,
        private: *mut c_void,
    ) -> i32 {
        // SAFETY: the function's contract.
        let rx = unsafe { &*private.cast::<Rx>() };
        let len = (len as usize).min(PAYLOAD);
        rx.received.set(rx.received.get() + 1);
        if rx.hold {
            rx.held.borrow_mut().push_back((payload.cast(), len));
            return rl::RL_HOLD as i32;
        }
        let mut buf = rx.buf.borrow_mut();
        // SAFETY: rpmsg-lite checked `len` against its buffer size; `buf` is
        // ours and at least `len` long.
        unsafe { std::ptr::copy_nonoverlapping(payload.cast::<u8>(), buf.as_mut_ptr(), len) };
        rx.len.set(len);
        rx.sum.set(rx.sum.get().wrapping_add(u64::from(buf[0])));
        rl::RL_RELEASE as i32
    }

    /// One rpmsg-lite instance and its endpoint.
    struct Side {
        inst: *mut rl::rpmsg_lite_instance,
        ept: *mut rl::rpmsg_lite_endpoint,
    }

    impl Side {
        /// Initialises this thread's instance on `window` and an endpoint at
        /// `addr` delivering to `rx`. The remote must be set up before the
        /// master (the master's one "ready" kick is the remote's link-up),
        /// hence `ready`: the remote passes it after init, the master before.
        fn new(window: Shared, master: bool, addr: u32, rx: &Rx, ready: &Barrier) -> Self {
            let link = if master { MASTER_LINK } else { REMOTE_LINK };
            host_env::own_link(link);
            if master {
                ready.wait();
            }
            // SAFETY: this and the calls below marked "as above": rpmsg-lite
            // gets the registered window, a callback matching its typedef and
            // `rx`, which outlives the instance (deinit in `Side::drop`, and
            // every `Rx` is declared before its `Side`).
            let inst = unsafe {
                if master {
                    rl::rpmsg_lite_master_init(window.0, WINDOW, link, rl::RL_NO_FLAGS)
                } else {
                    rl::rpmsg_lite_remote_init(window.0, link, rl::RL_NO_FLAGS)
                }
            };
            assert!(!inst.is_null(), "rpmsg-lite init failed");
            if !master {
                ready.wait();
            }
            // SAFETY: as above.
            let up = unsafe { rl::rpmsg_lite_wait_for_link_up(inst, 10_000) };
            assert_eq!(up, 1, "rpmsg-lite link never came up");
            let rx_ptr = (rx as *const Rx).cast_mut().cast::<c_void>();
            // SAFETY: as above.
            let ept = unsafe { rl::rpmsg_lite_create_ept(inst, addr, Some(on_message), rx_ptr) };
            assert!(!ept.is_null());
            Self { inst, ept }
        }

        /// Sends `data` to `dst`, taking interrupts while no buffer is free.
        fn send(&self, dst: u32, data: &[u8]) {
            loop {
                // SAFETY: as above; `data` is readable for its length, which
                // rpmsg-lite only reads.
                let r = unsafe {
                    rl::rpmsg_lite_send(
                        self.inst,
                        self.ept,
                        dst,
                        data.as_ptr().cast_mut().cast(),
                        data.len() as u32,
                        rl::RL_DONT_BLOCK as usize,
                    )
                };
                if r == rl::RL_SUCCESS as i32 {
                    return;
                }
                assert_eq!(r, rl::RL_ERR_NO_MEM, "rpmsg_lite_send");
                if host_env::service() == 0 {
                    // No buffer: wait as (c)'s producer (and ours) do.
                    std::hint::spin_loop();
                }
            }
        }

        /// Zero-copy send: borrows a TX buffer, produces `data`'s bytes in
        /// it word by word with the loop ours uses
        /// (`Span::write_words_with`; no staging copy), sends it.
        fn send_nocopy(&self, dst: u32, data: &[u8]) {
            let mut size = 0u32;
            let buf = loop {
                // SAFETY: as above; `size` is writable.
                let b = unsafe {
                    rl::rpmsg_lite_alloc_tx_buffer(self.inst, &mut size, rl::RL_DONT_BLOCK as usize)
                };
                if !b.is_null() {
                    break b;
                }
                if host_env::service() == 0 {
                    std::hint::spin_loop();
                }
            };
            assert!(size as usize >= data.len());
            let word = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
            // SAFETY: rpmsg-lite lent `size` writable bytes at `buf`, inside
            // the mapped region, and reads them only once sent; this program
            // holds no reference to them. (Alignment is checked.)
            let lent = unsafe { Window::from_raw(buf.cast(), size as usize) }.expect("window");
            let n = data.len() / 8;
            let written = lent
                .span(0, 8 * n)
                .and_then(|s| s.write_words_with(0, n, |_| word));
            assert_eq!(written, Ok(8 * n));
            // SAFETY: as above; `buf` came from rpmsg_lite_alloc_tx_buffer and
            // is not touched again.
            let r = unsafe {
                rl::rpmsg_lite_send_nocopy(self.inst, self.ept, dst, buf, data.len() as u32)
            };
            assert_eq!(r, rl::RL_SUCCESS as i32, "rpmsg_lite_send_nocopy");
        }

        /// Zero-copy receive: uses each held buffer in place (every word
        /// loaded once and summed with the loop ours uses, `Span::words`),
        /// then gives it back. Returns how many.
        fn drain_held(&self, rx: &Rx) -> u64 {
            let mut n = 0;
            while let Some((p, len)) = rx.held.borrow_mut().pop_front() {
                // SAFETY: a payload rpmsg-lite handed to `on_message`, held
                // and not yet released: `len` bytes inside the mapped region,
                // which this program holds no reference to. (Alignment is
                // checked.)
                let held = unsafe { Window::from_raw(p, len) }.expect("window");
                let words = held.span(0, len).expect("span").words(0);
                rx.sum.set(words.fold(rx.sum.get(), u64::wrapping_add));
                // SAFETY: as above; `p` is a held RX payload, released once.
                let r = unsafe { rl::rpmsg_lite_release_rx_buffer(self.inst, p.cast()) };
                assert_eq!(r, rl::RL_SUCCESS as i32, "rpmsg_lite_release_rx_buffer");
                n += 1;
            }
            n
        }
    }

    impl Drop for Side {
        fn drop(&mut self) {
            // SAFETY: as above; nothing uses the endpoint or instance after.
            unsafe {
                rl::rpmsg_lite_destroy_ept(self.inst, self.ept);
                rl::rpmsg_lite_deinit(self.inst);
            }
        }
    }

    /// Runs `master` on this thread (core 0) and `remote` on another (core
    /// 1), each with its rpmsg-lite instance up over one fresh window; both
    /// get a barrier to meet at before tearing down. Returns `master`'s value.
    fn pair<T>(
        hold: bool,
        master: impl FnOnce(&Side, &Rx, &Barrier) -> T,
        remote: impl FnOnce(&Side, &Rx, &Barrier) + Send,
    ) -> T {
        let region = Region::new();
        let window = Shared(region.0.cast());
        host_env::connect(MASTER_LINK, REMOTE_LINK);
        let (ready, up, done) = (Barrier::new(2), Barrier::new(2), Barrier::new(2));
        let t = std::thread::scope(|s| {
            s.spawn(|| {
                pin(1);
                let rx = Rx::new(hold);
                let side = Side::new(window, false, REMOTE_ADDR, &rx, &ready);
                up.wait();
                remote(&side, &rx, &done);
            });
            pin(0);
            let rx = Rx::new(false);
            let side = Side::new(window, true, MASTER_ADDR, &rx, &ready);
            up.wait();
            master(&side, &rx, &done)
        });
        drop(region);
        t
    }

    /// (b) Round trips with 16-byte payloads: the master sends, the remote
    /// copies the message out and sends it back.
    pub(crate) fn round_trip(rounds: u64) -> Duration {
        pair(
            false,
            |m, rx, done| {
                let payload = [1u8; 16];
                let start = Instant::now();
                for i in 1..=rounds {
                    m.send(REMOTE_ADDR, &payload);
                    while rx.received.get() < i {
                        host_env::service();
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
                        host_env::service();
                    }
                    let n = rx.len.get();
                    buf[..n].copy_from_slice(&rx.buf.borrow()[..n]);
                    r.send(MASTER_ADDR, &buf[..n]);
                }
                done.wait();
            },
        )
    }

    /// (d) One-way throughput with 496-byte payloads, master to remote;
    /// bytes per second.
    pub(crate) fn throughput(messages: u64, zero_copy: bool) -> f64 {
        pair(
            zero_copy,
            |m, _rx, done| {
                let payload = [7u8; PAYLOAD];
                let start = Instant::now();
                for _ in 0..messages {
                    if zero_copy {
                        m.send_nocopy(REMOTE_ADDR, &payload);
                    } else {
                        m.send(REMOTE_ADDR, &payload);
                    }
                }
                // The remote has taken the last one.
                done.wait();
                (messages * PAYLOAD as u64) as f64 / start.elapsed().as_secs_f64()
            },
            |r, rx, done| {
                let mut got = 0;
                while got < messages {
                    let ran = host_env::service();
                    if zero_copy {
                        got += r.drain_held(rx);
                    } else {
                        got = rx.received.get();
                    }
                    if ran == 0 {
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
