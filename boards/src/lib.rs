//! Every hardware fact and driver of the supported boards, in one place.
//!
//! The boot stage is generic: it learns the machine from the device tree its loader
//! hands over. What a device tree does not say (how to power a Raspberry Pi off,
//! which QEMU machine emulates a board, where its real DTB comes from) lives here,
//! next to the drivers for the IP blocks the boot stage touches: the consoles
//! (PL011, BCM2835 mini-UART, i.MX UART), PSCI, the BCM2835 power-management
//! watchdog and the Arm generic timer.
//!
//! Nothing here depends on the other crates of the workspace.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod cache;
pub mod gic;
pub mod heap;
#[cfg(feature = "std")]
pub mod host;
pub mod mmio;
pub mod power;
pub mod rtc;
pub mod table;
pub mod timer;
pub mod uart;

pub use table::{Board, DtbSource, BOARDS};

// Start-up routines for the project's bare-metal programs (see rt.s).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(include_str!("rt.s"));
