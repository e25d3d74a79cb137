//! An rpmsg link over one shared window: two vrings, the message buffers,
//! local endpoints and the name service, in either role and either layout.
//!
//! Roles (rpmsg vring 0 / vring 1 use, from `virtio_rpmsg_bus.c`):
//! - [`Role::Host`] is the virtio driver and owns the buffers (Linux, the
//!   OpenAMP or rpmsg-lite "master"): it posts empty buffers on vring 0 to
//!   receive into and sends on vring 1.
//! - [`Role::Remote`] is the virtio device (OpenAMP / rpmsg-lite "remote"): it
//!   sends by filling a buffer taken from vring 0 and receives from vring 1.
//!
//! Layouts: [`Placement::ResourceTable`] (the remote writes a Linux resource
//! table, the host reads ring addresses from it and sets `DRIVER_OK`, which is
//! what an OpenAMP remote waits for) and [`Placement::Static`] (rpmsg-lite: vring
//! 0 at the base, vring 1 one stride later, buffers after both).
//!
//! Errors: anything the peer wrote that breaks the ring protocol, or a restart
//! of the peer, breaks the link ([`LinkError::is_fatal`]); every later call
//! returns [`LinkError::Broken`] until [`Link::reset`]. A malformed message
//! (length, address, name-service record) is dropped and reported but the link
//! keeps going. Every error is counted in [`LinkStats`]. No call loops more than
//! a queue's size; nothing allocates.
//!
//! Zero copy: [`Link::alloc_tx`] lends a [`TxBuffer`] to fill in place and
//! [`Link::send_buffer`] sends it; [`Link::receive`] returns an [`RxMessage`],
//! a guard whose accessors read the buffer with volatile loads (never a
//! reference into it), given back with [`Link::release`]. `write_words`,
//! `write_words_with` and `words` produce and use a payload word by word
//! where it lies; `write` and `read` copy byte ranges.
//!
//! Streams: [`Link::batch`] stages sends and releases and publishes them
//! together, one ring index store and at most one doorbell per batch.
//! [`Link::send_burst`] lends buffer after buffer to a closure that fills
//! each in place, checking the link once and writing the ring in one loop:
//! the fastest way to send many messages (a host streams a 496-byte payload
//! in about 14 ns a message on one core, against 20 with `alloc_tx` and
//! `send_buffer`). [`Link::dispatch`] is its receiving half.
//!
//! Polling: a call that finds nothing to do returns at once. How to wait
//! between polls (a spin-loop hint, WFE, a timer, a doorbell interrupt) is
//! the caller's choice: a pause inside every empty call made the 16-byte
//! round trip 10-20% slower in the transport benchmark, close or far.

mod batch;
mod config;
mod endpoints;
mod ends;
mod error;
mod rx;
mod setup;
mod state;
mod tx;

pub use crate::rpmsg::ServiceEvent;
pub use batch::Batch;
pub use config::{LinkConfig, Placement, Role};
pub use endpoints::Endpoint;
pub use error::{LinkError, LinkStats, MessageError};
pub use rx::{Incoming, RxMessage};
pub use tx::TxBuffer;

use endpoints::EndpointSlot;
use ends::Ends;
use shmem::header::{Side, WindowHeader};
use shmem::{Doorbell, Window};
use state::{Progress, State};

/// One side of an rpmsg link. `N` bounds the queue size (buffers per
/// direction), `E` the number of local endpoints.
#[derive(Debug)]
pub struct Link<'a, D, const N: usize = 256, const E: usize = 16> {
    window: Window<'a>,
    config: LinkConfig,
    doorbell: D,
    state: State,
    /// What this side knows of the peer's progress ([`Progress`]).
    progress: Progress,
    ends: Ends<'a, N>,
    endpoints: [Option<EndpointSlot>; E],
    stats: LinkStats,
    /// Our window header (epochs), when both sides are ours.
    header: Option<WindowHeader<'a>>,
    /// Bumped by every reset: a buffer or message lent before it is void.
    generation: u32,
    /// Remote with a resource table: where its vdev entry is.
    vdev_entry: Option<usize>,
    /// Offset of the buffer pool.
    buffers: usize,
    /// Queue size in use (the table's, on a resource-table host).
    queue_size: u16,
    /// A [`Batch`] is open: ring updates are staged, published at its end.
    batching: bool,
    /// The peer's epoch was found current when the open batch began: until
    /// it ends, readiness is the link state alone (one check per batch, not
    /// per message).
    epoch_checked: bool,
}

