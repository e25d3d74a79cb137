//! Interop with OpenAMP: our `remoteproc::Link` and the user's OpenAMP (with
//! libmetal) talk over one shared page-aligned window from two threads, in
//! both roles, over the resource-table layout:
//!
//! - OpenAMP host (virtio driver: `rproc_virtio_create_vdev` /
//!   `rproc_virtio_init_vring` / `rpmsg_init_vdev` with a shared buffer
//!   pool, reading the resource table our remote wrote) <-> our `Link` as
//!   remote;
//! - our `Link` as host <-> OpenAMP remote (virtio device, with its own
//!   resource table in the window).
//!
//! Each side discovers the other by name service (OpenAMP announces its
//! endpoint from `rpmsg_create_ept` and learns ours in `ns_bind_cb`; we
//! answer with `Link::announce`), then both exchange `INTEROP_MESSAGES`
//! (default 20000) checksummed messages of random length each way. OpenAMP
//! sends copying (`rpmsg_trysend`, and every 64th message the blocking
//! `rpmsg_send`) and zero-copy (`rpmsg_get_tx_payload_buffer` /
//! `rpmsg_send_nocopy`), and holds some received buffers
//! (`rpmsg_hold_rx_buffer`) that it checks intact after later traffic before
//! giving them back (`rpmsg_release_rx_buffer`). Our side sends copying
//! (`Link::send`) and zero-copy (`Link::alloc_tx` / `Link::send_buffer`, and
//! `Link::send_burst`), checks received messages copied out or word by word
//! in place, and holds some `RxMessage`s across later traffic too. Asserted:
//! the counts, no corrupted, duplicated or reordered message on either side,
//! every held buffer intact, and every kick delivered: each of our kicks
//! made OpenAMP run a virtqueue callback (`rproc_virtio_notified`), and each
//! of OpenAMP's kicks carried a notify id the table assigned.
//!
//! Our `LinkConfig` keeps `event_idx` off: OpenAMP misses kicks with
//! `VIRTIO_F_EVENT_IDX`.
//!
//! Needs the OpenAMP bindings (`cfg(openamp)`); without them the test is
//! ignored (shown as such in the tally) and, when run anyway, says loudly
//! that it was skipped.

#[cfg(not(openamp))]
#[test]
#[ignore = "no OpenAMP bindings: set OPENAMP_INCLUDE and OPENAMP_LIB, build with --features bindgen (see remoteproc/openamp-sys/README.md)"]
fn openamp_interop() {
    use std::io::Write;
    // Straight to stderr, not `eprintln!`: the test harness captures the
    // macros' output of passing tests, and this must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         ******************************************************************\n\
         * SKIPPED: OpenAMP interop test (no OpenAMP bindings).           *\n\
         * Set OPENAMP_INCLUDE (':'-separated: the include dirs of your   *\n\
         *   installed open-amp and libmetal) and OPENAMP_LIB (the dirs   *\n\
         *   holding libopen_amp.a and libmetal.a), then run              *\n\
         *   cargo test -p openamp-sys --features bindgen --test interop  *\n\
         * See remoteproc/openamp-sys/README.md.                          *\n\
         ******************************************************************\n"
    );
    const { assert!(!openamp_sys::AVAILABLE) };
}

#[cfg(openamp)]
mod peer;

#[cfg(openamp)]
#[path = "../../tests/shared/messages.rs"]
mod messages;

#[cfg(openamp)]
mod interop {
    use super::messages::{check, fill};
    use super::peer::{self, Bell, Endpoint, Kicks, Peer, IDS};
    use core::ffi::c_void;
    use openamp_sys as oa;
    use remoteproc::{Incoming, Link, LinkConfig, LinkError, LinkStats, Role, RxMessage};
    use shmem::Window;
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Buffers per direction (a power of two; OpenAMP takes it from the table).
    const QUEUE: u16 = 64;
    const WINDOW: usize = 0x1_8000;
    const _: () = assert!(peer::window_len(QUEUE) <= WINDOW);
    /// Our endpoint.
    const OUR_ADDR: u32 = 1024;
    const STALL: Duration = Duration::from_secs(20);
    /// Buffers held at once on either side, and for how many later messages.
    const HOLD_MAX: usize = 4;
    const HOLD_FOR: u64 = 12;

