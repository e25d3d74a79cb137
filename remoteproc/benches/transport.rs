//! The transport against the physical limits of this machine, measured side by
//! side in one run on two pinned cores (threads standing in for partitions,
//! a heap region for the shared window):
//!
//! (a) raw cache-line ping-pong round trip: the latency floor;
//! (b) rpmsg round trip with 16-byte payloads;
//! (c) a raw single-producer single-consumer ring of 496-byte slots, copy in and
//!     copy out: the throughput ceiling of any shared-memory transport;
//! (d) rpmsg throughput with 496-byte payloads, copying (`send` / `copy_to`,
//!     through private arrays on both sides, as (c) does) and zero-copy (the
//!     payload produced word by word in each lent TX buffer of a
//!     `Link::send_burst` with `write_words_with`, and each word used in
//!     place in the RX buffer with `words`: no staging copy on either side).
//!     The sender streams in batches of 32 (`Link::batch` when copying, one
//!     `Link::send_burst` when not), the receiver takes everything pending
//!     per `Link::dispatch` call; each publishes its ring updates once per
//!     batch (the receiver every eighth of the ring). A side that finds
//!     nothing to do waits with one spin-loop hint before it polls again, as
//!     both sides of (c) do.
//!
//! Reports b/a and d/c, each taken within one round of the five measurements
//! (the median over rounds, with the spread). Each clock starts once both
//! threads are pinned and have met at a barrier. Run with
//! `cargo xtask bench transport`, which builds with functions and loops
//! 64-byte aligned: a plain `cargo bench -p remoteproc --bench transport`
//! works too, but there where the linker puts the copy loops can move (c) by
//! a third between builds. `AMP_BENCH_SCALE` (default 1) multiplies the
//! iteration counts.
//!
//! The baselines (a) and (c), pinning and the report live in
//! `shared/baseline.rs`, our (b) and (d) in `shared/ours.rs`; rpmsg-lite-sys's
//! transport bench includes both and measures rpmsg-lite in the same rounds,
//! beside ours (`cargo xtask bench transport` runs both benches).

#[path = "shared/baseline.rs"]
mod baseline;
#[path = "shared/ours.rs"]
mod ours;

fn main() {
    if !baseline::two_cores("transport") {
        return;
    }
    baseline::run(&[baseline::Transport {
        name: "rpmsg",
        round_trip: &ours::rpmsg_round_trip,
        throughput: &ours::rpmsg_throughput,
    }]);
}
