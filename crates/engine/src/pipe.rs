//! Non-blocking pipe ends driven by tokio's reactor, with a raw drain that does not trust cached readiness.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

/// Creates a pipe with both ends close-on-exec: `(read, write)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: plain fcntl calls on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn raw_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn raw_write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The engine's end of a pipe.
pub struct Pipe {
    fd: AsyncFd<OwnedFd>,
}

impl Pipe {
    /// Wraps a pipe end (made non-blocking). Must be called inside a tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<Pipe> {
        set_nonblocking(&fd)?;
        // SAFETY: an `OwnedFd` stays open and refers to the same description until the `AsyncFd` drops it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Pipe { fd })
    }

    /// Reads what is available, waiting for at least one byte; `Ok(0)` is end of file.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| raw_read(fd.as_raw_fd(), buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Waits until the pipe may be read (then [`Pipe::drain_now`] reads what it holds without waiting).
    pub async fn readable(&self) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Reads whatever the pipe holds right now, without waiting, appending at most `limit` bytes to `out` (the rest
    /// is read and dropped). Returns `(bytes seen, end of file)`.
    pub fn drain_now(&self, out: &mut Vec<u8>, limit: usize) -> io::Result<(usize, bool)> {
        let mut chunk = [0u8; 16 * 1024];
        let mut seen = 0;
        loop {
            match raw_read(self.fd.as_raw_fd(), &mut chunk) {
                Ok(0) => return Ok((seen, true)),
                Ok(n) => {
                    seen += n;
                    let room = limit.saturating_sub(out.len());
                    out.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((seen, false)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `data`, waiting for room as needed.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        // Fast path: a small frame nearly always fits in the pipe at once.
        match raw_write(self.fd.as_raw_fd(), data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| raw_write(fd.as_raw_fd(), data)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}
