//! Virtio devices over a link: the device side of the virtio-msg transport
//! ([`device`], [`bus`]) and our device models ([`blk`], [`console`],
//! [`net`], [`rng`]). A driver side uses
//! the `virtio-drivers` crate's drivers over the same messages.
//!
//! Each device's virtqueues are ordinary split virtqueues (virtio 1.x)
//! placed by the driver inside the shared window; every address the driver
//! gives is a bus address that must lie in the window, and every
//! descriptor is checked by `shmem`'s device queue before a byte moves. A
//! driver that breaks the rules sets `DEVICE_NEEDS_RESET` on its device and
//! stops it; the partition and the link go on.

pub mod blk;
pub mod bus;
pub mod chain;
pub mod console;
pub mod device;
pub mod net;
pub mod rng;

pub use device::{DeviceModel, ModelError, Reply, VirtioDevice};

/// Virtio device ids (virtio 1.x §5).
pub mod device_id {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Console.
    pub const CONSOLE: u32 = 3;
    /// Entropy source.
    pub const RNG: u32 = 4;
    /// Socket (vsock).
    pub const SOCKET: u32 = 19;
}

/// Device-independent feature bits (virtio 1.x §6).
pub mod feature {
    /// `VIRTIO_F_VERSION_1`: a virtio 1.x device (every device here).
    pub const VERSION_1: u64 = 1 << 32;
}

/// Device status bits (virtio 1.x §2.1).
pub mod status {
    /// `ACKNOWLEDGE`.
    pub const ACKNOWLEDGE: u32 = 1;
    /// `DRIVER`.
    pub const DRIVER: u32 = 2;
    /// `DRIVER_OK`.
    pub const DRIVER_OK: u32 = 4;
    /// `FEATURES_OK`.
    pub const FEATURES_OK: u32 = 8;
    /// `DEVICE_NEEDS_RESET`.
    pub const NEEDS_RESET: u32 = 0x40;
    /// `FAILED`.
    pub const FAILED: u32 = 0x80;
}
