use super::*;
use crate::cgroup::{CgroupConfig, CgroupVersion};
use crate::plan::{InstanceSpec, NodeKind, Resource, SystemPath};
use crate::record::{Call, RecordingSyscalls};

const STAGING: &str = "/run/stratus-sandbox";

fn plan() -> Plan {
    let mut spec = InstanceSpec::new("i-1", "/data/code/abc", "/usr/bin/python3");
    spec.system = vec![
        SystemPath::Bind {
            path: "/usr".into(),
            kind: NodeKind::Dir,
        },
        SystemPath::Symlink {
            path: "/lib".into(),
            target: "usr/lib".into(),
        },
    ];
    spec.layers = vec!["/data/layers/a".into(), "/data/layers/b".into()];
    spec.forbidden = vec!["/data".into()];
    spec.uid = 10001;
    spec.gid = 10002;
    spec.extra_fds = 2;
    spec.args = vec!["/var/user/bootstrap.py".into()];
    spec.env = vec![("PYTHONPATH".into(), "/var/user:/opt".into())];
    spec.runtime_listen = Some("127.0.0.1:9001".parse().expect("addr"));
    spec.cgroup = CgroupConfig {
        version: CgroupVersion::V1,
        root: "/sys/fs/cgroup".into(),
        parent: "stratus".into(),
    };
    spec.staging_dir = STAGING.into();
    Plan::build(&spec).expect("plan")
}

/// Runs the plan down the program's path (every fork answers "child").
fn program_path(plan: &Plan) -> (Role, Vec<Call>) {
    let mut sys = RecordingSyscalls::new();
    let role = apply(plan, &mut sys).expect("apply");
    (role, sys.calls)
}

fn pos(calls: &[Call], pred: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(pred).expect("the call was made")
}

fn is_mount_on(call: &Call, path: &str) -> bool {
    matches!(call, Call::Mount { target, .. } if target == Path::new(path))
}

#[test]
fn the_program_path_ends_in_execve_with_the_plan_s_program() {
    let plan = plan();
    let (role, calls) = program_path(&plan);
    assert_eq!(role, Role::Program);
    assert_eq!(
        calls.last(),
        Some(&Call::Execve {
            program: "/usr/bin/python3".into(),
            args: vec!["/var/user/bootstrap.py".into()],
            env: vec!["PYTHONPATH=/var/user:/opt".into()],
        })
    );
    assert_eq!(
        calls[0],
        Call::Unshare(vec![
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Net,
            Namespace::Pid
        ])
    );
    assert_eq!(calls.iter().filter(|c| **c == Call::Fork).count(), 2);
}

#[test]
fn privileges_are_dropped_after_pivot_root_and_before_exec() {
    let (_, calls) = program_path(&plan());
    let pivot = pos(&calls, |c| matches!(c, Call::PivotRoot(..)));
    let setgroups = pos(&calls, |c| matches!(c, Call::Setgroups(g) if g.is_empty()));
    let setgid = pos(&calls, |c| *c == Call::Setgid(10002));
    let setuid = pos(&calls, |c| *c == Call::Setuid(10001));
    let caps = pos(&calls, |c| *c == Call::DropCapabilityBoundingSet);
    let nnp = pos(&calls, |c| *c == Call::NoNewPrivs);
    let exec = pos(&calls, |c| matches!(c, Call::Execve { .. }));
    let last_rlimit = calls
        .iter()
        .rposition(|c| matches!(c, Call::Setrlimit(..)))
        .expect("rlimits");
    assert!(pivot < setuid, "pivot_root before the uid drop");
    assert!(last_rlimit < setuid, "rlimits while still privileged");
    assert!(
        caps < setuid,
        "the bounding set can only be dropped while privileged"
    );
    assert!(
        setgroups < setgid && setgid < setuid,
        "groups, then gid, then uid"
    );
    assert!(setuid < nnp && nnp < exec, "no_new_privs before exec");
    let seccomp = pos(&calls, |c| matches!(c, Call::Seccomp(n) if *n > 10));
    assert!(
        nnp < seccomp && seccomp < exec,
        "seccomp needs no_new_privs, and comes last"
    );
    assert!(calls.contains(&Call::Setrlimit(Resource::Nproc, 1024, 1024)));
    assert!(calls.contains(&Call::Setrlimit(Resource::Nofile, 1024, 1024)));
    assert!(calls.contains(&Call::Setrlimit(Resource::Core, 0, 0)));
    // the working directory is entered after the uid drop (it must be readable by the instance's user)
    let cwd = pos(&calls, |c| *c == Call::Chdir("/var/user".into()));
    assert!(setuid < cwd && cwd < seccomp);
    // only the extra descriptors 3 and 4 survive (plus the close-on-exec channel)
    assert_eq!(
        calls[exec - 1],
        Call::CloseFds {
            first: 5,
            keep_channel: true
        }
    );
}

