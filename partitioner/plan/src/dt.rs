//! Hardware facts read from a flattened device tree: cores, memory, the console,
//! the interrupt controller and how secondary cores are started.
//!
//! Device trees come from loaders and board files we do not control, so nothing
//! here panics on malformed input: a property that is missing, short or
//! untranslatable reads as `None`. Addresses are translated through every parent
//! bus's `ranges` to CPU physical addresses (the Raspberry Pi trees describe their
//! peripherals at VideoCore bus addresses).

use fdt::nodes::Node as FdtNode;
pub use fdt::nodes::NodeName;
use fdt::parsing::{unaligned::UnalignedParser, NoPanic};
use fdt::Fdt;

use crate::binding as b;
use crate::cells::{cell_count, read_cells, reg_entries, translate};

type Mode<'a> = (UnalignedParser<'a>, NoPanic);
type Node<'a> = FdtNode<'a, Mode<'a>>;

/// Deepest node nesting followed; deeper subtrees are ignored.
pub const MAX_DEPTH: usize = 16;

/// Why a blob is not a usable device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtError {
    /// The blob does not start with the FDT magic or its header is inconsistent.
    BadHeader,
    /// The structure block does not parse (bad token, name or property).
    Malformed,
}

impl DtError {
    /// One-line description.
    pub fn as_str(self) -> &'static str {
        match self {
            DtError::BadHeader => "not a flattened device tree (bad magic or header)",
            DtError::Malformed => "malformed device tree structure block",
        }
    }
}

/// `0xd00dfeed`, big-endian, at offset 0 of every flattened device tree.
pub const FDT_MAGIC: u32 = 0xd00d_feed;

/// The size a device tree's header claims (`totalsize`), if `header` starts with
/// a valid magic. Lets a caller holding only a pointer know how much to read.
pub fn total_size(header: &[u8; 8]) -> Option<usize> {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (magic == FDT_MAGIC).then_some(size as usize)
}

/// A parsed device tree.
pub struct DeviceTree<'a> {
    fdt: Fdt<'a, Mode<'a>>,
}

/// A physical address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// A node and its ancestors, root first: what address translation and printing a
/// node's full path need (the `fdt` reader links a node to its parent only).
#[derive(Clone)]
pub struct Located<'a> {
    chain: heapless::Vec<Node<'a>, MAX_DEPTH>,
}

/// One `/cpus/cpu@N` node.
#[derive(Debug, Clone, Copy)]
pub struct Cpu<'a> {
    /// Node name, e.g. `cpu@1`.
    pub name: NodeName<'a>,
    /// The `reg` value: the core's MPIDR affinity fields. `None` if malformed.
    pub mpidr: Option<u64>,
    /// `enable-method`: `psci`, `spin-table`, or a vendor method.
    pub enable_method: Option<&'a str>,
    /// `cpu-release-addr` for `spin-table` cores.
    pub release_addr: Option<u64>,
}

