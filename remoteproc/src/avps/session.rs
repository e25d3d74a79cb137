//! One link's AVPS session, the same on every partition: the link opened
//! where its device tree places it, this partition's virtio devices served
//! on the link's virtio-msg bus, its drivers' messages carried to the
//! peer's bus, and the reset after a fatal error.
//!
//! Each partition that provides devices on a link announces one bus
//! ([`bus::SERVICE`] from [`bus::EP`]) and numbers its devices on it in the
//! fixed order of [`Kind`], over the kinds it provides: both ends derive a
//! device's number from the link's device list alone. A partition that uses
//! the peer's devices sends its drivers' requests from [`DRIVER_EP`] to the
//! peer's bus once that is announced ([`Received::PeerBus`]); the answers
//! come back to [`DRIVER_EP`].
//!
//! Requests for our devices are answered wherever the session reads the
//! link: in [`Session::receive`] (the partition's main loop) and in
//! [`Session::driver_receive`] (while one of our drivers waits for an
//! answer from the peer). Two partitions that each drive the other's
//! devices therefore never wait for each other.

use crate::link::{Endpoint, Incoming, Link, LinkConfig, LinkError, Role, RxMessage};
use crate::rpmsg::{ServiceEvent, MAX_PAYLOAD};
use crate::virtio::bus::{self, BusDevice, Served};
use shmem::{Doorbell, Window};

/// Where a partition's drivers send from; the peer's devices answer here.
pub const DRIVER_EP: u32 = 0x411;

/// Which end of a device this partition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEnd {
    /// The device side (the manifest's `provider`).
    Provides,
    /// The driver side.
    Uses,
}

/// The device kinds a link carries today, in the order a provider numbers
/// them on its bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Console (virtio ID 3).
    Console = 0,
    /// Network device (virtio ID 1).
    Net = 1,
    /// Block device (virtio ID 2).
    Block = 2,
    /// Entropy source (virtio ID 4).
    Rng = 3,
}

/// How many kinds there are.
pub const KINDS: usize = 4;

impl Kind {
    /// Every kind, in numbering order.
    pub const ALL: [Kind; KINDS] = [Kind::Console, Kind::Net, Kind::Block, Kind::Rng];

    /// The kind's name in a manifest and a device tree.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Console => "console",
            Kind::Net => "net",
            Kind::Block => "block",
            Kind::Rng => "rng",
        }
    }

    /// The kind named `name`, if it is one a link carries.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The AVPS devices a link carries, and this partition's end of each: a
/// kind may be carried both ways (each side providing one, as a block
/// device each side exports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    provides: [bool; KINDS],
    uses: [bool; KINDS],
}

impl Devices {
    /// From a device tree's `(kind, provider)` list for the link, seen by
    /// partition `me`. Kinds a link does not carry are left out.
    pub fn of<'k>(me: &str, devices: impl IntoIterator<Item = (&'k str, &'k str)>) -> Self {
        let mut out = Self::default();
        for (kind, provider) in devices {
            let end = if provider == me {
                DeviceEnd::Provides
            } else {
                DeviceEnd::Uses
            };
            if let Some(k) = Kind::from_name(kind) {
                out.set(k, end, true);
            }
        }
        out
    }

    fn ends(&self, end: DeviceEnd) -> &[bool; KINDS] {
        match end {
            DeviceEnd::Provides => &self.provides,
            DeviceEnd::Uses => &self.uses,
        }
    }

    /// Whether this partition is at `end` of a device of `kind`.
    pub fn has(&self, kind: Kind, end: DeviceEnd) -> bool {
        self.ends(end)[kind as usize]
    }

    /// Puts this partition at `end` of a device of `kind` (or, with `on`
    /// false, takes it away).
    pub fn set(&mut self, kind: Kind, end: DeviceEnd, on: bool) {
        match end {
            DeviceEnd::Provides => self.provides[kind as usize] = on,
            DeviceEnd::Uses => self.uses[kind as usize] = on,
        }
    }

    /// Whether this partition is at `end` of any device.
    pub fn any(&self, end: DeviceEnd) -> bool {
        self.ends(end).contains(&true)
    }

    /// The kinds at which this partition is at `end`, in numbering order.
    pub fn kinds(&self, end: DeviceEnd) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL.into_iter().filter(move |k| self.has(*k, end))
    }

    /// The number of the device of `kind` on its provider's bus: ours
    /// (`Provides`) or the peer's (`Uses`).
    pub fn dev_num(&self, kind: Kind, end: DeviceEnd) -> Option<u16> {
        if !self.has(kind, end) {
            return None;
        }
        Some(self.kinds(end).take_while(|k| *k != kind).count() as u16)
    }
}

