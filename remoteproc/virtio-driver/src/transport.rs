//! `virtio-drivers`' `Transport` as virtio-msg requests on a bus.

use crate::bus::MessageBus;
use core::cell::{Cell, RefCell};
use remoteproc::rpmsg::MAX_PAYLOAD;
use remoteproc::virtio_msg::{
    decode, encode, Config, DeviceInfo, Message, Transport as Msg, Vqueue, Words, MAX_CONFIG_DATA,
    VQUEUE_ENABLED,
};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Why the transport gave up on its device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// No answer within the patience (the device side is gone or stuck).
    Timeout,
    /// A request could not be sent (the link had no room for that long).
    Send,
    /// The answer was not one for the request (a confused device).
    Answer,
    /// The device is of a type `virtio-drivers` does not know.
    DeviceType(u32),
    /// The bus closed (its link was reset): the device is gone with the
    /// driver's state; start a new driver on a new bus.
    Closed,
}

/// One virtio device on the other side of a bus.
#[derive(Debug)]
pub struct MsgTransport<B> {
    bus: RefCell<B>,
    dev_num: u16,
    token: Cell<u16>,
    info: DeviceInfo,
    device_type: DeviceType,
    patience: Patience,
    kicks_wait: bool,
    error: Cell<Option<TransportError>>,
}

/// Polls of the bus a request waits for its answer by default.
pub const PATIENCE: u32 = 2_000_000;

/// How long a request waits for its answer: a number of bus polls, or,
/// given a clock, a time.
#[derive(Clone, Copy, Debug)]
struct Patience {
    polls: u32,
    clock: Option<(fn() -> u64, u64)>,
}

impl Patience {
    /// A wait starting now: `tick()` until it says to give up.
    fn start(self) -> Wait {
        Wait {
            left: self.polls,
            clock: self
                .clock
                .map(|(now, micros)| (now, now().saturating_add(micros))),
        }
    }
}

struct Wait {
    left: u32,
    clock: Option<(fn() -> u64, u64)>,
}

impl Wait {
    /// One more poll; `false` once the patience is spent.
    fn tick(&mut self) -> bool {
        match self.clock {
            Some((now, deadline)) => now() < deadline,
            None => {
                self.left = self.left.saturating_sub(1);
                self.left > 0
            }
        }
    }
}

/// How a transport waits: for answers, and after a kick.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    patience: Patience,
    kicks_wait: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            patience: Patience {
                polls: PATIENCE,
                clock: None,
            },
            kicks_wait: true,
        }
    }
}

impl Options {
    /// How many bus polls a request waits for its answer (default
    /// [`PATIENCE`]).
    pub fn patience(mut self, polls: u32) -> Self {
        self.patience = Patience { polls, clock: None };
        self
    }

    /// How long a request waits for its answer: `micros` microseconds of
    /// `now` (a clock in microseconds), however fast the bus is polled.
    pub fn patience_micros(mut self, micros: u64, now: fn() -> u64) -> Self {
        self.patience = Patience {
            polls: 0,
            clock: Some((now, micros)),
        };
        self
    }

    /// Whether a kick (`notify`) waits until the device says it served the
    /// queue (EVENT_USED), taking the device's messages meanwhile: the
    /// default. `virtio-drivers`' blocking calls (`add_notify_wait_pop`)
    /// spin on the used ring without touching the transport, so a partition
    /// whose own devices are served only where it reads the link must not
    /// spin before the device has done the work. A driver that only uses
    /// non-blocking calls may turn it off and save the round trip.
    pub fn kicks_wait(mut self, wait: bool) -> Self {
        self.kicks_wait = wait;
        self
    }
}

impl<B: MessageBus> MsgTransport<B> {
    /// The device `dev_num` on `bus`, identified (GET_DEVICE_INFO), with
    /// the default [`Options`].
    pub fn new(bus: B, dev_num: u16) -> Result<Self, TransportError> {
        Self::with(bus, dev_num, Options::default())
    }

    /// The device `dev_num` on `bus`, identified, waiting as `options` say
    /// (the identification too).
    pub fn with(bus: B, dev_num: u16, options: Options) -> Result<Self, TransportError> {
        let mut t = Self {
            bus: RefCell::new(bus),
            dev_num,
            token: Cell::new(0),
            info: DeviceInfo::default(),
            device_type: DeviceType::EntropySource,
            patience: options.patience,
            kicks_wait: options.kicks_wait,
            error: Cell::new(None),
        };
        let info = t.request(&Msg::GetDeviceInfo, |m| match m {
            Msg::DeviceInfo(i) => Some(*i),
            _ => None,
        });
        let info = info.ok_or(t.error.get().unwrap_or(TransportError::Answer))?;
        t.device_type = DeviceType::try_from(info.device_id)
            .map_err(|_| TransportError::DeviceType(info.device_id))?;
        t.info = info;
        Ok(t)
    }

