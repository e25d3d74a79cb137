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

use crate::resource_table::{self, status, RpmsgDevice, TableError, TableSpec};
use crate::rpmsg::{self, header, ns};
use core::fmt;
use shmem::header::{Side, WindowHeader};
use shmem::virtqueue::{Notification, RingLayout, Segment, F_EVENT_IDX};
use shmem::{
    Chain, DeviceQueue, Doorbell, DriverQueue, RingError, Span, Window, WindowError, Words,
};

/// Which end of the link this side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The virtio driver: owns the rings and buffers (rpmsg host / master).
    Host,
    /// The virtio device: uses the host's buffers (rpmsg remote).
    Remote,
}

/// Where rings and buffers lie in the window (offsets from the window base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Linux / OpenAMP: a resource table at `table` (at most `table_len`
    /// bytes). The remote writes it, placing the vrings at `vrings`; the host
    /// takes the ring addresses, sizes and alignment from the table (checked).
    /// Buffers (2 x queue size) start at `buffers` (Linux's `vdev0buffer`).
    ResourceTable {
        /// Offset of the table.
        table: usize,
        /// Bytes reserved for the table.
        table_len: usize,
        /// Offsets of vring 0 and vring 1 (used by the remote to write the table).
        vrings: [usize; 2],
        /// Offset of the first buffer.
        buffers: usize,
    },
    /// rpmsg-lite: vring 0 at `base`, vring 1 at `base + stride`, buffers at
    /// `base + 2 * stride` (rpmsg-lite's `VRING_SIZE` is the stride, 0x8000).
    Static {
        /// Offset of vring 0.
        base: usize,
        /// Distance between the vrings (`VRING_SIZE`).
        stride: usize,
    },
}

/// How a link is set up. Both sides must agree on everything but `role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// This side's role.
    pub role: Role,
    /// Where rings and buffers lie.
    pub placement: Placement,
    /// Queue size of each vring, which is also the number of buffers per
    /// direction (taken from the table on a resource-table host).
    pub queue_size: u16,
    /// Legacy vring alignment (0x1000 for every peer we know).
    pub align: usize,
    /// Buffer size, header included (512 for every peer we know).
    pub buffer_size: usize,
    /// Offer (remote) or accept (host) `VIRTIO_F_EVENT_IDX`. Never with
    /// rpmsg-lite, which does not implement it, nor with OpenAMP, which
    /// misses kicks with it in both roles (as a remote its rpmsg layer never
    /// re-enables callbacks; as a host it never records the negotiated
    /// feature): data stays correct, but a side waiting for a kick stalls.
    pub event_idx: bool,
    /// Remote only: notify even when the host set `NO_INTERRUPT` (needed with an
    /// rpmsg-lite master, which never clears it).
    pub ignore_no_interrupt: bool,
    /// Use the name service (`VIRTIO_RPMSG_F_NS`, address 53).
    pub name_service: bool,
    /// Offset of our window header (epochs), when both sides are ours.
    pub header: Option<usize>,
    /// Host only: until the remote shows it is alive, re-kick vring 0 every
    /// this many calls to [`Link::poll`] / [`Link::receive`] (an rpmsg-lite
    /// remote misses a kick sent before it initialised). 0 = never re-kick.
    pub renotify_interval: u32,
}

impl LinkConfig {
    /// rpmsg-lite's static layout at `base`: 0x8000 stride, 0x1000 alignment,
    /// 512-byte buffers, `buffers` per direction, no event index; a remote
    /// ignores `NO_INTERRUPT`.
    pub fn rpmsg_lite(role: Role, base: usize, buffers: u16) -> Self {
        Self {
            role,
            placement: Placement::Static {
                base,
                stride: 0x8000,
            },
            queue_size: buffers,
            align: 0x1000,
            buffer_size: rpmsg::BUFFER_SIZE,
            event_idx: false,
            ignore_no_interrupt: role == Role::Remote,
            name_service: true,
            header: None,
            renotify_interval: 64,
        }
    }

    /// A Linux / OpenAMP style link with a resource table.
    pub fn resource_table(
        role: Role,
        table: usize,
        vrings: [usize; 2],
        buffers: usize,
        queue_size: u16,
    ) -> Self {
        Self {
            role,
            placement: Placement::ResourceTable {
                table,
                table_len: resource_table::TABLE_SIZE,
                vrings,
                buffers,
            },
            queue_size,
            align: 0x1000,
            buffer_size: rpmsg::BUFFER_SIZE,
            event_idx: false,
            ignore_no_interrupt: false,
            name_service: true,
            header: None,
            renotify_interval: 64,
        }
    }
}

/// A malformed message: dropped, counted, the link goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// The header's payload length does not fit the buffer.
    Length {
        /// Claimed payload length.
        len: u16,
        /// Room in the buffer.
        room: u32,
    },
    /// Source or destination is `RPMSG_ADDR_ANY`.
    Address {
        /// Source address.
        src: u32,
        /// Destination address.
        dst: u32,
    },
    /// A buffer shorter than the rpmsg header, or a TX buffer the host did not
    /// mark device-writable.
    Buffer,
    /// A name-service message of the wrong size or with an invalid address.
    NameService,
}

