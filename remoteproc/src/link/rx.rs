//! Receiving: messages guarded in their shared buffers, name-service
//! events, dispatch, and giving buffers back.

use super::ends::{Ends, Filled};
use super::tx::Index;
use super::{Link, LinkError, MessageError, Role, State};
use crate::rpmsg::{self, ServiceEvent};
use shmem::{Chain, Doorbell, Span, Words};

#[derive(Debug)]
pub(super) enum RxSlot {
    Host(Index),
    Remote(Chain<0>),
}

/// A received message still in its shared buffer. Its header was copied out
/// and checked once; the payload is read with copying accessors (the peer
/// could still write the buffer, so no reference into it is ever given).
/// Give it back with [`Link::release`].
///
/// 48 bytes on a 64-bit target (the payload as a checked [`Span`],
/// addresses, generation, slot), not 72 as when it carried a copy of the
/// window: it is returned from every receive, so it is kept small to move.
#[derive(Debug)]
pub struct RxMessage<'a> {
    payload: Span<'a>,
    src: u32,
    dst: u32,
    generation: u32,
    slot: RxSlot,
}

impl<'a> RxMessage<'a> {
    /// Sender's address.
    pub fn src(&self) -> u32 {
        self.src
    }
    /// Local endpoint it is for.
    pub fn dst(&self) -> u32 {
        self.dst
    }
    /// Payload length (checked against the buffer).
    pub fn len(&self) -> usize {
        self.payload.len()
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
    /// Copies payload bytes from `at` into `dst` (`dst.len()` bytes).
    #[inline]
    pub fn read(&self, at: usize, dst: &mut [u8]) -> Result<(), LinkError> {
        self.payload
            .read_bytes(at, dst)
            .map_err(|_| LinkError::Usage)
    }
    /// The payload's whole little-endian `u64` words, each loaded once as the
    /// iterator reaches it: uses the payload in place, with no staging copy
    /// (a tail shorter than a word is read with [`RxMessage::read`]). The
    /// peer could still be writing the buffer, so take each word as final
    /// only once it is loaded, as with every other accessor.
    pub fn words(&self) -> Words<'a> {
        self.payload.words(0)
    }

    /// Copies the whole payload into the start of `dst`; returns its length.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<usize, LinkError> {
        let n = self.len();
        self.read(0, dst.get_mut(..n).ok_or(LinkError::Usage)?)?;
        Ok(n)
    }
}

/// What [`Link::receive`] found.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A message for a local endpoint.
    Message(RxMessage<'a>),
    /// A name-service announcement or withdrawal from the peer.
    Service(ServiceEvent),
}

/// What a received buffer holds ([`Link::classify`]).
pub(super) enum Delivery<'a> {
    Message {
        payload: Span<'a>,
        src: u32,
        dst: u32,
    },
    Service(ServiceEvent),
    /// A message for no local endpoint (dropped, counted).
    Unknown,
}

