//! Per-partition device trees, made from the board's: only the partition's cores
//! (and a matching `cpu-map`), its memory, `reserved-memory` for its link windows,
//! every device another partition owns disabled, `/chosen` set for it, and an
//! `/amp-links` node describing its links and their AVPS devices; `/chosen`
//! also names the partition (`amp,partition`). The binding is
//! documented in `manifests/README.md`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use amp_plan::binding as b;
use amp_plan::{ImageKind, Plan};

use crate::tree::{cells_value, number_cells, string_value, NodeId, Tree, ROOT};

/// PSCI 0.1 function IDs (the SMC64 CPU calls of PSCI 0.2 and later, which a
/// 0.1 binding names explicitly): cpu_suspend, cpu_off, cpu_on, migrate.
const PSCI_0_1_IDS: &[(&str, u32)] = &[
    ("cpu_suspend", 0xc400_0001),
    ("cpu_off", 0x8400_0002),
    ("cpu_on", 0xc400_0003),
    ("migrate", 0xc400_0005),
];

/// The IPv4 network of the `net` device on the plan's link `n`:
/// 10.77.n.0/24 (the provider is .2, the other side .1), for the first 256
/// links.
pub fn net_subnet(n: usize) -> Option<u32> {
    let n = u8::try_from(n).ok()?;
    Some(u32::from_be_bytes([10, 77, n, 0]))
}

/// Prefix length of each link's network.
pub const NET_PREFIX_LEN: u32 = 24;

