//! Shared set-up for the link tests: a heap region standing in for the shared
//! window, the two standard configurations, and a doorbell that records rings.
#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use remoteproc::{LinkConfig, Placement, Role};
use shmem::doorbell::Doorbell;
use shmem::window::Word;
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