impl<'a, D: Doorbell, const N: usize, const E: usize> Link<'a, D, N, E> {
    /// Takes the next message for a local endpoint, or a name-service event.
    /// Messages for unknown addresses are dropped and counted; a malformed one
    /// is dropped and returned as [`LinkError::Message`] (not fatal).
    pub fn receive(&mut self) -> Result<Option<Incoming<'a>>, LinkError> {
        self.ready_to_receive()?;
        for _ in 0..self.queue_size {
            let Some((offset, room, slot)) = self.next_rx()? else {
                // Nothing to receive: give the peer what an open batch holds
                // (released buffers, sent messages) before it waits on us.
                self.flush_if_batching()?;
                if self.config.role == Role::Remote {
                    self.prepare_spare_tx()?;
                }
                return Ok(None);
            };
            match self.classify(offset, room) {
                Ok(Delivery::Message { payload, src, dst }) => {
                    self.stats.received += 1;
                    // Built only here, in the value returned: built earlier
                    // and moved, it was copied with wide loads over narrower
                    // stores (a stall).
                    return Ok(Some(Incoming::Message(RxMessage {
                        payload,
                        src,
                        dst,
                        generation: self.generation,
                        slot,
                    })));
                }
                Ok(Delivery::Service(e)) => {
                    self.recycle(slot)?;
                    return Ok(Some(Incoming::Service(e)));
                }
                Ok(Delivery::Unknown) => self.recycle(slot)?,
                Err(e) => {
                    self.recycle(slot)?;
                    return Err(self.fail(e));
                }
            }
        }
        Ok(None)
    }

    /// What the filled RX buffer at `offset` (`room` bytes valid) holds: its
    /// header copied out once and checked, everything after using the
    /// copies. A message for no local endpoint is counted here.
    #[inline(always)]
    pub(super) fn classify(&mut self, offset: usize, room: u32) -> Result<Delivery<'a>, LinkError> {
        let w = &self.window;
        w.invalidate(offset, room as usize);
        let (src, dst, len) = rpmsg::read_header(w, offset)?;
        let room = room.min(self.config.buffer_size as u32) - rpmsg::HEADER_SIZE as u32;
        if u32::from(len) > room {
            return Err(LinkError::Message(MessageError::Length { len, room }));
        }
        if src == rpmsg::ADDR_ANY || dst == rpmsg::ADDR_ANY {
            return Err(LinkError::Message(MessageError::Address { src, dst }));
        }
        let payload = w.span(offset + rpmsg::HEADER_SIZE, len.into())?;
        if self.config.name_service && dst == rpmsg::NS_ADDR {
            return rpmsg::parse_ns(&payload)
                .map(Delivery::Service)
                .ok_or(LinkError::Message(MessageError::NameService));
        }
        if !self.endpoints.iter().flatten().any(|s| s.addr == dst) {
            self.stats.unknown_destination += 1;
            return Ok(Delivery::Unknown);
        }
        Ok(Delivery::Message { payload, src, dst })
    }

    /// What every receive starts with: the link up, and (a host whose remote
    /// has not answered yet) the re-kick of vring 0 that [`Link::poll`] does.
    #[inline(always)]
    pub(super) fn ready_to_receive(&mut self) -> Result<(), LinkError> {
        self.ready()?;
        if self.config.role == Role::Host
            && !self.progress.answered
            && self.config.renotify_interval != 0
        {
            self.poll()?;
        }
        Ok(())
    }

    /// The next filled RX buffer: (window offset, bytes valid, slot). Inlined
    /// into `receive` so the result stays in registers; each outcome is
    /// handled where it is found (no intermediate result to build and match).
    #[inline(always)]
    pub(super) fn next_rx(&mut self) -> Result<Option<(usize, u32, RxSlot)>, LinkError> {
        let pool = self.pool();
        let found = match &mut self.ends {
            Ends::Remote(remote) => remote.next_rx(pool),
            Ends::Host(host) => {
                let found = host.next_rx(pool, self.queue_size);
                // A used buffer: the remote is alive.
                self.progress.answered |= matches!(found, Ok(Some(_)));
                found
            }
            Ends::Down => return Ok(None),
        };
        match found {
            Ok(Some(Filled::Message(offset, len, slot))) => Ok(Some((offset, len, slot))),
            Ok(None) => Ok(None),
            Ok(Some(Filled::Bad(slot))) => {
                self.recycle(slot)?;
                Err(self.fail(LinkError::Message(MessageError::Buffer)))
            }
            Err(e) => Err(self.fail(LinkError::Ring(e))),
        }
    }

    /// Gives a received buffer back: staged ([`Link::stage_release`]),
    /// then published at once unless a batch is open.
    pub(super) fn recycle(&mut self, slot: RxSlot) -> Result<(), LinkError> {
        self.stage_release(slot)?;
        // Outside a batch nothing else is staged: the TX ring's publish in
        // `flush` finds nothing and stores nothing.
        if self.batching {
            Ok(())
        } else {
            self.flush()
        }
    }

    /// Gives a received buffer back to the peer.
    pub fn release(&mut self, message: RxMessage<'a>) -> Result<(), LinkError> {
        if message.generation != self.generation || self.state == State::Broken {
            // From before a reset, or the rings are no longer trusted.
            return Ok(());
        }
        self.recycle(message.slot)
    }

    /// Receives everything pending, calling `on_message` for each message
    /// (then releasing it) and `on_service` for each name-service event.
    /// Returns how many messages were handled. The buffers go back to the
    /// peer together (one ring index store, at most one doorbell) every
    /// eighth of the ring and at the end. The fastest way to receive: each
    /// message is taken, checked, handed over and released inline.
    pub fn dispatch(
        &mut self,
        mut on_message: impl FnMut(&RxMessage<'a>),
        mut on_service: impl FnMut(&ServiceEvent),
    ) -> Result<usize, LinkError> {
        self.ready_to_receive()?;
        let outer = self.batching;
        self.batching = true;
        let handled = self.dispatch_staged(&mut on_message, &mut on_service);
        self.batching = outer;
        let flushed = if outer { Ok(()) } else { self.flush() };
        let handled = handled?;
        flushed?;
        if handled == 0 && self.config.role == Role::Remote {
            self.prepare_spare_tx()?;
        }
        Ok(handled)
    }

    #[inline(always)]
    pub(super) fn dispatch_staged(
        &mut self,
        on_message: &mut impl FnMut(&RxMessage<'a>),
        on_service: &mut impl FnMut(&ServiceEvent),
    ) -> Result<usize, LinkError> {
        let mut handled = 0;
        // Counted down, not `handled % n`: a division per message.
        let release_every = usize::from(self.queue_size / 8).max(1);
        let mut until_release = release_every;
        for _ in 0..2 * usize::from(self.queue_size) {
            let Some((offset, room, slot)) = self.next_rx()? else {
                break;
            };
            match self.classify(offset, room) {
                Ok(Delivery::Message { payload, src, dst }) => {
                    self.stats.received += 1;
                    let message = RxMessage {
                        payload,
                        src,
                        dst,
                        generation: self.generation,
                        slot,
                    };
                    on_message(&message);
                    self.stage_release(message.slot)?;
                    handled += 1;
                    // Buffers go back every eighth of the ring as well as at
                    // the end: a sender streaming into a full ring refills
                    // while this call works through the rest, rather than
                    // waiting for all of it.
                    until_release -= 1;
                    if until_release == 0 {
                        until_release = release_every;
                        self.flush()?;
                    }
                }
                Ok(Delivery::Service(e)) => {
                    self.stage_release(slot)?;
                    on_service(&e);
                }
                Ok(Delivery::Unknown) => self.stage_release(slot)?,
                Err(e) => {
                    self.stage_release(slot)?;
                    return Err(self.fail(e));
                }
            }
        }
        Ok(handled)
    }

    /// Gives a received buffer back to its ring without publishing it.
    #[inline(always)]
    pub(super) fn stage_release(&mut self, slot: RxSlot) -> Result<(), LinkError> {
        let staged = match slot {
            RxSlot::Host(k) => return self.post_rx(k.get()),
            RxSlot::Remote(chain) => match &mut self.ends {
                Ends::Remote(remote) => remote.release(chain),
                _ => Ok(()),
            },
        };
        staged.map_err(|e| self.fail(LinkError::Ring(e)))
    }
}
