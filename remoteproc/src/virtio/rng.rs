//! The entropy device (virtio 1.x §5.4): one request queue; each chain the
//! driver offers is a writable buffer the device fills with random bytes.

use super::device::{serve_each, DeviceModel, ModelError};
use super::device_id;
use shmem::{DeviceQueue, Window};

/// Where the device's bytes come from.
pub trait Entropy {
    /// Fills `out` with random bytes; returns how many it could (0: none
    /// now, the request waits).
    fn fill(&mut self, out: &mut [u8]) -> usize;
}

/// An entropy device.
#[derive(Debug)]
pub struct Rng<E> {
    source: E,
    /// Bytes given to the driver.
    pub given: u64,
}

impl<E: Entropy> Rng<E> {
    /// A device serving bytes from `source`.
    pub fn new(source: E) -> Self {
        Self { source, given: 0 }
    }
}

impl<E: Entropy> DeviceModel for Rng<E> {
    fn device_id(&self) -> u32 {
        device_id::RNG
    }

    fn features(&self) -> u64 {
        0
    }

    fn queues(&self) -> u16 {
        1
    }

    fn serve(
        &mut self,
        _index: u16,
        queue: &mut DeviceQueue<'_>,
        window: &Window<'_>,
    ) -> Result<bool, ModelError> {
        serve_each(queue, |chain| {
            let mut written = 0u32;
            let mut chunk = [0u8; 64];
            for b in chain.buffers().iter().filter(|b| b.device_writable) {
                let mut done = 0usize;
                while done < b.len as usize {
                    let n = (b.len as usize - done).min(chunk.len());
                    let got = self.source.fill(&mut chunk[..n]);
                    if got == 0 {
                        break;
                    }
                    window.write_bytes(b.offset + done, &chunk[..got])?;
                    window.clean(b.offset + done, got);
                    done += got;
                }
                written += done as u32;
            }
            self.given += u64::from(written);
            Ok(written)
        })
    }
}
