//! Sending: lent TX buffers, copying and zero-copy sends, bursts.

use super::ends::Ends;
use super::{Link, LinkError, Role};
use crate::rpmsg;
use shmem::virtqueue::Segment;
use shmem::{Chain, Doorbell, DriverQueue, Span, Window};

// rpmsg uses the first buffer of a chain only, taken out once: the slots keep
// a `Chain<0>` (8 bytes), so the guards holding them stay small to move.
#[derive(Debug)]
pub(super) enum TxSlot {
    Host(Index),
    Remote(Chain<0>),
}

/// A host's buffer index (for a TX buffer: the descriptor it is bound to,
/// see `HostEnd`), held in a whole word: both slot variants then have
/// an 8-byte payload at the same place, and moving a slot copies one word.
/// (With a `u16` the compiler copied the variants' union in wide loads over
/// the 2-byte store, a store-forwarding stall on every lent buffer.)
#[derive(Clone, Copy, Debug)]
pub(super) struct Index(u64);

impl Index {
    pub(super) fn new(k: u16) -> Self {
        Self(k.into())
    }
    pub(super) fn get(self) -> u16 {
        // Made only by `new`.
        self.0 as u16
    }
}

/// A TX buffer lent for filling in place. Give it back through
/// [`Link::send_buffer`] or [`Link::discard_tx`]; dropping it loses the buffer
/// until the next reset.
///
/// 40 bytes on a 64-bit target (the checked buffer, header included, as a
/// [`Span`]; the generation; the slot), not 80 as when it carried a copy of
/// the window: lending and sending it moves a few words.
#[derive(Debug)]
pub struct TxBuffer<'a> {
    buffer: Span<'a>,
    generation: u32,
    slot: TxSlot,
}

impl TxBuffer<'_> {
    /// Payload bytes the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buffer.len() - rpmsg::HEADER_SIZE
    }

    /// Stores `words` as little-endian `u64`s into the payload from `at`, as
    /// many as fit; returns the bytes written. Produces the payload in place
    /// (each word stored once, no staging copy).
    #[inline]
    pub fn write_words(
        &mut self,
        at: usize,
        words: impl IntoIterator<Item = u64>,
    ) -> Result<usize, LinkError> {
        let at = at.checked_add(rpmsg::HEADER_SIZE).ok_or(LinkError::Usage)?;
        self.buffer
            .write_words(at, words)
            .map_err(|_| LinkError::Usage)
    }

    /// Stores `count` little-endian `u64`s into the payload from `at`, word
    /// `k` being `word(k)`, as many as fit; returns the bytes written. As
    /// [`TxBuffer::write_words`], for a producer that makes each word from
    /// its index (the faster loop).
    #[inline]
    pub fn write_words_with(
        &mut self,
        at: usize,
        count: usize,
        word: impl FnMut(usize) -> u64,
    ) -> Result<usize, LinkError> {
        let at = at.checked_add(rpmsg::HEADER_SIZE).ok_or(LinkError::Usage)?;
        self.buffer
            .write_words_with(at, count, word)
            .map_err(|_| LinkError::Usage)
    }

    /// Copies `bytes` into the payload at `at`.
    #[inline]
    pub fn write(&mut self, at: usize, bytes: &[u8]) -> Result<(), LinkError> {
        // The span ends where the payload does: only the start needs a check
        // (the header is not the caller's to write).
        let at = at.checked_add(rpmsg::HEADER_SIZE).ok_or(LinkError::Usage)?;
        self.buffer
            .write_bytes(at, bytes)
            .map_err(|_| LinkError::Usage)
    }
}

/// What [`Link::offer_host`] sends: bytes to copy in after the header, or
/// the length of a payload already in the buffer.
#[derive(Clone, Copy)]
pub(super) enum Payload<'d> {
    Copy(&'d [u8]),
    InPlace(usize),
}

impl<'a, D: Doorbell, const N: usize, const E: usize> Link<'a, D, N, E> {
    pub(super) fn reclaim_tx(&mut self) -> Result<(), LinkError> {
        let Ends::Host(host) = &mut self.ends else {
            return Ok(());
        };
        match host.reclaim() {
            Ok(0) => Ok(()),
            Ok(_) => {
                self.progress.answered = true;
                Ok(())
            }
            Err(e) => Err(self.fail(LinkError::Ring(e))),
        }
    }

