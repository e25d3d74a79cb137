//! What travels over a shared-memory link: the remoteproc resource table, rpmsg
//! (endpoints and name service, wire-compatible with Linux, OpenAMP and NXP
//! rpmsg-lite), and the AVPS virtio devices carried over rpmsg.
//!
//! Built on `shmem`'s windows and virtqueues; knows nothing of boards. The C ABI
//! for RTOS partitions, the rpmsg-lite bindings and the Linux-side bridge live in
//! sibling crates under this folder as they arrive.
#![no_std]
#![forbid(unsafe_code)]
