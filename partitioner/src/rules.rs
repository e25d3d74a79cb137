//! The rules: what makes a manifest valid on a board. Every rule runs, every
//! problem is reported (none stops the others), each with its own [`Code`].
//!
//! The same code runs on the host (the integrators' tool) and, against a decoded
//! plan, in the boot stage.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::diag::{suggest, Code, Diagnostic, Span};
use crate::elf::{Elf, ElfError};
use crate::manifest::{AvpsDevice, ImageKind, Manifest, ManifestLink, Partition, AVPS_KINDS};
use crate::tree::{NodeId, Tree};
use amp_plan::layout::{window_layout, BUFFER_SIZE, RING_ENTRIES};

/// 4 KiB: the granule every range must respect.
pub const PAGE: u64 = 0x1000;
/// 2 MiB: the boundary an arm64 Linux Image is placed on.
pub const LINUX_ALIGN: u64 = 0x20_0000;
/// How much of an image file the rules read (headers, program headers).
pub const IMAGE_HEAD: usize = 64 * 1024;

/// Access to image files, relative to wherever the caller keeps them.
pub trait Images {
    /// The first `max` bytes of the file and its full length, or why it cannot
    /// be read (said in a way that tells the user where it was looked for).
    fn head(&self, path: &str, max: usize) -> Result<(Vec<u8>, u64), String>;
}

/// What the rules know besides the manifest.
pub struct Context<'a> {
    /// The board's device tree.
    pub tree: &'a Tree,
    /// DRAM ranges `(base, size)`: the tree's memory nodes, or the board's
    /// defaults where the tree leaves them to the firmware.
    pub dram: Vec<(u64, u64)>,
    /// The range the boot stage keeps for itself while it runs, `(base, size)`.
    pub boot_region: Option<(u64, u64)>,
    /// Image files.
    pub images: &'a dyn Images,
}

/// What validation resolved, for the planner.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The board's CPU nodes in `/cpus` order with their MPIDRs.
    pub cpus: Vec<(NodeId, u64)>,
    /// DRAM ranges `(base, size)`.
    pub dram: Vec<(u64, u64)>,
    /// Per partition (manifest order): owned device nodes.
    pub devices: Vec<Vec<NodeId>>,
    /// Per partition: the console node.
    pub consoles: Vec<Option<NodeId>>,
    /// Per partition: where its image goes, read from the image itself.
    pub images: Vec<Option<ImageFacts>>,
}

/// Placement facts read from an image file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// Lowest address the image occupies.
    pub load: u64,
    /// Bytes it occupies from `load` (Linux: `image_size`, including its bss).
    pub size: u64,
    /// Entry address.
    pub entry: u64,
    /// Initramfs length, if any.
    pub initrd_len: u64,
}

/// Runs every rule.
pub fn validate(m: &Manifest, cx: &Context<'_>) -> (Resolved, Vec<Diagnostic>) {
    let mut v = Validator {
        m,
        cx,
        diags: Vec::new(),
        resolved: Resolved::default(),
    };
    v.resolved.cpus = board_cpus(cx.tree);
    v.resolved.dram = cx.dram.clone();
    v.names();
    v.cores();
    v.memory();
    v.devices();
    v.links();
    v.images();
    v.diags.sort_by_key(|d| (d.span.start, d.code));
    (v.resolved, v.diags)
}

/// CPU nodes under `/cpus` in order, with their `reg` (MPIDR).
pub fn board_cpus(tree: &Tree) -> Vec<(NodeId, u64)> {
    let Some(cpus) = tree.find("/cpus") else {
        return Vec::new();
    };
    let ac = tree.address_cells(cpus);
    tree.node(cpus)
        .children
        .iter()
        .filter(|&&c| tree.prop_str(c, "device_type") == Some("cpu"))
        .filter_map(|&c| Some((c, amp_plan::cells::read_cells(tree.prop(c, "reg")?, ac)?)))
        .collect()
}

/// DRAM: every range of every `device_type = "memory"` node.
pub fn board_dram(tree: &Tree) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = tree
        .walk()
        .into_iter()
        .filter(|&id| tree.prop_str(id, "device_type") == Some("memory"))
        .flat_map(|id| tree.reg(id).into_iter().flatten())
        .filter(|&(_, size)| size > 0)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The boot stage's region: the top `size` bytes of the lowest DRAM range.
pub fn boot_region(dram: &[(u64, u64)], size: u64) -> Option<(u64, u64)> {
    let &(base, len) = dram.iter().min()?;
    (len >= size).then(|| (base + len - size, size))
}

