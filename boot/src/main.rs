//! The bare-metal boot stage.
//!
//! It runs where U-Boot would (EL2 or EL1, MMU off), finds the device tree its
//! loader handed over in `x0`, and reports what it read there on the board's own
//! console. It stays thin: the entry (`metal`), locating the packed plan
//! (`locate`) and applying it (`apply`). What to do is decided on the host's
//! terms by `partitioner::prepare`, device trees are read with `amp_plan`,
//! drivers and board facts live in `boards`; this crate wires them together on
//! the metal.
//!
//! On the host this crate builds to a small program that says where the real one
//! runs, so `cargo build --workspace` and `clippy` work everywhere.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod apply;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod locate;
#[cfg(target_os = "none")]
mod metal;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the boot stage runs on bare-metal aarch64 (target aarch64-unknown-none); \
         build and boot it with `cargo xtask run`"
    );
    std::process::exit(2);
}
