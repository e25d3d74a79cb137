//! The links a partition's device tree describes, read from the kernel's view
//! of it (`/proc/device-tree/amp-links`), with the binding of
//! `manifests/README.md`.

use std::path::{Path, PathBuf};

/// One `/amp-links/link@...` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkNode {
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
    pub(crate) net_subnet: Option<remoteproc::avps::net::Subnet>,
}

fn string(dir: &Path, prop: &str) -> Option<String> {
    let raw = std::fs::read(dir.join(prop)).ok()?;
    let text = raw.split(|b| *b == 0).next()?;
    String::from_utf8(text.to_vec()).ok()
}

fn u64s(dir: &Path, prop: &str) -> Option<Vec<u64>> {
    let raw = std::fs::read(dir.join(prop)).ok()?;
    (raw.len() % 8 == 0).then(|| {
        raw.chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    })
}

fn u32_prop(dir: &Path, prop: &str) -> Option<u32> {
    let raw = std::fs::read(dir.join(prop)).ok()?;
    Some(u32::from_be_bytes(raw.get(..4)?.try_into().ok()?))
}

fn one(dir: &Path) -> Option<LinkNode> {
    let reg = u64s(dir, "reg")?;
    let vrings = u64s(dir, "amp,vrings")?;
    let mut devices = Vec::new();
    let mut net_subnet = None;
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut children: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        children.sort();
        for child in children {
            if let (Some(c), Some(p)) =
                (string(&child, "compatible"), string(&child, "amp,provider"))
            {
                if let Some(kind) = c.strip_prefix("amp,avps-") {
                    if kind == "net" {
                        net_subnet = subnet(&child);
                    }
                    devices.push((kind.to_string(), p));
                }
            }
        }
    }
    Some(LinkNode {
        name: string(dir, "amp,name")?,
        window: (*reg.first()?, *reg.get(1)?),
        host: string(dir, "amp,role")? == "host",
        peer: string(dir, "amp,peer")?,
        vrings: [*vrings.first()?, *vrings.get(1)?],
        buffers: *u64s(dir, "amp,buffers")?.first()?,
        ring_entries: u32_prop(dir, "amp,ring-entries")?,
        devices,
        net_subnet,
    })
}

/// `amp,ipv4-subnet`: the network address and prefix length, one cell each.
fn subnet(dir: &Path) -> Option<remoteproc::avps::net::Subnet> {
    let raw = std::fs::read(dir.join("amp,ipv4-subnet")).ok()?;
    let addr: [u8; 4] = raw.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(raw.get(4..8)?.try_into().ok()?);
    Some(remoteproc::avps::net::Subnet {
        addr,
        prefix_len: u8::try_from(len).ok().filter(|l| *l <= 30)?,
    })
}

/// Every well-formed link under `root` (normally `/proc/device-tree`), and the
/// names of the nodes that were not.
pub(crate) fn read(root: &Path) -> (Vec<LinkNode>, Vec<String>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(root.join("amp-links")) else {
        return (good, bad);
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        match one(&dir) {
            Some(l) => good.push(l),
            None => bad.push(
                dir.file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
            ),
        }
    }
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    #[test]
    fn reads_the_binding_as_dtgen_writes_it() {
        let root = std::env::temp_dir().join(format!("bridge-dt-{}", std::process::id()));
        let link = root.join("amp-links/link@7ef00000");
        let console = link.join("console");
        std::fs::create_dir_all(&console).unwrap();
        let be = |v: &[u64]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        write(&link, "reg", &be(&[0x7ef0_0000, 0x10_0000]));
        write(&link, "amp,name", b"linux-rtos\0");
        write(&link, "amp,role", b"host\0");
        write(&link, "amp,peer", b"rtos\0");
        write(&link, "amp,vrings", &be(&[0x7ef0_1000, 0x7ef0_4000]));
        write(&link, "amp,buffers", &be(&[0x7ef0_7000]));
        write(&link, "amp,ring-entries", &256u32.to_be_bytes());
        write(&console, "compatible", b"amp,avps-console\0");
        write(&console, "amp,provider", b"rtos\0");
        let net = link.join("net");
        std::fs::create_dir_all(&net).unwrap();
        write(&net, "compatible", b"amp,avps-net\0");
        write(&net, "amp,provider", b"rtos\0");
        write(&net, "amp,ipv4-subnet", &[10, 77, 3, 0, 0, 0, 0, 24]);
        std::fs::create_dir_all(root.join("amp-links/link@broken")).unwrap();
        let (links, bad) = read(&root);
        std::fs::remove_dir_all(&root).unwrap();
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
                ("net".to_string(), "rtos".to_string())
            ]
        );
        let subnet = l.net_subnet.unwrap();
        assert_eq!(
            (subnet.user(), subnet.provider()),
            ([10, 77, 3, 1], [10, 77, 3, 2])
        );
        assert_eq!(subnet.mask(), [255, 255, 255, 0]);
    }
}
