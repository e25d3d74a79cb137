//! Where a link stands beyond its rings: its phase, and what it knows of
//! its peer's progress.

/// A link's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// The peer is not ready yet (or the link was reset): every call first
    /// tries to bring the link up.
    Waiting,
    /// Both sides are up; the rings are attached.
    Up,
    /// The peer broke the protocol or restarted: every call fails with
    /// `Broken` until `Link::reset`.
    Broken,
}

/// What one side knows of its peer, beyond the rings: each flag with the
/// role it serves, what sets it and what clears it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Progress {
    /// The peer's epoch in our window header when the link came up (both
    /// sides ours). A different epoch later is a restart. Taken at bring-up
    /// (or when the peer first announces one), cleared by a reset.
    pub(super) peer_epoch: Option<u32>,
    /// Remote: a host epoch whose rings must not be attached to (rings from
    /// before this remote restarted, or rings it found faulty and asked the
    /// host to reset). Set when the link is made and by a reset.
    pub(super) stale_driver_epoch: Option<u32>,
    /// Remote: the link broke because the host restarted, so its new rings
    /// can be attached at once. Set by the failure, cleared by the reset.
    pub(super) host_restarted: bool,
    /// Host: the remote has shown it is alive (it used a buffer or announced
    /// an epoch). Until then, vring 0 is re-kicked every
    /// `renotify_interval` calls. Cleared when the rings are brought up.
    pub(super) answered: bool,
    /// Host: calls to poll or receive since the last re-kick.
    pub(super) polls: u32,
    /// Remote: the host rang vring 0, the only "host ready" an rpmsg-lite
    /// master gives. Set by `Link::doorbell_rang`, cleared by a reset.
    pub(super) kicked: bool,
}
