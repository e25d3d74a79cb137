//! The Linux remoteproc resource table, as far as an rpmsg link needs it: the
//! header and one `RSC_VDEV` entry for the rpmsg virtio device with its two
//! vrings.
//!
//! Layout facts from Linux `include/linux/remoteproc.h` (`struct
//! resource_table`, `struct fw_rsc_vdev`, `struct fw_rsc_vdev_vring`) and
//! OpenAMP `remoteproc.h`; all fields little-endian, structs packed. The remote
//! (virtio device, firmware) side writes the table; the host (virtio driver)
//! side reads it, checks every field, writes the negotiated features and the
//! status byte.

use shmem::{Window, WindowError};

/// Table version Linux accepts.
pub const TABLE_VERSION: u32 = 1;
/// Resource type of a virtio device entry.
pub const RSC_VDEV: u32 = 3;
/// Virtio device id of rpmsg (`VIRTIO_ID_RPMSG`).
pub const VIRTIO_ID_RPMSG: u32 = 7;
/// "Any address" marker in `da` fields (`FW_RSC_ADDR_ANY`).
pub const FW_RSC_ADDR_ANY: u32 = 0xFFFF_FFFF;
/// The notify id our remote gives its vdev: one of its own, after the two
/// vrings' 0 and 1. Linux's `remoteproc.h` calls it "a unique rproc-wide
/// notify index", and OpenAMP's `rproc_virtio_notified` takes a kick whose id
/// equals the vdev's as a config change and drops it: a vdev sharing vring 0's
/// id would lose every kick on vring 0.
pub const VDEV_NOTIFYID: u32 = 2;

/// Virtio status bits (virtio spec, "Device Status Field").
pub mod status {
    /// `ACKNOWLEDGE`.
    pub const ACKNOWLEDGE: u8 = 1;
    /// `DRIVER`.
    pub const DRIVER: u8 = 2;
    /// `DRIVER_OK`: the driver is ready; OpenAMP remotes wait for this bit.
    pub const DRIVER_OK: u8 = 4;
    /// `FEATURES_OK` (not used by legacy remoteproc vdevs).
    pub const FEATURES_OK: u8 = 8;
    /// `DEVICE_NEEDS_RESET`.
    pub const NEEDS_RESET: u8 = 0x40;
    /// `FAILED`.
    pub const FAILED: u8 = 0x80;
}

/// Field offsets of `struct resource_table` (header).
pub mod header {
    /// `u32 ver`.
    pub const VER: usize = 0;
    /// `u32 num`.
    pub const NUM: usize = 4;
    /// `u32 reserved[2]`.
    pub const RESERVED: usize = 8;
    /// `u32 offset[num]`.
    pub const OFFSET: usize = 16;
}

/// Field offsets of an `RSC_VDEV` entry, type word included (`struct
/// fw_rsc_hdr` + `struct fw_rsc_vdev`).
pub mod vdev {
    /// `u32 type`.
    pub const TYPE: usize = 0;
    /// `u32 id`.
    pub const ID: usize = 4;
    /// `u32 notifyid`.
    pub const NOTIFYID: usize = 8;
    /// `u32 dfeatures`.
    pub const DFEATURES: usize = 12;
    /// `u32 gfeatures`.
    pub const GFEATURES: usize = 16;
    /// `u32 config_len`.
    pub const CONFIG_LEN: usize = 20;
    /// `u8 status`.
    pub const STATUS: usize = 24;
    /// `u8 num_of_vrings`.
    pub const NUM_OF_VRINGS: usize = 25;
    /// `u8 reserved[2]`.
    pub const RESERVED: usize = 26;
    /// `struct fw_rsc_vdev_vring vring[]`.
    pub const VRING: usize = 28;
}

/// Field offsets of `struct fw_rsc_vdev_vring` (20 bytes).
pub mod vring {
    /// `u32 da`.
    pub const DA: usize = 0;
    /// `u32 align`.
    pub const ALIGN: usize = 4;
    /// `u32 num`.
    pub const NUM: usize = 8;
    /// `u32 notifyid`.
    pub const NOTIFYID: usize = 12;
    /// `u32 pa` (OpenAMP: `reserved`).
    pub const PA: usize = 16;
    /// Size of one vring entry.
    pub const SIZE: usize = 20;
}

/// Entries a table may list before we refuse it (Linux has no fixed cap; a
/// bound keeps the scan short against a hostile table).
pub const MAX_ENTRIES: u32 = 64;

