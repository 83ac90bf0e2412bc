//! Outbound network for instances (`PublicNetStatus=ENABLE`): the per-instance link, as pure data the plan
//! carries, and the host's firewall table, generated as one nftables script.
//!
//! **The link.** The helper creates it right after unsharing the network namespace, with one `ip` command
//! that makes both ends at once: `eth0` in the instance's namespace and its peer `stn<slot>` in the host's.
//! A slot is a /30 of the pool (`198.18.0.0/16` by default): the host side gets its first address, the
//! instance its second and a default route through the host side. The host-side name doubles as the slot's
//! lock across every server on the host: creating it fails with "File exists" while another instance holds
//! the slot, and the helper tries the next one. Since the instance side lives in the instance's namespace,
//! the kernel destroys the pair when that namespace goes away (the instance ended, or its server was killed
//! and the helper's lifeline killed it): nothing is left to clean up, even after a `kill -9`.
//!
//! **The firewall.** One table per server, `inet stratus_<server pid>` (so that servers sharing a host, and
//! tests, never remove each other's rules; the rules are the same, and a drop in any table is final), with
//! base chains that drop, for traffic coming in on an `stn*` link: everything addressed to the host itself
//! (the API, the function listener, the database; DNS to a configured nameserver excepted), everything going
//! to another instance link, IPv6, and forwarded traffic to the loopback, link-local (`169.254.0.0/16`, the
//! cloud metadata service), private, shared (`100.64.0.0/10`), multicast and reserved ranges and to the pool
//! itself; source addresses outside the pool are dropped too (no spoofing). Traffic from the pool that
//! leaves through any other interface is masqueraded. A table whose server pid is gone is removed at the
//! next start.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// The default pool instance links are carved from (RFC 2544's benchmarking range, never routed).
pub const DEFAULT_EGRESS_POOL: &str = "198.18.0.0/16";
/// Host-side link names: this prefix and the slot number. Nothing else on the host may use it.
pub const HOST_LINK_PREFIX: &str = "stn";
/// The instance side's name inside its namespace.
pub const INSTANCE_LINK: &str = "eth0";
/// How many slots the helper tries before the start fails (the pool is full, or nearly).
pub const MAX_ATTEMPTS: u32 = 256;
/// The prefix of the per-server firewall tables (`inet stratus_<pid>`).
pub const TABLE_PREFIX: &str = "stratus_";

/// Destinations an instance never reaches through its link, besides the pool itself.
pub const BLOCKED_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
];

/// An IPv4 network of /30 slots, one per instance link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Pool {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

/// One instance's link: the names and addresses of both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    pub instance_addr: Ipv4Addr,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Ipv4Pool {
    /// Parses `a.b.c.d/n`; the address must be the network's first one, `n` between 8 and 30.
    pub fn parse(s: &str) -> Result<Ipv4Pool, SandboxError> {
        let invalid = |why: &str| SandboxError::InvalidSpec(format!("egress pool {s:?}: {why}"));
        let (addr, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| invalid("expected a.b.c.d/n"))?;
        let base: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| invalid("the prefix length must be 8 to 30"))?;
        if u32::from(base) & !mask(prefix) != 0 {
            return Err(invalid("the address is not the network's first"));
        }
        Ok(Ipv4Pool { base, prefix })
    }

    /// How many /30 links the pool holds.
    pub fn slots(&self) -> u32 {
        1 << (30 - u32::from(self.prefix))
    }

    /// Whether `addr` lies in the pool.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.base)
    }

    /// The link of slot `slot` (taken modulo the pool's size).
    pub fn link(&self, slot: u32) -> Link {
        let slot = slot % self.slots();
        let net = u32::from(self.base) + slot * 4;
        Link {
            host_if: format!("{HOST_LINK_PREFIX}{slot}"),
            host_addr: Ipv4Addr::from(net + 1),
            instance_addr: Ipv4Addr::from(net + 2),
        }
    }
}

impl std::fmt::Display for Ipv4Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// What an instance with outbound network needs, as the caller gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressSpec {
    pub pool: Ipv4Pool,
    /// The `ip` program of iproute2 (an absolute host path; see [`find_ip`]).
    pub ip: PathBuf,
}

/// The network section of a plan with outbound network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPlan {
    pub ip: PathBuf,
    pub pool: Ipv4Pool,
    /// The slot tried first (from the instance id, so that instances spread over the pool); then the next
    /// ones, `attempts` in all.
    pub first_slot: u32,
    pub attempts: u32,
}

