//! Wakes the standalone source as soon as something changes in its directory (Linux
//! inotify on the directory and on its `.ferrolb/` record), so a new assignment is read
//! within a millisecond of the controller renaming it into place instead of at the next
//! poll. It only says "look again": what changed is still decided by
//! [`super::dir::DirSource::changed`], and polling stays on, slower, for file systems
//! that send no events (NFS, some FUSE mounts).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

/// What wakes the source: files written in place, renamed in or out, created, deleted.
const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// An inotify instance watching a directory and its `.ferrolb/` subdirectory.
pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
    /// Watched again after every wake-up: the controller may create it after we start,
    /// and adding a watch that exists is a no-op.
    record_dir: PathBuf,
}

impl DirWatch {
    /// Watches `dir`. Fails where inotify is unavailable (the caller then only polls).
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just created and own.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd always returns the descriptor it owns, which stays open
        // until the AsyncFd (its only owner) is dropped.
        let fd = unsafe { AsyncFd::register(owned) }.map_err(io::Error::from)?;
        let watch = DirWatch {
            fd,
            record_dir: dir.join(ferrolb_crds::standalone::STATE_DIR),
        };
        watch.add(dir)?;
        watch.add_record_dir();
        Ok(watch)
    }

    fn add(&self, dir: &Path) -> io::Result<()> {
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: a valid descriptor and a NUL-terminated path that outlives the call.
        let wd =
            unsafe { libc::inotify_add_watch(self.fd.get_ref().as_raw_fd(), path.as_ptr(), MASK) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The record directory may not exist yet: then the next wake-up tries again.
    fn add_record_dir(&self) {
        let _ = self.add(&self.record_dir);
    }

    /// Returns once at least one event arrived (all pending events are consumed).
    pub async fn changed(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| drain(fd.get_ref())) {
                Ok(result) => {
                    self.add_record_dir();
                    return result;
                }
                // Spurious readiness: wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

/// Reads every pending event. The events themselves are not needed, only that some came.
fn drain(fd: &OwnedFd) -> io::Result<()> {
    // Large enough for many events with names of up to NAME_MAX bytes.
    let mut buf = [0u8; 8192];
    let mut any = false;
    loop {
        // SAFETY: reads at most buf.len() bytes into a buffer we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            any = true;
            continue;
        }
        if n == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock if any => Ok(()),
            io::ErrorKind::Interrupted => continue,
            _ => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_rename_into_the_record_directory_wakes_it() {
        let dir = std::env::temp_dir().join(format!("ferrolb-dirwatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let watch = DirWatch::new(&dir).unwrap();
        // Nothing happened: no wake-up.
        let idle = tokio::time::timeout(Duration::from_millis(50), watch.changed()).await;
        assert!(idle.is_err(), "woke with nothing changed");

        // The record directory appears after the watch started.
        let record = dir.join(ferrolb_crds::standalone::STATE_DIR);
        std::fs::create_dir_all(&record).unwrap();
        tokio::time::timeout(Duration::from_secs(2), watch.changed())
            .await
            .expect("creating .ferrolb wakes")
            .unwrap();

        // The controller's way of writing: a new file renamed over the old one.
        let tmp = record.join(".assignments.yaml.tmp");
        std::fs::write(&tmp, "items: []\n").unwrap();
        // Consume the temporary file's own events first.
        let _ = tokio::time::timeout(Duration::from_millis(50), watch.changed()).await;
        std::fs::rename(&tmp, record.join("assignments.yaml")).unwrap();
        tokio::time::timeout(Duration::from_secs(2), watch.changed())
            .await
            .expect("a rename into .ferrolb wakes")
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
