//! Binding the listen addresses at start, before the server runs: one owner per port.
//!
//! Every worker listens on its own `SO_REUSEPORT` socket, and `SO_REUSEPORT` would let a second
//! gateway (or any process of the same user) join the same port and take half its connections
//! without a word. So before the workers' sockets are bound, the address is bound once without
//! it: that fails if anything listens there, and the error then names the process that does
//! (from `/proc`), so a second gateway is refused with one line. A `-u` upgrade does not bind:
//! it takes the running process's sockets.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use socket2::{Domain, Socket, Type};

/// The backlog of each listening socket (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 65535;

/// An address that cannot be listened on.
#[derive(Debug, thiserror::Error)]
#[error("{key} {addr}: {reason}")]
pub struct BindError {
    /// The config key of the address (`listen`, `tls_listen`, `metrics_listen`).
    pub key: &'static str,
    pub addr: SocketAddr,
    pub reason: String,
}

/// Binds `count` listening sockets on `addr` (with `SO_REUSEPORT` when more than one), after
/// checking that nothing else listens there.
pub fn bind(
    key: &'static str,
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, BindError> {
    let failed = |err: std::io::Error| BindError {
        key,
        addr,
        reason: describe(addr, &err),
    };
    // The probe: no SO_REUSEPORT, so any listener on the port, ours or not, makes it fail.
    drop(socket(addr, false).map_err(failed)?);
    (0..count.max(1))
        .map(|_| socket(addr, count > 1).map_err(failed))
        .collect()
}

fn socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Connections of an earlier process in TIME_WAIT do not hold the port.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The reason a bind failed, naming the process that holds the address when it is in use.
fn describe(addr: SocketAddr, err: &std::io::Error) -> String {
    if err.kind() != std::io::ErrorKind::AddrInUse {
        return err.to_string();
    }
    match holder(addr) {
        Some((pid, name)) => format!("address in use by {name} (pid {pid})"),
        None => "address in use by another program".to_string(),
    }
}

/// The process (pid, command name) with a listening socket on `addr`'s port that overlaps
/// `addr`, from `/proc/net/tcp{,6}` and the processes' descriptors; `None` when it cannot be
/// found (another network namespace, no permission).
pub fn holder(addr: SocketAddr) -> Option<(u32, String)> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, addr));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if wanted.iter().any(|w| Path::new(w) == target) {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|name| name.trim().to_string())
                    .unwrap_or_else(|_| "a process".to_string());
                return Some((pid, name));
            }
        }
    }
    None
}

/// The inodes of listening sockets in a `/proc/net/tcp{,6}` table that overlap `addr`: the
/// same port, and the same address or a wildcard on either side.
fn listening_inodes(table: &str, addr: SocketAddr) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != LISTEN {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = proc_ip(ip)?;
            let overlaps = port == addr.port()
                && (ip == addr.ip() || ip.is_unspecified() || addr.ip().is_unspecified());
            overlaps.then(|| inode.parse().ok()).flatten()
        })
        .collect()
}

/// An address as `/proc/net/tcp` writes it: hex, each 32-bit word in host (little-endian)
/// order; IPv4-mapped IPv6 addresses as IPv4.
fn proc_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_le_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0
   2: 0100007F:22B8 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 6161 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7777 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 8888 1 0000000000000000 100 0 0 10 0
";

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn listeners_on_the_same_port_and_an_overlapping_address_are_found() {
        assert_eq!(listening_inodes(TCP, at("127.0.0.1:8888")), [4242]);
        assert_eq!(listening_inodes(TCP, at("0.0.0.0:8888")), [4242]);
        assert_eq!(
            listening_inodes(TCP, at("127.0.0.2:8888")),
            Vec::<u64>::new()
        );
        assert_eq!(
            listening_inodes(TCP, at("127.0.0.9:80")),
            [5151],
            "wildcard holder"
        );
        assert_eq!(
            listening_inodes(TCP, at("127.0.0.1:9999")),
            Vec::<u64>::new()
        );
        assert_eq!(listening_inodes(TCP6, at("[::]:8080")), [7777]);
        assert_eq!(listening_inodes(TCP6, at("[::1]:8081")), [8888]);
        assert_eq!(
            listening_inodes(TCP6, at("10.0.0.1:8080")),
            [7777],
            "v6 wildcard"
        );
    }

    #[test]
    fn a_taken_port_is_refused_naming_this_process_holder() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind("listen", addr, 2).unwrap_err();
        assert_eq!(err.key, "listen");
        // The holder is this very process, which the lookup skips.
        assert_eq!(err.reason, "address in use by another program");
        assert!(
            err.to_string().starts_with(&format!("listen {addr}: ")),
            "{err}"
        );
        drop(taken);
        let sockets = bind("listen", addr, 2).unwrap();
        assert_eq!(sockets.len(), 2);
        // Our own sockets share the port; nothing else can join.
        assert!(bind("listen", addr, 1).is_err());
    }
}
