//! The device side of a virtqueue: it takes the chains the driver offers,
//! every descriptor copied out once and checked, and returns them used.

use super::{
    desc, need_event, Buffer, Notification, RingError, RingLayout, AVAIL_F_NO_INTERRUPT,
    DESCRIPTOR_SIZE, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, MAX_CHAIN, USED_F_NO_NOTIFY,
};
use crate::sync::{fence, Ordering};
use crate::window::{RingFields, Window};

/// A chain the device side took from the available ring. Not `Clone`: it must
/// be returned exactly once, through [`DeviceQueue::push_used`].
///
/// It keeps the first `M` buffers of the chain (every buffer, up to
/// [`MAX_CHAIN`], is checked either way). A user that only ever reads the
/// first buffer, such as rpmsg, takes it from [`DeviceQueue::pop_first`] with
/// a `Chain<0>`: 8 bytes, which moves around in registers.
#[derive(Debug, PartialEq, Eq)]
pub struct Chain<const M: usize = MAX_CHAIN> {
    head: u16,
    count: u8,
    buffers: [Buffer; M],
    writable: u32,
    readable: u32,
}

impl<const M: usize> Chain<M> {
    /// Head descriptor index.
    pub fn head(&self) -> u16 {
        self.head
    }
    /// The chain's buffers, in order, device-readable ones first: all of them,
    /// or the first `M` of a longer chain.
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers[..usize::from(self.count)]
    }
    /// Total device-writable bytes.
    pub fn writable_len(&self) -> u32 {
        self.writable
    }
    /// Total device-readable bytes.
    pub fn readable_len(&self) -> u32 {
        self.readable
    }
}

/// The device side of one virtqueue: takes offered chains, returns them used.
#[derive(Debug)]
pub struct DeviceQueue<'a> {
    window: Window<'a>,
    layout: RingLayout,
    /// The layout's fields, checked once against the window.
    fields: RingFields<'a>,
    notification: Notification,
    last_avail: u16,
    /// avail.idx as last read (and checked); entries up to it are known.
    avail_seen: u16,
    used_idx: u16,
    /// `used_idx` as last stored in the ring ([`DeviceQueue::publish_used`]).
    used_published: u16,
    /// `used_idx` has been read from the ring (see [`DeviceQueue::attach`]).
    used_known: bool,
    in_flight: u16,
    want_notifications: bool,
}

impl<'a> DeviceQueue<'a> {
    /// Attaches to a ring the driver initialised. The used index is taken from
    /// the ring, not assumed 0: rpmsg-lite's master pre-fills the device's used
    /// ring with its own TX buffers. It is read with the first offered chain,
    /// not now: that master fills vring 0 first and pre-fills vring 1's used
    /// ring after, so a device attaching in between would read 0 here. The
    /// driver must finish the pre-fill before it offers a chain (rpmsg-lite
    /// takes every buffer it offers from that used ring), and the chain's
    /// *consume* barrier orders our read after the driver's used.idx store.
    pub fn attach(
        window: Window<'a>,
        layout: RingLayout,
        notification: Notification,
    ) -> Result<Self, RingError> {
        let fields = window.ring_fields(layout)?;
        let mut q = Self {
            window,
            layout,
            fields,
            notification,
            last_avail: 0,
            avail_seen: 0,
            used_idx: 0,
            used_published: 0,
            used_known: false,
            in_flight: 0,
            want_notifications: true,
        };
        q.reset()?;
        Ok(q)
    }

    /// Forgets the ring's state (after the driver re-initialised it); the used
    /// index is read again with the next offered chain.
    pub fn reset(&mut self) -> Result<(), RingError> {
        self.used_idx = 0;
        self.used_published = 0;
        self.used_known = false;
        self.last_avail = 0;
        self.avail_seen = 0;
        self.in_flight = 0;
        self.want_notifications = true;
        Ok(())
    }

    /// The ring's layout.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Whether the driver has offered chains not taken yet.
    pub fn has_available(&self) -> Result<bool, RingError> {
        self.window.invalidate(self.layout.avail_idx(), 2);
        Ok(self.window.read_u16(self.layout.avail_idx())? != self.last_avail)
    }

    /// Takes the next offered chain, every descriptor copied out once and
    /// checked (index, flags, order, address and length inside the window,
    /// length overflow, chain length, loops).
    pub fn pop_available(&mut self) -> Result<Option<Chain>, RingError> {
        self.pop_chain()
    }

    /// [`DeviceQueue::pop_available`], keeping only the first `M` buffers
    /// (the others are still checked).
    pub fn pop_chain<const M: usize>(&mut self) -> Result<Option<Chain<M>>, RingError> {
        Ok(self.pop::<M>()?.map(|(chain, _)| chain))
    }

    /// The next chain's first buffer, and the chain (keeping no buffers) to
    /// give back through [`DeviceQueue::push_used`]. The whole chain is
    /// checked as by [`DeviceQueue::pop_available`].
    #[inline(always)]
    pub fn pop_first(&mut self) -> Result<Option<(Chain<0>, Buffer)>, RingError> {
        self.pop::<0>()
    }

