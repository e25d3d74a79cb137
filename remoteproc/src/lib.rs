//! What travels over a shared-memory link: the remoteproc resource table, rpmsg
//! (endpoints and name service, wire-compatible with Linux, OpenAMP and NXP
//! rpmsg-lite), and the AVPS virtio devices carried over rpmsg.
//!
//! Built on `shmem`'s windows and virtqueues; knows nothing of boards. The C ABI
//! for RTOS partitions, the rpmsg-lite bindings and the Linux-side bridge live in
//! sibling crates under this folder as they arrive.
//!
//! - [`resource_table`]: the Linux resource table with the rpmsg vdev entry.
//! - [`rpmsg`]: the rpmsg header and name-service wire format.
//! - [`avps`]: the AVPS devices' rpmsg services and framing (console, net),
//!   and [`avps::Session`], one link's AVPS session as every partition runs it.
//! - [`virtio_msg`]: the virtio-msg codec (header, transport and bus
//!   messages), for virtio devices carried over a link.
//! - [`link`]: [`Link`], one side (host or remote) of an rpmsg link, with
//!   endpoints, the name service, zero-copy send and receive, error counting
//!   and reset.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod avps;
pub mod link;
pub mod resource_table;
pub mod rpmsg;
pub mod virtio;
pub mod virtio_msg;

pub use link::{
    Batch, Endpoint, Incoming, Link, LinkConfig, LinkError, LinkStats, MessageError, Placement,
    Role, RxMessage, ServiceEvent, TxBuffer,
};
