use super::*;

fn pool() -> Ipv4Pool {
    Ipv4Pool::parse(DEFAULT_EGRESS_POOL).expect("pool")
}

fn egress() -> EgressPlan {
    EgressPlan::build(
        "i42-7",
        &EgressSpec {
            pool: pool(),
            ip: "/usr/sbin/ip".into(),
        },
    )
    .expect("plan")
}

#[test]
fn pools_parse_and_refuse_what_is_not_a_network() {
    let p = pool();
    assert_eq!(p.base, Ipv4Addr::new(198, 18, 0, 0));
    assert_eq!(p.prefix, 16);
    assert_eq!(p.slots(), 16384);
    assert_eq!(p.to_string(), "198.18.0.0/16");
    for bad in [
        "198.18.0.1/16",
        "198.18.0.0",
        "198.18.0.0/31",
        "198.18.0.0/7",
        "x/16",
        "198.18.0.0/x",
    ] {
        assert!(Ipv4Pool::parse(bad).is_err(), "{bad} was accepted");
    }
    assert_eq!(Ipv4Pool::parse("10.1.2.0/30").expect("tiny").slots(), 1);
}

#[test]
fn a_slot_is_a_slash_30_with_the_host_side_first() {
    let p = pool();
    let first = p.link(0);
    assert_eq!(first.host_if, "stn0");
    assert_eq!(first.host_addr, Ipv4Addr::new(198, 18, 0, 1));
    assert_eq!(first.instance_addr, Ipv4Addr::new(198, 18, 0, 2));
    let last = p.link(16383);
    assert_eq!(last.host_if, "stn16383");
    assert!(
        last.host_if.len() < 16,
        "interface names have 15 characters"
    );
    assert_eq!(last.host_addr, Ipv4Addr::new(198, 18, 255, 253));
    assert_eq!(last.instance_addr, Ipv4Addr::new(198, 18, 255, 254));
    assert_eq!(p.link(16384), first, "slots wrap around");
    assert!(p.contains(last.instance_addr));
    assert!(!p.contains(Ipv4Addr::new(198, 19, 0, 1)));
}

#[test]
fn the_link_commands_create_both_ends_at_once_and_route_through_the_host_side() {
    let e = egress();
    assert_eq!(e.attempts, MAX_ATTEMPTS);
    assert!(e.first_slot < 16384);
    let slots: Vec<u32> = e.candidates().collect();
    assert_eq!(slots.len(), MAX_ATTEMPTS as usize);
    assert_eq!(slots[0], e.first_slot);
    assert_eq!(slots[1], (e.first_slot + 1) % 16384);
    let link = pool().link(5);
    assert_eq!(
        e.create_args(&link, Path::new("/proc/1/fd/4")).join(" "),
        "link add eth0 type veth peer name stn5 netns /proc/1/fd/4"
    );
    let host: Vec<String> = e.host_args(&link).iter().map(|a| a.join(" ")).collect();
    assert_eq!(
        host,
        ["addr add 198.18.0.21/30 dev stn5", "link set stn5 up"]
    );
    let inside: Vec<String> = e.instance_args(&link).iter().map(|a| a.join(" ")).collect();
    assert_eq!(
        inside,
        [
            "addr add 198.18.0.22/30 dev eth0",
            "link set eth0 up",
            "route add default via 198.18.0.21 dev eth0"
        ]
    );
}

#[test]
fn instances_spread_over_the_pool() {
    let spec = EgressSpec {
        pool: pool(),
        ip: "/usr/sbin/ip".into(),
    };
    let firsts: std::collections::BTreeSet<u32> = (0..100)
        .map(|n| {
            EgressPlan::build(&format!("i1-{n}"), &spec)
                .expect("plan")
                .first_slot
        })
        .collect();
    assert!(firsts.len() > 90, "{} distinct first slots", firsts.len());
    let relative = EgressSpec {
        ip: "ip".into(),
        ..spec
    };
    assert!(EgressPlan::build("i1-1", &relative).is_err());
}

