//! The driver side of a virtqueue: it owns the descriptors, offers chains of
//! buffers and takes them back used, never reading its own descriptors back.

use super::{
    desc, need_event, Notification, RingError, RingLayout, Segment, Used, AVAIL_F_NO_INTERRUPT,
    DESC_F_NEXT, DESC_F_WRITE, USED_F_NO_NOTIFY,
};
use crate::sync::{fence, Ordering};
use crate::window::{RingFields, Window};

/// `chain_len` of a descriptor [`DriverQueue::reserve`] handed out and not
/// yet offered or given back (a real chain is at most the queue size long).
const RESERVED: u16 = u16::MAX;

/// A driver's free descriptors: a FIFO list from `head` to `tail`, `len`
/// long, linked through the driver's private `next` shadow.
#[derive(Clone, Copy, Debug, Default)]
struct FreeList {
    head: u16,
    tail: u16,
    len: u16,
}

impl FreeList {
    /// Puts the chain `head` .. `tail` (`count` descriptors, linked in
    /// `next`) at the back.
    #[inline(always)]
    fn push(&mut self, next: &mut [u16], head: u16, tail: u16, count: u16) {
        if self.len == 0 {
            self.head = head;
        } else {
            next[usize::from(self.tail)] = head;
        }
        self.tail = tail;
        self.len += count;
    }
}

/// The driver side of one virtqueue: offers buffers, takes them back used.
///
/// `N` is the largest queue size this instance can track (its shadow arrays);
/// the actual size comes from the layout.
#[derive(Debug)]
pub struct DriverQueue<'a, const N: usize> {
    window: Window<'a>,
    layout: RingLayout,
    /// The layout's fields, checked once against the window.
    fields: RingFields<'a>,
    notification: Notification,
    want_interrupts: bool,
    // Private shadow of the descriptor table: free list and chain links, token
    // and writable capacity per head. Never read back from shared memory.
    next: [u16; N],
    chain_len: [u16; N],
    token: [u16; N],
    capacity: [u32; N],
    /// Free descriptors form a FIFO list (`free.head` .. `free.tail`): a freed
    /// chain goes to the back, so descriptors are reused in the order they were
    /// used. With in-order completion each buffer then keeps its descriptor and
    /// avail slot, whose contents stay the same and are not written again (see
    /// [`DriverQueue::add`]).
    free: FreeList,
    outstanding: u16,
    avail_idx: u16,
    published: u16,
    last_used: u16,
    /// used.idx as last read (and checked); entries up to it are known.
    used_seen: u16,
}

impl<'a, const N: usize> DriverQueue<'a, N> {
    /// Takes ownership of the ring at `layout`: zeroes it (the driver
    /// initialises the ring, VSPEC 2.7 and Linux `vring_new_virtqueue`), with
    /// interrupts wanted.
    pub fn new(
        window: Window<'a>,
        layout: RingLayout,
        notification: Notification,
    ) -> Result<Self, RingError> {
        let fields = window.ring_fields(layout)?;
        if usize::from(layout.size) > N {
            return Err(RingError::Layout);
        }
        let mut q = Self {
            window,
            layout,
            fields,
            notification,
            want_interrupts: true,
            next: [0; N],
            chain_len: [0; N],
            token: [0; N],
            capacity: [0; N],
            free: FreeList::default(),
            outstanding: 0,
            avail_idx: 0,
            published: 0,
            last_used: 0,
            used_seen: 0,
        };
        q.reset()?;
        Ok(q)
    }

    /// Forgets every outstanding chain and zeroes the ring again (link reset).
    pub fn reset(&mut self) -> Result<(), RingError> {
        let l = self.layout;
        for (at, len) in l.parts() {
            self.window.fill(at, len, 0)?;
        }
        for i in 0..l.size {
            self.next[usize::from(i)] = i + 1;
            self.chain_len[usize::from(i)] = 0;
        }
        self.free = FreeList {
            head: 0,
            tail: l.size - 1,
            len: l.size,
        };
        self.outstanding = 0;
        self.avail_idx = 0;
        self.published = 0;
        self.last_used = 0;
        self.used_seen = 0;
        self.want_interrupts = true;
        for (at, len) in l.parts() {
            self.window.clean(at, len);
        }
        Ok(())
    }

