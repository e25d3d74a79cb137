//! Console UARTs: write-only drivers, enough for the boot stage's own messages.
//!
//! Each driver assumes the firmware before it (or QEMU) has set the baud rate and
//! line format; it only enables the transmitter where the block needs it.

mod imx;
mod mini;
mod pl011;

crate::mmio::register_block_at!(imx::ImxUart, mini::MiniUart, pl011::Pl011);

pub use imx::ImxUart;
pub use mini::MiniUart;
pub use pl011::Pl011;

/// The kinds of UART a supported board uses as its console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PrimeCell PL011 (QEMU virt, Raspberry Pi).
    Pl011,
    /// The BCM2835 auxiliary mini-UART (Raspberry Pi `serial1`).
    BcmMini,
    /// The i.MX UART (i.MX8M Plus).
    Imx,
}

impl UartKind {
    /// `compatible` strings of each kind, as device trees spell them.
    const COMPATIBLES: &'static [(&'static str, UartKind)] = &[
        ("arm,pl011", UartKind::Pl011),
        ("brcm,bcm2835-aux-uart", UartKind::BcmMini),
        ("fsl,imx8mp-uart", UartKind::Imx),
        ("fsl,imx6q-uart", UartKind::Imx),
        ("fsl,imx21-uart", UartKind::Imx),
    ];

    /// The kind of UART a node with these `compatible` strings is.
    pub fn from_compatibles<'a>(mut compatibles: impl Iterator<Item = &'a str>) -> Option<Self> {
        compatibles.find_map(|c| {
            Self::COMPATIBLES
                .iter()
                .find(|(name, _)| *name == c)
                .map(|(_, kind)| *kind)
        })
    }
}

/// A console: one UART of a known kind.
pub enum Console {
    /// A PL011.
    Pl011(&'static Pl011),
    /// A BCM2835 mini-UART.
    BcmMini(&'static MiniUart),
    /// An i.MX UART.
    Imx(&'static ImxUart),
}

impl Console {
    /// A console driving the UART of `kind` whose registers start at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the physical address of that UART's register block, mapped
    /// (or, with the MMU off, reachable) as device memory for the rest of the
    /// program, and no other code may drive the UART while the console lives.
    pub unsafe fn new(kind: UartKind, base: usize) -> Self {
        // SAFETY: the caller guarantees `base` is this kind of UART's register
        // block, valid for 'static and not aliased by another driver.
        unsafe {
            match kind {
                UartKind::Pl011 => Console::Pl011(Pl011::at(base)),
                UartKind::BcmMini => Console::BcmMini(MiniUart::at(base)),
                UartKind::Imx => {
                    let uart = ImxUart::at(base);
                    uart.enable_transmitter();
                    Console::Imx(uart)
                }
            }
        }
    }

    /// Sends one byte, waiting for room in the transmit FIFO.
    pub fn write_byte(&self, byte: u8) {
        match self {
            Console::Pl011(u) => u.write_byte(byte),
            Console::BcmMini(u) => u.write_byte(byte),
            Console::Imx(u) => u.write_byte(byte),
        }
    }

    /// Waits until every byte written has left the UART.
    pub fn flush(&self) {
        match self {
            Console::Pl011(u) => u.flush(),
            Console::BcmMini(u) => u.flush(),
            Console::Imx(u) => u.flush(),
        }
    }
}

impl ufmt::uWrite for Console {
    type Error = core::convert::Infallible;

    fn write_str(&mut self, s: &str) -> Result<(), Self::Error> {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_real_compatible_lists() {
        // As in QEMU virt, bcm2837-rpi-3-b.dtb and imx8mp-evk.dtb.
        assert_eq!(
            UartKind::from_compatibles(["arm,pl011", "arm,primecell"].into_iter()),
            Some(UartKind::Pl011)
        );
        assert_eq!(
            UartKind::from_compatibles(["brcm,bcm2835-aux-uart"].into_iter()),
            Some(UartKind::BcmMini)
        );
        assert_eq!(
            UartKind::from_compatibles(["fsl,imx8mp-uart", "fsl,imx6q-uart"].into_iter()),
            Some(UartKind::Imx)
        );
        assert_eq!(UartKind::from_compatibles(["ns16550a"].into_iter()), None);
    }
}