/// Where a link lies, as the partition's device tree gives it: bus
/// (physical) addresses, and the window layout's offsets of the resource
/// table and of the epoch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// This partition is the link's host (owns the buffers).
    pub host: bool,
    /// Bus address of the window.
    pub window: u64,
    /// Bus addresses of vring 0 and vring 1.
    pub vrings: [u64; 2],
    /// Bus address of the first buffer.
    pub buffers: u64,
    /// Entries per vring.
    pub ring_entries: u32,
    /// Offset of the resource table in the window.
    pub table: usize,
    /// Offset of the epoch header in the window.
    pub header: usize,
}

impl Placement {
    /// The link's configuration: a resource-table link with our epoch
    /// header. `None` if an address lies below the window or the ring is
    /// larger than a queue can be.
    pub fn config(&self) -> Option<LinkConfig> {
        let off = |a: u64| usize::try_from(a.checked_sub(self.window)?).ok();
        let mut config = LinkConfig::resource_table(
            if self.host { Role::Host } else { Role::Remote },
            self.table,
            [off(self.vrings[0])?, off(self.vrings[1])?],
            off(self.buffers)?,
            u16::try_from(self.ring_entries).ok()?,
        );
        config.header = Some(self.header);
        Some(config)
    }
}

/// The virtio devices a partition provides on a link, and what takes the
/// partition's other messages while one of its drivers waits.
pub trait Provided {
    /// The devices, one slot per [`Kind`] (in `Kind` order), `None` where
    /// this partition provides no device of that kind.
    fn slots(&mut self) -> [Option<&mut dyn BusDevice>; KINDS];

    /// A message for another of the partition's endpoints arrived while a
    /// driver waits: `true` if it was taken here (it is released then).
    /// Otherwise it waits, unreleased, for [`Session::receive`]; but only a
    /// few can wait (at most half the ring, so the peer keeps buffers for
    /// its answers), and while that many do, the driver's wait reads no
    /// further and runs out. A partition whose endpoints see steady
    /// traffic while drivers wait takes it here.
    fn take(&mut self, message: &RxMessage<'_>) -> bool {
        let _ = message;
        false
    }
}

/// A partition that provides no device on a link.
#[derive(Debug, Default)]
pub struct NoDevices;

impl Provided for NoDevices {
    fn slots(&mut self) -> [Option<&mut dyn BusDevice>; KINDS] {
        [None, None, None, None]
    }
}

/// What [`Session::poll`] did beyond polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polled {
    /// Nothing new.
    Quiet,
    /// The link came up (again). The bus is announced at the next poll, so
    /// what this side does first meets no traffic from the peer.
    Up,
    /// The link failed with this error and was reset: the provided devices
    /// are back in reset state and the drivers' buses closed.
    Reset(LinkError),
}

/// What [`Session::receive`] found.
#[derive(Debug)]
pub enum Received<'a> {
    /// The peer announced its virtio-msg bus: drivers for its devices can
    /// start now.
    PeerBus,
    /// A message for another of this partition's endpoints: the caller's to
    /// read and release ([`Link::release`]).
    Message(RxMessage<'a>),
    /// An announcement of a service other than the virtio-msg bus.
    Service(ServiceEvent),
}

/// What the session did that no caller saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages to our bus that were not virtio-msg for a device we have.
    pub refused: u64,
    /// Answers to the peer's requests dropped: the link had no room for
    /// that long.
    pub unanswered: u64,
    /// Messages to our drivers' endpoint while no driver waited (events,
    /// answers to requests given up on).
    pub late: u64,
}

/// What waits for the main loop while a driver reads the link.
#[derive(Debug)]
enum Held<'w> {
    Message(RxMessage<'w>),
    Service(ServiceEvent),
}

