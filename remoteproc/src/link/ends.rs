//! The two ends of a link that is up, each with its own rings: the host end
//! (the virtio driver, which owns the buffers) and the remote end (the
//! virtio device, which uses them). What differs between the roles on the
//! rings is written here, once per role; the [`Link`](super::Link) calls
//! it.

use super::rx::RxSlot;
use super::tx::Index;
use super::{LinkError, MessageError};
use crate::rpmsg;
use shmem::virtqueue::Segment;
use shmem::{Chain, DeviceQueue, DriverQueue, RingError, Span, Window};

/// A link's rings: none until the peer is ready, then one end's.
#[derive(Debug)]
pub(super) enum Ends<'a, const N: usize> {
    Down,
    Host(HostEnd<'a, N>),
    Remote(RemoteEnd<'a>),
}

/// Which doorbells a publish asks for: (ring it, queue), one per ring.
pub(super) type Rings = [(bool, u16); 2];

/// Where the buffer pool lies: `[start, end)` of the window, buffers of
/// `size` bytes; the host's RX buffers first, then its TX buffers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pool {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) size: usize,
}

impl Pool {
    /// Whether `len` bytes at `offset` lie inside the pool: a peer pointing
    /// at the rings, our header or the resource table is refused even
    /// though that memory is in the window.
    #[inline(always)]
    fn holds(&self, offset: usize, len: u32) -> bool {
        offset >= self.start && offset.saturating_add(len as usize) <= self.end
    }
}

/// A filled RX buffer an end found.
pub(super) enum Filled {
    /// A buffer that can hold a message: (window offset, bytes valid).
    Message(usize, u32, RxSlot),
    /// One that cannot (shorter than a header, or outside the pool): the
    /// caller gives it back and reports it.
    Bad(RxSlot),
}

/// The host end: receives into its RX buffers, posted on vring 0, and sends
/// its TX buffers on vring 1.
#[derive(Debug)]
pub(super) struct HostEnd<'a, const N: usize> {
    pub(super) rx: DriverQueue<'a, N>,
    /// TX buffer `queue_size + d` is bound to descriptor `d`: the free TX
    /// buffers are this queue's free descriptors, a FIFO, so buffers are
    /// reused in the order they came back, each keeps its descriptor (and,
    /// completed in order, its avail slot), and consecutive messages use
    /// consecutive memory.
    pub(super) tx: DriverQueue<'a, N>,
}

impl<const N: usize> HostEnd<'_, N> {
    /// Posts RX buffer `k` (at bus address `addr`, `len` bytes) on vring 0,
    /// device-writable, unpublished.
    pub(super) fn post_rx(&mut self, addr: u64, len: u32, k: u16) -> Result<(), RingError> {
        let segment = Segment {
            addr,
            len,
            device_writable: true,
        };
        self.rx.add(&[segment], k).map(|_| ())
    }

    /// Takes back every TX buffer the remote has used: how many.
    pub(super) fn reclaim(&mut self) -> Result<u16, RingError> {
        // Each chain's descriptor goes back to the free list: its buffer is
        // free again.
        self.tx.drain_used(|_| {})
    }

    /// The next RX buffer the remote filled. Its token is our own buffer
    /// index, below the queue size.
    #[inline(always)]
    pub(super) fn next_rx(
        &mut self,
        pool: Pool,
        queue_size: u16,
    ) -> Result<Option<Filled>, RingError> {
        let Some(u) = self.rx.pop_used()? else {
            return Ok(None);
        };
        let k = u.token.min(queue_size - 1);
        let slot = RxSlot::Host(Index::new(k));
        if u.len < rpmsg::HEADER_SIZE as u32 {
            return Ok(Some(Filled::Bad(slot)));
        }
        let offset = pool.start + usize::from(k) * pool.size;
        Ok(Some(Filled::Message(offset, u.len, slot)))
    }

    /// Publishes both rings: TX (vring 1), then RX (vring 0).
    pub(super) fn publish(&mut self) -> Result<Rings, RingError> {
        let tx = self.tx.publish()?;
        Ok([(tx, 1), (self.rx.publish()?, 0)])
    }
}

/// The remote end: sends into the host's RX buffers, taken from vring 0,
/// and receives the host's TX buffers from vring 1.
#[derive(Debug)]
pub(super) struct RemoteEnd<'a> {
    pub(super) tx: DeviceQueue<'a>,
    pub(super) rx: DeviceQueue<'a>,
    /// A TX buffer taken from vring 0 (and checked) while idle, so that a
    /// reply does not wait for the avail slot and descriptor to cross from
    /// the host's cache.
    pub(super) spare: Option<(Span<'a>, Chain<0>)>,
}

impl<'a> RemoteEnd<'a> {
    /// The next TX buffer from vring 0, checked: device-writable, room for
    /// the header and a byte, inside the pool. A buffer that fails a check
    /// is given straight back, unused, and reported as
    /// [`MessageError::Buffer`].
    pub(super) fn take_tx(
        &mut self,
        window: &Window<'a>,
        pool: Pool,
    ) -> Result<Option<(Span<'a>, Chain<0>)>, LinkError> {
        let Some((chain, b)) = self.tx.pop_first()? else {
            return Ok(None);
        };
        if !b.device_writable
            || (b.len as usize) < rpmsg::HEADER_SIZE + 1
            || !pool.holds(b.offset, b.len)
        {
            self.tx.push_used(chain, 0)?;
            return Err(LinkError::Message(MessageError::Buffer));
        }
        let buffer = window.span(b.offset, (b.len as usize).min(pool.size))?;
        Ok(Some((buffer, chain)))
    }

    /// Hands a filled TX buffer (`total` bytes, header included) to the
    /// host: staged in a batch, else published. Returns whether to ring
    /// vring 0's doorbell.
    #[inline(always)]
    pub(super) fn send(
        &mut self,
        chain: Chain<0>,
        total: u32,
        batching: bool,
    ) -> Result<bool, RingError> {
        if batching {
            self.tx.stage_used(chain, total).map(|()| false)
        } else {
            self.tx.push_used(chain, total)
        }
    }

    /// The next message buffer the host sent on vring 1.
    #[inline(always)]
    pub(super) fn next_rx(&mut self, pool: Pool) -> Result<Option<Filled>, RingError> {
        let Some((chain, b)) = self.rx.pop_first()? else {
            return Ok(None);
        };
        let slot = RxSlot::Remote(chain);
        if b.len < rpmsg::HEADER_SIZE as u32 || !pool.holds(b.offset, b.len) {
            return Ok(Some(Filled::Bad(slot)));
        }
        Ok(Some(Filled::Message(b.offset, b.len, slot)))
    }

    /// Gives a received buffer back without publishing it. It reports the
    /// length of the host's buffer it only read as the used length, not 0:
    /// OpenAMP's host takes that length as the size of the TX buffer it gets
    /// back (Linux and rpmsg-lite ignore it).
    #[inline(always)]
    pub(super) fn release(&mut self, chain: Chain<0>) -> Result<(), RingError> {
        let read = chain.readable_len();
        self.rx.stage_used(chain, read)
    }

    /// Publishes both rings: TX (vring 0), then RX (vring 1).
    pub(super) fn publish(&mut self) -> Result<Rings, RingError> {
        let tx = self.tx.publish_used()?;
        Ok([(tx, 0), (self.rx.publish_used()?, 1)])
    }
}