    /// Lends a TX buffer to fill in place; `Ok(None)` when every buffer is in
    /// flight (back-pressure: try again after the peer consumed some).
    #[inline(always)]
    pub fn alloc_tx(&mut self) -> Result<Option<TxBuffer<'a>>, LinkError> {
        // A host with a free buffer on a link known up, inline: the buffer is
        // then built in the caller's registers. Returned from a call (the
        // enum is larger than two registers), it was written field by field
        // and read back in wider loads, a store-forwarding stall per message.
        if self.is_ready() {
            if let Ends::Host(host) = &mut self.ends {
                if let Some(d) = host.tx.reserve() {
                    return self.host_tx_buffer(d).map(Some);
                }
            }
        }
        self.alloc_tx_slow()
    }

    /// The host's TX buffer bound to reserved descriptor `d`, lent.
    #[inline(always)]
    pub(super) fn host_tx_buffer(&self, d: u16) -> Result<TxBuffer<'a>, LinkError> {
        let buffer = self
            .window
            .span(self.tx_buffer_offset(d), self.config.buffer_size)?;
        Ok(TxBuffer {
            buffer,
            generation: self.generation,
            slot: TxSlot::Host(Index::new(d)),
        })
    }

    /// Every other case of [`Link::alloc_tx`].
    #[inline(never)]
    pub(super) fn alloc_tx_slow(&mut self) -> Result<Option<TxBuffer<'a>>, LinkError> {
        self.lend_tx()
    }

    /// `alloc_tx`, inlined into `send` and the zero-copy caller: returned
    /// through memory, the lent buffer's enum layout made the compiler copy
    /// it piecewise and reload it whole (a store-forwarding stall).
    #[inline(always)]
    pub(super) fn lend_tx(&mut self) -> Result<Option<TxBuffer<'a>>, LinkError> {
        self.ready()?;
        let generation = self.generation;
        match self.config.role {
            Role::Host => {
                // Take sent buffers back only when none is free: reading the
                // remote's used index on every send would move its cache line
                // between the cores once per message.
                if matches!(&self.ends, Ends::Host(host) if host.tx.num_free() == 0) {
                    self.reclaim_tx()?;
                }
                let Ends::Host(host) = &mut self.ends else {
                    return Err(LinkError::NotReady);
                };
                let Some(d) = host.tx.reserve() else {
                    // Every buffer may be staged in an open batch: publish
                    // them, or the remote never sees them to give them back.
                    self.flush_if_batching()?;
                    return Ok(None);
                };
                self.host_tx_buffer(d).map(Some)
            }
            Role::Remote => {
                if let Ends::Remote(remote) = &mut self.ends {
                    if let Some((buffer, chain)) = remote.spare.take() {
                        return Ok(Some(TxBuffer {
                            buffer,
                            generation,
                            slot: TxSlot::Remote(chain),
                        }));
                    }
                }
                let Some((buffer, chain)) = self.take_remote_tx()? else {
                    // The host offers buffers again only once it has seen
                    // what an open batch staged.
                    self.flush_if_batching()?;
                    return Ok(None);
                };
                Ok(Some(TxBuffer {
                    buffer,
                    generation,
                    slot: TxSlot::Remote(chain),
                }))
            }
        }
    }

    /// A remote's next TX buffer from vring 0, checked (`RemoteEnd::take_tx`).
    pub(super) fn take_remote_tx(&mut self) -> Result<Option<(Span<'a>, Chain<0>)>, LinkError> {
        let (window, pool) = (self.window, self.pool());
        let Ends::Remote(remote) = &mut self.ends else {
            return Err(LinkError::NotReady);
        };
        remote.take_tx(&window, pool).map_err(|e| self.fail(e))
    }

    /// A remote with nothing to receive takes its next TX buffer now, off the
    /// path of the reply it may send next. A buffer the host offered wrongly
    /// is given back, counted and reported as by [`Link::alloc_tx`] (from
    /// [`Link::receive`], then).
    pub(super) fn prepare_spare_tx(&mut self) -> Result<(), LinkError> {
        if !matches!(&self.ends, Ends::Remote(remote) if remote.spare.is_none()) {
            return Ok(());
        }
        match self.take_remote_tx() {
            Ok(Some(taken)) => {
                if let Ends::Remote(remote) = &mut self.ends {
                    remote.spare = Some(taken);
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends `len` payload bytes of a lent buffer from `src` to `dst`.
    #[inline(always)]
    pub fn send_buffer(
        &mut self,
        buffer: TxBuffer<'a>,
        src: u32,
        dst: u32,
        len: usize,
    ) -> Result<(), LinkError> {
        // A host's buffer of this generation on a link known up, inline: the
        // lent buffer stays in the caller's registers.
        if buffer.generation == self.generation && self.is_ready() {
            if let Some((at, k)) = Self::host_offer(&self.window, &buffer, src, dst, len) {
                return self.offer_host(at, k, [src, dst], Payload::InPlace(len));
            }
        }
        self.send_buffer_slow(buffer, src, dst, len)
    }

    /// Every other case of [`Link::send_buffer`].
    #[inline(never)]
    pub(super) fn send_buffer_slow(
        &mut self,
        buffer: TxBuffer<'a>,
        src: u32,
        dst: u32,
        len: usize,
    ) -> Result<(), LinkError> {
        if buffer.generation != self.generation {
            return Err(LinkError::Usage);
        }
        self.ready()?;
        self.commit(buffer, src, dst, len)
    }

    /// Where a lent host buffer is and its index, when it can go straight to
    /// [`Link::offer_host`]: 8-byte aligned, with valid addresses and a
    /// length that fits. `None` for every other case, which
    /// [`Link::commit`] handles (or reports).
    #[inline(always)]
    pub(super) fn host_offer(
        w: &Window<'_>,
        buffer: &TxBuffer<'_>,
        src: u32,
        dst: u32,
        len: usize,
    ) -> Option<(usize, u16)> {
        let TxSlot::Host(k) = buffer.slot else {
            return None;
        };
        let at = w.span_offset(&buffer.buffer);
        (at.is_multiple_of(8)
            && len <= buffer.capacity()
            && src != rpmsg::ADDR_ANY
            && dst != rpmsg::ADDR_ANY)
            .then_some((at, k.get()))
    }

    /// Writes the rpmsg header of host buffer `k` at `at` (8-byte aligned,
    /// its payload already in place) and offers it on vring 1: the
    /// per-message work of [`Link::send`] and [`Link::send_buffer`] on a
    /// host, inline, with nothing but the buffer index moved around.
    #[inline(always)]
    pub(super) fn offer_host(
        &mut self,
        at: usize,
        k: u16,
        addrs: [u32; 2],
        payload: Payload<'_>,
    ) -> Result<(), LinkError> {
        let w = &self.window;
        let batching = self.batching;
        let Ends::Host(host) = &mut self.ends else {
            return Err(LinkError::Usage);
        };
        let offered = Self::header_and_offer(w, &mut host.tx, at, k, addrs, payload, batching);
        match offered {
            Ok(ring) => {
                self.stats.sent += 1;
                if ring {
                    self.doorbell.ring(1);
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// [`Link::offer_host`]'s ring work; returns whether to ring the
    /// doorbell. (A function, not a closure: the closure was not inlined.)
    #[inline(always)]
    pub(super) fn header_and_offer(
        w: &Window<'a>,
        tx: &mut DriverQueue<'a, N>,
        at: usize,
        k: u16,
        [src, dst]: [u32; 2],
        payload: Payload<'_>,
        batching: bool,
    ) -> Result<bool, LinkError> {
        let len = match payload {
            Payload::Copy(data) => data.len(),
            Payload::InPlace(len) => len,
        };
        let total = rpmsg::HEADER_SIZE + len;
        let [h0, h1] = rpmsg::header_words(src, dst, len as u16);
        w.write_u64(at, h0)?;
        w.write_u64(at + 8, h1)?;
        // The payload after the header: the buffer is written in address
        // order.
        if let Payload::Copy(data) = payload {
            w.write_bytes(at + rpmsg::HEADER_SIZE, data)?;
        }
        w.clean(at, total);
        let seg = Segment {
            addr: w.bus_address_of(at),
            len: total as u32,
            device_writable: false,
        };
        tx.offer_reserved(k, seg, k)?;
        if batching {
            Ok(false)
        } else {
            Ok(tx.publish()?)
        }
    }

    /// `send_buffer` once the link is known up and the buffer current.
    pub(super) fn commit(
        &mut self,
        buffer: TxBuffer<'a>,
        src: u32,
        dst: u32,
        len: usize,
    ) -> Result<(), LinkError> {
        if len > buffer.capacity() || src == rpmsg::ADDR_ANY || dst == rpmsg::ADDR_ANY {
            self.discard_tx(buffer)?;
            return Err(LinkError::Usage);
        }
        let w = self.window;
        let at = w.span_offset(&buffer.buffer);
        // The header in two word stores when aligned, else byte by byte
        // (any alignment a remote's host gave us).
        let header = rpmsg::header_words(src, dst, len as u16);
        buffer.buffer.write_words(0, header)?;
        w.clean(at, rpmsg::HEADER_SIZE + len);
        let total = (rpmsg::HEADER_SIZE + len) as u32;
        let notify = match (&mut self.ends, buffer.slot) {
            (Ends::Host(host), TxSlot::Host(k)) => {
                let seg = Segment {
                    addr: w.bus_address_of(at),
                    len: total,
                    device_writable: false,
                };
                let staged = host.tx.offer_reserved(k.get(), seg, k.get());
                match staged {
                    Ok(_) if self.batching => Ok((false, 1)),
                    Ok(_) => host.tx.publish().map(|n| (n, 1)),
                    Err(e) => Err(e),
                }
            }
            (Ends::Remote(remote), TxSlot::Remote(chain)) => {
                remote.send(chain, total, self.batching).map(|n| (n, 0))
            }
            _ => return Err(LinkError::Usage),
        };
        match notify {
            Ok((ring, queue)) => {
                self.stats.sent += 1;
                if ring {
                    self.doorbell.ring(queue);
                }
                Ok(())
            }
            Err(e) => Err(self.fail(LinkError::from(e))),
        }
    }

    /// Gives a lent buffer back unsent.
    pub fn discard_tx(&mut self, buffer: TxBuffer<'a>) -> Result<(), LinkError> {
        if buffer.generation != self.generation {
            return Ok(());
        }
        match (&mut self.ends, buffer.slot) {
            (Ends::Host(host), TxSlot::Host(d)) => {
                host.tx.unreserve(d.get()).map_err(|_| LinkError::Usage)
            }
            (Ends::Remote(remote), TxSlot::Remote(chain)) => match remote.tx.push_used(chain, 0) {
                Ok(_) => Ok(()),
                Err(e) => Err(self.fail(LinkError::Ring(e))),
            },
            _ => Ok(()),
        }
    }

    /// Sends up to `max` messages from `src` to `dst`, each produced in
    /// place: `fill` gets the next lent TX buffer, writes the payload into
    /// it and returns its length, or `None` to stop (that buffer stays
    /// free). Returns how many were sent: at most the queue size, fewer
    /// than `max` when every buffer is in flight (back-pressure: try again
    /// after the peer consumed some). The messages are published together
    /// at the end (or with the open [`Link::batch`]).
    ///
    /// The fastest way to stream: on a host the link is checked once per
    /// call, and the ring is written in one loop with its state in
    /// registers, where [`Link::alloc_tx`] and [`Link::send_buffer`] pay a
    /// call's checks per message. A payload longer than the buffer, or
    /// `fill` handing back a buffer other than the one it was lent (that
    /// one is then given back unsent), is [`LinkError::Usage`]; what was
    /// sent before it stays sent.
    pub fn send_burst(
        &mut self,
        src: u32,
        dst: u32,
        max: usize,
        mut fill: impl FnMut(&mut TxBuffer<'a>) -> Option<usize>,
    ) -> Result<usize, LinkError> {
        self.ready()?;
        if src == rpmsg::ADDR_ANY || dst == rpmsg::ADDR_ANY {
            return Err(LinkError::Usage);
        }
        // At most a ring's worth: no call loops longer than that.
        let max = max.min(usize::from(self.queue_size));
        if self.config.role == Role::Remote {
            return self.send_each(src, dst, max, fill);
        }
        let max = max as u16;
        if matches!(&self.ends, Ends::Host(host) if host.tx.num_free() < max) {
            self.reclaim_tx()?;
        }
        let size = self.config.buffer_size;
        let pool_at = self.tx_buffer_offset(0);
        let pool = self
            .window
            .span(pool_at, usize::from(self.queue_size) * size)?;
        let (w, generation) = (self.window, self.generation);
        let Ends::Host(host) = &mut self.ends else {
            return Err(LinkError::NotReady);
        };
        let (mut misuse, mut swapped) = (None, None);
        let sent = host.tx.offer_each(max, |d| {
            let at = usize::from(d) * size;
            let buffer = pool.sub(at, size).ok()?;
            let mut lent = TxBuffer {
                buffer,
                generation,
                slot: TxSlot::Host(Index::new(d)),
            };
            let len = fill(&mut lent)?;
            if !matches!(lent.slot, TxSlot::Host(k) if k.get() == d) {
                // Another lent buffer swapped in: given back below.
                (misuse, swapped) = (Some(LinkError::Usage), Some(lent));
                return None;
            }
            if lent.generation != generation || len > lent.capacity() {
                misuse = Some(LinkError::Usage);
                return None;
            }
            let header = rpmsg::header_words(src, dst, len as u16);
            if buffer.write_words(0, header) != Ok(rpmsg::HEADER_SIZE) {
                misuse = Some(LinkError::Usage);
                return None;
            }
            let total = rpmsg::HEADER_SIZE + len;
            w.clean(pool_at + at, total);
            Some(Segment {
                addr: w.bus_address_of(pool_at + at),
                len: total as u32,
                device_writable: false,
            })
        });
        self.stats.sent += u64::from(sent);
        // Published now unless a batch is open; an open batch publishes
        // too when nothing could be sent, or the remote never sees what it
        // staged to give the buffers back.
        if !self.batching || sent == 0 {
            self.flush()?;
        }
        if let Some(other) = swapped {
            self.discard_tx(other)?;
        }
        match misuse {
            Some(e) => Err(e),
            None => Ok(usize::from(sent)),
        }
    }

    /// [`Link::send_burst`] through `alloc_tx` and `send_buffer` (a remote,
    /// whose TX buffers are the host's to offer), as one batch.
    pub(super) fn send_each(
        &mut self,
        src: u32,
        dst: u32,
        max: usize,
        mut fill: impl FnMut(&mut TxBuffer<'a>) -> Option<usize>,
    ) -> Result<usize, LinkError> {
        let mut link = self.batch();
        let mut sent = 0;
        while sent < max {
            let Some(mut lent) = link.alloc_tx()? else {
                break;
            };
            let Some(len) = fill(&mut lent) else {
                link.discard_tx(lent)?;
                break;
            };
            link.send_buffer(lent, src, dst, len)?;
            sent += 1;
        }
        link.finish()?;
        Ok(sent)
    }

    /// Copies `data` into a buffer and sends it. `Ok(false)`: no buffer free
    /// (back-pressure, nothing sent).
    pub fn send(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<bool, LinkError> {
        if let Some(sent) = self.send_from_free(src, dst, data) {
            return sent;
        }
        let Some(buffer) = self.lend_tx()? else {
            return Ok(false);
        };
        if data.len() > buffer.capacity() {
            self.discard_tx(buffer)?;
            return Err(LinkError::Usage);
        }
        buffer.buffer.write_bytes(rpmsg::HEADER_SIZE, data)?;
        // `alloc_tx` just checked the link and lent this generation's buffer.
        self.commit(buffer, src, dst, data.len())?;
        Ok(true)
    }

    /// [`Link::send`]'s common case, inline: a host with a free buffer (8-byte
    /// aligned, as its own pool is unless configured oddly), on a link known
    /// up, with valid addresses and a payload that fits. The message is
    /// written straight into the buffer and offered, with no lent-buffer
    /// guard built and moved in between. `None` sends the caller the whole
    /// way (which also reports what was wrong).
    #[inline(always)]
    pub(super) fn send_from_free(
        &mut self,
        src: u32,
        dst: u32,
        data: &[u8],
    ) -> Option<Result<bool, LinkError>> {
        let size = self.config.buffer_size;
        if !self.is_ready()
            || src == rpmsg::ADDR_ANY
            || dst == rpmsg::ADDR_ANY
            || data.len() > size - rpmsg::HEADER_SIZE
        {
            return None;
        }
        let Ends::Host(host) = &self.ends else {
            return None;
        };
        let at = self.tx_buffer_offset(host.tx.peek_free()?);
        if !at.is_multiple_of(8) {
            return None;
        }
        let Ends::Host(host) = &mut self.ends else {
            return None;
        };
        let k = host.tx.reserve()?;
        Some(
            self.offer_host(at, k, [src, dst], Payload::Copy(data))
                .map(|()| true),
        )
    }
}
