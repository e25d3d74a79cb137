//! virtio-msg: the virtio transport as messages, so that a virtio driver and
//! a virtio device in two partitions meet over a link with no trapped
//! register accesses. This module is the codec, and only the codec: the
//! 8-byte header, every transport message and the bus messages, encoded
//! into and decoded from byte slices. What carries the messages (rpmsg on a
//! link today, an SPSC message FIFO pair in the window as the AMP
//! prototypes use tomorrow) sits beside it and never looks inside one.
//!
//! Revision implemented: Linaro's virtio-msg draft, `Linaro/virtio-msg-spec`
//! branch `virtio-msg` as of its review update of February 2026 (PR #31:
//! device "ADDED" rather than "READY", EVENT_USED required unless the
//! driver polls), transport revision 1. Numbering and layouts:
//!
//! - Header (8 bytes, little-endian): `type` (bit 0 response, bit 1 bus
//!   message), `msg_id` (0x40 set: an event, which has no response),
//!   `dev_num` le16, `token` le16 (echoed in the response), `msg_size` le16
//!   (the whole message, header included).
//! - Transport messages: GET_DEVICE_INFO 0x02, GET_DEVICE_FEATURES 0x03,
//!   SET_DRIVER_FEATURES 0x04, GET_CONFIG 0x05, SET_CONFIG 0x06,
//!   GET_DEVICE_STATUS 0x07, SET_DEVICE_STATUS 0x08, GET_VQUEUE 0x09,
//!   SET_VQUEUE 0x0A, RESET_VQUEUE 0x0B, GET_SHM 0x0C; events EVENT_CONFIG
//!   0x40 (device to driver), EVENT_AVAIL 0x41 (driver to device),
//!   EVENT_USED 0x42 (device to driver).
//! - Bus messages: GET_DEVICES 0x02, PING 0x03, EVENT_DEVICE 0x40.
//!
//! Every decoder checks the declared size against the bytes received and
//! each variable part against the declared size; nothing read from a peer
//! is trusted to fit. Messages larger than a carrier's payload are not
//! produced: config reads and writes are limited to what fits
//! ([`MAX_CONFIG_DATA`] for an rpmsg payload).

use crate::rpmsg::MAX_PAYLOAD;

mod decode;
mod encode;

pub use decode::decode;
pub use encode::{encode, encode_response};

/// Header size.
pub const HEADER_SIZE: usize = 8;
/// The smallest message size a bus must carry (header plus the largest
/// fixed payload).
pub const MIN_SIZE: usize = 52;
/// Transport revision implemented.
pub const TRANSPORT_REVISION: u32 = 1;
/// Config bytes one GET_CONFIG or SET_CONFIG moves over an rpmsg link: an
/// rpmsg payload less the header and the three words before the data.
pub const MAX_CONFIG_DATA: usize = MAX_PAYLOAD - HEADER_SIZE - 12;
/// Feature blocks one message carries over an rpmsg link.
pub const MAX_FEATURE_BLOCKS: usize = (MAX_PAYLOAD - HEADER_SIZE - 8) / 4;

/// `type` bits.
pub mod kind {
    /// A response (else a request or an event).
    pub const RESPONSE: u8 = 1 << 0;
    /// A bus message (else a transport message).
    pub const BUS: u8 = 1 << 1;
}

/// Transport message ids.
pub mod id {
    /// Set in the id of an event: no response follows.
    pub const EVENT: u8 = 0x40;
    /// Device identity, config size and virtqueue count.
    pub const GET_DEVICE_INFO: u8 = 0x02;
    /// Device feature blocks.
    pub const GET_DEVICE_FEATURES: u8 = 0x03;
    /// Driver feature blocks.
    pub const SET_DRIVER_FEATURES: u8 = 0x04;
    /// Config space read.
    pub const GET_CONFIG: u8 = 0x05;
    /// Config space write.
    pub const SET_CONFIG: u8 = 0x06;
    /// Device status read.
    pub const GET_DEVICE_STATUS: u8 = 0x07;
    /// Device status write (0 resets the device).
    pub const SET_DEVICE_STATUS: u8 = 0x08;
    /// Virtqueue state.
    pub const GET_VQUEUE: u8 = 0x09;
    /// Virtqueue set-up.
    pub const SET_VQUEUE: u8 = 0x0A;
    /// Virtqueue reset.
    pub const RESET_VQUEUE: u8 = 0x0B;
    /// Shared memory region.
    pub const GET_SHM: u8 = 0x0C;
    /// Config change (device to driver).
    pub const EVENT_CONFIG: u8 = 0x40;
    /// Buffers available (driver to device: the kick).
    pub const EVENT_AVAIL: u8 = 0x41;
    /// Buffers used (device to driver: the interrupt).
    pub const EVENT_USED: u8 = 0x42;
}