    /// The ring's layout.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Free descriptors.
    pub fn num_free(&self) -> u16 {
        self.free.len
    }

    /// Writes a chain's descriptors and its `avail.ring` slot; the device sees
    /// it after [`DriverQueue::publish`]. `token` comes back with it in
    /// [`Used`]. Device-readable segments must come first.
    #[inline(always)]
    pub fn add(&mut self, chain: &[Segment], token: u16) -> Result<u16, RingError> {
        if chain.is_empty() {
            return Err(RingError::EmptyChain);
        }
        if chain.len() > usize::from(self.free.len) {
            return Err(RingError::Full);
        }
        let mut writable_seen = false;
        let mut capacity: u32 = 0;
        for s in chain {
            if writable_seen && !s.device_writable {
                return Err(RingError::ReadableAfterWritable);
            }
            writable_seen |= s.device_writable;
            if s.device_writable {
                capacity = capacity.checked_add(s.len).ok_or(RingError::ChainLength)?;
            }
        }
        let head = self.free.head;
        let mut i = head;
        for (k, s) in chain.iter().enumerate() {
            let last = k + 1 == chain.len();
            let at = self.layout.descriptor(i);
            let mut flags = if s.device_writable { DESC_F_WRITE } else { 0 };
            let next = self.next[usize::from(i)];
            if !last {
                flags |= DESC_F_NEXT;
            }
            let next_field = if last { 0 } else { next };
            // `len`, `flags` and `next` (little-endian) as one word.
            let word = u64::from(s.len) | (u64::from(flags) << 32) | (u64::from(next_field) << 48);
            write_unless_same(&self.fields, &self.window, at, i, s.addr, word);
            if !last {
                i = next;
            } else {
                self.free.head = next;
            }
        }
        self.free.len -= chain.len() as u16;
        self.offer(head, chain.len() as u16, token, capacity);
        Ok(head)
    }

    /// The descriptor [`DriverQueue::reserve`] takes next, if any is free.
    #[inline(always)]
    pub fn peek_free(&self) -> Option<u16> {
        (self.free.len != 0).then_some(self.free.head)
    }

    /// Takes one free descriptor, to be offered later as a chain of one
    /// segment ([`DriverQueue::offer_reserved`]) or given back
    /// ([`DriverQueue::unreserve`]). A driver that binds each of its buffers
    /// to one descriptor (rpmsg's TX buffers) keeps its free buffers as this
    /// queue's free descriptors: one list, not two kept in step.
    #[inline(always)]
    pub fn reserve(&mut self) -> Option<u16> {
        let head = self.peek_free()?;
        self.free.head = self.next[usize::from(head)];
        self.free.len -= 1;
        self.chain_len[usize::from(head)] = RESERVED;
        Some(head)
    }

    /// Offers reserved descriptor `head` as a chain of one segment (as
    /// [`DriverQueue::add`] does, without the chain loop and its checks).
    #[inline(always)]
    pub fn offer_reserved(
        &mut self,
        head: u16,
        segment: Segment,
        token: u16,
    ) -> Result<(), RingError> {
        if self.chain_len.get(usize::from(head)) != Some(&RESERVED) {
            return Err(RingError::NotReserved(head));
        }
        let (word, capacity) = lone_descriptor(&segment);
        let at = self.layout.descriptor(head);
        write_unless_same(&self.fields, &self.window, at, head, segment.addr, word);
        self.offer(head, 1, token, capacity);
        Ok(())
    }