    #[inline(always)]
    fn pop<const M: usize>(&mut self) -> Result<Option<(Chain<M>, Buffer)>, RingError> {
        const { assert!(M <= MAX_CHAIN) };
        let size = self.layout.size;
        // avail.idx is read (a cross-core miss) only once the entries seen with
        // its last value, checked then, are all taken.
        if self.avail_seen == self.last_avail {
            self.window.invalidate(self.layout.avail_idx(), 2);
            let idx = self.fields.avail_idx();
            if idx == self.last_avail {
                return Ok(None);
            }
            // More new entries than the ring has slots, or than could be
            // outstanding given what we still hold, is a lie.
            if idx.wrapping_sub(self.last_avail) > size - self.in_flight.min(size) {
                return Err(RingError::AvailIndex {
                    idx,
                    seen: self.last_avail,
                });
            }
            // Barrier *consume*: avail.idx before avail.ring[], descriptors,
            // buffers, and (first time) the driver's pre-filled used.idx.
            fence(Ordering::Acquire);
            self.avail_seen = idx;
            if !self.used_known {
                // Our own index from now on: any value is a valid start, as
                // every slot it names is inside the ring.
                self.window.invalidate(self.layout.used_idx(), 2);
                self.used_idx = self.window.read_u16(self.layout.used_idx())?;
                self.used_published = self.used_idx;
                self.used_known = true;
            }
        }
        self.window
            .invalidate(self.layout.avail_ring(self.last_avail), 2);
        let head = self.fields.avail_slot(self.last_avail);
        if head >= size {
            return Err(RingError::DescriptorIndex(head.into()));
        }
        // The common chain, one descriptor (every rpmsg buffer): copied out in
        // two loads (`addr`; `len`, `flags` and `next` as one word), checked,
        // and done without the walk below.
        self.window
            .invalidate(self.layout.descriptor(head), DESCRIPTOR_SIZE);
        let (addr, word) = self.fields.descriptor(head);
        let (len, flags) = (word as u32, (word >> 32) as u16);
        let (chain, first) = if flags & (DESC_F_NEXT | DESC_F_INDIRECT) == 0 {
            let offset = self.window.offset_of(addr, len.into())?;
            let writable = flags & DESC_F_WRITE != 0;
            let first = Buffer {
                offset,
                len,
                device_writable: writable,
            };
            let mut chain = Chain {
                head,
                count: 0,
                buffers: [Buffer::default(); M],
                writable: if writable { len } else { 0 },
                readable: if writable { 0 } else { len },
            };
            if let Some(b) = chain.buffers.first_mut() {
                *b = first;
                chain.count = 1;
            }
            (chain, first)
        } else {
            self.walk::<M>(head)?
        };
        self.last_avail = self.last_avail.wrapping_add(1);
        self.in_flight += 1;
        if self.notification.event_idx && self.want_notifications {
            // Ask to be notified when the driver publishes past this entry.
            self.window
                .write_u16(self.layout.avail_event(), self.last_avail)?;
            self.window.clean(self.layout.avail_event(), 2);
        }
        Ok(Some((chain, first)))
    }

    /// Every descriptor of the chain at `head`, copied out once and checked
    /// (index, flags, order, address and length inside the window, length
    /// overflow, chain length, loops); the first `M` buffers kept.
    fn walk<const M: usize>(&self, head: u16) -> Result<(Chain<M>, Buffer), RingError> {
        let size = self.layout.size;
        let mut chain = Chain {
            head,
            count: 0,
            buffers: [Buffer::default(); M],
            writable: 0,
            readable: 0,
        };
        let mut first = Buffer::default();
        let mut total: u32 = 0;
        let mut writable_seen = false;
        let mut i = head;
        let mut visited: u16 = 0;
        loop {
            // Bounded by the queue size: a chain visiting more descriptors than
            // exist must loop.
            if usize::from(visited) >= MAX_CHAIN || visited >= size {
                return Err(RingError::ChainTooLong);
            }
            let at = self.layout.descriptor(i);
            self.window.invalidate(at, DESCRIPTOR_SIZE);
            let addr = self.window.read_u64(at + desc::ADDR)?;
            let len = self.window.read_u32(at + desc::LEN)?;
            // `flags` and `next` in one load (both little-endian u16s).
            let word = self.window.read_u32(at + desc::FLAGS)?;
            let (flags, next) = (word as u16, (word >> 16) as u16);
            if flags & DESC_F_INDIRECT != 0 {
                return Err(RingError::Indirect);
            }
            let writable = flags & DESC_F_WRITE != 0;
            if writable_seen && !writable {
                return Err(RingError::ReadableAfterWritable);
            }
            writable_seen |= writable;
            total = total.checked_add(len).ok_or(RingError::ChainLength)?;
            let offset = self.window.offset_of(addr, len.into())?;
            let buffer = Buffer {
                offset,
                len,
                device_writable: writable,
            };
            if visited == 0 {
                first = buffer;
            }
            if let Some(b) = chain.buffers.get_mut(usize::from(visited)) {
                *b = buffer;
                chain.count += 1;
            }
            visited += 1;
            if writable {
                chain.writable += len;
            } else {
                chain.readable += len;
            }
            if flags & DESC_F_NEXT == 0 {
                break;
            }
            if next >= size {
                return Err(RingError::DescriptorIndex(next.into()));
            }
            i = next;
        }
        Ok((chain, first))
    }

