//! The demo RTOS partition: a bare-metal stand-in for Zephyr in the tests.
//!
//! It reads its own device tree (written by the boot stage: only its cores and
//! memory), brings up its other cores, and talks rpmsg over each link: the side
//! without a UART logs through the link's AVPS console to the side that owns
//! one, and both exchange checksummed test messages and report the counts. The
//! UART owner then powers the machine off.
//!
//! On the host this crate builds to a program that says where the real one runs.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
mod metal;
#[cfg(target_os = "none")]
mod net;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "rtos-demo runs in a partition on aarch64-unknown-none; `cargo xtask build` builds it"
    );
    std::process::exit(2);
}
