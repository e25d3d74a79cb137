//! The packed firmware image: the boot stage followed by a table of contents,
//! the boot plan and every partition's image and initrd.
//!
//! ```text
//! 0                 boot stage (arm64 Image header; image_size covers everything)
//! ...               its .bss and stack, zero in the file
//! toc (4 KiB-aligned, right after the boot stage's own image_size)
//!   0  magic    "AMPPACK\0"
//!   8  version  u16 (PACK_VERSION)
//!  10  count    u16 entries
//!  12  reserved u32 (zero)
//!  16  entries: kind u32, partition u32, offset u64, size u64, crc32 u32, reserved u32
//! payloads, 4 KiB-aligned, at their entries' offsets (from the start of the file)
//! ```
//!
//! Everything is little-endian. The boot stage finds the table at its own end,
//! checks every entry's bounds and checksum, and refuses to start anything if one
//! is off.

use alloc::vec::Vec;

use crate::crc32;

/// First bytes of the table of contents.
pub const PACK_MAGIC: [u8; 8] = *b"AMPPACK\0";
/// The layout this code writes and reads.
pub const PACK_VERSION: u16 = 1;
/// Payload alignment.
pub const PACK_ALIGN: usize = 0x1000;
const TOC_HEADER: usize = 16;
const ENTRY: usize = 32;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The encoded boot plan.
    Plan,
    /// A partition's image.
    Image,
    /// A partition's initramfs.
    Initrd,
}

impl EntryKind {
    fn code(self) -> u32 {
        match self {
            EntryKind::Plan => 1,
            EntryKind::Image => 2,
            EntryKind::Initrd => 3,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(EntryKind::Plan),
            2 => Some(EntryKind::Image),
            3 => Some(EntryKind::Initrd),
            _ => None,
        }
    }
}

/// One payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: EntryKind,
    /// The partition it belongs to (0 for the plan).
    pub partition: u32,
    /// Offset from the start of the packed file.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
    /// CRC-32 of the payload.
    pub crc32: u32,
}

/// Why a packed image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackError {
    /// No table of contents where the boot stage ends: a bare boot stage.
    NoTable,
    /// The table is from a newer tool.
    NewerVersion,
    /// An entry points outside the file or has an unknown kind.
    BadEntry,
    /// A payload does not match its checksum.
    BadChecksum,
    /// The boot stage's own Image header is missing or smaller than its code.
    BadBootStage,
}

impl PackError {
    /// What to tell the user.
    pub fn as_str(self) -> &'static str {
        match self {
            PackError::NoTable => "no packed payload after the boot stage",
            PackError::NewerVersion => "the packed image was made by a newer tool",
            PackError::BadEntry => "a table-of-contents entry points outside the image",
            PackError::BadChecksum => "a packed payload is corrupted (checksum mismatch)",
            PackError::BadBootStage => "the boot stage has no valid arm64 Image header",
        }
    }
}