    /// Offers free descriptors one after another, each as a chain of one
    /// segment whose token is the descriptor's index: `segment(d)` makes
    /// descriptor `d`'s segment (typically filling the buffer bound to it),
    /// or returns `None` to stop, leaving `d` free. At most `max`; returns
    /// how many were offered. [`DriverQueue::publish`] shows them to the
    /// device. For a driver streaming through buffers bound to descriptors
    /// (as [`DriverQueue::reserve`] and [`DriverQueue::offer_reserved`],
    /// without a call and its checks per buffer).
    #[inline(always)]
    pub fn offer_each(&mut self, max: u16, mut segment: impl FnMut(u16) -> Option<Segment>) -> u16 {
        // The free list, the counters and the ring's fields in locals (as
        // in `take_seen`), written back once.
        let (fields, window, layout) = (self.fields, self.window, self.layout);
        let mut free = self.free;
        let (mut avail_idx, mut outstanding) = (self.avail_idx, self.outstanding);
        let mut n = 0;
        while n < max && free.len != 0 {
            let d = free.head;
            let Some(seg) = segment(d) else { break };
            free.head = self.next[usize::from(d)];
            free.len -= 1;
            let (word, capacity) = lone_descriptor(&seg);
            write_unless_same(&fields, &window, layout.descriptor(d), d, seg.addr, word);
            self.chain_len[usize::from(d)] = 1;
            self.token[usize::from(d)] = d;
            self.capacity[usize::from(d)] = capacity;
            write_slot_unless_same(&fields, &window, layout.avail_ring(avail_idx), avail_idx, d);
            avail_idx = avail_idx.wrapping_add(1);
            outstanding += 1;
            n += 1;
        }
        self.free = free;
        (self.avail_idx, self.outstanding) = (avail_idx, outstanding);
        n
    }

    /// Gives reserved descriptor `head` back unused.
    pub fn unreserve(&mut self, head: u16) -> Result<(), RingError> {
        if self.chain_len.get(usize::from(head)) != Some(&RESERVED) {
            return Err(RingError::NotReserved(head));
        }
        self.chain_len[usize::from(head)] = 0;
        self.free.push(&mut self.next, head, head, 1);
        Ok(())
    }

