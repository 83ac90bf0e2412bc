use super::*;
use crate::cgroup::{CgroupStep, CgroupVersion};

fn spec() -> InstanceSpec {
    InstanceSpec {
        id: "fn-1".into(),
        code_dir: "/data/code/abc".into(),
        layers: vec![],
        system: vec![
            SystemPath::Bind {
                path: "/usr".into(),
                kind: NodeKind::Dir,
            },
            SystemPath::Symlink {
                path: "/bin".into(),
                target: "usr/bin".into(),
            },
            SystemPath::Bind {
                path: "/etc/ssl".into(),
                kind: NodeKind::Dir,
            },
            SystemPath::Bind {
                path: "/etc/ld.so.cache".into(),
                kind: NodeKind::File,
            },
        ],
        forbidden: vec!["/data".into(), "/etc/stratus/keys".into()],
        program: "/usr/bin/python3".into(),
        args: vec!["-u".into(), "/var/user/index.py".into()],
        env: vec![("A".into(), "1".into()), ("B".into(), "x=y".into())],
        memory_limit_bytes: 256 << 20,
        tmp_size_bytes: DEFAULT_TMP_SIZE,
        max_processes: 1024,
        max_open_files: 1024,
        uid: 10001,
        gid: 10001,
        hostname: "scf".into(),
        cgroup: CgroupConfig {
            version: CgroupVersion::V1,
            root: "/sys/fs/cgroup".into(),
            parent: "stratus".into(),
        },
        staging_dir: DEFAULT_STAGING_DIR.into(),
        extra_fds: 2,
        runtime_listen: Some("127.0.0.1:9001".parse().expect("addr")),
        resolv_conf: String::new(),
        seccomp: true,
        egress: None,
    }
}

fn position(plan: &Plan, pred: impl Fn(&MountOp) -> bool) -> usize {
    plan.mounts
        .iter()
        .position(pred)
        .expect("the plan holds the step")
}