#[test]
fn the_cgroup_is_joined_before_any_mount_and_before_the_program_exists() {
    let (_, calls) = program_path(&plan());
    let pdeath = pos(&calls, |c| *c == Call::ParentDeathSignal);
    let join_mem = pos(&calls, |c| {
        *c == Call::WriteFile(
            "/sys/fs/cgroup/memory/stratus/i-1/cgroup.procs".into(),
            "0".into(),
        )
    });
    let join_pids = pos(&calls, |c| {
        *c == Call::WriteFile(
            "/sys/fs/cgroup/pids/stratus/i-1/cgroup.procs".into(),
            "0".into(),
        )
    });
    let limit = pos(
        &calls,
        |c| matches!(c, Call::WriteFile(p, _) if p.ends_with("memory.limit_in_bytes")),
    );
    let cgroup_ns = pos(&calls, |c| *c == Call::Unshare(vec![Namespace::Cgroup]));
    let first_mount = pos(&calls, |c| matches!(c, Call::Mount { .. }));
    let second_fork = calls.iter().rposition(|c| *c == Call::Fork).expect("forks");
    assert!(pdeath < limit && limit < join_mem && join_mem < join_pids);
    assert!(join_pids < cgroup_ns && cgroup_ns < first_mount && first_mount < second_fork);
}

#[test]
fn the_root_is_built_privately_under_staging_then_pivoted_and_made_read_only() {
    let (_, calls) = program_path(&plan());
    let first_mount = pos(&calls, |c| matches!(c, Call::Mount { .. }));
    assert_eq!(
        calls[first_mount],
        Call::Mount {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None
        }
    );
    assert!(is_mount_on(&calls[first_mount + 1], STAGING));
    let pivot = pos(&calls, |c| matches!(c, Call::PivotRoot(..)));
    assert_eq!(calls[pivot - 1], Call::Chdir(STAGING.into()));
    assert_eq!(
        calls[pivot + 1],
        Call::Umount2(".".into(), libc::MNT_DETACH)
    );
    assert_eq!(calls[pivot + 2], Call::Chdir("/".into()));
    assert_eq!(
        calls[pivot + 3],
        Call::Mount {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            data: None
        }
    );
    // every mount, file and directory between the two lands under the staging root
    for call in &calls[first_mount + 2..pivot - 1] {
        let target = match call {
            Call::Mount { target, .. }
            | Call::Mkdir(target, _)
            | Call::CreateFile(target, _, _) => target,
            Call::Symlink { link, .. } => link,
            other => panic!("unexpected {other:?} while building the root"),
        };
        assert!(
            target.starts_with(STAGING),
            "{} outside the new root",
            target.display()
        );
    }
}

#[test]
fn binds_are_remounted_read_only_nosuid_nodev() {
    let (_, calls) = program_path(&plan());
    let code = format!("{STAGING}/var/user");
    let bind = pos(&calls, |c| {
        *c == Call::Mount {
            source: Some("/data/code/abc".into()),
            target: code.clone().into(),
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        }
    });
    assert_eq!(
        calls[bind + 1],
        Call::Mount {
            source: None,
            target: code.into(),
            fstype: None,
            flags: libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV,
            data: None
        }
    );
}

#[test]
fn layers_are_overlaid_read_only_with_the_last_bound_on_top() {
    let (_, calls) = program_path(&plan());
    assert!(calls.contains(&Call::Mount {
        source: Some("overlay".into()),
        target: format!("{STAGING}/opt").into(),
        fstype: Some("overlay".into()),
        flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        data: Some("lowerdir=/data/layers/b:/data/layers/a".into()),
    }));
}

