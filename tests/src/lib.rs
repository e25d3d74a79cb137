//! Host-side harness for end-to-end tests: starts a QEMU machine for a board,
//! reads its console with a deadline, kills it on timeout, and reads device trees
//! with the independent `fdtget` tool so that tests check the firmware's output
//! against the tree it was given, not against strings it could have made up.
//!
//! The firmware and guest artifacts come from `cargo xtask`, which passes their
//! paths in [`ENV_BOOT_IMAGE`] and [`ENV_GUEST_DIR`].
#![forbid(unsafe_code)]

pub mod fdtget;
pub mod fixtures;
pub mod qemu;

use std::path::PathBuf;

/// Path of the packed boot-stage image (`cargo xtask build` writes it).
pub const ENV_BOOT_IMAGE: &str = "AMP_BOOT_IMAGE";
/// Path of the demo RTOS partition's ELF (`cargo xtask build` writes it).
pub const ENV_RTOS_IMAGE: &str = "AMP_RTOS_IMAGE";
/// Path of the Linux-side bridge (static arm64 Linux, `cargo xtask build`).
pub const ENV_BRIDGE_IMAGE: &str = "AMP_BRIDGE_IMAGE";
/// Folder of guest artifacts unpacked from Debian's arm64 packages.
pub const ENV_GUEST_DIR: &str = "AMP_GUEST_DIR";

/// A path the test run needs from `cargo xtask`; fails loudly when absent, since
/// a test that cannot run must not pass.
pub fn required_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "{var} is not set: the end-to-end tests need the firmware and guest artifacts \
             that `cargo xtask test` builds and fetches; run that instead of `cargo test`"
        ),
    }
}

/// The boot-stage image under test.
pub fn boot_image() -> PathBuf {
    let path = required_path(ENV_BOOT_IMAGE);
    assert!(
        path.is_file(),
        "{} does not exist; run `cargo xtask build`",
        path.display()
    );
    path
}

/// The demo RTOS partition's ELF under test.
pub fn rtos_image() -> PathBuf {
    let path = required_path(ENV_RTOS_IMAGE);
    assert!(
        path.is_file(),
        "{} does not exist; run `cargo xtask build`",
        path.display()
    );
    path
}

/// The Linux-side bridge under test.
pub fn bridge_image() -> PathBuf {
    let path = required_path(ENV_BRIDGE_IMAGE);
    assert!(
        path.is_file(),
        "{} does not exist; run `cargo xtask build`",
        path.display()
    );
    path
}

/// A board's device tree file from Debian's kernel package, for `-dtb`.
pub fn board_dtb(board: &boards::Board) -> Option<PathBuf> {
    match board.dtb {
        boards::DtbSource::QemuGenerated => None,
        boards::DtbSource::DebianKernel(rel) => {
            let path = required_path(ENV_GUEST_DIR).join("dtbs").join(rel);
            assert!(
                path.is_file(),
                "{} is missing; `cargo xtask setup` unpacks it from Debian's arm64 kernel package",
                path.display()
            );
            Some(path)
        }
    }
}

/// A scratch folder for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh folder named after the test, unique within this process.
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("amp-e2e-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
