//! The manifest model: what an integrator writes, with every value's position in
//! the source kept for diagnostics. Read from TOML by [`crate::parse`] on the host.

use alloc::string::String;
use alloc::vec::Vec;

pub use amp_plan::{DoorbellKind, ImageKind};

use crate::diag::{Span, Spanned};

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The board name (see `boards::BOARDS`).
    pub board: Spanned<String>,
    /// Partitions in the order written.
    pub partitions: Vec<Partition>,
    /// Shared-memory links in the order written.
    pub links: Vec<ManifestLink>,
}

/// One operating system's share of the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Name, unique in the manifest.
    pub name: Spanned<String>,
    /// The whole `[[partition]]` table.
    pub span: Span,
    /// Core indexes, in the order `/cpus` lists them in the board tree.
    pub cores: Spanned<Vec<Spanned<u32>>>,
    /// The core the OS is entered on (default: the first listed).
    pub boot_core: Option<Spanned<u32>>,
    /// Memory ranges; the first holds the image.
    pub memory: Vec<MemoryRange>,
    /// Owned devices, by device-tree path or label; their interrupts follow.
    pub devices: Vec<Spanned<String>>,
    /// The device the OS prints on (path or label), one of `devices`.
    pub console: Option<Spanned<String>>,
    /// What to boot.
    pub image: Option<Image>,
    /// Exception level the OS is entered at (1 or 2; default 1).
    pub entry_el: Option<Spanned<u8>>,
    /// The OS may power off or reset the whole board (default false: its
    /// power-off and reboot stop only its own cores).
    pub system_control: Option<Spanned<bool>>,
}

impl Partition {
    /// The boot core: the one given, or the first listed.
    pub fn boot_core(&self) -> Option<u32> {
        self.boot_core
            .as_ref()
            .map(|c| c.value)
            .or_else(|| self.cores.value.first().map(|c| c.value))
    }

    /// The entry exception level (default 1).
    pub fn entry_el(&self) -> u8 {
        self.entry_el.as_ref().map_or(1, |e| e.value)
    }
}

/// A physical memory range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRange {
    /// First byte.
    pub base: Spanned<u64>,
    /// Length.
    pub size: Spanned<u64>,
    /// The whole `{ base, size }`.
    pub span: Span,
}

impl MemoryRange {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.value.saturating_add(self.size.value)
    }
}

/// A partition's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Kind.
    pub kind: Spanned<ImageKind>,
    /// File path, relative to the images folder.
    pub path: Spanned<String>,
    /// Linux: initramfs file.
    pub initrd: Option<Spanned<String>>,
    /// Linux: kernel command line.
    pub bootargs: Option<Spanned<String>>,
    /// Raw: load and entry address.
    pub load_address: Option<Spanned<u64>>,
    /// The whole `image` table.
    pub span: Span,
}

/// A shared-memory link between two partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestLink {
    /// Name, unique in the manifest.
    pub name: Spanned<String>,
    /// The whole `[[link]]` table.
    pub span: Span,
    /// The two partitions it joins; the first is the host side (owns the
    /// buffers, like Linux's remoteproc).
    pub between: Spanned<Vec<Spanned<String>>>,
    /// Window size.
    pub size: Spanned<u64>,
    /// Window base, placed by the planner when absent.
    pub base: Option<Spanned<u64>>,
    /// DoorbellKind kind (default: poll).
    pub doorbell: Option<Spanned<DoorbellKind>>,
    /// AVPS virtio devices carried over the link.
    pub devices: Vec<AvpsDevice>,
}

/// An AVPS virtio device on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvpsDevice {
    /// Device kind (`console`, `net`, ...).
    pub kind: Spanned<String>,
    /// The partition that implements the device (the other side drives it).
    pub provider: Spanned<String>,
    /// A block device's size, when a non-Linux partition provides it (a RAM
    /// disk in its memory).
    pub size: Option<Spanned<u64>>,
    /// What backs a block device a Linux partition provides: a file or
    /// block device on that partition.
    pub backing: Option<Spanned<String>>,
    /// The whole entry.
    pub span: Span,
}

/// AVPS device kinds a link can carry over rpmsg, with their virtio device IDs
/// (virtio spec 1.2, section 5).
pub const AVPS_KINDS: &[(&str, u32)] = &[
    ("net", 1),
    ("block", 2),
    ("console", 3),
    ("rng", 4),
    ("vsock", 19),
    ("i2c", 34),
    ("gpio", 41),
    ("can", 36),
];

/// Parses `"512M"`-style sizes: a number with an optional `K`, `M` or `G`
/// (binary multiples), underscores allowed.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    let value: u64 = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse().ok()?
    };
    value.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1_024K"), Some(1 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("0x1000"), Some(0x1000));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("99999999999G"), None);
        assert_eq!(parse_size(""), None);
    }
}
