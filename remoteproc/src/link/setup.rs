//! Bringing a link up: the geometry checked against the window, the
//! resource table written (remote) or read and accepted (host), the rings
//! attached.

use super::ends::{Ends, HostEnd, Pool, RemoteEnd};
use super::{Link, LinkError, Placement, Role, State};
use crate::resource_table::{self, status, RpmsgDevice, TableError, TableSpec};
use crate::rpmsg;
use shmem::header::Side;
use shmem::virtqueue::{Notification, RingLayout, F_EVENT_IDX};
use shmem::{DeviceQueue, Doorbell, DriverQueue};

impl<'a, D: Doorbell, const N: usize, const E: usize> Link<'a, D, N, E> {
    pub(super) fn check_geometry(&self, queue_size: u16) -> Result<(), LinkError> {
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

    pub(super) fn publish_table(&mut self) -> Result<(), LinkError> {
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

    pub(super) fn layouts(
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
        let span = |l: &RingLayout| (l.desc, l.used + RingLayout::used_bytes(l.size));
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

    /// Where the buffer pool lies.
    pub(super) fn pool(&self) -> Pool {
        Pool {
            start: self.buffers,
            end: self.pool_end(),
            size: self.config.buffer_size,
        }
    }

    pub(super) fn pool_end(&self) -> usize {
        self.buffers + 2 * usize::from(self.queue_size) * self.config.buffer_size
    }

    pub(super) fn buffer_offset(&self, index: u16) -> usize {
        self.buffers + usize::from(index) * self.config.buffer_size
    }

    /// Where a host's TX buffer bound to descriptor `d` lies (after the
    /// `queue_size` RX buffers).
    #[inline(always)]
    pub(super) fn tx_buffer_offset(&self, d: u16) -> usize {
        // No overflow: `d` < queue size, a power of two up to 32768.
        self.buffer_offset(self.queue_size + d)
    }

    pub(super) fn try_bring_up(&mut self) -> Result<(), LinkError> {
        match self.config.role {
            Role::Host => self.bring_up_host(),
            Role::Remote => self.bring_up_remote(),
        }
    }

    pub(super) fn bring_up_host(&mut self) -> Result<(), LinkError> {
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
        self.ends = Ends::Host(HostEnd { rx, tx });
        // Post every RX buffer on vring 0, device-writable.
        for k in 0..queue_size {
            self.post_rx(k)?;
        }
        if let Ends::Host(host) = &mut self.ends {
            host.rx.publish()?;
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
            self.progress.peer_epoch = h.peer_epoch(Side::Driver)?;
        }
        self.progress.answered = false;
        self.progress.polls = 0;
        self.state = State::Up;
        // "Host online": the one kick an rpmsg-lite remote waits for; repeated
        // by `poll` until the remote answers.
        self.doorbell.ring(0);
        Ok(())
    }

    pub(super) fn bring_up_remote(&mut self) -> Result<(), LinkError> {
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
                if driver.is_none() || driver == self.progress.stale_driver_epoch {
                    return Err(LinkError::NotReady);
                }
                self.progress.peer_epoch = driver;
            }
            None if self.vdev_entry.is_none() => {
                // rpmsg-lite: up on the host's kick, or (polling) once the host
                // has posted its RX buffers on vring 0.
                self.window.invalidate(layouts[0].avail + 2, 2);
                if !self.progress.kicked && self.window.read_u16(layouts[0].avail + 2)? == 0 {
                    return Err(LinkError::NotReady);
                }
            }
            None => {}
        }
        let tx = DeviceQueue::attach(self.window, layouts[0], notification)?;
        let rx = DeviceQueue::attach(self.window, layouts[1], notification)?;
        self.ends = Ends::Remote(RemoteEnd {
            tx,
            rx,
            spare: None,
        });
        self.state = State::Up;
        Ok(())
    }

    pub(super) fn post_rx(&mut self, k: u16) -> Result<(), LinkError> {
        let addr = self.window.bus_address_of(self.buffer_offset(k));
        let len = self.config.buffer_size as u32;
        if let Ends::Host(host) = &mut self.ends {
            host.post_rx(addr, len, k)?;
        }
        Ok(())
    }
}
