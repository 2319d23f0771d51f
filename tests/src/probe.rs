//! Readiness probe: a real OPTIONS request over UDP (RFC 3261 §11), answered by the
//! server itself because its Request-URI has no user part.

use crate::process::{describe_state, tail};
use crate::{HarnessError, Result};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one OPTIONS waits for its answer before the next try.
const TRY_WAIT: Duration = Duration::from_millis(200);

/// Sends one OPTIONS to `server` and returns the status code of the first response
/// that belongs to it (same Call-ID), or `None` if none came within `wait`.
pub fn options_status(server: SocketAddr, wait: Duration) -> Result<Option<u16>> {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|source| HarnessError::io("bind the OPTIONS probe socket", source))?;
    let local = socket.local_addr().map_err(|source| HarnessError::io("read the probe socket's address", source))?;
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let call_id = format!("probe-{}-{n}@{}", std::process::id(), local.ip());
    let request = format!(
        "OPTIONS sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{pid}-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe{n}\r\n\
         To: <sip:{server}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        pid = std::process::id(),
    );
    socket
        .send_to(request.as_bytes(), server)
        .map_err(|source| HarnessError::io(format!("send an OPTIONS to {server}"), source))?;

    let deadline = Instant::now() + wait;
    let mut buffer = [0u8; 65_535];
    // Each pass reads one datagram or times out; at most a handful of stray ones.
    for _ in 0..32 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|source| HarnessError::io("set the probe's read timeout", source))?;
        let len = match socket.recv(&mut buffer) {
            Ok(len) => len,
            // Timeout, or ICMP port unreachable while the server is still starting.
            Err(_) => break,
        };
        let text = String::from_utf8_lossy(buffer.get(..len).unwrap_or_default());
        if let Some(code) = response_code(&text, &call_id) {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// The status code of `message` if it is a response carrying `call_id`.
fn response_code(message: &str, call_id: &str) -> Option<u16> {
    let mut lines = message.lines();
    let status_line = lines.next()?;
    let code = status_line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
    let ours = lines.take_while(|line| !line.is_empty()).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            let name = name.trim();
            (name.eq_ignore_ascii_case("call-id") || name == "i") && value.trim() == call_id
        })
    });
    ours.then_some(code)
}

/// Probes `server` until it answers 200, `child` exits, or `limit` passes.
///
/// `what` and `log` name the server and its log file for the error message.
pub fn wait_until_answering(
    what: &str,
    server: SocketAddr,
    child: &mut Child,
    log: &Path,
    limit: Duration,
) -> Result<()> {
    let started = Instant::now();
    let attempts = (limit.as_millis() / TRY_WAIT.as_millis()).max(1);
    for _ in 0..attempts {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if options_status(server, TRY_WAIT)? == Some(200) {
            return Ok(());
        }
        if started.elapsed() >= limit {
            break;
        }
    }
    Err(HarnessError::NotReady {
        what: what.to_owned(),
        addr: server,
        waited: started.elapsed(),
        state: describe_state(child),
        log: tail(log, 60),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_with_our_call_id_gives_its_code() {
        let message = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\nCall-ID: abc@h\r\n\r\n";
        assert_eq!(response_code(message, "abc@h"), Some(200));
    }

    #[test]
    fn compact_call_id_is_recognised() {
        let message = "SIP/2.0 404 Not Found\r\ni: abc@h\r\n\r\n";
        assert_eq!(response_code(message, "abc@h"), Some(404));
    }

    #[test]
    fn response_for_another_call_is_ignored() {
        let message = "SIP/2.0 200 OK\r\nCall-ID: other@h\r\n\r\n";
        assert_eq!(response_code(message, "abc@h"), None);
    }

    #[test]
    fn request_is_not_a_response() {
        let message = "OPTIONS sip:x SIP/2.0\r\nCall-ID: abc@h\r\n\r\n";
        assert_eq!(response_code(message, "abc@h"), None);
    }

    #[test]
    fn silent_port_gives_no_status() {
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = silent.local_addr().unwrap();
        assert_eq!(options_status(addr, Duration::from_millis(100)).unwrap(), None);
    }

    #[test]
    fn answering_server_gives_its_status() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = server.local_addr().unwrap();
        let responder = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let (len, from) = server.recv_from(&mut buffer).unwrap();
            let request = String::from_utf8_lossy(&buffer[..len]).into_owned();
            let call_id = request.lines().find_map(|line| line.strip_prefix("Call-ID: ")).unwrap().to_owned();
            let reply = format!("SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n");
            server.send_to(reply.as_bytes(), from).unwrap();
        });
        assert_eq!(options_status(addr, Duration::from_secs(2)).unwrap(), Some(200));
        responder.join().unwrap();
    }
}
