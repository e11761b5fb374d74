//! Network namespaces: opening namespace files and running code inside one.
//!
//! Namespaces are always handled as open file descriptors (from
//! `/proc/PID/ns/net` or a bind mount such as `/var/run/netns/NAME`), never
//! by path after opening, so a namespace cannot be swapped underneath us.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Open a network namespace file (`/proc/PID/ns/net`, `/var/run/netns/X`)
/// and check that it really is a network namespace, so that a wrong path
/// fails here with its name rather than later as an obscure EINVAL.
pub fn open(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|e| {
        let errno = e.raw_os_error().unwrap_or(0);
        Error::with_errno(
            format!("open network namespace {}: {e}", path.display()),
            errno,
        )
    })?;
    check_is_netns(file.as_fd())
        .map_err(|e| e.context(format!("network namespace {}", path.display())))?;
    Ok(file)
}

/// The network namespace of the calling thread.
pub fn current() -> Result<File> {
    open(Path::new("/proc/thread-self/ns/net"))
}

fn check_is_netns(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // Ordinary files answer ENOTTY to an nsfs ioctl.
        if errno == libc::ENOTTY || errno == libc::EINVAL {
            return Err(Error::with_errno("not a namespace file", errno));
        }
        return Err(Error::with_errno(
            format!(
                "cannot query namespace type: {} (errno {errno})",
                nix::errno::Errno::from_raw(errno).desc()
            ),
            errno,
        ));
    }
    if kind != libc::CLONE_NEWNET {
        return Err(Error::new(format!(
            "is a namespace of another type (CLONE flag {kind:#x}), not a network namespace"
        )));
    }
    Ok(())
}

/// Whether two namespace descriptors name the same namespace (nsfs gives
/// every namespace one inode).
pub fn same(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<bool> {
    let sa = nix::sys::stat::fstat(a.as_raw_fd())
        .map_err(|e| Error::from(e).context("stat namespace"))?;
    let sb = nix::sys::stat::fstat(b.as_raw_fd())
        .map_err(|e| Error::from(e).context("stat namespace"))?;
    Ok(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
}

/// Run `f` on a short-lived thread that has joined the network namespace
/// `ns`. The calling thread never changes namespace; anything `f` creates
/// that is bound to a namespace at creation (sockets) stays in `ns`.
pub fn run_in<T, F>(ns: BorrowedFd<'_>, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("ipvnet-netns".into())
            .spawn_scoped(s, move || -> Result<T> {
                setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    Error::with_errno(
                        format!("enter network namespace: {} (errno {})", e.desc(), e as i32),
                        e as i32,
                    )
                })?;
                Ok(f())
            })
            .map_err(|e| Error::from(e).context("spawn a thread to enter a network namespace"))?;
        match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Inode number of a namespace descriptor (what `ip netns identify` and
/// `/proc/PID/ns/net -> net:[INODE]` show), for logs and comparisons.
pub fn inode(ns: &File) -> Result<u64> {
    Ok(ns
        .metadata()
        .map_err(|e| Error::from(e).context("stat namespace"))?
        .ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_rejects_a_regular_file_naming_it() {
        let err = open(Path::new("/proc/self/status")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/proc/self/status"), "{msg}");
        assert!(msg.contains("not a namespace file"), "{msg}");
    }

    #[test]
    fn open_missing_path_names_it_and_keeps_errno() {
        let err = open(Path::new("/nonexistent/netns/x")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/netns/x"), "{err}");
        assert_eq!(err.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn open_rejects_another_namespace_type() {
        let err = open(Path::new("/proc/self/ns/uts")).unwrap_err();
        assert!(err.to_string().contains("not a network namespace"), "{err}");
    }

    #[test]
    fn current_namespace_is_itself_and_run_in_keeps_caller_in_place() {
        let a = current().unwrap();
        let b = open(Path::new("/proc/self/ns/net")).unwrap();
        assert!(same(a.as_fd(), b.as_fd()).unwrap());
        let ino = run_in(a.as_fd(), || inode(&current().unwrap()).unwrap()).unwrap();
        assert_eq!(ino, inode(&a).unwrap());
        assert_eq!(inode(&current().unwrap()).unwrap(), inode(&a).unwrap());
    }
}
