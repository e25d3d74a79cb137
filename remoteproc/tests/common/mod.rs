//! Shared set-up for the link tests: a heap region standing in for the shared
//! window, the two standard configurations, and a doorbell that records rings.
#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use remoteproc::{Incoming, Link, LinkConfig, Placement, Role};
use shmem::doorbell::Doorbell;
use shmem::window::Word;
use shmem::Window;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Bus address of the simulated window.
pub(crate) const BUS: u64 = 0x7000_0000;
/// Window size for the standard layouts.
pub(crate) const WINDOW: usize = 0x60000;
/// Where our window header lives in the standard layouts.
pub(crate) const HEADER: usize = 0x5_8000;

pub(crate) fn region(bytes: usize) -> Vec<Word> {
    (0..bytes / 8).map(|_| Word::new(0)).collect()
}

/// Linux/OpenAMP style: table at 0, vrings at 0x1000 / 0x4000, buffers at 0x8000.
pub(crate) fn table_config(role: Role, queue: u16) -> LinkConfig {
    LinkConfig::resource_table(role, 0, [0x1000, 0x4000], 0x8000, queue)
}

/// rpmsg-lite static layout at the window base.
pub(crate) fn lite_config(role: Role, queue: u16) -> LinkConfig {
    LinkConfig::rpmsg_lite(role, 0, queue)
}

/// Both sides ours: table layout plus the epoch header.
pub(crate) fn ours(role: Role, queue: u16) -> LinkConfig {
    let mut c = table_config(role, queue);
    c.header = Some(HEADER);
    c.renotify_interval = 0;
    c
}

pub(crate) fn table_of(c: &LinkConfig) -> usize {
    match c.placement {
        Placement::ResourceTable { table, .. } => table,
        Placement::Static { .. } => unreachable!(),
    }
}

/// Counts rings per queue; clones share the counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bell(pub Arc<[AtomicU32; 2]>);

impl Bell {
    pub(crate) fn count(&self, queue: usize) -> u32 {
        self.0[queue].load(Ordering::Relaxed)
    }
}

impl Doorbell for Bell {
    fn ring(&mut self, queue: u16) {
        self.0[usize::from(queue & 1)].fetch_add(1, Ordering::Relaxed);
    }
}

/// The link type the single-thread tests use.
pub(crate) type L<'a> = Link<'a, Bell, 16, 4>;

pub(crate) fn up<'a>(
    w: Window<'a>,
    host: LinkConfig,
    remote: LinkConfig,
) -> (L<'a>, L<'a>, Bell, Bell) {
    let (hb, rb) = (Bell::default(), Bell::default());
    let mut r = L::new(w, remote, rb.clone()).unwrap();
    let mut h = L::new(w, host, hb.clone()).unwrap();
    h.poll().unwrap();
    r.poll().unwrap();
    assert!(h.is_up() && r.is_up());
    (h, r, hb, rb)
}

pub(crate) fn expect_message(link: &mut L<'_>) -> (u32, u32, Vec<u8>) {
    match link.receive().unwrap() {
        Some(Incoming::Message(m)) => {
            let mut v = vec![0; m.len()];
            m.read(0, &mut v).unwrap();
            let out = (m.src(), m.dst(), v);
            link.release(m).unwrap();
            out
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

/// One endpoint on each side, at the first dynamic addresses: (host's, remote's).
pub(crate) fn endpoints(h: &mut L<'_>, r: &mut L<'_>) -> (u32, u32) {
    (
        h.create_endpoint(None).unwrap().addr(),
        r.create_endpoint(None).unwrap().addr(),
    )
}

pub(crate) fn configs() -> Vec<(&'static str, LinkConfig, LinkConfig)> {
    vec![
        (
            "resource table",
            table_config(Role::Host, 16),
            table_config(Role::Remote, 16),
        ),
        (
            "rpmsg-lite static",
            lite_config(Role::Host, 16),
            lite_config(Role::Remote, 16),
        ),
        (
            "ours with epochs",
            ours(Role::Host, 16),
            ours(Role::Remote, 16),
        ),
    ]
}