/// At most this many messages wait unreleased while a driver reads the
/// link (and at most half the ring, so the peer keeps buffers for its
/// answers).
const BACKLOG: usize = 32;

/// Polls an answer to the peer waits for room at most.
pub const ANSWER_PATIENCE: u32 = 100_000;
/// Polls an event (EVENT_USED) waits for room at most: a driver that polls
/// its rings does not need it, and one that waits for it is reading.
pub const EVENT_PATIENCE: u32 = 64;

/// One link's AVPS session.
#[derive(Debug)]
pub struct Session<'w, D, P> {
    /// The link, for the partition's own endpoints and services.
    pub link: Link<'w, D, 256, 4>,
    /// The devices this partition provides on the link.
    pub provided: P,
    devices: Devices,
    bus_ep: Option<Endpoint>,
    driver_ep: Option<Endpoint>,
    /// The peer's bus endpoint, once announced.
    peer_bus: Option<u32>,
    /// `Polled::Up` was reported for the link being up now.
    up_reported: bool,
    /// Our bus is announced.
    announced: bool,
    /// A fatal error seen while a driver read the link: the next poll
    /// resets.
    failed: Option<LinkError>,
    /// Resets so far (a driver's bus belongs to one epoch).
    resets: u32,
    backlog: [Option<Held<'w>>; BACKLOG],
    backlog_head: usize,
    backlog_len: usize,
    backlog_limit: usize,
    stats: SessionStats,
}

impl<'w, D: Doorbell, P: Provided> Session<'w, D, P> {
    /// Opens the link on `window`, our bus endpoint if we provide a device
    /// and our drivers' if we use one.
    pub fn open(
        window: Window<'w>,
        config: LinkConfig,
        doorbell: D,
        devices: Devices,
        provided: P,
    ) -> Result<Self, LinkError> {
        let backlog_limit = BACKLOG.min(usize::from(config.queue_size) / 2).max(1);
        let mut link = Link::new(window, config, doorbell)?;
        let bus_ep = match devices.any(DeviceEnd::Provides) {
            true => Some(link.create_endpoint(Some(bus::EP))?),
            false => None,
        };
        let driver_ep = match devices.any(DeviceEnd::Uses) {
            true => Some(link.create_endpoint(Some(DRIVER_EP))?),
            false => None,
        };
        Ok(Self {
            link,
            provided,
            devices,
            bus_ep,
            driver_ep,
            peer_bus: None,
            up_reported: false,
            announced: false,
            failed: None,
            resets: 0,
            backlog: Default::default(),
            backlog_head: 0,
            backlog_len: 0,
            backlog_limit,
            stats: SessionStats::default(),
        })
    }

    /// The devices and this partition's end of each.
    pub fn devices(&self) -> Devices {
        self.devices
    }

    /// Whether the peer's bus is announced (our drivers can run).
    pub fn peer_bus(&self) -> bool {
        self.peer_bus.is_some() && self.failed.is_none()
    }

    /// Resets so far.
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// What the session did that no caller saw.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Brings the link along: on a fatal error resets it, our devices and
    /// what we knew of the peer; once it is up, announces our bus and serves
    /// the queues of our devices that have buffers waiting.
    pub fn poll(&mut self) -> Polled {
        let failed = match self.failed.take() {
            Some(e) => Err(e),
            None => self.link.poll(),
        };
        if let Err(e) = failed {
            // The peer restarted (a new bridge in Linux) or broke the rules:
            // start over with it, announcing our bus again once it is up.
            if e.is_fatal() {
                let _ = self.link.reset();
                self.forget();
                for d in self.provided.slots().into_iter().flatten() {
                    d.reset();
                }
                return Polled::Reset(e);
            }
        }
        if !self.link.is_up() {
            return Polled::Quiet;
        }
        if !self.up_reported {
            self.up_reported = true;
            return Polled::Up;
        }
        if let (Some(ep), false) = (self.bus_ep, self.announced) {
            // Tried again at the next poll if no buffer is free: lost, the
            // peer would never learn of our devices.
            self.announced = self.link.announce(ep, bus::SERVICE).is_ok();
        }
        for d in self.provided.slots().into_iter().flatten() {
            d.poll();
        }
        Polled::Quiet
    }

