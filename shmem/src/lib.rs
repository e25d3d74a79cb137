//! Shared-memory windows between partitions, and the virtio split virtqueues laid
//! out in them.
//!
//! A window is writable by both sides, so the peer is untrusted: every index,
//! length and address read from it is copied out once and checked before use,
//! and nothing here hands out a reference into peer-writable memory. This crate
//! knows nothing of boards or of rpmsg; `remoteproc` builds on it.
//!
//! - [`window`]: [`Window`], bounds-checked atomic/volatile access to a region,
//!   bus-address translation, the cache-maintenance hook. All `unsafe` is here.
//! - [`virtqueue`]: split virtqueue layout (legacy and modern), the driver and
//!   device sides, notification suppression with or without `EVENT_IDX`.
//! - [`doorbell`]: how a side signals the other (polling, GIC SGIs, mailbox).
//! - [`header`]: the window header with each side's restart counter.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod doorbell;
pub mod header;
pub mod virtqueue;
#[allow(
    unsafe_code,
    reason = "the one module with raw access to mapped memory"
)]
pub mod window;

pub use doorbell::Doorbell;
pub use header::{Side, WindowHeader};
pub use virtqueue::{Chain, DeviceQueue, DriverQueue, RingError, RingLayout};
pub use window::{CacheMaintenance, RingFields, Span, Window, WindowError, Words};

/// Fences and orderings: core's, or loom's when model checking.
pub(crate) mod sync {
    #[cfg(not(loom))]
    pub(crate) use core::sync::atomic::{fence, Ordering};
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{fence, Ordering};
}
