//! Root-only: instances with outbound network reach an "outside world" (a network namespace this test creates
//! in 198.19.0.0/16, with a tiny HTTP server), instances without cannot, and neither reaches the host itself.
//! Every namespace, link and table the test makes is named after its pid and removed at the end.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use prereq::{has_command, has_root, require};
use sandbox::net::{self, EgressRules, EgressSpec, Ipv4Pool};
use sandbox::{Helper, InstanceSpec, Plan, SpawnIo, spawn};

fn helper() -> Helper {
    Helper {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_sandbox-helper")),
        ..Helper::default()
    }
}

fn sh(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(program: &Path, args: &[&str]) {
    assert!(
        sh(program, args),
        "{} {}",
        program.display(),
        args.join(" ")
    );
}

fn output(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The test's outside world: a namespace with a veth to the host and an HTTP server; removed when dropped.
struct Outside {
    ip: PathBuf,
    netns: String,
    host_if: String,
    host_addr: Ipv4Addr,
    server_addr: Ipv4Addr,
    server: Option<std::process::Child>,
}

const SERVER_PORT: u16 = 8080;

impl Outside {
    fn new(ip: &Path) -> Outside {
        let pid = std::process::id();
        let k = (pid % 64) as u8 * 4;
        let mut o = Outside {
            ip: ip.to_path_buf(),
            netns: format!("stX{pid}o"),
            host_if: format!("stX{pid}a"),
            host_addr: Ipv4Addr::new(198, 19, 0, k + 1),
            server_addr: Ipv4Addr::new(198, 19, 0, k + 2),
            server: None,
        };
        let peer = format!("stX{pid}b");
        must(ip, &["netns", "add", &o.netns]);
        must(
            ip,
            &[
                "link", "add", &o.host_if, "type", "veth", "peer", "name", &peer, "netns", &o.netns,
            ],
        );
        must(
            ip,
            &[
                "addr",
                "add",
                &format!("{}/30", o.host_addr),
                "dev",
                &o.host_if,
            ],
        );
        must(ip, &["link", "set", &o.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &o.netns, ip.to_str().expect("ip path")];
            all.extend_from_slice(args);
            must(ip, &all);
        };
        inside(&[
            "addr",
            "add",
            &format!("{}/30", o.server_addr),
            "dev",
            &peer,
        ]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        let script = format!(
            "import http.server\n\
             class H(http.server.BaseHTTPRequestHandler):\n\
             \x20   def do_GET(self):\n\
             \x20       body = b'hello from outside'\n\
             \x20       self.send_response(200)\n\
             \x20       self.send_header('Content-Length', str(len(body)))\n\
             \x20       self.end_headers()\n\
             \x20       self.wfile.write(body)\n\
             \x20   def log_message(self, *a):\n\
             \x20       pass\n\
             http.server.HTTPServer(('{}', {SERVER_PORT}), H).serve_forever()\n",
            o.server_addr
        );
        let server = Command::new(ip)
            .args(["netns", "exec", &o.netns, "python3", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("outside server");
        o.server = Some(server);
        let addr = SocketAddrV4::new(o.server_addr, SERVER_PORT);
        let up = (0..100).any(|_| {
            let ok = TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok();
            if !ok {
                std::thread::sleep(Duration::from_millis(50));
            }
            ok
        });
        assert!(up, "the outside server did not start");
        o
    }

    fn url(&self) -> String {
        format!("http://{}:{SERVER_PORT}/", self.server_addr)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = sh(&self.ip, &["link", "del", &self.host_if]);
        let _ = sh(&self.ip, &["netns", "del", &self.netns]);
    }
}

const PROBE: &str = r#"
import socket, sys, urllib.request
url, port, host_addr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def gateway():
    for line in open('/proc/net/route').read().splitlines()[1:]:
        f = line.split()
        if f[1] == '00000000':
            return socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
    return None
def probe(host):
    if host is None:
        return 'noroute'
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return 'connected'
    except ConnectionRefusedError:
        return 'refused'
    except OSError:
        return 'failed'
    finally:
        s.close()
try:
    with urllib.request.urlopen(url, timeout=5) as r:
        print('fetch=%d %s' % (r.status, r.read().decode()))
except Exception as e:
    print('fetch=failed ' + type(e).__name__)
g = gateway()
print('gateway=%s' % g)
print('gateway_port=' + probe(g))
print('host_addr_port=' + probe(host_addr))
print('loopback_port=' + probe('127.0.0.1'))
print('ifaces=' + ' '.join(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:])))
print('resolv=' + open('/etc/resolv.conf').read().replace('\n', '|'))
"#;

fn run_probe(
    code: &Path,
    name: &str,
    egress: Option<EgressSpec>,
    args: &[String],
) -> std::collections::BTreeMap<String, String> {
    let id = format!("eg-{}-{name}", std::process::id());
    let mut spec = InstanceSpec::new(id, code, "/usr/bin/python3");
    spec.args = vec!["-c".into(), PROBE.into()];
    spec.args.extend(args.iter().cloned());
    spec.uid = 41000 + (std::process::id() % 1000);
    spec.gid = spec.uid;
    if egress.is_some() {
        spec.resolv_conf = "nameserver 198.19.0.53\n".into();
    }
    spec.egress = egress;
    let plan = Plan::build(&spec.canonicalized().expect("canonical")).expect("plan");
    let (mut out_r, out_w) = std::io::pipe().expect("pipe");
    let io = SpawnIo {
        stdout: Some(OwnedFd::from(out_w)),
        ..SpawnIo::default()
    };
    let mut child = spawn(&plan, io, &helper()).expect("spawn");
    let mut stdout = String::new();
    let _ = out_r.read_to_string(&mut stdout);
    let status = child.wait().expect("wait");
    child.cleanup().expect("cleanup");
    assert!(status.success(), "{status}: {stdout}");
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn enable_reaches_the_outside_disable_does_not_and_neither_reaches_the_host() {
    require!(
        has_root(),
        "root (instance links and firewall rules need it)"
    );
    require!(has_command("nft"), "nft (Debian's nftables package)");
    require!(has_command("python3"), "python3");
    let (Some(ip), Some(nft)) = (net::find_ip(), net::find_nft()) else {
        require!(
            false,
            "ip (iproute2) and nft in /usr/sbin, /sbin, /usr/bin or /bin"
        );
        return;
    };
    require!(
        Path::new("/usr/bin/python3").exists(),
        "/usr/bin/python3 (the instance's interpreter)"
    );
    let pid = std::process::id();
    let table = net::table_name(pid);
    let pool = Ipv4Pool::parse(net::DEFAULT_EGRESS_POOL).expect("pool");

    let dir = tempfile::Builder::new()
        .prefix("sandbox-egress-")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let code = fs::canonicalize(dir.path()).expect("canonical");
    fs::set_permissions(&code, fs::Permissions::from_mode(0o755)).expect("chmod");

    {
        let outside = Outside::new(&ip);
        let rules = EgressRules::install(&nft, &table, &pool, &[]).expect("rules");
        assert_eq!(rules.table(), table);
        // Stands for the API and the function listener: every address of the host, on one port.
        let host = TcpListener::bind("0.0.0.0:0").expect("bind");
        host.set_nonblocking(true).expect("nonblocking");
        let port = host.local_addr().expect("addr").port().to_string();
        let args = [outside.url(), port, outside.host_addr.to_string()];

        let spec = EgressSpec {
            pool,
            ip: ip.clone(),
        };
        let on = run_probe(&code, "on", Some(spec), &args);
        assert_eq!(on["fetch"], "200 hello from outside", "{on:?}");
        let gateway: Ipv4Addr = on["gateway"].parse().expect("a default route");
        assert!(pool.contains(gateway), "{gateway}");
        assert_eq!(on["gateway_port"], "failed", "the host through its link");
        assert_eq!(on["host_addr_port"], "failed", "the host's other address");
        assert_eq!(on["loopback_port"], "refused", "its own loopback only");
        assert_eq!(on["ifaces"], "eth0 lo");
        assert_eq!(on["resolv"], "nameserver 198.19.0.53|");
        // The link went with the instance.
        let left = output(&ip, &["-o", "addr", "show", "to", &format!("{gateway}/32")]);
        assert!(left.trim().is_empty(), "the host side is left: {left}");

        let off = run_probe(&code, "off", None, &args);
        assert!(off["fetch"].starts_with("failed"), "{off:?}");
        assert_eq!(off["gateway"], "None");
        assert_eq!(off["gateway_port"], "noroute");
        assert_eq!(off["host_addr_port"], "failed");
        assert_eq!(off["loopback_port"], "refused");
        assert_eq!(off["ifaces"], "lo");

        assert!(host.accept().is_err(), "an instance reached the host");
        let listed = output(&nft, &["list", "tables"]);
        assert!(listed.contains(&format!("table inet {table}")), "{listed}");
    }

    // Nothing of the test's is left: the table, the outside namespace and its link.
    let listed = output(&nft, &["list", "tables"]);
    assert!(
        !listed.contains(&format!("table inet {table}\n")),
        "{listed}"
    );
    assert!(!sh(&ip, &["link", "show", &format!("stX{pid}a")]));
    assert!(!output(&ip, &["netns", "list"]).contains(&format!("stX{pid}o")));
}