/// Why a link call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The peer broke the ring protocol (fatal).
    Ring(RingError),
    /// The peer's resource table is unusable (the link stays down).
    Table(TableError),
    /// A malformed message was dropped (not fatal).
    Message(MessageError),
    /// The peer restarted (its epoch changed): reset the link (fatal).
    PeerRestarted,
    /// The link failed earlier; call [`Link::reset`].
    Broken,
    /// The peer is not up yet.
    NotReady,
    /// The configuration does not fit the window.
    Config,
    /// Local misuse: address taken or invalid, no endpoint slot, payload too
    /// long, or a buffer from before a reset.
    Usage,
}

impl LinkError {
    /// Whether the link is now broken and needs [`Link::reset`].
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Ring(_) | Self::PeerRestarted | Self::Broken)
    }
}

impl From<RingError> for LinkError {
    fn from(e: RingError) -> Self {
        match e {
            // Only a lent buffer used after it went back gets here.
            RingError::NotReserved(_) => Self::Usage,
            e => Self::Ring(e),
        }
    }
}

impl From<WindowError> for LinkError {
    fn from(e: WindowError) -> Self {
        Self::Ring(RingError::Window(e))
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "ring protocol violated: {e}"),
            Self::Table(e) => write!(f, "resource table unusable: {e:?}"),
            Self::Message(e) => write!(f, "message dropped: {e:?}"),
            Self::PeerRestarted => f.write_str("peer restarted"),
            Self::Broken => f.write_str("link broken; reset it"),
            Self::NotReady => f.write_str("peer not ready"),
            Self::Config => f.write_str("configuration does not fit the window"),
            Self::Usage => f.write_str("invalid call"),
        }
    }
}

/// Counters a link keeps (never reset, so a monitor sees totals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Messages sent.
    pub sent: u64,
    /// Messages delivered to a local endpoint.
    pub received: u64,
    /// Ring protocol violations seen.
    pub ring_errors: u32,
    /// Malformed messages dropped.
    pub message_errors: u32,
    /// Unusable resource tables seen.
    pub table_errors: u32,
    /// Messages for an address with no local endpoint (dropped).
    pub unknown_destination: u32,
    /// Peer restarts seen.
    pub peer_restarts: u32,
    /// Resets of this side.
    pub resets: u32,
    /// Extra vring-0 kicks sent while waiting for the remote.
    pub renotifies: u32,
}

/// A name-service record the peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceEvent {
    /// Service name, NUL-padded (byte 31 is always NUL).
    pub name: [u8; rpmsg::NAME_SIZE],
    /// The peer endpoint offering it.
    pub addr: u32,
    /// Created (else destroyed).
    pub created: bool,
}

impl ServiceEvent {
    /// The name up to its first NUL.
    pub fn name(&self) -> &[u8] {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        &self.name[..end]
    }
}

/// A local endpoint: an address this side receives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    addr: u32,
}

impl Endpoint {
    /// Its address.
    pub fn addr(&self) -> u32 {
        self.addr
    }
}

#[derive(Clone, Copy, Debug)]
struct EndpointSlot {
    addr: u32,
    announced: bool,
}

// rpmsg uses the first buffer of a chain only, taken out once: the slots keep
// a `Chain<0>` (8 bytes), so the guards holding them stay small to move.
#[derive(Debug)]
enum TxSlot {
    Host(Index),
    Remote(Chain<0>),
}

/// A host's buffer index (for a TX buffer: the descriptor it is bound to,
/// see [`Ends::Host`]), held in a whole word: both slot variants then have
/// an 8-byte payload at the same place, and moving a slot copies one word.
/// (With a `u16` the compiler copied the variants' union in wide loads over
/// the 2-byte store, a store-forwarding stall on every lent buffer.)
#[derive(Clone, Copy, Debug)]
struct Index(u64);

