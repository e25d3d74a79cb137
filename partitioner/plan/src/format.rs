//! The boot plan on the wire: a versioned, checksummed, little-endian binary the
//! host tool writes and the boot stage reads (this module builds `no_std`).
//!
//! ```text
//! header (24 bytes)
//!   0  magic     "AMPPLAN\0"
//!   8  version   u16   (FORMAT_VERSION)
//!  10  header    u16   (header length, 24)
//!  12  length    u32   (body length in bytes)
//!  16  crc32     u32   (IEEE CRC-32 of the body)
//!  20  reserved  u32   (zero)
//! body: the plan as a sequence of fields, integers little-endian,
//!       strings and lists prefixed with a u16 count
//! ```
//!
//! Decoding checks the magic, the version, the length and the checksum before it
//! reads a field, and then bounds every count against the bytes left: a
//! truncated, corrupted or newer plan is refused with a reason, never misread.

use alloc::string::String;
use alloc::vec::Vec;

use crate::crc32;

/// The resolved partitioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Board name.
    pub board: String,
    /// Partitions in manifest order.
    pub partitions: Vec<PlannedPartition>,
    /// Links in manifest order.
    pub links: Vec<PlannedLink>,
}

/// One partition, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    /// Name.
    pub name: String,
    /// Cores as `(index under /cpus, MPIDR)`; the boot core first.
    pub cores: Vec<(u32, u64)>,
    /// Memory ranges `(base, size)`.
    pub memory: Vec<(u64, u64)>,
    /// Entry exception level.
    pub entry_el: u8,
    /// May power off or reset the whole board.
    pub system_control: bool,
    /// Owned device-tree nodes, by path.
    pub devices: Vec<String>,
    /// Console node path.
    pub console: Option<String>,
    /// Image placement, if the partition has an image.
    pub image: Option<PlannedImage>,
    /// Where its device tree is written.
    pub dtb: u64,
}

/// Where an image goes and how it is entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// Kind.
    pub kind: ImageKind,
    /// File path as the manifest wrote it.
    pub path: String,
    /// Load address (for ELF: the lowest segment).
    pub load: u64,
    /// Entry address.
    pub entry: u64,
    /// Bytes reserved from `load`.
    pub size: u64,
    /// Initramfs `(path, address, size)`.
    pub initrd: Option<(String, u64, u64)>,
    /// Kernel command line.
    pub bootargs: String,
}

/// One link, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLink {
    /// Name.
    pub name: String,
    /// Host side (owns the buffers) and remote side, as partition indexes.
    pub host: u32,
    /// Remote side.
    pub remote: u32,
    /// Window base.
    pub base: u64,
    /// Window size.
    pub size: u64,
    /// DoorbellKind kind.
    pub doorbell: DoorbellKind,
    /// SGI number for an `sgi` doorbell.
    pub sgi: Option<u32>,
    /// Vring 0 (host to remote) address.
    pub vring0: u64,
    /// Vring 1 (remote to host) address.
    pub vring1: u64,
    /// First rpmsg buffer.
    pub buffers: u64,
    /// Entries per vring.
    pub ring_entries: u32,
    /// Vring alignment.
    pub vring_align: u32,
    /// Notification IDs of vring 0 and 1, unique on the board.
    pub notify_ids: [u32; 2],
    /// AVPS devices.
    pub devices: Vec<LinkDevice>,
}

/// An AVPS device on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDevice {
    /// Kind (`console`, `net`, `block`, ...).
    pub kind: String,
    /// Virtio device ID.
    pub virtio_id: u32,
    /// Index of the providing partition.
    pub provider: u32,
    /// A disk's backing on a Linux provider (a path there), or empty.
    pub backing: String,
    /// A disk's size in bytes on a non-Linux provider, or 0 (its default).
    pub disk_size: u64,
}

/// An enum whose variants have spellings (the manifest's, and the device tree's
/// `amp,doorbell`): `ALL` lists them, `as_str`
/// gives a variant's.
macro_rules! spelled {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every variant with its manifest spelling.
            pub const ALL: &'static [(&'static str, $name)] = &[$(($text, $name::$variant),)*];

            /// The spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

spelled! {
    /// How an OS image is laid out and entered.
    ImageKind {
        /// An arm64 Linux `Image` (header with `text_offset`, `image_size`).
        Linux = "linux",
        /// An AArch64 ELF executable, placed by its program headers.
        Elf = "elf",
        /// A flat binary loaded and entered at `load-address`.
        Raw = "raw",
    }
}

spelled! {
    /// How one side of a link tells the other to look at the rings.
    DoorbellKind {
        /// No interrupt: the peer polls.
        Poll = "poll",
        /// An Arm software-generated interrupt to the peer's cores.
        Sgi = "sgi",
        /// A mailbox register.
        Mailbox = "mailbox",
    }
}

/// First bytes of every plan.
pub const MAGIC: [u8; 8] = *b"AMPPLAN\0";
/// The format this code writes and reads.
pub const FORMAT_VERSION: u16 = 3;
const HEADER_LEN: usize = 24;

