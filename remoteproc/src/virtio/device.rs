//! The device side of a virtio device over virtio-msg: status and feature
//! negotiation, config space, virtqueue set-up from SET_VQUEUE, and the
//! kick (EVENT_AVAIL) handed to the device model with its queue. No
//! allocation; every value from the driver is checked.

use super::{feature, status};
use crate::virtio_msg::{
    Config, DeviceInfo, Message, Transport, Vqueue, Words, MAX_CONFIG_DATA, VQUEUE_ENABLED,
};
use shmem::virtqueue::{Notification, RingLayout};
use shmem::{DeviceQueue, RingError, Window};

/// Why a device model stopped serving a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelError {
    /// The driver broke the ring protocol or gave a buffer outside the
    /// window: the device needs a reset.
    Ring(RingError),
    /// A request the model cannot take (a buffer too short for its header,
    /// a device-readable part where a writable one belongs).
    Request,
}

impl From<RingError> for ModelError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

impl From<shmem::WindowError> for ModelError {
    fn from(e: shmem::WindowError) -> Self {
        Self::Ring(RingError::Window(e))
    }
}

/// What one kind of device does: its identity, features and config space,
/// and the work on its queues.
pub trait DeviceModel {
    /// Virtio device id ([`super::device_id`]).
    fn device_id(&self) -> u32;
    /// Device features besides `VIRTIO_F_VERSION_1` (which every device
    /// offers).
    fn features(&self) -> u64;
    /// Number of virtqueues.
    fn queues(&self) -> u16;
    /// Largest queue size the device takes.
    fn max_queue_size(&self) -> u16 {
        256
    }
    /// Config space size in bytes.
    fn config_size(&self) -> u32 {
        0
    }
    /// Reads config space bytes from `offset` into `out` (already checked
    /// against [`DeviceModel::config_size`]).
    fn read_config(&self, _offset: u32, out: &mut [u8]) {
        out.fill(0);
    }
    /// Writes config space bytes (checked as for reading).
    fn write_config(&mut self, _offset: u32, _data: &[u8]) {}
    /// The driver accepted `features`, or reset the device (0).
    fn negotiated(&mut self, _features: u64) {}
    /// Serves what is available on queue `index`; returns whether any chain
    /// was used (the driver may want to know).
    fn serve(
        &mut self,
        index: u16,
        queue: &mut DeviceQueue<'_>,
        window: &Window<'_>,
    ) -> Result<bool, ModelError>;
}

