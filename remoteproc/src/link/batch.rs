//! Batches: sends and releases staged, then published together.

use super::{Ends, Link, LinkError};
use shmem::Doorbell;

/// An open batch on a link (see [`Link::batch`]): the link's whole API,
/// with ring updates staged until the batch ends.
#[derive(Debug)]
pub struct Batch<'l, 'a, D: Doorbell, const N: usize, const E: usize> {
    link: &'l mut Link<'a, D, N, E>,
    /// A batch was already open when this one began (it then ends nothing).
    outer: bool,
}

impl<D: Doorbell, const N: usize, const E: usize> Batch<'_, '_, D, N, E> {
    /// Ends the batch, publishing what it staged; reports a ring error that
    /// publishing met (dropping the batch publishes too, but can only record
    /// such an error in the link's state and counters).
    pub fn finish(mut self) -> Result<(), LinkError> {
        self.end()
    }

    pub(super) fn end(&mut self) -> Result<(), LinkError> {
        if self.outer || !self.link.batching {
            return Ok(());
        }
        self.link.batching = false;
        self.link.epoch_checked = false;
        self.link.flush()
    }
}

impl<'a, D: Doorbell, const N: usize, const E: usize> core::ops::Deref for Batch<'_, 'a, D, N, E> {
    type Target = Link<'a, D, N, E>;
    fn deref(&self) -> &Self::Target {
        self.link
    }
}

impl<D: Doorbell, const N: usize, const E: usize> core::ops::DerefMut for Batch<'_, '_, D, N, E> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.link
    }
}

impl<D: Doorbell, const N: usize, const E: usize> Drop for Batch<'_, '_, D, N, E> {
    fn drop(&mut self) {
        // An error here has already broken the link (counted, and returned by
        // its next call).
        let _ = self.end();
    }
}

impl<'a, D: Doorbell, const N: usize, const E: usize> Link<'a, D, N, E> {
    /// Opens a batch: until it ends, sends and releases made through it
    /// are written to the rings but published together (one index store and
    /// at most one doorbell per ring for the whole batch, rather than per
    /// message), when the batch is dropped or [`Batch::finish`]ed. The peer
    /// sees nothing of the batch before then, except that a batch never makes
    /// it wait: whenever this side finds no TX buffer or nothing to receive,
    /// it publishes what the batch holds first, and [`Link::dispatch`] gives
    /// received buffers back every eighth of the ring as it goes.
    ///
    /// The peer's epoch is checked once, when the batch opens: a peer that
    /// restarts while it is open is noticed by the first call after it ends
    /// (its rings are still checked at every access).
    ///
    /// For streams of messages (the throughput path); a single message is
    /// sent at least as fast without one.
    pub fn batch(&mut self) -> Batch<'_, 'a, D, N, E> {
        let outer = self.batching;
        if !outer {
            self.epoch_checked = self.is_ready();
        }
        self.batching = true;
        Batch { link: self, outer }
    }

    #[inline(always)]
    pub(super) fn flush_if_batching(&mut self) -> Result<(), LinkError> {
        if self.batching {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Publishes what is staged on this side's two rings and rings the
    /// doorbell for each ring whose peer asked for it.
    pub(super) fn flush(&mut self) -> Result<(), LinkError> {
        let published = match &mut self.ends {
            Ends::Host(host) => host.publish(),
            Ends::Remote(remote) => remote.publish(),
            Ends::Down => return Ok(()),
        };
        match published {
            Ok(rings) => {
                for (ring, queue) in rings {
                    if ring {
                        self.doorbell.ring(queue);
                    }
                }
                Ok(())
            }
            Err(e) => Err(self.fail(LinkError::Ring(e))),
        }
    }
}
