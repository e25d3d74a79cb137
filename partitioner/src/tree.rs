//! An owned, editable device tree: read from a blob once, indexed by path, label
//! and phandle, queried by the validator in near-constant time per device, edited
//! per partition and written back as a blob.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use amp_plan::cells::{cell_count, read_cells, reg_entries, translate};
use amp_plan::dt::{DtError, MAX_DEPTH};

/// Index of a node in its [`Tree`].
pub type NodeId = usize;

/// One property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    /// Name.
    pub name: String,
    /// Raw value.
    pub value: Vec<u8>,
}

/// One node.
#[derive(Debug, Clone)]
pub struct NodeData {
    /// Name with unit address (`""` for the root).
    pub name: String,
    /// Parent, `None` for the root.
    pub parent: Option<NodeId>,
    /// Children in tree order.
    pub children: Vec<NodeId>,
    /// Properties in tree order.
    pub props: Vec<Prop>,
}

/// An owned device tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<NodeData>,
    /// `/memreserve/` entries.
    pub reservations: Vec<(u64, u64)>,
    boot_cpuid: u32,
    by_path: BTreeMap<String, NodeId>,
    by_phandle: BTreeMap<u32, NodeId>,
}

/// The root node's id.
pub const ROOT: NodeId = 0;

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// Reads a blob (checked as by [`amp_plan::dt::DeviceTree::new`]).
    pub fn parse(blob: &[u8]) -> Result<Self, DtError> {
        let dt = amp_plan::dt::DeviceTree::new(blob)?;
        let mut tree = Tree {
            nodes: Vec::new(),
            reservations: reservations(blob),
            boot_cpuid: amp_plan::cells::read_cells(blob.get(28..32).unwrap_or(&[]), 1).unwrap_or(0)
                as u32,
            by_path: BTreeMap::new(),
            by_phandle: BTreeMap::new(),
        };
        let root = dt.raw_root().ok_or(DtError::Malformed)?;
        tree.copy_node(root, None, 0)?;
        tree.reindex();
        Ok(tree)
    }

    /// A tree holding only an empty root, to build on.
    pub fn new() -> Self {
        Tree {
            nodes: alloc::vec![NodeData {
                name: String::new(),
                parent: None,
                children: Vec::new(),
                props: Vec::new()
            }],
            reservations: Vec::new(),
            boot_cpuid: 0,
            by_path: BTreeMap::from([("/".into(), ROOT)]),
            by_phandle: BTreeMap::new(),
        }
    }

    fn copy_node(
        &mut self,
        node: amp_plan::dt::RawNode<'_>,
        parent: Option<NodeId>,
        depth: usize,
    ) -> Result<NodeId, DtError> {
        if depth >= MAX_DEPTH {
            return Err(DtError::Malformed);
        }
        let id = self.nodes.len();
        self.nodes.push(NodeData {
            name: match node.name().map_err(|_| DtError::Malformed)? {
                n if n.name == "/" => String::new(),
                n => match n.unit_address {
                    Some(unit) => alloc::format!("{}@{unit}", n.name),
                    None => n.name.to_string(),
                },
            },
            parent,
            children: Vec::new(),
            props: amp_plan::dt::raw_props(node)
                .map(|(name, value)| Prop {
                    name: name.to_string(),
                    value: value.to_vec(),
                })
                .collect(),
        });
        for child in amp_plan::dt::raw_children(node) {
            let c = self.copy_node(child, Some(id), depth + 1)?;
            self.nodes[id].children.push(c);
        }
        Ok(id)
    }

    /// Rebuilds the path and phandle indexes after structural edits.
    fn reindex(&mut self) {
        self.by_path.clear();
        self.by_phandle.clear();
        let mut stack = alloc::vec![(ROOT, String::new())];
        while let Some((id, path)) = stack.pop() {
            for name in ["phandle", "linux,phandle"] {
                if let Some(p) = self.prop(id, name).and_then(|v| read_cells(v, 1)) {
                    self.by_phandle.entry(p as u32).or_insert(id);
                }
            }
            for &c in self.nodes[id].children.iter().rev() {
                let child_path = alloc::format!("{path}/{}", self.nodes[c].name);
                stack.push((c, child_path));
            }
            self.by_path
                .insert(if path.is_empty() { "/".into() } else { path }, id);
        }
    }

    /// The node data.
    pub fn node(&self, id: NodeId) -> &NodeData {
        &self.nodes[id]
    }

    /// Number of nodes (including removed-from-parent ones still stored).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no nodes (never true for a parsed tree).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node at a full path (`/soc/serial@7e215040`).
    pub fn find(&self, path: &str) -> Option<NodeId> {
        let trimmed = path.trim_end_matches('/');
        self.by_path
            .get(if trimmed.is_empty() { "/" } else { trimmed })
            .copied()
    }

    /// The node a label names, through `/__symbols__` or `/aliases`.
    pub fn label(&self, label: &str) -> Option<NodeId> {
        ["/__symbols__", "/aliases"].iter().find_map(|holder| {
            let value = self.prop(self.find(holder)?, label)?;
            let path = core::str::from_utf8(value).ok()?.trim_end_matches('\0');
            self.find(path)
        })
    }

    /// The node with this phandle.
    pub fn by_phandle(&self, phandle: u32) -> Option<NodeId> {
        self.by_phandle.get(&phandle).copied()
    }

    /// Full path of a node.
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            if c != ROOT {
                parts.push(self.nodes[c].name.as_str());
            }
            cur = self.nodes[c].parent;
        }
        if parts.is_empty() {
            return "/".into();
        }
        parts
            .iter()
            .rev()
            .fold(String::new(), |acc, p| acc + "/" + p)
    }

    /// A property's raw value.
    pub fn prop(&self, id: NodeId, name: &str) -> Option<&[u8]> {
        self.nodes[id]
            .props
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_slice())
    }

    /// A string property's first string.
    pub fn prop_str(&self, id: NodeId, name: &str) -> Option<&str> {
        self.prop_strings(id, name).next()
    }

    /// A string-list property.
    pub fn prop_strings<'t>(&'t self, id: NodeId, name: &str) -> impl Iterator<Item = &'t str> {
        self.prop(id, name)
            .unwrap_or(&[])
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| core::str::from_utf8(s).ok())
    }

    /// A property as 32-bit cells.
    pub fn prop_u32s(&self, id: NodeId, name: &str) -> Vec<u32> {
        self.prop(id, name)
            .unwrap_or(&[])
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Sets (replaces or appends) a property.
    pub fn set_prop(&mut self, id: NodeId, name: &str, value: Vec<u8>) {
        let props = &mut self.nodes[id].props;
        match props.iter_mut().find(|p| p.name == name) {
            Some(p) => p.value = value,
            None => props.push(Prop {
                name: name.to_string(),
                value,
            }),
        }
    }

    /// Removes a property if present.
    pub fn remove_prop(&mut self, id: NodeId, name: &str) {
        self.nodes[id].props.retain(|p| p.name != name);
    }

    /// Adds a child node and returns it (or the existing child of that name).
    pub fn add_child(&mut self, parent: NodeId, name: &str) -> NodeId {
        if let Some(&c) = self.nodes[parent]
            .children
            .iter()
            .find(|&&c| self.nodes[c].name == name)
        {
            return c;
        }
        let id = self.nodes.len();
        self.nodes.push(NodeData {
            name: name.to_string(),
            parent: Some(parent),
            children: Vec::new(),
            props: Vec::new(),
        });
        self.nodes[parent].children.push(id);
        let path = self.path(id);
        self.by_path.insert(path, id);
        id
    }

    /// Detaches a node (and its subtree) from the tree.
    pub fn remove_node(&mut self, id: NodeId) {
        if let Some(parent) = self.nodes[id].parent {
            self.nodes[parent].children.retain(|&c| c != id);
            self.reindex();
        }
    }

    /// Whether `ancestor` is `id` or one of its ancestors.
    pub fn is_within(&self, id: NodeId, ancestor: NodeId) -> bool {
        let mut cur = Some(id);
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = self.nodes[c].parent;
        }
        false
    }

    /// `#address-cells` a node gives its children (2 if absent).
    pub fn address_cells(&self, id: NodeId) -> usize {
        cell_count(self.prop(id, "#address-cells"), 2)
    }

    /// `#size-cells` a node gives its children (1 if absent).
    pub fn size_cells(&self, id: NodeId) -> usize {
        cell_count(self.prop(id, "#size-cells"), 1)
    }

    /// The node's `reg` entries as CPU physical `(base, size)`; `None` where an
    /// entry does not translate.
    pub fn reg(&self, id: NodeId) -> Vec<Option<(u64, u64)>> {
        let Some(parent) = self.nodes[id].parent else {
            return Vec::new();
        };
        let Some(reg) = self.prop(id, "reg") else {
            return Vec::new();
        };
        let (ac, sc) = (self.address_cells(parent), self.size_cells(parent));
        reg_entries(reg, ac, sc)
            .map(|e| e.and_then(|(addr, size)| Some((self.translate(parent, addr)?, size))))
            .collect()
    }

    /// Translates an address in `bus`'s child space up to the CPU's.
    fn translate(&self, mut bus: NodeId, mut addr: u64) -> Option<u64> {
        while let Some(outer) = self.nodes[bus].parent {
            let ranges = self.prop(bus, "ranges")?;
            addr = translate(
                addr,
                ranges,
                self.address_cells(bus),
                self.address_cells(outer),
                self.size_cells(bus),
            )?;
            bus = outer;
        }
        Some(addr)
    }

    /// The node's interrupt parent: its own or its nearest ancestor's
    /// `interrupt-parent`.
    pub fn interrupt_parent(&self, id: NodeId) -> Option<NodeId> {
        let mut cur = Some(id);
        while let Some(c) = cur {
            if let Some(p) = self
                .prop(c, "interrupt-parent")
                .and_then(|v| read_cells(v, 1))
            {
                return self.by_phandle(p as u32);
            }
            cur = self.nodes[c].parent;
        }
        None
    }

    /// The node's interrupts: `(controller, specifier cells)` from `interrupts`
    /// (with its interrupt parent) or `interrupts-extended`.
    pub fn interrupts(&self, id: NodeId) -> Vec<(NodeId, Vec<u32>)> {
        let mut out = Vec::new();
        if self.prop(id, "interrupts-extended").is_some() {
            let cells = self.prop_u32s(id, "interrupts-extended");
            let mut i = 0;
            while i < cells.len() {
                let Some(ctrl) = self.by_phandle(cells[i]) else {
                    break;
                };
                let n = cell_count(self.prop(ctrl, "#interrupt-cells"), 1);
                let Some(spec) = cells.get(i + 1..i + 1 + n) else {
                    break;
                };
                out.push((ctrl, spec.to_vec()));
                i += 1 + n;
            }
        } else if self.prop(id, "interrupts").is_some() {
            if let Some(ctrl) = self.interrupt_parent(id) {
                let n = cell_count(self.prop(ctrl, "#interrupt-cells"), 1).max(1);
                for spec in self.prop_u32s(id, "interrupts").chunks_exact(n) {
                    out.push((ctrl, spec.to_vec()));
                }
            }
        }
        out
    }

    /// Providers this node references through a `<phandle specifier...>` list
    /// property whose providers say their specifier width in `cells_name`
    /// (`clocks` / `#clock-cells`).
    pub fn phandle_list(&self, id: NodeId, prop: &str, cells_name: &str) -> Vec<NodeId> {
        let cells = self.prop_u32s(id, prop);
        let mut out = Vec::new();
        let mut i = 0;
        while i < cells.len() {
            let Some(provider) = self.by_phandle(cells[i]) else {
                break;
            };
            out.push(provider);
            i += 1 + cell_count(self.prop(provider, cells_name), 0);
        }
        out
    }

    /// Every node id reachable from the root, in tree order.
    pub fn walk(&self) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = alloc::vec![ROOT];
        while let Some(id) = stack.pop() {
            out.push(id);
            stack.extend(self.nodes[id].children.iter().rev());
        }
        out
    }

    /// Serialises the tree as a flattened device tree blob (version 17).
    pub fn to_blob(&self) -> Vec<u8> {
        let mut strings: Vec<u8> = Vec::new();
        let mut offsets: BTreeMap<&str, u32> = BTreeMap::new();
        let mut structs: Vec<u8> = Vec::new();
        let push32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
        let pad = |v: &mut Vec<u8>| {
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        };
        // Iterative pre-order walk emitting BEGIN/END tokens.
        let mut stack: Vec<(NodeId, bool)> = alloc::vec![(ROOT, false)];
        while let Some((id, closing)) = stack.pop() {
            if closing {
                push32(&mut structs, FDT_END_NODE);
                continue;
            }
            let node = &self.nodes[id];
            push32(&mut structs, FDT_BEGIN_NODE);
            structs.extend_from_slice(node.name.as_bytes());
            structs.push(0);
            pad(&mut structs);
            for p in &node.props {
                let off = *offsets.entry(p.name.as_str()).or_insert_with(|| {
                    let off = strings.len() as u32;
                    strings.extend_from_slice(p.name.as_bytes());
                    strings.push(0);
                    off
                });
                push32(&mut structs, FDT_PROP);
                push32(&mut structs, p.value.len() as u32);
                push32(&mut structs, off);
                structs.extend_from_slice(&p.value);
                pad(&mut structs);
            }
            stack.push((id, true));
            stack.extend(node.children.iter().rev().map(|&c| (c, false)));
        }
        push32(&mut structs, FDT_END);

        const HEADER: usize = 40;
        let rsv_off = HEADER.next_multiple_of(8);
        let rsv_len = (self.reservations.len() + 1) * 16;
        let struct_off = rsv_off + rsv_len;
        let strings_off = struct_off + structs.len();
        let total = strings_off + strings.len();
        let mut blob = Vec::with_capacity(total);
        for v in [
            amp_plan::dt::FDT_MAGIC,
            total as u32,
            struct_off as u32,
            strings_off as u32,
            rsv_off as u32,
            17,
            16,
            self.boot_cpuid,
            strings.len() as u32,
            structs.len() as u32,
        ] {
            push32(&mut blob, v);
        }
        blob.resize(rsv_off, 0);
        for &(base, size) in &self.reservations {
            blob.extend_from_slice(&base.to_be_bytes());
            blob.extend_from_slice(&size.to_be_bytes());
        }
        blob.extend_from_slice(&[0; 16]);
        blob.extend_from_slice(&structs);
        blob.extend_from_slice(&strings);
        blob
    }
}

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;

