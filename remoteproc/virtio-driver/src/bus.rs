//! What carries the messages: a [`MessageBus`], and the one over an rpmsg
//! endpoint of a link.

use remoteproc::{Incoming, Link};
use shmem::Doorbell;

/// Carries whole virtio-msg messages to and from the device side.
pub trait MessageBus {
    /// Sends one message; `false` if it could not go now (no room).
    fn send(&mut self, message: &[u8]) -> bool;
    /// The next message received, copied into `buf`; its length.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
}

impl<B: MessageBus> MessageBus for &mut B {
    fn send(&mut self, message: &[u8]) -> bool {
        (**self).send(message)
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        (**self).receive(buf)
    }
}

/// A bus several transports share (one per device on the same link), one
/// call at a time.
impl<B: MessageBus> MessageBus for &core::cell::RefCell<B> {
    fn send(&mut self, message: &[u8]) -> bool {
        self.borrow_mut().send(message)
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.borrow_mut().receive(buf)
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
