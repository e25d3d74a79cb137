//! What the boot stage does with a packed image, decided without touching the
//! machine: open the packed payloads and the plan, check the plan against the
//! hardware found at boot, and turn it into the list of things to do, namely
//! the bytes to copy where, the device tree each partition gets, the windows
//! to clear, the interrupts to route and the cores to start, or the reason to
//! start nothing. The boot stage only carries the list out, so every decision
//! here runs (and is tested) on the host as well.
//!
//! Nothing here knows a board: the GIC the routes are for and how its
//! interrupt specifiers decode are the board crate's to say, so a route keeps
//! the specifier as the device tree wrote it.

use alloc::string::String;
use alloc::vec::Vec;

use amp_plan::dt::{DeviceTree, DtError};
use amp_plan::format::DecodeError;
use amp_plan::pack::{self, Entry, EntryKind, PackError};
use amp_plan::{ImageKind, Plan, PlannedPartition};

use crate::elf::Elf;
use crate::recheck::{recheck, Mismatch};
use crate::rules::overlaps;
use crate::tree::{Tree, ROOT};
use amp_plan::layout::DTB_ROOM;

/// Bytes at the end of a partition's device-tree room kept for a spin-table
/// trampoline (a spin table passes no argument, the trampoline loads `x0`).
pub const TRAMPOLINE_ROOM: u64 = 32;

/// Why nothing is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<'p> {
    /// The table of contents after the boot stage is missing or broken.
    Pack(PackError),
    /// The packed image holds no plan.
    NoPlan,
    /// The plan does not decode.
    Plan(DecodeError),
    /// The board is none the boot stage knows, so it has no region to run in.
    NoBootRegion,
    /// A partition is to be entered at a higher exception level than the
    /// boot stage runs at.
    EntryLevel {
        /// The partition.
        partition: &'p str,
        /// The level it asks for.
        wanted: u8,
        /// The level the boot stage runs at.
        current: u8,
    },
    /// The plan does not fit the hardware.
    Mismatch(Mismatch<'p>),
    /// The boot stage does not fit its region.
    BootStageTooLarge,
    /// The loader put the packed image over the boot stage's region.
    PackageOverBootRegion,
    /// The board's device tree does not parse as an owned tree.
    Tree(DtError),
    /// An image the plan names is not packed.
    ImageNotPacked,
    /// A packed ELF image does not parse.
    BadElf,
    /// A packed ELF segment's offset or size is out of range.
    SegmentOutOfRange,
    /// A packed ELF segment lies outside its file.
    SegmentOutsideFile,
    /// An initrd the plan names is not packed.
    InitrdNotPacked,
    /// An image would land outside its partition's memory.
    ImageOutsideMemory,
    /// A partition's device tree is larger than the room the plan keeps.
    TreeTooLarge,
}

impl Refusal<'_> {
    /// What to tell the user, for the refusals that name nothing; `None` for
    /// [`Refusal::EntryLevel`] and [`Refusal::Mismatch`], which the caller
    /// words with their fields.
    pub fn as_str(&self) -> Option<&'static str> {
        Some(match *self {
            Refusal::Pack(e) => e.as_str(),
            Refusal::NoPlan => "the packed image holds no plan",
            Refusal::Plan(e) => e.as_str(),
            Refusal::NoBootRegion => {
                "this board is not a supported one, so the boot stage has no region of its own"
            }
            Refusal::EntryLevel { .. } | Refusal::Mismatch(_) => return None,
            Refusal::BootStageTooLarge => "the boot stage is larger than its region",
            Refusal::PackageOverBootRegion => {
                "the loader placed the packed image over the boot stage's region"
            }
            Refusal::Tree(e) => e.as_str(),
            Refusal::ImageNotPacked => "an image named by the plan is not packed",
            Refusal::BadElf => "a packed ELF image does not parse",
            Refusal::SegmentOutOfRange => "a packed ELF segment is out of range",
            Refusal::SegmentOutsideFile => "a packed ELF segment lies outside its file",
            Refusal::InitrdNotPacked => "an initrd named by the plan is not packed",
            Refusal::ImageOutsideMemory => "an image would land outside its partition's memory",
            Refusal::TreeTooLarge => {
                "a partition's device tree is larger than the room kept for it"
            }
        })
    }
}

