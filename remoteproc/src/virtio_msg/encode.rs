//! Encoding: the header and each message's fields, the size written last.

use super::*;

/// A message being written into an output buffer.
struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let end = self.at.checked_add(bytes.len()).ok_or(CodecError::Room)?;
        self.out
            .get_mut(self.at..end)
            .ok_or(CodecError::Room)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
    fn u16(&mut self, v: u16) -> Result<(), CodecError> {
        self.put(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<(), CodecError> {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), CodecError> {
        self.put(&v.to_le_bytes())
    }
    fn len32(&mut self, n: usize) -> Result<(), CodecError> {
        self.u32(u32::try_from(n).map_err(|_| CodecError::Room)?)
    }
    fn config(&mut self, c: &Config<'_>) -> Result<(), CodecError> {
        self.u32(c.generation)?;
        self.u32(c.offset)?;
        self.len32(c.data.len())?;
        self.put(c.data)
    }
    fn vqueue(&mut self, q: &Vqueue, set: bool) -> Result<(), CodecError> {
        self.u32(q.index)?;
        if set {
            self.u32(q.flags)?;
            self.u32(q.size)?;
            self.u32(0)?;
        } else {
            self.u32(q.max_size)?;
            self.u32(q.size)?;
            self.u32(q.flags)?;
        }
        self.u64(q.descriptors)?;
        self.u64(q.driver)?;
        self.u64(q.device)
    }
}

/// The `type` and `msg_id` a message is sent with.
fn kind_and_id(m: &Message<'_>) -> (u8, u8) {
    use Transport as T;
    let (bus, response, id) = match m {
        Message::Bus(b) => match b {
            Bus::GetDevices { .. } => (true, false, bus_id::GET_DEVICES),
            Bus::Devices { .. } => (true, true, bus_id::GET_DEVICES),
            // A ping is encoded as a request; `encode_response` answers one.
            Bus::Ping(_) => (true, false, bus_id::PING),
            Bus::EventDevice { .. } => (true, false, bus_id::EVENT_DEVICE),
        },
        Message::Transport(t) => match t {
            T::GetDeviceInfo => (false, false, id::GET_DEVICE_INFO),
            T::DeviceInfo(_) => (false, true, id::GET_DEVICE_INFO),
            T::GetDeviceFeatures { .. } => (false, false, id::GET_DEVICE_FEATURES),
            T::DeviceFeatures { .. } => (false, true, id::GET_DEVICE_FEATURES),
            T::SetDriverFeatures { .. } => (false, false, id::SET_DRIVER_FEATURES),
            T::DriverFeaturesSet => (false, true, id::SET_DRIVER_FEATURES),
            T::GetConfig { .. } => (false, false, id::GET_CONFIG),
            T::ConfigRead(_) => (false, true, id::GET_CONFIG),
            T::SetConfig(_) => (false, false, id::SET_CONFIG),
            T::ConfigWritten(_) => (false, true, id::SET_CONFIG),
            T::GetDeviceStatus => (false, false, id::GET_DEVICE_STATUS),
            T::SetDeviceStatus(_) => (false, false, id::SET_DEVICE_STATUS),
            // Answers either status request; the caller's request id is
            // used by `encode_response`.
            T::DeviceStatus(_) => (false, true, id::GET_DEVICE_STATUS),
            T::GetVqueue(_) => (false, false, id::GET_VQUEUE),
            T::VqueueState(_) => (false, true, id::GET_VQUEUE),
            T::SetVqueue(_) => (false, false, id::SET_VQUEUE),
            T::VqueueSet => (false, true, id::SET_VQUEUE),
            T::ResetVqueue(_) => (false, false, id::RESET_VQUEUE),
            T::VqueueReset => (false, true, id::RESET_VQUEUE),
            T::GetShm(_) => (false, false, id::GET_SHM),
            T::Shm { .. } => (false, true, id::GET_SHM),
            T::EventConfig { .. } => (false, false, id::EVENT_CONFIG),
            T::EventAvail { .. } => (false, false, id::EVENT_AVAIL),
            T::EventUsed { .. } => (false, false, id::EVENT_USED),
        },
    };
    let mut kind = 0;
    if bus {
        kind |= kind::BUS;
    }
    if response {
        kind |= kind::RESPONSE;
    }
    (kind, id)
}

/// Encodes `message` for device `dev_num` with `token` into `out`; returns
/// the message's size.
pub fn encode(
    message: &Message<'_>,
    dev_num: u16,
    token: u16,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    let (kind, id) = kind_and_id(message);
    write(message, kind, id, dev_num, token, out)
}

/// Encodes `message` as the answer to the request `to` (same id, device
/// and token, the response bit set); returns its size.
pub fn encode_response(
    message: &Message<'_>,
    to: &Header,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    let (kind, _) = kind_and_id(message);
    write(
        message,
        kind | kind::RESPONSE,
        to.id,
        to.dev_num,
        to.token,
        out,
    )
}

fn write(
    message: &Message<'_>,
    kind: u8,
    id: u8,
    dev_num: u16,
    token: u16,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    use Transport as T;
    let mut w = Writer { out, at: 0 };
    w.put(&[kind, id])?;
    w.u16(dev_num)?;
    w.u16(token)?;
    w.u16(0)?; // size, written last
    match message {
        Message::Bus(b) => match b {
            Bus::GetDevices { offset, count } => {
                w.u16(*offset)?;
                w.u16(*count)?;
            }
            Bus::Devices {
                offset,
                next,
                count,
                bitmap,
            } => {
                if bitmap.len() != usize::from(*count).div_ceil(8) {
                    return Err(CodecError::Room);
                }
                w.u16(*offset)?;
                w.u16(*next)?;
                w.u16(*count)?;
                w.put(bitmap)?;
            }
            Bus::Ping(data) => w.u32(*data)?,
            Bus::EventDevice { dev_num, state } => {
                w.u16(*dev_num)?;
                w.u16(*state)?;
            }
        },
        Message::Transport(t) => match t {
            T::GetDeviceInfo
            | T::DriverFeaturesSet
            | T::GetDeviceStatus
            | T::VqueueSet
            | T::VqueueReset => {}
            T::DeviceInfo(i) => {
                w.u32(i.device_id)?;
                w.u32(i.vendor_id)?;
                w.put(&i.uuid)?;
                w.u32(i.feature_blocks)?;
                w.u32(i.config_size)?;
                w.u32(i.max_virtqueues)?;
                w.u32(i.admin_vq_start)?;
                w.u32(i.admin_vq_count)?;
            }
            T::GetDeviceFeatures { block, count } => {
                w.u32(*block)?;
                w.u32(*count)?;
            }
            T::DeviceFeatures { block, features } | T::SetDriverFeatures { block, features } => {
                w.u32(*block)?;
                w.len32(features.len())?;
                w.put(features.bytes())?;
            }
            T::GetConfig { offset, len } => {
                w.u32(*offset)?;
                w.u32(*len)?;
            }
            T::ConfigRead(c) | T::SetConfig(c) | T::ConfigWritten(c) => w.config(c)?,
            T::SetDeviceStatus(s) | T::DeviceStatus(s) => w.u32(*s)?,
            T::GetVqueue(i) | T::ResetVqueue(i) | T::GetShm(i) => w.u32(*i)?,
            T::VqueueState(q) => w.vqueue(q, false)?,
            T::SetVqueue(q) => w.vqueue(q, true)?,
            T::Shm { id, len, addr } => {
                w.u32(*id)?;
                w.u32(0)?;
                w.u64(*len)?;
                w.u64(*addr)?;
            }
            T::EventConfig { status, config } => {
                w.u32(*status)?;
                w.config(config)?;
            }
            T::EventAvail { vq, next } => {
                w.u32(*vq)?;
                w.u32(*next)?;
            }
            T::EventUsed { vq } => w.u32(*vq)?,
        },
    }
    let size = u16::try_from(w.at).map_err(|_| CodecError::Room)?;
    w.out[6..8].copy_from_slice(&size.to_le_bytes());
    Ok(w.at)
}