fn invalid(spec: &InstanceSpec) -> String {
    match Plan::build(spec) {
        Err(SandboxError::InvalidSpec(m)) => m,
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

#[test]
fn code_is_bound_read_only_at_var_user_and_is_the_working_directory() {
    let plan = Plan::build(&spec()).expect("plan");
    assert!(plan.mounts.contains(&MountOp::Bind {
        source: "/data/code/abc".into(),
        path: CODE_PATH.into(),
        device: false,
    }));
    // the mount point exists before the bind
    let dir = position(
        &plan,
        |m| matches!(m, MountOp::Dir { path, .. } if path == Path::new("/var/user")),
    );
    let var = position(
        &plan,
        |m| matches!(m, MountOp::Dir { path, .. } if path == Path::new("/var")),
    );
    let bind = position(
        &plan,
        |m| matches!(m, MountOp::Bind { path, .. } if path == Path::new("/var/user")),
    );
    assert!(var < dir && dir < bind);
    assert_eq!(plan.cwd, Path::new("/var/user"));
}

#[test]
fn layers_are_overlaid_in_binding_order_later_on_top() {
    let mut s = spec();
    s.layers = vec![
        "/data/layers/a".into(),
        "/data/layers/b".into(),
        "/data/layers/c".into(),
    ];
    let plan = Plan::build(&s).expect("plan");
    let lowers = plan
        .mounts
        .iter()
        .find_map(|m| match m {
            MountOp::Overlay { path, lowers } if path == Path::new("/opt") => Some(lowers.clone()),
            _ => None,
        })
        .expect("an overlay at /opt");
    assert_eq!(lowers, s.layers);
    // overlayfs' first lowerdir is the top one: c overrides b overrides a
    assert_eq!(
        overlay_options(&lowers),
        "lowerdir=/data/layers/c:/data/layers/b:/data/layers/a"
    );
}

#[test]
fn one_layer_is_a_plain_bind_and_none_leaves_an_empty_opt() {
    let mut s = spec();
    s.layers = vec!["/data/layers/a".into()];
    let plan = Plan::build(&s).expect("plan");
    assert!(plan.mounts.contains(&MountOp::Bind {
        source: "/data/layers/a".into(),
        path: "/opt".into(),
        device: false
    }));
    let plan = Plan::build(&spec()).expect("plan");
    assert!(
        plan.mounts
            .iter()
            .all(|m| m.path() != Path::new("/opt") || matches!(m, MountOp::Dir { .. }))
    );
}

#[test]
fn layer_paths_that_would_break_overlay_options_are_refused() {
    let mut s = spec();
    s.layers = vec!["/data/a:b".into(), "/data/c".into()];
    assert!(invalid(&s).contains("':'"));
}

#[test]
fn nothing_mounted_exposes_a_forbidden_path() {
    let mut s = spec();
    s.layers = vec!["/data/layers/a".into(), "/data/layers/b".into()];
    let plan = Plan::build(&s).expect("plan");
    for source in plan.mount_sources() {
        for f in &s.forbidden {
            assert!(
                !f.starts_with(source),
                "{} exposes {}",
                source.display(),
                f.display()
            );
        }
    }
    // and a spec that would is refused, whichever way the path comes in
    let mut s = spec();
    s.system.push(SystemPath::Bind {
        path: "/etc/stratus".into(),
        kind: NodeKind::Dir,
    });
    assert!(invalid(&s).contains("/etc/stratus/keys"));
    let mut s = spec();
    s.code_dir = "/data".into();
    assert!(invalid(&s).contains("forbidden"));
    let mut s = spec();
    s.layers = vec!["/".into(), "/data/layers/a".into()];
    assert!(invalid(&s).contains("forbidden"));
    let mut s = spec();
    s.code_dir = "/data/code/../..".into();
    assert!(invalid(&s).contains("canonical"));
}

#[test]
fn host_system_paths_are_read_only_binds_or_symlinks() {
    let plan = Plan::build(&spec()).expect("plan");
    assert!(plan.mounts.contains(&MountOp::Bind {
        source: "/usr".into(),
        path: "/usr".into(),
        device: false
    }));
    assert!(plan.mounts.contains(&MountOp::Symlink {
        path: "/bin".into(),
        target: "usr/bin".into()
    }));
    // a file bind gets a file mount point first
    let file = position(
        &plan,
        |m| matches!(m, MountOp::File { path, .. } if path == Path::new("/etc/ld.so.cache")),
    );
    let bind = position(
        &plan,
        |m| matches!(m, MountOp::Bind { path, .. } if path == Path::new("/etc/ld.so.cache")),
    );
    assert!(file < bind);
}

#[test]
fn etc_is_generated_with_the_instance_identity() {
    let plan = Plan::build(&spec()).expect("plan");
    let file = |name: &str| {
        plan.mounts
            .iter()
            .find_map(|m| match m {
                MountOp::File { path, contents, .. } if path == Path::new(name) => {
                    Some(contents.clone())
                }
                _ => None,
            })
            .expect("generated")
    };
    assert!(file("/etc/passwd").contains("user:x:10001:10001:"));
    assert!(file("/etc/group").contains("user:x:10001:"));
    assert!(file("/etc/hosts").contains("127.0.0.1\tlocalhost scf"));
    // a host /etc/hosts may not be bound over the generated one
    let mut s = spec();
    s.system.push(SystemPath::Bind {
        path: "/etc/hosts".into(),
        kind: NodeKind::File,
    });
    assert!(invalid(&s).contains("mounted twice"));
}

#[test]
fn tmp_proc_and_dev_are_private() {
    let plan = Plan::build(&spec()).expect("plan");
    assert!(plan.mounts.contains(&MountOp::Tmpfs {
        path: "/tmp".into(),
        size_bytes: 512 << 20,
        mode: 0o1777
    }));
    assert!(plan.mounts.contains(&MountOp::Proc {
        path: "/proc".into()
    }));
    for dev in ["null", "zero", "urandom", "random"] {
        let path = PathBuf::from("/dev").join(dev);
        assert!(plan.mounts.contains(&MountOp::Bind {
            source: path.clone(),
            path,
            device: true
        }));
    }
    // /dev becomes read-only only after its nodes are in place
    let last_bind = plan
        .mounts
        .iter()
        .rposition(|m| matches!(m, MountOp::Bind { device: true, .. }))
        .expect("device binds");
    let ro = position(
        &plan,
        |m| matches!(m, MountOp::Readonly { path } if path == Path::new("/dev")),
    );
    assert!(last_bind < ro);
    assert!(plan.readonly_root);
    // only device nodes are bound without nodev
    for m in &plan.mounts {
        if let MountOp::Bind {
            source,
            device: true,
            ..
        } = m
        {
            assert!(source.starts_with("/dev"));
        }
    }
}

#[test]
fn limits_identity_and_namespaces() {
    let plan = Plan::build(&spec()).expect("plan");
    assert_eq!(
        plan.rlimits,
        [
            Rlimit {
                resource: Resource::Nproc,
                soft: 1024,
                hard: 1024
            },
            Rlimit {
                resource: Resource::Nofile,
                soft: 1024,
                hard: 1024
            },
            Rlimit {
                resource: Resource::Core,
                soft: 0,
                hard: 0
            },
        ]
    );
    assert_eq!((plan.uid, plan.gid), (10001, 10001));
    assert!(plan.no_new_privs);
    assert_eq!(
        plan.seccomp,
        crate::seccomp::instance_filters().expect("filters")
    );
    for ns in [
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Net,
        Namespace::Cgroup,
    ] {
        assert!(plan.namespaces.contains(&ns), "{ns:?}");
    }
    assert!(plan.loopback_up);
    assert_eq!(
        plan.runtime_listen,
        Some("127.0.0.1:9001".parse().expect("addr"))
    );
    assert_eq!(plan.env, ["A=1", "B=x=y"]);
    assert_eq!(plan.extra_fds, 2);
    assert!(plan.cgroup.steps.contains(&CgroupStep::Write {
        path: "/sys/fs/cgroup/memory/stratus/fn-1/memory.limit_in_bytes".into(),
        value: (256u64 << 20).to_string(),
        required: true
    }));
    assert!(plan.cgroup.steps.contains(&CgroupStep::Write {
        path: "/sys/fs/cgroup/pids/stratus/fn-1/pids.max".into(),
        value: "1024".into(),
        required: true
    }));
}

#[test]
fn v2_cgroup_plan_follows_the_spec() {
    let mut s = spec();
    s.cgroup.version = CgroupVersion::V2;
    let plan = Plan::build(&s).expect("plan");
    assert_eq!(
        plan.cgroup.join,
        [PathBuf::from("/sys/fs/cgroup/stratus/fn-1/cgroup.procs")]
    );
    assert!(plan.cgroup.steps.contains(&CgroupStep::Write {
        path: "/sys/fs/cgroup/stratus/fn-1/memory.max".into(),
        value: (256u64 << 20).to_string(),
        required: true
    }));
}

#[test]
fn unsafe_specs_are_refused() {
    let mut s = spec();
    s.uid = 0;
    assert!(invalid(&s).contains("root"));
    let mut s = spec();
    s.id = "../x".into();
    invalid(&s);
    let mut s = spec();
    s.runtime_listen = Some("0.0.0.0:9001".parse().expect("addr"));
    assert!(invalid(&s).contains("loopback"));
    let mut s = spec();
    s.env.push(("A=B".into(), "c".into()));
    invalid(&s);
    let mut s = spec();
    s.args.push("a\0b".into());
    invalid(&s);
    let mut s = spec();
    s.program = "python3".into();
    invalid(&s);
}

#[test]
fn canonicalizing_catches_a_symlink_into_a_forbidden_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::create_dir_all(root.join("data/code")).expect("mkdir");
    std::os::unix::fs::symlink(root.join("data"), root.join("innocent")).expect("symlink");
    let mut s = spec();
    s.code_dir = root.join("innocent");
    s.forbidden = vec![root.join("data")];
    // textually fine, really the data dir
    assert!(Plan::build(&s).is_ok());
    let s = s.canonicalized().expect("canonical");
    assert_eq!(s.code_dir, root.join("data"));
    assert!(invalid(&s).contains("forbidden"));
    let mut s = spec();
    s.code_dir = root.join("missing");
    assert!(matches!(
        s.canonicalized(),
        Err(SandboxError::InvalidSpec(_))
    ));
}

#[test]
fn plans_round_trip_through_bytes() {
    let mut s = spec();
    s.layers = vec!["/data/layers/a".into(), "/data/layers/b".into()];
    let plan = Plan::build(&s).expect("plan");
    let back = Plan::from_bytes(&plan.to_bytes().expect("encode")).expect("decode");
    assert_eq!(back, plan);
}

#[test]
fn egress_adds_a_network_section_and_disable_leaves_none() {
    let mut s = spec();
    assert_eq!(Plan::build(&s).expect("plan").egress, None);
    s.egress = Some(crate::net::EgressSpec {
        pool: crate::net::Ipv4Pool::parse("198.18.0.0/16").expect("pool"),
        ip: "/usr/sbin/ip".into(),
    });
    s.resolv_conf = "nameserver 9.9.9.9\n".into();
    let plan = Plan::build(&s).expect("plan");
    let egress = plan.egress.as_ref().expect("egress");
    assert_eq!(egress.pool.to_string(), "198.18.0.0/16");
    assert!(egress.first_slot < egress.pool.slots());
    assert!(plan.namespaces.contains(&Namespace::Net));
    assert!(plan.mounts.contains(&MountOp::File {
        path: "/etc/resolv.conf".into(),
        contents: "nameserver 9.9.9.9\n".into(),
        mode: 0o644,
    }));
    let again = Plan::from_bytes(&plan.to_bytes().expect("encode")).expect("decode");
    assert_eq!(again, plan);
    s.egress = Some(crate::net::EgressSpec {
        pool: crate::net::Ipv4Pool::parse("198.18.0.0/16").expect("pool"),
        ip: "ip".into(),
    });
    assert!(invalid(&s).contains("absolute"));
}