/// A packed image, opened: its entries (each checked against its checksum)
/// and the decoded plan.
#[derive(Debug)]
pub struct Opened<'p> {
    /// The packed file from its table of contents on.
    tail: &'p [u8],
    /// The table's offset in the file.
    toc: usize,
    /// The packed payloads.
    pub entries: Vec<Entry>,
    /// The boot plan.
    pub plan: Plan,
}

/// Opens the packed image: `tail` is the file from its table of contents (at
/// file offset `toc`) to its end.
pub fn open(tail: &[u8], toc: usize) -> Result<Opened<'_>, Refusal<'static>> {
    let entries = pack::entries(tail, toc).map_err(Refusal::Pack)?;
    let (_, bytes) = entry(tail, toc, &entries, EntryKind::Plan, 0).ok_or(Refusal::NoPlan)?;
    let plan = amp_plan::format::decode(bytes).map_err(Refusal::Plan)?;
    Ok(Opened {
        tail,
        toc,
        entries,
        plan,
    })
}

impl Opened<'_> {
    /// The payload of `kind` for `partition`, with its offset in the file.
    fn entry(&self, kind: EntryKind, partition: u32) -> Option<(usize, &[u8])> {
        entry(self.tail, self.toc, &self.entries, kind, partition)
    }
}

/// The payload of `kind` for `partition` in `tail` (the file from offset
/// `toc` on), with its offset in the file.
fn entry<'t>(
    tail: &'t [u8],
    toc: usize,
    entries: &[Entry],
    kind: EntryKind,
    partition: u32,
) -> Option<(usize, &'t [u8])> {
    let e = entries
        .iter()
        .find(|e| e.kind == kind && e.partition == partition)?;
    Some((
        usize::try_from(e.offset).ok()?,
        pack::payload(tail, toc, e)?,
    ))
}

/// Checks the plan against the machine: the tree the loader handed over, its
/// DRAM (`dram`: the tree's, or the board's defaults), the boot stage's region
/// (`None` on a board the boot stage does not know) and the exception level
/// it runs at. Returns the boot stage's region.
pub fn check<'p>(
    plan: &'p Plan,
    tree: &DeviceTree<'_>,
    dram: &[(u64, u64)],
    boot_region: Option<(u64, u64)>,
    current_el: u8,
) -> Result<(u64, u64), Refusal<'p>> {
    let region = boot_region.ok_or(Refusal::NoBootRegion)?;
    if let Some(p) = plan.partitions.iter().find(|p| p.entry_el > current_el) {
        return Err(Refusal::EntryLevel {
            partition: &p.name,
            wanted: p.entry_el,
            current: current_el,
        });
    }
    recheck(plan, tree, dram, Some(region)).map_err(Refusal::Mismatch)?;
    Ok(region)
}

/// Where the boot stage moves before it applies the plan: the start of its
/// region, if its `own_size` bytes fit there and the packed image (`packed`:
/// where the loader put it, and its length) is not in the way.
pub fn relocation(
    own_size: u64,
    packed: (u64, u64),
    region: (u64, u64),
) -> Result<u64, Refusal<'static>> {
    if own_size > region.1 {
        return Err(Refusal::BootStageTooLarge);
    }
    if overlaps(packed, region) {
        return Err(Refusal::PackageOverBootRegion);
    }
    Ok(region.0)
}