/// The `/memreserve/` block: `(address, size)` pairs up to the (0, 0) end.
fn reservations(blob: &[u8]) -> Vec<(u64, u64)> {
    let Some(off) = blob.get(16..20).and_then(|b| read_cells(b, 1)) else {
        return Vec::new();
    };
    blob.get(off as usize..)
        .unwrap_or(&[])
        .chunks_exact(16)
        .map(|e| {
            (
                read_cells(&e[..8], 2).unwrap_or(0),
                read_cells(&e[8..], 2).unwrap_or(0),
            )
        })
        .take_while(|&(a, s)| (a, s) != (0, 0))
        .take(64)
        .collect()
}

/// Encodes cells as a property value.
pub fn cells_value(cells: &[u32]) -> Vec<u8> {
    cells.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Encodes a number as `n` cells (1 or 2).
pub fn number_cells(value: u64, n: usize) -> Vec<u32> {
    match n {
        0 => Vec::new(),
        1 => alloc::vec![value as u32],
        _ => {
            let mut v = alloc::vec![0; n - 2];
            v.extend([(value >> 32) as u32, value as u32]);
            v
        }
    }
}

/// Encodes a string (or a string list) as a property value.
pub fn string_value(strings: &[&str]) -> Vec<u8> {
    strings
        .iter()
        .flat_map(|s| s.bytes().chain(core::iter::once(0)))
        .collect()
}
