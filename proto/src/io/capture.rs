//! `--pcap FILE`: a process's own record of every packet it sends and receives.
//!
//! A [`Capture`] is a cheap, cloneable handle the I/O shells call where a datagram or stream
//! bytes cross a socket. It stamps the wall-clock time, fills in the real local address when a
//! socket is bound to a wildcard (the system's source address on the route to the peer, as the
//! kernel would choose it), and appends the packet through a [`PcapWriter`] into a 256 KiB
//! buffer: the caller never waits for the disk except when that buffer fills. The buffer is
//! written out every second by a helper thread, on [`Capture::flush`] and when the last handle
//! is dropped. Before a record could take the file past its size limit it stops writing, with
//! one warning.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tracing::warn;

use crate::io::pcap::{PcapError, PcapWriter};

/// The default size limit of a capture file: 1 GiB.
pub const DEFAULT_CAPTURE_LIMIT: u64 = 1 << 30;
const BUFFER: usize = 256 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Peers whose local route address is remembered; the table starts over past this.
const MAX_ROUTES: usize = 4096;
/// More than any record adds besides its payload (a TCP handshake and segment headers included),
/// so a file never grows past its limit.
const RECORD_OVERHEAD: usize = 512;

/// The capture file could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the capture file {}: {error} (check the directory exists and is writable)", .path.display())]
pub struct CaptureError {
    /// The file asked for.
    pub path: PathBuf,
    /// Why it failed.
    pub error: io::Error,
}

/// A handle on a capture file, or on nothing ([`Capture::disabled`]). See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Capture {
    inner: Option<Arc<Mutex<State>>>,
}

#[derive(Debug)]
struct State {
    writer: PcapWriter<BufWriter<File>>,
    path: PathBuf,
    written: u64,
    limit: u64,
    stopped: bool,
    /// Peer IP → our source address on the route to it.
    routes: HashMap<IpAddr, IpAddr>,
}

impl Capture {
    /// A handle that records nothing.
    pub fn disabled() -> Capture {
        Capture { inner: None }
    }

    /// Creates (or truncates) `path` and starts writing to it, stopping past `limit` bytes.
    pub fn create(path: &Path, limit: u64) -> Result<Capture, CaptureError> {
        let fail = |error| CaptureError { path: path.to_owned(), error };
        let file = File::create(path).map_err(fail)?;
        let writer = PcapWriter::new(BufWriter::with_capacity(BUFFER, file)).map_err(fail)?;
        let state = State { writer, path: path.to_owned(), written: 24, limit, stopped: false, routes: HashMap::new() };
        let inner = Arc::new(Mutex::new(state));
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new().name("pcap-flush".into()).spawn(move || flush_every_second(weak)).map_err(fail)?;
        Ok(Capture { inner: Some(inner) })
    }

    /// [`Capture::create`] when a path is given, else [`Capture::disabled`].
    pub fn open(path: Option<&Path>, limit: u64) -> Result<Capture, CaptureError> {
        path.map_or(Ok(Capture::disabled()), |p| Capture::create(p, limit))
    }

    /// Whether packets are being recorded.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Records a UDP datagram from `src` to `dst`, sent or received now.
    pub fn udp(&self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        self.record(src, dst, payload.len(), |w, s, d, t| w.write_udp(s, d, payload, t));
    }

    /// Records bytes of the TCP stream from `src` to `dst`, sent or received now.
    pub fn tcp(&self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        self.record(src, dst, payload.len(), |w, s, d, t| w.write_tcp(s, d, payload, t));
    }