/// Why a plan was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header says.
    Truncated,
    /// Not a plan.
    BadMagic,
    /// Written by a newer tool.
    NewerVersion {
        /// Version found.
        found: u16,
        /// Newest this code reads.
        supported: u16,
    },
    /// The body does not match its checksum.
    BadChecksum,
    /// A field is out of range (a bug in the writer, or a forged checksum).
    Malformed,
}

impl DecodeError {
    /// What to tell the user.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::Truncated => "boot plan is truncated",
            DecodeError::BadMagic => "not a boot plan (bad magic)",
            DecodeError::NewerVersion { .. } => {
                "boot plan was written by a newer tool; rebuild the image with this one"
            }
            DecodeError::BadChecksum => "boot plan is corrupted (checksum mismatch)",
            DecodeError::Malformed => "boot plan has a field out of range",
        }
    }
}

/// Encodes a plan.
pub fn encode(plan: &Plan) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.str(&plan.board);
    w.count(plan.partitions.len());
    for p in &plan.partitions {
        w.str(&p.name);
        w.count(p.cores.len());
        for &(i, mpidr) in &p.cores {
            w.u32(i);
            w.u64(mpidr);
        }
        w.ranges(&p.memory);
        w.u8(p.entry_el);
        w.u8(u8::from(p.system_control));
        w.count(p.devices.len());
        for d in &p.devices {
            w.str(d);
        }
        w.str(p.console.as_deref().unwrap_or(""));
        w.u64(p.dtb);
        match &p.image {
            None => w.u8(0),
            Some(i) => {
                w.u8(match i.kind {
                    ImageKind::Linux => 1,
                    ImageKind::Elf => 2,
                    ImageKind::Raw => 3,
                });
                w.str(&i.path);
                w.u64(i.load);
                w.u64(i.entry);
                w.u64(i.size);
                match &i.initrd {
                    None => w.u8(0),
                    Some((path, at, len)) => {
                        w.u8(1);
                        w.str(path);
                        w.u64(*at);
                        w.u64(*len);
                    }
                }
                w.str(&i.bootargs);
            }
        }
    }
    w.count(plan.links.len());
    for l in &plan.links {
        w.str(&l.name);
        w.u32(l.host);
        w.u32(l.remote);
        w.u64(l.base);
        w.u64(l.size);
        w.u8(match l.doorbell {
            DoorbellKind::Poll => 0,
            DoorbellKind::Sgi => 1,
            DoorbellKind::Mailbox => 2,
        });
        w.u32(l.sgi.unwrap_or(u32::MAX));
        w.u64(l.vring0);
        w.u64(l.vring1);
        w.u64(l.buffers);
        w.u32(l.ring_entries);
        w.u32(l.vring_align);
        w.u32(l.notify_ids[0]);
        w.u32(l.notify_ids[1]);
        w.count(l.devices.len());
        for d in &l.devices {
            w.str(&d.kind);
            w.u32(d.virtio_id);
            w.u32(d.provider);
            w.str(&d.backing);
            w.u64(d.disk_size);
        }
    }
    let body = w.0;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a plan, checking it whole first.
