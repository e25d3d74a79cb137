//! A small header of our own in a shared window: a magic, a version and one
//! restart counter (epoch) per side, so each side sees the other restart and
//! resets the link instead of trusting rings the peer has since re-initialised.
//!
//! Peers that know nothing of it (Linux, OpenAMP, rpmsg-lite) never see it: a
//! link only uses it when both sides are ours and the plan gives it a place.
//!
//! Layout (little-endian, 32 bytes, 8-byte aligned; each side's epoch in its own
//! 8-byte word so every word has one writer):
//!
//! | offset | field |
//! |---|---|
//! | 0 | u32 magic `AMPW` (0x5750_4D41) |
//! | 4 | u16 version (1), u16 reserved |
//! | 8 | u32 driver epoch (0 = never started) |
//! | 16 | u32 device epoch (0 = never started) |
//! | 24 | reserved |

use crate::sync::{fence, Ordering};
use crate::window::{Window, WindowError};

/// `AMPW` in little-endian byte order.
pub const MAGIC: u32 = 0x5750_4D41;
/// Header layout version.
pub const VERSION: u16 = 1;
/// Bytes the header occupies.
pub const HEADER_SIZE: usize = 32;

const MAGIC_OFF: usize = 0;
const VERSION_OFF: usize = 4;
const DRIVER_EPOCH: usize = 8;
const DEVICE_EPOCH: usize = 16;

/// Which end of the link a side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Owns the rings and buffers (virtio driver; rpmsg host / master).
    Driver,
    /// Uses the driver's buffers (virtio device; rpmsg remote).
    Device,
}

impl Side {
    fn own(self) -> usize {
        match self {
            Side::Driver => DRIVER_EPOCH,
            Side::Device => DEVICE_EPOCH,
        }
    }
    fn peer(self) -> usize {
        match self {
            Side::Driver => DEVICE_EPOCH,
            Side::Device => DRIVER_EPOCH,
        }
    }
}

/// The header at `offset` in a window.
#[derive(Clone, Copy, Debug)]
pub struct WindowHeader<'a> {
    window: Window<'a>,
    offset: usize,
}

impl<'a> WindowHeader<'a> {
    /// The header at `offset` (8-byte aligned, inside the window).
    pub fn new(window: Window<'a>, offset: usize) -> Result<Self, WindowError> {
        let window = window.slice(offset, HEADER_SIZE)?;
        Ok(Self { window, offset })
    }

    /// Where the header lies in the window it was made from.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Announces that `side` (re)started: bumps its epoch (never to 0) after
    /// everything it initialised so far, so a peer that sees the new epoch sees
    /// the initialised rings. Returns the new epoch.
    pub fn announce(&self, side: Side) -> Result<u32, WindowError> {
        let w = &self.window;
        w.write_u32(MAGIC_OFF, MAGIC)?;
        w.write_u16(VERSION_OFF, VERSION)?;
        let epoch = match w.read_u32(side.own())?.wrapping_add(1) {
            0 => 1,
            e => e,
        };
        // Release: ring initialisation before the epoch that announces it.
        fence(Ordering::Release);
        w.write_u32(side.own(), epoch)?;
        w.clean(0, HEADER_SIZE);
        Ok(epoch)
    }

    /// The peer's epoch: `None` while the header is not valid (no magic, other
    /// version) or the peer has never started.
    pub fn peer_epoch(&self, side: Side) -> Result<Option<u32>, WindowError> {
        let w = &self.window;
        w.invalidate(0, HEADER_SIZE);
        if w.read_u32(MAGIC_OFF)? != MAGIC || w.read_u16(VERSION_OFF)? != VERSION {
            return Ok(None);
        }
        let epoch = w.read_u32(side.peer())?;
        // Acquire: the epoch before anything the peer initialised before it.
        fence(Ordering::Acquire);
        Ok((epoch != 0).then_some(epoch))
    }

    /// The peer's epoch word alone: one load, no magic check, no barrier. Only
    /// for asking whether the epoch a side already took from
    /// [`WindowHeader::peer_epoch`] still stands (a per-message check); on any
    /// other value, ask [`WindowHeader::peer_epoch`].
    pub fn peer_epoch_word(&self, side: Side) -> Result<u32, WindowError> {
        self.window.invalidate(side.peer(), 4);
        self.window.read_u32(side.peer())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::window::Word;

    #[test]
    fn each_side_sees_the_other_restart() {
        let mem: Vec<Word> = (0..8).map(|_| Word::new(0)).collect();
        let w = Window::from_words(&mem);
        let h = WindowHeader::new(w, 16).unwrap();
        assert_eq!(h.peer_epoch(Side::Device).unwrap(), None);
        assert_eq!(h.announce(Side::Driver).unwrap(), 1);
        assert_eq!(h.peer_epoch(Side::Device).unwrap(), Some(1));
        assert_eq!(h.peer_epoch(Side::Driver).unwrap(), None);
        assert_eq!(h.announce(Side::Driver).unwrap(), 2);
        assert_eq!(h.peer_epoch(Side::Device).unwrap(), Some(2));
        assert_eq!(w.read_u32(16).unwrap(), MAGIC);
        assert!(WindowHeader::new(w, 48).is_err());
    }
}