/// Reads a big-endian u32 header field.
fn be32(blob: &[u8], offset: usize) -> Option<u32> {
    let b = blob.get(offset..offset + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> DeviceTree<'a> {
    /// Parses a device tree blob, checking its header and whole structure block
    /// once, so that later queries meet no surprises.
    pub fn new(blob: &'a [u8]) -> Result<Self, DtError> {
        let field = |i: usize| {
            be32(blob, i * 4)
                .map(|v| v as usize)
                .ok_or(DtError::BadHeader)
        };
        let (magic, total) = (field(0)?, field(1)?);
        let (structs, strings, rsvmap) = (field(2)?, field(3)?, field(4)?);
        let (version, strings_size, structs_size) = (field(5)?, field(8)?, field(9)?);
        let within = |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= total);
        if magic != FDT_MAGIC as usize
            || total > blob.len()
            || version < 17
            || !within(structs, structs_size)
            || !within(strings, strings_size)
            || !within(rsvmap, 16)
        {
            return Err(DtError::BadHeader);
        }
        let fdt = Fdt::new_unaligned_fallible(&blob[..total]).map_err(|_| DtError::BadHeader)?;
        let tree = DeviceTree { fdt };
        let mut sound = tree.root().is_some();
        tree.for_each(|l| {
            let node = l.node();
            let props_ok = node.properties().is_ok_and(|p| p.iter().all(|r| r.is_ok()));
            sound &= props_ok
                && node.name().is_ok()
                && node.children().is_ok_and(|c| c.iter().all(|r| r.is_ok()));
            !sound
        });
        if sound {
            Ok(tree)
        } else {
            Err(DtError::Malformed)
        }
    }

    /// Total size in bytes, from the header.
    pub fn size(&self) -> usize {
        self.fdt.total_size()
    }

    fn root(&self) -> Option<Node<'a>> {
        self.fdt.find_node("/").ok().flatten()
    }

    /// The root `model` string.
    pub fn model(&self) -> Option<&'a str> {
        self.root().and_then(|r| str_prop(r, "model"))
    }

    /// The root `compatible` strings, most specific first.
    pub fn compatibles(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.root()
            .into_iter()
            .flat_map(|r| strings(r, "compatible"))
    }

    /// Every CPU node under `/cpus`, in tree order.
    pub fn cpus(&self) -> impl Iterator<Item = Cpu<'a>> + 'a {
        let cpus = self.fdt.find_node("/cpus").ok().flatten();
        let address_cells = cpus.map_or(2, address_cells);
        cpus.into_iter()
            .flat_map(children)
            .filter(|c| str_prop(*c, "device_type") == Some("cpu"))
            .filter_map(move |c| {
                Some(Cpu {
                    name: c.name().ok()?,
                    mpidr: prop(c, "reg").and_then(|v| read_cells(v, address_cells)),
                    enable_method: str_prop(c, "enable-method"),
                    release_addr: prop(c, "cpu-release-addr").and_then(|v| read_cells(v, 2)),
                })
            })
    }

    /// Every range of every `device_type = "memory"` node, as CPU physical addresses.
    pub fn memory(&self) -> impl Iterator<Item = Region> + 'a {
        let mut nodes: heapless::Vec<Located<'a>, 8> = heapless::Vec::new();
        self.for_each(|l| {
            if str_prop(l.node(), "device_type") == Some("memory") {
                // More than 8 memory nodes: the rest are not reported.
                let _ = nodes.push(l.clone());
            }
            false
        });
        nodes
            .into_iter()
            .flat_map(|l| (0..).map_while(move |i| l.reg_entry(i)).flatten())
    }

    /// The node `/chosen/stdout-path` names (aliases resolved, options dropped).
    pub fn stdout(&self) -> Option<Located<'a>> {
        let chosen = self.fdt.find_node("/chosen").ok().flatten()?;
        let path =
            str_prop(chosen, "stdout-path").or_else(|| str_prop(chosen, "linux,stdout-path"))?;
        let path = path.split(':').next()?;
        let path = if path.starts_with('/') {
            path
        } else {
            str_prop(self.fdt.find_node("/aliases").ok().flatten()?, path)?
        };
        self.locate_path(path)
    }

    /// The root node's interrupt parent: the interrupt controller the CPUs see.
    pub fn interrupt_controller(&self) -> Option<Located<'a>> {
        let phandle = prop(self.root()?, "interrupt-parent").and_then(|v| read_cells(v, 1))?;
        self.find(|n| {
            ["phandle", "linux,phandle"]
                .iter()
                .any(|name| prop(n, name).and_then(|v| read_cells(v, 1)) == Some(phandle))
        })
    }

    /// The PSCI conduit (`hvc` or `smc`) of the `/psci` node, if there is one.
    pub fn psci_method(&self) -> Option<&'a str> {
        let psci = self.find(|n| strings(n, "compatible").any(|c| c.starts_with("arm,psci")))?;
        str_prop(psci.node(), "method")
    }

    /// The first node with a `compatible` string in `any_of`.
    pub fn find_compatible(&self, any_of: &[&str]) -> Option<Located<'a>> {
        self.find(|n| strings(n, "compatible").any(|c| any_of.contains(&c)))
    }

    /// The node at `path`; a segment without a unit address matches a node
    /// whose name without its unit address is that segment.
    pub fn locate_path(&self, path: &str) -> Option<Located<'a>> {
        let mut chain = heapless::Vec::new();
        let mut node = self.root()?;
        chain.push(node).ok()?;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let (base, unit) = match segment.split_once('@') {
                Some((b, u)) => (b, Some(u)),
                None => (segment, None),
            };
            node = children(node).find(|c| {
                c.name()
                    .is_ok_and(|n| n.name == base && (unit.is_none() || n.unit_address == unit))
            })?;
            chain.push(node).ok()?;
        }
        Some(Located { chain })
    }

    /// The first node, in tree order, for which `pred` holds.
    pub fn find(&self, mut pred: impl FnMut(Node<'a>) -> bool) -> Option<Located<'a>> {
        let mut found = None;
        self.for_each(|l| {
            if pred(l.node()) {
                found = Some(l.clone());
                true
            } else {
                false
            }
        });
        found
    }

    /// Visits every node in tree order until `f` returns true.
    fn for_each(&self, mut f: impl FnMut(&Located<'a>) -> bool) {
        fn visit<'a>(
            node: Node<'a>,
            located: &mut Located<'a>,
            f: &mut dyn FnMut(&Located<'a>) -> bool,
        ) -> bool {
            if located.chain.push(node).is_err() {
                return false;
            }
            let stop = f(located) || children(node).any(|c| visit(c, located, f));
            located.chain.pop();
            stop
        }
        if let Some(root) = self.root() {
            visit(
                root,
                &mut Located {
                    chain: heapless::Vec::new(),
                },
                &mut f,
            );
        }
    }
}

impl<'a> Located<'a> {
    /// The node itself.
    pub fn node(&self) -> Node<'a> {
        // A Located is never built empty: it always holds at least the root.
        self.chain[self.chain.len() - 1]
    }

    /// The node's path segments below the root, e.g. `soc`, `serial@7e215040`.
    pub fn path_segments(&self) -> impl Iterator<Item = NodeName<'a>> + '_ {
        self.chain.iter().skip(1).filter_map(|n| n.name().ok())
    }

    /// The node's `compatible` strings.
    pub fn compatibles(&self) -> impl Iterator<Item = &'a str> + 'a {
        strings(self.node(), "compatible")
    }

    /// The first `compatible` string.
    pub fn compatible(&self) -> Option<&'a str> {
        self.compatibles().next()
    }

    /// `reg` entry `index` as a CPU physical range. The outer `None` means there is
    /// no such entry; the inner one that it does not translate to the CPU's
    /// address space (a bus without `ranges`, or an address no range covers).
    pub fn reg_entry(&self, index: usize) -> Option<Option<Region>> {
        let n = self.chain.len();
        if n < 2 {
            return None;
        }
        let parent = self.chain[n - 2];
        let (ac, sc) = (address_cells(parent), size_cells(parent));
        let entry = reg_entries(prop(self.node(), "reg")?, ac, sc).nth(index)?;
        Some(entry.and_then(|(addr, size)| {
            Some(Region {
                base: self.translate(addr)?,
                size,
            })
        }))
    }

    /// The first `reg` range, translated.
    pub fn reg(&self) -> Option<Region> {
        self.reg_entry(0).flatten()
    }

    /// Translates an address in the node's parent bus space to a CPU address.
    fn translate(&self, mut addr: u64) -> Option<u64> {
        // chain[k] is a bus whose children's addresses are translated by its
        // `ranges` into chain[k-1]'s space; the root's space is the CPU's.
        for k in (1..self.chain.len() - 1).rev() {
            let (bus, outer) = (self.chain[k], self.chain[k - 1]);
            let ranges = prop(bus, "ranges")?;
            addr = translate(
                addr,
                ranges,
                address_cells(bus),
                address_cells(outer),
                size_cells(bus),
            )?;
        }
        Some(addr)
    }
}

