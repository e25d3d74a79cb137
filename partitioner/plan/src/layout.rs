//! Geometry of a link window: where the header, the two vrings and the rpmsg
//! buffers go. Pure arithmetic shared by the validator (is the window big
//! enough?), the planner and the per-partition device trees.
//!
//! ```text
//! +0x0000  link header page (epoch, status, resource table)
//! +0x1000  vring 0 (host -> remote), legacy layout, 0x1000 alignment
//! +...     vring 1 (remote -> host)
//! +...     rpmsg buffers: RING_ENTRIES for each direction, BUFFER_SIZE each
//! ```

/// Entries per vring: Linux's rpmsg default (512 buffers in all, half each way).
pub const RING_ENTRIES: u64 = 256;
/// rpmsg buffer size (16-byte header + 496-byte payload), as Linux and rpmsg-lite.
pub const BUFFER_SIZE: u64 = 512;
/// Vring alignment: the used ring starts on this boundary (rpmsg-lite needs 0x1000).
pub const VRING_ALIGN: u64 = 0x1000;
/// The header page at the start of every window.
pub const HEADER_SIZE: u64 = 0x1000;
/// Where in the header page the remote side writes its resource table.
pub const TABLE_OFFSET: u64 = 0;
/// Where in the header page both sides keep their restart epochs.
pub const EPOCH_OFFSET: u64 = 0x800;
/// Where the demo RTOS counts its work loops, a u32 that shows from outside
/// (QEMU's monitor) that the partition still runs.
pub const HEARTBEAT_OFFSET: u64 = 0xf00;
/// Where the demo RTOS counts the RTC alarms it took, a u32 read the same way.
pub const ALARMS_OFFSET: u64 = 0xf04;

/// Link windows are placed on this boundary.
pub const WINDOW_ALIGN: u64 = 0x1_0000;
/// Room kept for a partition's device tree (the boot stage writes the tree
/// there, and a spin-table trampoline at its end).
pub const DTB_ROOM: u64 = 0x20_0000;
/// Windows end below 4 GiB: the remoteproc resource table and rpmsg-lite carry
/// vring addresses in 32 bits.
pub const WINDOW_LIMIT: u64 = 1 << 32;
/// First SGI used for link doorbells (Linux keeps 0-7 for its own IPIs).
pub const FIRST_DOORBELL_SGI: u32 = 8;

/// Bytes of a legacy split vring of `entries` entries aligned to `align`
/// (Linux `vring_size`): the descriptors and the available ring then, on the
/// next `align` boundary, the used ring, as `shmem`'s
/// [`RingLayout::legacy_size`](shmem::RingLayout::legacy_size) counts them,
/// the one place the ring format's sizes are written. `u64::MAX` (fits no
/// window) for more entries than a queue can have or an alignment that is
/// not a power of two.
pub const fn vring_size(entries: u64, align: u64) -> u64 {
    let (queue, align_bytes) = (entries as u16, align as usize);
    if entries > shmem::virtqueue::MAX_QUEUE_SIZE as u64 || align_bytes as u64 != align {
        return u64::MAX;
    }
    match shmem::RingLayout::legacy_size(queue, align_bytes) {
        usize::MAX => u64::MAX,
        bytes => bytes as u64,
    }
}

/// Where everything sits in one window, as offsets from its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLayout {
    /// Vring 0 (host to remote).
    pub vring0: u64,
    /// Vring 1 (remote to host).
    pub vring1: u64,
    /// First rpmsg buffer.
    pub buffers: u64,
    /// Bytes the layout needs in all.
    pub needed: u64,
}

/// The layout every link window uses.
pub const fn window_layout() -> WindowLayout {
    let ring = vring_size(RING_ENTRIES, VRING_ALIGN).next_multiple_of(VRING_ALIGN);
    let vring0 = HEADER_SIZE;
    let vring1 = vring0 + ring;
    let buffers = vring1 + ring;
    WindowLayout {
        vring0,
        vring1,
        buffers,
        needed: buffers + 2 * RING_ENTRIES * BUFFER_SIZE,
    }
}

/// Where a side's virtio drivers keep their virtqueues and bounce buffers
/// in a window of `size` bytes: the pages after the rpmsg parts, the first
/// half for the host side's drivers, the second for the remote's. `None` if
/// the window leaves no whole page for each.
pub const fn virtio_pool(size: u64, host: bool) -> Option<(u64, u64)> {
    let start = window_layout().needed.next_multiple_of(0x1000);
    if size < start {
        return None;
    }
    let half = (size - start) / 2 / 0x1000 * 0x1000;
    if half == 0 {
        return None;
    }
    Some(if host {
        (start, half)
    } else {
        (start + half, half)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vring_size_matches_the_legacy_formula() {
        // 256 entries, 4 KiB alignment: 4096 + 518 -> 8192, + 6 + 2048.
        assert_eq!(vring_size(256, 0x1000), 8192 + 2054);
        // Linux's vring_size() for 4 entries at 16: 64 + 14 = 78 -> 80, + 38.
        assert_eq!(vring_size(4, 16), 80 + 38);
    }

    #[test]
    fn virtio_pools_split_what_the_rpmsg_parts_leave() {
        let (h, r) = (virtio_pool(1 << 20, true), virtio_pool(1 << 20, false));
        let (h, r) = (h.unwrap(), r.unwrap());
        assert!(h.0 >= window_layout().needed && h.0 % 0x1000 == 0);
        assert_eq!(h.0 + h.1, r.0);
        assert!(r.0 + r.1 <= 1 << 20 && h.1 == r.1 && h.1 >= 0x5_0000);
        assert_eq!(virtio_pool(window_layout().needed, true), None);
    }

    #[test]
    fn window_layout_fits_rings_then_buffers() {
        let l = window_layout();
        assert_eq!(l.vring0, 0x1000);
        assert!(l.vring1 >= l.vring0 + vring_size(RING_ENTRIES, VRING_ALIGN));
        assert_eq!(l.needed, l.buffers + 256 * 1024);
        assert_eq!(l.vring1 % VRING_ALIGN, 0);
    }
}