#[test]
fn tmp_is_a_512_mib_tmpfs_and_proc_is_the_instance_s() {
    let (_, calls) = program_path(&plan());
    assert!(calls.contains(&Call::Mount {
        source: Some("tmpfs".into()),
        target: format!("{STAGING}/tmp").into(),
        fstype: Some("tmpfs".into()),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: Some(format!("size={},mode=1777", 512u64 << 20)),
    }));
    let proc_mount = pos(&calls, |c| is_mount_on(c, &format!("{STAGING}/proc")));
    // procfs is mounted by the init, after the PID namespace exists (the first fork)
    let first_fork = pos(&calls, |c| *c == Call::Fork);
    assert!(first_fork < proc_mount);
}

#[test]
fn network_is_set_up_inside_the_new_namespace() {
    let (_, calls) = program_path(&plan());
    let unshare = pos(
        &calls,
        |c| matches!(c, Call::Unshare(ns) if ns.contains(&Namespace::Net)),
    );
    let lo = pos(&calls, |c| *c == Call::LoopbackUp);
    let listen = pos(&calls, |c| {
        *c == Call::OpenListener("127.0.0.1:9001".parse().expect("addr"))
    });
    assert!(unshare < lo && lo < listen);
    assert!(calls.contains(&Call::Sethostname("scf".into())));
}

#[test]
fn the_supervisor_reports_the_init_and_keeps_nothing() {
    let mut sys = RecordingSyscalls::new();
    sys.forks.push_back(Fork::Parent(42));
    let role = apply(&plan(), &mut sys).expect("apply");
    assert_eq!(role, Role::Supervisor { init_pid: 42 });
    assert_eq!(
        sys.calls[1..],
        [
            Call::Fork,
            Call::ReportInit(42),
            Call::CloseFds {
                first: 3,
                keep_channel: false
            }
        ]
    );
}

#[test]
fn the_init_keeps_root_and_hands_descriptors_to_the_program_only() {
    let mut sys = RecordingSyscalls::new();
    sys.forks.extend([Fork::Child, Fork::Parent(7)]);
    let role = apply(&plan(), &mut sys).expect("apply");
    assert_eq!(role, Role::Init { program_pid: 7 });
    assert_eq!(
        sys.calls.last(),
        Some(&Call::CloseFds {
            first: 3,
            keep_channel: false
        })
    );
    assert!(
        !sys.calls
            .iter()
            .any(|c| matches!(c, Call::Setuid(_) | Call::Execve { .. }))
    );
}

#[test]
fn optional_cgroup_files_may_be_missing_required_ones_may_not() {
    let mut sys = RecordingSyscalls::new();
    sys.fail = Some(Box::new(
        |c| matches!(c, Call::WriteFile(p, _) if p.ends_with("memory.memsw.limit_in_bytes")),
    ));
    assert_eq!(apply(&plan(), &mut sys).expect("apply"), Role::Program);

    let mut sys = RecordingSyscalls::new();
    sys.fail = Some(Box::new(
        |c| matches!(c, Call::WriteFile(p, _) if p.ends_with("pids.max")),
    ));
    let err = apply(&plan(), &mut sys).expect_err("pids.max is required");
    assert!(
        err.to_string().contains("EPERM") || err.to_string().contains("not permitted"),
        "{err}"
    );
    assert!(
        !sys.calls
            .iter()
            .any(|c| matches!(c, Call::Mount { .. } | Call::Execve { .. }))
    );
}

#[test]
fn a_failing_step_stops_everything_after_it() {
    let mut sys = RecordingSyscalls::new();
    sys.fail = Some(Box::new(|c| matches!(c, Call::PivotRoot(..))));
    apply(&plan(), &mut sys).expect_err("pivot_root fails");
    assert!(matches!(sys.calls.last(), Some(Call::PivotRoot(..))));
    assert!(
        !sys.calls
            .iter()
            .any(|c| matches!(c, Call::Setuid(_) | Call::Execve { .. }))
    );
}

fn egress_plan() -> Plan {
    let mut spec = InstanceSpec::new("i-1", "/data/code/abc", "/usr/bin/python3");
    spec.system = Vec::new();
    spec.cgroup = CgroupConfig {
        version: CgroupVersion::V2,
        root: "/sys/fs/cgroup".into(),
        parent: "stratus".into(),
    };
    spec.egress = Some(crate::net::EgressSpec {
        pool: crate::net::Ipv4Pool::parse("198.18.0.0/16").expect("pool"),
        ip: "/usr/sbin/ip".into(),
    });
    Plan::build(&spec).expect("plan")
}

