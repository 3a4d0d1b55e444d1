//! Separate hosts on one machine: the ledger, every node and every node's link each in a Linux
//! network namespace of its own, joined through veth pairs to a bridge in a namespace of its
//! own, with the addresses of [`crate::plan`]. Made with `ip` (iproute2, as root); every
//! namespace is deleted when [`Hosts`] is dropped, and those a killed devnet left behind are
//! deleted by the next one ([`sweep`]).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use crate::error::DevnetError;
use crate::plan;

/// Every namespace of a devnet is named `dnet<pid>-...` after the devnet's process.
const PREFIX: &str = "dnet";

/// The namespaces of one devnet; dropping it deletes them (their interfaces go with them).
#[derive(Debug)]
pub struct Hosts {
    prefix: String,
    nodes: usize,
    made: Vec<String>,
}

/// Runs `ip -batch -` (with `-n ns` when given) on `lines`; the first error line on failure.
fn batch(ns: Option<&str>, lines: &[String], force: bool) -> Result<(), String> {
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    if force {
        c.arg("-force");
    }
    let mut child = c
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip: {e} (network namespaces need iproute2)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(lines.join("\n").as_bytes())
            .map_err(|e| format!("ip: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err.lines().next().unwrap_or("failed").trim().to_owned())
}

impl Hosts {
    /// Makes the namespaces of a devnet of `nodes` nodes. Fails in one line when they cannot
    /// be made (not root, no `ip`); what was made is deleted again.
    pub fn create(nodes: usize) -> Result<Hosts, DevnetError> {
        if nodes > plan::MAX_NODES {
            return Err(DevnetError::Input(format!(
                "{nodes} nodes; separate hosts have addresses for {}",
                plan::MAX_NODES
            )));
        }
        sweep();
        let mut hosts = Hosts {
            prefix: format!("{PREFIX}{}", std::process::id()),
            nodes,
            made: Vec::new(),
        };
        let (b, l) = (hosts.bridge(), hosts.ledger());
        let mut top = vec![format!("netns add {b}"), format!("netns add {l}")];
        for i in 0..nodes {
            let (n, k) = (hosts.node(i), hosts.link(i));
            top.push(format!("netns add {n}"));
            top.push(format!("netns add {k}"));
        }
        let names: Vec<String> = top
            .iter()
            .filter_map(|l| l.strip_prefix("netns add ").map(str::to_owned))
            .collect();
        let made = batch(None, &top, false);
        // Whatever was made is ours to delete, even when a later line failed.
        let existing = list();
        hosts.made = names.into_iter().filter(|n| existing.contains(n)).collect();
        made.map_err(|e| {
            DevnetError::Input(format!(
                "separate hosts need network namespaces, made as root with `ip netns add`: {e}"
            ))
        })?;
        hosts.wire().map_err(|e| {
            DevnetError::Failed(format!("wiring the devnet's network namespaces: {e}"))
        })?;
        Ok(hosts)
    }

    /// The veth pairs, the bridge, the addresses and the routes of the plan.
    fn wire(&self) -> Result<(), String> {
        let (b, l) = (self.bridge(), self.ledger());
        let mut top = vec![format!(
            "link add name eth0 netns {l} address {} type veth peer name vl netns {b}",
            mac(plan::LEDGER)
        )];
        let mut bridge = vec![
            "link add name br0 type bridge".to_owned(),
            "link set dev br0 up".to_owned(),
            "link set dev vl master br0".to_owned(),
            "link set dev vl up".to_owned(),
        ];
        for i in 0..self.nodes {
            let (n, k) = (self.node(i), self.link(i));
            top.push(format!(
                "link add name eth0 netns {k} address {} type veth peer name v{i} netns {b}",
                mac(plan::bridge(i))
            ));
            top.push(format!(
                "link add name eth0 netns {n} address {} type veth peer name tonode netns {k} \
                 address {}",
                mac(plan::public(i)),
                mac(plan::GATEWAY)
            ));
            bridge.push(format!("link set dev v{i} master br0"));
            bridge.push(format!("link set dev v{i} up"));
        }
        batch(None, &top, false)?;
        batch(Some(&b), &bridge, false)?;
        // Every host knows every other's hardware address: the kernel's neighbour table,
        // shared by all namespaces, learns at most `gc_thresh3` (1024 by default) entries,
        // fewer than the links of a hundred hosts need; permanent entries are not counted.
        let known = |me: Option<usize>| {
            std::iter::once(plan::LEDGER)
                .chain((0..self.nodes).filter(|&j| Some(j) != me).map(plan::bridge))
                .filter(|&ip| me.is_some() || ip != plan::LEDGER)
                .map(|ip| format!("neigh add {ip} lladdr {} dev eth0 nud permanent", mac(ip)))
                .collect::<Vec<_>>()
        };
        let mut ledger = vec![
            "link set dev lo up".to_owned(),
            format!("addr add {}/16 dev eth0", plan::LEDGER),
            "link set dev eth0 up".to_owned(),
        ];
        ledger.extend(known(None));
        batch(Some(&l), &ledger, false)?;
        let [p0, p1] = plan::PUBLIC_NET;
        let [s0, s1] = plan::SOURCE_NET;
        for i in 0..self.nodes {
            let mut link = vec![
                "link set dev lo up".to_owned(),
                format!("addr add {}/16 dev eth0", plan::bridge(i)),
                "link set dev eth0 up".to_owned(),
                format!("addr add {}/32 dev tonode", plan::GATEWAY),
                "link set dev tonode up".to_owned(),
                // Every public and source address is local here: the relays accept the
                // node's connections to any peer and dial from any peer's source address...
                format!("route add local {p0}.{p1}.0.0/16 dev lo"),
                format!("route add local {s0}.{s1}.0.0/16 dev lo"),
                // ...except the node's own address, which is the node's.
                format!("route add {}/32 dev tonode table local", plan::public(i)),
                format!(
                    "neigh add {} lladdr {} dev tonode nud permanent",
                    plan::public(i),
                    mac(plan::public(i))
                ),
            ];
            link.extend(known(Some(i)));
            batch(Some(&self.link(i)), &link, false)?;
            let node = [
                "link set dev lo up".to_owned(),
                format!("addr add {}/32 dev eth0", plan::public(i)),
                "link set dev eth0 up".to_owned(),
                format!("route add {}/32 dev eth0", plan::GATEWAY),
                format!(
                    "neigh add {} lladdr {} dev eth0 nud permanent",
                    plan::GATEWAY,
                    mac(plan::GATEWAY)
                ),
                format!(
                    "route add default via {} dev eth0 src {}",
                    plan::GATEWAY,
                    plan::public(i)
                ),
            ];
            batch(Some(&self.node(i)), &node, false)?;
        }
        Ok(())
    }

    /// The bridge's namespace.
    pub fn bridge(&self) -> String {
        format!("{}-b", self.prefix)
    }

    /// The ledger's namespace.
    pub fn ledger(&self) -> String {
        format!("{}-l", self.prefix)
    }

    /// Node `i`'s namespace.
    pub fn node(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// The namespace of node `i`'s link.
    pub fn link(&self, i: usize) -> String {
        format!("{}-k{i}", self.prefix)
    }

    /// Every namespace of this devnet.
    pub fn names(&self) -> &[String] {
        &self.made
    }

    /// `cmd` run in namespace `ns` (`ip netns exec`).
    pub fn exec(ns: &str, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }

    /// Moves the calling thread into the ledger's namespace until the guard is dropped;
    /// threads it starts meanwhile (a runtime's workers) stay there.
    pub fn enter_ledger(&self) -> Result<Entered, DevnetError> {
        enter(&self.ledger())
    }
}

/// Moves the calling thread into the named namespace until the guard is dropped; threads it
/// starts meanwhile stay there, and sockets it makes belong to it for good.
pub fn enter(ns: &str) -> Result<Entered, DevnetError> {
    let open = |p: &str| File::open(p).map_err(|e| DevnetError::Failed(format!("{p}: {e}")));
    let home = open("/proc/thread-self/ns/net")?;
    let target = open(&format!("/run/netns/{ns}"))?;
    set_netns(&target).map_err(|e| DevnetError::Failed(format!("setns {ns}: {e}")))?;
    Ok(Entered { home })
}

/// The calling thread back in its namespace when dropped.
pub struct Entered {
    home: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = set_netns(&self.home) {
            eprintln!("devnet: returning to the host's network namespace: {e}");
        }
    }
}

/// Moves the calling thread into the network namespace of `ns` (an open namespace file).
#[allow(
    unsafe_code,
    reason = "setns(2) has no safe wrapper in std; the descriptor is open for the whole call"
)]
fn set_netns(ns: &File) -> std::io::Result<()> {
    // SAFETY: `ns` is an open file for the call's duration; setns reads only its descriptor
    // and the flag, and changes no memory of this process.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let lines: Vec<String> = self.made.iter().map(|n| format!("netns del {n}")).collect();
        if !lines.is_empty()
            && let Err(e) = batch(None, &lines, true)
        {
            eprintln!("devnet: deleting its network namespaces: {e}");
        }
    }
}

/// The hardware address of the interface that holds `ip`: locally administered, `02:dd`
/// then the address's four bytes.
fn mac(ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:dd:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The names of the network namespaces (`ip netns list`).
pub fn list() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The devnet process a namespace name belongs to, if it is a devnet's.
pub fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Deletes the namespaces of devnets whose process is gone (killed before they could).
pub fn sweep() {
    let stale: Vec<String> = list()
        .into_iter()
        .filter(|n| owner(n).is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()))
        .map(|n| format!("netns del {n}"))
        .collect();
    if !stale.is_empty() {
        let _ = batch(None, &stale, true);
    }
}
