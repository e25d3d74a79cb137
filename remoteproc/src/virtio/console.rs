//! The console device (virtio 1.x §5.3), one port: the driver's output
//! arrives on the transmit queue (1) and goes to a [`ConsolePort`]; the
//! port's input is written into the buffers the driver posts on the receive
//! queue (0), as they come.

use super::chain::ChainIo;
use super::device::{serve_each, DeviceModel, ModelError};
use super::device_id;
use shmem::{DeviceQueue, Window};

/// Queue indexes.
pub mod queue {
    /// Device to driver.
    pub const RECEIVE: u16 = 0;
    /// Driver to device.
    pub const TRANSMIT: u16 = 1;
}

/// Where a console's bytes go and come from.
pub trait ConsolePort {
    /// The driver wrote `bytes`.
    fn output(&mut self, bytes: &[u8]);
    /// Bytes for the driver, into `out`; how many (0: none now).
    fn input(&mut self, out: &mut [u8]) -> usize;
}

/// Input taken from the port but not yet in a driver's buffer.
const PENDING: usize = 256;

/// A console device.
#[derive(Debug)]
pub struct Console<P> {
    port: P,
    pending: [u8; PENDING],
    pending_len: usize,
    /// Bytes from the driver, and to it.
    pub bytes_out: u64,
    /// Bytes written into the driver's buffers.
    pub bytes_in: u64,
}

impl<P: ConsolePort> Console<P> {
    /// A console on `port`.
    pub fn new(port: P) -> Self {
        Self {
            port,
            pending: [0; PENDING],
            pending_len: 0,
            bytes_out: 0,
            bytes_in: 0,
        }
    }

    /// The port.
    pub fn port(&self) -> &P {
        &self.port
    }

    /// The port, mutably.
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Input bytes taken from the port that no driver buffer holds yet
    /// (they wait here, across a reset, for the next driver).
    pub fn undelivered(&self) -> usize {
        self.pending_len
    }
}

impl<P: ConsolePort> DeviceModel for Console<P> {
    fn device_id(&self) -> u32 {
        device_id::CONSOLE
    }

    fn features(&self) -> u64 {
        0
    }

    fn queues(&self) -> u16 {
        2
    }

    fn config_size(&self) -> u32 {
        // cols, rows (le16), max_nr_ports, emerg_wr (le32): all zero.
        12
    }

    fn serve(
        &mut self,
        index: u16,
        queue: &mut DeviceQueue<'_>,
        window: &Window<'_>,
    ) -> Result<bool, ModelError> {
        let mut used = false;
        match index {
            queue::TRANSMIT => {
                used = serve_each(queue, |chain| {
                    let mut io = ChainIo::new(window, chain);
                    let mut chunk = [0u8; 64];
                    while io.readable_left() > 0 {
                        let n = io.readable_left().min(chunk.len());
                        io.read(&mut chunk[..n])?;
                        self.port.output(&chunk[..n]);
                        self.bytes_out += n as u64;
                    }
                    Ok(0)
                })?;
            }
            _ => {
                // A receive buffer is filled only when there is input: the
                // bytes are taken from the port first and wait here for one.
                for _ in 0..queue.layout().size {
                    if self.pending_len == 0 {
                        self.pending_len = self.port.input(&mut self.pending);
                    }
                    if self.pending_len == 0 || !queue.has_available()? {
                        break;
                    }
                    let Some(chain) = queue.pop_available()? else {
                        break;
                    };
                    let written = {
                        let mut io = ChainIo::new(window, &chain);
                        let n = self.pending_len.min(io.writable_left());
                        io.write(&self.pending[..n])?;
                        self.pending.copy_within(n..self.pending_len, 0);
                        self.pending_len -= n;
                        self.bytes_in += n as u64;
                        n as u32
                    };
                    queue.push_used(chain, written)?;
                    used = true;
                }
            }
        }
        Ok(used)
    }
}
