//! The driver side of virtio devices carried over a link: the drivers of
//! the `virtio-drivers` crate (blk, net, rng, socket, ...) run unchanged on
//! top of
//!
//! - [`MsgTransport`], its `Transport` trait as virtio-msg requests and
//!   answers (`remoteproc::virtio_msg`) on a [`MessageBus`], such as one
//!   rpmsg endpoint of a link ([`LinkBus`]);
//! - [`WindowHal`], its `Hal` over a part of the link window set aside for
//!   this side's virtqueues and buffers: what a driver shares from outside
//!   the window is bounced through it.
//!
//! `virtio-drivers`' transport calls are synchronous and mostly
//! infallible: each request here waits for its answer, polling the bus,
//! for at most [`MsgTransport::patience`] polls; a device that does not
//! answer is recorded ([`MsgTransport::error`]) and the call returns what
//! a failed device would show (status `FAILED`, zero features).
#![cfg_attr(not(test), no_std)]

mod bus;
mod hal;
mod transport;

pub use bus::{LinkBus, MessageBus, SessionBus};
pub use hal::{PoolId, WindowHal, MAX_POOLS};
pub use transport::{devices, MsgTransport, Options, TransportError, PATIENCE};
