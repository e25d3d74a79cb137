//! One link's AVPS session, the same on every partition: the link opened
//! where its device tree places it, an endpoint per device, the provided
//! devices announced once the link is up, the peer's endpoints learnt from
//! its announcements and first messages, the console hello, and the reset
//! after a fatal error. The demo RTOS and the Linux bridge both run their
//! links through it; what they do with the bytes (a log, a pty, a TAP
//! interface, a network stack) stays theirs.

use super::{console, net};
use crate::link::{Endpoint, Incoming, Link, LinkConfig, LinkError, Role, RxMessage};
use crate::rpmsg::{ServiceEvent, MAX_PAYLOAD};
use shmem::{Doorbell, Window};

/// Which end of a device this partition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEnd {
    /// The device side (the manifest's `provider`).
    Provides,
    /// The driver side.
    Uses,
}

/// The AVPS devices a link carries, and this partition's end of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    /// The console (virtio ID 3).
    pub console: Option<DeviceEnd>,
    /// The network device (virtio ID 1).
    pub net: Option<DeviceEnd>,
    /// The entropy device (virtio ID 4), a real virtio device over
    /// virtio-msg on the link's [`crate::virtio::bus::EP`].
    pub rng: Option<DeviceEnd>,
}

impl Devices {
    /// From a device tree's `(kind, provider)` list for the link, seen by
    /// partition `me`. Kinds other than console and net are not carried
    /// here.
    pub fn of<'k>(me: &str, devices: impl IntoIterator<Item = (&'k str, &'k str)>) -> Self {
        let mut out = Self::default();
        for (kind, provider) in devices {
            let end = if provider == me {
                DeviceEnd::Provides
            } else {
                DeviceEnd::Uses
            };
            match kind {
                "console" => out.console = Some(end),
                "net" => out.net = Some(end),
                "rng" => out.rng = Some(end),
                _ => {}
            }
        }
        out
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

/// What [`Session::poll`] did beyond polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polled {
    /// Nothing new.
    Quiet,
    /// The link came up (again). Nothing is announced yet: the devices are
    /// announced at the next poll, so what this side does first (its own
    /// services, or a virtio request) meets no traffic from the peer.
    Up,
    /// The link failed with this error and was reset: drop whatever was
    /// under way on its devices (a frame half sent or half received).
    Reset(LinkError),
}

/// An AVPS device, as named in an announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The console.
    Console,
    /// The network device.
    Net,
}

/// What [`Session::receive`] found.
#[derive(Debug)]
pub enum Received<'a> {
    /// The peer announced a device this partition uses; its endpoint is
    /// known now (and the console's provider was said hello to).
    Announced(Device),
    /// A console line from the provider, copied into the buffer (this many
    /// bytes).
    Console(usize),
    /// A network device message, copied into the buffer (this many bytes):
    /// a frame or a part of one (`net::Reassembly`).
    Net(usize),
    /// A virtio-msg message for the link's virtio devices, copied into the
    /// buffer (this many bytes), from the peer's endpoint `src`.
    Virtio {
        /// Bytes in the buffer.
        len: usize,
        /// The sender's endpoint (where answers go).
        src: u32,
    },
    /// A message for another of this partition's endpoints: the caller's to
    /// read and release ([`Link::release`]).
    Message(RxMessage<'a>),
    /// An announcement of a service other than the AVPS devices.
    Service(ServiceEvent),
}

/// One link's AVPS session.
#[derive(Debug)]
pub struct Session<'w, D> {
    /// The link, for the partition's own endpoints and services.
    pub link: Link<'w, D, 256, 4>,
    devices: Devices,
    console: Endpoint,
    net: Option<Endpoint>,
    virtio: Option<Endpoint>,
    /// The peer's console endpoint, once it announced it (we use it) or said
    /// hello (we provide it).
    peer_console: Option<u32>,
    /// The peer's network endpoint, once known.
    peer_net: Option<u32>,
    /// `Polled::Up` was reported for the link being up now.
    up_reported: bool,
    /// Every provided device is announced.
    announced: bool,
    console_announced: bool,
    net_announced: bool,
    /// A console hello is owed to the provider: the ring had no room yet.
    hello_due: bool,
}

impl<'w, D: Doorbell> Session<'w, D> {
    /// Opens the link on `window` and an endpoint per device. The console's
    /// is always open: a provider learns the user's endpoint from its hello.
    pub fn open(
        window: Window<'w>,
        config: LinkConfig,
        doorbell: D,
        devices: Devices,
    ) -> Result<Self, LinkError> {
        let mut link = Link::new(window, config, doorbell)?;
        let console = link.create_endpoint(Some(console::EP))?;
        let net = match devices.net {
            Some(_) => Some(link.create_endpoint(Some(net::EP))?),
            None => None,
        };
        let virtio = match devices.rng {
            Some(_) => Some(link.create_endpoint(Some(crate::virtio::bus::EP))?),
            None => None,
        };
        Ok(Self {
            link,
            devices,
            console,
            net,
            virtio,
            peer_console: None,
            peer_net: None,
            up_reported: false,
            announced: false,
            console_announced: false,
            net_announced: false,
            hello_due: false,
        })
    }