/// One copy into a partition's memory: `len` bytes from offset `src` of the
/// packed file to address `dest`, then `zero` bytes of zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Where the bytes go.
    pub dest: u64,
    /// Where they are in the packed file.
    pub src: usize,
    /// How many.
    pub len: usize,
    /// Zeros after them (an ELF segment's `.bss`, a kernel's reserved room).
    pub zero: u64,
}

impl Load {
    /// The bytes it writes: `(dest, len + zero)`.
    pub fn written(&self) -> (u64, u64) {
        (self.dest, (self.len as u64).saturating_add(self.zero))
    }
}

/// The interrupt controller the routes are for: the board tree's root
/// interrupt parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Its `compatible` strings.
    pub compatibles: Vec<String>,
    /// Its first register range's address.
    pub base: u64,
}

/// One interrupt of a partition's device, to go to its boot core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The specifier cells, as the board tree writes them.
    pub specifier: Vec<u32>,
    /// The partition's boot core.
    pub mpidr: u64,
}

/// One partition to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The partition.
    pub name: String,
    /// Its boot core.
    pub mpidr: u64,
    /// Its image's entry point.
    pub entry: u64,
    /// Its device tree, which the entry point gets in `x0`.
    pub dtb: u64,
    /// The core's spin-table release address, if it is started that way.
    pub release: Option<u64>,
    /// Where a spin-table trampoline goes: the end of the tree's room.
    pub trampoline: u64,
}

/// Everything to do, owned: the boot stage reads no device tree or packed
/// payload through a reference after this, since doing it overwrites both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Images, segments and initrds to copy.
    pub loads: Vec<Load>,
    /// Device trees to write: `(address, blob)`.
    pub trees: Vec<(u64, Vec<u8>)>,
    /// Link windows to clear: `(base, size)`.
    pub windows: Vec<(u64, u64)>,
    /// The controller to route on, if the board tree names one.
    pub controller: Option<Controller>,
    /// Interrupts to route on it.
    pub routes: Vec<Route>,
    /// Partitions to start, in plan order.
    pub starts: Vec<Start>,
}

/// Turns an opened, checked plan into what to do: `board` is the device tree
/// the loader handed over (`tree` read it).
pub fn prepare<'p>(
    opened: &'p Opened<'_>,
    board: &[u8],
    tree: &DeviceTree<'_>,
) -> Result<Prepared, Refusal<'p>> {
    let plan = &opened.plan;
    let board_tree = Tree::parse(board).map_err(Refusal::Tree)?;
    let mut loads = Vec::new();
    for (index, p) in plan.partitions.iter().enumerate() {
        loads.extend(partition_loads(opened, index as u32, p)?);
    }
    let mut trees = Vec::new();
    for (index, p) in plan.partitions.iter().enumerate() {
        let blob = crate::dtgen::partition_tree(&board_tree, plan, index).to_blob();
        if blob.len() as u64 > DTB_ROOM - TRAMPOLINE_ROOM {
            return Err(Refusal::TreeTooLarge);
        }
        trees.push((p.dtb, blob));
    }
    let (controller, routes) = interrupts(&board_tree, plan);
    let starts = plan
        .partitions
        .iter()
        .filter_map(|p| {
            let mpidr = p.cores.first()?.1;
            let cpu = tree.cpus().find(|c| c.mpidr == Some(mpidr));
            Some(Start {
                name: p.name.clone(),
                mpidr,
                entry: p.image.as_ref()?.entry,
                dtb: p.dtb,
                release: cpu
                    .filter(|c| c.enable_method == Some("spin-table"))
                    .and_then(|c| c.release_addr),
                trampoline: p.dtb + DTB_ROOM - TRAMPOLINE_ROOM,
            })
        })
        .collect();
    Ok(Prepared {
        loads,
        trees,
        windows: plan.links.iter().map(|l| (l.base, l.size)).collect(),
        controller,
        routes,
        starts,
    })
}