/// Bus message ids.
pub mod bus_id {
    /// Which device numbers are present.
    pub const GET_DEVICES: u8 = 0x02;
    /// Echo.
    pub const PING: u8 = 0x03;
    /// A device was added or removed.
    pub const EVENT_DEVICE: u8 = 0x40;
}

/// `dev_state` of EVENT_DEVICE.
pub mod device_state {
    /// The device can be used.
    pub const ADDED: u16 = 1;
    /// The device is gone.
    pub const REMOVED: u16 = 2;
}

/// `flags` bit of a virtqueue: enabled.
pub const VQUEUE_ENABLED: u32 = 1;

/// A message that cannot be decoded or encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// Fewer bytes than a header.
    Short,
    /// `msg_size` disagrees with the bytes received, or is below the
    /// header.
    Size {
        /// What the header says.
        claimed: u16,
        /// What arrived.
        actual: usize,
    },
    /// An id this revision does not define (for its kind and direction).
    UnknownId {
        /// The header's `type`.
        kind: u8,
        /// The header's `msg_id`.
        id: u8,
    },
    /// A payload shorter than its message needs, or whose counts or lengths
    /// point past its end.
    Payload(u8),
    /// The output buffer is too small, or a part is too large for a message.
    Room,
}

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `type`.
    pub kind: u8,
    /// `msg_id`.
    pub id: u8,
    /// The device the message is about (transport messages).
    pub dev_num: u16,
    /// Correlates a response with its request.
    pub token: u16,
    /// The whole message's size.
    pub size: u16,
}

impl Header {
    /// Reads and checks the header of `bytes` (the whole message).
    pub fn read(bytes: &[u8]) -> Result<Self, CodecError> {
        let h = bytes.get(..HEADER_SIZE).ok_or(CodecError::Short)?;
        let header = Header {
            kind: h[0],
            id: h[1],
            dev_num: u16::from_le_bytes([h[2], h[3]]),
            token: u16::from_le_bytes([h[4], h[5]]),
            size: u16::from_le_bytes([h[6], h[7]]),
        };
        if usize::from(header.size) != bytes.len() || usize::from(header.size) < HEADER_SIZE {
            return Err(CodecError::Size {
                claimed: header.size,
                actual: bytes.len(),
            });
        }
        Ok(header)
    }

    /// A response.
    pub fn is_response(&self) -> bool {
        self.kind & kind::RESPONSE != 0
    }

    /// A bus message.
    pub fn is_bus(&self) -> bool {
        self.kind & kind::BUS != 0
    }

    /// An event (no response follows).
    pub fn is_event(&self) -> bool {
        self.id & id::EVENT != 0
    }
}

/// Little-endian 32-bit words in a message, such as feature blocks: read
/// one at a time, never trusted to be aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words<'a>(&'a [u8]);

impl<'a> Words<'a> {
    /// Words over `bytes` (whole words only).
    pub fn new(bytes: &'a [u8]) -> Self {
        Words(&bytes[..bytes.len() / 4 * 4])
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }
    /// None.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Word `i`.
    pub fn get(&self, i: usize) -> Option<u32> {
        let b = self.0.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Every word, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// What GET_DEVICE_INFO answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Virtio device id (1 net, 2 block, 3 console, 4 entropy, ...).
    pub device_id: u32,
    /// Vendor id.
    pub vendor_id: u32,
    /// Device UUID (zero when it has none).
    pub uuid: [u8; 16],
    /// 32-bit feature blocks the device has.
    pub feature_blocks: u32,
    /// Config space size in bytes.
    pub config_size: u32,
    /// Virtqueues the device has.
    pub max_virtqueues: u32,
    /// First admin virtqueue.
    pub admin_vq_start: u32,
    /// Admin virtqueues (0: none).
    pub admin_vq_count: u32,
}

/// One virtqueue's set-up (SET_VQUEUE) or state (GET_VQUEUE's answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vqueue {
    /// Queue index.
    pub index: u32,
    /// Largest size the device takes (GET_VQUEUE only).
    pub max_size: u32,
    /// Size in use (0: not set up).
    pub size: u32,
    /// [`VQUEUE_ENABLED`].
    pub flags: u32,
    /// Bus address of the descriptor table.
    pub descriptors: u64,
    /// Bus address of the driver area (available ring).
    pub driver: u64,
    /// Bus address of the device area (used ring).
    pub device: u64,
}