/// One `/amp-links/link@...` node of a partition's tree (see
/// `manifests/README.md` for the binding).
#[derive(Debug, Clone, Copy)]
pub struct LinkNode<'a> {
    /// Link name.
    pub name: &'a str,
    /// Window base and size.
    pub window: (u64, u64),
    /// This partition is the host side (owns the buffers).
    pub host: bool,
    /// The partition at the other end.
    pub peer: &'a str,
    /// DoorbellKind kind.
    pub doorbell: &'a str,
    /// The SGI of an `sgi` doorbell.
    pub sgi: Option<u32>,
    /// Vring 0 and vring 1 addresses.
    pub vrings: [u64; 2],
    /// First rpmsg buffer.
    pub buffers: u64,
    /// Entries per vring.
    pub ring_entries: u32,
    /// The node, for its AVPS device children.
    node: Node<'a>,
}

impl<'a> LinkNode<'a> {
    /// The IPv4 network of the link's `net` device (`amp,ipv4-subnet`):
    /// address and prefix length.
    pub fn net_subnet(&self) -> Option<([u8; 4], u8)> {
        children(self.node)
            .filter(|d| {
                str_prop(*d, "compatible").and_then(|c| c.strip_prefix(b::AVPS_COMPATIBLE_PREFIX))
                    == Some("net")
            })
            .find_map(|d| {
                let v = prop(d, b::IPV4_SUBNET)?;
                let addr = read_cells(v, 1)? as u32;
                let len = read_cells(v.get(4..)?, 1)?;
                Some((
                    addr.to_be_bytes(),
                    u8::try_from(len).ok().filter(|l| *l <= 30)?,
                ))
            })
    }