impl<'a, D: Doorbell, const N: usize, const E: usize> Link<'a, D, N, E> {
    /// Sets up this side. A host initialises its rings and buffers now (or as
    /// soon as the remote's resource table is valid); a remote writes its
    /// resource table (if any) and waits for the host. Fails only if the
    /// configuration does not fit the window; the peer's state is handled by
    /// [`Link::poll`].
    pub fn new(window: Window<'a>, config: LinkConfig, doorbell: D) -> Result<Self, LinkError> {
        let buffers = match config.placement {
            Placement::ResourceTable { buffers, .. } => buffers,
            Placement::Static { base, stride } => base
                .checked_add(stride.checked_mul(2).ok_or(LinkError::Config)?)
                .ok_or(LinkError::Config)?,
        };
        let header = match config.header {
            Some(at) => Some(WindowHeader::new(window, at).map_err(|_| LinkError::Config)?),
            None => None,
        };
        let mut link = Self {
            window,
            config,
            doorbell,
            state: State::Waiting,
            progress: Progress::default(),
            ends: Ends::Down,
            endpoints: [None; E],
            stats: LinkStats::default(),
            header,
            generation: 0,
            vdev_entry: None,
            buffers,
            queue_size: config.queue_size,
            batching: false,
            epoch_checked: false,
        };
        link.check_geometry(config.queue_size)?;
        if config.role == Role::Remote {
            link.publish_table()?;
            if let Some(h) = link.header {
                // A remote that ran before (its epoch was not 0) left the
                // rings in a state only the host can reset: wait for a new
                // host epoch rather than attach to the old rings.
                if h.announce(Side::Device)? != 1 {
                    link.progress.stale_driver_epoch = h.peer_epoch(Side::Device)?;
                }
            }
        }
        match link.try_bring_up() {
            Ok(()) | Err(LinkError::NotReady) | Err(LinkError::Table(_)) => Ok(link),
            Err(e) => Err(e),
        }
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Whether the peer is up and the link usable.
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Whether the link failed and needs [`Link::reset`].
    pub fn is_broken(&self) -> bool {
        self.state == State::Broken
    }

    /// The doorbell (for a benchmark or test to inspect).
    pub fn doorbell(&mut self) -> &mut D {
        &mut self.doorbell
    }

    /// Tells a remote that the host rang vring 0 (rpmsg-lite signals "host
    /// ready" only that way); call it from the doorbell interrupt.
    pub fn doorbell_rang(&mut self) {
        self.progress.kicked = true;
    }

    fn fail(&mut self, e: LinkError) -> LinkError {
        self.epoch_checked = false;
        match e {
            LinkError::Ring(r) if r.is_protocol_violation() => {
                self.stats.ring_errors += 1;
                self.state = State::Broken;
            }
            LinkError::PeerRestarted => {
                self.stats.peer_restarts += 1;
                self.state = State::Broken;
                self.progress.host_restarted = self.config.role == Role::Remote;
            }
            LinkError::Message(_) => self.stats.message_errors += 1,
            _ => {}
        }
        e
    }

    /// Checks the link is up: brings it up if the peer became ready, notices a
    /// peer restart, and re-kicks a silent remote.
    #[inline]
    fn ready(&mut self) -> Result<(), LinkError> {
        if self.is_ready() {
            return Ok(());
        }
        self.ready_slow()
    }

    /// Per message: up, and the peer's epoch word still the one taken (one
    /// load). `false` sends the caller the whole way ([`Link::ready_slow`]),
    /// which also reports a window error here.
    #[inline(always)]
    fn is_ready(&self) -> bool {
        if self.state != State::Up {
            return false;
        }
        if self.epoch_checked {
            return true;
        }
        match (self.header, self.progress.peer_epoch) {
            (None, _) => true,
            (Some(h), Some(epoch)) => h.peer_epoch_word(self.side()) == Ok(epoch),
            (Some(_), None) => false,
        }
    }

    fn side(&self) -> Side {
        match self.config.role {
            Role::Host => Side::Driver,
            Role::Remote => Side::Device,
        }
    }

    #[cold]
    fn ready_slow(&mut self) -> Result<(), LinkError> {
        match self.state {
            State::Broken => return Err(LinkError::Broken),
            State::Waiting => {
                self.try_bring_up()?;
            }
            State::Up => {}
        }
        if let Some(h) = self.header {
            let now = h.peer_epoch(self.side()).map_err(LinkError::from)?;
            match (self.progress.peer_epoch, now) {
                (Some(a), Some(b)) if a != b => return Err(self.fail(LinkError::PeerRestarted)),
                (None, Some(_)) => {
                    self.progress.peer_epoch = now;
                    self.progress.answered = true;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes progress without sending or receiving: brings the link up when
    /// the peer is ready, takes back sent buffers, and (host) re-kicks vring 0
    /// until the remote answers. Call it periodically when idle.
    pub fn poll(&mut self) -> Result<(), LinkError> {
        self.ready()?;
        if self.config.role == Role::Host {
            self.reclaim_tx()?;
            if !self.progress.answered && self.config.renotify_interval != 0 {
                self.progress.polls += 1;
                if self.progress.polls >= self.config.renotify_interval {
                    self.progress.polls = 0;
                    self.stats.renotifies += 1;
                    self.doorbell.ring(0);
                }
            }
        }
        Ok(())
    }

    /// Starts the link again after an error or a peer restart: buffers lent
    /// out before are void. A host re-initialises its rings and announces a
    /// new epoch; a remote announces a new epoch and waits for the host to
    /// re-initialise (a device cannot resynchronise a ring on its own).
    pub fn reset(&mut self) -> Result<(), LinkError> {
        self.stats.resets += 1;
        self.epoch_checked = false;
        self.generation = self.generation.wrapping_add(1);
        self.ends = Ends::Down;
        self.state = State::Waiting;
        self.progress.kicked = false;
        match self.config.role {
            Role::Host => {
                self.progress.peer_epoch = None;
                match self.try_bring_up() {
                    Ok(()) | Err(LinkError::NotReady) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Role::Remote => {
                match self.header {
                    // The host restarted: attach to its new rings.
                    Some(_) if self.progress.host_restarted => {
                        self.progress.stale_driver_epoch = self.progress.peer_epoch
                    }
                    // We found the fault: ask the host to reset the rings.
                    Some(h) => {
                        self.progress.stale_driver_epoch = h.peer_epoch(Side::Device)?;
                        h.announce(Side::Device)?;
                    }
                    // No epochs: wait for the host to set DRIVER_OK again.
                    None => self.publish_table()?,
                }
                self.progress.host_restarted = false;
                self.progress.peer_epoch = None;
                Ok(())
            }
        }
    }
}
