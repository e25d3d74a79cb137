//! Just enough ELF64 to place an AArch64 executable: its header and loadable
//! segments, every field bounds-checked. Shared by the rules (does it fit?) and
//! the boot stage (copy it there).
//!
//! An `ET_EXEC` image is placed at its segments' physical addresses; an
//! `ET_DYN` (position-independent) image at the start of its partition's first
//! memory range plus each segment's virtual address.

/// `e_machine` of AArch64.
pub const EM_AARCH64: u16 = 183;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PHDR_SIZE: usize = 56;

/// Why bytes are not a usable ELF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// No ELF magic.
    NotElf,
    /// Not 64-bit little-endian.
    WrongClass,
    /// Not AArch64 (the machine found).
    WrongMachine(u16),
    /// Program headers outside the bytes given.
    BadProgramHeaders,
    /// No loadable segment.
    NothingToLoad,
}

/// A parsed ELF header.
#[derive(Debug, Clone, Copy)]
pub struct Elf<'a> {
    bytes: &'a [u8],
    /// Position-independent (`ET_DYN`).
    pub relocatable: bool,
    /// `e_entry`.
    pub entry: u64,
    phoff: usize,
    phnum: usize,
    phentsize: usize,
}

/// One loadable segment, placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Where it goes.
    pub addr: u64,
    /// Offset of its bytes in the file.
    pub offset: u64,
    /// Bytes copied from the file.
    pub filesz: u64,
    /// Bytes it occupies (the rest zeroed).
    pub memsz: u64,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

impl<'a> Elf<'a> {
    /// Parses the header; `bytes` must hold at least the program headers.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        if bytes.get(..4) != Some(b"\x7fELF") {
            return Err(ElfError::NotElf);
        }
        if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
            return Err(ElfError::WrongClass);
        }
        let machine = u16_at(bytes, 18).ok_or(ElfError::NotElf)?;
        if machine != EM_AARCH64 {
            return Err(ElfError::WrongMachine(machine));
        }
        let phoff = u64_at(bytes, 0x20).ok_or(ElfError::BadProgramHeaders)? as usize;
        let phentsize = usize::from(u16_at(bytes, 0x36).ok_or(ElfError::BadProgramHeaders)?);
        let phnum = usize::from(u16_at(bytes, 0x38).ok_or(ElfError::BadProgramHeaders)?);
        let end = phentsize
            .checked_mul(phnum)
            .and_then(|n| phoff.checked_add(n));
        if phentsize < PHDR_SIZE || end.is_none_or(|e| e > bytes.len()) {
            return Err(ElfError::BadProgramHeaders);
        }
        let elf = Elf {
            bytes,
            relocatable: u16_at(bytes, 16) == Some(ET_DYN),
            entry: u64_at(bytes, 0x18).unwrap_or(0),
            phoff,
            phnum,
            phentsize,
        };
        if elf.segments(0).next().is_none() {
            return Err(ElfError::NothingToLoad);
        }
        Ok(elf)
    }

    /// Where a relocatable image is loaded: `base`; otherwise 0.
    pub fn bias(&self, base: u64) -> u64 {
        if self.relocatable {
            base
        } else {
            0
        }
    }

    /// The entry address once placed with `base` (see [`Elf::bias`]).
    pub fn entry_at(&self, base: u64) -> u64 {
        self.entry.wrapping_add(self.bias(base))
    }

    /// Loadable, non-empty segments, placed with `base`.
    pub fn segments(&self, base: u64) -> impl Iterator<Item = Segment> + 'a {
        let (bytes, phoff, phentsize, bias, relocatable) = (
            self.bytes,
            self.phoff,
            self.phentsize,
            self.bias(base),
            self.relocatable,
        );
        (0..self.phnum).filter_map(move |i| {
            let ph = phoff + i * phentsize;
            if u32_at(bytes, ph)? != PT_LOAD {
                return None;
            }
            let at = if relocatable {
                u64_at(bytes, ph + 16)?
            } else {
                u64_at(bytes, ph + 24)?
            };
            let seg = Segment {
                addr: at.checked_add(bias)?,
                offset: u64_at(bytes, ph + 8)?,
                filesz: u64_at(bytes, ph + 32)?,
                memsz: u64_at(bytes, ph + 40)?,
            };
            (seg.memsz > 0 && seg.filesz <= seg.memsz).then_some(seg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(e_type: u16, vaddr: u64, paddr: u64) -> [u8; 120] {
        let mut b = [0u8; 120];
        b[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&1u32.to_le_bytes());
        b[64 + 16..64 + 24].copy_from_slice(&vaddr.to_le_bytes());
        b[64 + 24..64 + 32].copy_from_slice(&paddr.to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&0x10u64.to_le_bytes());
        b[64 + 40..64 + 48].copy_from_slice(&0x20u64.to_le_bytes());
        b
    }

    #[test]
    fn executables_go_to_their_physical_addresses() {
        let b = header(2, 0xffff_0000, 0x6000_0000);
        let elf = Elf::parse(&b).unwrap();
        assert_eq!(elf.segments(0x4000_0000).next().unwrap().addr, 0x6000_0000);
        assert_eq!(elf.entry_at(0x4000_0000), 0x40);
    }

    #[test]
    fn position_independent_images_go_to_the_partition() {
        let b = header(3, 0x1000, 0);
        let elf = Elf::parse(&b).unwrap();
        assert_eq!(elf.segments(0x4000_0000).next().unwrap().addr, 0x4000_1000);
        assert_eq!(elf.entry_at(0x4000_0000), 0x4000_0040);
    }

    #[test]
    fn refuses_what_is_not_an_aarch64_elf() {
        let mut b = header(2, 0, 0);
        b[18] = 62;
        assert_eq!(Elf::parse(&b).err(), Some(ElfError::WrongMachine(62)));
        assert_eq!(Elf::parse(&b[..70]).err(), Some(ElfError::WrongMachine(62)));
        assert_eq!(Elf::parse(b"hello").err(), Some(ElfError::NotElf));
        let b = header(2, 0, 0);
        assert_eq!(
            Elf::parse(&b[..100]).err(),
            Some(ElfError::BadProgramHeaders)
        );
    }
}
