//! Packet loss for `cargo xtask faults`: a network namespace of its own, joined to this
//! machine by a veth pair, that drops a share of the packets crossing it.
//!
//! The app under test reaches its store through a relay (`Proxy::serve` on
//! [`LossyLink::listen`]) that listens inside the namespace: the app's own TCP connection
//! crosses the veth pair, where nftables rules in the namespace drop packets at random in
//! both directions, and the relay forwards what arrives to the server on this machine's
//! loopback. The kernel retransmits, as on a lossy network; nothing is emulated in user
//! space. The namespace (and with it the veth pair and the rules) is deleted on drop;
//! traffic goes only to the namespace.
//!
//! Why nftables and not `tc netem`: kernels built without the netem qdisc (this project's
//! CI machine has none) still filter with nftables, and `numgen random` drops packets just
//! as netem's `loss` does.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd as _;
use std::process::Command;

use crate::context::{is_root, Context};
use crate::install;
use crate::process::{self, find_program};

/// The namespace's name; one at a time (a stale one from an interrupted run is replaced).
const NAMESPACE: &str = "sessions-faults";
/// The veth pair's ends: on this machine, and inside the namespace.
const HOST_LINK: &str = "sfaults-h";
const INSIDE_LINK: &str = "sfaults-n";
/// A /30 of the private range for the pair: this machine's end and the namespace's.
const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
const INSIDE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
/// The nftables table holding the drop rules, inside the namespace.
const TABLE: &str = "sessions_faults";

// `setns(2)` from the C library std already links: it moves the calling thread, and only
// that thread, into a namespace. One declaration keeps xtask free of dependencies.
extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}
/// `CLONE_NEWNET` from `<sched.h>`.
const CLONE_NEWNET: i32 = 0x4000_0000;

/// The namespace and its veth pair; deleted on drop.
pub struct LossyLink {
    _private: (),
}

impl LossyLink {
    /// Creates the namespace, the veth pair and an empty drop table. Needs root, `ip`
    /// (iproute2) and `nft` (nftables; installed with apt when missing).
    pub fn create(ctx: &Context) -> Result<LossyLink, String> {
        if !is_root() {
            return Err(
                "the packet loss rows need root (a network namespace and nftables rules)".into(),
            );
        }
        if find_program("ip").is_none() {
            install::apt_install(ctx, &["iproute2"])?;
        }
        if find_program("nft").is_none() {
            install::apt_install(ctx, &["nftables"])?;
        }
        // What an interrupted run left goes first.
        remove();
        let link = LossyLink { _private: () };
        let host = format!("{HOST_ADDRESS}/30");
        let inside = format!("{INSIDE_ADDRESS}/30");
        ip(&["netns", "add", NAMESPACE])?;
        ip(&[
            "link",
            "add",
            HOST_LINK,
            "type",
            "veth",
            "peer",
            "name",
            INSIDE_LINK,
            "netns",
            NAMESPACE,
        ])?;
        ip(&["addr", "add", &host, "dev", HOST_LINK])?;
        ip(&["link", "set", HOST_LINK, "up"])?;
        inside_ns(&["ip", "addr", "add", &inside, "dev", INSIDE_LINK])?;
        inside_ns(&["ip", "link", "set", INSIDE_LINK, "up"])?;
        inside_ns(&["ip", "link", "set", "lo", "up"])?;
        inside_ns(&["nft", "add", "table", "inet", TABLE])?;
        for (chain, hook) in [("incoming", "input"), ("outgoing", "output")] {
            let spec = format!("{{ type filter hook {hook} priority 0; policy accept; }}");
            inside_ns(&["nft", "add", "chain", "inet", TABLE, chain, &spec])?;
        }
        Ok(link)
    }

    /// Drops `percent` % of the packets entering and of those leaving the namespace, at
    /// random; 0 lets every packet through again.
    pub fn set_loss(&self, percent: u32) -> Result<(), String> {
        for chain in ["incoming", "outgoing"] {
            inside_ns(&["nft", "flush", "chain", "inet", TABLE, chain])?;
            if percent > 0 {
                let rule = format!("numgen random mod 100 < {percent} drop");
                let mut args = vec!["nft", "add", "rule", "inet", TABLE, chain];
                args.extend(rule.split(' '));
                inside_ns(&args)?;
            }
        }
        Ok(())
    }

    /// A listener inside the namespace, on its end of the veth pair, on a free port.
    /// Sockets belong to the namespace they were made in, so a short-lived thread enters
    /// the namespace, binds, and hands the listener back; accepting and connecting to the
    /// server then happen on this machine's side as usual.
    pub fn listen(&self) -> Result<TcpListener, String> {
        std::thread::spawn(|| -> Result<TcpListener, String> {
            let namespace = File::open(format!("/run/netns/{NAMESPACE}"))
                .map_err(|e| format!("cannot open the namespace {NAMESPACE}: {e}"))?;
            // SAFETY: `namespace` is an open namespace file; setns only changes this
            // thread's network namespace, and the thread ends right after binding.
            if unsafe { setns(namespace.as_raw_fd(), CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "cannot enter the namespace {NAMESPACE}: {}",
                    io::Error::last_os_error()
                ));
            }
            TcpListener::bind(SocketAddrV4::new(INSIDE_ADDRESS, 0))
                .map_err(|e| format!("cannot listen in the namespace {NAMESPACE}: {e}"))
        })
        .join()
        .map_err(|_| "the namespace thread panicked".to_string())?
    }

    /// The address the app connects to: the namespace's end of the pair.
    pub fn address(&self) -> String {
        INSIDE_ADDRESS.to_string()
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        remove();
    }
}

/// Deletes the veth pair, then the namespace with its rules; what is already gone is no
/// error. The pair goes first and explicitly: deleting a namespace tears its links down in
/// the background, and the next row's pair, of the same names, would find them still there.
fn remove() {
    for args in [
        &["link", "delete", HOST_LINK][..],
        &["netns", "delete", NAMESPACE][..],
    ] {
        let _ = Command::new("ip").args(args).output();
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    process::run(
        &format!("ip {}", args.join(" ")),
        Command::new("ip").args(args),
    )
}

/// Runs `args` inside the namespace (`ip netns exec`).
fn inside_ns(args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", NAMESPACE]).args(args);
    process::run(
        &format!("ip netns exec {NAMESPACE} {}", args.join(" ")),
        &mut command,
    )
}
