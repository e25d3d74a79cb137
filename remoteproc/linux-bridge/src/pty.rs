//! A pseudo-terminal whose slave end a user opens at a stable path.

use std::path::{Path, PathBuf};

/// The master end, and the slave's path.
pub(crate) struct Pty {
    master: libc::c_int,
    /// The slave device (`/dev/pts/N`).
    pub(crate) slave: String,
    link: PathBuf,
}

impl Pty {
    /// Opens a pty and links `at` (creating its folder) to the slave.
    pub(crate) fn open(at: &Path) -> std::io::Result<Self> {
        // SAFETY: plain libc calls on a descriptor we own; ptsname's buffer is
        // copied out at once.
        let (master, slave) = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK);
            if fd < 0 || libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let name = libc::ptsname(fd);
            if name.is_null() {
                return Err(std::io::Error::last_os_error());
            }
            (
                fd,
                std::ffi::CStr::from_ptr(name)
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(&slave, at)?;
        Ok(Pty {
            master,
            slave,
            link: at.to_path_buf(),
        })
    }

    /// Writes one line; dropped if nobody reads the terminal and it is full.
    pub(crate) fn write_line(&mut self, line: &[u8]) {
        for part in [line, b"\r\n"] {
            // SAFETY: writes from a live slice to our own descriptor.
            let _ = unsafe { libc::write(self.master, part.as_ptr().cast(), part.len()) };
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
        // SAFETY: closes our own descriptor once.
        unsafe { libc::close(self.master) };
    }
}