    /// The device's identity.
    pub fn info(&self) -> DeviceInfo {
        self.info
    }

    /// What made the transport give up, if anything has.
    pub fn error(&self) -> Option<TransportError> {
        self.error.get()
    }

    /// Sends `request` and returns what `answer` makes of the response
    /// with the same token. `None` (and the error recorded) on a timeout or
    /// an answer `answer` refuses.
    fn request<R>(
        &self,
        request: &Msg<'_>,
        answer: impl FnOnce(&Msg<'_>) -> Option<R>,
    ) -> Option<R> {
        let token = self.token.get().wrapping_add(1);
        self.token.set(token);
        let mut out = [0u8; MAX_PAYLOAD];
        let n = encode(&Message::Transport(*request), self.dev_num, token, &mut out).ok()?;
        let mut bus = self.bus.borrow_mut();
        if let Err(e) = Self::send_patiently(&mut *bus, &out[..n], self.patience) {
            self.error.set(Some(e));
            return None;
        }
        let mut buf = [0u8; MAX_PAYLOAD];
        let mut wait = self.patience.start();
        while wait.tick() {
            if bus.closed() {
                self.error.set(Some(TransportError::Closed));
                return None;
            }
            let Some(len) = bus.receive(&mut buf) else {
                core::hint::spin_loop();
                continue;
            };
            // Events, and answers to requests given up on, are passed over.
            let Ok((h, Message::Transport(m))) = decode(&buf[..len]) else {
                continue;
            };
            if !h.is_response() || h.token != token || h.dev_num != self.dev_num {
                continue;
            }
            let r = answer(&m);
            if r.is_none() {
                self.error.set(Some(TransportError::Answer));
            }
            return r;
        }
        self.error.set(Some(TransportError::Timeout));
        None
    }

    /// Kicks queue `vq`: EVENT_AVAIL, then (if kicks wait) the device's
    /// EVENT_USED for it.
    fn kick(&self, vq: u16) {
        let mut out = [0u8; MAX_PAYLOAD];
        let event = Msg::EventAvail {
            vq: vq.into(),
            next: 0,
        };
        let Ok(n) = encode(&Message::Transport(event), self.dev_num, 0, &mut out) else {
            return;
        };
        let mut bus = self.bus.borrow_mut();
        if let Err(e) = Self::send_patiently(&mut *bus, &out[..n], self.patience) {
            self.error.set(Some(e));
            return;
        }
        let mut scratch = [0u8; MAX_PAYLOAD];
        if !self.kicks_wait {
            // What arrived meanwhile (the device's EVENT_USED for earlier
            // kicks) is taken now: the drivers poll their rings, and left
            // unread it would fill the link, on which answers travel.
            for _ in 0..64 {
                if bus.receive(&mut scratch).is_none() {
                    break;
                }
            }
            return;
        }
        let mut wait = self.patience.start();
        while wait.tick() {
            if bus.closed() {
                self.error.set(Some(TransportError::Closed));
                return;
            }
            let Some(len) = bus.receive(&mut scratch) else {
                core::hint::spin_loop();
                continue;
            };
            if let Ok((h, Message::Transport(Msg::EventUsed { vq: used }))) =
                decode(&scratch[..len])
            {
                if h.dev_num == self.dev_num && used == u32::from(vq) {
                    return;
                }
            }
        }
        self.error.set(Some(TransportError::Timeout));
    }

    fn send_patiently(
        bus: &mut B,
        message: &[u8],
        patience: Patience,
    ) -> Result<(), TransportError> {
        let mut scratch = [0u8; MAX_PAYLOAD];
        let mut wait = patience.start();
        while wait.tick() {
            if bus.closed() {
                return Err(TransportError::Closed);
            }
            if bus.send(message) {
                return Ok(());
            }
            // Taking what arrived gives buffers back to the peer.
            let _ = bus.receive(&mut scratch);
            core::hint::spin_loop();
        }
        Err(TransportError::Send)
    }

    fn features_block(&self, block: u32) -> u32 {
        self.request(&Msg::GetDeviceFeatures { block, count: 1 }, |m| match m {
            Msg::DeviceFeatures { block: b, features } if *b == block => features.get(0),
            _ => None,
        })
        .unwrap_or(0)
    }

    fn vqueue(&self, queue: u16) -> Option<Vqueue> {
        self.request(&Msg::GetVqueue(queue.into()), |m| match m {
            Msg::VqueueState(q) if q.index == u32::from(queue) => Some(*q),
            _ => None,
        })
    }
}

impl<B: MessageBus> Transport for MsgTransport<B> {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        u64::from(self.features_block(0)) | u64::from(self.features_block(1)) << 32
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(driver_features as u32).to_le_bytes());
        bytes[4..].copy_from_slice(&((driver_features >> 32) as u32).to_le_bytes());
        let features = Words::new(&bytes);
        let _ = self.request(&Msg::SetDriverFeatures { block: 0, features }, |m| {
            matches!(m, Msg::DriverFeaturesSet).then_some(())
        });
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.vqueue(queue).map_or(0, |q| q.max_size)
    }

    fn notify(&mut self, queue: u16) {
        self.kick(queue);
    }

    fn get_status(&self) -> DeviceStatus {
        let s = self.request(&Msg::GetDeviceStatus, |m| match m {
            Msg::DeviceStatus(s) => Some(*s),
            _ => None,
        });
        DeviceStatus::from_bits_truncate(s.unwrap_or(DeviceStatus::FAILED.bits()))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        let _ = self.request(&Msg::SetDeviceStatus(status.bits()), |m| match m {
            Msg::DeviceStatus(s) => Some(*s),
            _ => None,
        });
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Legacy only; virtio-msg queues carry their own addresses.
    }

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let q = Vqueue {
            index: queue.into(),
            max_size: 0,
            size,
            flags: VQUEUE_ENABLED,
            descriptors,
            driver: driver_area,
            device: device_area,
        };
        let _ = self.request(&Msg::SetVqueue(q), |m| {
            matches!(m, Msg::VqueueSet).then_some(())
        });
    }

    fn queue_unset(&mut self, queue: u16) {
        let _ = self.request(&Msg::ResetVqueue(queue.into()), |m| {
            matches!(m, Msg::VqueueReset).then_some(())
        });
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.vqueue(queue)
            .is_some_and(|q| q.flags & VQUEUE_ENABLED != 0 || q.size != 0)
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        // Used buffers are found by polling the rings; nothing to take here.
        InterruptStatus::empty()
    }

    fn read_config_generation(&self) -> u32 {
        self.request(&Msg::GetConfig { offset: 0, len: 0 }, |m| match m {
            Msg::ConfigRead(c) => Some(c.generation),
            _ => None,
        })
        .unwrap_or(0)
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let len = core::mem::size_of::<T>();
        if len > MAX_CONFIG_DATA {
            return Err(Error::ConfigSpaceTooSmall);
        }
        let offset = u32::try_from(offset).map_err(|_| Error::ConfigSpaceTooSmall)?;
        self.request(
            &Msg::GetConfig {
                offset,
                len: len as u32,
            },
            |m| match m {
                Msg::ConfigRead(c) if c.offset == offset && c.data.len() == len => {
                    T::read_from_bytes(c.data).ok()
                }
                _ => None,
            },
        )
        .ok_or(Error::ConfigSpaceTooSmall)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        let offset = u32::try_from(offset).map_err(|_| Error::ConfigSpaceTooSmall)?;
        let generation = self.read_config_generation();
        let data = value.as_bytes();
        self.request(
            &Msg::SetConfig(Config {
                generation,
                offset,
                data,
            }),
            |m| matches!(m, Msg::ConfigWritten(_)).then_some(()),
        )
        .ok_or(Error::ConfigSpaceTooSmall)
    }
}

