//! The supported boards: how the boot stage recognises each one, and how a host
//! runs it under QEMU with its real device tree.

/// Where a board's device tree comes from on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtbSource {
    /// QEMU builds the tree itself; `-machine dumpdtb=FILE` writes it out.
    QemuGenerated,
    /// A file in Debian's arm64 kernel package, relative to its
    /// `usr/lib/linux-image-<version>/` folder.
    DebianKernel(&'static str),
}

/// One supported board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// Short name used in manifests and on the command line.
    pub name: &'static str,
    /// Root `compatible` strings that identify the board in a device tree; the
    /// first one the tree lists that appears here wins.
    pub compatibles: &'static [&'static str],
    /// Device tree source on the host.
    pub dtb: DtbSource,
    /// QEMU machine (with its options) that emulates the board.
    pub qemu_machine: &'static str,
    /// QEMU CPU model, when the machine does not fix it.
    pub qemu_cpu: Option<&'static str>,
    /// Number of cores QEMU gives the board.
    pub qemu_cores: u32,
    /// RAM QEMU gives the board, in MiB.
    pub qemu_memory_mib: u32,
    /// Which of QEMU's serial ports (`-serial`, in order) is the console the
    /// board's device tree names in `/chosen/stdout-path`.
    pub qemu_console_serial: usize,
    /// How the board powers itself off when there is no PSCI.
    pub power_off: PowerOff,
    /// Bytes at the top of the first DRAM range that the boot stage keeps for
    /// itself (code, plan, heap, stack) until every OS has started; no
    /// partition may own them.
    pub boot_region_size: u64,
    /// DRAM `(base, size)` as the board's firmware reports it, when that is
    /// not what the shipped device tree says: the Raspberry Pi firmware rewrites
    /// `/memory` at boot (the Pi 4 tree ships `reg = <0 0 0>`, the Pi 3 tree the
    /// full 1 GiB, of which the VideoCore keeps the top). Empty: trust the tree.
    pub firmware_dram: &'static [(u64, u64)],
}

/// How a board is powered off or halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOff {
    /// PSCI `SYSTEM_OFF` through the conduit named by the device tree's `/psci`.
    Psci,
    /// The BCM2835 power-management watchdog: reset into the firmware's "halt"
    /// partition (63). QEMU started with `-no-reboot` exits on that reset.
    Bcm2835Watchdog,
}

/// The boot stage's region on every board: 16 MiB.
const BOOT_REGION_SIZE: u64 = 16 << 20;

/// Every supported board.
pub const BOARDS: &[Board] = &[
    Board {
        name: "qemu-virt",
        firmware_dram: &[],
        compatibles: &["linux,dummy-virt"],
        dtb: DtbSource::QemuGenerated,
        qemu_machine: "virt,gic-version=3",
        qemu_cpu: Some("cortex-a53"),
        qemu_cores: 4,
        qemu_memory_mib: 1024,
        qemu_console_serial: 0,
        power_off: PowerOff::Psci,
        boot_region_size: BOOT_REGION_SIZE,
    },
    Board {
        name: "rpi4",
        // The first GiB less the VideoCore's default share, as the firmware
        // (and QEMU's raspi4b) reports it.
        firmware_dram: &[(0, 0x3c00_0000)],
        compatibles: &["raspberrypi,4-model-b", "brcm,bcm2711"],
        dtb: DtbSource::DebianKernel("broadcom/bcm2711-rpi-4-b.dtb"),
        qemu_machine: "raspi4b",
        qemu_cpu: None,
        qemu_cores: 4,
        qemu_memory_mib: 2048,
        // stdout-path is serial1, the mini-UART; QEMU wires it to the second port.
        qemu_console_serial: 1,
        power_off: PowerOff::Bcm2835Watchdog,
        boot_region_size: BOOT_REGION_SIZE,
    },
    Board {
        name: "rpi3",
        firmware_dram: &[(0, 0x3c00_0000)],
        compatibles: &["raspberrypi,3-model-b", "brcm,bcm2837"],
        dtb: DtbSource::DebianKernel("broadcom/bcm2837-rpi-3-b.dtb"),
        qemu_machine: "raspi3b",
        qemu_cpu: None,
        qemu_cores: 4,
        qemu_memory_mib: 1024,
        qemu_console_serial: 1,
        power_off: PowerOff::Bcm2835Watchdog,
        boot_region_size: BOOT_REGION_SIZE,
    },
    Board {
        name: "imx8mp-evk",
        firmware_dram: &[],
        compatibles: &["fsl,imx8mp-evk", "fsl,imx8mp"],
        dtb: DtbSource::DebianKernel("freescale/imx8mp-evk.dtb"),
        qemu_machine: "imx8mp-evk",
        qemu_cpu: None,
        qemu_cores: 4,
        // The EVK's first DRAM bank (0x4000_0000-0xffff_ffff) as its tree
        // says, so plans made against that tree fit the emulated board.
        qemu_memory_mib: 3072,
        // stdout-path is serial1 (UART2 @ 0x3089_0000), QEMU's second port.
        qemu_console_serial: 1,
        power_off: PowerOff::Psci,
        boot_region_size: BOOT_REGION_SIZE,
    },
];

impl Board {
    /// The DRAM partitions may use: the firmware's figures where the board has
    /// them, else the device tree's memory nodes (`tree_dram`).
    pub fn dram<'t>(&self, tree_dram: &'t [(u64, u64)]) -> &'t [(u64, u64)] {
        if self.firmware_dram.is_empty() {
            tree_dram
        } else {
            self.firmware_dram
        }
    }

    /// The board a device tree's root `compatible` list names, if supported.
    pub fn from_compatibles<'a>(mut root: impl Iterator<Item = &'a str>) -> Option<&'static Board> {
        root.find_map(|c| BOARDS.iter().find(|b| b.compatibles.contains(&c)))
    }

    /// The board with this manifest / command-line name.
    pub fn by_name(name: &str) -> Option<&'static Board> {
        BOARDS.iter().find(|b| b.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_compatibles_are_unique() {
        for (i, a) in BOARDS.iter().enumerate() {
            for b in &BOARDS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(a.compatibles.iter().all(|c| !b.compatibles.contains(c)));
            }
        }
    }

    #[test]
    fn most_specific_compatible_wins() {
        let root = ["raspberrypi,4-model-b", "brcm,bcm2711"];
        assert_eq!(
            Board::from_compatibles(root.into_iter()).unwrap().name,
            "rpi4"
        );
        assert!(Board::from_compatibles(["acme,unknown"].into_iter()).is_none());
    }
}