/// A resource table that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// `ver` is not 1.
    Version(u32),
    /// `num` is too large or the offset array does not fit.
    EntryCount(u32),
    /// An entry offset points outside the table or is misaligned.
    EntryOffset(u32),
    /// No rpmsg vdev entry.
    NoRpmsgDevice,
    /// The vdev entry has other than two vrings, non-zero reserved bytes, or
    /// does not fit in the table.
    BadDevice,
    /// A vring with a zero or non-power-of-two `num`, a bad `align`, or an
    /// address outside the window.
    BadVring(u8),
    /// A header reserved word is not zero.
    Reserved,
    /// Access outside the window.
    Window(WindowError),
}

impl From<WindowError> for TableError {
    fn from(e: WindowError) -> Self {
        Self::Window(e)
    }
}

/// One vring as the table describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VringEntry {
    /// Device address of the ring.
    pub da: u32,
    /// Legacy alignment of the used ring.
    pub align: u32,
    /// Queue size.
    pub num: u32,
    /// Notify id the host assigned.
    pub notifyid: u32,
}

/// The rpmsg vdev entry, copied out and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpmsgDevice {
    /// Offset of the entry (its type word) in the window.
    pub entry: usize,
    /// The vdev's own notify id (config-change kicks).
    pub notifyid: u32,
    /// Device features (32 bits: remoteproc vdevs are legacy).
    pub dfeatures: u32,
    /// Negotiated features.
    pub gfeatures: u32,
    /// Status byte.
    pub status: u8,
    /// vring 0 (host RX / remote TX) and vring 1 (host TX / remote RX).
    pub vrings: [VringEntry; 2],
}

/// What the remote side writes: features offered and where its vrings are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// Device features offered (`VIRTIO_RPMSG_F_NS` = bit 0, maybe EVENT_IDX).
    pub dfeatures: u32,
    /// vring 0 and vring 1: (device address, align, num).
    pub vrings: [(u32, u32, u32); 2],
}

/// Bytes the table [`write()`] produces: header, one offset, the vdev entry with
/// two vrings, no config space.
pub const TABLE_SIZE: usize = header::OFFSET + 4 + vdev::VRING + 2 * vring::SIZE;

/// Writes a table with one rpmsg vdev at `at` (the remote's job, before the
/// host looks). The status byte starts at 0.
pub fn write(window: &Window<'_>, at: usize, spec: &TableSpec) -> Result<(), TableError> {
    let w = window;
    w.fill(at, TABLE_SIZE, 0)?;
    w.write_u32(at + header::VER, TABLE_VERSION)?;
    w.write_u32(at + header::NUM, 1)?;
    let entry = header::OFFSET + 4;
    w.write_u32(at + header::OFFSET, entry as u32)?;
    let e = at + entry;
    w.write_u32(e + vdev::TYPE, RSC_VDEV)?;
    w.write_u32(e + vdev::ID, VIRTIO_ID_RPMSG)?;
    w.write_u32(e + vdev::NOTIFYID, VDEV_NOTIFYID)?;
    w.write_u32(e + vdev::DFEATURES, spec.dfeatures)?;
    w.write_u8(e + vdev::NUM_OF_VRINGS, 2)?;
    for (i, (da, align, num)) in spec.vrings.iter().enumerate() {
        let v = e + vdev::VRING + i * vring::SIZE;
        w.write_u32(v + vring::DA, *da)?;
        w.write_u32(v + vring::ALIGN, *align)?;
        w.write_u32(v + vring::NUM, *num)?;
        w.write_u32(v + vring::NOTIFYID, i as u32)?;
    }
    w.clean(at, TABLE_SIZE);
    Ok(())
}