    /// Records the chain at `head` (`len` descriptors, already written) and
    /// puts it in the next `avail.ring` slot.
    #[inline(always)]
    fn offer(&mut self, head: u16, len: u16, token: u16, capacity: u32) {
        self.chain_len[usize::from(head)] = len;
        self.token[usize::from(head)] = token;
        self.capacity[usize::from(head)] = capacity;
        let slot = self.layout.avail_ring(self.avail_idx);
        write_slot_unless_same(&self.fields, &self.window, slot, self.avail_idx, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.outstanding += 1;
    }

    /// Makes every chain added since the last publish visible to the device.
    /// Returns whether the device asked to be notified (ring the doorbell then).
    #[inline(always)]
    pub fn publish(&mut self) -> Result<bool, RingError> {
        if self.avail_idx == self.published {
            return Ok(false);
        }
        let old = self.published;
        let new = self.avail_idx;
        // Barrier *publish*: descriptors and avail.ring[] before avail.idx.
        fence(Ordering::Release);
        self.fields.set_avail_idx(new);
        self.window.clean(self.layout.avail_idx(), 2);
        self.published = new;
        if self.notification.polled {
            return Ok(false);
        }
        // Barrier *notify-check*: avail.idx store before the used.flags /
        // avail_event load, or a device going to sleep is never woken.
        fence(Ordering::SeqCst);
        if self.notification.event_idx {
            self.window.invalidate(self.layout.avail_event(), 2);
            let event = self.window.read_u16(self.layout.avail_event())?;
            Ok(need_event(event, new, old))
        } else {
            self.window.invalidate(self.layout.used_flags(), 2);
            Ok(self.window.read_u16(self.layout.used_flags())? & USED_F_NO_NOTIFY == 0)
        }
    }

    /// Whether the device has returned chains this driver has not taken yet.
    pub fn has_used(&self) -> Result<bool, RingError> {
        self.window.invalidate(self.layout.used_idx(), 2);
        Ok(self.window.read_u16(self.layout.used_idx())? != self.last_used)
    }

    /// Takes back the next used chain, checked: the index must not run ahead of
    /// what is outstanding, the id must be an outstanding head, the length must
    /// fit the chain's writable part.
    #[inline(always)]
    pub fn pop_used(&mut self) -> Result<Option<Used>, RingError> {
        // used.idx is read (a cross-core miss) only once the entries seen with
        // its last value, checked then, are all taken.
        if self.used_seen == self.last_used && self.refresh_used()? == 0 {
            return Ok(None);
        }
        self.window
            .invalidate(self.layout.used_elem(self.last_used), 8);
        let mut used = None;
        self.take_seen(1, |u| used = Some(u))?;
        self.ask_interrupt()?;
        Ok(used)
    }

    /// Takes back every used chain the device has returned (checked as by
    /// [`DriverQueue::pop_used`]), handing each to `each`: one read of
    /// used.idx and one interrupt request for all of them. Returns how many.
    #[inline(always)]
    pub fn drain_used(&mut self, each: impl FnMut(Used)) -> Result<u16, RingError> {
        if self.used_seen == self.last_used {
            self.refresh_used()?;
        }
        let n = self.used_seen.wrapping_sub(self.last_used);
        // The cache maintenance for all of them first: the loop that takes
        // them then calls no hook.
        if !self.window.is_coherent() {
            for k in 0..n {
                let at = self.layout.used_elem(self.last_used.wrapping_add(k));
                self.window.invalidate(at, 8);
            }
        }
        self.take_seen(n, each)?;
        if n != 0 {
            self.ask_interrupt()?;
        }
        Ok(n)
    }

    /// Takes the next `n` used elements (below `used_seen`, their cache
    /// maintenance done), each checked, its chain freed and handed to
    /// `each`; stops at the first that is wrong.
    #[inline(always)]
    fn take_seen(&mut self, n: u16, mut each: impl FnMut(Used)) -> Result<(), RingError> {
        // The free list, the counters and the ring's fields in locals (the
        // free list and counters written back once, on an error too): the
        // compiler cannot tell the shadow arrays' stores from the queue's
        // own fields and would reload them all per entry.
        let mut free = self.free;
        let (mut last_used, mut outstanding) = (self.last_used, self.outstanding);
        let (fields, size) = (self.fields, self.layout.size);
        let mut taken = Ok(());
        for _ in 0..n {
            let (id, len) = fields.used_elem(last_used);
            let (head, len) = match self.check_used(size, id, len) {
                Ok(used) => used,
                Err(e) => {
                    taken = Err(e);
                    break;
                }
            };
            // Freed through the private shadow: its links were set by `add`
            // and are unaffected by anything the device wrote.
            let count = self.chain_len[usize::from(head)];
            let mut tail = head;
            for _ in 1..count {
                tail = self.next[usize::from(tail)];
            }
            free.push(&mut self.next, head, tail, count);
            self.chain_len[usize::from(head)] = 0;
            outstanding -= 1;
            last_used = last_used.wrapping_add(1);
            each(Used {
                head,
                token: self.token[usize::from(head)],
                len,
            });
        }
        self.free = free;
        (self.last_used, self.outstanding) = (last_used, outstanding);
        taken
    }

    /// Reads used.idx; returns how many entries it adds (checked against what
    /// is outstanding).
    #[inline(always)]
    fn refresh_used(&mut self) -> Result<u16, RingError> {
        self.window.invalidate(self.layout.used_idx(), 2);
        let idx = self.fields.used_idx();
        let new = idx.wrapping_sub(self.last_used);
        if new > self.outstanding {
            return Err(RingError::UsedIndex {
                idx,
                seen: self.last_used,
            });
        }
        // Barrier *consume*: used.idx before the used elements and buffers.
        fence(Ordering::Acquire);
        self.used_seen = idx;
        Ok(new)
    }

    /// The chain head a used element `(id, len)` names, and the length to
    /// believe: `id` must be an outstanding head, `len` must fit the chain's
    /// writable part.
    #[inline(always)]
    fn check_used(&self, size: u16, id: u32, len: u32) -> Result<(u16, u32), RingError> {
        let head = match self.chain_len.get(id as usize) {
            // Outstanding: offered, not free (0) nor only reserved.
            Some(&n) if n != 0 && n != RESERVED && id < u32::from(size) => id as u16,
            _ => return Err(RingError::UsedId(id)),
        };
        let capacity = self.capacity[usize::from(head)];
        // A chain with nothing device-writable (a sent message): the device
        // wrote nothing, whatever it reports, and nothing is read on the
        // strength of `len`. rpmsg-lite's remote reports the message length
        // there when it gives back a consumed RX buffer on vring 1.
        let len = if capacity == 0 { 0 } else { len };
        if len > capacity {
            return Err(RingError::UsedLength { len, capacity });
        }
        Ok((head, len))
    }

    /// With the event index, asks to be interrupted when the next entry is
    /// used.
    #[inline(always)]
    fn ask_interrupt(&mut self) -> Result<(), RingError> {
        if self.notification.event_idx && self.want_interrupts {
            self.window
                .write_u16(self.layout.used_event(), self.last_used)?;
            self.window.clean(self.layout.used_event(), 2);
        }
        Ok(())
    }

    /// Asks the device for interrupts again. Returns whether used entries are
    /// already waiting (then process them rather than wait: the device may
    /// have completed them while interrupts were off).
    pub fn enable_interrupts(&mut self) -> Result<bool, RingError> {
        self.want_interrupts = true;
        if self.notification.event_idx {
            self.window
                .write_u16(self.layout.used_event(), self.last_used)?;
            self.window.clean(self.layout.used_event(), 2);
        } else {
            self.window.write_u16(self.layout.avail_flags(), 0)?;
            self.window.clean(self.layout.avail_flags(), 2);
        }
        // Barrier *notify-check*: the flag store before re-reading used.idx.
        fence(Ordering::SeqCst);
        self.has_used()
    }

    /// Tells the device interrupts are not needed (advisory).
    pub fn disable_interrupts(&mut self) -> Result<(), RingError> {
        self.want_interrupts = false;
        if !self.notification.event_idx {
            self.window
                .write_u16(self.layout.avail_flags(), AVAIL_F_NO_INTERRUPT)?;
            self.window.clean(self.layout.avail_flags(), 2);
        }
        Ok(())
    }
}

/// The `len` / `flags` / `next` word (little-endian, as one) and the
/// writable capacity of a chain of one segment.
#[inline(always)]
fn lone_descriptor(segment: &Segment) -> (u64, u32) {
    let (flags, capacity) = match segment.device_writable {
        true => (DESC_F_WRITE, segment.len),
        false => (0, 0),
    };
    (u64::from(segment.len) | (u64::from(flags) << 32), capacity)
}

/// Writes descriptor `i` (at `at`) unless its `addr` and `len` / `flags`
/// / `next` words already hold these values. A buffer
/// reposted with the same address, length and flags (every rpmsg RX
/// buffer, and TX buffers of one message size) then leaves its cache line
/// shared with the device instead of taking it back, a cross-core
/// transfer the device would otherwise pay on its next read.
///
/// The read is not trust in the device: what it returns only decides
/// whether to store. If the device rewrote the word, it differs and is
/// written; if the device rewrites it afterwards, it only misleads itself
/// (the driver's own view of each chain is its private shadow). On a
/// non-coherent window this side's cached copy could differ from memory,
/// so there every word is written.
#[inline(always)]
fn write_unless_same(
    fields: &RingFields<'_>,
    window: &Window<'_>,
    at: usize,
    i: u16,
    addr: u64,
    word: u64,
) {
    let coherent = window.is_coherent();
    let (old_addr, old_word) = fields.descriptor(i);
    if !coherent || old_addr != addr {
        fields.set_descriptor_addr(i, addr);
        window.clean(at + desc::ADDR, 8);
    }
    if !coherent || old_word != word {
        fields.set_descriptor_word(i, word);
        window.clean(at + desc::LEN, 8);
    }
}

/// Puts `head` in `avail.ring[idx]` (at `at`), as for descriptors unless
/// the slot already names it (a buffer reposted in order).
#[inline(always)]
fn write_slot_unless_same(
    fields: &RingFields<'_>,
    window: &Window<'_>,
    at: usize,
    idx: u16,
    head: u16,
) {
    if !window.is_coherent() || fields.avail_slot(idx) != head {
        fields.set_avail_slot(idx, head);
        window.clean(at, 2);
    }
}