impl Index {
    fn new(k: u16) -> Self {
        Self(k.into())
    }
    fn get(self) -> u16 {
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

#[derive(Debug)]
enum RxSlot {
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
enum Delivery<'a> {
    Message {
        payload: Span<'a>,
        src: u32,
        dst: u32,
    },
    Service(ServiceEvent),
    /// A message for no local endpoint (dropped, counted).
    Unknown,
}

/// What [`Link::offer_host`] sends: bytes to copy in after the header, or
/// the length of a payload already in the buffer.
#[derive(Clone, Copy)]
enum Payload<'d> {
    Copy(&'d [u8]),
    InPlace(usize),
}

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

    fn end(&mut self) -> Result<(), LinkError> {
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

#[derive(Debug)]
enum Ends<'a, const N: usize> {
    Down,
    Host {
        rx: DriverQueue<'a, N>,
        /// TX buffer `queue_size + d` is bound to descriptor `d`: the free
        /// TX buffers are this queue's free descriptors, a FIFO, so buffers
        /// are reused in the order they came back, each keeps its
        /// descriptor (and, completed in order, its avail slot), and
        /// consecutive messages use consecutive memory.
        tx: DriverQueue<'a, N>,
    },
    Remote {
        tx: DeviceQueue<'a>,
        rx: DeviceQueue<'a>,
        /// A TX buffer taken from vring 0 (and checked) while idle, so that a
        /// reply does not wait for the avail slot and descriptor to cross
        /// from the host's cache.
        spare: Option<(Span<'a>, Chain<0>)>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Up,
    Broken,
}

/// One side of an rpmsg link. `N` bounds the queue size (buffers per
/// direction), `E` the number of local endpoints.
#[derive(Debug)]
pub struct Link<'a, D, const N: usize = 256, const E: usize = 16> {
    window: Window<'a>,
    config: LinkConfig,
    doorbell: D,
    state: State,
    ends: Ends<'a, N>,
    endpoints: [Option<EndpointSlot>; E],
    stats: LinkStats,
    header: Option<WindowHeader<'a>>,
    peer_epoch: Option<u32>,
    stale_driver_epoch: Option<u32>,
    host_restarted: bool,
    generation: u32,
    answered: bool,
    polls: u32,
    kicked: bool,
    vdev_entry: Option<usize>,
    buffers: usize,
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
            ends: Ends::Down,
            endpoints: [None; E],
            stats: LinkStats::default(),
            header,
            peer_epoch: None,
            stale_driver_epoch: None,
            host_restarted: false,
            generation: 0,
            answered: false,
            polls: 0,
            kicked: false,
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
                    link.stale_driver_epoch = h.peer_epoch(Side::Device)?;
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
        self.kicked = true;
    }

    fn check_geometry(&self, queue_size: u16) -> Result<(), LinkError> {
        let n = usize::from(queue_size);
        if n == 0
            || n > N
            || !queue_size.is_power_of_two()
            || self.config.buffer_size < rpmsg::HEADER_SIZE + 1
        {
            return Err(LinkError::Config);
        }
        let end = self
            .buffers
            .checked_add(2 * n * self.config.buffer_size)
            .ok_or(LinkError::Config)?;
        if end > self.window.len() || self.config.buffer_size > usize::from(u16::MAX) {
            return Err(LinkError::Config);
        }
        if let Placement::Static { base, stride } = self.config.placement {
            for at in [base, base + stride] {
                let l = RingLayout::legacy(&self.window, at, queue_size, self.config.align)
                    .map_err(|_| LinkError::Config)?;
                if RingLayout::legacy_size(queue_size, self.config.align) > stride
                    || l.used >= base + 2 * stride
                {
                    return Err(LinkError::Config);
                }
            }
        }
        Ok(())
    }

    fn publish_table(&mut self) -> Result<(), LinkError> {
        if let Placement::ResourceTable { table, vrings, .. } = self.config.placement {
            let mut dfeatures = 0;
            if self.config.name_service {
                dfeatures |= 1 << rpmsg::F_NS;
            }
            if self.config.event_idx {
                dfeatures |= 1 << F_EVENT_IDX;
            }
            let n = u32::from(self.config.queue_size);
            let align = self.config.align as u32;
            let da = |at: usize| self.window.bus_address_of(at) as u32;
            let spec = TableSpec {
                dfeatures,
                vrings: [(da(vrings[0]), align, n), (da(vrings[1]), align, n)],
            };
            resource_table::write(&self.window, table, &spec).map_err(|_| LinkError::Config)?;
            self.vdev_entry = Some(table + resource_table::header::OFFSET + 4);
        }
        Ok(())
    }

    fn layouts(
        &self,
        queue_size: u16,
        device: Option<&RpmsgDevice>,
    ) -> Result<[RingLayout; 2], LinkError> {
        let mut out = [RingLayout {
            size: 0,
            desc: 0,
            avail: 0,
            used: 0,
        }; 2];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = match (self.config.placement, device) {
                (Placement::Static { base, stride }, _) => RingLayout::legacy(
                    &self.window,
                    base + i * stride,
                    queue_size,
                    self.config.align,
                )?,
                (Placement::ResourceTable { .. }, Some(dev)) => {
                    let v = dev.vrings[i];
                    let at = self.window.offset_of(v.da.into(), 1)?;
                    RingLayout::legacy(&self.window, at, v.num as u16, v.align as usize)
                        .map_err(|_| LinkError::Table(TableError::BadVring(i as u8)))?
                }
                (Placement::ResourceTable { vrings, .. }, None) => {
                    RingLayout::legacy(&self.window, vrings[i], queue_size, self.config.align)?
                }
            };
        }
        // The two rings, the buffers, the resource table and our header must
        // not overlap: a host zeroing a ring placed (by a hostile table) over
        // the table or the header would otherwise erase them.
        let span = |l: &RingLayout| (l.desc, l.used + 6 + 8 * usize::from(l.size));
        let bufs = (
            self.buffers,
            self.buffers + 2 * usize::from(queue_size) * self.config.buffer_size,
        );
        let table = match self.config.placement {
            Placement::ResourceTable {
                table, table_len, ..
            } => (table, table + table_len),
            Placement::Static { .. } => (0, 0),
        };
        let header = match self.config.header {
            Some(at) => (at, at + shmem::header::HEADER_SIZE),
            None => (0, 0),
        };
        let parts = [span(&out[0]), span(&out[1]), bufs, table, header];
        for a in 0..parts.len() {
            for b in a + 1..parts.len() {
                if parts[a].0 < parts[b].1 && parts[b].0 < parts[a].1 {
                    return Err(match device {
                        Some(_) => LinkError::Table(TableError::BadDevice),
                        None => LinkError::Config,
                    });
                }
            }
        }
        Ok(out)
    }

    fn pool_end(&self) -> usize {
        self.buffers + 2 * usize::from(self.queue_size) * self.config.buffer_size
    }

    fn buffer_offset(&self, index: u16) -> usize {
        self.buffers + usize::from(index) * self.config.buffer_size
    }

    /// Where a host's TX buffer bound to descriptor `d` lies (after the
    /// `queue_size` RX buffers).
    #[inline(always)]
    fn tx_buffer_offset(&self, d: u16) -> usize {
        // No overflow: `d` < queue size, a power of two up to 32768.
        self.buffer_offset(self.queue_size + d)
    }

    fn try_bring_up(&mut self) -> Result<(), LinkError> {
        match self.config.role {
            Role::Host => self.bring_up_host(),
            Role::Remote => self.bring_up_remote(),
        }
    }

    fn bring_up_host(&mut self) -> Result<(), LinkError> {
        let mut notification = Notification {
            polled: self.doorbell.polled(),
            ..Notification::default()
        };
        let mut device = None;
        let mut queue_size = self.config.queue_size;
        if let Placement::ResourceTable {
            table, table_len, ..
        } = self.config.placement
        {
            let dev = match resource_table::find_rpmsg(&self.window, table, table_len) {
                Ok(dev) => dev,
                Err(TableError::Version(0)) => return Err(LinkError::NotReady),
                Err(e) => {
                    self.stats.table_errors += 1;
                    return Err(LinkError::Table(e));
                }
            };
            if dev.vrings[0].num != dev.vrings[1].num {
                self.stats.table_errors += 1;
                return Err(LinkError::Table(TableError::BadVring(1)));
            }
            queue_size = dev.vrings[0].num as u16;
            if self.check_geometry(queue_size).is_err() {
                self.stats.table_errors += 1;
                return Err(LinkError::Table(TableError::BadVring(0)));
            }
            notification.event_idx =
                self.config.event_idx && dev.dfeatures & (1 << F_EVENT_IDX) != 0;
            device = Some(dev);
        }
        notification.event_idx |= self.config.event_idx && device.is_none();
        let layouts = match self.layouts(queue_size, device.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                if matches!(e, LinkError::Table(_)) {
                    self.stats.table_errors += 1;
                }
                return Err(e);
            }
        };
        let rx = DriverQueue::new(self.window, layouts[0], notification)?;
        let tx = DriverQueue::new(self.window, layouts[1], notification)?;
        self.queue_size = queue_size;
        self.ends = Ends::Host { rx, tx };
        // Post every RX buffer on vring 0, device-writable.
        for k in 0..queue_size {
            self.post_rx(k)?;
        }
        if let Ends::Host { rx, .. } = &mut self.ends {
            rx.publish()?;
        }
        if let Some(dev) = device {
            let mut g = 0;
            if self.config.name_service && dev.dfeatures & (1 << rpmsg::F_NS) != 0 {
                g |= 1 << rpmsg::F_NS;
            }
            if notification.event_idx {
                g |= 1 << F_EVENT_IDX;
            }
            resource_table::accept(
                &self.window,
                &dev,
                g,
                status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK,
            )
            .map_err(LinkError::Table)?;
        }
        if let Some(h) = self.header {
            h.announce(Side::Driver)?;
            self.peer_epoch = h.peer_epoch(Side::Driver)?;
        }
        self.answered = false;
        self.polls = 0;
        self.state = State::Up;
        // "Host online": the one kick an rpmsg-lite remote waits for; repeated
        // by `poll` until the remote answers.
        self.doorbell.ring(0);
        Ok(())
    }

