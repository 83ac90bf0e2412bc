//! A small seccomp deny-list, built as data (classic BPF) so it can be unit-tested by running it.
//!
//! Instances need no namespaces, mounts, keyrings, BPF, perf events, userfaultfd, io_uring or kernel modules;
//! each is kernel attack surface an unprivileged process can otherwise reach (unprivileged user namespaces in
//! particular). Everything else is allowed. `clone3` and io_uring answer `ENOSYS` so that libc and libuv fall
//! back to `clone` and plain system calls; a foreign architecture (or the x32 ABI) is refused.

use serde::{Deserialize, Serialize};

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LOW: u32 = 16; // little-endian: the low half of args[0]

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// x32 system calls on x86_64 have this bit set.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Every namespace a `clone` could create.
const CLONE_NEW_MASK: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// System calls refused with `EPERM`.
pub const DENIED: &[libc::c_long] = &[
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_kexec_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_open_by_handle_at,
];

/// System calls answered with `ENOSYS` (callers fall back to older interfaces).
pub const UNAVAILABLE: &[libc::c_long] = &[
    libc::SYS_clone3,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

fn stmt(code: u16, k: u32) -> BpfInsn {
    BpfInsn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> BpfInsn {
    BpfInsn { code, jt, jf, k }
}

/// The instance filter; empty (no filter) on architectures other than x86_64 and aarch64, whose system
/// call numbers and audit architecture this module does not know.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn instance_filter() -> Vec<BpfInsn> {
    Vec::new()
}

/// The instance filter.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn instance_filter() -> Vec<BpfInsn> {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let enosys = RET_ERRNO | libc::ENOSYS as u32;
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        p.push(jump(JGE_K, X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(RET_K, eperm));
    }
    for (list, action) in [(DENIED, eperm), (UNAVAILABLE, enosys)] {
        for nr in list {
            p.push(jump(JEQ_K, *nr as u32, 0, 1));
            p.push(stmt(RET_K, action));
        }
    }
    // clone: refused when it would create a namespace (threads and plain forks pass).
    p.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 3));
    p.push(stmt(LD_W_ABS, OFF_ARG0_LOW));
    p.push(jump(JSET_K, CLONE_NEW_MASK, 0, 1));
    p.push(stmt(RET_K, eperm));
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    /// Runs a filter over (arch, nr, args[0]) the way the kernel does.
    fn run(prog: &[BpfInsn], arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let o = i.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
                }
                RET_K => return i.k,
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match i.code {
                        JEQ_K => acc == i.k,
                        JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn nr(n: libc::c_long) -> u32 {
        n as u32
    }

    #[test]
    fn ordinary_calls_pass() {
        let p = instance_filter();
        for n in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_exit_group,
        ] {
            assert_eq!(run(&p, AUDIT_ARCH, nr(n), 0), RET_ALLOW, "{n}");
        }
    }

    #[test]
    fn namespaces_mounts_and_kernel_surface_are_refused() {
        let p = instance_filter();
        let eperm = RET_ERRNO | libc::EPERM as u32;
        for n in DENIED {
            assert_eq!(run(&p, AUDIT_ARCH, nr(*n), 0), eperm, "{n}");
        }
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        for n in UNAVAILABLE {
            assert_eq!(run(&p, AUDIT_ARCH, nr(*n), 0), enosys, "{n}");
        }
    }

    #[test]
    fn clone_may_make_threads_and_processes_but_no_namespaces() {
        let p = instance_filter();
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        assert_eq!(run(&p, AUDIT_ARCH, nr(libc::SYS_clone), thread), RET_ALLOW);
        assert_eq!(
            run(&p, AUDIT_ARCH, nr(libc::SYS_clone), libc::SIGCHLD as u64),
            RET_ALLOW
        );
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
        ] {
            assert_eq!(
                run(
                    &p,
                    AUDIT_ARCH,
                    nr(libc::SYS_clone),
                    flag as u64 | libc::SIGCHLD as u64
                ),
                RET_ERRNO | libc::EPERM as u32
            );
        }
    }

    #[test]
    fn a_foreign_architecture_is_killed() {
        let p = instance_filter();
        assert_eq!(
            run(&p, 0x4000_0003, nr(libc::SYS_read), 0),
            RET_KILL_PROCESS
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_calls_are_refused() {
        let p = instance_filter();
        assert_eq!(
            run(&p, AUDIT_ARCH, X32_SYSCALL_BIT | nr(libc::SYS_unshare), 0),
            RET_ERRNO | libc::EPERM as u32
        );
    }
}
