//! The RTOS side of a link's AVPS network device: a smoltcp interface
//! behind our virtio network device (`remoteproc::virtio::net`), answering
//! ICMP echo and serving TCP echo.
//!
//! The stack knows nothing of the link: it is the device's [`NetPort`].
//! Frames the peer's driver transmits queue for the stack (and wait in the
//! driver's queue while that is full); frames the stack sends wait until
//! the driver posts a receive buffer. No allocation after start-up.

use remoteproc::avps::net;
use remoteproc::virtio::net::NetPort;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address,
};

/// Frames queued each way between the link and the stack.
const QUEUE: usize = 16;
/// TCP echo connections served at once.
const ECHO_SOCKETS: usize = 2;
/// Each echo socket's receive and send buffer.
const ECHO_BUFFER: usize = 16 << 10;

/// One Ethernet frame.
#[derive(Clone)]
pub(crate) struct Frame {
    len: usize,
    bytes: [u8; net::MAX_FRAME],
}

impl Frame {
    const EMPTY: Frame = Frame {
        len: 0,
        bytes: [0; net::MAX_FRAME],
    };

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Two frame queues as a smoltcp device. With `loopback`, what the stack
/// sends comes back to it.
pub(crate) struct Frames {
    rx: heapless::Deque<Frame, QUEUE>,
    tx: heapless::Deque<Frame, QUEUE>,
    loopback: bool,
    medium: Medium,
}

impl Frames {
    fn new(medium: Medium, loopback: bool) -> Self {
        Frames {
            rx: heapless::Deque::new(),
            tx: heapless::Deque::new(),
            loopback,
            medium,
        }
    }
}

pub(crate) struct Rx(Frame);
pub(crate) struct Tx<'a>(&'a mut Frames);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.as_bytes())
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = Frame::EMPTY;
        frame.len = len.min(net::MAX_FRAME);
        let r = f(&mut frame.bytes[..frame.len]);
        let queue = if self.0.loopback {
            &mut self.0.rx
        } else {
            &mut self.0.tx
        };
        // `transmit` only hands out a token while there is room.
        let _ = queue.push_back(frame);
        r
    }
}

impl Device for Frames {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(self)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        let room = if self.loopback {
            !self.rx.is_full()
        } else {
            !self.tx.is_full()
        };
        room.then_some(Tx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        caps.max_transmission_unit = match self.medium {
            Medium::Ethernet => net::MAX_FRAME,
            _ => net::MTU,
        };
        caps.max_burst_size = Some(QUEUE / 2);
        caps
    }
}

fn leak<T: Clone>(value: T, n: usize) -> &'static mut [T] {
    alloc::boxed::Box::leak(alloc::vec![value; n].into_boxed_slice())
}

fn ipv4(a: [u8; 4]) -> Ipv4Address {
    Ipv4Address::new(a[0], a[1], a[2], a[3])
}

/// Counts a user may want to see.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NetStats {
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    /// Frames dropped because the stack's queue was full.
    pub(crate) overruns: u64,
    pub(crate) connections: u64,
    /// Echo connections that ended.
    pub(crate) closed: u64,
}

/// The provider's network stack on one link.
pub(crate) struct NetStack {
    iface: Interface,
    sockets: SocketSet<'static>,
    /// Boxed: its queues hold 32 full-size frames.
    dev: alloc::boxed::Box<Frames>,
    echo: [SocketHandle; ECHO_SOCKETS],
    was_active: [bool; ECHO_SOCKETS],
    scratch: &'static mut [u8],
    pub(crate) stats: NetStats,
}