    fn bring_up_remote(&mut self) -> Result<(), LinkError> {
        let mut notification = Notification {
            event_idx: false,
            ignore_no_interrupt: self.config.ignore_no_interrupt,
            polled: self.doorbell.polled(),
        };
        if let Some(entry) = self.vdev_entry {
            let (st, gfeatures) =
                resource_table::read_status(&self.window, entry).map_err(LinkError::Table)?;
            if st & status::DRIVER_OK == 0 || st & (status::NEEDS_RESET | status::FAILED) != 0 {
                return Err(LinkError::NotReady);
            }
            notification.event_idx = self.config.event_idx && gfeatures & (1 << F_EVENT_IDX) != 0;
        } else {
            notification.event_idx = self.config.event_idx;
        }
        let layouts = self.layouts(self.config.queue_size, None)?;
        match self.header {
            Some(h) => {
                let driver = h.peer_epoch(Side::Device)?;
                if driver.is_none() || driver == self.stale_driver_epoch {
                    return Err(LinkError::NotReady);
                }
                self.peer_epoch = driver;
            }
            None if self.vdev_entry.is_none() => {
                // rpmsg-lite: up on the host's kick, or (polling) once the host
                // has posted its RX buffers on vring 0.
                self.window.invalidate(layouts[0].avail + 2, 2);
                if !self.kicked && self.window.read_u16(layouts[0].avail + 2)? == 0 {
                    return Err(LinkError::NotReady);
                }
            }
            None => {}
        }
        let tx = DeviceQueue::attach(self.window, layouts[0], notification)?;
        let rx = DeviceQueue::attach(self.window, layouts[1], notification)?;
        self.ends = Ends::Remote {
            tx,
            rx,
            spare: None,
        };
        self.state = State::Up;
        Ok(())
    }

