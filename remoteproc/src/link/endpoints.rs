//! Local endpoints and the name-service announcements of them.

use super::{Link, LinkError};
use crate::rpmsg;
use shmem::Doorbell;

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
pub(super) struct EndpointSlot {
    pub(super) addr: u32,
    pub(super) announced: bool,
}

impl<'a, D: Doorbell, const N: usize, const E: usize> Link<'a, D, N, E> {
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

    pub(super) fn send_ns(&mut self, addr: u32, name: &[u8], flags: u32) -> Result<(), LinkError> {
        let msg = rpmsg::ns_message(name, addr, flags);
        match self.send(addr, rpmsg::NS_ADDR, &msg)? {
            true => Ok(()),
            false => Err(LinkError::NotReady),
        }
    }
}