impl NetStack {
    pub(crate) fn new(now: Instant, seed: u64, subnet: net::Subnet) -> Self {
        let mut dev = alloc::boxed::Box::new(Frames::new(Medium::Ethernet, false));
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(
            net::PROVIDER_MAC,
        )));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut *dev, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(
                IpAddress::Ipv4(ipv4(subnet.provider())),
                subnet.prefix_len,
            ));
        });
        let storage: [SocketStorage<'static>; ECHO_SOCKETS] =
            core::array::from_fn(|_| SocketStorage::EMPTY);
        let mut sockets =
            SocketSet::new(&mut alloc::boxed::Box::leak(alloc::boxed::Box::new(storage))[..]);
        let echo = core::array::from_fn(|_| {
            let rx = tcp::SocketBuffer::new(leak(0u8, ECHO_BUFFER));
            let tx = tcp::SocketBuffer::new(leak(0u8, ECHO_BUFFER));
            sockets.add(echo_socket(rx, tx))
        });
        NetStack {
            iface,
            sockets,
            dev,
            echo,
            was_active: [false; ECHO_SOCKETS],
            scratch: leak(0u8, ECHO_BUFFER),
            stats: NetStats::default(),
        }
    }

    /// Forgets queued frames and connections: the peer started over.
    pub(crate) fn reset(&mut self) {
        self.dev.rx.clear();
        self.dev.tx.clear();
        for h in self.echo {
            self.sockets.get_mut::<tcp::Socket<'_>>(h).abort();
        }
    }

    /// Runs the stack and the echo service until nothing more happens now.
    pub(crate) fn poll(&mut self, now: Instant) {
        loop {
            let _ = self.iface.poll(now, &mut *self.dev, &mut self.sockets);
            if !self.serve_echo() {
                break;
            }
        }
    }

    /// Moves what each echo connection received to its send side; true if
    /// anything moved.
    fn serve_echo(&mut self) -> bool {
        let mut moved = false;
        for (i, h) in self.echo.into_iter().enumerate() {
            let s = self.sockets.get_mut::<tcp::Socket<'_>>(h);
            if s.is_active() && !self.was_active[i] {
                self.stats.connections += 1;
            }
            if !s.is_active() && self.was_active[i] {
                self.stats.closed += 1;
            }
            self.was_active[i] = s.is_active();
            moved |= echo(s, self.scratch);
        }
        moved
    }
}

/// A socket for an echo service. An echo answers in the small pieces it
/// receives: with Nagle's algorithm and delayed ACKs on both ends, each
/// piece would wait for the other end's delayed ACK.
fn echo_socket<'a>(rx: tcp::SocketBuffer<'a>, tx: tcp::SocketBuffer<'a>) -> tcp::Socket<'a> {
    let mut s = tcp::Socket::new(rx, tx);
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    s
}

/// One step of a TCP echo server socket: listens again once closed, moves
/// what it received to its send side, and closes when the client has
/// finished and has everything back. True if any byte moved.
fn echo(s: &mut tcp::Socket<'_>, scratch: &mut [u8]) -> bool {
    if !s.is_open() {
        let _ = s.listen(net::ECHO_PORT);
    }
    let mut moved = false;
    let room = s.send_capacity() - s.send_queue();
    if s.can_recv() && room > 0 {
        let take = room.min(scratch.len());
        if let Ok(n) = s.recv_slice(&mut scratch[..take]) {
            let _ = s.send_slice(&scratch[..n]);
            moved = n > 0;
        }
    }
    if s.state() == tcp::State::CloseWait && s.recv_queue() == 0 && s.send_queue() == 0 {
        s.close();
    }
    moved
}

/// The test data of [`TcpLoopback`]: byte `i` of a transfer.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// TCP echo through a smoltcp interface looped back on itself: the stack's
/// own throughput, with no link. Its buffers are taken once.
pub(crate) struct TcpLoopback {
    buffers: [&'static mut [u8]; 5],
}

impl TcpLoopback {
    pub(crate) fn new() -> Self {
        TcpLoopback {
            buffers: core::array::from_fn(|_| leak(0u8, ECHO_BUFFER)),
        }
    }

    /// Sends `bytes` through the echo service and checks them back; the
    /// clock ticks it took, or None if the bytes differ or it stalls.
    pub(crate) fn run(&mut self, bytes: usize, clock: impl Fn() -> (Instant, u64)) -> Option<u64> {
        let (mut dev, mut iface, me) = loopback(&clock);
        let [a, b, c, d, scratch] = &mut self.buffers;
        let server = echo_socket(
            tcp::SocketBuffer::new(&mut a[..]),
            tcp::SocketBuffer::new(&mut b[..]),
        );
        let client = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut c[..]),
            tcp::SocketBuffer::new(&mut d[..]),
        );
        let mut storage = [SocketStorage::EMPTY, SocketStorage::EMPTY];
        let mut sockets = SocketSet::new(&mut storage[..]);
        let server = sockets.add(server);
        let client = sockets.add(client);
        sockets
            .get_mut::<tcp::Socket<'_>>(server)
            .listen(net::ECHO_PORT)
            .ok()?;
        sockets
            .get_mut::<tcp::Socket<'_>>(client)
            .connect(iface.context(), (me, net::ECHO_PORT), 49152)
            .ok()?;
        let (mut sent, mut received) = (0usize, 0usize);
        let mut chunk = [0u8; 1024];
        let (_, start) = clock();
        for _ in 0..10_000_000u32 {
            let (now, _) = clock();
            let _ = iface.poll(now, &mut dev, &mut sockets);
            echo(sockets.get_mut::<tcp::Socket<'_>>(server), scratch);
            let s = sockets.get_mut::<tcp::Socket<'_>>(client);
            while sent < bytes && s.can_send() {
                let n = (bytes - sent).min(chunk.len());
                for (i, byte) in chunk[..n].iter_mut().enumerate() {
                    *byte = pattern(sent + i);
                }
                match s.send_slice(&chunk[..n]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => sent += k,
                }
            }
            while s.can_recv() {
                let n = s.recv_slice(&mut chunk).ok()?;
                if chunk[..n]
                    .iter()
                    .enumerate()
                    .any(|(i, byte)| *byte != pattern(received + i))
                {
                    return None;
                }
                received += n;
            }
            if received >= bytes {
                let (_, end) = clock();
                return Some(end.wrapping_sub(start));
            }
        }
        None
    }
}