    /// Forgets the peer and what waits: after a reset its buffers are void.
    fn forget(&mut self) {
        self.up_reported = false;
        self.announced = false;
        self.peer_bus = None;
        self.resets = self.resets.wrapping_add(1);
        self.backlog = Default::default();
        self.backlog_head = 0;
        self.backlog_len = 0;
    }

    /// The next thing that arrived for the partition's main loop. Requests
    /// for our devices are answered on the way.
    pub fn receive(&mut self) -> Result<Option<Received<'w>>, LinkError> {
        if let Some(held) = self.unhold() {
            return Ok(Some(match held {
                Held::Message(m) => Received::Message(m),
                Held::Service(s) => Received::Service(s),
            }));
        }
        loop {
            match self.link.receive()? {
                None => return Ok(None),
                Some(Incoming::Service(s)) => {
                    if self.peer_bus_announced(&s) {
                        return Ok(Some(Received::PeerBus));
                    }
                    return Ok(Some(Received::Service(s)));
                }
                Some(Incoming::Message(m)) => {
                    if self.is_for_bus(&m) {
                        self.serve_bus(m)?;
                    } else if self.is_for_drivers(&m) {
                        self.stats.late += 1;
                        self.link.release(m)?;
                    } else {
                        return Ok(Some(Received::Message(m)));
                    }
                }
            }
        }
    }

    /// Sends one driver message to the peer's bus; `false` if it cannot go
    /// now (no room, or no bus announced).
    pub fn driver_send(&mut self, message: &[u8]) -> bool {
        match (self.driver_ep, self.peer_bus, self.failed) {
            (Some(ep), Some(dst), None) => {
                matches!(self.link.send(ep.addr(), dst, message), Ok(true))
            }
            _ => false,
        }
    }

    /// The next message for our drivers, copied into `buf`: its length. On
    /// the way, requests for our devices are answered and everything else
    /// is held for [`Session::receive`]. `None` when nothing for the
    /// drivers came, when what waits would take too many of the peer's
    /// buffers, or when the link failed.
    pub fn driver_receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.failed.is_some() {
            return None;
        }
        if let Err(e) = self.link.poll() {
            self.fail(e);
            return None;
        }
        while self.backlog_len < self.backlog_limit {
            let incoming = match self.link.receive() {
                Ok(Some(i)) => i,
                Ok(None) => return None,
                Err(e) => {
                    self.fail(e);
                    return None;
                }
            };
            let m = match incoming {
                Incoming::Service(s) => {
                    if !self.peer_bus_announced(&s) {
                        self.hold(Held::Service(s));
                    }
                    continue;
                }
                Incoming::Message(m) => m,
            };
            let done = if self.is_for_drivers(&m) {
                let n = m.copy_to(buf).ok();
                self.link.release(m).map(|()| n)
            } else if self.is_for_bus(&m) {
                self.serve_bus(m).map(|()| None)
            } else if self.provided.take(&m) {
                self.link.release(m).map(|()| None)
            } else {
                self.hold(Held::Message(m));
                Ok(None)
            };
            match done {
                Ok(Some(n)) => return Some(n),
                Ok(None) => {}
                Err(e) => {
                    self.fail(e);
                    return None;
                }
            }
        }
        // Held messages fill the peer's ring: answer what waits for our
        // devices at least (without reading further).
        None
    }

    /// Answers what waits for our devices without reading anything else:
    /// for a partition whose drivers wait on another link.
    pub fn serve_bus_only(&mut self) {
        if self.failed.is_some() || self.bus_ep.is_none() {
            return;
        }
        if let Err(e) = self.link.poll() {
            self.fail(e);
            return;
        }
        while self.backlog_len < self.backlog_limit {
            match self.link.receive() {
                Ok(Some(Incoming::Message(m))) if self.is_for_bus(&m) => {
                    if let Err(e) = self.serve_bus(m) {
                        self.fail(e);
                        return;
                    }
                }
                Ok(Some(Incoming::Message(m))) if self.provided.take(&m) => {
                    if let Err(e) = self.link.release(m) {
                        self.fail(e);
                        return;
                    }
                }
                Ok(Some(Incoming::Message(m))) => self.hold(Held::Message(m)),
                Ok(Some(Incoming::Service(s))) => {
                    if !self.peer_bus_announced(&s) {
                        self.hold(Held::Service(s));
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.fail(e);
                    return;
                }
            }
        }
    }

    fn fail(&mut self, e: LinkError) {
        if e.is_fatal() {
            self.failed = Some(e);
        }
    }

    fn is_for_bus(&self, m: &RxMessage<'_>) -> bool {
        self.bus_ep.is_some_and(|ep| ep.addr() == m.dst())
    }

    fn is_for_drivers(&self, m: &RxMessage<'_>) -> bool {
        self.driver_ep.is_some_and(|ep| ep.addr() == m.dst())
    }

    /// Records the peer's bus if `s` announces it (and we use a device).
    fn peer_bus_announced(&mut self, s: &ServiceEvent) -> bool {
        if s.name() != bus::SERVICE || self.driver_ep.is_none() {
            return false;
        }
        self.peer_bus = s.created.then_some(s.addr);
        s.created
    }

    fn hold(&mut self, held: Held<'w>) {
        let at = (self.backlog_head + self.backlog_len) % BACKLOG;
        self.backlog[at] = Some(held);
        self.backlog_len += 1;
    }

    fn unhold(&mut self) -> Option<Held<'w>> {
        if self.backlog_len == 0 {
            return None;
        }
        let held = self.backlog[self.backlog_head].take();
        self.backlog_head = (self.backlog_head + 1) % BACKLOG;
        self.backlog_len -= 1;
        held
    }

    /// Answers one request for our devices (and releases it).
    fn serve_bus(&mut self, m: RxMessage<'w>) -> Result<(), LinkError> {
        let mut bytes = [0u8; MAX_PAYLOAD];
        let len = m.copy_to(&mut bytes).unwrap_or(0);
        let src = m.src();
        self.link.release(m)?;
        let mut out = [0u8; MAX_PAYLOAD];
        let mut slots = self.provided.slots();
        let (len, patience) = match bus::serve(&mut slots, &bytes[..len], &mut out) {
            Served::Reply(n) => (n, ANSWER_PATIENCE),
            Served::Event(n) => (n, EVENT_PATIENCE),
            Served::Nothing => return Ok(()),
            Served::Refused => {
                self.stats.refused += 1;
                return Ok(());
            }
        };
        let from = bus::EP;
        for _ in 0..patience {
            if self.link.send(from, src, &out[..len])? {
                return Ok(());
            }
            // Taking back what the peer consumed frees room.
            self.link.poll()?;
            core::hint::spin_loop();
        }
        self.stats.unanswered += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_number_a_providers_devices_alike_from_the_same_list() {
        let list = [
            ("rng", "linux"),
            ("block", "rtos"),
            ("console", "rtos"),
            ("block", "linux"),
            ("net", "rtos"),
            ("gpio", "rtos"),
        ];
        let rtos = Devices::of("rtos", list);
        let linux = Devices::of("linux", list);
        for k in Kind::ALL {
            assert_eq!(
                rtos.dev_num(k, DeviceEnd::Provides),
                linux.dev_num(k, DeviceEnd::Uses)
            );
            assert_eq!(
                rtos.dev_num(k, DeviceEnd::Uses),
                linux.dev_num(k, DeviceEnd::Provides)
            );
        }
        // In kind order, over the provider's own: console, net, block ...
        let ours = |k| rtos.dev_num(k, DeviceEnd::Provides);
        assert_eq!(
            [
                ours(Kind::Console),
                ours(Kind::Net),
                ours(Kind::Block),
                ours(Kind::Rng)
            ],
            [Some(0), Some(1), Some(2), None]
        );
        // ... and block, rng on the other side's bus.
        let theirs = |k| rtos.dev_num(k, DeviceEnd::Uses);
        assert_eq!([theirs(Kind::Block), theirs(Kind::Rng)], [Some(0), Some(1)]);
        assert!(!rtos.has(Kind::Console, DeviceEnd::Uses));
        assert_eq!(Kind::from_name("gpio"), None);
    }
}
