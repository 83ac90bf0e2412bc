//! The helper → parent channel: a `SOCK_SEQPACKET` Unix socket pair, one message per `sendmsg`, optionally
//! carrying descriptors (`SCM_RIGHTS`).
//!
//! Messages: `P` + init pid (i32, little endian) [+ a pidfd of the init]; `L` [+ listener, network namespace];
//! `E` + an error text. End of file means every helper process closed its end: the program `execve`d or all
//! of them exited.

use std::io;
use std::mem;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub(crate) const MSG_INIT: u8 = b'P';
pub(crate) const MSG_LISTENER: u8 = b'L';
pub(crate) const MSG_ERROR: u8 = b'E';

const MAX_MSG: usize = 4096;
const MAX_FDS: usize = 4;

/// Creates the socket pair, both ends close-on-exec.
pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message (descriptors are duplicated into the message, the caller keeps its own).
pub(crate) fn send(sock: RawFd, kind: u8, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut data = Vec::with_capacity(1 + payload.len());
    data.push(kind);
    data.extend_from_slice(&payload[..payload.len().min(MAX_MSG - 1)]);
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let fds = &fds[..fds.len().min(MAX_FDS)];
    let fd_bytes = mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the control buffer is CMSG_SPACE(fd_bytes) long, enough for one header and the descriptors.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let r = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One received message: its kind, payload and descriptors.
pub(crate) struct Message {
    pub kind: u8,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Receives one message; `None` at end of file.
pub(crate) fn recv(sock: RawFd) -> io::Result<Option<Message>> {
    let mut data = vec![0u8; MAX_MSG];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    let n = loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let r = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control; walking it with the CMSG macros stays within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                let count = len / mem::size_of::<RawFd>();
                let ptr = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(ptr.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "empty message"));
    }
    data.truncate(n);
    let kind = data.remove(0);
    Ok(Some(Message {
        kind,
        payload: data,
        fds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn messages_and_descriptors_cross_the_pair() {
        let (a, b) = pair().expect("pair");
        let (p, q) = pair().expect("pair");
        send(a.as_raw_fd(), MSG_ERROR, b"boom", &[]).expect("send");
        send(
            a.as_raw_fd(),
            MSG_LISTENER,
            b"",
            &[p.as_raw_fd(), q.as_raw_fd()],
        )
        .expect("send");
        drop(a);
        let m = recv(b.as_raw_fd()).expect("recv").expect("message");
        assert_eq!(
            (m.kind, m.payload.as_slice(), m.fds.len()),
            (MSG_ERROR, &b"boom"[..], 0)
        );
        let m = recv(b.as_raw_fd()).expect("recv").expect("message");
        assert_eq!((m.kind, m.fds.len()), (MSG_LISTENER, 2));
        // the received descriptor is the same socket: what goes in through the copy of p comes out of q
        send(m.fds[0].as_raw_fd(), MSG_ERROR, b"via copy", &[]).expect("send");
        let m = recv(q.as_raw_fd()).expect("recv").expect("message");
        assert_eq!(m.payload, b"via copy");
        assert!(recv(b.as_raw_fd()).expect("recv").is_none());
    }
}
