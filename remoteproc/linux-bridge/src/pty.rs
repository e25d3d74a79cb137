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
        // One write, so a reader gets the line whole.
        let mut whole = Vec::with_capacity(line.len() + 2);
        whole.extend_from_slice(line);
        whole.extend_from_slice(b"\r\n");
        // SAFETY: writes from a live buffer to our own descriptor.
        let _ = unsafe { libc::write(self.master, whole.as_ptr().cast(), whole.len()) };
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Only our own link: a bridge started while this one stops may have
        // made its own already.
        if std::fs::read_link(&self.link).is_ok_and(|t| t == Path::new(&self.slave)) {
            let _ = std::fs::remove_file(&self.link);
        }
        // SAFETY: closes our own descriptor once.
        unsafe { libc::close(self.master) };
    }
}