    /// The link's AVPS device child of `kind` provided by `provider`.
    fn device(&self, kind: &str, provider: &str) -> Option<Node<'a>> {
        children(self.node).find(|d| {
            str_prop(*d, "compatible").and_then(|c| c.strip_prefix(b::AVPS_COMPATIBLE_PREFIX))
                == Some(kind)
                && str_prop(*d, b::PROVIDER) == Some(provider)
        })
    }

    /// What backs the `block` device `provider` provides (`amp,backing`).
    pub fn block_backing(&self, provider: &str) -> Option<&'a str> {
        str_prop(self.device("block", provider)?, b::BACKING)
    }

    /// The size in bytes of the `block` device `provider` provides
    /// (`amp,disk-size`).
    pub fn block_size(&self, provider: &str) -> Option<u64> {
        read_cells(prop(self.device("block", provider)?, b::DISK_SIZE)?, 2)
    }

    /// The AVPS devices on the link: `(kind, provider partition)`.
    pub fn devices(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        children(self.node).filter_map(|d| {
            let kind = str_prop(d, "compatible")?.strip_prefix(b::AVPS_COMPATIBLE_PREFIX)?;
            Some((kind, str_prop(d, b::PROVIDER)?))
        })
    }
}

impl<'a> DeviceTree<'a> {
    /// This partition's name (`/chosen/amp,partition`).
    pub fn partition_name(&self) -> Option<&'a str> {
        self.chosen(b::CHOSEN_PARTITION)
    }

    /// The paths of the devices this partition owns (`/chosen/amp,devices`).
    pub fn owned_devices(&self) -> impl Iterator<Item = &'a str> {
        self.chosen_list(b::CHOSEN_DEVICES)
    }

    /// A `/chosen` string property (`bootargs`, ...).
    pub fn chosen(&self, name: &str) -> Option<&'a str> {
        str_prop(self.fdt.find_node("/chosen").ok().flatten()?, name)
    }

    /// A `/chosen` string-list property, such as `amp,devices`.
    pub fn chosen_list<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        self.fdt
            .find_node("/chosen")
            .ok()
            .flatten()
            .into_iter()
            .flat_map(move |n| strings(n, name))
    }

    /// The three-cell interrupt specifiers (the GIC binding's width) in the
    /// `interrupts` of the node at `path`, as the tree writes them; the
    /// interrupt controller's binding says what they mean (for a GIC,
    /// `boards::gic::spi_id`).
    pub fn gic_interrupts(&self, path: &str) -> heapless::Vec<[u32; 3], 8> {
        let mut out = heapless::Vec::new();
        let cells = self
            .locate_path(path)
            .and_then(|l| prop(l.node(), "interrupts"))
            .unwrap_or(&[]);
        for spec in cells.chunks_exact(12) {
            let cell = |i: usize| read_cells(&spec[4 * i..], 1).map_or(u32::MAX, |v| v as u32);
            let _ = out.push([cell(0), cell(1), cell(2)]);
        }
        out
    }

    /// The partition's links, from `/amp-links`; malformed nodes are skipped.
    pub fn links(&self) -> impl Iterator<Item = LinkNode<'a>> {
        self.link_nodes().filter_map(Result::ok)
    }

    /// Every node under `/amp-links`: a link, or the name of a node that is
    /// not a well-formed one.
    pub fn link_nodes(&self) -> impl Iterator<Item = Result<LinkNode<'a>, NodeName<'a>>> {
        let holder = self
            .root()
            .and_then(|r| children(r).find(|c| c.name().is_ok_and(|n| n.name == b::LINKS_NODE)));
        holder
            .into_iter()
            .flat_map(children)
            .filter_map(|n| match link(n) {
                Some(l) => Some(Ok(l)),
                None => n.name().ok().map(Err),
            })
    }
}