/// The device tree partition `index` of `plan` boots with.
pub fn partition_tree(board: &Tree, plan: &Plan, index: usize) -> Tree {
    let mut t = board.clone();
    let Some(part) = plan.partitions.get(index) else {
        return t;
    };
    let (ac, sc) = (t.address_cells(ROOT), t.size_cells(ROOT));
    let reg = |ranges: &[(u64, u64)]| -> Vec<u8> {
        let cells: Vec<u32> = ranges
            .iter()
            .flat_map(|&(b, s)| number_cells(b, ac).into_iter().chain(number_cells(s, sc)))
            .collect();
        cells_value(&cells)
    };

    // Cores: keep this partition's, then prune cpu-map entries that point elsewhere.
    let keep: Vec<u64> = part.cores.iter().map(|&(_, mpidr)| mpidr).collect();
    let mut kept_phandles = Vec::new();
    for (cpu, mpidr) in crate::rules::board_cpus(&t) {
        if keep.contains(&mpidr) {
            kept_phandles.extend(
                t.prop(cpu, "phandle")
                    .and_then(|v| amp_plan::cells::read_cells(v, 1)),
            );
        } else {
            t.remove_node(cpu);
        }
    }
    if let Some(map) = t.find("/cpus/cpu-map") {
        prune_cpu_map(&mut t, map, &kept_phandles);
        if t.node(map).children.is_empty() {
            t.remove_node(map);
        }
    }

    // Memory.
    let memory_nodes: Vec<NodeId> = t
        .walk()
        .into_iter()
        .filter(|&id| t.prop_str(id, "device_type") == Some("memory"))
        .collect();
    for id in memory_nodes {
        t.remove_node(id);
    }
    for &(base, size) in &part.memory {
        let id = t.add_child(ROOT, &format!("memory@{base:x}"));
        t.set_prop(id, "device_type", string_value(&["memory"]));
        t.set_prop(id, "reg", reg(&[(base, size)]));
    }

    // Link windows this partition is on.
    let links: Vec<_> = plan
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.host as usize == index || l.remote as usize == index)
        .collect();
    if !links.is_empty() {
        let rm = match t.find("/reserved-memory") {
            Some(id) => id,
            None => {
                let id = t.add_child(ROOT, "reserved-memory");
                t.set_prop(id, "#address-cells", cells_value(&[ac as u32]));
                t.set_prop(id, "#size-cells", cells_value(&[sc as u32]));
                t.set_prop(id, "ranges", Vec::new());
                id
            }
        };
        let (rac, rsc) = (t.address_cells(rm), t.size_cells(rm));
        for (_, l) in &links {
            let id = t.add_child(rm, &format!("{}@{:x}", b::WINDOW_NODE, l.base));
            t.set_prop(id, "compatible", string_value(&[b::WINDOW_COMPATIBLE]));
            let cells: Vec<u32> = number_cells(l.base, rac)
                .into_iter()
                .chain(number_cells(l.size, rsc))
                .collect();
            t.set_prop(id, "reg", cells_value(&cells));
            t.set_prop(id, "no-map", Vec::new());
        }
        let holder = t.add_child(ROOT, b::LINKS_NODE);
        t.set_prop(holder, "#address-cells", cells_value(&[2]));
        t.set_prop(holder, "#size-cells", cells_value(&[2]));
        for &(link_index, l) in &links {
            let host = l.host as usize == index;
            let peer = plan
                .partitions
                .get(if host { l.remote } else { l.host } as usize);
            let id = t.add_child(holder, &format!("link@{:x}", l.base));
            let u64s = |v: &[u64]| {
                cells_value(
                    &v.iter()
                        .flat_map(|&x| number_cells(x, 2))
                        .collect::<Vec<_>>(),
                )
            };
            t.set_prop(id, "compatible", string_value(&[b::LINK_COMPATIBLE]));
            t.set_prop(id, "reg", u64s(&[l.base, l.size]));
            t.set_prop(id, b::NAME, string_value(&[&l.name]));
            t.set_prop(
                id,
                b::PEER,
                string_value(&[peer.map_or("", |p| p.name.as_str())]),
            );
            t.set_prop(
                id,
                b::ROLE,
                string_value(&[if host { b::ROLE_HOST } else { b::ROLE_REMOTE }]),
            );
            t.set_prop(id, b::DOORBELL, string_value(&[l.doorbell.as_str()]));
            if let Some(sgi) = l.sgi {
                t.set_prop(id, b::SGI, cells_value(&[sgi]));
            }
            t.set_prop(id, b::VRINGS, u64s(&[l.vring0, l.vring1]));
            t.set_prop(id, b::BUFFERS, u64s(&[l.buffers]));
            t.set_prop(id, b::RING_ENTRIES, cells_value(&[l.ring_entries]));
            t.set_prop(id, b::VRING_ALIGN, cells_value(&[l.vring_align]));
            t.set_prop(id, b::NOTIFY_IDS, cells_value(&l.notify_ids));
            for d in &l.devices {
                let (kind, virtio_id, provider) = (&d.kind, &d.virtio_id, &d.provider);
                let name = plan
                    .partitions
                    .get(*provider as usize)
                    .map_or("", |p| p.name.as_str());
                // A kind carried both ways (a disk each side exports) gets a
                // child per provider.
                let both_ways = l.devices.iter().filter(|o| o.kind == *kind).count() > 1;
                let node = match both_ways {
                    true => format!("{kind}-{name}"),
                    false => kind.clone(),
                };
                let dev = t.add_child(id, &node);
                t.set_prop(
                    dev,
                    "compatible",
                    string_value(&[&format!("{}{kind}", b::AVPS_COMPATIBLE_PREFIX)]),
                );
                t.set_prop(dev, b::VIRTIO_DEVICE_ID, cells_value(&[*virtio_id]));
                t.set_prop(dev, b::PROVIDER, string_value(&[name]));
                let role = if *provider as usize == index {
                    b::ROLE_DEVICE
                } else {
                    b::ROLE_DRIVER
                };
                t.set_prop(dev, b::ROLE, string_value(&[role]));
                if !d.backing.is_empty() {
                    t.set_prop(dev, b::BACKING, string_value(&[&d.backing]));
                }
                if d.disk_size != 0 {
                    t.set_prop(dev, b::DISK_SIZE, u64s(&[d.disk_size]));
                }
                // Each link's network its own /24, the same on both sides.
                if kind == "net" {
                    if let Some(subnet) = net_subnet(link_index) {
                        t.set_prop(dev, b::IPV4_SUBNET, cells_value(&[subnet, NET_PREFIX_LEN]));
                    }
                }
            }
        }
    }

    // Devices other partitions own.
    for (other, p) in plan.partitions.iter().enumerate() {
        if other == index {
            continue;
        }
        for path in &p.devices {
            if let Some(id) = t.find(path) {
                t.set_prop(id, "status", string_value(&["disabled"]));
            }
        }
    }

    // Power: an OS that may not control the whole board gets PSCI 0.1 (only
    // the CPU calls, by function ID), so its kernel has no SYSTEM_OFF or
    // SYSTEM_RESET to call: its power-off and reboot stop only its own cores.
    if !part.system_control {
        let psci = t.walk().into_iter().find(|&id| {
            t.prop_strings(id, "compatible")
                .any(|c| c.starts_with("arm,psci"))
        });
        if let Some(psci) = psci {
            t.set_prop(psci, "compatible", string_value(&["arm,psci"]));
            for (name, id) in PSCI_0_1_IDS {
                if t.prop(psci, name).is_none() {
                    t.set_prop(psci, name, cells_value(&[*id]));
                }
            }
        }
    }

    // /chosen.
    let chosen = t.add_child(ROOT, "chosen");
    t.set_prop(chosen, b::CHOSEN_PARTITION, string_value(&[&part.name]));
    let owned: Vec<&str> = part.devices.iter().map(String::as_str).collect();
    t.set_prop(chosen, b::CHOSEN_DEVICES, string_value(&owned));
    match &part.console {
        Some(c) => t.set_prop(chosen, "stdout-path", string_value(&[c])),
        None => t.remove_prop(chosen, "stdout-path"),
    }
    t.remove_prop(chosen, "linux,initrd-start");
    t.remove_prop(chosen, "linux,initrd-end");
    if let Some(image) = part.image.as_ref().filter(|i| i.kind == ImageKind::Linux) {
        if !image.bootargs.is_empty() {
            t.set_prop(chosen, "bootargs", string_value(&[&image.bootargs]));
        }
        if let Some((_, at, len)) = &image.initrd {
            t.set_prop(
                chosen,
                "linux,initrd-start",
                cells_value(&number_cells(*at, 2)),
            );
            t.set_prop(
                chosen,
                "linux,initrd-end",
                cells_value(&number_cells(at + len, 2)),
            );
        }
    }
    t
}

/// Removes `cpu-map` leaves whose `cpu` is not kept, then empty containers.
fn prune_cpu_map(t: &mut Tree, id: NodeId, kept: &[u64]) {
    for child in t.node(id).children.clone() {
        prune_cpu_map(t, child, kept);
    }
    let leaf_gone = t
        .prop(id, "cpu")
        .and_then(|v| amp_plan::cells::read_cells(v, 1))
        .is_some_and(|p| !kept.contains(&p));
    let empty_container = t.prop(id, "cpu").is_none() && t.node(id).children.is_empty();
    if leaf_gone || (empty_container && t.node(id).name != "cpu-map") {
        t.remove_node(id);
    }
}

/// Paths of the nodes a tree marks `status = "disabled"`.
pub fn disabled_paths(t: &Tree) -> Vec<String> {
    t.walk()
        .into_iter()
        .filter(|&id| t.prop_str(id, "status") == Some("disabled"))
        .map(|id| t.path(id))
        .collect()
}