/// Whether two `(base, size)` ranges share a byte.
pub fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

/// Whether range `r` lies wholly inside one of `ranges`.
pub fn inside_any(r: (u64, u64), ranges: &[(u64, u64)]) -> bool {
    ranges
        .iter()
        .any(|&(b, s)| r.0 >= b && r.0.saturating_add(r.1) <= b.saturating_add(s))
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

struct Validator<'m, 'c> {
    m: &'m Manifest,
    cx: &'c Context<'c>,
    diags: Vec<Diagnostic>,
    resolved: Resolved,
}

impl Validator<'_, '_> {
    fn partition_index(&self, name: &str) -> Option<usize> {
        self.m.partitions.iter().position(|p| p.name.value == name)
    }

    fn names(&mut self) {
        let partitions = self.m.partitions.iter().map(|p| &p.name);
        let links = self.m.links.iter().map(|l| &l.name);
        for (names, what) in [
            (partitions.collect::<Vec<_>>(), "partition"),
            (links.collect(), "link"),
        ] {
            let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
            for name in names {
                if let Some(first) = seen.insert(&name.value, name.span) {
                    self.diags.push(
                        Diagnostic::new(
                            Code::DuplicateName,
                            name.span,
                            format!("a second {what} is named `{}`", name.value),
                            format!("give each {what} its own name"),
                        )
                        .note(first, "the first one"),
                    );
                }
            }
        }
    }

    fn cores(&mut self) {
        let count = self.resolved.cpus.len() as u32;
        let mut owner: BTreeMap<u32, (&str, Span)> = BTreeMap::new();
        let mut found = Vec::new();
        for p in &self.m.partitions {
            if p.cores.value.is_empty() {
                found.push(Diagnostic::new(
                    Code::NoCores,
                    p.cores.span,
                    format!("partition `{}` has no cores", p.name.value),
                    "give it at least one core, e.g. `cores = [0]`",
                ));
            }
            for c in &p.cores.value {
                if c.value >= count {
                    found.push(Diagnostic::new(
                        Code::NoSuchCore,
                        c.span,
                        format!(
                            "core {} does not exist: the board's device tree lists {count} cores",
                            c.value
                        ),
                        format!("use cores 0 to {}", count.saturating_sub(1)),
                    ));
                } else if let Some((who, at)) = owner.insert(c.value, (&p.name.value, c.span)) {
                    let whose = if who == p.name.value {
                        "this partition".to_string()
                    } else {
                        format!("partition `{who}`")
                    };
                    found.push(
                        Diagnostic::new(
                            Code::CoreTwice,
                            c.span,
                            format!("core {} is given twice, here and to {whose}", c.value),
                            "give each core to one partition, once",
                        )
                        .note(at, "given here first"),
                    );
                }
            }
            if let Some(b) = &p.boot_core {
                if !p.cores.value.iter().any(|c| c.value == b.value) {
                    found.push(Diagnostic::new(
                        Code::BootCore,
                        b.span,
                        format!(
                            "boot core {} is not one of partition `{}`'s cores",
                            b.value, p.name.value
                        ),
                        "pick the boot core from the partition's `cores`",
                    ));
                }
            }
        }
        self.diags.extend(found);
    }

    fn memory(&mut self) {
        let dram = self.resolved.dram.clone();
        let mut found = Vec::new();
        let mut placed: Vec<(usize, (u64, u64), Span)> = Vec::new();
        for (pi, p) in self.m.partitions.iter().enumerate() {
            let linux = p
                .image
                .as_ref()
                .is_some_and(|i| i.kind.value == ImageKind::Linux);
            for (ri, r) in p.memory.iter().enumerate() {
                let range = (r.base.value, r.size.value);
                if r.size.value == 0 {
                    found.push(Diagnostic::new(
                        Code::EmptyRange,
                        r.size.span,
                        "memory range of size 0".to_string(),
                        "give the range a size, or remove it",
                    ));
                    continue;
                }
                if !r.base.value.is_multiple_of(PAGE) || !r.size.value.is_multiple_of(PAGE) {
                    found.push(Diagnostic::new(
                        Code::Misaligned,
                        r.span,
                        format!(
                            "memory {:#x}+{:#x} is not aligned to 4 KiB pages",
                            r.base.value, r.size.value
                        ),
                        "use a base and size that are multiples of 0x1000",
                    ));
                } else if linux && ri == 0 && !r.base.value.is_multiple_of(LINUX_ALIGN) {
                    found.push(Diagnostic::new(
                        Code::Misaligned,
                        r.base.span,
                        format!(
                            "a Linux partition's first range must start on a 2 MiB boundary, {:#x} does not",
                            r.base.value
                        ),
                        format!("use {:#x}: the arm64 Image is placed at a 2 MiB-aligned base", r.base.value.next_multiple_of(LINUX_ALIGN)),
                    ));
                }
                if !inside_any(range, &dram) {
                    let ranges: Vec<String> = dram
                        .iter()
                        .map(|(b, s)| format!("{b:#x}..{:#x}", b.saturating_add(*s)))
                        .collect();
                    found.push(Diagnostic::new(
                        Code::OutsideDram,
                        r.span,
                        format!(
                            "memory {:#x}..{:#x} is not inside the board's DRAM",
                            range.0,
                            r.end()
                        ),
                        format!("keep it inside DRAM: {}", ranges.join(", ")),
                    ));
                }
                if let Some(boot) = self.cx.boot_region.filter(|b| overlaps(range, *b)) {
                    found.push(Diagnostic::new(
                        Code::MemoryOverlapsBoot,
                        r.span,
                        format!(
                            "memory {:#x}..{:#x} overlaps the boot stage's region {:#x}..{:#x}",
                            range.0,
                            r.end(),
                            boot.0,
                            boot.0 + boot.1
                        ),
                        "move the range below the boot stage's region, which it keeps until every OS has started",
                    ));
                }
                for &(other, o_range, o_span) in &placed {
                    if overlaps(range, o_range) {
                        let who = &self.m.partitions[other].name.value;
                        let whose = if other == pi {
                            "another range of this partition".to_string()
                        } else {
                            format!("partition `{who}`")
                        };
                        found.push(
                            Diagnostic::new(
                                Code::MemoryOverlap,
                                r.span,
                                format!("memory {:#x}..{:#x} overlaps {whose}", range.0, r.end()),
                                "give each partition memory of its own",
                            )
                            .note(o_span, "the other range"),
                        );
                    }
                }
                placed.push((pi, range, r.span));
            }
        }
        self.diags.extend(found);
    }

    /// A device reference: a full path or a label (`uart0` or `&uart0`).
    fn resolve(&self, reference: &str) -> Option<NodeId> {
        let tree = self.cx.tree;
        if reference.starts_with('/') {
            tree.find(reference)
        } else {
            tree.label(reference.trim_start_matches('&'))
        }
    }

    fn unknown_device(&self, reference: &str, span: Span) -> Diagnostic {
        let tree = self.cx.tree;
        let help = if reference.starts_with('/') {
            let last = reference.rsplit('/').next().unwrap_or(reference);
            let names: Vec<(String, &str)> = tree
                .walk()
                .into_iter()
                .map(|id| (tree.path(id), tree.node(id).name.as_str()))
                .collect();
            match suggest(last, names.iter().map(|(_, n)| *n)) {
                Some(n) => {
                    let path = names
                        .iter()
                        .find(|(_, m)| *m == n)
                        .map_or(String::new(), |(p, _)| p.clone());
                    format!("did you mean \"{path}\"?")
                }
                None => {
                    "use a node path as the board's device tree writes it (`amp show` lists them)"
                        .into()
                }
            }
        } else {
            "use a label from the tree's __symbols__ or aliases, or a full node path".into()
        };
        Diagnostic::new(
            Code::NoSuchDevice,
            span,
            format!("device `{reference}` is not in the board's device tree"),
            help,
        )
    }

    fn devices(&mut self) {
        let tree = self.cx.tree;
        let mut found = Vec::new();
        let mut owner: BTreeMap<NodeId, (usize, Span)> = BTreeMap::new();
        // Ancestors of owned nodes -> (an owned node inside it, its owner).
        let mut inner: BTreeMap<NodeId, (NodeId, (usize, Span))> = BTreeMap::new();
        let mut devices: Vec<Vec<(NodeId, Span)>> = Vec::new();
        for (pi, p) in self.m.partitions.iter().enumerate() {
            let mut mine = Vec::new();
            for d in &p.devices {
                let Some(id) = self.resolve(&d.value) else {
                    found.push(self.unknown_device(&d.value, d.span));
                    continue;
                };
                // The same node, or one inside the other, is owned twice.
                let clash = owner_of(tree, &owner, id).or_else(|| inner.get(&id).copied());
                if let Some((o, (other, at))) = clash {
                    let who = &self.m.partitions[other].name.value;
                    let what = if o == id {
                        "it".to_string()
                    } else {
                        format!("`{}`", tree.path(o))
                    };
                    found.push(
                        Diagnostic::new(
                            Code::DeviceTwice,
                            d.span,
                            format!(
                                "device `{}` is owned twice: partition `{who}` owns {what}",
                                tree.path(id)
                            ),
                            "give each device to one partition",
                        )
                        .note(at, "owned here"),
                    );
                    continue;
                }
                // Remember every ancestor, so a later owner of a parent node is caught.
                let mut up = tree.node(id).parent;
                while let Some(a) = up {
                    inner.entry(a).or_insert((id, (pi, d.span)));
                    up = tree.node(a).parent;
                }
                owner.insert(id, (pi, d.span));
                mine.push((id, d.span));
            }
            devices.push(mine);
        }

        // Interrupt lines: (controller, specifier without flags) -> owner.
        let mut lines: BTreeMap<(NodeId, Vec<u32>), (usize, NodeId, Span)> = BTreeMap::new();
        for (pi, mine) in devices.iter().enumerate() {
            for &(id, span) in mine {
                for (ctrl, spec) in tree.interrupts(id) {
                    let key = (ctrl, interrupt_identity(tree, ctrl, &spec));
                    match lines.get(&key) {
                        Some(&(other, dev, at)) if other != pi => {
                            found.push(
                                Diagnostic::new(
                                    Code::InterruptShared,
                                    span,
                                    format!(
                                        "`{}` shares interrupt {:?} of `{}` with `{}` of partition `{}`",
                                        tree.path(id),
                                        key.1,
                                        tree.path(ctrl),
                                        tree.path(dev),
                                        self.m.partitions[other].name.value
                                    ),
                                    "give devices that share an interrupt line to the same partition",
                                )
                                .note(at, "the other device"),
                            );
                        }
                        Some(_) => {}
                        None => {
                            lines.insert(key, (pi, id, span));
                        }
                    }
                }
                // Interrupt controllers and clocks must not belong to another partition.
                let mut providers: Vec<(NodeId, &str)> = tree
                    .interrupts(id)
                    .into_iter()
                    .map(|(c, _)| (c, "interrupt controller"))
                    .collect();
                providers.extend(
                    tree.phandle_list(id, "clocks", "#clock-cells")
                        .into_iter()
                        .map(|c| (c, "clock")),
                );
                for (provider, what) in providers {
                    let held =
                        owner_of(tree, &owner, provider).filter(|(_, (other, _))| *other != pi);
                    if let Some((_, (other, at))) = held {
                        found.push(
                            Diagnostic::new(
                                Code::ProviderUnreachable,
                                span,
                                format!(
                                    "`{}` needs {what} `{}`, which partition `{}` owns",
                                    tree.path(id),
                                    tree.path(provider),
                                    self.m.partitions[other].name.value
                                ),
                                format!(
                                    "give `{}` to the same partition, or leave the {what} unowned",
                                    tree.path(provider)
                                ),
                            )
                            .note(at, "owned here"),
                        );
                    }
                }
            }
        }

        // Consoles.
        let mut consoles: BTreeMap<NodeId, (usize, Span)> = BTreeMap::new();
        for (pi, p) in self.m.partitions.iter().enumerate() {
            let mut console = None;
            if let Some(c) = &p.console {
                match self.resolve(&c.value) {
                    None => found.push(self.unknown_device(&c.value, c.span)),
                    Some(id) => {
                        console = Some(id);
                        if let Some(&(other, at)) = consoles.get(&id) {
                            found.push(
                                Diagnostic::new(
                                    Code::ConsoleShared,
                                    c.span,
                                    format!(
                                        "console `{}` is also partition `{}`'s console",
                                        tree.path(id),
                                        self.m.partitions[other].name.value
                                    ),
                                    "give each partition its own console; others can log over an AVPS console on a link",
                                )
                                .note(at, "claimed here first"),
                            );
                        } else if !devices[pi].iter().any(|&(d, _)| tree.is_within(id, d)) {
                            found.push(Diagnostic::new(
                                Code::ConsoleNotOwned,
                                c.span,
                                format!(
                                    "console `{}` is not one of partition `{}`'s devices",
                                    tree.path(id),
                                    p.name.value
                                ),
                                format!("add \"{}\" to the partition's `devices`", c.value),
                            ));
                        } else {
                            consoles.insert(id, (pi, c.span));
                        }
                    }
                }
            }
            self.resolved.consoles.push(console);
        }
        self.resolved.devices = devices
            .into_iter()
            .map(|d| d.into_iter().map(|(id, _)| id).collect())
            .collect();
        self.diags.extend(found);
    }

    fn links(&mut self) {
        let needed = window_layout().needed;
        let dram = self.resolved.dram.clone();
        let mut found = Vec::new();
        let mut windows: Vec<((u64, u64), Span)> = Vec::new();
        for l in &self.m.links {
            let names = &l.between.value;
            for n in names {
                if self.partition_index(&n.value).is_none() {
                    let help = match suggest(
                        &n.value,
                        self.m.partitions.iter().map(|p| p.name.value.as_str()),
                    ) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "name two partitions of this manifest".into(),
                    };
                    found.push(Diagnostic::new(
                        Code::LinkUnknownPartition,
                        n.span,
                        format!(
                            "link `{}` names partition `{}`, which does not exist",
                            l.name.value, n.value
                        ),
                        help,
                    ));
                }
            }
            if names.len() == 2 && names[0].value == names[1].value {
                found.push(Diagnostic::new(
                    Code::LinkToItself,
                    l.between.span,
                    format!(
                        "link `{}` joins partition `{}` to itself",
                        l.name.value, names[0].value
                    ),
                    "a link joins two different partitions",
                ));
            }
            if l.size.value < needed {
                found.push(Diagnostic::new(
                    Code::WindowTooSmall,
                    l.size.span,
                    format!(
                        "link window of {} is too small: a header page, 2 vrings of {RING_ENTRIES} entries and {} buffers of {BUFFER_SIZE} bytes need {}",
                        mib(l.size.value),
                        2 * RING_ENTRIES,
                        mib(needed)
                    ),
                    format!("set `size` to at least \"{}K\"", needed.div_ceil(1024)),
                ));
            }
            if let Some(base) = &l.base {
                let w = (base.value, l.size.value);
                if !base.value.is_multiple_of(PAGE) || !l.size.value.is_multiple_of(PAGE) {
                    found.push(Diagnostic::new(
                        Code::WindowPlacement,
                        base.span,
                        format!(
                            "link window {:#x}+{:#x} is not aligned to 4 KiB pages",
                            w.0, w.1
                        ),
                        "use a base and size that are multiples of 0x1000",
                    ));
                } else if !inside_any(w, &dram) {
                    found.push(Diagnostic::new(
                        Code::WindowPlacement,
                        base.span,
                        format!(
                            "link window {:#x}..{:#x} is not inside the board's DRAM",
                            w.0,
                            w.0.saturating_add(w.1)
                        ),
                        "place it inside DRAM, or leave out `base` to let the planner place it",
                    ));
                } else if w.0.saturating_add(w.1) > amp_plan::layout::WINDOW_LIMIT {
                    found.push(Diagnostic::new(
                        Code::WindowPlacement,
                        base.span,
                        format!("link window {:#x}..{:#x} is above 4 GiB", w.0, w.0.saturating_add(w.1)),
                        "place it below 4 GiB: vring addresses in the resource table and rpmsg-lite are 32-bit",
                    ));
                } else if self.cx.boot_region.is_some_and(|b| overlaps(w, b)) {
                    found.push(Diagnostic::new(
                        Code::WindowPlacement,
                        base.span,
                        format!(
                            "link window {:#x}..{:#x} overlaps the boot stage's region",
                            w.0,
                            w.0.saturating_add(w.1)
                        ),
                        "move it, or leave out `base` to let the planner place it",
                    ));
                }
                for &(other, at) in &windows {
                    if overlaps(w, other) {
                        found.push(
                            Diagnostic::new(
                                Code::WindowOverlap,
                                base.span,
                                format!(
                                    "link window of `{}` overlaps another link's window",
                                    l.name.value
                                ),
                                "give each link its own window",
                            )
                            .note(at, "the other window"),
                        );
                    }
                }
                for p in &self.m.partitions {
                    for r in p
                        .memory
                        .iter()
                        .filter(|r| overlaps(w, (r.base.value, r.size.value)))
                    {
                        found.push(
                            Diagnostic::new(
                                Code::MemoryOverlapsWindow,
                                r.span,
                                format!(
                                    "memory of partition `{}` overlaps link `{}`'s window {:#x}..{:#x}",
                                    p.name.value,
                                    l.name.value,
                                    w.0,
                                    w.0.saturating_add(w.1)
                                ),
                                "a window belongs to its link only: move the memory or the window",
                            )
                            .note(base.span, "the window"),
                        );
                    }
                }
                windows.push((w, base.span));
            }
            for dev in &l.devices {
                if !AVPS_KINDS.iter().any(|(k, _)| *k == dev.kind.value) {
                    let kinds: Vec<&str> = AVPS_KINDS.iter().map(|(k, _)| *k).collect();
                    let help = match suggest(&dev.kind.value, kinds.iter().copied()) {
                        Some(s) => format!("did you mean \"{s}\"?"),
                        None => format!("a link carries: {}", kinds.join(", ")),
                    };
                    found.push(Diagnostic::new(
                        Code::UnknownAvpsKind,
                        dev.kind.span,
                        format!(
                            "AVPS device kind \"{}\" is not one a link carries",
                            dev.kind.value
                        ),
                        help,
                    ));
                }
                let on_link = names.iter().any(|n| n.value == dev.provider.value);
                let known = AVPS_KINDS.iter().any(|(k, _)| *k == dev.kind.value);
                if on_link && known {
                    let is_linux = |name: &str| {
                        self.m.partitions.iter().any(|p| {
                            p.name.value == name
                                && p.image.as_ref().is_some_and(|i| {
                                    i.kind.value == crate::manifest::ImageKind::Linux
                                })
                        })
                    };
                    let user = names.iter().find(|n| n.value != dev.provider.value);
                    let provider_linux = is_linux(&dev.provider.value);
                    let user_linux = user.is_some_and(|u| is_linux(&u.value));
                    if !served(&dev.kind.value, provider_linux, user_linux) {
                        found.push(Diagnostic::new(
                            Code::AvpsNotServed,
                            dev.kind.span,
                            format!(
                                "nothing serves AVPS {} provided by `{}` on link `{}` yet: the integrator would get a device that never answers",
                                dev.kind.value, dev.provider.value, l.name.value
                            ),
                            format!("served today: {SERVED}; remove this device until its kind is served"),
                        ));
                    }
                }
                if on_link && known {
                    found.extend(self.device_keys(l, dev));
                }
                if let Some(first) = l.devices.iter().find(|o| {
                    o.kind.value == dev.kind.value
                        && o.provider.value == dev.provider.value
                        && o.span.start < dev.span.start
                }) {
                    found.push(
                        Diagnostic::new(
                            Code::AvpsDeviceTwice,
                            dev.span,
                            format!(
                                "`{}` provides AVPS {} twice on link `{}`",
                                dev.provider.value, dev.kind.value, l.name.value
                            ),
                            "a link carries one device of a kind from each provider: remove one",
                        )
                        .note(first.span, "the first"),
                    );
                }
                if !on_link {
                    found.push(Diagnostic::new(
                        Code::ProviderNotOnLink,
                        dev.provider.span,
                        format!(
                            "AVPS {} is provided by `{}`, which is not on link `{}`",
                            dev.kind.value, dev.provider.value, l.name.value
                        ),
                        format!(
                            "the provider is one of the link's partitions: {}",
                            names
                                .iter()
                                .map(|n| n.value.as_str())
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ));
                }
            }
        }
        self.diags.extend(found);
    }

    /// The device-specific keys of `dev` on `l`: `size` for a RAM disk a
    /// non-Linux partition provides, `backing` for a disk a Linux partition
    /// provides.
    fn device_keys(&self, l: &ManifestLink, dev: &AvpsDevice) -> Vec<Diagnostic> {
        let mut found = Vec::new();
        let provider = self
            .m
            .partitions
            .iter()
            .find(|p| p.name.value == dev.provider.value);
        let linux = provider.is_some_and(|p| {
            p.image
                .as_ref()
                .is_some_and(|i| i.kind.value == crate::manifest::ImageKind::Linux)
        });
        let block = dev.kind.value == "block";
        if let Some(size) = &dev.size {
            if !block || linux {
                found.push(Diagnostic::new(
                    Code::AvpsKeyMisplaced,
                    size.span,
                    format!(
                        "`size` on AVPS {} provided by `{}` on link `{}`",
                        dev.kind.value, dev.provider.value, l.name.value
                    ),
                    "`size` sets the RAM disk of a block device a non-Linux partition provides; \
                     a Linux partition's disk takes `backing`",
                ));
            } else {
                let memory: u64 = provider
                    .map(|p| p.memory.iter().map(|m| m.size.value).sum())
                    .unwrap_or(0);
                if size.value == 0 || size.value % 4096 != 0 || size.value >= memory {
                    found.push(Diagnostic::new(
                        Code::BadDiskSize,
                        size.span,
                        format!(
                            "a RAM disk of {} bytes in `{}`, which has {} bytes of memory",
                            size.value, dev.provider.value, memory
                        ),
                        "give a whole number of 4 KiB pages, well below the partition's memory \
                         (its image and device tree need room too): \"8M\", say",
                    ));
                }
            }
        }
        if let Some(backing) = &dev.backing {
            if !block || !linux {
                found.push(Diagnostic::new(
                    Code::AvpsKeyMisplaced,
                    backing.span,
                    format!(
                        "`backing` on AVPS {} provided by `{}` on link `{}`",
                        dev.kind.value, dev.provider.value, l.name.value
                    ),
                    "`backing` names the file or block device behind a block device a Linux \
                     partition provides; a non-Linux partition's disk takes `size`",
                ));
            } else if !backing.value.starts_with('/') || backing.value.contains('\0') {
                found.push(Diagnostic::new(
                    Code::BadBacking,
                    backing.span,
                    format!("backing \"{}\" is not an absolute path", backing.value),
                    "name the file or block device as the Linux partition sees it: \"/dev/vda\", say",
                ));
            }
        }
        found
    }

    fn images(&mut self) {
        let mut found = Vec::new();
        for p in &self.m.partitions {
            let Some(image) = &p.image else {
                self.resolved.images.push(None);
                continue;
            };
            let mut facts = None;
            match self.cx.images.head(&image.path.value, IMAGE_HEAD) {
                Err(why) => found.push(Diagnostic::new(
                    Code::ImageMissing,
                    image.path.span,
                    format!("image `{}` cannot be read: {why}", image.path.value),
                    "build or copy the image there, or fix `path`",
                )),
                Ok((head, len)) => match check_image(p, &head, len) {
                    Ok(f) => facts = Some(f),
                    Err(d) => found.push(d),
                },
            }
            if let Some(initrd) = &image.initrd {
                match self.cx.images.head(&initrd.value, 0) {
                    Err(why) => found.push(Diagnostic::new(
                        Code::ImageMissing,
                        initrd.span,
                        format!("initrd `{}` cannot be read: {why}", initrd.value),
                        "build or copy the initramfs there, or fix `initrd`",
                    )),
                    Ok((_, len)) => {
                        if let Some(f) = facts.as_mut() {
                            f.initrd_len = len;
                        }
                    }
                }
            }
            self.resolved.images.push(facts);
        }
        self.diags.extend(found);
    }
}

/// The owned node that `id` is, or is inside, with its owner.
fn owner_of(
    tree: &Tree,
    owner: &BTreeMap<NodeId, (usize, Span)>,
    id: NodeId,
) -> Option<(NodeId, (usize, Span))> {
    let mut cur = Some(id);
    while let Some(c) = cur {
        if let Some(&o) = owner.get(&c) {
            return Some((c, o));
        }
        cur = tree.node(c).parent;
    }
    None
}

/// The part of an interrupt specifier that names the line (flags dropped).
fn interrupt_identity(tree: &Tree, ctrl: NodeId, spec: &[u32]) -> Vec<u32> {
    let gic = tree
        .prop_strings(ctrl, "compatible")
        .any(|c| c.contains("gic"));
    if (gic || spec.len() == 3) && spec.len() >= 2 {
        spec[..spec.len() - 1].to_vec()
    } else {
        spec.to_vec()
    }
}

/// Kind and fit checks of one partition's image, from its first bytes.
fn check_image(p: &Partition, head: &[u8], len: u64) -> Result<ImageFacts, Diagnostic> {
    let Some(image) = &p.image else {
        return Ok(ImageFacts::default());
    };
    let at = image.path.span;
    let ranges: Vec<(u64, u64)> = p
        .memory
        .iter()
        .map(|r| (r.base.value, r.size.value))
        .collect();
    let u64_at = |o: usize| {
        head.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let kind_error = |what: String| {
        Err(Diagnostic::new(
            Code::ImageKind,
            at,
            format!("`{}` is not {what}", image.path.value),
            format!("point `path` at {what}, or change `kind`"),
        ))
    };
    let fit_error = |what: String| {
        Err(Diagnostic::new(
            Code::ImageDoesNotFit,
            at,
            format!(
                "image `{}` does not fit partition `{}`'s memory: {what}",
                image.path.value, p.name.value
            ),
            "give the partition more memory, or a smaller image",
        ))
    };
    match image.kind.value {
        ImageKind::Linux => {
            if head.get(0x38..0x3c) != Some(b"ARM\x64") {
                return kind_error(
                    "an arm64 Linux Image (no \"ARM\\x64\" magic at offset 0x38)".into(),
                );
            }
            let (text_offset, image_size) = (u64_at(8).unwrap_or(0), u64_at(16).unwrap_or(0));
            let image_size = if image_size == 0 { len } else { image_size };
            let Some(first) = ranges.first() else {
                return Ok(ImageFacts::default());
            };
            let load = first
                .0
                .next_multiple_of(LINUX_ALIGN)
                .saturating_add(text_offset);
            let end = load.saturating_add(image_size);
            if end > first.0.saturating_add(first.1) {
                return fit_error(format!(
                    "it needs {} from {:#x}, the first range ends at {:#x}",
                    mib(image_size),
                    load,
                    first.0.saturating_add(first.1)
                ));
            }
            Ok(ImageFacts {
                load,
                size: image_size,
                entry: load,
                initrd_len: 0,
            })
        }
        ImageKind::Elf => {
            let elf = match Elf::parse(head) {
                Ok(elf) => elf,
                Err(ElfError::NotElf) => return kind_error("an ELF file (no ELF magic)".into()),
                Err(ElfError::WrongClass) => {
                    return kind_error("a 64-bit little-endian ELF".into())
                }
                Err(ElfError::WrongMachine(m)) => {
                    return kind_error(format!("an AArch64 ELF (e_machine is {m})"))
                }
                Err(ElfError::BadProgramHeaders) => {
                    return kind_error(
                        "an ELF with readable program headers in its first 64 KiB".into(),
                    )
                }
                Err(ElfError::NothingToLoad) => {
                    return kind_error("an ELF with a loadable segment".into())
                }
            };
            let base = ranges.first().map_or(0, |r| r.0);
            let (mut low, mut high) = (u64::MAX, 0u64);
            for (i, seg) in elf.segments(base).enumerate() {
                if !inside_any((seg.addr, seg.memsz), &ranges) {
                    return fit_error(format!(
                        "segment {i} at {:#x}..{:#x} is outside it",
                        seg.addr,
                        seg.addr.saturating_add(seg.memsz)
                    ));
                }
                if seg.offset.saturating_add(seg.filesz) > len {
                    return kind_error("an ELF whose segments lie inside the file".into());
                }
                low = low.min(seg.addr);
                high = high.max(seg.addr.saturating_add(seg.memsz));
            }
            Ok(ImageFacts {
                load: low,
                size: high - low,
                entry: elf.entry_at(base),
                initrd_len: 0,
            })
        }
        ImageKind::Raw => {
            let load = image.load_address.as_ref().map_or(0, |l| l.value);
            if !inside_any((load, len.max(1)), &ranges) {
                return fit_error(format!("{} at {load:#x} is outside it", mib(len)));
            }
            Ok(ImageFacts {
                load,
                size: len,
                entry: load,
                initrd_len: 0,
            })
        }
    }
}

/// What the partitions can serve today, as the diagnostic says it.
const SERVED: &str = "a console provided by a non-Linux partition, a network device provided \
     by one to a Linux partition (the demo RTOS implements both), a block device provided by \
     either side (a RAM disk in the demo RTOS, a file or block device in the Linux bridge, \
     which exports the RTOS's disk through NBD), and an entropy device provided by a Linux \
     partition to a non-Linux one (the bridge serves it, the demo RTOS drives it)";

/// Whether an AVPS device of `kind` is served when its provider is (or is
/// not) a Linux partition and its user is (or is not) one: the demo RTOS
/// provides console, net and block, the Linux bridge uses them (a pty, a
/// TAP interface, an NBD device), an RTOS prints the console of another and
/// checks the disk of another, and the bridge provides entropy (a
/// virtio-rng device) and a disk that the demo RTOS drives.
fn served(kind: &str, provider_linux: bool, user_linux: bool) -> bool {
    match kind {
        "console" => !provider_linux,
        "net" => !provider_linux && user_linux,
        "block" => true,
        "rng" => provider_linux && !user_linux,
        _ => false,
    }
}
