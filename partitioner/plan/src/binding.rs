//! The names of the `amp,*` device-tree binding: what the planner writes into
//! each partition's tree and what the partitions read back (the reader in
//! [`crate::dt`]). `manifests/README.md` documents the binding; these are its
//! only spellings in code.

/// `/chosen`: the partition's name.
pub const CHOSEN_PARTITION: &str = "amp,partition";
/// `/chosen`: the device-tree paths of the devices the partition owns.
pub const CHOSEN_DEVICES: &str = "amp,devices";

/// The node under the root holding one node per link the partition is on.
pub const LINKS_NODE: &str = "amp-links";
/// `compatible` of a link node.
pub const LINK_COMPATIBLE: &str = "amp,shmem-link";
/// The name of a link window's `reserved-memory` node, before its unit address.
pub const WINDOW_NODE: &str = "amp-link";
/// `compatible` of a link window's `reserved-memory` node.
pub const WINDOW_COMPATIBLE: &str = "amp,shmem-window";

/// Link: its name.
pub const NAME: &str = "amp,name";
/// Link: the partition at the other end.
pub const PEER: &str = "amp,peer";
/// Link: [`ROLE_HOST`] or [`ROLE_REMOTE`]; AVPS device: [`ROLE_DEVICE`] or
/// [`ROLE_DRIVER`].
pub const ROLE: &str = "amp,role";
/// Link: the doorbell kind (`DoorbellKind::as_str`); absent means `poll`.
pub const DOORBELL: &str = "amp,doorbell";
/// Link: the SGI of an `sgi` doorbell.
pub const SGI: &str = "amp,sgi";
/// Link: the addresses of vring 0 and vring 1, two cells each.
pub const VRINGS: &str = "amp,vrings";
/// Link: the address of the first rpmsg buffer, two cells.
pub const BUFFERS: &str = "amp,buffers";
/// Link: entries per vring.
pub const RING_ENTRIES: &str = "amp,ring-entries";
/// Link: vring alignment.
pub const VRING_ALIGN: &str = "amp,vring-align";
/// Link: the notification IDs of vring 0 and vring 1.
pub const NOTIFY_IDS: &str = "amp,notify-ids";

/// The side of a link that owns the buffers and drives vring 0.
pub const ROLE_HOST: &str = "host";
/// The other side of a link.
pub const ROLE_REMOTE: &str = "remote";

/// AVPS device: `compatible` is this followed by the device's kind.
pub const AVPS_COMPATIBLE_PREFIX: &str = "amp,avps-";
/// AVPS device: its virtio device ID (virtio spec, section 5).
pub const VIRTIO_DEVICE_ID: &str = "virtio,device-id";
/// AVPS device: the partition that provides it.
pub const PROVIDER: &str = "amp,provider";
/// AVPS device: `net`'s IPv4 network, address and prefix length, a cell each.
pub const IPV4_SUBNET: &str = "amp,ipv4-subnet";
/// The provider's side of an AVPS device.
pub const ROLE_DEVICE: &str = "device";
/// The other side of an AVPS device.
pub const ROLE_DRIVER: &str = "driver";
/// On a link's `block` device provided by a Linux partition: the file or
/// block device (a path on that partition) that backs the disk.
pub const BACKING: &str = "amp,backing";
/// On a link's `block` device provided by a non-Linux partition: the disk's
/// size in bytes (a RAM disk in the provider's memory), 2 cells.
pub const DISK_SIZE: &str = "amp,disk-size";