pub fn decode(bytes: &[u8]) -> Result<Plan, DecodeError> {
    let header = bytes.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
    if header[..8] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version > FORMAT_VERSION {
        return Err(DecodeError::NewerVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let header_len = usize::from(u16::from_le_bytes([header[10], header[11]]));
    let body_len = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
    let crc = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    let reserved = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
    // Older versions laid the body out differently: refuse rather than misread.
    if version != FORMAT_VERSION || header_len < HEADER_LEN || reserved != 0 {
        return Err(DecodeError::Malformed);
    }
    let body = bytes
        .get(header_len..)
        .and_then(|b| b.get(..body_len))
        .ok_or(DecodeError::Truncated)?;
    if crc32(body) != crc {
        return Err(DecodeError::BadChecksum);
    }
    let mut r = Reader(body);
    let plan = r.plan().ok_or(DecodeError::Malformed)?;
    if !r.0.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(plan)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn count(&mut self, n: usize) {
        self.0
            .extend_from_slice(&(n.min(usize::from(u16::MAX)) as u16).to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
        self.count(bytes.len());
        self.0.extend_from_slice(bytes);
    }
    fn ranges(&mut self, ranges: &[(u64, u64)]) {
        self.count(ranges.len());
        for &(b, s) in ranges {
            self.u64(b);
            self.u64(s);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A count, refused if even minimal items of `min_item` bytes could not fit.
    fn count(&mut self, min_item: usize) -> Option<usize> {
        let n = usize::from(self.u16()?);
        (n.checked_mul(min_item)? <= self.0.len()).then_some(n)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn plan(&mut self) -> Option<Plan> {
        let board = self.str()?;
        let mut partitions = Vec::new();
        for _ in 0..self.count(2)? {
            partitions.push(self.partition()?);
        }
        let mut links = Vec::new();
        for _ in 0..self.count(2)? {
            links.push(self.link()?);
        }
        Some(Plan {
            board,
            partitions,
            links,
        })
    }
    fn partition(&mut self) -> Option<PlannedPartition> {
        let name = self.str()?;
        let mut cores = Vec::new();
        for _ in 0..self.count(12)? {
            cores.push((self.u32()?, self.u64()?));
        }
        let mut memory = Vec::new();
        for _ in 0..self.count(16)? {
            memory.push((self.u64()?, self.u64()?));
        }
        let entry_el = self.u8()?;
        let system_control = match self.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let mut devices = Vec::new();
        for _ in 0..self.count(2)? {
            devices.push(self.str()?);
        }
        let console = Some(self.str()?).filter(|c| !c.is_empty());
        let dtb = self.u64()?;
        let image = match self.u8()? {
            0 => None,
            k => {
                let kind = match k {
                    1 => ImageKind::Linux,
                    2 => ImageKind::Elf,
                    3 => ImageKind::Raw,
                    _ => return None,
                };
                let path = self.str()?;
                let (load, entry, size) = (self.u64()?, self.u64()?, self.u64()?);
                let initrd = match self.u8()? {
                    0 => None,
                    1 => Some((self.str()?, self.u64()?, self.u64()?)),
                    _ => return None,
                };
                let bootargs = self.str()?;
                Some(PlannedImage {
                    kind,
                    path,
                    load,
                    entry,
                    size,
                    initrd,
                    bootargs,
                })
            }
        };
        Some(PlannedPartition {
            name,
            cores,
            memory,
            entry_el,
            system_control,
            devices,
            console,
            image,
            dtb,
        })
    }
    fn link(&mut self) -> Option<PlannedLink> {
        let name = self.str()?;
        let (host, remote, base, size) = (self.u32()?, self.u32()?, self.u64()?, self.u64()?);
        let doorbell = match self.u8()? {
            0 => DoorbellKind::Poll,
            1 => DoorbellKind::Sgi,
            2 => DoorbellKind::Mailbox,
            _ => return None,
        };
        let sgi = Some(self.u32()?).filter(|&s| s != u32::MAX);
        let (vring0, vring1, buffers) = (self.u64()?, self.u64()?, self.u64()?);
        let (ring_entries, vring_align) = (self.u32()?, self.u32()?);
        let notify_ids = [self.u32()?, self.u32()?];
        let mut devices = Vec::new();
        for _ in 0..self.count(10)? {
            devices.push(LinkDevice {
                kind: self.str()?,
                virtio_id: self.u32()?,
                provider: self.u32()?,
                backing: self.str()?,
                disk_size: self.u64()?,
            });
        }
        Some(PlannedLink {
            name,
            host,
            remote,
            base,
            size,
            doorbell,
            sgi,
            vring0,
            vring1,
            buffers,
            ring_entries,
            vring_align,
            notify_ids,
            devices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        Plan {
            board: "qemu-virt".into(),
            partitions: alloc::vec![PlannedPartition {
                name: "linux".into(),
                cores: alloc::vec![(0, 0), (1, 1)],
                memory: alloc::vec![(0x4000_0000, 0x2000_0000)],
                entry_el: 1,
                system_control: false,
                devices: alloc::vec!["/pl011@9000000".into()],
                console: Some("/pl011@9000000".into()),
                image: Some(PlannedImage {
                    kind: ImageKind::Linux,
                    path: "Image".into(),
                    load: 0x4020_0000,
                    entry: 0x4020_0000,
                    size: 0x100_0000,
                    initrd: Some(("initrd.cpio".into(), 0x4200_0000, 0x10_0000)),
                    bootargs: "console=ttyAMA0".into(),
                }),
                dtb: 0x5fe0_0000,
            }],
            links: alloc::vec![PlannedLink {
                name: "linux-rtos".into(),
                host: 0,
                remote: 1,
                base: 0x7000_0000,
                size: 0x10_0000,
                doorbell: DoorbellKind::Sgi,
                sgi: Some(8),
                vring0: 0x7000_1000,
                vring1: 0x7000_4000,
                buffers: 0x7000_7000,
                ring_entries: 256,
                vring_align: 0x1000,
                notify_ids: [0, 1],
                devices: alloc::vec![LinkDevice {
                    kind: "console".into(),
                    virtio_id: 3,
                    provider: 1,
                    backing: String::new(),
                    disk_size: 0,
                }],
            }],
        }
    }

    #[test]
    fn round_trips() {
        let plan = sample();
        assert_eq!(decode(&encode(&plan)), Ok(plan));
    }

    #[test]
    fn refuses_truncated_corrupted_and_newer_plans() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "byte {i} flipped");
        }
        let mut newer = bytes.clone();
        newer[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(
            decode(&newer),
            Err(DecodeError::NewerVersion {
                found: FORMAT_VERSION + 1,
                supported: FORMAT_VERSION
            })
        );
        assert_eq!(decode(b"AMPPLAX\0"), Err(DecodeError::Truncated));
        let mut magic = bytes;
        magic[0] = b'X';
        assert_eq!(decode(&magic), Err(DecodeError::BadMagic));
    }
}
