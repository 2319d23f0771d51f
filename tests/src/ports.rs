//! Free loopback ports, so that tests running in parallel never share one.

use crate::{HarnessError, Result};
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

const ATTEMPTS: u32 = 64;

/// A port on 127.0.0.1 that is free for UDP and TCP alike right now and that this
/// process has not handed out before.
///
/// The kernel picks it (bind to port 0), so it lies in the ephemeral range, away
/// from the fixed ports SIPp takes for media (6000 up) and control (8888 up).
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Mutex::default);
    for _ in 0..ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|source| HarnessError::io("bind a UDP socket on 127.0.0.1", source))?;
        let port = udp.local_addr().map_err(|source| HarnessError::io("read a UDP socket's address", source))?.port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        let mut handed_out = handed_out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(HarnessError::NoFreePort { attempts: ATTEMPTS })
}

/// An address in 127.0.0.0/8 that this process has not handed out before, so that a test can
/// put its peers on addresses of their own and capture only their traffic (`host …` filters).
/// The second byte comes from the process id, so test binaries running side by side differ.
pub fn unique_loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let process = (std::process::id() % 250) as u8 + 2;
    Ipv4Addr::new(127, process, (n / 250 % 256) as u8, (n % 250) as u8 + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        for port in ports {
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }
}