/// A config space range and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config<'a> {
    /// Config generation.
    pub generation: u32,
    /// Offset in config space.
    pub offset: u32,
    /// The bytes.
    pub data: &'a [u8],
}

/// A transport message, in either direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    /// Request: device identity.
    GetDeviceInfo,
    /// Answer to [`Transport::GetDeviceInfo`].
    DeviceInfo(DeviceInfo),
    /// Request: `count` feature blocks from `block`.
    GetDeviceFeatures {
        /// First block.
        block: u32,
        /// Blocks asked for.
        count: u32,
    },
    /// Answer: the device's feature blocks from `block`.
    DeviceFeatures {
        /// First block.
        block: u32,
        /// The blocks.
        features: Words<'a>,
    },
    /// Request: the driver's feature blocks from `block`.
    SetDriverFeatures {
        /// First block.
        block: u32,
        /// The blocks.
        features: Words<'a>,
    },
    /// Answer to [`Transport::SetDriverFeatures`].
    DriverFeaturesSet,
    /// Request: `len` config bytes at `offset`.
    GetConfig {
        /// Offset.
        offset: u32,
        /// Length.
        len: u32,
    },
    /// Answer to [`Transport::GetConfig`].
    ConfigRead(Config<'a>),
    /// Request: write config bytes (the generation the driver last saw).
    SetConfig(Config<'a>),
    /// Answer to [`Transport::SetConfig`]: the config after the write.
    ConfigWritten(Config<'a>),
    /// Request: the device status.
    GetDeviceStatus,
    /// Request: set the device status (0 resets).
    SetDeviceStatus(u32),
    /// Answer to either status request: the status now.
    DeviceStatus(u32),
    /// Request: a virtqueue's state.
    GetVqueue(u32),
    /// Answer to [`Transport::GetVqueue`].
    VqueueState(Vqueue),
    /// Request: set a virtqueue up (and enable it).
    SetVqueue(Vqueue),
    /// Answer to [`Transport::SetVqueue`].
    VqueueSet,
    /// Request: reset a virtqueue.
    ResetVqueue(u32),
    /// Answer to [`Transport::ResetVqueue`].
    VqueueReset,
    /// Request: shared memory region `id`.
    GetShm(u32),
    /// Answer to [`Transport::GetShm`] (length 0: no such region).
    Shm {
        /// Region id.
        id: u32,
        /// Its length.
        len: u64,
        /// Its bus address.
        addr: u64,
    },
    /// Event, device to driver: the config (or the status) changed.
    EventConfig {
        /// Device status now.
        status: u32,
        /// The change, with the new generation.
        config: Config<'a>,
    },
    /// Event, driver to device: buffers are available on `vq`.
    EventAvail {
        /// Queue index.
        vq: u32,
        /// The driver's next avail offset (split rings: the avail index).
        next: u32,
    },
    /// Event, device to driver: buffers were used on `vq`.
    EventUsed {
        /// Queue index.
        vq: u32,
    },
}

/// A bus message, in either direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bus<'a> {
    /// Request: which of `count` device numbers from `offset` are present.
    GetDevices {
        /// First device number.
        offset: u16,
        /// How many.
        count: u16,
    },
    /// Answer: a bitmap of the present devices (bit `n` of byte `n / 8` for
    /// device `offset + n`), and where the next present one after these is
    /// (0: none).
    Devices {
        /// First device number.
        offset: u16,
        /// The next present device after these, 0 if none.
        next: u16,
        /// Device numbers covered.
        count: u16,
        /// The bitmap (`count` bits, rounded up to bytes).
        bitmap: &'a [u8],
    },
    /// Request or answer: echo of `data`.
    Ping(u32),
    /// Event: a device was added or removed.
    EventDevice {
        /// The device.
        dev_num: u16,
        /// [`device_state`].
        state: u16,
    },
}

/// A whole message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// About one device.
    Transport(Transport<'a>),
    /// About the bus.
    Bus(Bus<'a>),
}
