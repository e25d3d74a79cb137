//! Turns a manifest and a board's device tree into a checked partitioning.
//!
//! This crate is the one source of truth for what a valid partitioning is: the host
//! tool and the bare-metal boot stage run the same code (`no_std`; the `std`
//! feature adds what only the host needs). Today it reads the hardware facts of a
//! board's flattened device tree ([`dt`]); the manifest model, validation rules and
//! the planner build on those facts.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cells;
pub mod diag;
pub mod dt;
pub mod dtgen;
pub mod elf;
#[cfg(feature = "std")]
pub mod host;
pub mod layout;
pub mod manifest;
pub mod pack;
#[cfg(feature = "std")]
pub mod parse;
pub mod plan;
pub mod planfile;
pub mod recheck;
pub mod rules;
pub mod tree;