/// The device numbers present on `bus` (GET_DEVICES for 0..64): bit `n`
/// set for device `n`.
pub fn devices<B: MessageBus>(mut bus: B, patience: u32) -> Result<u64, TransportError> {
    use remoteproc::virtio_msg::Bus;
    let mut out = [0u8; MAX_PAYLOAD];
    let request = Message::Bus(Bus::GetDevices {
        offset: 0,
        count: 64,
    });
    let n = encode(&request, 0, 0x7fff, &mut out).map_err(|_| TransportError::Answer)?;
    let patience = Patience {
        polls: patience,
        clock: None,
    };
    MsgTransport::<B>::send_patiently(&mut bus, &out[..n], patience)?;
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut wait = patience.start();
    while wait.tick() {
        if bus.closed() {
            return Err(TransportError::Closed);
        }
        let Some(len) = bus.receive(&mut buf) else {
            core::hint::spin_loop();
            continue;
        };
        if let Ok((
            h,
            Message::Bus(Bus::Devices {
                offset: 0, bitmap, ..
            }),
        )) = decode(&buf[..len])
        {
            if h.is_response() && h.token == 0x7fff {
                let mut map = 0u64;
                for (i, b) in bitmap.iter().enumerate().take(8) {
                    map |= u64::from(*b) << (8 * i);
                }
                return Ok(map);
            }
        }
    }
    Err(TransportError::Timeout)
}