/// Reads the table at `at` (at most `max_len` bytes), checks it the way Linux
/// `rproc_handle_resources` / `rproc_handle_vdev` do, and returns the first
/// rpmsg vdev. Every vring address must lie in the window.
pub fn find_rpmsg(
    window: &Window<'_>,
    at: usize,
    max_len: usize,
) -> Result<RpmsgDevice, TableError> {
    let w = window;
    w.invalidate(at, max_len);
    let ver = w.read_u32(at + header::VER)?;
    if ver != TABLE_VERSION {
        return Err(TableError::Version(ver));
    }
    let num = w.read_u32(at + header::NUM)?;
    if w.read_u32(at + header::RESERVED)? != 0 || w.read_u32(at + header::RESERVED + 4)? != 0 {
        return Err(TableError::Reserved);
    }
    if num > MAX_ENTRIES || header::OFFSET + 4 * num as usize > max_len {
        return Err(TableError::EntryCount(num));
    }
    for i in 0..num as usize {
        let off = w.read_u32(at + header::OFFSET + 4 * i)?;
        let o = off as usize;
        if !o.is_multiple_of(4)
            || o < header::OFFSET
            || o.checked_add(4).is_none_or(|end| end > max_len)
        {
            return Err(TableError::EntryOffset(off));
        }
        let e = at + o;
        if w.read_u32(e + vdev::TYPE)? != RSC_VDEV || w.read_u32(e + vdev::ID)? != VIRTIO_ID_RPMSG {
            continue;
        }
        if o + vdev::VRING + 2 * vring::SIZE > max_len
            || w.read_u8(e + vdev::NUM_OF_VRINGS)? != 2
            || w.read_u8(e + vdev::RESERVED)? != 0
            || w.read_u8(e + vdev::RESERVED + 1)? != 0
        {
            return Err(TableError::BadDevice);
        }
        let config_len = w.read_u32(e + vdev::CONFIG_LEN)? as usize;
        if (o + vdev::VRING + 2 * vring::SIZE)
            .checked_add(config_len)
            .is_none_or(|end| end > max_len)
        {
            return Err(TableError::BadDevice);
        }
        let mut vrings = [VringEntry {
            da: 0,
            align: 0,
            num: 0,
            notifyid: 0,
        }; 2];
        for (j, slot) in vrings.iter_mut().enumerate() {
            let v = e + vdev::VRING + j * vring::SIZE;
            let entry = VringEntry {
                da: w.read_u32(v + vring::DA)?,
                align: w.read_u32(v + vring::ALIGN)?,
                num: w.read_u32(v + vring::NUM)?,
                notifyid: w.read_u32(v + vring::NOTIFYID)?,
            };
            let ok_num = entry.num.is_power_of_two()
                && entry.num <= u32::from(shmem::virtqueue::MAX_QUEUE_SIZE);
            let ok_align = entry.align.is_power_of_two() && entry.align >= 16;
            if !ok_num || !ok_align || w.offset_of(entry.da.into(), 1).is_err() {
                return Err(TableError::BadVring(j as u8));
            }
            *slot = entry;
        }
        return Ok(RpmsgDevice {
            entry: e,
            notifyid: w.read_u32(e + vdev::NOTIFYID)?,
            dfeatures: w.read_u32(e + vdev::DFEATURES)?,
            gfeatures: w.read_u32(e + vdev::GFEATURES)?,
            status: w.read_u8(e + vdev::STATUS)?,
            vrings,
        });
    }
    Err(TableError::NoRpmsgDevice)
}

/// The notify ids a host gives the two vrings: the lowest two, as Linux's
/// first vdev gets (0 and 1), but never the vdev's own id, which a remote
/// such as OpenAMP's reads as a config change (a table that gives its vdev
/// id 0, as several OpenAMP examples do, gets 1 and 2).
pub fn vring_notify_ids(vdev_notifyid: u32) -> [u32; 2] {
    match vdev_notifyid {
        0 => [1, 2],
        1 => [0, 2],
        _ => [0, 1],
    }
}

/// Host side: records the negotiated features, the notify ids it assigned
/// ([`vring_notify_ids`]) and the status byte. Returns the vrings' ids.
pub fn accept(
    window: &Window<'_>,
    device: &RpmsgDevice,
    gfeatures: u32,
    status: u8,
) -> Result<[u32; 2], TableError> {
    let w = window;
    let e = device.entry;
    w.write_u32(e + vdev::GFEATURES, gfeatures)?;
    let ids = vring_notify_ids(device.notifyid);
    for (j, id) in ids.iter().enumerate() {
        w.write_u32(e + vdev::VRING + j * vring::SIZE + vring::NOTIFYID, *id)?;
    }
    w.clean(e, vdev::VRING + 2 * vring::SIZE);
    // The status byte last: a remote polling it sees the features first.
    shmem_fence();
    w.write_u8(e + vdev::STATUS, status)?;
    w.clean(e + vdev::STATUS, 1);
    Ok(ids)
}

/// Remote side: the status byte and negotiated features the host wrote.
pub fn read_status(window: &Window<'_>, entry: usize) -> Result<(u8, u32), TableError> {
    window.invalidate(entry, vdev::VRING);
    let status = window.read_u8(entry + vdev::STATUS)?;
    core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
    Ok((status, window.read_u32(entry + vdev::GFEATURES)?))
}

fn shmem_fence() {
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
}
