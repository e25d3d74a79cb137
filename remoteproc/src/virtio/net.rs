//! The network device (virtio 1.x §5.1): Ethernet frames, each after a
//! 12-byte `virtio_net_hdr_v1` with no offload negotiated. Frames the
//! driver transmits (queue 1) go to a [`NetPort`]; the port's frames are
//! written into the buffers the driver posts on the receive queue (0).

use super::chain::ChainIo;
use super::device::{DeviceModel, ModelError};
use super::device_id;
use crate::avps::net::MAX_FRAME;
use shmem::{DeviceQueue, Window};

/// Queue indexes.
pub mod queue {
    /// Device to driver.
    pub const RECEIVE: u16 = 0;
    /// Driver to device.
    pub const TRANSMIT: u16 = 1;
}

/// Feature bits (virtio 1.x §5.1.3).
pub mod feature {
    /// `VIRTIO_NET_F_MTU`.
    pub const MTU: u64 = 1 << 3;
    /// `VIRTIO_NET_F_MAC`.
    pub const MAC: u64 = 1 << 5;
    /// `VIRTIO_NET_F_STATUS`.
    pub const STATUS: u64 = 1 << 16;
}

/// `virtio_net_hdr_v1` size.
pub const HEADER_LEN: usize = 12;
/// Config status: the link is up.
const LINK_UP: u16 = 1;

/// Where a network device's frames go and come from.
pub trait NetPort {
    /// The driver sent `frame` (Ethernet header onwards).
    fn transmit(&mut self, frame: &[u8]);
    /// A frame for the driver, into `out`; its length (`None`: none now).
    fn receive(&mut self, out: &mut [u8]) -> Option<usize>;
    /// Whether the port takes a transmitted frame now. While it does not,
    /// the driver's frames wait in its transmit queue (back-pressure).
    fn ready(&self) -> bool {
        true
    }
}

/// What a network device did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames from the driver.
    pub transmitted: u64,
    /// Frames into the driver's buffers.
    pub received: u64,
    /// Frames dropped: from the driver too long or too short, or a receive
    /// buffer too small for the frame.
    pub dropped: u64,
}

/// A network device.
#[derive(Debug)]
pub struct Net<P> {
    port: P,
    mac: [u8; 6],
    mtu: u16,
    /// A frame taken from the port, waiting for a receive buffer.
    pending: [u8; MAX_FRAME],
    pending_len: Option<usize>,
    /// Counters.
    pub stats: NetStats,
}

impl<P: NetPort> Net<P> {
    /// A device with address `mac` and IP MTU `mtu` on `port`.
    pub fn new(port: P, mac: [u8; 6], mtu: u16) -> Self {
        Self {
            port,
            mac,
            mtu,
            pending: [0; MAX_FRAME],
            pending_len: None,
            stats: NetStats::default(),
        }
    }

    /// The port.
    pub fn port(&self) -> &P {
        &self.port
    }

    /// The port, mutably.
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }
}

impl<P: NetPort> DeviceModel for Net<P> {
    fn device_id(&self) -> u32 {
        device_id::NET
    }

    fn features(&self) -> u64 {
        feature::MAC | feature::STATUS | feature::MTU
    }

    fn queues(&self) -> u16 {
        2
    }

    fn config_size(&self) -> u32 {
        // mac[6], status le16, max_virtqueue_pairs le16, mtu le16.
        12
    }

    fn read_config(&self, offset: u32, out: &mut [u8]) {
        let mut c = [0u8; 12];
        c[..6].copy_from_slice(&self.mac);
        c[6..8].copy_from_slice(&LINK_UP.to_le_bytes());
        c[8..10].copy_from_slice(&1u16.to_le_bytes());
        c[10..12].copy_from_slice(&self.mtu.to_le_bytes());
        let start = (offset as usize).min(c.len());
        let n = out.len().min(c.len() - start);
        out[..n].copy_from_slice(&c[start..start + n]);
    }

    fn negotiated(&mut self, _features: u64) {
        self.pending_len = None;
    }

    fn serve(
        &mut self,
        index: u16,
        queue: &mut DeviceQueue<'_>,
        window: &Window<'_>,
    ) -> Result<bool, ModelError> {
        let mut used = false;
        let mut frame = [0u8; HEADER_LEN + MAX_FRAME];
        match index {
            queue::TRANSMIT => {
                for _ in 0..queue.layout().size {
                    if !self.port.ready() {
                        break;
                    }
                    let Some(chain) = queue.pop_available()? else {
                        break;
                    };
                    let mut io = ChainIo::new(window, &chain);
                    let n = io.readable_left();
                    // A header, an Ethernet header, at most MAX_FRAME.
                    if n < HEADER_LEN + 14 || n > frame.len() {
                        self.stats.dropped += 1;
                    } else {
                        io.read(&mut frame[..n])?;
                        if frame[..10].iter().any(|b| *b != 0) {
                            // An offload nobody negotiated.
                            self.stats.dropped += 1;
                        } else {
                            self.port.transmit(&frame[HEADER_LEN..n]);
                            self.stats.transmitted += 1;
                        }
                    }
                    queue.push_used(chain, 0)?;
                    used = true;
                }
            }
            _ => {
                for _ in 0..queue.layout().size {
                    if self.pending_len.is_none() {
                        self.pending_len = self.port.receive(&mut self.pending);
                    }
                    let Some(len) = self.pending_len else { break };
                    if !queue.has_available()? {
                        break;
                    }
                    let Some(chain) = queue.pop_available()? else {
                        break;
                    };
                    self.pending_len = None;
                    let len = len.min(MAX_FRAME);
                    let written = {
                        let mut io = ChainIo::new(window, &chain);
                        if io.writable_left() < HEADER_LEN + len {
                            self.stats.dropped += 1;
                            0
                        } else {
                            // num_buffers = 1: the whole frame in this buffer.
                            let mut header = [0u8; HEADER_LEN];
                            header[10] = 1;
                            io.write(&header)?;
                            io.write(&self.pending[..len])?;
                            self.stats.received += 1;
                            io.written() as u32
                        }
                    };
                    queue.push_used(chain, written)?;
                    used = true;
                }
            }
        }
        Ok(used)
    }
}
