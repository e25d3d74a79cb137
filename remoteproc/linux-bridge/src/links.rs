//! The links a partition's device tree describes, read from the tree the
//! kernel booted with (`/sys/firmware/fdt`) by the reader the other partitions
//! use (`amp_plan::dt`), with the binding of `manifests/README.md`.

use std::path::Path;

use amp_plan::dt::DeviceTree;
use remoteproc::avps::net::Subnet;

/// Where Linux shows the flattened device tree it was given.
pub(crate) const FDT: &str = "/sys/firmware/fdt";

/// One `/amp-links/link@...` node, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkInfo {
    /// Link name.
    pub(crate) name: String,
    /// Window base and size (physical).
    pub(crate) window: (u64, u64),
    /// This side owns the buffers.
    pub(crate) host: bool,
    /// The partition at the other end.
    pub(crate) peer: String,
    /// Vring 0 and 1 addresses.
    pub(crate) vrings: [u64; 2],
    /// First buffer.
    pub(crate) buffers: u64,
    /// Entries per vring.
    pub(crate) ring_entries: u32,
    /// AVPS devices: `(kind, provider)`.
    pub(crate) devices: Vec<(String, String)>,
    /// The network of the link's `net` device (`amp,ipv4-subnet`).
    pub(crate) net_subnet: Option<Subnet>,
    /// What backs the disk this side provides, if the tree names it
    /// (`amp,backing`).
    pub(crate) backing: Option<String>,
}

/// Every well-formed link in the device tree blob at `path` (normally
/// [`FDT`]), and the names of the link nodes that were not; an error if the
/// file is not a device tree.
pub(crate) fn read(path: &Path) -> Result<(Vec<LinkInfo>, Vec<String>), String> {
    let blob = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&blob).map_err(|e| format!("{}: {e}", path.display()))
}

/// The links of a device tree blob, and the names of malformed link nodes.
fn parse(blob: &[u8]) -> Result<(Vec<LinkInfo>, Vec<String>), &'static str> {
    let tree = DeviceTree::new(blob).map_err(|e| e.as_str())?;
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for node in tree.link_nodes() {
        match node {
            Ok(l) => good.push(LinkInfo {
                name: l.name.to_string(),
                window: l.window,
                host: l.host,
                peer: l.peer.to_string(),
                vrings: l.vrings,
                buffers: l.buffers,
                ring_entries: l.ring_entries,
                devices: l
                    .devices()
                    .map(|(kind, provider)| (kind.to_string(), provider.to_string()))
                    .collect(),
                net_subnet: l
                    .net_subnet()
                    .map(|(addr, prefix_len)| Subnet { addr, prefix_len }),
                backing: tree
                    .partition_name()
                    .and_then(|me| l.block_backing(me))
                    .map(str::to_string),
            }),
            Err(name) => bad.push(match name.unit_address {
                Some(unit) => format!("{}@{unit}", name.name),
                None => name.name.to_string(),
            }),
        }
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amp_plan::{DoorbellKind, LinkDevice, Plan, PlannedLink, PlannedPartition};
    use partitioner::tree::Tree;

    fn partition(name: &str) -> PlannedPartition {
        PlannedPartition {
            name: name.into(),
            cores: vec![],
            memory: vec![],
            entry_el: 1,
            system_control: false,
            devices: vec![],
            console: None,
            image: None,
            dtb: 0,
        }
    }

    fn device(kind: &str, virtio_id: u32, provider: u32, backing: &str) -> LinkDevice {
        LinkDevice {
            kind: kind.into(),
            virtio_id,
            provider,
            backing: backing.into(),
            disk_size: 0,
        }
    }

    #[test]
    fn reads_the_binding_as_dtgen_writes_it() {
        let plan = Plan {
            board: "qemu-virt".into(),
            partitions: vec![partition("linux"), partition("rtos")],
            links: vec![PlannedLink {
                name: "linux-rtos".into(),
                host: 0,
                remote: 1,
                base: 0x7ef0_0000,
                size: 0x10_0000,
                doorbell: DoorbellKind::Poll,
                sgi: None,
                vring0: 0x7ef0_1000,
                vring1: 0x7ef0_4000,
                buffers: 0x7ef0_7000,
                ring_entries: 256,
                vring_align: 0x1000,
                notify_ids: [0, 1],
                devices: vec![
                    device("console", 3, 1, ""),
                    device("net", 1, 1, ""),
                    device("block", 2, 0, "/dev/vda"),
                    device("block", 2, 1, ""),
                ],
            }],
        };
        let mut tree = partitioner::dtgen::partition_tree(&Tree::new(), &plan, 0);
        let holder = tree.find("/amp-links").expect("dtgen writes /amp-links");
        tree.add_child(holder, "link@broken");
        let (links, bad) = parse(&tree.to_blob()).unwrap();
        assert_eq!(bad, ["link@broken"]);
        assert_eq!(links.len(), 1);
        let l = &links[0];
        assert_eq!(
            (l.name.as_str(), l.window, l.host, l.peer.as_str()),
            ("linux-rtos", (0x7ef0_0000, 0x10_0000), true, "rtos")
        );
        assert_eq!(
            (l.vrings, l.buffers, l.ring_entries),
            ([0x7ef0_1000, 0x7ef0_4000], 0x7ef0_7000, 256)
        );
        assert_eq!(
            l.devices,
            [
                ("console".to_string(), "rtos".to_string()),
                ("net".to_string(), "rtos".to_string()),
                ("block".to_string(), "linux".to_string()),
                ("block".to_string(), "rtos".to_string())
            ]
        );
        // The disk this side provides, and what backs it.
        assert_eq!(l.backing.as_deref(), Some("/dev/vda"));
        // The first link's network: 10.77.0.0/24.
        let subnet = l.net_subnet.unwrap();
        assert_eq!(
            (subnet.user(), subnet.provider()),
            ([10, 77, 0, 1], [10, 77, 0, 2])
        );
        assert_eq!(subnet.mask(), [255, 255, 255, 0]);
    }

    #[test]
    fn says_when_the_file_is_no_device_tree() {
        assert!(parse(b"not a tree").is_err());
    }
}
