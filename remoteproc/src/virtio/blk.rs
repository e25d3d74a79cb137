//! The block device (virtio 1.x §5.2): one request queue; each request is
//! a 16-byte header (type, reserved, sector), the data, and a status byte
//! the device writes last. Reads, writes, flush, discard, write-zeroes and
//! the device id, over a [`BlockStore`]; the write cache is reported in
//! config space (`writeback`, settable with `VIRTIO_BLK_F_CONFIG_WCE`).

use super::chain::ChainIo;
use super::device::{serve_each, DeviceModel, ModelError};
use super::device_id;
use shmem::{DeviceQueue, Window};

/// Sector size.
pub const SECTOR: usize = 512;

/// Feature bits (virtio 1.x §5.2.3).
pub mod feature {
    /// `VIRTIO_BLK_F_SEG_MAX`.
    pub const SEG_MAX: u64 = 1 << 2;
    /// `VIRTIO_BLK_F_RO`.
    pub const RO: u64 = 1 << 5;
    /// `VIRTIO_BLK_F_BLK_SIZE`.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// `VIRTIO_BLK_F_FLUSH`.
    pub const FLUSH: u64 = 1 << 9;
    /// `VIRTIO_BLK_F_CONFIG_WCE`.
    pub const CONFIG_WCE: u64 = 1 << 11;
    /// `VIRTIO_BLK_F_DISCARD`.
    pub const DISCARD: u64 = 1 << 13;
    /// `VIRTIO_BLK_F_WRITE_ZEROES`.
    pub const WRITE_ZEROES: u64 = 1 << 14;
}

/// Request types.
pub mod request {
    /// Read.
    pub const IN: u32 = 0;
    /// Write.
    pub const OUT: u32 = 1;
    /// Flush the write cache.
    pub const FLUSH: u32 = 4;
    /// Device id string (20 bytes).
    pub const GET_ID: u32 = 8;
    /// Discard ranges.
    pub const DISCARD: u32 = 11;
    /// Zero ranges.
    pub const WRITE_ZEROES: u32 = 13;
}

/// Status byte values.
pub mod status {
    /// Done.
    pub const OK: u8 = 0;
    /// Failed.
    pub const IOERR: u8 = 1;
    /// Not supported.
    pub const UNSUPP: u8 = 2;
}

/// Config space offsets (virtio 1.x §5.2.4, `struct virtio_blk_config`).
pub mod config {
    /// `le64 capacity` (sectors).
    pub const CAPACITY: u32 = 0;
    /// `le32 seg_max`.
    pub const SEG_MAX: u32 = 12;
    /// `le32 blk_size`.
    pub const BLK_SIZE: u32 = 20;
    /// `u8 writeback`.
    pub const WRITEBACK: u32 = 32;
    /// `le32 max_discard_sectors`.
    pub const MAX_DISCARD_SECTORS: u32 = 36;
    /// `le32 max_discard_seg`.
    pub const MAX_DISCARD_SEG: u32 = 40;
    /// `le32 discard_sector_alignment`.
    pub const DISCARD_SECTOR_ALIGNMENT: u32 = 44;
    /// `le32 max_write_zeroes_sectors`.
    pub const MAX_WRITE_ZEROES_SECTORS: u32 = 48;
    /// `le32 max_write_zeroes_seg`.
    pub const MAX_WRITE_ZEROES_SEG: u32 = 52;
    /// `u8 write_zeroes_may_unmap`.
    pub const WRITE_ZEROES_MAY_UNMAP: u32 = 56;
    /// The config space's size.
    pub const SIZE: u32 = 60;
}

/// A store could not do what a request asked (the driver gets `IOERR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError;

/// Where a block device's sectors live.
pub trait BlockStore {
    /// Size in sectors.
    fn sectors(&self) -> u64;
    /// Reads `buf.len() / SECTOR` sectors from `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Writes `buf.len() / SECTOR` sectors at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), IoError>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
    /// Drops `count` sectors at `sector` (they may read as anything, here
    /// zeroes).
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), IoError> {
        self.write_zeroes(sector, count)
    }
    /// Zeroes `count` sectors at `sector`.
    fn write_zeroes(&mut self, sector: u64, count: u64) -> Result<(), IoError> {
        let zero = [0u8; SECTOR];
        for s in sector..sector + count {
            self.write(s, &zero)?;
        }
        Ok(())
    }
}