    /// Writes out what is buffered.
    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            let mut state = lock(inner);
            if let Err(error) = state.writer.flush() {
                warn!(path = %state.path.display(), %error, "capture not flushed");
            }
        }
    }

    fn record(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        payload_len: usize,
        write: impl FnOnce(&mut PcapWriter<BufWriter<File>>, SocketAddr, SocketAddr, SystemTime) -> Result<usize, PcapError>,
    ) {
        let Some(inner) = &self.inner else { return };
        let mut state = lock(inner);
        if state.stopped {
            return;
        }
        if state.written + (payload_len + RECORD_OVERHEAD) as u64 > state.limit {
            state.stopped = true;
            warn!(path = %state.path.display(), limit = state.limit, "capture file reached its size limit; no more packets are recorded");
            return;
        }
        let src = state.on_wire(src, dst);
        let dst = state.on_wire(dst, src);
        match write(&mut state.writer, src, dst, SystemTime::now()) {
            Ok(n) => state.written += n as u64,
            Err(PcapError::Io(error)) => {
                state.stopped = true;
                warn!(path = %state.path.display(), %error, "capture file cannot be written; no more packets are recorded");
            }
            Err(error) => warn!(%error, "packet not recorded"),
        }
    }
}

impl State {
    /// `addr` with a wildcard IP replaced by our address on the route to `peer`.
    fn on_wire(&mut self, addr: SocketAddr, peer: SocketAddr) -> SocketAddr {
        if !addr.ip().is_unspecified() || peer.ip().is_unspecified() {
            return addr;
        }
        if self.routes.len() >= MAX_ROUTES {
            self.routes.clear();
        }
        let ip = *self.routes.entry(peer.ip()).or_insert_with(|| route_source(peer.ip()));
        SocketAddr::new(ip, addr.port())
    }
}

/// The source address the system picks to reach `peer`; loopback when it has no route.
fn route_source(peer: IpAddr) -> IpAddr {
    let (any, loopback): (IpAddr, IpAddr) = match peer.to_canonical() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED.into(), Ipv6Addr::LOCALHOST.into()),
    };
    UdpSocket::bind(SocketAddr::new(any, 0))
        .and_then(|s| s.connect(SocketAddr::new(peer, 9)).and_then(|()| s.local_addr()))
        .map_or(loopback, |a| a.ip())
}

fn lock(inner: &Mutex<State>) -> MutexGuard<'_, State> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

fn flush_every_second(state: Weak<Mutex<State>>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(inner) = state.upgrade() else { return };
        let mut state = lock(&inner);
        let _ = state.writer.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn disabled_capture_records_nothing_and_costs_nothing() {
        let capture = Capture::disabled();
        assert!(!capture.is_enabled());
        capture.udp("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap(), b"x");
        capture.flush();
    }

    #[test]
    fn packets_reach_the_file_within_a_second_without_an_explicit_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let capture = Capture::create(&path, DEFAULT_CAPTURE_LIMIT).unwrap();
        capture.udp("127.0.0.1:5060".parse().unwrap(), "127.0.0.1:5070".parse().unwrap(), b"REGISTER");
        assert_eq!(read(&path).len(), 0, "buffered, not yet on disk");
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(read(&path).len(), 24 + 16 + 14 + 20 + 8 + 8);
        drop(capture);
    }

    #[test]
    fn capture_stops_at_its_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let record = 16 + 14 + 20 + 8 + 100;
        let limit = 24 + 3 * record + RECORD_OVERHEAD as u64;
        let capture = Capture::create(&path, limit).unwrap();
        let (a, b) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        for _ in 0..20 {
            capture.udp(a, b, &[0u8; 100]);
        }
        drop(capture); // the last handle flushes
        let len = read(&path).len() as u64;
        assert_eq!(len, 24 + 3 * record, "three records fit; a fourth might have crossed the limit");
        assert!(len <= limit);
    }

    #[test]
    fn a_wildcard_local_address_is_written_as_the_address_that_reaches_the_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let capture = Capture::create(&path, DEFAULT_CAPTURE_LIMIT).unwrap();
        capture.udp("0.0.0.0:5060".parse().unwrap(), "127.0.0.5:5070".parse().unwrap(), b"x");
        capture.flush();
        let file = read(&path);
        let ip = &file[24 + 16 + 14..24 + 16 + 34];
        assert_eq!(&ip[12..16], &[127, 0, 0, 1], "source: loopback reaches 127.0.0.5");
        assert_eq!(&ip[16..20], &[127, 0, 0, 5]);
    }

    #[test]
    fn an_unwritable_path_is_reported_with_the_path() {
        let err = Capture::create(Path::new("/nonexistent-dir/x.pcap"), 1).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.pcap"), "{err}");
    }
}
