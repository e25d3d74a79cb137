//! The contract between the planner and everything that runs on the board.
//!
//! The planner (`partitioner`) writes it; the boot stage reads the packed image
//! and the boot plan; every partition (the demo RTOS, the Linux-side bridge,
//! a Zephyr application) reads its own device tree and lays out its link
//! windows by it. Each side depends on this crate alone, not on the planner,
//! so what they share is written once:
//!
//! - [`format`]: the boot plan on the wire, with its own types;
//! - [`pack`]: the packed firmware image (boot stage, table, payloads);
//! - [`layout`]: where the header, rings and buffers sit in a link window;
//! - [`binding`]: the `amp,*` device-tree names the planner writes;
//! - [`dt`] (with [`cells`]): the borrowing device-tree reader, including a
//!   partition's links;
//! - [`crc32`], which the plan, the pack and the demo partitions check with.
//!
//! `no_std` with `alloc` (for the decoded plan); nothing here panics on input.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod binding;
pub mod cells;
mod crc;
pub mod dt;
pub mod format;
pub mod layout;
pub mod pack;

pub use crc::crc32;
pub use format::{
    DoorbellKind, ImageKind, LinkDevice, Plan, PlannedImage, PlannedLink, PlannedPartition,
};
