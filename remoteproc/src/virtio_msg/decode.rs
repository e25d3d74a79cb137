//! Decoding: every field read through a cursor that refuses to run off
//! the payload.

use super::*;

/// A payload read field by field; running off its end is an error, not a
/// panic.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    id: u8,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.at.checked_add(n).ok_or(CodecError::Payload(self.id))?;
        let b = self
            .bytes
            .get(self.at..end)
            .ok_or(CodecError::Payload(self.id))?;
        self.at = end;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from(self.u32()?) | u64::from(self.u32()?) << 32)
    }
    /// `count` 32-bit words.
    fn words(&mut self, count: u32) -> Result<Words<'a>, CodecError> {
        let n = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(4))
            .ok_or(CodecError::Payload(self.id))?;
        Ok(Words(self.take(n)?))
    }
    fn config(&mut self) -> Result<Config<'a>, CodecError> {
        let generation = self.u32()?;
        let offset = self.u32()?;
        let len = self.u32()?;
        let data = self.take(usize::try_from(len).map_err(|_| CodecError::Payload(self.id))?)?;
        Ok(Config {
            generation,
            offset,
            data,
        })
    }
    fn vqueue_set(&mut self) -> Result<Vqueue, CodecError> {
        let index = self.u32()?;
        let flags = self.u32()?;
        let size = self.u32()?;
        let _reserved = self.u32()?;
        Ok(Vqueue {
            index,
            max_size: 0,
            size,
            flags,
            descriptors: self.u64()?,
            driver: self.u64()?,
            device: self.u64()?,
        })
    }
}

/// Decodes one whole message (exactly `bytes`).
pub fn decode(bytes: &[u8]) -> Result<(Header, Message<'_>), CodecError> {
    let header = Header::read(bytes)?;
    let mut r = Reader {
        bytes: &bytes[HEADER_SIZE..],
        at: 0,
        id: header.id,
    };
    let unknown = CodecError::UnknownId {
        kind: header.kind,
        id: header.id,
    };
    let response = header.is_response();
    if header.is_bus() {
        let m = match (header.id, response) {
            (bus_id::GET_DEVICES, false) => Bus::GetDevices {
                offset: r.u16()?,
                count: r.u16()?,
            },
            (bus_id::GET_DEVICES, true) => {
                let offset = r.u16()?;
                let next = r.u16()?;
                let count = r.u16()?;
                let bitmap = r.take(usize::from(count).div_ceil(8))?;
                Bus::Devices {
                    offset,
                    next,
                    count,
                    bitmap,
                }
            }
            (bus_id::PING, _) => Bus::Ping(r.u32()?),
            (bus_id::EVENT_DEVICE, false) => Bus::EventDevice {
                dev_num: r.u16()?,
                state: r.u16()?,
            },
            _ => return Err(unknown),
        };
        return Ok((header, Message::Bus(m)));
    }
    let m = match (header.id, response) {
        (id::GET_DEVICE_INFO, false) => Transport::GetDeviceInfo,
        (id::GET_DEVICE_INFO, true) => {
            let device_id = r.u32()?;
            let vendor_id = r.u32()?;
            let mut uuid = [0; 16];
            uuid.copy_from_slice(r.take(16)?);
            Transport::DeviceInfo(DeviceInfo {
                device_id,
                vendor_id,
                uuid,
                feature_blocks: r.u32()?,
                config_size: r.u32()?,
                max_virtqueues: r.u32()?,
                admin_vq_start: r.u32()?,
                admin_vq_count: r.u32()?,
            })
        }
        (id::GET_DEVICE_FEATURES, false) => Transport::GetDeviceFeatures {
            block: r.u32()?,
            count: r.u32()?,
        },
        (id::GET_DEVICE_FEATURES, true) => {
            let block = r.u32()?;
            let count = r.u32()?;
            Transport::DeviceFeatures {
                block,
                features: r.words(count)?,
            }
        }
        (id::SET_DRIVER_FEATURES, false) => {
            let block = r.u32()?;
            let count = r.u32()?;
            Transport::SetDriverFeatures {
                block,
                features: r.words(count)?,
            }
        }
        (id::SET_DRIVER_FEATURES, true) => Transport::DriverFeaturesSet,
        (id::GET_CONFIG, false) => Transport::GetConfig {
            offset: r.u32()?,
            len: r.u32()?,
        },
        (id::GET_CONFIG, true) => Transport::ConfigRead(r.config()?),
        (id::SET_CONFIG, false) => Transport::SetConfig(r.config()?),
        (id::SET_CONFIG, true) => Transport::ConfigWritten(r.config()?),
        (id::GET_DEVICE_STATUS, false) => Transport::GetDeviceStatus,
        (id::SET_DEVICE_STATUS, false) => Transport::SetDeviceStatus(r.u32()?),
        (id::GET_DEVICE_STATUS | id::SET_DEVICE_STATUS, true) => Transport::DeviceStatus(r.u32()?),
        (id::GET_VQUEUE, false) => Transport::GetVqueue(r.u32()?),
        (id::GET_VQUEUE, true) => Transport::VqueueState(Vqueue {
            index: r.u32()?,
            max_size: r.u32()?,
            size: r.u32()?,
            flags: r.u32()?,
            descriptors: r.u64()?,
            driver: r.u64()?,
            device: r.u64()?,
        }),
        (id::SET_VQUEUE, false) => Transport::SetVqueue(r.vqueue_set()?),
        (id::SET_VQUEUE, true) => Transport::VqueueSet,
        (id::RESET_VQUEUE, false) => Transport::ResetVqueue(r.u32()?),
        (id::RESET_VQUEUE, true) => Transport::VqueueReset,
        (id::GET_SHM, false) => Transport::GetShm(r.u32()?),
        (id::GET_SHM, true) => {
            let id = r.u32()?;
            let _reserved = r.u32()?;
            Transport::Shm {
                id,
                len: r.u64()?,
                addr: r.u64()?,
            }
        }
        (id::EVENT_CONFIG, false) => {
            let status = r.u32()?;
            Transport::EventConfig {
                status,
                config: r.config()?,
            }
        }
        (id::EVENT_AVAIL, false) => Transport::EventAvail {
            vq: r.u32()?,
            next: r.u32()?,
        },
        (id::EVENT_USED, false) => Transport::EventUsed { vq: r.u32()? },
        _ => return Err(unknown),
    };
    Ok((header, Message::Transport(m)))
}
