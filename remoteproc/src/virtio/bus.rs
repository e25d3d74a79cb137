//! The device side of a virtio-msg bus: a partition's devices on one link,
//! numbered from 0, each message routed to its device by `dev_num`, and the
//! bus messages (GET_DEVICES, PING) answered here. What carries the
//! messages (one rpmsg endpoint, announced as [`SERVICE`]) is the caller's.

use super::device::{DeviceModel, Reply, VirtioDevice};
use crate::virtio_msg::{
    decode, device_state, encode, encode_response, Bus, Message, Transport, MAX_CONFIG_DATA,
};

/// The rpmsg service a device side announces its bus under.
pub const SERVICE: &[u8] = b"virtio-msg";
/// Its endpoint address (beside the AVPS services' 0x400-0x402).
pub const EP: u32 = 0x410;

/// A device on a bus, whatever its model.
pub trait BusDevice {
    /// Answers a transport message (see [`VirtioDevice::handle`]).
    fn handle<'c>(
        &mut self,
        message: &Transport<'_>,
        config: &'c mut [u8; MAX_CONFIG_DATA],
        features: &'c mut [u8; 8],
    ) -> Reply<'c>;
    /// Serves queues with buffers waiting; whether any chain was used.
    fn poll(&mut self) -> bool;
    /// Back to reset state: the driver is gone (its link was reset).
    fn reset(&mut self);
}

impl<M: DeviceModel> BusDevice for VirtioDevice<'_, M> {
    fn handle<'c>(
        &mut self,
        message: &Transport<'_>,
        config: &'c mut [u8; MAX_CONFIG_DATA],
        features: &'c mut [u8; 8],
    ) -> Reply<'c> {
        VirtioDevice::handle(self, message, config, features)
    }
    fn poll(&mut self) -> bool {
        VirtioDevice::poll(self)
    }
    fn reset(&mut self) {
        VirtioDevice::reset(self)
    }
}

/// A bus's devices: slots, some empty. Devices are numbered from 0 in slot
/// order over the present ones only, so both ends derive a device's number
/// from the same list of kinds.
pub type Slots<'a, 'd> = [Option<&'a mut (dyn BusDevice + 'd)>];

/// The device numbered `dev_num` among the present slots.
fn numbered<'s, 'a, 'd>(
    devices: &'s mut Slots<'a, 'd>,
    dev_num: u16,
) -> Option<&'s mut (dyn BusDevice + 'd)> {
    devices
        .iter_mut()
        .filter_map(|d| d.as_deref_mut())
        .nth(usize::from(dev_num))
}

/// What one received message led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// Send these bytes (of `out`) back: an answer the driver waits for.
    Reply(usize),
    /// Send these bytes (of `out`) back if there is room: an event
    /// (EVENT_USED), which a driver that polls its rings does not need.
    /// Never wait for room for one: the driver may not read its link until
    /// the device has served its next kick.
    Event(usize),
    /// Nothing to send.
    Nothing,
    /// Not a message of this bus (undecodable, or for no device): counted
    /// by the caller, dropped.
    Refused,
}

/// Serves one received message `bytes` for `devices` (numbered over the
/// present slots), writing what to send back into `out`.
pub fn serve(devices: &mut Slots<'_, '_>, bytes: &[u8], out: &mut [u8]) -> Served {
    let Ok((header, message)) = decode(bytes) else {
        return Served::Refused;
    };
    let present = devices.iter().filter(|d| d.is_some()).count();
    let encoded = match message {
        Message::Bus(b) => {
            if header.is_response() {
                return Served::Nothing;
            }
            let mut bitmap = [0u8; 8];
            let answer = match b {
                Bus::Ping(data) => Bus::Ping(data),
                Bus::GetDevices { offset, count } => {
                    let count = count.min(64);
                    for n in 0..count {
                        let dev = usize::from(offset) + usize::from(n);
                        if dev < present {
                            bitmap[usize::from(n / 8)] |= 1 << (n % 8);
                        }
                    }
                    // Where the next present device after these is, 0 if none.
                    let end = usize::from(offset) + usize::from(count);
                    let next = if end < present { end as u16 } else { 0 };
                    Bus::Devices {
                        offset,
                        next,
                        count,
                        bitmap: &bitmap[..usize::from(count).div_ceil(8)],
                    }
                }
                _ => return Served::Nothing,
            };
            encode_response(&Message::Bus(answer), &header, out)
        }
        Message::Transport(t) => {
            let Some(device) = numbered(devices, header.dev_num) else {
                return Served::Refused;
            };
            let (mut config, mut features) = ([0u8; MAX_CONFIG_DATA], [0u8; 8]);
            match device.handle(&t, &mut config, &mut features) {
                Reply::Answer(a) => encode_response(&a, &header, out),
                Reply::Event(e) => {
                    return match encode(&e, header.dev_num, 0, out) {
                        Ok(n) => Served::Event(n),
                        Err(_) => Served::Refused,
                    }
                }
                Reply::Nothing => return Served::Nothing,
            }
        }
    };
    match encoded {
        Ok(n) => Served::Reply(n),
        Err(_) => Served::Refused,
    }
}

/// The EVENT_DEVICE message announcing device `dev_num` as added (or
/// removed), into `out`; its length.
pub fn device_event(dev_num: u16, added: bool, out: &mut [u8]) -> Option<usize> {
    let state = if added {
        device_state::ADDED
    } else {
        device_state::REMOVED
    };
    encode(
        &Message::Bus(Bus::EventDevice { dev_num, state }),
        0,
        0,
        out,
    )
    .ok()
}