    /// The devices and this partition's end of each.
    pub fn devices(&self) -> Devices {
        self.devices
    }

    /// The peer's console endpoint, once known.
    pub fn peer_console(&self) -> Option<u32> {
        self.peer_console
    }

    /// The peer's network endpoint, once known.
    pub fn peer_net(&self) -> Option<u32> {
        self.peer_net
    }

    /// Brings the link along: on a fatal error resets it and forgets the
    /// peer's endpoints; once it is up, announces the provided devices.
    pub fn poll(&mut self) -> Polled {
        if let Err(e) = self.link.poll() {
            // The peer restarted (a new bridge in Linux) or broke the rules:
            // start over with it, announcing our devices again once it is up.
            if e.is_fatal() {
                let _ = self.link.reset();
                self.up_reported = false;
                self.announced = false;
                self.console_announced = false;
                self.net_announced = false;
                self.hello_due = false;
                self.peer_console = None;
                self.peer_net = None;
                return Polled::Reset(e);
            }
        }
        self.say_hello();
        if self.announced || !self.link.is_up() {
            return Polled::Quiet;
        }
        if !self.up_reported {
            self.up_reported = true;
            return Polled::Up;
        }
        // An announcement that finds no free buffer (the peer's traffic
        // may fill the ring first) is tried again at the next poll: lost,
        // the peer would never learn of the device.
        let mut done = true;
        if self.devices.console == Some(DeviceEnd::Provides) && !self.console_announced {
            self.console_announced = self.link.announce(self.console, console::SERVICE).is_ok();
            done &= self.console_announced;
        }
        if let (Some(ep), Some(DeviceEnd::Provides)) = (self.net, self.devices.net) {
            if !self.net_announced {
                self.net_announced = self.link.announce(ep, net::SERVICE).is_ok();
                done &= self.net_announced;
            }
        }
        self.announced = done;
        Polled::Quiet
    }

    /// The next thing that arrived, with the devices' messages copied into
    /// `buf` and released. Hellos are taken here.
    pub fn receive(
        &mut self,
        buf: &mut [u8; MAX_PAYLOAD],
    ) -> Result<Option<Received<'w>>, LinkError> {
        loop {
            let message = match self.link.receive()? {
                None => return Ok(None),
                Some(Incoming::Service(s)) => match self.service(&s) {
                    Some(device) => return Ok(Some(Received::Announced(device))),
                    None => return Ok(Some(Received::Service(s))),
                },
                Some(Incoming::Message(m)) => m,
            };
            let (src, dst) = (message.src(), message.dst());
            if Some(dst) == self.virtio.map(|e| e.addr()) {
                let len = message.copy_to(buf).unwrap_or(0);
                self.link.release(message)?;
                return Ok(Some(Received::Virtio { len, src }));
            }
            if dst != console::EP && Some(dst) != self.net.map(|e| e.addr()) {
                return Ok(Some(Received::Message(message)));
            }
            let n = message.copy_to(buf).unwrap_or(0);
            self.link.release(message)?;
            if dst == console::EP {
                self.peer_console.get_or_insert(src);
                // An empty message is a hello: the user side says where to
                // send.
                if n > 0 {
                    return Ok(Some(Received::Console(n)));
                }
            } else {
                self.peer_net = Some(src);
                return Ok(Some(Received::Net(n)));
            }
        }
    }

    /// Records the peer's endpoint for a device it announced and we use.
    fn service(&mut self, s: &ServiceEvent) -> Option<Device> {
        if !s.created {
            return None;
        }
        if s.name() == console::SERVICE && self.devices.console == Some(DeviceEnd::Uses) {
            self.peer_console = Some(s.addr);
            // Say hello, so the provider learns where to send its lines
            // (again at each poll until a buffer takes it).
            self.hello_due = true;
            self.say_hello();
            return Some(Device::Console);
        }
        if s.name() == net::SERVICE && self.devices.net == Some(DeviceEnd::Uses) {
            self.peer_net = Some(s.addr);
            return Some(Device::Net);
        }
        None
    }

    /// Sends the console hello if one is due and a buffer is free.
    fn say_hello(&mut self) {
        if let (true, Some(dst)) = (self.hello_due, self.peer_console) {
            self.hello_due = !matches!(self.link.send(console::EP, dst, b""), Ok(true));
        }
    }

    /// Sends one console line (the provider's output) to the peer. `false`:
    /// the peer's endpoint is not known yet, or no buffer is free.
    pub fn send_console(&mut self, line: &[u8]) -> bool {
        match self.peer_console {
            Some(dst) => matches!(self.link.send(console::EP, dst, line), Ok(true)),
            None => false,
        }
    }

    /// Sends one network device message (see `net::Outgoing`). `false`: the
    /// peer's endpoint is not known yet, or no buffer is free.
    pub fn send_net(&mut self, message: &[u8]) -> bool {
        match self.peer_net {
            Some(dst) => matches!(self.link.send(net::EP, dst, message), Ok(true)),
            None => false,
        }
    }
}