#[test]
fn nameservers_skip_loopback_and_ipv6() {
    let conf = "# generated\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\n\
                nameserver 2001:db8::1\nsearch example\nnameserver 0.0.0.0\n nameserver 9.9.9.9 \n";
    assert_eq!(
        usable_nameservers(conf),
        [Ipv4Addr::new(10, 255, 255, 53), Ipv4Addr::new(9, 9, 9, 9)]
    );
    assert!(usable_nameservers("nameserver 127.0.0.53\n").is_empty());
    assert_eq!(
        resolv_conf(&[Ipv4Addr::new(9, 9, 9, 9)]),
        "nameserver 9.9.9.9\noptions timeout:2 attempts:2\n"
    );
    assert_eq!(resolv_conf(&[]), "");
}

#[test]
fn blocked_destinations_cover_private_link_local_loopback_and_the_pool_but_not_the_outside() {
    let blocked = blocked_destinations(&pool());
    for net in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "198.18.0.0/16",
    ] {
        assert!(blocked.iter().any(|b| b == net), "{net} is not blocked");
    }
    let nets: Vec<(u32, u8)> = blocked.iter().filter_map(|s| net_of(s)).collect();
    let outside = (u32::from(Ipv4Addr::new(198, 19, 0, 0)), 16);
    assert!(!nets.iter().any(|n| covers(*n, outside)));
    // A pool inside a blocked range is covered by it (nftables refuses overlapping intervals).
    let inner = Ipv4Pool::parse("10.200.0.0/16").expect("pool");
    let blocked = blocked_destinations(&inner);
    assert!(!blocked.iter().any(|b| b == "10.200.0.0/16"));
    assert_eq!(blocked.len(), BLOCKED_RANGES.len());
}

#[test]
fn the_table_drops_instance_traffic_to_the_host_each_other_and_private_ranges_and_masquerades_the_rest()
 {
    let script = rules("stratus_42", &pool(), &[Ipv4Addr::new(10, 255, 255, 53)]);
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("no line {needle:?} in\n{script}"))
    };
    // Replaced in one transaction, without failing when it does not exist yet.
    assert_eq!(lines[0], "table inet stratus_42 {");
    assert_eq!(lines[2], "delete table inet stratus_42");
    let input = at("chain input {");
    let forward = at("chain forward {");
    let post = at("chain postrouting {");
    assert!(input < forward && forward < post);
    let dns =
        "iifname \"stn*\" ip daddr { 10.255.255.53 } meta l4proto { tcp, udp } th dport 53 accept";
    // The host itself: only DNS to the configured nameserver, then everything dropped.
    let host_dns = (input..forward).find(|&i| lines[i] == dns).expect("dns");
    let host_drop = at("iifname \"stn*\" drop");
    assert!(input < host_dns && host_dns < host_drop && host_drop < forward);
    // Forwarded: no other instance, no IPv6, no spoofing, then the blocked destinations.
    let other = at("iifname \"stn*\" oifname \"stn*\" drop");
    let v6 = at("iifname \"stn*\" meta nfproto ipv6 drop");
    let spoof = at("iifname \"stn*\" ip saddr != 198.18.0.0/16 drop");
    let fwd_dns = (forward..post).find(|&i| lines[i] == dns).expect("dns");
    let ranges = at(
        "iifname \"stn*\" ip daddr { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, \
         172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/3, 198.18.0.0/16 } drop",
    );
    assert!(forward < other && other < v6 && v6 < spoof && spoof < fwd_dns && fwd_dns < ranges);
    assert!(ranges < post);
    at("ip saddr 198.18.0.0/16 oifname != \"stn*\" masquerade");
    // Nothing is accepted but DNS.
    assert_eq!(lines.iter().filter(|l| l.ends_with("accept")).count(), 2);
    assert_eq!(
        lines.iter().filter(|l| l.contains("policy accept")).count(),
        3,
        "base chains let other traffic through to the host's own rules"
    );

    let without_dns = rules("stratus_42", &pool(), &[]);
    assert!(!without_dns.contains("dport 53"));
}

#[test]
fn leftover_tables_are_found_by_server_pid() {
    let listing = "table ip nat\ntable inet stratus_123\ntable inet stratus_x\ntable inet filter\n\
                   table inet stratus_9\ntable ip stratus_5\n";
    assert_eq!(
        tables_in(listing),
        [
            ("stratus_123".to_string(), 123),
            ("stratus_9".to_string(), 9)
        ]
    );
    assert_eq!(table_name(77), "stratus_77");
}