/// A disk in memory: the partition's own RAM.
#[derive(Debug)]
pub struct RamDisk<'m>(pub &'m mut [u8]);

impl RamDisk<'_> {
    fn range(&self, sector: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(sector).ok()?.checked_mul(SECTOR)?;
        let end = start.checked_add(len)?;
        (end <= self.0.len()).then_some(start..end)
    }
}

impl BlockStore for RamDisk<'_> {
    fn sectors(&self) -> u64 {
        (self.0.len() / SECTOR) as u64
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let r = self.range(sector, buf.len()).ok_or(IoError)?;
        buf.copy_from_slice(&self.0[r]);
        Ok(())
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        let r = self.range(sector, buf.len()).ok_or(IoError)?;
        self.0[r].copy_from_slice(buf);
        Ok(())
    }
    fn write_zeroes(&mut self, sector: u64, count: u64) -> Result<(), IoError> {
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(SECTOR))
            .ok_or(IoError)?;
        let r = self.range(sector, len).ok_or(IoError)?;
        self.0[r].fill(0);
        Ok(())
    }
}

/// Most ranges one discard or write-zeroes request may carry.
const MAX_SEGMENTS: u32 = 16;
/// Most data segments one request may have (the chain keeps this many).
const SEG_MAX: u32 = (shmem::virtqueue::MAX_CHAIN - 2) as u32;

/// A block device over a store.
#[derive(Debug)]
pub struct Blk<S> {
    store: S,
    read_only: bool,
    /// The driver has the write cache on (`writeback`).
    writeback: bool,
    id: [u8; 20],
    /// Requests served, by outcome.
    pub stats: BlkStats,
}

/// What a block device did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkStats {
    /// Sectors read.
    pub read: u64,
    /// Sectors written.
    pub written: u64,
    /// Flushes.
    pub flushes: u64,
    /// Requests answered with an error status.
    pub errors: u64,
}

