//! How a link is set up: its role and where its rings and buffers lie.

use crate::resource_table;
use crate::rpmsg;

/// Which end of the link this side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The virtio driver: owns the rings and buffers (rpmsg host / master).
    Host,
    /// The virtio device: uses the host's buffers (rpmsg remote).
    Remote,
}

/// Where rings and buffers lie in the window (offsets from the window base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Linux / OpenAMP: a resource table at `table` (at most `table_len`
    /// bytes). The remote writes it, placing the vrings at `vrings`; the host
    /// takes the ring addresses, sizes and alignment from the table (checked).
    /// Buffers (2 x queue size) start at `buffers` (Linux's `vdev0buffer`).
    ResourceTable {
        /// Offset of the table.
        table: usize,
        /// Bytes reserved for the table.
        table_len: usize,
        /// Offsets of vring 0 and vring 1 (used by the remote to write the table).
        vrings: [usize; 2],
        /// Offset of the first buffer.
        buffers: usize,
    },
    /// rpmsg-lite: vring 0 at `base`, vring 1 at `base + stride`, buffers at
    /// `base + 2 * stride` (rpmsg-lite's `VRING_SIZE` is the stride, 0x8000).
    Static {
        /// Offset of vring 0.
        base: usize,
        /// Distance between the vrings (`VRING_SIZE`).
        stride: usize,
    },
}

/// How a link is set up. Both sides must agree on everything but `role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// This side's role.
    pub role: Role,
    /// Where rings and buffers lie.
    pub placement: Placement,
    /// Queue size of each vring, which is also the number of buffers per
    /// direction (taken from the table on a resource-table host).
    pub queue_size: u16,
    /// Legacy vring alignment (0x1000 for every peer we know).
    pub align: usize,
    /// Buffer size, header included (512 for every peer we know).
    pub buffer_size: usize,
    /// Offer (remote) or accept (host) `VIRTIO_F_EVENT_IDX`. Never with
    /// rpmsg-lite, which does not implement it, nor with OpenAMP, which
    /// misses kicks with it in both roles (as a remote its rpmsg layer never
    /// re-enables callbacks; as a host it never records the negotiated
    /// feature): data stays correct, but a side waiting for a kick stalls.
    pub event_idx: bool,
    /// Remote only: notify even when the host set `NO_INTERRUPT` (needed with an
    /// rpmsg-lite master, which never clears it).
    pub ignore_no_interrupt: bool,
    /// Use the name service (`VIRTIO_RPMSG_F_NS`, address 53).
    pub name_service: bool,
    /// Offset of our window header (epochs), when both sides are ours.
    pub header: Option<usize>,
    /// Host only: until the remote shows it is alive, re-kick vring 0 every
    /// this many calls to [`Link::poll`](super::Link::poll) / [`Link::receive`](super::Link::receive) (an rpmsg-lite
    /// remote misses a kick sent before it initialised). 0 = never re-kick.
    pub renotify_interval: u32,
}

impl LinkConfig {
    /// rpmsg-lite's static layout at `base`: 0x8000 stride, 0x1000 alignment,
    /// 512-byte buffers, `buffers` per direction, no event index; a remote
    /// ignores `NO_INTERRUPT`.
    pub fn rpmsg_lite(role: Role, base: usize, buffers: u16) -> Self {
        Self {
            role,
            placement: Placement::Static {
                base,
                stride: 0x8000,
            },
            queue_size: buffers,
            align: 0x1000,
            buffer_size: rpmsg::BUFFER_SIZE,
            event_idx: false,
            ignore_no_interrupt: role == Role::Remote,
            name_service: true,
            header: None,
            renotify_interval: 64,
        }
    }

    /// A Linux / OpenAMP style link with a resource table.
    pub fn resource_table(
        role: Role,
        table: usize,
        vrings: [usize; 2],
        buffers: usize,
        queue_size: u16,
    ) -> Self {
        Self {
            role,
            placement: Placement::ResourceTable {
                table,
                table_len: resource_table::TABLE_SIZE,
                vrings,
                buffers,
            },
            queue_size,
            align: 0x1000,
            buffer_size: rpmsg::BUFFER_SIZE,
            event_idx: false,
            ignore_no_interrupt: false,
            name_service: true,
            header: None,
            renotify_interval: 64,
        }
    }
}
