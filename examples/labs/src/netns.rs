//! A second "machine" on a cable we can pull: a Linux network namespace
//! joined to this one by a veth pair (needs root and iproute2's `ip`).
//!
//! The namespace gets 10.78.N.2/24, this side 10.78.N.1/24 (N picked so that
//! nothing else uses the subnet). [`Netns::pull_cable`] removes the
//! namespace's address: from then on nothing it sends can leave (no FIN, no
//! RST reaches us) and what we send it is dropped unanswered — a pulled cable
//! as the server experiences it. The link stays up, so a capture on this
//! side still shows the server's retransmissions. [`Netns::plug_cable`] gives
//! the address back. Everything is deleted again on drop.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The namespace and its veth pair.
#[derive(Debug)]
pub struct Netns {
    /// The namespace's name (`ip netns exec NAME …`).
    pub name: String,
    /// Our end of the veth pair (capture here).
    pub host_if: String,
    /// The namespace's end.
    pub client_if: String,
    /// Our address on the link.
    pub host_ip: Ipv4Addr,
    /// The namespace's address.
    pub client_ip: Ipv4Addr,
    /// The link's broadcast address.
    pub broadcast: Ipv4Addr,
}

/// Runs `ip ARGS`; the error carries what `ip` said.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    /// Creates the namespace and the link. Fails (with `ip`'s words) without root.
    pub fn create() -> Result<Netns, String> {
        if !cfg!(target_os = "linux") {
            return Err("network namespaces exist on Linux only".into());
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        for attempt in 0..50 {
            let n = (pid + NEXT.fetch_add(1, Ordering::Relaxed) + attempt * 7) % 250 + 1;
            let subnet = format!("10.78.{n}.0/24");
            if !ip(&["-o", "addr", "show", "to", &subnet])?.trim().is_empty() {
                continue; // someone else's
            }
            let net = Netns {
                name: format!("tnlm-lab-{pid}-{n}"),
                host_if: format!("tlabh{n}"),
                client_if: format!("tlabc{n}"),
                host_ip: Ipv4Addr::new(10, 78, n as u8, 1),
                client_ip: Ipv4Addr::new(10, 78, n as u8, 2),
                broadcast: Ipv4Addr::new(10, 78, n as u8, 255),
            };
            if let Err(err) = ip(&["netns", "add", &net.name]) {
                if err.contains("exists") {
                    continue;
                }
                return Err(err);
            }
            let setup = || -> Result<(), String> {
                ip(&["link", "add", &net.host_if, "type", "veth", "peer", "name", &net.client_if])?;
                ip(&["link", "set", &net.client_if, "netns", &net.name])?;
                ip(&["addr", "add", &format!("{}/24", net.host_ip), "brd", "+", "dev", &net.host_if])?;
                ip(&["link", "set", &net.host_if, "up"])?;
                ip(&["-n", &net.name, "addr", "add", &format!("{}/24", net.client_ip), "dev", &net.client_if])?;
                ip(&["-n", &net.name, "link", "set", &net.client_if, "up"])?;
                ip(&["-n", &net.name, "link", "set", "lo", "up"]).map(|_| ())
            };
            return setup().map(|()| net); // on error, drop deletes what was made
        }
        Err("no free 10.78.N.0/24 subnet".into())
    }

    /// Pulls the cable: the namespace loses its address, so its packets cannot
    /// leave and ours to it are dropped without an answer.
    pub fn pull_cable(&self) -> Result<(), String> {
        ip(&["-n", &self.name, "addr", "flush", "dev", &self.client_if]).map(|_| ())
    }

    /// Plugs the cable back in: the namespace gets its address back, and
    /// whatever either side retries from then on gets through.
    pub fn plug_cable(&self) -> Result<(), String> {
        ip(&["-n", &self.name, "addr", "add", &format!("{}/24", self.client_ip), "dev", &self.client_if]).map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
