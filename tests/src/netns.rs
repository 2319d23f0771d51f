//! Two hosts on one machine: a pair of network namespaces joined by a veth pair, so that
//! the addresses in Contact, Via and SDP are real LAN addresses, not loopback. Needs root
//! (CI runs as root) and `ip` from iproute2.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{HarnessError, Result};

/// Host A's address on the link.
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Host B's address on the link.
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// Two namespaces, `a` (10.99.0.1/24) and `b` (10.99.0.2/24), joined by a veth pair.
/// Dropping it deletes both, and with them the link.
#[derive(Debug)]
pub struct Lan {
    a: String,
    b: String,
    veth_a: String,
    veth_b: String,
}

impl Lan {
    /// Creates the two namespaces and the link between them, each with loopback up.
    pub fn create() -> Result<Lan> {
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{}-{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed));
        // Interface names are at most 15 bytes.
        let (veth_a, veth_b) = (truncate(&format!("va{tag}")), truncate(&format!("vb{tag}")));
        let lan = Lan { a: format!("voip-a-{tag}"), b: format!("voip-b-{tag}"), veth_a, veth_b };
        let (veth_a, veth_b) = (lan.veth_a.clone(), lan.veth_b.clone());
        ip(&["netns", "add", &lan.a])?;
        ip(&["netns", "add", &lan.b])?;
        ip(&["link", "add", &veth_a, "netns", &lan.a, "type", "veth", "peer", "name", &veth_b, "netns", &lan.b])?;
        for (ns, dev, addr) in [(&lan.a, &veth_a, HOST_A), (&lan.b, &veth_b, HOST_B)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }

    /// The name of host A's namespace.
    pub fn a(&self) -> &str {
        &self.a
    }

    /// The name of host B's namespace.
    pub fn b(&self) -> &str {
        &self.b
    }

    /// Host A's end of the link (in namespace [`Lan::a`]), to capture on.
    pub fn veth_a(&self) -> &str {
        &self.veth_a
    }

    /// Host B's end of the link (in namespace [`Lan::b`]).
    pub fn veth_b(&self) -> &str {
        &self.veth_b
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A command that runs `program` inside the namespace `netns`, or as it is without one.
pub fn command_in(netns: Option<&str>, program: &std::path::Path) -> Command {
    match netns {
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn truncate(name: &str) -> String {
    name.chars().take(15).collect()
}

fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| HarnessError::io(format!("run ip {}", args.join(" ")), source))?;
    if output.status.success() {
        return Ok(());
    }
    Err(HarnessError::io(
        format!("run ip {} (network namespaces need root and iproute2)", args.join(" ")),
        std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
    ))
}