    /// Returns a chain with `written` bytes written into its writable part.
    /// A chain with no writable part may instead report its readable length
    /// ([`Chain::readable_len`]): virtio tells drivers not to rely on the used
    /// length of a device-read-only buffer, but OpenAMP's rpmsg host takes
    /// it as the size of the TX buffer it gets back.
    /// Returns whether the driver should be interrupted.
    #[inline(always)]
    pub fn push_used<const M: usize>(
        &mut self,
        chain: Chain<M>,
        written: u32,
    ) -> Result<bool, RingError> {
        self.stage_used(chain, written)?;
        self.publish_used()
    }

    /// Writes a chain's used element without publishing it: the driver sees
    /// it, with every chain staged before it, at the next
    /// [`DeviceQueue::publish_used`] (one `used.idx` store, one notify check
    /// for a batch). The chain counts as returned at once.
    #[inline(always)]
    pub fn stage_used<const M: usize>(
        &mut self,
        chain: Chain<M>,
        written: u32,
    ) -> Result<(), RingError> {
        let read_back = chain.writable == 0 && written == chain.readable;
        if written > chain.writable && !read_back {
            return Err(RingError::UsedLength {
                len: written,
                capacity: chain.writable,
            });
        }
        let at = self.layout.used_elem(self.used_idx);
        // An element that already says this (a chain taken and given back in
        // ring order, as rpmsg does) is not written again: its cache line
        // stays shared with the driver. As with the driver's descriptors,
        // what is read only decides whether to store, and a non-coherent
        // window (where this side's cached copy may be stale, for example
        // after the driver zeroed the ring) is always written.
        let same = self.window.is_coherent()
            && self.fields.used_elem(self.used_idx) == (u32::from(chain.head), written);
        if !same {
            self.fields
                .set_used_elem(self.used_idx, chain.head.into(), written);
            self.window.clean(at, 8);
        }
        self.used_idx = self.used_idx.wrapping_add(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        Ok(())
    }

    /// Makes every used element staged since the last publish visible to the
    /// driver. Returns whether the driver should be interrupted.
    #[inline(always)]
    pub fn publish_used(&mut self) -> Result<bool, RingError> {
        let (old, new) = (self.used_published, self.used_idx);
        if old == new {
            return Ok(false);
        }
        // Barrier *publish*: the used elements (and the bytes written into
        // the buffers) before used.idx.
        fence(Ordering::Release);
        self.fields.set_used_idx(new);
        self.window.clean(self.layout.used_idx(), 2);
        self.used_published = new;
        if self.notification.polled {
            return Ok(false);
        }
        // Barrier *notify-check*: used.idx store before reading avail.flags /
        // used_event.
        fence(Ordering::SeqCst);
        if self.notification.ignore_no_interrupt {
            return Ok(true);
        }
        if self.notification.event_idx {
            self.window.invalidate(self.layout.used_event(), 2);
            let event = self.window.read_u16(self.layout.used_event())?;
            Ok(need_event(event, new, old))
        } else {
            self.window.invalidate(self.layout.avail_flags(), 2);
            Ok(self.window.read_u16(self.layout.avail_flags())? & AVAIL_F_NO_INTERRUPT == 0)
        }
    }

    /// Asks the driver for notifications again. Returns whether chains are
    /// already waiting (process them rather than wait).
    pub fn enable_notifications(&mut self) -> Result<bool, RingError> {
        self.want_notifications = true;
        if self.notification.event_idx {
            self.window
                .write_u16(self.layout.avail_event(), self.last_avail)?;
            self.window.clean(self.layout.avail_event(), 2);
        } else {
            self.window.write_u16(self.layout.used_flags(), 0)?;
            self.window.clean(self.layout.used_flags(), 2);
        }
        // Barrier *notify-check*: the flag store before re-reading avail.idx.
        fence(Ordering::SeqCst);
        self.has_available()
    }

    /// Tells the driver notifications are not needed (advisory).
    pub fn disable_notifications(&mut self) -> Result<(), RingError> {
        // With the event index, leaving `avail_event` behind is the
        // suppression: the driver notifies only when it crosses it.
        self.want_notifications = false;
        if !self.notification.event_idx {
            self.window
                .write_u16(self.layout.used_flags(), USED_F_NO_NOTIFY)?;
            self.window.clean(self.layout.used_flags(), 2);
        }
        Ok(())
    }
}