/// A loopback device and an interface on it with the provider's address.
fn loopback(clock: &impl Fn() -> (Instant, u64)) -> (Frames, Interface, Ipv4Address) {
    let mut dev = Frames::new(Medium::Ip, true);
    let (now, _) = clock();
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now);
    let me = ipv4(net::Subnet::DEFAULT.provider());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(me), 8));
    });
    (dev, iface, me)
}

/// Times `rounds` ICMP echo round trips with a 0-byte payload through a
/// smoltcp interface looped back on itself: the stack's own cost, with no
/// link. Returns the clock ticks the rounds took, or None if one was lost.
pub(crate) fn loopback_echo(rounds: u32, clock: impl Fn() -> (Instant, u64)) -> Option<u64> {
    let (mut dev, mut iface, me) = loopback(&clock);
    let mut storage = [SocketStorage::EMPTY];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut rx_meta = [icmp::PacketMetadata::EMPTY; 2];
    let mut rx_bytes = [0u8; 128];
    let mut tx_meta = [icmp::PacketMetadata::EMPTY; 2];
    let mut tx_bytes = [0u8; 128];
    let socket = icmp::Socket::new(
        icmp::PacketBuffer::new(&mut rx_meta[..], &mut rx_bytes[..]),
        icmp::PacketBuffer::new(&mut tx_meta[..], &mut tx_bytes[..]),
    );
    let h = sockets.add(socket);
    const IDENT: u16 = 0x414d;
    sockets
        .get_mut::<icmp::Socket<'_>>(h)
        .bind(icmp::Endpoint::Ident(IDENT))
        .ok()?;
    let caps = dev.capabilities().checksum;
    let (_, start) = clock();
    for seq in 0..rounds {
        let request = Icmpv4Repr::EchoRequest {
            ident: IDENT,
            seq_no: seq as u16,
            data: &[],
        };
        {
            let s = sockets.get_mut::<icmp::Socket<'_>>(h);
            let buf = s.send(request.buffer_len(), IpAddress::Ipv4(me)).ok()?;
            request.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
        }
        let mut answered = false;
        for _ in 0..8 {
            let (now, _) = clock();
            let _ = iface.poll(now, &mut dev, &mut sockets);
            let s = sockets.get_mut::<icmp::Socket<'_>>(h);
            if let Ok((payload, _)) = s.recv() {
                let packet = Icmpv4Packet::new_checked(payload).ok()?;
                if let Ok(Icmpv4Repr::EchoReply { seq_no, .. }) = Icmpv4Repr::parse(&packet, &caps)
                {
                    answered = seq_no == seq as u16;
                    break;
                }
            }
        }
        if !answered {
            return None;
        }
    }
    let (_, end) = clock();
    Some(end.wrapping_sub(start))
}

/// The stack behind our virtio network device.
impl NetPort for NetStack {
    fn transmit(&mut self, frame: &[u8]) {
        let mut f = Frame::EMPTY;
        f.len = frame.len().min(net::MAX_FRAME);
        f.bytes[..f.len].copy_from_slice(&frame[..f.len]);
        if self.dev.rx.push_back(f).is_err() {
            self.stats.overruns += 1;
        } else {
            self.stats.frames_in += 1;
        }
    }

    fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        let frame = self.dev.tx.pop_front()?;
        let n = frame.len.min(out.len());
        out[..n].copy_from_slice(&frame.bytes[..n]);
        self.stats.frames_out += 1;
        Some(n)
    }

    fn ready(&self) -> bool {
        !self.dev.rx.is_full()
    }
}
