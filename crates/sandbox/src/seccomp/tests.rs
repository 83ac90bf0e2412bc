use std::collections::BTreeSet;

use super::*;

// The classic BPF instructions seccompiler emits.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

/// `struct seccomp_data` for one call.
fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&nr.to_ne_bytes());
    d[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    d
}

/// Runs one filter the way the kernel does (forward jumps only, every path ends in a return).
fn run(prog: &[BpfInsn], data: &[u8; 64]) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = *prog.get(pc).expect("the program ran off its end");
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let o = i.k as usize;
                acc = u32::from_ne_bytes(data[o..o + 4].try_into().expect("4 bytes"));
            }
            ALU_AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            RET_K => return i.k,
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                let taken = match i.code {
                    JEQ_K => acc == i.k,
                    JGT_K => acc > i.k,
                    JGE_K => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            other => panic!("unexpected instruction {other:#x}"),
        }
    }
}

/// Runs every installed filter, newest first; the strongest answer wins, ties go to the newest filter
/// (`seccomp_run_filters`).
fn evaluate(filters: &[Vec<BpfInsn>], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let d = data(arch, nr, args);
    let action = |r: u32| (r & 0xffff_0000) as i32;
    let mut ret = RET_ALLOW;
    for f in filters.iter().rev() {
        let cur = run(f, &d);
        if action(cur) < action(ret) {
            ret = cur;
        }
    }
    ret
}

fn filters() -> Vec<Vec<BpfInsn>> {
    instance_filters().expect("the filter compiles")
}

fn call(f: &[Vec<BpfInsn>], n: libc::c_long, arg0: u64) -> u32 {
    evaluate(f, AUDIT_ARCH, n as u32, [arg0, 0, 0, 0, 0, 0])
}

fn with_rules() -> [libc::c_long; 4] {
    [
        libc::SYS_clone,
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_personality,
    ]
}

#[test]
fn ordinary_calls_pass() {
    let f = filters();
    for n in [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_openat,
        libc::SYS_execve,
        libc::SYS_exit_group,
        libc::SYS_futex,
        libc::SYS_mmap,
        libc::SYS_mprotect,
        libc::SYS_membarrier,
        libc::SYS_epoll_pwait,
        libc::SYS_eventfd2,
        libc::SYS_close_range,
    ] {
        assert_eq!(call(&f, n, 0), RET_ALLOW, "{n}");
    }
}

#[test]
fn every_listed_call_is_allowed() {
    let f = filters();
    for (name, n) in ALLOWED.iter().chain(ALLOWED_ARCH) {
        assert_eq!(call(&f, *n, 0), RET_ALLOW, "{name}");
    }
}

#[test]
fn namespaces_mounts_and_kernel_surface_are_refused() {
    let f = filters();
    for (name, n) in REFUSED.iter().chain(REFUSED_ARCH) {
        assert_eq!(call(&f, *n, 0), EPERM, "{name}");
    }
    for (name, n) in UNAVAILABLE {
        assert_eq!(call(&f, *n, 0), ENOSYS, "{name}");
    }
}

#[test]
fn an_unknown_or_future_call_is_refused() {
    let f = filters();
    let allowed: BTreeSet<libc::c_long> = ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .map(|(_, n)| *n)
        .chain(with_rules())
        .collect();
    let unavailable: BTreeSet<libc::c_long> = UNAVAILABLE.iter().map(|(_, n)| *n).collect();
    // Every number up to well past today's last one; those not on the list are refused.
    for n in 0..2048 {
        let expected = if unavailable.contains(&n) {
            ENOSYS
        } else if allowed.contains(&n) {
            continue;
        } else {
            EPERM
        };
        assert_eq!(call(&f, n, 0), expected, "{n}");
    }
    // Numbers no kernel has yet, and the far end of the range.
    for n in [470u32, 512, 1000, 0x3fff_ffff, 0x7fff_ffff, u32::MAX] {
        assert_eq!(evaluate(&f, AUDIT_ARCH, n, [0; 6]), EPERM, "{n:#x}");
    }
}