/// A link node, if every property the binding requires is there.
fn link(n: Node<'_>) -> Option<LinkNode<'_>> {
    let reg = prop(n, "reg")?;
    let vrings = prop(n, b::VRINGS)?;
    Some(LinkNode {
        name: str_prop(n, b::NAME)?,
        window: (read_cells(reg, 2)?, read_cells(reg.get(8..)?, 2)?),
        host: str_prop(n, b::ROLE)? == b::ROLE_HOST,
        peer: str_prop(n, b::PEER)?,
        doorbell: str_prop(n, b::DOORBELL).unwrap_or("poll"),
        sgi: prop(n, b::SGI)
            .and_then(|v| read_cells(v, 1))
            .map(|v| v as u32),
        vrings: [read_cells(vrings, 2)?, read_cells(vrings.get(8..)?, 2)?],
        buffers: read_cells(prop(n, b::BUFFERS)?, 2)?,
        ring_entries: read_cells(prop(n, b::RING_ENTRIES)?, 1)? as u32,
        node: n,
    })
}

/// A node of the underlying reader, for an owned tree (the planner's) to copy
/// the whole tree from.
pub type RawNode<'a> = Node<'a>;

impl<'a> DeviceTree<'a> {
    /// The root node, to copy the tree from.
    pub fn raw_root(&self) -> Option<RawNode<'a>> {
        self.root()
    }
}

/// A node's properties as `(name, value)`, up to the first that does not parse.
pub fn raw_props<'a>(node: RawNode<'a>) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    // Stop at an error: the reader does not advance past a bad entry, so
    // skipping it would yield the same error forever.
    node.properties()
        .into_iter()
        .flat_map(|p| p.iter())
        .map_while(Result::ok)
        .map(|p| (p.name, p.value))
}

/// A node's children, up to the first that does not parse.
pub fn raw_children<'a>(node: RawNode<'a>) -> impl Iterator<Item = RawNode<'a>> {
    children(node)
}

/// The children of `node`, up to the first that does not parse (see
/// [`raw_props`] for why not past it).
fn children<'a>(node: Node<'a>) -> impl Iterator<Item = Node<'a>> {
    node.children()
        .into_iter()
        .flat_map(|c| c.iter())
        .map_while(Result::ok)
}

/// The raw value of property `name`.
fn prop<'a>(node: Node<'a>, name: &str) -> Option<&'a [u8]> {
    node.raw_property(name).ok().flatten().map(|p| p.value)
}

/// `#address-cells` of `node` (for its children), 2 if absent.
fn address_cells(node: Node<'_>) -> usize {
    cell_count(prop(node, "#address-cells"), 2)
}

/// `#size-cells` of `node` (for its children), 1 if absent.
fn size_cells(node: Node<'_>) -> usize {
    cell_count(prop(node, "#size-cells"), 1)
}

/// A property's value as one NUL-terminated string.
fn str_prop<'a>(node: Node<'a>, name: &str) -> Option<&'a str> {
    strings(node, name).next()
}

/// A property's value as a NUL-separated string list.
fn strings<'a>(node: Node<'a>, name: &str) -> impl Iterator<Item = &'a str> {
    let value = prop(node, name).unwrap_or(&[]);
    value
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_fdt() {
        assert_eq!(DeviceTree::new(&[0u8; 64]).err(), Some(DtError::BadHeader));
        assert_eq!(
            total_size(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x10, 0]),
            Some(0x1000)
        );
        assert_eq!(total_size(&[0; 8]), None);
    }
}