/// What the device sends after a message: an answer to the request
/// (encode it against the request's header), an event (encode it on its
/// own), or nothing.
#[derive(Debug)]
pub enum Reply<'c> {
    /// The answer to a request.
    Answer(Message<'c>),
    /// An event: EVENT_USED after a kick, once the queue is served.
    Event(Message<'c>),
    /// Nothing to send.
    Nothing,
}

/// Serves every chain available on `queue`, at most a queue's worth: `each`
/// does the work of one and says how many bytes it wrote, and the chain goes
/// back used. Returns whether any chain was used.
pub fn serve_each(
    queue: &mut DeviceQueue<'_>,
    mut each: impl FnMut(&shmem::Chain) -> Result<u32, ModelError>,
) -> Result<bool, ModelError> {
    let mut used = false;
    for _ in 0..queue.layout().size {
        let Some(chain) = queue.pop_available()? else {
            break;
        };
        let written = each(&chain)?;
        queue.push_used(chain, written)?;
        used = true;
    }
    Ok(used)
}

/// Queues a device may have.
pub const MAX_QUEUES: usize = 4;

/// One virtio device over virtio-msg, on the device side.
#[derive(Debug)]
pub struct VirtioDevice<'w, M> {
    model: M,
    window: Window<'w>,
    status: u32,
    driver_features: u64,
    generation: u32,
    queues: [Option<(Vqueue, DeviceQueue<'w>)>; MAX_QUEUES],
    /// The last error that stopped the device, until the driver resets it.
    error: Option<ModelError>,
}

impl<'w, M: DeviceModel> VirtioDevice<'w, M> {
    /// A device in reset state, its queues to be placed in `window`.
    pub fn new(model: M, window: Window<'w>) -> Self {
        Self {
            model,
            window,
            status: 0,
            driver_features: 0,
            generation: 0,
            queues: Default::default(),
            error: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The device's model, taken back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The model, mutably.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// The device status.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// What stopped the device, if something did.
    pub fn error(&self) -> Option<ModelError> {
        self.error
    }

    fn device_features(&self) -> u64 {
        self.model.features() | feature::VERSION_1
    }

    /// Back to reset state (status 0, no queues), as a driver's status
    /// write of 0 does, or the link's reset when the driver is gone.
    pub fn reset(&mut self) {
        self.status = 0;
        self.driver_features = 0;
        self.queues = Default::default();
        self.error = None;
        self.model.negotiated(0);
    }

    /// Stops the device after a driver's fault: `DEVICE_NEEDS_RESET`, and
    /// nothing served until the driver resets it.
    fn fail(&mut self, e: ModelError) {
        self.error = Some(e);
        self.status |= status::NEEDS_RESET;
    }

    /// Answers one transport request (or takes one event). `config` and
    /// `features` are scratch room for the answer's variable part.
    pub fn handle<'c>(
        &mut self,
        message: &Transport<'_>,
        config: &'c mut [u8; MAX_CONFIG_DATA],
        features: &'c mut [u8; 8],
    ) -> Reply<'c> {
        let answer = match *message {
            Transport::GetDeviceInfo => Transport::DeviceInfo(DeviceInfo {
                device_id: self.model.device_id(),
                vendor_id: 0,
                uuid: [0; 16],
                feature_blocks: 2,
                config_size: self.model.config_size(),
                max_virtqueues: u32::from(self.model.queues()),
                admin_vq_start: 0,
                admin_vq_count: 0,
            }),
            Transport::GetDeviceFeatures { block, count } => {
                let f = self.device_features();
                let words = [f as u32, (f >> 32) as u32];
                // Blocks past ours are zero; at most the two we have.
                let mut n = 0;
                for i in 0..count.min(2) as usize {
                    let w = usize::try_from(block)
                        .ok()
                        .and_then(|b| b.checked_add(i))
                        .and_then(|b| words.get(b).copied())
                        .unwrap_or(0);
                    features[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
                    n += 1;
                }
                Transport::DeviceFeatures {
                    block,
                    features: Words::new(&features[..4 * n]),
                }
            }
            Transport::SetDriverFeatures { block, features } => {
                // Only before FEATURES_OK: then they are fixed.
                if self.status & status::FEATURES_OK == 0 {
                    for (i, w) in features.iter().enumerate() {
                        let shift = match usize::try_from(block).ok().and_then(|b| b.checked_add(i))
                        {
                            Some(0) => 0,
                            Some(1) => 32,
                            _ => continue,
                        };
                        self.driver_features = (self.driver_features & !(0xffff_ffff << shift))
                            | (u64::from(w) << shift);
                    }
                }
                Transport::DriverFeaturesSet
            }
            Transport::GetConfig { offset, len } => {
                let data = self.config_range(offset, len, config);
                Transport::ConfigRead(Config {
                    generation: self.generation,
                    offset,
                    data,
                })
            }
            Transport::SetConfig(c) => {
                let size = self.model.config_size();
                let fits = u32::try_from(c.data.len())
                    .ok()
                    .and_then(|l| c.offset.checked_add(l))
                    .is_some_and(|end| end <= size);
                if fits && c.generation == self.generation {
                    self.model.write_config(c.offset, c.data);
                }
                let len = c.data.len() as u32;
                let data = self.config_range(c.offset, len, config);
                Transport::ConfigWritten(Config {
                    generation: self.generation,
                    offset: c.offset,
                    data,
                })
            }
            Transport::GetDeviceStatus => Transport::DeviceStatus(self.status),
            Transport::SetDeviceStatus(s) => {
                self.set_status(s);
                Transport::DeviceStatus(self.status)
            }
            Transport::GetVqueue(index) => {
                let mut q = Vqueue {
                    index,
                    ..Vqueue::default()
                };
                if index < u32::from(self.model.queues()) {
                    q.max_size = u32::from(self.model.max_queue_size());
                    if let Some(Some((set, _))) = self.queues.get(index as usize) {
                        q = Vqueue {
                            max_size: q.max_size,
                            ..*set
                        };
                    }
                }
                Transport::VqueueState(q)
            }
            Transport::SetVqueue(q) => {
                self.set_vqueue(q);
                Transport::VqueueSet
            }
            Transport::ResetVqueue(index) => {
                if let Some(slot) = self.queues.get_mut(index as usize) {
                    *slot = None;
                }
                Transport::VqueueReset
            }
            Transport::GetShm(id) => Transport::Shm {
                id,
                len: 0,
                addr: 0,
            },
            Transport::EventAvail { vq, .. } => {
                // Answered whether or not a buffer was used: a driver that
                // waits for the device to have seen its kick (it both drives
                // and serves devices over one link, and virtio-drivers'
                // blocking calls spin on the used ring without reading the
                // link) learns here that the device has served the queue.
                self.serve_queue(vq as usize);
                return Reply::Event(Message::Transport(Transport::EventUsed { vq }));
            }
            // Answers and device-to-driver events have no business here.
            _ => return Reply::Nothing,
        };
        Reply::Answer(Message::Transport(answer))
    }

    /// Config bytes `[offset, offset + len)`, clipped to the config space
    /// and to what one message carries.
    fn config_range<'c>(
        &self,
        offset: u32,
        len: u32,
        out: &'c mut [u8; MAX_CONFIG_DATA],
    ) -> &'c [u8] {
        let size = self.model.config_size();
        let start = offset.min(size);
        let n = len.min(size - start).min(MAX_CONFIG_DATA as u32) as usize;
        let data = &mut out[..n];
        self.model.read_config(start, data);
        data
    }

    fn set_status(&mut self, s: u32) {
        if s == 0 {
            self.reset();
            return;
        }
        let mut s = s & !status::NEEDS_RESET;
        if s & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0 {
            // Features the device does not offer, or a driver without
            // VERSION_1: refused (FEATURES_OK stays clear, as virtio says).
            let offered = self.device_features();
            let f = self.driver_features;
            if f & !offered != 0 || f & feature::VERSION_1 == 0 {
                s &= !status::FEATURES_OK;
            } else {
                self.model.negotiated(f);
            }
        }
        self.status = s | (self.status & status::NEEDS_RESET);
    }

    /// Places queue `q.index` from the driver's bus addresses, each part
    /// checked inside the window; a bad one fails the device.
    fn set_vqueue(&mut self, q: Vqueue) {
        let index = q.index as usize;
        if index >= usize::from(self.model.queues()).min(MAX_QUEUES)
            || q.size == 0
            || q.size > u32::from(self.model.max_queue_size())
        {
            self.fail(ModelError::Request);
            return;
        }
        let size = q.size as u16;
        let w = &self.window;
        let at = |addr: u64, len: usize| w.offset_of(addr, len as u64);
        let layout = match (
            at(q.descriptors, RingLayout::desc_bytes(size)),
            at(q.driver, RingLayout::avail_bytes(size)),
            at(q.device, RingLayout::used_bytes(size)),
        ) {
            (Ok(d), Ok(a), Ok(u)) => RingLayout::split(w, size, d, a, u),
            _ => Err(RingError::Layout),
        };
        let queue = layout.and_then(|l| DeviceQueue::attach(*w, l, Notification::default()));
        match queue {
            Ok(queue) => {
                self.queues[index] = Some((
                    Vqueue {
                        flags: VQUEUE_ENABLED,
                        ..q
                    },
                    queue,
                ))
            }
            Err(e) => self.fail(ModelError::Ring(e)),
        }
    }

    /// Serves queue `index` if the device runs; returns whether a chain was
    /// used.
    fn serve_queue(&mut self, index: usize) -> bool {
        if self.status & status::DRIVER_OK == 0 || self.status & status::NEEDS_RESET != 0 {
            return false;
        }
        let Some(Some((_, queue))) = self.queues.get_mut(index) else {
            return false;
        };
        match self.model.serve(index as u16, queue, &self.window) {
            Ok(used) => used,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Serves every queue that has buffers waiting (for a device that polls
    /// rather than waits for kicks); returns whether a chain was used.
    pub fn poll(&mut self) -> bool {
        let mut used = false;
        for i in 0..MAX_QUEUES {
            used |= self.serve_queue(i);
        }
        used
    }
}