/// FNV-1a: a stable spread of instance ids over the pool (not a security measure).
fn spread(id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl EgressPlan {
    pub fn build(id: &str, spec: &EgressSpec) -> Result<EgressPlan, SandboxError> {
        if !spec.ip.is_absolute() {
            return Err(SandboxError::InvalidSpec(format!(
                "the ip program must be an absolute path: {}",
                spec.ip.display()
            )));
        }
        let slots = spec.pool.slots();
        Ok(EgressPlan {
            ip: spec.ip.clone(),
            pool: spec.pool,
            first_slot: spread(id) % slots,
            attempts: slots.min(MAX_ATTEMPTS),
        })
    }

    /// The slots to try, in order.
    pub fn candidates(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.attempts).map(|i| (self.first_slot + i) % self.pool.slots())
    }

    /// Run inside the instance's namespace: creates `eth0` here and its peer in the namespace at
    /// `host_netns` (a path `ip` can open).
    pub fn create_args(&self, link: &Link, host_netns: &Path) -> Vec<String> {
        [
            "link",
            "add",
            INSTANCE_LINK,
            "type",
            "veth",
            "peer",
            "name",
            &link.host_if,
            "netns",
            &host_netns.to_string_lossy(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// Run in the host's namespace: the host side's address, then up.
    pub fn host_args(&self, link: &Link) -> Vec<Vec<String>> {
        vec![
            strings(&[
                "addr",
                "add",
                &format!("{}/30", link.host_addr),
                "dev",
                &link.host_if,
            ]),
            strings(&["link", "set", &link.host_if, "up"]),
        ]
    }

    /// Run inside the instance's namespace: its address, up, the default route through the host side.
    pub fn instance_args(&self, link: &Link) -> Vec<Vec<String>> {
        vec![
            strings(&[
                "addr",
                "add",
                &format!("{}/30", link.instance_addr),
                "dev",
                INSTANCE_LINK,
            ]),
            strings(&["link", "set", INSTANCE_LINK, "up"]),
            strings(&[
                "route",
                "add",
                "default",
                "via",
                &link.host_addr.to_string(),
                "dev",
                INSTANCE_LINK,
            ]),
        ]
    }
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The first of `/usr/sbin/ip`, `/sbin/ip`, `/usr/bin/ip`, `/bin/ip` that exists.
pub fn find_ip() -> Option<PathBuf> {
    find_program("ip")
}

/// The first of `/usr/sbin/nft`, `/sbin/nft`, `/usr/bin/nft`, `/bin/nft` that exists.
pub fn find_nft() -> Option<PathBuf> {
    find_program("nft")
}

fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The nameservers of a `resolv.conf` text that instances can use: IPv4 and not loopback.
pub fn usable_nameservers(resolv_conf: &str) -> Vec<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|w| w.parse::<Ipv4Addr>().ok())
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .collect()
}

/// The host's resolvers for instances: those of `/etc/resolv.conf` that are not on loopback; when there are
/// none (systemd-resolved's stub at 127.0.0.53), the upstream servers it lists in
/// `/run/systemd/resolve/resolv.conf`; else none (instances then resolve nothing but `/etc/hosts`; configure
/// `egress_nameservers`).
pub fn host_nameservers() -> Vec<Ipv4Addr> {
    for path in ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"] {
        let found = std::fs::read_to_string(path)
            .map(|s| usable_nameservers(&s))
            .unwrap_or_default();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// An instance's `/etc/resolv.conf` for these nameservers.
pub fn resolv_conf(nameservers: &[Ipv4Addr]) -> String {
    let mut out = String::new();
    for ns in nameservers {
        let _ = writeln!(out, "nameserver {ns}");
    }
    if !nameservers.is_empty() {
        out.push_str("options timeout:2 attempts:2\n");
    }
    out
}

fn net_of(s: &str) -> Option<(u32, u8)> {
    let (a, p) = s.split_once('/')?;
    Some((u32::from(a.parse::<Ipv4Addr>().ok()?), p.parse().ok()?))
}

fn covers(outer: (u32, u8), inner: (u32, u8)) -> bool {
    outer.1 <= inner.1 && inner.0 & mask(outer.1) == outer.0
}

/// The destinations forwarded instance traffic may not reach: [`BLOCKED_RANGES`] and the pool, without
/// overlaps (nftables refuses overlapping intervals).
pub fn blocked_destinations(pool: &Ipv4Pool) -> Vec<String> {
    let mut all: Vec<String> = BLOCKED_RANGES.iter().map(|s| s.to_string()).collect();
    all.push(pool.to_string());
    let nets: Vec<(u32, u8)> = all.iter().filter_map(|s| net_of(s)).collect();
    all.iter()
        .zip(&nets)
        .enumerate()
        .filter(|(i, (_, n))| {
            !nets
                .iter()
                .enumerate()
                .any(|(j, m)| j != *i && covers(*m, **n) && (m != *n || j < *i))
        })
        .map(|(_, (s, _))| s.clone())
        .collect()
}

/// The name of a server's firewall table.
pub fn table_name(server_pid: u32) -> String {
    format!("{TABLE_PREFIX}{server_pid}")
}

/// The nftables script that (re)creates `table` atomically: see the module docs for what it does.
pub fn rules(table: &str, pool: &Ipv4Pool, nameservers: &[Ipv4Addr]) -> String {
    let links = format!("iifname \"{HOST_LINK_PREFIX}*\"");
    let dns = if nameservers.is_empty() {
        None
    } else {
        let list: Vec<String> = nameservers.iter().map(ToString::to_string).collect();
        Some(format!(
            "{links} ip daddr {{ {} }} meta l4proto {{ tcp, udp }} th dport 53 accept",
            list.join(", ")
        ))
    };
    let mut s = String::new();
    // Declaring the table first makes the delete succeed when it does not exist yet; the file is one
    // transaction, so the old rules are replaced without a gap.
    let _ = writeln!(s, "table inet {table} {{\n}}");
    let _ = writeln!(s, "delete table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");
    let _ = writeln!(s, "\tchain input {{");
    let _ = writeln!(
        s,
        "\t\ttype filter hook input priority filter - 10; policy accept;"
    );
    if let Some(dns) = &dns {
        let _ = writeln!(s, "\t\t{dns}");
    }
    let _ = writeln!(s, "\t\t{links} drop");
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "\tchain forward {{");
    let _ = writeln!(
        s,
        "\t\ttype filter hook forward priority filter - 10; policy accept;"
    );
    let _ = writeln!(s, "\t\t{links} oifname \"{HOST_LINK_PREFIX}*\" drop");
    let _ = writeln!(s, "\t\t{links} meta nfproto ipv6 drop");
    let _ = writeln!(s, "\t\t{links} ip saddr != {pool} drop");
    if let Some(dns) = &dns {
        let _ = writeln!(s, "\t\t{dns}");
    }
    let _ = writeln!(
        s,
        "\t\t{links} ip daddr {{ {} }} drop",
        blocked_destinations(pool).join(", ")
    );
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "\tchain postrouting {{");
    let _ = writeln!(
        s,
        "\t\ttype nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        s,
        "\t\tip saddr {pool} oifname != \"{HOST_LINK_PREFIX}*\" masquerade"
    );
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "}}");
    s
}