    fn post_rx(&mut self, k: u16) -> Result<(), LinkError> {
        let addr = self.window.bus_address_of(self.buffer_offset(k));
        let len = self.config.buffer_size as u32;
        if let Ends::Host { rx, .. } = &mut self.ends {
            rx.add(
                &[Segment {
                    addr,
                    len,
                    device_writable: true,
                }],
                k,
            )?;
        }
        Ok(())
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
                self.host_restarted = self.config.role == Role::Remote;
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
        match (self.header, self.peer_epoch) {
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
            match (self.peer_epoch, now) {
                (Some(a), Some(b)) if a != b => return Err(self.fail(LinkError::PeerRestarted)),
                (None, Some(_)) => {
                    self.peer_epoch = now;
                    self.answered = true;
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
            if !self.answered && self.config.renotify_interval != 0 {
                self.polls += 1;
                if self.polls >= self.config.renotify_interval {
                    self.polls = 0;
                    self.stats.renotifies += 1;
                    self.doorbell.ring(0);
                }
            }
        }
        Ok(())
    }

    fn reclaim_tx(&mut self) -> Result<(), LinkError> {
        let Ends::Host { tx, .. } = &mut self.ends else {
            return Ok(());
        };
        // Each chain's descriptor goes back to the free list: its buffer is
        // free again.
        match tx.drain_used(|_| {}) {
            Ok(0) => Ok(()),
            Ok(_) => {
                self.answered = true;
                Ok(())
            }
            Err(e) => Err(self.fail(LinkError::Ring(e))),
        }
    }

    /// Opens a local endpoint at `addr`, or at the lowest free address from
    /// 1024 up (Linux's dynamic range) when `None`.
    pub fn create_endpoint(&mut self, addr: Option<u32>) -> Result<Endpoint, LinkError> {
        let taken =
            |a: u32, eps: &[Option<EndpointSlot>]| eps.iter().flatten().any(|s| s.addr == a);
        let addr = match addr {
            Some(a) => {
                if a == rpmsg::ADDR_ANY
                    || (self.config.name_service && a == rpmsg::NS_ADDR)
                    || taken(a, &self.endpoints)
                {
                    return Err(LinkError::Usage);
                }
                a
            }
            None => (rpmsg::RESERVED_ADDRESSES..)
                .take(E + 1)
                .find(|a| !taken(*a, &self.endpoints))
                .ok_or(LinkError::Usage)?,
        };
        let slot = self
            .endpoints
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(LinkError::Usage)?;
        *slot = Some(EndpointSlot {
            addr,
            announced: false,
        });
        Ok(Endpoint { addr })
    }

    /// Closes a local endpoint, withdrawing its name-service announcement.
    pub fn destroy_endpoint(&mut self, endpoint: Endpoint, name: &[u8]) -> Result<(), LinkError> {
        let slot = self
            .endpoints
            .iter_mut()
            .find(|s| s.is_some_and(|s| s.addr == endpoint.addr))
            .ok_or(LinkError::Usage)?;
        let announced = slot.is_some_and(|s| s.announced);
        *slot = None;
        if announced {
            self.send_ns(endpoint.addr, name, rpmsg::NS_DESTROY)?;
        }
        Ok(())
    }

    /// Announces `endpoint` under `name` (at most 31 bytes) to the peer's name
    /// service. Fails with `NotReady`/back-pressure like a send.
    pub fn announce(&mut self, endpoint: Endpoint, name: &[u8]) -> Result<(), LinkError> {
        if !self.config.name_service || name.len() >= rpmsg::NAME_SIZE {
            return Err(LinkError::Usage);
        }
        self.send_ns(endpoint.addr, name, rpmsg::NS_CREATE)?;
        if let Some(s) = self
            .endpoints
            .iter_mut()
            .flatten()
            .find(|s| s.addr == endpoint.addr)
        {
            s.announced = true;
        }
        Ok(())
    }

    fn send_ns(&mut self, addr: u32, name: &[u8], flags: u32) -> Result<(), LinkError> {
        let msg = rpmsg::ns_message(name, addr, flags);
        match self.send(addr, rpmsg::NS_ADDR, &msg)? {
            true => Ok(()),
            false => Err(LinkError::NotReady),
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
            if let Ends::Host { tx, .. } = &mut self.ends {
                if let Some(d) = tx.reserve() {
                    return self.host_tx_buffer(d).map(Some);
                }
            }
        }
        self.alloc_tx_slow()
    }

    /// The host's TX buffer bound to reserved descriptor `d`, lent.
    #[inline(always)]
    fn host_tx_buffer(&self, d: u16) -> Result<TxBuffer<'a>, LinkError> {
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
    fn alloc_tx_slow(&mut self) -> Result<Option<TxBuffer<'a>>, LinkError> {
        self.lend_tx()
    }

    /// `alloc_tx`, inlined into `send` and the zero-copy caller: returned
    /// through memory, the lent buffer's enum layout made the compiler copy
    /// it piecewise and reload it whole (a store-forwarding stall).
    #[inline(always)]
    fn lend_tx(&mut self) -> Result<Option<TxBuffer<'a>>, LinkError> {
        self.ready()?;
        let generation = self.generation;
        match self.config.role {
            Role::Host => {
                // Take sent buffers back only when none is free: reading the
                // remote's used index on every send would move its cache line
                // between the cores once per message.
                if matches!(&self.ends, Ends::Host { tx, .. } if tx.num_free() == 0) {
                    self.reclaim_tx()?;
                }
                let Ends::Host { tx, .. } = &mut self.ends else {
                    return Err(LinkError::NotReady);
                };
                let Some(d) = tx.reserve() else {
                    // Every buffer may be staged in an open batch: publish
                    // them, or the remote never sees them to give them back.
                    self.flush_if_batching()?;
                    return Ok(None);
                };
                self.host_tx_buffer(d).map(Some)
            }
            Role::Remote => {
                if let Ends::Remote { spare, .. } = &mut self.ends {
                    if let Some((buffer, chain)) = spare.take() {
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

    /// A remote's next TX buffer from vring 0, checked: device-writable, room
    /// for the header and a byte, inside the buffer pool.
    fn take_remote_tx(&mut self) -> Result<Option<(Span<'a>, Chain<0>)>, LinkError> {
        let hdr = rpmsg::HEADER_SIZE;
        let size = self.config.buffer_size;
        let (pool_start, pool_end) = (self.buffers, self.pool_end());
        let window = self.window;
        let Ends::Remote { tx, .. } = &mut self.ends else {
            return Err(LinkError::NotReady);
        };
        let (chain, b) = match tx.pop_first() {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(LinkError::Ring(e))),
        };
        if !b.device_writable
            || (b.len as usize) < hdr + 1
            || b.offset < pool_start
            || b.offset.saturating_add(b.len as usize) > pool_end
        {
            // Give it straight back, unused.
            let notify = tx.push_used(chain, 0).map_err(LinkError::Ring);
            if let Err(e) = notify {
                return Err(self.fail(e));
            }
            return Err(self.fail(LinkError::Message(MessageError::Buffer)));
        }
        let buffer = window.span(b.offset, (b.len as usize).min(size))?;
        Ok(Some((buffer, chain)))
    }

    /// A remote with nothing to receive takes its next TX buffer now, off the
    /// path of the reply it may send next. A buffer the host offered wrongly
    /// is given back, counted and reported as by [`Link::alloc_tx`] (from
    /// [`Link::receive`], then).
    fn prepare_spare_tx(&mut self) -> Result<(), LinkError> {
        if !matches!(&self.ends, Ends::Remote { spare: None, .. }) {
            return Ok(());
        }
        match self.take_remote_tx() {
            Ok(Some(taken)) => {
                if let Ends::Remote { spare, .. } = &mut self.ends {
                    *spare = Some(taken);
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
    fn send_buffer_slow(
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
    fn host_offer(
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
    fn offer_host(
        &mut self,
        at: usize,
        k: u16,
        addrs: [u32; 2],
        payload: Payload<'_>,
    ) -> Result<(), LinkError> {
        let w = &self.window;
        let batching = self.batching;
        let Ends::Host { tx, .. } = &mut self.ends else {
            return Err(LinkError::Usage);
        };
        let offered = Self::header_and_offer(w, tx, at, k, addrs, payload, batching);
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
    fn header_and_offer(
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
    fn commit(
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
            (Ends::Host { tx, .. }, TxSlot::Host(k)) => {
                let seg = Segment {
                    addr: w.bus_address_of(at),
                    len: total,
                    device_writable: false,
                };
                let staged = tx.offer_reserved(k.get(), seg, k.get());
                match staged {
                    Ok(_) if self.batching => Ok((false, 1)),
                    Ok(_) => tx.publish().map(|n| (n, 1)),
                    Err(e) => Err(e),
                }
            }
            (Ends::Remote { tx, .. }, TxSlot::Remote(chain)) if self.batching => {
                tx.stage_used(chain, total).map(|()| (false, 0))
            }
            (Ends::Remote { tx, .. }, TxSlot::Remote(chain)) => {
                tx.push_used(chain, total).map(|n| (n, 0))
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
            (Ends::Host { tx, .. }, TxSlot::Host(d)) => {
                tx.unreserve(d.get()).map_err(|_| LinkError::Usage)
            }
            (Ends::Remote { tx, .. }, TxSlot::Remote(chain)) => match tx.push_used(chain, 0) {
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
        if matches!(&self.ends, Ends::Host { tx, .. } if tx.num_free() < max) {
            self.reclaim_tx()?;
        }
        let size = self.config.buffer_size;
        let pool_at = self.tx_buffer_offset(0);
        let pool = self
            .window
            .span(pool_at, usize::from(self.queue_size) * size)?;
        let (w, generation) = (self.window, self.generation);
        let Ends::Host { tx, .. } = &mut self.ends else {
            return Err(LinkError::NotReady);
        };
        let (mut misuse, mut swapped) = (None, None);
        let sent = tx.offer_each(max, |d| {
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
    fn send_each(
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
    fn send_from_free(
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
        let Ends::Host { tx, .. } = &self.ends else {
            return None;
        };
        let at = self.tx_buffer_offset(tx.peek_free()?);
        if !at.is_multiple_of(8) {
            return None;
        }
        let Ends::Host { tx, .. } = &mut self.ends else {
            return None;
        };
        let k = tx.reserve()?;
        Some(
            self.offer_host(at, k, [src, dst], Payload::Copy(data))
                .map(|()| true),
        )
    }

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
    fn classify(&mut self, offset: usize, room: u32) -> Result<Delivery<'a>, LinkError> {
        let w = &self.window;
        w.invalidate(offset, room as usize);
        let (src, dst, len) = Self::read_header(w, offset)?;
        let room = room.min(self.config.buffer_size as u32) - rpmsg::HEADER_SIZE as u32;
        if u32::from(len) > room {
            return Err(LinkError::Message(MessageError::Length { len, room }));
        }
        if src == rpmsg::ADDR_ANY || dst == rpmsg::ADDR_ANY {
            return Err(LinkError::Message(MessageError::Address { src, dst }));
        }
        let payload = w.span(offset + rpmsg::HEADER_SIZE, len.into())?;
        if self.config.name_service && dst == rpmsg::NS_ADDR {
            return Self::parse_ns(&payload)
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
    fn ready_to_receive(&mut self) -> Result<(), LinkError> {
        self.ready()?;
        if self.config.role == Role::Host && !self.answered && self.config.renotify_interval != 0 {
            self.poll()?;
        }
        Ok(())
    }

    /// (src, dst, len) of the rpmsg header at `offset`: two 64-bit loads
    /// when it is 8-byte aligned (every buffer a sane peer offers), else a
    /// byte copy (any alignment a hostile one gives).
    #[inline(always)]
    fn read_header(w: &Window<'_>, offset: usize) -> Result<(u32, u32, u16), LinkError> {
        const { assert!(header::SRC == 0 && header::DST == 4 && header::LEN == 12) };
        if offset.is_multiple_of(8) {
            let a = w.read_u64(offset)?;
            let b = w.read_u64(offset + 8)?;
            return Ok((a as u32, (a >> 32) as u32, (b >> 32) as u16));
        }
        let mut h = [0u8; rpmsg::HEADER_SIZE];
        w.read_bytes(offset, &mut h)?;
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let len = u16::from_le_bytes([h[header::LEN], h[header::LEN + 1]]);
        Ok((word(header::SRC), word(header::DST), len))
    }

    fn parse_ns(payload: &Span<'_>) -> Option<ServiceEvent> {
        if payload.len() != rpmsg::NS_MESSAGE_SIZE {
            return None;
        }
        let mut m = [0u8; rpmsg::NS_MESSAGE_SIZE];
        payload.read_bytes(0, &mut m).ok()?;
        let mut name = [0u8; rpmsg::NAME_SIZE];
        name.copy_from_slice(&m[ns::NAME..ns::NAME + rpmsg::NAME_SIZE]);
        name[rpmsg::NAME_SIZE - 1] = 0; // as Linux does
        let addr = u32::from_le_bytes([
            m[ns::ADDR],
            m[ns::ADDR + 1],
            m[ns::ADDR + 2],
            m[ns::ADDR + 3],
        ]);
        let flags = u32::from_le_bytes([
            m[ns::FLAGS],
            m[ns::FLAGS + 1],
            m[ns::FLAGS + 2],
            m[ns::FLAGS + 3],
        ]);
        if addr == rpmsg::ADDR_ANY || flags > rpmsg::NS_DESTROY {
            return None;
        }
        Some(ServiceEvent {
            name,
            addr,
            created: flags == rpmsg::NS_CREATE,
        })
    }

    /// The next filled RX buffer: (window offset, bytes valid, slot). Inlined
    /// into `receive` so the result stays in registers; each outcome is
    /// handled where it is found (no intermediate result to build and match).
    #[inline(always)]
    fn next_rx(&mut self) -> Result<Option<(usize, u32, RxSlot)>, LinkError> {
        let hdr = rpmsg::HEADER_SIZE as u32;
        let (pool_start, pool_end) = (self.buffers, self.pool_end());
        let (buffers, size) = (self.buffers, self.config.buffer_size);
        let queue_size = self.queue_size;
        let (slot, e) = match &mut self.ends {
            Ends::Remote { rx, .. } => match rx.pop_first() {
                // A host pointing us at its rings, our header or the resource
                // table is refused even though that memory is in the window.
                Ok(Some((chain, b)))
                    if b.len >= hdr
                        && b.offset >= pool_start
                        && b.offset.saturating_add(b.len as usize) <= pool_end =>
                {
                    return Ok(Some((b.offset, b.len, RxSlot::Remote(chain))));
                }
                Ok(Some((chain, _))) => (RxSlot::Remote(chain), MessageError::Buffer),
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(LinkError::Ring(e))),
            },
            Ends::Host { rx, .. } => match rx.pop_used() {
                Ok(Some(u)) => {
                    self.answered = true;
                    // Our own token: a buffer index below the queue size.
                    let k = u.token.min(queue_size - 1);
                    if u.len >= hdr {
                        let offset = buffers + usize::from(k) * size;
                        return Ok(Some((offset, u.len, RxSlot::Host(Index::new(k)))));
                    }
                    (RxSlot::Host(Index::new(k)), MessageError::Buffer)
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(LinkError::Ring(e))),
            },
            Ends::Down => return Ok(None),
        };
        self.recycle(slot)?;
        Err(self.fail(LinkError::Message(e)))
    }

    /// Gives a received buffer back: staged ([`Link::stage_release`]),
    /// then published at once unless a batch is open.
    fn recycle(&mut self, slot: RxSlot) -> Result<(), LinkError> {
        self.stage_release(slot)?;
        // Outside a batch nothing else is staged: the TX ring's publish in
        // `flush` finds nothing and stores nothing.
        if self.batching {
            Ok(())
        } else {
            self.flush()
        }
    }

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
    fn flush_if_batching(&mut self) -> Result<(), LinkError> {
        if self.batching {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Publishes what is staged on this side's two rings and rings the
    /// doorbell for each ring whose peer asked for it.
    fn flush(&mut self) -> Result<(), LinkError> {
        let published = match &mut self.ends {
            Ends::Host { rx, tx, .. } => {
                tx.publish().and_then(|t| Ok([(t, 1), (rx.publish()?, 0)]))
            }
            Ends::Remote { tx, rx, .. } => tx
                .publish_used()
                .and_then(|t| Ok([(t, 0), (rx.publish_used()?, 1)])),
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
    fn dispatch_staged(
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

    /// Gives a received buffer back to its ring without publishing it. A
    /// remote reports the length of the host's buffer it only read as the
    /// used length, not 0: OpenAMP's host takes that length as the size of
    /// the TX buffer it gets back (Linux and rpmsg-lite ignore it).
    #[inline(always)]
    fn stage_release(&mut self, slot: RxSlot) -> Result<(), LinkError> {
        let staged = match slot {
            RxSlot::Host(k) => return self.post_rx(k.get()),
            RxSlot::Remote(chain) => match &mut self.ends {
                Ends::Remote { rx, .. } => {
                    let read = chain.readable_len();
                    rx.stage_used(chain, read)
                }
                _ => Ok(()),
            },
        };
        staged.map_err(|e| self.fail(LinkError::Ring(e)))
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
        self.kicked = false;
        match self.config.role {
            Role::Host => {
                self.peer_epoch = None;
                match self.try_bring_up() {
                    Ok(()) | Err(LinkError::NotReady) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Role::Remote => {
                match self.header {
                    // The host restarted: attach to its new rings.
                    Some(_) if self.host_restarted => self.stale_driver_epoch = self.peer_epoch,
                    // We found the fault: ask the host to reset the rings.
                    Some(h) => {
                        self.stale_driver_epoch = h.peer_epoch(Side::Device)?;
                        h.announce(Side::Device)?;
                    }
                    // No epochs: wait for the host to set DRIVER_OK again.
                    None => self.publish_table()?,
                }
                self.host_restarted = false;
                self.peer_epoch = None;
                Ok(())
            }
        }
    }
}