impl<S: BlockStore> Blk<S> {
    /// A device over `store`, named `id` (at most 20 bytes, as GET_ID
    /// reports it).
    pub fn new(store: S, id: &[u8], read_only: bool) -> Self {
        let mut name = [0u8; 20];
        let n = id.len().min(20);
        name[..n].copy_from_slice(&id[..n]);
        Self {
            store,
            read_only,
            writeback: true,
            id: name,
            stats: BlkStats::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// One request: its status byte.
    fn request(&mut self, io: &mut ChainIo<'_, '_>) -> Result<u8, ModelError> {
        let mut header = [0u8; 16];
        if !io.read(&mut header)? || io.writable_left() == 0 {
            return Err(ModelError::Request);
        }
        let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
        let mut buf = [0u8; SECTOR];
        let ok = |r: Result<(), IoError>| if r.is_ok() { status::OK } else { status::IOERR };
        Ok(match kind {
            request::IN => {
                // Data, then the status byte.
                let bytes = io.writable_left() - 1;
                if !bytes.is_multiple_of(SECTOR) {
                    return Ok(status::IOERR);
                }
                for i in 0..(bytes / SECTOR) as u64 {
                    if self.store.read(sector.saturating_add(i), &mut buf).is_err() {
                        return Ok(status::IOERR);
                    }
                    io.write(&buf)?;
                    self.stats.read += 1;
                }
                status::OK
            }
            request::OUT if self.read_only => status::IOERR,
            request::OUT => {
                let bytes = io.readable_left();
                if !bytes.is_multiple_of(SECTOR) {
                    return Ok(status::IOERR);
                }
                for i in 0..(bytes / SECTOR) as u64 {
                    io.read(&mut buf)?;
                    if self.store.write(sector.saturating_add(i), &buf).is_err() {
                        return Ok(status::IOERR);
                    }
                    self.stats.written += 1;
                }
                if !self.writeback {
                    // Write-through: durable before it is acknowledged.
                    ok(self.store.flush())
                } else {
                    status::OK
                }
            }
            request::FLUSH => {
                self.stats.flushes += 1;
                ok(self.store.flush())
            }
            request::GET_ID => {
                let n = (io.writable_left() - 1).min(20);
                io.write(&self.id[..n])?;
                status::OK
            }
            request::DISCARD | request::WRITE_ZEROES if self.read_only => status::IOERR,
            request::DISCARD | request::WRITE_ZEROES => {
                let mut segment = [0u8; 16];
                let mut n = 0;
                while io.readable_left() >= 16 {
                    n += 1;
                    if n > MAX_SEGMENTS {
                        return Ok(status::IOERR);
                    }
                    io.read(&mut segment)?;
                    let start = u64::from_le_bytes(segment[..8].try_into().unwrap_or([0; 8]));
                    let count = u64::from(u32::from_le_bytes(
                        segment[8..12].try_into().unwrap_or([0; 4]),
                    ));
                    let in_range = start
                        .checked_add(count)
                        .is_some_and(|end| end <= self.store.sectors());
                    if !in_range {
                        return Ok(status::IOERR);
                    }
                    let r = match kind {
                        request::DISCARD => self.store.discard(start, count),
                        _ => self.store.write_zeroes(start, count),
                    };
                    if r.is_err() {
                        return Ok(status::IOERR);
                    }
                }
                status::OK
            }
            _ => status::UNSUPP,
        })
    }
}

impl<S: BlockStore> DeviceModel for Blk<S> {
    fn device_id(&self) -> u32 {
        device_id::BLOCK
    }

    fn features(&self) -> u64 {
        let mut f = feature::SEG_MAX
            | feature::BLK_SIZE
            | feature::FLUSH
            | feature::CONFIG_WCE
            | feature::DISCARD
            | feature::WRITE_ZEROES;
        if self.read_only {
            f |= feature::RO;
        }
        f
    }

    fn queues(&self) -> u16 {
        1
    }

    fn config_size(&self) -> u32 {
        config::SIZE
    }

    fn read_config(&self, offset: u32, out: &mut [u8]) {
        let mut c = [0u8; config::SIZE as usize];
        let mut put = |at: u32, bytes: &[u8]| {
            c[at as usize..at as usize + bytes.len()].copy_from_slice(bytes)
        };
        put(config::CAPACITY, &self.store.sectors().to_le_bytes());
        put(config::SEG_MAX, &SEG_MAX.to_le_bytes());
        put(config::BLK_SIZE, &(SECTOR as u32).to_le_bytes());
        put(config::WRITEBACK, &[u8::from(self.writeback)]);
        let max = u32::try_from(self.store.sectors()).unwrap_or(u32::MAX);
        put(config::MAX_DISCARD_SECTORS, &max.to_le_bytes());
        put(config::MAX_DISCARD_SEG, &MAX_SEGMENTS.to_le_bytes());
        put(config::DISCARD_SECTOR_ALIGNMENT, &1u32.to_le_bytes());
        put(config::MAX_WRITE_ZEROES_SECTORS, &max.to_le_bytes());
        put(config::MAX_WRITE_ZEROES_SEG, &MAX_SEGMENTS.to_le_bytes());
        put(config::WRITE_ZEROES_MAY_UNMAP, &[1]);
        let start = (offset as usize).min(c.len());
        let n = out.len().min(c.len() - start);
        out[..n].copy_from_slice(&c[start..start + n]);
    }

    fn write_config(&mut self, offset: u32, data: &[u8]) {
        // Only `writeback` is the driver's to write.
        if offset <= config::WRITEBACK {
            if let Some(&v) = data.get((config::WRITEBACK - offset) as usize) {
                let was = self.writeback;
                self.writeback = v != 0;
                if was && !self.writeback {
                    let _ = self.store.flush();
                }
            }
        }
    }

    fn negotiated(&mut self, features: u64) {
        // Without CONFIG_WCE the driver cannot turn the cache off: keep it on
        // only if it may flush it.
        self.writeback = features & feature::FLUSH != 0;
    }

    fn serve(
        &mut self,
        _index: u16,
        queue: &mut DeviceQueue<'_>,
        window: &Window<'_>,
    ) -> Result<bool, ModelError> {
        serve_each(queue, |chain| {
            let mut io = ChainIo::new(window, chain);
            let st = match self.request(&mut io) {
                Ok(st) => st,
                // A request the chain cannot carry: refused, the queue goes on.
                Err(ModelError::Request) => status::IOERR,
                Err(e) => return Err(e),
            };
            // The status is the chain's last writable byte.
            let pad = [0u8; 64];
            let mut left = io.writable_left().saturating_sub(1);
            while left > 0 {
                let n = left.min(pad.len());
                io.write(&pad[..n])?;
                left -= n;
            }
            if io.writable_left() == 1 {
                io.write(&[st])?;
            }
            if st != status::OK {
                self.stats.errors += 1;
            }
            Ok(io.written() as u32)
        })
    }
}