fn ip_line(call: &Call) -> Option<(String, bool)> {
    match call {
        Call::Ip { args, in_host } => Some((args.join(" "), *in_host)),
        _ => None,
    }
}

#[test]
fn an_egress_link_is_made_between_unshare_and_the_init_s_fork_and_the_host_namespace_let_go() {
    let plan = egress_plan();
    let egress = plan.egress.clone().expect("egress");
    let mut sys = RecordingSyscalls::new();
    sys.forks.push_back(Fork::Parent(42));
    apply(&plan, &mut sys).expect("apply");
    let calls = &sys.calls;
    let keep = pos(calls, |c| *c == Call::KeepHostNetns);
    let unshare = pos(calls, |c| matches!(c, Call::Unshare(_)));
    let release = pos(calls, |c| *c == Call::ReleaseHostNetns);
    let unshare_pid = pos(calls, |c| *c == Call::Unshare(vec![Namespace::Pid]));
    let fork = pos(calls, |c| *c == Call::Fork);
    assert!(keep < unshare && unshare < release && release < unshare_pid && unshare_pid < fork);
    assert_eq!(
        calls[unshare],
        Call::Unshare(vec![
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Net
        ]),
        "the PID namespace comes after the link's processes"
    );
    let last_ip = calls
        .iter()
        .rposition(|c| matches!(c, Call::Ip { .. }))
        .expect("ip");
    assert!(last_ip < unshare_pid);
    let link = egress.pool.link(egress.first_slot);
    let ips: Vec<(String, bool)> = calls.iter().filter_map(ip_line).collect();
    let host_if = &link.host_if;
    let (h, i) = (link.host_addr, link.instance_addr);
    assert_eq!(
        ips,
        [
            (
                format!("link add eth0 type veth peer name {host_if} netns /proc/7/fd/9"),
                false
            ),
            (format!("addr add {h}/30 dev {host_if}"), true),
            (format!("link set {host_if} up"), true),
            (format!("addr add {i}/30 dev eth0"), false),
            ("link set eth0 up".into(), false),
            (format!("route add default via {h} dev eth0"), false),
        ]
    );
    // The host's namespace is let go before the instance's own side is configured.
    let last_host = calls
        .iter()
        .rposition(|c| matches!(c, Call::Ip { in_host: true, .. }))
        .expect("host commands");
    assert!(last_host < release);
}

#[test]
fn a_taken_slot_is_skipped_and_a_full_pool_fails_the_start() {
    let plan = egress_plan();
    let egress = plan.egress.clone().expect("egress");
    let first = egress.pool.link(egress.first_slot);
    let second = egress.pool.link(egress.first_slot + 1);
    let mut sys = RecordingSyscalls::new();
    sys.forks.push_back(Fork::Parent(42));
    sys.taken = vec![first.host_if.clone()];
    apply(&plan, &mut sys).expect("apply");
    let creates: Vec<String> = sys
        .calls
        .iter()
        .filter_map(ip_line)
        .filter(|(l, _)| l.starts_with("link add"))
        .map(|(l, _)| l)
        .collect();
    assert_eq!(creates.len(), 2);
    assert!(creates[1].contains(&format!("peer name {} ", second.host_if)));
    assert!(
        sys.calls.iter().filter_map(ip_line).any(|(l, host)| host
            && l == format!("addr add {}/30 dev {}", second.host_addr, second.host_if))
    );

    let mut full = RecordingSyscalls::new();
    full.taken = egress
        .candidates()
        .map(|s| egress.pool.link(s).host_if)
        .collect();
    let err = apply(&plan, &mut full).expect_err("no free slot");
    assert!(err.to_string().contains("no free instance link"), "{err}");
    assert!(!full.calls.contains(&Call::Fork), "nothing is started");
}

#[test]
fn without_egress_the_instance_keeps_loopback_only() {
    let (_, calls) = program_path(&plan());
    assert!(!calls.iter().any(|c| matches!(
        c,
        Call::Ip { .. } | Call::KeepHostNetns | Call::ReleaseHostNetns
    )));
    assert!(calls.contains(&Call::LoopbackUp));
}
