//! Shared-memory windows between partitions, and the virtio split virtqueues laid
//! out in them.
//!
//! A window is writable by both sides, so the peer is untrusted: every index,
//! length and address read from it is copied out once and checked before use,
//! and nothing here hands out a reference into peer-writable memory. This crate
//! knows nothing of boards or of rpmsg; `remoteproc` builds on it.
//!
//! The window type, ring geometry and the driver and device sides of the split
//! virtqueue arrive with the shared-memory transport work.
#![no_std]
#![forbid(unsafe_code)]
