//! Turns a manifest and a board's device tree into a checked partitioning.
//!
//! This crate is the one source of truth for what a valid partitioning is: the host
//! tool and the bare-metal boot stage run the same code (`no_std`; the `std`
//! feature adds what only the host needs). It reads the hardware facts of a
//! board's flattened device tree (with `amp_plan::dt`, the reader the partitions
//! use too); the manifest model, validation rules and the planner build on those
//! facts, and the plan it makes is the plan contract's type (`amp_plan`).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod diag;
pub mod dtgen;
pub mod elf;
#[cfg(feature = "std")]
pub mod host;
pub mod manifest;
#[cfg(feature = "std")]
pub mod parse;
// The planner runs on the host only (`amp plan`); the boot stage takes its
// output through `amp_plan` and re-checks it with `recheck`.
#[cfg(feature = "std")]
pub mod plan;
pub mod prepare;
pub mod recheck;
pub mod rules;
pub mod tree;