/// What to copy for one partition: its image (an ELF segment by segment) and
/// its initrd, all of it inside the partition's memory.
fn partition_loads<'p>(
    opened: &Opened<'_>,
    index: u32,
    p: &PlannedPartition,
) -> Result<Vec<Load>, Refusal<'p>> {
    let mut loads = Vec::new();
    let Some(image) = &p.image else {
        return Ok(loads);
    };
    let (at, bytes) = opened
        .entry(EntryKind::Image, index)
        .ok_or(Refusal::ImageNotPacked)?;
    match image.kind {
        ImageKind::Linux | ImageKind::Raw => loads.push(Load {
            dest: image.load,
            src: at,
            len: bytes.len(),
            zero: image.size.saturating_sub(bytes.len() as u64),
        }),
        ImageKind::Elf => {
            let elf = Elf::parse(bytes).map_err(|_| Refusal::BadElf)?;
            let base = p.memory.first().map_or(0, |m| m.0);
            for seg in elf.segments(base) {
                let (Ok(off), Ok(len)) = (usize::try_from(seg.offset), usize::try_from(seg.filesz))
                else {
                    return Err(Refusal::SegmentOutOfRange);
                };
                if off.checked_add(len).is_none_or(|end| end > bytes.len()) {
                    return Err(Refusal::SegmentOutsideFile);
                }
                loads.push(Load {
                    dest: seg.addr,
                    src: at + off,
                    len,
                    zero: seg.memsz - seg.filesz,
                });
            }
        }
    }
    if let Some((_, dest, _)) = &image.initrd {
        let (at, initrd) = opened
            .entry(EntryKind::Initrd, index)
            .ok_or(Refusal::InitrdNotPacked)?;
        loads.push(Load {
            dest: *dest,
            src: at,
            len: initrd.len(),
            zero: 0,
        });
    }
    let inside = |l: &Load| {
        let (dest, len) = l.written();
        let end = dest.saturating_add(len);
        p.memory
            .iter()
            .any(|&(b, s)| dest >= b && end <= b.saturating_add(s))
    };
    if loads.iter().all(inside) {
        Ok(loads)
    } else {
        Err(Refusal::ImageOutsideMemory)
    }
}

/// The root interrupt controller, and every interrupt of each partition's
/// devices that goes to it, for that partition's boot core.
fn interrupts(board: &Tree, plan: &Plan) -> (Option<Controller>, Vec<Route>) {
    let root_ic = board
        .prop(ROOT, "interrupt-parent")
        .and_then(|v| amp_plan::cells::read_cells(v, 1))
        .and_then(|p| board.by_phandle(p as u32));
    let controller = root_ic.and_then(|ic| {
        Some(Controller {
            compatibles: board
                .prop_strings(ic, "compatible")
                .map(String::from)
                .collect(),
            base: board.reg(ic).first().copied().flatten()?.0,
        })
    });
    let mut routes = Vec::new();
    for p in &plan.partitions {
        let Some(&(_, mpidr)) = p.cores.first() else {
            continue;
        };
        for id in p.devices.iter().filter_map(|path| board.find(path)) {
            for (ctrl, specifier) in board.interrupts(id) {
                if Some(ctrl) == root_ic {
                    routes.push(Route { specifier, mpidr });
                }
            }
        }
    }
    (controller, routes)
}

/// On a small tree made with the planner's own tree writer, so that these run
/// anywhere; `tests/tests/prepare.rs` runs the same on the real board trees.
#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::host::validate_and_plan;
    use crate::rules::Images;
    use crate::tree::{cells_value, number_cells, string_value};
    use amp_plan::dt::DeviceTree;

    const MANIFEST: &str = r#"
board = "small"

[[partition]]
name = "a"
system-control = true
cores = [0, 1]
memory = [{ base = 0x4000_0000, size = "64M" }]
devices = ["/uart@9000000"]
console = "/uart@9000000"
image = { kind = "elf", path = "a.elf" }

