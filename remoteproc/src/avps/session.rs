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
    /// The link came up (again) and the provided devices were announced:
    /// announce your own services now.
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
    /// The peer's console endpoint, once it announced it (we use it) or said
    /// hello (we provide it).
    peer_console: Option<u32>,
    /// The peer's network endpoint, once known.
    peer_net: Option<u32>,
    announced: bool,
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
        Ok(Self {
            link,
            devices,
            console,
            net,
            peer_console: None,
            peer_net: None,
            announced: false,
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
                self.announced = false;
                self.peer_console = None;
                self.peer_net = None;
                return Polled::Reset(e);
            }
        }
        if self.announced || !self.link.is_up() {
            return Polled::Quiet;
        }
        self.announced = true;
        if self.devices.console == Some(DeviceEnd::Provides) {
            let _ = self.link.announce(self.console, console::SERVICE);
        }
        if let (Some(ep), Some(DeviceEnd::Provides)) = (self.net, self.devices.net) {
            let _ = self.link.announce(ep, net::SERVICE);
        }
        Polled::Up
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
            // Say hello, so the provider learns where to send its lines.
            let _ = self.link.send(console::EP, s.addr, b"");
            return Some(Device::Console);
        }
        if s.name() == net::SERVICE && self.devices.net == Some(DeviceEnd::Uses) {
            self.peer_net = Some(s.addr);
            return Some(Device::Net);
        }
        None
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
