//! What carries the messages: a [`MessageBus`], and the one over an rpmsg
//! endpoint of a link.

use core::cell::RefCell;
use remoteproc::avps::session::{Provided, Session};
use remoteproc::{Incoming, Link};
use shmem::Doorbell;

/// Carries whole virtio-msg messages to and from the device side.
pub trait MessageBus {
    /// Sends one message; `false` if it could not go now (no room).
    fn send(&mut self, message: &[u8]) -> bool;
    /// The next message received, copied into `buf`; its length.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Whether the bus is gone for good (its link was reset): the device
    /// and every request under way with it are.
    fn closed(&self) -> bool {
        false
    }
}

impl<B: MessageBus> MessageBus for &mut B {
    fn send(&mut self, message: &[u8]) -> bool {
        (**self).send(message)
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        (**self).receive(buf)
    }
    fn closed(&self) -> bool {
        (**self).closed()
    }
}

/// A bus several transports share (one per device on the same link), one
/// call at a time.
impl<B: MessageBus> MessageBus for &RefCell<B> {
    fn send(&mut self, message: &[u8]) -> bool {
        self.borrow_mut().send(message)
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.borrow_mut().receive(buf)
    }
    fn closed(&self) -> bool {
        self.borrow().closed()
    }
}

/// The bus of one link's [`Session`], from this partition's drivers to the
/// peer's devices, for as long as the link stays up: after a reset it is
/// closed, and its transports fail at once. While a driver waits, the
/// session answers the peer's requests for our devices on the same link;
/// an idle function ([`SessionBus::with_idle`]) can serve other links.
pub struct SessionBus<'s, 'w, D, P> {
    session: &'s RefCell<Session<'w, D, P>>,
    epoch: u32,
    idle: Option<&'s dyn Fn()>,
}

impl<'s, 'w, D: Doorbell, P: Provided> SessionBus<'s, 'w, D, P> {
    /// The bus of `session` as it is now (its current epoch).
    pub fn new(session: &'s RefCell<Session<'w, D, P>>) -> Self {
        let epoch = session.borrow().resets();
        Self {
            session,
            epoch,
            idle: None,
        }
    }

    /// Calls `idle` each time a wait finds nothing: to serve this
    /// partition's other links while a driver waits on this one.
    pub fn with_idle(mut self, idle: &'s dyn Fn()) -> Self {
        self.idle = Some(idle);
        self
    }
}

impl<D, P> core::fmt::Debug for SessionBus<'_, '_, D, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionBus")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl<D: Doorbell, P: Provided> MessageBus for SessionBus<'_, '_, D, P> {
    fn send(&mut self, message: &[u8]) -> bool {
        !self.closed() && self.session.borrow_mut().driver_send(message)
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.closed() {
            return None;
        }
        let got = self.session.borrow_mut().driver_receive(buf);
        if got.is_none() {
            if let Some(idle) = self.idle {
                idle();
            }
        }
        got
    }

    fn closed(&self) -> bool {
        let s = self.session.borrow();
        s.resets() != self.epoch || !s.peer_bus()
    }
}

/// One rpmsg endpoint of a link as a message bus: each virtio-msg message
/// is one rpmsg message from `local` to `peer`. Messages for other local
/// endpoints are dropped (this side owns the link while its drivers run).
#[derive(Debug)]
pub struct LinkBus<'l, 'w, D, const N: usize, const E: usize> {
    link: &'l mut Link<'w, D, N, E>,
    local: u32,
    peer: u32,
}

impl<'l, 'w, D: Doorbell, const N: usize, const E: usize> LinkBus<'l, 'w, D, N, E> {
    /// A bus over `link` from endpoint `local` (created by the caller) to the
    /// device side's `peer`.
    pub fn new(link: &'l mut Link<'w, D, N, E>, local: u32, peer: u32) -> Self {
        Self { link, local, peer }
    }
}

impl<D: Doorbell, const N: usize, const E: usize> MessageBus for LinkBus<'_, '_, D, N, E> {
    fn send(&mut self, message: &[u8]) -> bool {
        matches!(self.link.send(self.local, self.peer, message), Ok(true))
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        loop {
            match self.link.receive() {
                Ok(Some(Incoming::Message(m))) => {
                    let mine = m.dst() == self.local && m.src() == self.peer;
                    let n = if mine { m.copy_to(buf).ok() } else { None };
                    let _ = self.link.release(m);
                    if n.is_some() {
                        return n;
                    }
                }
                Ok(Some(Incoming::Service(_))) => {}
                Ok(None) | Err(_) => {
                    let _ = self.link.poll();
                    return None;
                }
            }
        }
    }
}