[[partition]]
name = "b"
cores = [2]
memory = [{ base = 0x4800_0000, size = "64M" }]
devices = ["/rtc@9010000"]
image = { kind = "elf", path = "b.elf" }

[[link]]
name = "a-b"
between = ["a", "b"]
shmem = { size = "1M" }
devices = [{ kind = "console", provider = "b" }]
"#;

    /// Four PSCI cores, 1 GiB at 0x4000_0000, a GICv3, a UART and an RTC on
    /// SPIs 1 and 2.
    fn board() -> Vec<u8> {
        let mut t = Tree::new();
        let u64s = |v: &[u64]| {
            cells_value(
                &v.iter()
                    .flat_map(|&x| number_cells(x, 2))
                    .collect::<Vec<_>>(),
            )
        };
        t.set_prop(ROOT, "#address-cells", cells_value(&[2]));
        t.set_prop(ROOT, "#size-cells", cells_value(&[2]));
        t.set_prop(ROOT, "interrupt-parent", cells_value(&[1]));
        let gic = t.add_child(ROOT, "intc@8000000");
        t.set_prop(gic, "compatible", string_value(&["arm,gic-v3"]));
        t.set_prop(gic, "phandle", cells_value(&[1]));
        t.set_prop(gic, "interrupt-controller", Vec::new());
        t.set_prop(gic, "#interrupt-cells", cells_value(&[3]));
        t.set_prop(
            gic,
            "reg",
            u64s(&[0x800_0000, 0x1_0000, 0x80_a000, 0xf6_0000]),
        );
        let cpus = t.add_child(ROOT, "cpus");
        t.set_prop(cpus, "#address-cells", cells_value(&[1]));
        t.set_prop(cpus, "#size-cells", cells_value(&[0]));
        for i in 0..4u32 {
            let cpu = t.add_child(cpus, &alloc::format!("cpu@{i}"));
            t.set_prop(cpu, "device_type", string_value(&["cpu"]));
            t.set_prop(cpu, "reg", cells_value(&[i]));
            t.set_prop(cpu, "enable-method", string_value(&["psci"]));
        }
        let memory = t.add_child(ROOT, "memory@40000000");
        t.set_prop(memory, "device_type", string_value(&["memory"]));
        t.set_prop(memory, "reg", u64s(&[0x4000_0000, 0x4000_0000]));
        for (name, compatible, spi) in [
            ("uart@9000000", "arm,pl011", 1),
            ("rtc@9010000", "arm,pl031", 2),
        ] {
            let node = t.add_child(ROOT, name);
            let base = u64::from_str_radix(name.split('@').nth(1).unwrap(), 16).unwrap();
            t.set_prop(node, "compatible", string_value(&[compatible]));
            t.set_prop(node, "reg", u64s(&[base, 0x1000]));
            t.set_prop(node, "interrupts", cells_value(&[0, spi, 4]));
        }
        let psci = t.add_child(ROOT, "psci");
        t.set_prop(psci, "compatible", string_value(&["arm,psci-1.0"]));
        t.set_prop(psci, "method", string_value(&["hvc"]));
        t.to_blob()
    }

    /// A one-segment position-independent ELF: 0x100 bytes of file at offset
    /// 0x1000 placed at +0x2000 with 0x400 bytes in memory, entry +0x2040.
    fn elf() -> Vec<u8> {
        let mut f = alloc::vec![0u8; 0x1100];
        f[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        f[16..18].copy_from_slice(&3u16.to_le_bytes());
        f[18..20].copy_from_slice(&crate::elf::EM_AARCH64.to_le_bytes());
        f[0x18..0x20].copy_from_slice(&0x2040u64.to_le_bytes());
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        f[64..68].copy_from_slice(&1u32.to_le_bytes());
        for (i, v) in [0x1000u64, 0x2000, 0x2000, 0x100, 0x400].iter().enumerate() {
            f[64 + 8 + 8 * i..64 + 16 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        f
    }

    struct Elves;

    impl Images for Elves {
        fn head(&self, _: &str, max: usize) -> Result<(Vec<u8>, u64), String> {
            let e = elf();
            let len = e.len() as u64;
            Ok((e[..max.min(e.len())].to_vec(), len))
        }
    }

    /// A stand-in boot stage (an arm64 Image header claiming 0x3000 bytes),
    /// packed with the plan and `images` (`(partition, bytes)`).
    fn packed(plan: &Plan, images: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut boot = alloc::vec![0u8; 0x40];
        boot[0x38..0x3c].copy_from_slice(b"ARM\x64");
        boot[16..24].copy_from_slice(&0x3000u64.to_le_bytes());
        let encoded = amp_plan::format::encode(plan);
        let mut payloads = alloc::vec![(EntryKind::Plan, 0, &encoded[..])];
        payloads.extend(images.iter().map(|(p, b)| (EntryKind::Image, *p, &b[..])));
        pack::pack(&boot, &payloads).unwrap()
    }

    const TOC: usize = 0x3000;
    const DRAM: &[(u64, u64)] = &[(0x4000_0000, 0x4000_0000)];
    const REGION: (u64, u64) = (0x7fe0_0000, 0x20_0000);

    fn planned(board: &[u8]) -> Plan {
        let (m, diags) = crate::parse::parse(MANIFEST);
        let m = m.unwrap_or_else(|| panic!("{diags:?}"));
        let tree = Tree::parse(board).unwrap();
        let (_, plan, diags) = validate_and_plan(&m, &tree, DRAM.to_vec(), Some(REGION), &Elves);
        plan.unwrap_or_else(|| panic!("the manifest is valid: {diags:?}"))
    }

    #[test]
    fn a_checked_plan_becomes_copies_trees_routes_and_starts() {
        let board = board();
        let plan = planned(&board);
        let file = packed(&plan, &[(0, elf()), (1, elf())]);
        let opened = open(&file[TOC..], TOC).unwrap();
        assert_eq!(opened.plan, plan);
        let tree = DeviceTree::new(&board).unwrap();
        assert_eq!(
            check(&opened.plan, &tree, DRAM, Some(REGION), 2),
            Ok(REGION)
        );
        let p = prepare(&opened, &board, &tree).unwrap();

        // Each ELF's one segment, from its packed file, at its partition's
        // memory plus its address, with its .bss zeroed.
        let images: Vec<&Entry> = opened
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Image)
            .collect();
        assert_eq!(
            p.loads,
            [
                Load {
                    dest: 0x4000_2000,
                    src: images[0].offset as usize + 0x1000,
                    len: 0x100,
                    zero: 0x300
                },
                Load {
                    dest: 0x4800_2000,
                    src: images[1].offset as usize + 0x1000,
                    len: 0x100,
                    zero: 0x300
                },
            ]
        );
        assert!(p
            .loads
            .iter()
            .all(|l| file[l.src..l.src + l.len] == elf()[0x1000..0x1100]));

        // One tree per partition, where the plan keeps it, with only its cores
        // and its side of the link.
        assert_eq!(p.trees.len(), 2);
        for ((at, blob), (part, host)) in p
            .trees
            .iter()
            .zip([(&plan.partitions[0], true), (&plan.partitions[1], false)])
        {
            assert_eq!(*at, part.dtb);
            let t = DeviceTree::new(blob).unwrap();
            assert_eq!(t.partition_name(), Some(part.name.as_str()));
            let cores: Vec<u64> = t.cpus().filter_map(|c| c.mpidr).collect();
            let planned: Vec<u64> = part.cores.iter().map(|c| c.1).collect();
            assert_eq!(cores, planned);
            let links: Vec<_> = t.links().collect();
            assert_eq!(links.len(), 1);
            assert_eq!((links[0].name, links[0].host), ("a-b", host));
        }
        assert_eq!(p.windows, [(plan.links[0].base, plan.links[0].size)]);

        // The UART's SPI to a's boot core, the RTC's to b's, on the root GIC.
        assert_eq!(
            p.controller,
            Some(Controller {
                compatibles: alloc::vec!["arm,gic-v3".into()],
                base: 0x800_0000
            })
        );
        assert_eq!(
            p.routes,
            [
                Route {
                    specifier: alloc::vec![0, 1, 4],
                    mpidr: 0
                },
                Route {
                    specifier: alloc::vec![0, 2, 4],
                    mpidr: 2
                },
            ]
        );

        // Each partition's boot core at its entry, with its tree; PSCI, so no
        // release address.
        let starts: Vec<_> = p
            .starts
            .iter()
            .map(|s| (s.name.as_str(), s.mpidr, s.entry, s.dtb, s.release))
            .collect();
        assert_eq!(
            starts,
            [
                ("a", 0, 0x4000_2040, plan.partitions[0].dtb, None),
                ("b", 2, 0x4800_2040, plan.partitions[1].dtb, None),
            ]
        );
        assert!(p
            .starts
            .iter()
            .all(|s| s.trampoline == s.dtb + DTB_ROOM - TRAMPOLINE_ROOM));
    }

    #[test]
    fn refuses_what_is_missing_or_does_not_fit() {
        let board = board();
        let plan = planned(&board);
        let tree = DeviceTree::new(&board).unwrap();
        let file = packed(&plan, &[(0, elf()), (1, elf())]);

        let mut corrupt = file.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert_eq!(
            open(&corrupt[TOC..], TOC).err(),
            Some(Refusal::Pack(PackError::BadChecksum))
        );

        let opened = open(&file[TOC..], TOC).unwrap();
        let plan = &opened.plan;
        assert_eq!(
            check(plan, &tree, DRAM, None, 2),
            Err(Refusal::NoBootRegion)
        );
        assert_eq!(
            check(plan, &tree, DRAM, Some(REGION), 0),
            Err(Refusal::EntryLevel {
                partition: "a",
                wanted: 1,
                current: 0
            })
        );
        let small = [(0x4000_0000, 0x400_0000)];
        assert!(matches!(
            check(plan, &tree, &small, Some(REGION), 2),
            Err(Refusal::Mismatch(Mismatch::MemoryOutsideDram {
                partition: "b",
                ..
            }))
        ));

        assert_eq!(
            relocation(0x1000, (0x4020_0000, 0x10_0000), REGION),
            Ok(REGION.0)
        );
        assert_eq!(
            relocation(REGION.1 + 1, (0x4020_0000, 0x10_0000), REGION),
            Err(Refusal::BootStageTooLarge)
        );
        assert_eq!(
            relocation(0x1000, (0x7ff0_0000, 0x10_0000), REGION),
            Err(Refusal::PackageOverBootRegion)
        );

        let one_image = packed(plan, &[(0, elf())]);
        let opened = open(&one_image[TOC..], TOC).unwrap();
        assert_eq!(
            prepare(&opened, &board, &tree).err(),
            Some(Refusal::ImageNotPacked)
        );

        let mut not_elf = elf();
        not_elf[0] = 0;
        let bad = packed(plan, &[(0, elf()), (1, not_elf)]);
        let opened = open(&bad[TOC..], TOC).unwrap();
        assert_eq!(prepare(&opened, &board, &tree).err(), Some(Refusal::BadElf));

        // A segment placed past the partition's 64 MiB.
        let mut far = elf();
        far[64 + 16..64 + 24].copy_from_slice(&0x400_0000u64.to_le_bytes());
        let outside = packed(plan, &[(0, elf()), (1, far)]);
        let opened = open(&outside[TOC..], TOC).unwrap();
        assert_eq!(
            prepare(&opened, &board, &tree).err(),
            Some(Refusal::ImageOutsideMemory)
        );
    }
}