#[test]
fn clone_may_make_threads_and_processes_but_no_namespaces() {
    let f = filters();
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    assert_eq!(call(&f, libc::SYS_clone, thread), RET_ALLOW);
    assert_eq!(call(&f, libc::SYS_clone, libc::SIGCHLD as u64), RET_ALLOW);
    let vfork = (libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD) as u64;
    assert_eq!(call(&f, libc::SYS_clone, vfork), RET_ALLOW);
    for flag in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWCGROUP,
    ] {
        assert_eq!(
            call(&f, libc::SYS_clone, flag as u64 | libc::SIGCHLD as u64),
            EPERM,
            "{flag:#x}"
        );
        assert_eq!(call(&f, libc::SYS_clone, flag as u64 | thread), EPERM);
    }
}

#[test]
fn sockets_of_the_usual_families_only() {
    let f = filters();
    let socket = |family: libc::c_int, protocol: libc::c_int| {
        evaluate(
            &f,
            AUDIT_ARCH,
            libc::SYS_socket as u32,
            [
                family as u64,
                (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as u64,
                protocol as u64,
                0,
                0,
                0,
            ],
        )
    };
    for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
        assert_eq!(socket(family, 0), RET_ALLOW, "{family}");
    }
    assert_eq!(socket(libc::AF_NETLINK, libc::NETLINK_ROUTE), RET_ALLOW);
    for protocol in [
        libc::NETLINK_AUDIT,
        libc::NETLINK_KOBJECT_UEVENT,
        libc::NETLINK_NETFILTER,
        libc::NETLINK_XFRM,
        libc::NETLINK_GENERIC,
    ] {
        assert_eq!(socket(libc::AF_NETLINK, protocol), EPERM, "{protocol}");
    }
    for family in [
        libc::AF_PACKET,
        libc::AF_ALG,
        libc::AF_VSOCK,
        libc::AF_BLUETOOTH,
        libc::AF_TIPC,
        libc::AF_RDS,
        libc::AF_KEY,
        libc::AF_XDP,
        libc::AF_CAN,
    ] {
        assert_eq!(socket(family, 0), EPERM, "{family}");
    }
    assert_eq!(
        call(&f, libc::SYS_socketpair, libc::AF_UNIX as u64),
        RET_ALLOW
    );
    assert_eq!(call(&f, libc::SYS_socketpair, libc::AF_TIPC as u64), EPERM);
}

#[test]
fn personality_may_not_turn_off_address_randomisation() {
    let f = filters();
    for value in PERSONALITIES {
        assert_eq!(
            call(&f, libc::SYS_personality, *value),
            RET_ALLOW,
            "{value:#x}"
        );
    }
    let addr_no_randomize = 0x0004_0000;
    let read_implies_exec = 0x0040_0000;
    for value in [addr_no_randomize, read_implies_exec, addr_no_randomize | 8] {
        assert_eq!(call(&f, libc::SYS_personality, value), EPERM, "{value:#x}");
    }
}

#[test]
fn a_foreign_architecture_is_killed() {
    let f = filters();
    for n in [libc::SYS_read, libc::SYS_clone3, 1000] {
        assert_eq!(
            evaluate(&f, 0x4000_0003, n as u32, [0; 6]),
            RET_KILL_PROCESS,
            "{n}"
        );
    }
}

#[test]
fn x32_calls_are_refused() {
    let f = filters();
    for n in [
        libc::SYS_read,
        libc::SYS_getpid,
        libc::SYS_unshare,
        libc::SYS_clone,
        512,
        547,
    ] {
        assert_eq!(
            evaluate(&f, AUDIT_ARCH, X32_SYSCALL_BIT | n as u32, [0; 6]),
            EPERM,
            "{n}"
        );
    }
}

#[test]
fn the_lists_are_disjoint_and_without_repeats() {
    let mut seen = BTreeSet::new();
    for (name, n) in ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .chain(REFUSED)
        .chain(REFUSED_ARCH)
        .chain(UNAVAILABLE)
    {
        assert!(seen.insert(*n), "{name} ({n}) is listed twice");
    }
    for n in with_rules() {
        assert!(!seen.contains(&n), "{n} has rules and must not be listed");
    }
}

#[test]
fn the_filters_fit_the_kernel_and_travel_compactly() {
    let f = filters();
    assert_eq!(f.len(), 2, "the allow-list, then the ENOSYS fallbacks");
    for p in &f {
        assert!(!p.is_empty() && p.len() < 4096, "{}", p.len());
    }
    assert_eq!(f, filters(), "compiled once, the same every time");
    let json = serde_json::to_string(&f[1]).expect("encode");
    assert!(json.starts_with("[[32,0,0,4]"), "{json}");
    let back: Vec<BpfInsn> = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, f[1]);
}