    /// libmetal state is process-global: one test at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn messages() -> u64 {
        std::env::var("INTEROP_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000)
    }

    /// What a receiver found, message by message.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    struct Tally {
        ok: u64,
        corrupted: u64,
        duplicated: u64,
        reordered: u64,
        /// Held buffers checked intact / found changed when given back.
        held_intact: u64,
        held_changed: u64,
    }

    impl Tally {
        /// Files message number `expected` of the stream, carrying sequence
        /// number `seq` and found `intact` (exactly message `seq`).
        fn file(&mut self, expected: u64, seq: Option<u64>, intact: bool) {
            match seq {
                Some(s) if intact && s == expected => self.ok += 1,
                Some(s) if intact && s < expected => self.duplicated += 1,
                Some(_) if intact => self.reordered += 1,
                _ => self.corrupted += 1,
            }
        }

        fn clean(&self, count: u64, held: bool) {
            assert_eq!(
                (self.ok, self.corrupted, self.duplicated, self.reordered),
                (count, 0, 0, 0),
                "messages: ok, corrupted, duplicated, reordered ({self:?})"
            );
            assert_eq!(self.held_changed, 0, "held buffers changed ({self:?})");
            if held {
                assert!(self.held_intact > 0, "no buffer was held ({self:?})");
            }
        }
    }

    fn seq_of(msg: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(msg.get(..8)?.try_into().ok()?))
    }

    /// A zeroed, page-aligned region standing in for the shared window.
    struct Region {
        ptr: *mut u8,
        bus: u32,
    }

    impl Region {
        fn new(bus: u32) -> Self {
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc_zeroed(Self::layout()) };
            assert!(!ptr.is_null());
            Self { ptr, bus }
        }

        fn layout() -> Layout {
            Layout::from_size_align(WINDOW, 0x1000).unwrap()
        }

        /// Our view of it: addressed by the peer at `bus`.
        fn window(&self) -> Window<'_> {
            // SAFETY: the region is mapped for the life of `self` (which
            // outlives the borrow) and never accessed through references;
            // OpenAMP writes it through raw pointers, as a peer would.
            unsafe { Window::from_raw(self.ptr, WINDOW) }
                .unwrap()
                .with_bus_address(self.bus.into())
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with the same layout; both sides are
            // done with it (their threads joined).
            unsafe { dealloc(self.ptr, Self::layout()) };
        }
    }

    /// The raw window pointer, handed to the OpenAMP thread.
    #[derive(Clone, Copy)]
    struct Shared(*mut u8);
    // SAFETY: only the address crosses threads; the memory is shared memory by
    // design, accessed by OpenAMP through raw pointers and by us through
    // `Window`'s volatile accesses.
    unsafe impl Send for Shared {}

    /// Set by whichever side fails, so the other stops rather than waits.
    struct Stop(AtomicBool);

    impl Stop {
        fn check(&self, who: &str) {
            assert!(
                !self.0.load(Ordering::Acquire),
                "{who}: stopped, the other side failed"
            );
        }
    }

    /// Sets the stop flag if its thread unwinds.
    struct StopOnPanic<'s>(&'s Stop);

    impl Drop for StopOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0 .0.store(true, Ordering::Release);
            }
        }
    }

    /// What OpenAMP's endpoint callback records; lives on the OpenAMP thread.
    struct OaRx {
        ept: Cell<*mut oa::rpmsg_endpoint>,
        dir: u64,
        received: Cell<u64>,
        tally: RefCell<Tally>,
        /// Held RX payloads: (payload, length, seq, received count when held).
        held: RefCell<VecDeque<(*mut u8, usize, u64, u64)>>,
        /// Hold no more once this many were received (all go back by the end).
        hold_until: u64,
        wrong_source: Cell<u64>,
    }

    /// OpenAMP's endpoint callback (`rpmsg_ept_cb`).
    ///
    /// # Safety
    /// Called by OpenAMP on its thread: `data` readable for `len` bytes (for
    /// as long as the buffer is held), `priv_` the `OaRx` given at endpoint
    /// creation.
    unsafe extern "C" fn on_message(
        _ept: *mut oa::rpmsg_endpoint,
        data: *mut c_void,
        len: usize,
        src: u32,
        priv_: *mut c_void,
    ) -> i32 {
        // SAFETY: the function's contract.
        let rx = unsafe { &*priv_.cast::<OaRx>() };
        // SAFETY: the function's contract; our side does not write the buffer
        // until OpenAMP gives it back.
        let msg = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        let expected = rx.received.get();
        let seq = seq_of(msg);
        let intact = seq.is_some_and(|s| check(rx.dir, s, msg));
        rx.tally.borrow_mut().file(expected, seq, intact);
        if src != OUR_ADDR {
            rx.wrong_source.set(rx.wrong_source.get() + 1);
        }
        rx.received.set(expected + 1);
        if expected % 41 == 5 && expected < rx.hold_until && rx.held.borrow().len() < HOLD_MAX {
            // SAFETY: `data` is the payload OpenAMP passed to this callback.
            unsafe { oa::rpmsg_hold_rx_buffer(rx.ept.get(), data) };
            rx.held
                .borrow_mut()
                .push_back((data.cast(), len, expected, expected + 1));
        }
        oa::RPMSG_SUCCESS as i32
    }

    /// Checks and gives back every held buffer held for `HOLD_FOR` later
    /// messages (all of them with `all`).
    fn release_held(rx: &OaRx, all: bool) {
        loop {
            let front = rx.held.borrow().front().copied();
            let Some((p, len, seq, at)) = front else {
                return;
            };
            if !all && rx.received.get() < at + HOLD_FOR {
                return;
            }
            rx.held.borrow_mut().pop_front();
            // SAFETY: a payload OpenAMP handed to `on_message`, held and not
            // yet released: `len` readable bytes our side does not write.
            let msg = unsafe { std::slice::from_raw_parts(p, len) };
            let mut t = rx.tally.borrow_mut();
            if check(rx.dir, seq, msg) {
                t.held_intact += 1;
            } else {
                t.held_changed += 1;
            }
            // SAFETY: as above; released once.
            unsafe { oa::rpmsg_release_rx_buffer(rx.ept.get(), p.cast()) };
        }
    }

    /// What the OpenAMP side reports.
    struct OaReport {
        tally: Tally,
        wrong_source: u64,
        /// The address our announcement gave.
        ours: u32,
        /// OpenAMP's endpoint address.
        addr: u32,
        delivered: [u32; IDS + 1],
        dropped: [u32; IDS + 1],
        vdev_notifyid: u32,
        vring_notifyids: [u32; 2],
        copy_sends: u64,
        blocking_sends: u64,
        nocopy_sends: u64,
    }

    /// The OpenAMP side, on its own thread, once its device is up: opens and
    /// announces an endpoint, waits for our announcement, then sends `count`
    /// messages and receives `count`.
    fn openamp_side(mut peer: Box<Peer<'_>>, host: bool, count: u64, stop: &Stop) -> OaReport {
        let (out_dir, in_dir) = if host { (0, 1) } else { (1, 0) };
        let rx = OaRx {
            ept: Cell::new(std::ptr::null_mut()),
            dir: in_dir,
            received: Cell::new(0),
            tally: RefCell::new(Tally::default()),
            held: RefCell::new(VecDeque::new()),
            hold_until: count.saturating_sub(2 * HOLD_FOR),
            wrong_source: Cell::new(0),
        };
        let name: &[u8] = if host {
            b"openamp-host\0"
        } else {
            b"openamp-remote\0"
        };
        let rx_ptr = std::ptr::from_ref(&rx).cast_mut().cast::<c_void>();
        let any = [oa::RPMSG_ADDR_ANY; 2];
        // SAFETY: `rx` outlives the endpoint (declared before it).
        let mut ept = unsafe { Endpoint::new(&mut peer, name, any, Some(on_message), rx_ptr) };
        rx.ept.set(ept.ptr());
        let start = Instant::now();
        let ours = loop {
            stop.check("OpenAMP");
            peer.service();
            assert_eq!(peer.dropped_total(), 0, "{}", peer.explain_dropped());
            if let Some(a) = peer::announced(b"rust-") {
                break a;
            }
            assert!(
                start.elapsed() < STALL,
                "OpenAMP never saw our announcement"
            );
            std::thread::yield_now();
        };
        // SAFETY: the endpoint is live; OpenAMP sends to `dest_addr`.
        unsafe { (*ept.ptr()).dest_addr = ours };
        let mut buf = [0u8; 512];
        let (mut sent, mut copy_sends, mut blocking_sends, mut nocopy_sends) = (0u64, 0, 0, 0);
        let mut last_progress = Instant::now();
        while sent < count || rx.received.get() < count {
            stop.check("OpenAMP");
            let before = (sent, rx.received.get());
            peer.service();
            assert_eq!(peer.dropped_total(), 0, "{}", peer.explain_dropped());
            release_held(&rx, false);
            if sent < count {
                let n = fill(out_dir, sent, &mut buf);
                if sent % 3 == 1 {
                    // Zero copy: the message written into a lent TX buffer.
                    let mut room = 0u32;
                    // SAFETY: the endpoint is live; `room` is writable.
                    let tx = unsafe { oa::rpmsg_get_tx_payload_buffer(ept.ptr(), &mut room, 0) };
                    if !tx.is_null() {
                        assert_eq!(
                            room as usize,
                            peer::BUFFER - 16,
                            "rpmsg_get_tx_payload_buffer's room for message {sent} (OpenAMP \
                             takes it from the used length our side gave the buffer back with)"
                        );
                        // SAFETY: OpenAMP lent `room` >= `n` writable bytes at
                        // `tx`, which our side does not touch until sent.
                        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), tx.cast(), n) };
                        // SAFETY: `tx` came from rpmsg_get_tx_payload_buffer
                        // on this endpoint and is sent once.
                        let r = unsafe { oa::rpmsg_send_nocopy(ept.ptr(), tx, n as i32) };
                        assert_eq!(r, n as i32, "rpmsg_send_nocopy of message {sent}");
                        sent += 1;
                        nocopy_sends += 1;
                    }
                } else if sent % 64 == 63 {
                    // SAFETY: the endpoint is live; `buf` holds `n` bytes.
                    // Blocks (OpenAMP sleeps and retries) until a buffer is
                    // free, which our side gives back without waiting on us.
                    let r = unsafe { oa::rpmsg_send(ept.ptr(), buf.as_ptr().cast(), n as i32) };
                    assert_eq!(r, n as i32, "rpmsg_send of message {sent}");
                    sent += 1;
                    blocking_sends += 1;
                } else {
                    // SAFETY: as above, without blocking.
                    let r = unsafe { oa::rpmsg_trysend(ept.ptr(), buf.as_ptr().cast(), n as i32) };
                    if r != oa::RPMSG_ERR_NO_BUFF {
                        assert_eq!(r, n as i32, "rpmsg_trysend of message {sent}");
                        sent += 1;
                        copy_sends += 1;
                    }
                }
            }
            if (sent, rx.received.get()) != before {
                last_progress = Instant::now();
            } else {
                assert!(
                    last_progress.elapsed() < STALL,
                    "OpenAMP stalled: sent {sent}, received {}; kicks delivered {:?}, dropped {:?}",
                    rx.received.get(),
                    peer.delivered,
                    peer.dropped
                );
                std::thread::yield_now();
            }
        }
        release_held(&rx, true);
        // Our last kicks (for buffers it gave back) may still be pending.
        peer.service();
        assert_eq!(peer.dropped_total(), 0, "{}", peer.explain_dropped());
        let report = OaReport {
            tally: *rx.tally.borrow(),
            wrong_source: rx.wrong_source.get(),
            ours,
            addr: ept.addr(),
            delivered: peer.delivered,
            dropped: peer.dropped,
            vdev_notifyid: peer.vdev_notifyid,
            vring_notifyids: peer.vring_notifyids,
            copy_sends,
            blocking_sends,
            nocopy_sends,
        };
        // The endpoint goes before the peer (its NS withdrawal needs it).
        drop(ept);
        drop(peer);
        report
    }

    /// Whether `m` is exactly message `seq` of `dir`, read word by word where
    /// it lies (no copy of the payload), the tail shorter than a word read
    /// apart.
    fn check_in_place(dir: u64, seq: u64, m: &RxMessage<'_>) -> bool {
        let mut want = [0u8; 512];
        let n = fill(dir, seq, &mut want);
        if m.len() != n {
            return false;
        }
        let words = m.words().count();
        let same = m
            .words()
            .zip(want.chunks_exact(8))
            .all(|(w, c)| w.to_le_bytes() == c);
        let mut tail = [0u8; 8];
        let t = n - 8 * words;
        same && m.read(8 * words, &mut tail[..t]).is_ok() && tail[..t] == want[8 * words..n]
    }

    /// What our side reports.
    struct OurReport {
        /// OpenAMP's withdrawal of its endpoint arrived (with the last
        /// messages).
        withdrawn: bool,
        tally: Tally,
        peer: u32,
        stats: LinkStats,
        /// OpenAMP's kicks by notify id, as our side last saw them.
        kicks: [u32; IDS + 1],
        sends: [u64; 3],
    }

    /// Our side: come up, wait for OpenAMP's announcement, answer it with
    /// ours, then send `count` messages (copying, zero-copy one at a time,
    /// and in bursts) and receive `count` (copied out, checked in place, some
    /// held across later traffic).
    fn our_side(
        link: &mut Link<'_, Bell<'_>, 64, 4>,
        kicks: &Kicks,
        role: Role,
        count: u64,
        stop: &Stop,
    ) -> OurReport {
        let (out_dir, in_dir) = match role {
            Role::Host => (0, 1),
            Role::Remote => (1, 0),
        };
        let mut peer = None;
        let mut ours = None;
        let (mut sent, mut received) = (0u64, 0u64);
        let mut sends = [0u64; 3];
        let mut withdrawn = false;
        let mut tally = Tally::default();
        let mut held: VecDeque<(RxMessage<'_>, u64)> = VecDeque::new();
        let mut buf = [0u8; 512];
        let mut last_progress = Instant::now();
        while peer.is_none() || sent < count || received < count {
            stop.check("our side");
            let mut progress = false;
            match link.poll() {
                // The peer is not up yet.
                Ok(()) | Err(LinkError::NotReady) => {}
                Err(e) => {
                    stop.check("our side");
                    panic!("poll: {e}")
                }
            }
            if let (Some(p), Some(e)) = (peer, ours) {
                // The way each message goes depends on its sequence number,
                // in runs of 32: copying, zero-copy one at a time, then a
                // burst. So every way is used whatever the timing (a burst
                // that finds the ring full is tried again next pass).
                while sent < count {
                    let run_left = (32 - sent % 32).min(count - sent) as usize;
                    let progress_before = sent;
                    match (sent / 32) % 3 {
                        0 | 1 => {
                            let n = fill(out_dir, sent, &mut buf);
                            if (sent / 32) % 3 == 0 {
                                if !link.send(e, p, &buf[..n]).unwrap() {
                                    break;
                                }
                                sends[0] += 1;
                            } else {
                                let Some(mut tx) = link.alloc_tx().unwrap() else {
                                    break;
                                };
                                tx.write(0, &buf[..n]).unwrap();
                                link.send_buffer(tx, e, p, n).unwrap();
                                sends[1] += 1;
                            }
                            sent += 1;
                        }
                        _ => {
                            // Each message written in place.
                            let mut seq = sent;
                            let n = link
                                .send_burst(e, p, run_left, |tx| {
                                    let n = fill(out_dir, seq, &mut buf);
                                    tx.write(0, &buf[..n]).ok()?;
                                    seq += 1;
                                    Some(n)
                                })
                                .unwrap();
                            sent += n as u64;
                            sends[2] += n as u64;
                        }
                    }
                    if sent == progress_before {
                        break;
                    }
                    progress = true;
                }
            }
            loop {
                let incoming = match link.receive() {
                    Ok(Some(i)) => i,
                    Ok(None) | Err(LinkError::NotReady) => break,
                    Err(e) => {
                        stop.check("our side");
                        panic!("receive: {e}")
                    }
                };
                progress = true;
                match incoming {
                    Incoming::Service(s) if !s.created => {
                        // OpenAMP withdraws its endpoint when it is done
                        // (`rpmsg_destroy_ept`): after its last message.
                        assert_eq!(Some(s.addr), peer, "{s:?}");
                        assert_eq!(received, count, "withdrawn before its last message");
                        withdrawn = true;
                    }
                    Incoming::Service(s) => {
                        assert!(s.created && s.name().starts_with(b"openamp-"), "{s:?}");
                        assert!(peer.is_none(), "second announcement {s:?}");
                        peer = Some(s.addr);
                        let e = link.create_endpoint(Some(OUR_ADDR)).unwrap();
                        let name: &[u8] = match role {
                            Role::Host => b"rust-host",
                            Role::Remote => b"rust-remote",
                        };
                        link.announce(e, name).unwrap();
                        ours = Some(e.addr());
                    }
                    Incoming::Message(m) => {
                        assert_eq!((m.src(), m.dst()), (peer.unwrap(), OUR_ADDR));
                        let seq = received;
                        received += 1;
                        let mut head = [0u8; 8];
                        let got = m.read(0, &mut head).ok().map(|()| u64::from_le_bytes(head));
                        if seq % 5 == 0 {
                            let intact = got.is_some_and(|s| check_in_place(in_dir, s, &m));
                            tally.file(seq, got, intact);
                        } else {
                            let n = m.copy_to(&mut buf).unwrap();
                            let intact = got.is_some_and(|s| check(in_dir, s, &buf[..n]));
                            tally.file(seq, got, intact);
                        }
                        if seq % 37 == 11 && held.len() < HOLD_MAX && seq + 2 * HOLD_FOR < count {
                            held.push_back((m, seq));
                        } else {
                            link.release(m).unwrap();
                        }
                    }
                }
            }
            // Held messages checked and given back once later ones came.
            while held.front().is_some_and(|(_, s)| received >= s + HOLD_FOR) {
                let (m, s) = held.pop_front().unwrap();
                let n = m.copy_to(&mut buf).unwrap();
                if check(in_dir, s, &buf[..n]) {
                    tally.held_intact += 1;
                } else {
                    tally.held_changed += 1;
                }
                link.release(m).unwrap();
            }
            if progress {
                last_progress = Instant::now();
            } else {
                assert!(
                    last_progress.elapsed() < STALL,
                    "our side stalled: peer {peer:?}, sent {sent}, received {received}, \
                     up {}, OpenAMP's kicks {:?}, ours {:?}, stats {:?}",
                    link.is_up(),
                    kicks.theirs(),
                    kicks.ours(),
                    link.stats()
                );
                std::thread::yield_now();
            }
        }
        assert!(held.is_empty(), "every held message given back");
        OurReport {
            withdrawn,
            tally,
            peer: peer.unwrap(),
            stats: link.stats(),
            kicks: kicks.theirs(),
            sends,
        }
    }

    fn config(role: Role) -> LinkConfig {
        let mut c =
            LinkConfig::resource_table(role, peer::TABLE, peer::VRINGS, peer::BUFFERS, QUEUE);
        // OpenAMP misses kicks with VIRTIO_F_EVENT_IDX.
        c.event_idx = false;
        c
    }

    fn assert_clean(stats: &LinkStats, count: u64) {
        assert_eq!(stats.received, count);
        assert_eq!(stats.sent, count + 1, "messages plus one announcement");
        assert_eq!(
            (
                stats.ring_errors,
                stats.message_errors,
                stats.table_errors,
                stats.unknown_destination
            ),
            (0, 0, 0, 0),
            "{stats:?}"
        );
    }

    /// Every kick of either side got through: ours each ran a virtqueue
    /// callback in OpenAMP, and OpenAMP's each carried an id the table
    /// assigned (a vring's, or the vdev's for status and feature changes).
    fn assert_kicks(oa: &OaReport, kicks: &Kicks) {
        let ours = kicks.ours();
        assert_eq!(oa.dropped, [0; IDS + 1], "our kicks OpenAMP dropped");
        assert_eq!(oa.delivered, ours, "our kicks: delivered vs sent");
        let theirs = kicks.theirs();
        for (id, &n) in theirs.iter().enumerate() {
            let known = oa.vring_notifyids.contains(&(id as u32)) || oa.vdev_notifyid == id as u32;
            assert!(
                n == 0 || known,
                "{n} OpenAMP kicks on unassigned notify id {id}"
            );
        }
        assert!(ours.iter().sum::<u32>() > 0 && theirs.iter().sum::<u32>() > 0);
    }

    fn report(what: &str, count: u64, t: Duration, oa: &OaReport, our: &OurReport, kicks: &Kicks) {
        eprintln!(
            "{what}: {count} messages each way + name service in {t:.2?}\n  \
             OpenAMP endpoint {}, ours {}; OpenAMP sent {} rpmsg_trysend, {} rpmsg_send, \
             {} rpmsg_send_nocopy; received {:?}\n  \
             our sends (send, alloc_tx/send_buffer, send_burst) {:?}; received {:?}\n  \
             notify ids: vdev {}, vrings {:?}; our kicks per id {:?} delivered {:?} \
             dropped {:?}; OpenAMP's kicks per id {:?}\n  OpenAMP's withdrawal seen: {}; \
             our stats {:?}",
            oa.addr,
            oa.ours,
            oa.copy_sends,
            oa.blocking_sends,
            oa.nocopy_sends,
            oa.tally,
            our.sends,
            our.tally,
            oa.vdev_notifyid,
            oa.vring_notifyids,
            kicks.ours(),
            oa.delivered,
            oa.dropped,
            our.kicks,
            our.withdrawn,
            our.stats
        );
    }

    fn check_both(oa: &OaReport, our: &OurReport, kicks: &Kicks, count: u64) {
        oa.tally.clean(count, true);
        our.tally.clean(count, true);
        assert_eq!(
            oa.wrong_source, 0,
            "messages to OpenAMP from another address"
        );
        assert_eq!(oa.ours, OUR_ADDR);
        assert_eq!(our.peer, oa.addr);
        assert!(oa.nocopy_sends > 0 && oa.copy_sends > 0 && oa.blocking_sends > 0);
        assert!(our.sends.iter().all(|&n| n > 0), "{:?}", our.sends);
        assert_clean(&our.stats, count);
        assert_kicks(oa, kicks);
    }

    #[test]
    fn openamp_host_with_our_remote() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let count = messages();
        let region = Region::new(0x8000_0000);
        let shared = Shared(region.ptr);
        let kicks = Kicks::default();
        // Our remote writes its resource table now, before OpenAMP reads it.
        let mut ours: Link<'_, Bell<'_>, 64, 4> =
            Link::new(region.window(), config(Role::Remote), Bell(&kicks)).unwrap();
        assert!(!ours.is_up(), "up before the host ran");
        let stop = Stop(AtomicBool::new(false));
        let start = Instant::now();
        let (oa, our) = std::thread::scope(|s| {
            let (kicks, stop) = (&kicks, &stop);
            let a = s.spawn(move || {
                let _guard = StopOnPanic(stop);
                let shared = shared;
                // SAFETY: the region outlives the thread; only the two sides
                // use it.
                let peer = unsafe {
                    Peer::host(
                        shared.0,
                        WINDOW,
                        0x8000_0000,
                        &kicks.to_openamp,
                        &kicks.from_openamp,
                    )
                };
                assert_eq!(peer.queue, QUEUE, "queue size from our table");
                openamp_side(peer, true, count, stop)
            });
            let b = s.spawn(|| {
                let _guard = StopOnPanic(stop);
                our_side(&mut ours, kicks, Role::Remote, count, stop)
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let t = start.elapsed();
        report("OpenAMP host <-> our remote", count, t, &oa, &our, &kicks);
        check_both(&oa, &our, &kicks, count);
    }

    #[test]
    fn our_host_with_openamp_remote() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let count = messages();
        let region = Region::new(0x9000_0000);
        let shared = Shared(region.ptr);
        let kicks = Kicks::default();
        // Our host first: no table yet, so it waits for the remote's.
        let mut ours: Link<'_, Bell<'_>, 64, 4> =
            Link::new(region.window(), config(Role::Host), Bell(&kicks)).unwrap();
        assert!(!ours.is_up(), "up before the remote wrote its table");
        let stop = Stop(AtomicBool::new(false));
        let start = Instant::now();
        let (oa, our) = std::thread::scope(|s| {
            let (kicks, stop) = (&kicks, &stop);
            let a = s.spawn(move || {
                let _guard = StopOnPanic(stop);
                let shared = shared;
                // SAFETY: as in the other role.
                let peer = unsafe {
                    Peer::remote(
                        shared.0,
                        WINDOW,
                        0x9000_0000,
                        QUEUE,
                        &kicks.to_openamp,
                        &kicks.from_openamp,
                    )
                };
                openamp_side(peer, false, count, stop)
            });
            let b = s.spawn(|| {
                let _guard = StopOnPanic(stop);
                our_side(&mut ours, kicks, Role::Host, count, stop)
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let t = start.elapsed();
        report("our host <-> OpenAMP remote", count, t, &oa, &our, &kicks);
        check_both(&oa, &our, &kicks, count);
    }
}