fn run_nft(nft: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, SandboxError> {
    use std::io::Write as _;
    let what = format!("{} {}", nft.display(), args.join(" "));
    let mut child = Command::new(nft)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SandboxError::sys("spawn", what.clone(), e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| SandboxError::sys("write", what.clone(), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| SandboxError::sys("wait", what.clone(), e))?;
    if !out.status.success() {
        return Err(SandboxError::Setup(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A server's firewall table, installed by [`EgressRules::install`] and removed when dropped.
#[derive(Debug)]
pub struct EgressRules {
    nft: PathBuf,
    table: String,
}

impl EgressRules {
    /// Enables IPv4 forwarding (`net.ipv4.ip_forward`, which routing the instances' traffic needs) and
    /// (re)creates `table` with [`rules`].
    pub fn install(
        nft: &Path,
        table: &str,
        pool: &Ipv4Pool,
        nameservers: &[Ipv4Addr],
    ) -> Result<EgressRules, SandboxError> {
        run_nft(nft, &["-f", "-"], Some(&rules(table, pool, nameservers)))?;
        let rules = EgressRules {
            nft: nft.to_path_buf(),
            table: table.to_string(),
        };
        std::fs::write("/proc/sys/net/ipv4/ip_forward", b"1")
            .map_err(|e| SandboxError::sys("write", "/proc/sys/net/ipv4/ip_forward", e))?;
        Ok(rules)
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for EgressRules {
    fn drop(&mut self) {
        let _ = run_nft(&self.nft, &["delete", "table", "inet", &self.table], None);
    }
}

/// The server pids of the `inet stratus_<pid>` tables in `nft list tables` output.
pub fn tables_in(listing: &str) -> Vec<(String, u32)> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table inet "))
        .filter_map(|name| {
            let pid = name.strip_prefix(TABLE_PREFIX)?.parse().ok()?;
            Some((name.to_string(), pid))
        })
        .collect()
}

/// Removes the tables of servers that are gone (no `/proc/<pid>`); returns how many.
pub fn remove_leftover_tables(nft: &Path) -> Result<usize, SandboxError> {
    let listing = run_nft(nft, &["list", "tables"], None)?;
    let mut removed = 0;
    for (name, pid) in tables_in(&listing) {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            run_nft(nft, &["delete", "table", "inet", &name], None)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