/// Packs `boot` (the flat boot stage) with the plan and payloads
/// `(kind, partition, bytes)`, and sets the Image header's `image_size` to the
/// whole file so that loaders reserve room for all of it.
pub fn pack(boot: &[u8], payloads: &[(EntryKind, u32, &[u8])]) -> Result<Vec<u8>, PackError> {
    let own = boot_stage_size(boot)?;
    let toc = own.next_multiple_of(PACK_ALIGN);
    let mut out = Vec::from(boot);
    out.resize(toc, 0);
    let table_len = TOC_HEADER + ENTRY * payloads.len();
    let mut offset = (toc + table_len).next_multiple_of(PACK_ALIGN);
    let mut entries = Vec::new();
    for &(kind, partition, bytes) in payloads {
        entries.push(Entry {
            kind,
            partition,
            offset: offset as u64,
            size: bytes.len() as u64,
            crc32: crc32(bytes),
        });
        offset = (offset + bytes.len()).next_multiple_of(PACK_ALIGN);
    }
    out.extend_from_slice(&PACK_MAGIC);
    out.extend_from_slice(&PACK_VERSION.to_le_bytes());
    out.extend_from_slice(&(payloads.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for e in &entries {
        out.extend_from_slice(&e.kind.code().to_le_bytes());
        out.extend_from_slice(&e.partition.to_le_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&e.crc32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    for (e, &(_, _, bytes)) in entries.iter().zip(payloads) {
        out.resize(e.offset as usize, 0);
        out.extend_from_slice(bytes);
    }
    let total = out.len() as u64;
    out[16..24].copy_from_slice(&total.to_le_bytes());
    Ok(out)
}

/// The boot stage's own footprint: where its table of contents starts is this,
/// rounded up to [`PACK_ALIGN`]. Read from a bare boot stage's `image_size`.
pub fn boot_stage_size(boot: &[u8]) -> Result<usize, PackError> {
    if boot.get(0x38..0x3c) != Some(b"ARM\x64") {
        return Err(PackError::BadBootStage);
    }
    let size = u64::from_le_bytes(
        boot[16..24]
            .try_into()
            .map_err(|_| PackError::BadBootStage)?,
    ) as usize;
    if size < boot.len() {
        return Err(PackError::BadBootStage);
    }
    Ok(size)
}

/// The entries of a packed image, read from `tail`: the file from its table of
/// contents (at file offset `toc`, the boot stage's own end rounded up to
/// [`PACK_ALIGN`]) to its end. The boot stage passes only this part, never its
/// own code, data and stack. Checks bounds and checksums of every entry.
pub fn entries(tail: &[u8], toc: usize) -> Result<Vec<Entry>, PackError> {
    let header = tail.get(..TOC_HEADER).ok_or(PackError::NoTable)?;
    if header[..8] != PACK_MAGIC {
        return Err(PackError::NoTable);
    }
    if u16::from_le_bytes([header[8], header[9]]) > PACK_VERSION {
        return Err(PackError::NewerVersion);
    }
    let count = usize::from(u16::from_le_bytes([header[10], header[11]]));
    let table = tail
        .get(TOC_HEADER..TOC_HEADER + count * ENTRY)
        .ok_or(PackError::BadEntry)?;
    let mut out = Vec::with_capacity(count);
    for e in table.chunks_exact(ENTRY) {
        let u32_at = |o: usize| u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]);
        let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap_or([0; 8]));
        let entry = Entry {
            kind: EntryKind::from_code(u32_at(0)).ok_or(PackError::BadEntry)?,
            partition: u32_at(4),
            offset: u64_at(8),
            size: u64_at(16),
            crc32: u32_at(24),
        };
        let bytes = payload(tail, toc, &entry).ok_or(PackError::BadEntry)?;
        if crc32(bytes) != entry.crc32 {
            return Err(PackError::BadChecksum);
        }
        out.push(entry);
    }
    Ok(out)
}

/// An entry's bytes, if inside `tail` (the file from offset `toc` on).
pub fn payload<'i>(tail: &'i [u8], toc: usize, entry: &Entry) -> Option<&'i [u8]> {
    let start = usize::try_from(entry.offset).ok()?.checked_sub(toc)?;
    let end = start.checked_add(usize::try_from(entry.size).ok()?)?;
    tail.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot_stage() -> Vec<u8> {
        let mut b = alloc::vec![0u8; 0x100];
        b[0x38..0x3c].copy_from_slice(b"ARM\x64");
        b[16..24].copy_from_slice(&0x2345u64.to_le_bytes());
        b
    }

    #[test]
    fn round_trips_and_sets_image_size() {
        let plan = [1u8, 2, 3];
        let kernel = alloc::vec![7u8; 5000];
        let packed = pack(
            &boot_stage(),
            &[(EntryKind::Plan, 0, &plan), (EntryKind::Image, 1, &kernel)],
        )
        .unwrap();
        assert_eq!(
            u64::from_le_bytes(packed[16..24].try_into().unwrap()),
            packed.len() as u64
        );
        let toc = 0x2345usize.next_multiple_of(PACK_ALIGN);
        let e = entries(&packed[toc..], toc).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(payload(&packed[toc..], toc, &e[0]), Some(&plan[..]));
        assert_eq!(payload(&packed[toc..], toc, &e[1]), Some(&kernel[..]));
        assert_eq!(e[1].partition, 1);
        assert_eq!(e[1].offset % PACK_ALIGN as u64, 0);
    }

    #[test]
    fn refuses_what_does_not_add_up() {
        let packed = pack(&boot_stage(), &[(EntryKind::Plan, 0, &[9u8; 100])]).unwrap();
        let toc = 0x3000;
        assert_eq!(entries(&[0u8; 64], toc), Err(PackError::NoTable));
        let mut corrupt = packed.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert_eq!(entries(&corrupt[toc..], toc), Err(PackError::BadChecksum));
        assert_eq!(
            entries(&packed[toc..packed.len() - 1], toc),
            Err(PackError::BadEntry)
        );
        let mut newer = packed.clone();
        newer[toc + 8] = 9;
        assert_eq!(entries(&newer[toc..], toc), Err(PackError::NewerVersion));
        assert_eq!(pack(&[0u8; 64], &[]), Err(PackError::BadBootStage));
    }
}
