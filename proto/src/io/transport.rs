//! The UDP, TCP and TLS sockets SIP travels over (RFC 3261 §18, §26.2).
//!
//! [`Transports::bind`] listens on UDP and TCP on every given address, and
//! [`Transports::bind_with_tls`] on TLS too, and hands every message received to one channel as
//! an [`Inbound`]. [`Transports::send`] never blocks: UDP goes out at once, TCP and TLS go to the
//! queue of the connection to that peer, reusing the connection the peer opened (RFC 3261
//! §18.2.2, which is also how a phone that registered over TLS is reached: it does not listen)
//! or opening one in the background (§18.1.1). TLS is TCP with rustls on top: both run the same
//! connection code, generic over the stream, with the same table, limits, idle timeout, framing
//! by [`StreamFramer`] and RFC 5626 §3.5.1 keep-alive pongs; a TLS handshake is time-bounded and
//! counts against the connection limit from the moment the TCP connection is accepted. Nothing
//! here reads or writes SIP headers: the core above deals with messages, this shell with bytes
//! and addresses.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::io::capture::Capture;
use crate::io::framing::{Frame, StreamFramer};
use crate::io::tls::{TlsOptions, rustls_error};
use crate::sip::Transport;

/// Messages waiting for the core before the receive tasks stop reading.
const INBOUND_QUEUE: usize = 4096;
/// Messages waiting to be written to one stream connection before further ones are dropped.
const CONNECTION_QUEUE: usize = 256;
/// Larger than any UDP payload, so a datagram's real length is always seen.
const UDP_BUFFER: usize = 65_536;
const TCP_READ_BUFFER: usize = 16 * 1024;
/// Queued messages written to a connection in one go.
const WRITE_BATCH: usize = 64 * 1024;
/// Asked for (the kernel may cap it): bursts of datagrams overflow the default buffers.
const SOCKET_BUFFER: usize = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection whose input can no longer be framed stays open for the answer.
const LINGER: Duration = Duration::from_secs(2);
/// Tries at giving UDP and TCP the same port when the port is left to the system.
const SAME_PORT_ATTEMPTS: usize = 8;
/// How long a closing TLS connection waits to send its close_notify.
const CLOSE_NOTIFY: Duration = Duration::from_millis(500);
/// Connection failures waiting for [`Transports::connect_failures`] before further ones are dropped.
const FAILURE_QUEUE: usize = 64;

/// Limits of the socket shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// Largest message accepted, in bytes; larger ones reach the core flagged `too_large`.
    pub max_message_size: usize,
    /// A TCP or TLS connection with no traffic either way for this long is closed. Keep it above
    /// the clients' keep-alive interval (RFC 5626 §4.4.1 suggests 95 to 120 s).
    pub tcp_idle_timeout: Duration,
    /// Most TCP and TLS connections open at once, inbound (handshaking ones included) and
    /// outbound; further ones are refused.
    pub max_tcp_connections: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            max_message_size: 65_535,
            tcp_idle_timeout: Duration::from_secs(300),
            max_tcp_connections: 4096,
        }
    }
}

/// A message received from the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The transport it came over.
    pub transport: Transport,
    /// The peer's address (RFC 3261 §18.2.1 compares it with the top Via).
    pub source: SocketAddr,
    /// The local address it arrived at: the listening address for UDP (unspecified when
    /// listening on a wildcard), the connection's own address for TCP and TLS.
    pub local: SocketAddr,
    /// The message; when `too_large`, only its start (enough to answer 513).
    pub data: Bytes,
    /// The message was longer than [`TransportOptions::max_message_size`].
    pub too_large: bool,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The transport to send it over.
    pub transport: Transport,
    /// Where to send it.
    pub dest: SocketAddr,
    /// The whole serialized message.
    pub data: Bytes,
}

/// Counters of what went wrong, since [`Transports::bind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages not sent: no socket of the destination's address family, a socket error, a full
    /// connection queue, too many connections, or a connection that failed or closed first.
    pub send_failures: u64,
    /// Inbound TCP and TLS connections refused because `max_tcp_connections` were open.
    pub connections_refused: u64,
    /// TLS handshakes that failed or timed out, either way.
    pub handshake_failures: u64,
}

/// An outgoing connection that could not be opened; what was queued for it is dropped.
#[derive(Debug)]
pub struct ConnectFailure {
    /// TCP or TLS.
    pub transport: Transport,
    /// The peer.
    pub dest: SocketAddr,
    /// What went wrong.
    pub error: ConnectError,
}

/// Why an outgoing TCP or TLS connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection was refused or failed.
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// The TCP connection or the TLS handshake did not complete in time.
    #[error("no answer in time")]
    TimedOut,
    /// The server's certificate is not trusted for the name we expected.
    #[error("the TLS certificate of {name} is not trusted: {error}")]
    Untrusted {
        /// The name (or IP address) the certificate was checked against.
        name: String,
        /// What rustls found wrong with it.
        error: rustls::Error,
    },
    /// The TLS handshake failed otherwise.
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    /// No TLS client configuration was given, or the peer has no usable server name.
    #[error("TLS is not configured for outgoing connections")]
    NoTls,
}

/// Listening failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address list was empty.
    #[error("no address to listen on: give at least one with --bind")]
    NoAddress,
    /// A socket could not be opened on an address.
    #[error("cannot listen on {} {addr}: {}", transport_name(.transport), explain(.addr, .error))]
    Socket {
        /// The transport of the socket.
        transport: Transport,
        /// The address it was to listen on.
        addr: SocketAddr,
        /// Why the system refused.
        error: io::Error,
    },
}

fn transport_name(transport: &Transport) -> &'static str {
    transport.param()
}

fn explain(addr: &SocketAddr, error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied if addr.port() == 0 || addr.port() >= 1024 => "permission denied".to_owned(),
        io::ErrorKind::AddrInUse => "address already in use (is another SIP server running? \
                                     pick another port with --bind)"
            .to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need root or \
                                            CAP_NET_BIND_SERVICE)"
            .to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available (is it assigned to an \
                                            interface of this machine?)"
            .to_owned(),
        _ => error.to_string(),
    }
}

/// The listening sockets and open TCP and TLS connections. Cheap to clone; the sockets close and
/// the tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Sending handles on the UDP sockets (the same sockets the receive tasks read).
    udp: Vec<(SocketAddr, std::net::UdpSocket)>,
    /// The stream listeners: TCP, and TLS.
    streams: Vec<(Transport, SocketAddr)>,
    tasks: Vec<AbortHandle>,
}

/// What the receive and connection tasks need.
struct Shared {
    opts: TransportOptions,
    tls: TlsOptions,
    inbound: mpsc::Sender<Inbound>,
    connections: Mutex<HashMap<(Transport, SocketAddr), Connection>>,
    next_connection: AtomicU64,
    send_failures: AtomicU64,
    connections_refused: AtomicU64,
    handshake_failures: AtomicU64,
    /// Where outgoing connection failures are reported, once asked for.
    failures: Mutex<Option<mpsc::Sender<ConnectFailure>>>,
    runtime: Handle,
    /// Where every packet sent and received is recorded, once set.
    capture: OnceLock<Capture>,
}

/// The table's handle on a TCP or TLS connection task.
struct Connection {
    id: u64,
    queue: mpsc::Sender<Bytes>,
}

impl Transports {
    /// Listens on UDP and TCP on every address (IPv4 and IPv6 alike). With port 0, UDP and TCP
    /// get the same system-chosen port when possible. Returns the transports and the channel
    /// every received message arrives on.
    pub async fn bind(
        listen: &[SocketAddr],
        opts: TransportOptions,
    ) -> Result<(Transports, mpsc::Receiver<Inbound>), BindError> {
        Self::bind_with_tls(listen, TlsOptions::default(), opts).await
    }

    /// [`bind`](Self::bind), and TLS listeners on `tls.listen` (which needs `tls.server`);
    /// outgoing TLS connections verify servers with `tls.client`.
    pub async fn bind_with_tls(
        listen: &[SocketAddr],
        tls: TlsOptions,
        opts: TransportOptions,
    ) -> Result<(Transports, mpsc::Receiver<Inbound>), BindError> {
        if listen.is_empty() {
            return Err(BindError::NoAddress);
        }
        let mut bound = Vec::with_capacity(listen.len());
        for &addr in listen {
            bound.push(bind_pair(addr)?);
        }
        let mut tls_listeners = Vec::with_capacity(tls.listen.len());
        if tls.server.is_some() {
            for &addr in &tls.listen {
                let fail = |error| BindError::Socket { transport: Transport::Tls, addr, error };
                let listener = tcp_listener(addr).map_err(fail)?;
                let local = listener.local_addr().map_err(fail)?;
                tls_listeners.push((listener, local));
            }
        }
        let (inbound, receiver) = mpsc::channel(INBOUND_QUEUE);
        let runtime = Handle::current();
        let shared = Arc::new(Shared {
            opts,
            tls,
            inbound,
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            handshake_failures: AtomicU64::new(0),
            failures: Mutex::new(None),
            runtime: runtime.clone(),
            capture: OnceLock::new(),
        });
        let mut inner = Inner { shared: shared.clone(), udp: Vec::new(), streams: Vec::new(), tasks: Vec::new() };
        let streams = bound.into_iter().map(|b| {
            let task = runtime.spawn(receive_udp(b.udp, b.udp_addr, shared.clone()));
            inner.tasks.push(task.abort_handle());
            inner.udp.push((b.udp_addr, b.udp_sender));
            (Transport::Tcp, b.tcp, b.tcp_addr)
        });
        let streams: Vec<_> = streams.chain(tls_listeners.into_iter().map(|(l, a)| (Transport::Tls, l, a))).collect();
        for (transport, listener, local) in streams {
            let task = runtime.spawn(accept_streams(listener, local, transport, shared.clone()));
            inner.tasks.push(task.abort_handle());
            inner.streams.push((transport, local));
        }
        Ok((Transports { inner: Arc::new(inner) }, receiver))
    }

    /// Sends a message without waiting. Failures are logged and counted in
    /// [`stats`](Self::stats), never returned: SIP's transaction layer handles loss.
    pub fn send(&self, t: Transmit) {
        match t.transport {
            Transport::Udp => self.send_udp(t.dest, &t.data),
            stream => self.inner.shared.send_stream(stream, t.dest, t.data),
        }
    }

    /// Opens a TCP or TLS connection to `dest` now (TLS: handshake and certificate check
    /// included) and returns its local address, which a phone names in its Via and Contact so
    /// that the server reaches it back over this connection (RFC 5626 §4.2). Messages sent to
    /// `dest` over `transport` then use it. Fails if such a connection is already open.
    pub async fn connect(&self, transport: Transport, dest: SocketAddr) -> Result<SocketAddr, ConnectError> {
        let shared = &self.inner.shared;
        if transport == Transport::Udp {
            return Err(ConnectError::Connect(io::Error::other("UDP has no connections")));
        }
        let (id, receiver) = {
            let mut table = shared.connections();
            if table.contains_key(&(transport, dest)) {
                return Err(ConnectError::Connect(io::Error::other("a connection to this peer is already open")));
            }
            if table.len() >= shared.opts.max_tcp_connections {
                return Err(ConnectError::Connect(io::Error::other("too many connections")));
            }
            let (id, _, receiver) = shared.register(&mut table, (transport, dest));
            (id, receiver)
        };
        let (opened, result) = tokio::sync::oneshot::channel();
        shared.runtime.spawn(connect(shared.clone(), id, transport, dest, receiver, Some(opened)));
        result.await.unwrap_or(Err(ConnectError::TimedOut))
    }

    /// The outgoing connections that fail from now on (refused, timed out, a TLS certificate not
    /// trusted), so a shell can tell its user at once instead of waiting for a SIP timeout.
    /// A later call replaces the receiver.
    pub fn connect_failures(&self) -> mpsc::Receiver<ConnectFailure> {
        let (sender, receiver) = mpsc::channel(FAILURE_QUEUE);
        *self.inner.shared.failures.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    /// Records every datagram and TCP byte sent or received from now on in `capture`
    /// (`--pcap`); for TLS, the encrypted bytes as they cross the socket. Only the first call
    /// has an effect.
    pub fn set_capture(&self, capture: Capture) {
        if capture.is_enabled() {
            let _ = self.inner.shared.capture.set(capture);
        }
    }

    /// The addresses listened on, with the ports the system chose.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let udp = self.inner.udp.iter().map(|(a, _)| (Transport::Udp, *a));
        udp.chain(self.inner.streams.iter().copied()).collect()
    }

    /// What went wrong so far.
    pub fn stats(&self) -> TransportStats {
        let shared = &self.inner.shared;
        TransportStats {
            send_failures: shared.send_failures.load(Ordering::Relaxed),
            connections_refused: shared.connections_refused.load(Ordering::Relaxed),
            handshake_failures: shared.handshake_failures.load(Ordering::Relaxed),
        }
    }

    fn send_udp(&self, dest: SocketAddr, data: &[u8]) {
        let Some((local, socket)) = self.udp_socket_for(dest) else {
            self.inner.shared.send_failed(dest, "no UDP socket of this address family");
            return;
        };
        let sent = socket.send_to(data, dest);
        if sent.is_ok()
            && let Some(capture) = self.inner.shared.capture.get()
        {
            capture.udp(local, dest, data);
        }
        if let Err(error) = sent {
            if error.kind() == io::ErrorKind::WouldBlock {
                self.inner.shared.send_failed(dest, "UDP send buffer full");
            } else {
                warn!(%dest, %error, "UDP send failed");
                self.inner.shared.send_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The UDP socket of the destination's family whose address suits it best.
    fn udp_socket_for(&self, dest: SocketAddr) -> Option<(SocketAddr, &std::net::UdpSocket)> {
        let mut best: Option<(u8, SocketAddr, &std::net::UdpSocket)> = None;
        for (local, socket) in &self.inner.udp {
            if local.is_ipv4() != dest.is_ipv4() {
                continue;
            }
            let score = route_score(local.ip(), dest.ip());
            if best.is_none_or(|(s, _, _)| score > s) {
                best = Some((score, *local, socket));
            }
        }
        best.map(|(_, local, socket)| (local, socket))
    }

    #[cfg(test)]
    fn connection_count(&self) -> usize {
        self.inner.shared.connections().len()
    }
}

/// How well a local address suits a destination of the same family.
fn route_score(local: IpAddr, dest: IpAddr) -> u8 {
    if local == dest {
        3
    } else if local.is_unspecified() {
        2
    } else if local.is_loopback() == dest.is_loopback() {
        1
    } else {
        0
    }
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports").field("local_addrs", &self.local_addrs()).finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // Dropping the queues ends every connection task.
        self.shared.connections().clear();
    }
}

struct Bound {
    udp: UdpSocket,
    /// A second handle on the UDP socket. Sending through it directly (the socket is
    /// non-blocking) gives `WouldBlock` only when the send buffer is really full, and needs no
    /// readiness from the runtime.
    udp_sender: std::net::UdpSocket,
    udp_addr: SocketAddr,
    tcp: TcpListener,
    tcp_addr: SocketAddr,
}

/// Opens UDP then TCP on `addr`; with port 0, TCP on the port UDP got if it is free.
fn bind_pair(addr: SocketAddr) -> Result<Bound, BindError> {
    let fail = |transport, addr, error| BindError::Socket { transport, addr, error };
    let local = |addr, transport, r: io::Result<SocketAddr>| r.map_err(|e| fail(transport, addr, e));
    let mut attempt = 1;
    loop {
        let (udp, udp_sender) = udp_socket(addr).map_err(|e| fail(Transport::Udp, addr, e))?;
        let udp_addr = local(addr, Transport::Udp, udp.local_addr())?;
        let tcp_error = match tcp_listener(udp_addr) {
            Ok(tcp) => {
                let tcp_addr = local(udp_addr, Transport::Tcp, tcp.local_addr())?;
                return Ok(Bound { udp, udp_sender, udp_addr, tcp, tcp_addr });
            }
            Err(e) => e,
        };
        if addr.port() != 0 {
            return Err(fail(Transport::Tcp, addr, tcp_error));
        }
        if attempt == SAME_PORT_ATTEMPTS || tcp_error.kind() != io::ErrorKind::AddrInUse {
            // Ports differ then, which SIP allows: each Via names its own transport.
            let tcp = tcp_listener(addr).map_err(|e| fail(Transport::Tcp, addr, e))?;
            let tcp_addr = local(addr, Transport::Tcp, tcp.local_addr())?;
            return Ok(Bound { udp, udp_sender, udp_addr, tcp, tcp_addr });
        }
        attempt += 1;
    }
}

/// A bound non-blocking UDP socket, as a receiving and a sending handle.
fn udp_socket(addr: SocketAddr) -> io::Result<(UdpSocket, std::net::UdpSocket)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Otherwise [::] would also take the IPv4 port and clash with 0.0.0.0.
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these, and the defaults still work.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let sender = socket.try_clone()?;
    Ok((UdpSocket::from_std(socket.into())?, sender.into()))
}

fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Lets a restarted server listen again while old connections sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Reads datagrams and passes them up; ends when the core drops its receiver.
async fn receive_udp(socket: UdpSocket, local: SocketAddr, shared: Arc<Shared>) {
    let max = shared.opts.max_message_size;
    let mut buf = vec![0; UDP_BUFFER];
    loop {
        let (len, source) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                // Per-datagram trouble such as an ICMP error reported by some systems.
                debug!(%local, %error, "UDP receive failed");
                continue;
            }
        };
        let datagram = &buf[..len];
        if let Some(capture) = shared.capture.get() {
            capture.udp(source, local, datagram);
        }
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            continue; // empty, or a CRLF keep-alive
        }
        let inbound = Inbound {
            transport: Transport::Udp,
            source,
            local,
            data: Bytes::copy_from_slice(&datagram[..len.min(max)]),
            too_large: len > max,
        };
        if shared.inbound.send(inbound).await.is_err() {
            return;
        }
    }
}

/// Accepts TCP or TLS connections until aborted.
async fn accept_streams(listener: TcpListener, local: SocketAddr, transport: Transport, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => shared.adopt(transport, stream, peer),
            Err(error) => {
                // Typically out of file descriptors: give closing connections a moment.
                warn!(%local, %error, %transport, "cannot accept connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<(Transport, SocketAddr), Connection>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send_failed(&self, dest: SocketAddr, reason: &str) {
        debug!(%dest, reason, "message dropped");
        self.send_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a connection in the table, returning its id and queue.
    fn register(
        &self,
        table: &mut HashMap<(Transport, SocketAddr), Connection>,
        key: (Transport, SocketAddr),
    ) -> (u64, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (queue, receiver) = mpsc::channel(CONNECTION_QUEUE);
        table.insert(key, Connection { id, queue: queue.clone() });
        (id, queue, receiver)
    }

    /// Takes over an accepted connection, or refuses it when at the cap. A TLS connection counts
    /// from here, before its handshake.
    fn adopt(self: &Arc<Self>, transport: Transport, stream: TcpStream, peer: SocketAddr) {
        let mut table = self.connections();
        if table.len() >= self.opts.max_tcp_connections {
            drop(table);
            self.connections_refused.fetch_add(1, Ordering::Relaxed);
            warn!(%peer, %transport, max = self.opts.max_tcp_connections, "too many connections: refused");
            return;
        }
        let (id, _, queue) = self.register(&mut table, (transport, peer));
        drop(table);
        self.runtime.spawn(serve_accepted(self.clone(), id, transport, stream, peer, queue));
    }

    fn send_stream(self: &Arc<Self>, transport: Transport, dest: SocketAddr, mut data: Bytes) {
        let key = (transport, dest);
        let mut table = self.connections();
        if let Some(connection) = table.get(&key) {
            match connection.queue.try_send(data) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    drop(table);
                    self.send_failed(dest, "connection queue full");
                    return;
                }
                // The connection just ended: open a new one.
                Err(TrySendError::Closed(returned)) => {
                    table.remove(&key);
                    data = returned;
                }
            }
        }
        if table.len() >= self.opts.max_tcp_connections {
            drop(table);
            self.send_failed(dest, "too many connections");
            return;
        }
        let (id, queue, receiver) = self.register(&mut table, key);
        drop(table);
        // A new queue has room for its first message.
        let _ = queue.try_send(data);
        self.runtime.spawn(connect(self.clone(), id, transport, dest, receiver, None));
    }

    /// Takes a finished connection out of the table and counts what it left unsent.
    fn forget(&self, key: (Transport, SocketAddr), id: u64, mut queue: mpsc::Receiver<Bytes>) {
        {
            let mut table = self.connections();
            if table.get(&key).is_some_and(|c| c.id == id) {
                table.remove(&key);
            }
        }
        queue.close();
        while queue.try_recv().is_ok() {
            self.send_failed(key.1, "connection closed before sending");
        }
    }

    /// Wraps a TCP stream so that what crosses it is captured, with its real addresses.
    fn tap(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> io::Result<Tapped> {
        // Small messages must not wait for more to fill a segment.
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr()?;
        Ok(Tapped { stream, shared: self.clone(), local, peer })
    }

    fn report(&self, failure: ConnectFailure) {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = failures.as_ref() {
            let _ = sender.try_send(failure);
        }
    }
}

/// Runs an accepted connection: for TLS, the server handshake first, bounded in time.
async fn serve_accepted(
    shared: Arc<Shared>,
    id: u64,
    transport: Transport,
    stream: TcpStream,
    peer: SocketAddr,
    queue: mpsc::Receiver<Bytes>,
) {
    let key = (transport, peer);
    let tapped = match shared.tap(stream, peer) {
        Ok(tapped) => tapped,
        Err(error) => {
            debug!(%peer, %error, "accepted connection unusable");
            return shared.forget(key, id, queue);
        }
    };
    let local = tapped.local;
    if transport != Transport::Tls {
        return run_connection(shared, id, (transport, local, peer), tapped, queue).await;
    }
    let Some(config) = shared.tls.server.clone() else { return shared.forget(key, id, queue) };
    let handshake = tokio_rustls::TlsAcceptor::from(config).accept(tapped);
    match tokio::time::timeout(shared.tls.handshake_timeout, handshake).await {
        Ok(Ok(stream)) => run_connection(shared, id, (transport, local, peer), stream, queue).await,
        Ok(Err(error)) => {
            debug!(%peer, %error, "TLS handshake failed");
            shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
            shared.forget(key, id, queue);
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out: closing");
            shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
            shared.forget(key, id, queue);
        }
    }
}

/// The caller of [`Transports::connect`], waiting for the outcome.
type Opened = tokio::sync::oneshot::Sender<Result<SocketAddr, ConnectError>>;

/// Opens a connection to `dest` and runs it; a failure is logged, counted and reported (to
/// `opened` when someone waits for it, else to [`Transports::connect_failures`]).
async fn connect(
    shared: Arc<Shared>,
    id: u64,
    transport: Transport,
    dest: SocketAddr,
    queue: mpsc::Receiver<Bytes>,
    mut opened: Option<Opened>,
) {
    let key = (transport, dest);
    let mut tell = |local: SocketAddr| {
        if let Some(opened) = opened.take() {
            let _ = opened.send(Ok(local));
        }
    };
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest)).await {
        Ok(Ok(stream)) => shared.tap(stream, dest).map_err(ConnectError::Connect),
        Ok(Err(error)) => Err(ConnectError::Connect(error)),
        Err(_) => Err(ConnectError::TimedOut),
    };
    let error = match tcp {
        Ok(tapped) => {
            let ends = (transport, tapped.local, dest);
            if transport != Transport::Tls {
                tell(tapped.local);
                return run_connection(shared, id, ends, tapped, queue).await;
            }
            match tls_handshake(&shared, tapped, dest).await {
                Ok(stream) => {
                    tell(ends.1);
                    return run_connection(shared, id, ends, stream, queue).await;
                }
                Err(error) => error,
            }
        }
        Err(error) => error,
    };
    shared.forget(key, id, queue);
    match opened {
        // The caller of `Transports::connect` says what went wrong, its own way.
        Some(opened) => {
            debug!(%dest, %transport, %error, "connection failed");
            let _ = opened.send(Err(error));
        }
        None => {
            warn!(%dest, %transport, %error, "connection failed");
            shared.report(ConnectFailure { transport, dest, error });
        }
    }
}

/// The client side of a TLS handshake over `tapped`, verifying the server's certificate.
async fn tls_handshake(
    shared: &Shared,
    tapped: Tapped,
    dest: SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<Tapped>, ConnectError> {
    let (Some(config), Some(name)) = (shared.tls.client.clone(), shared.tls.server_name(dest)) else {
        return Err(ConnectError::NoTls);
    };
    let shown = name.to_str().into_owned();
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tapped);
    let result = match tokio::time::timeout(shared.tls.handshake_timeout, handshake).await {
        Ok(Ok(stream)) => return Ok(stream),
        Ok(Err(error)) => match rustls_error(&error) {
            Some(rustls::Error::InvalidCertificate(_)) => {
                let Some(rustls) = rustls_error(&error).cloned() else { return Err(ConnectError::Handshake(error)) };
                ConnectError::Untrusted { name: shown, error: rustls }
            }
            _ => ConnectError::Handshake(error),
        },
        Err(_) => ConnectError::TimedOut,
    };
    shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
    Err(result)
}

/// A connection's transport, local address and peer.
type Ends = (Transport, SocketAddr, SocketAddr);

async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    id: u64,
    ends: Ends,
    mut stream: S,
    mut queue: mpsc::Receiver<Bytes>,
) {
    let (transport, _, peer) = ends;
    match drive(&shared, &mut stream, ends, &mut queue).await {
        Ok(()) => debug!(%peer, %transport, "connection closed"),
        Err(error) => debug!(%peer, %transport, %error, "connection failed"),
    }
    // A TLS peer is owed a close_notify; for TCP this is the FIN the drop would send anyway.
    let _ = tokio::time::timeout(CLOSE_NOTIFY, stream.shutdown()).await;
    shared.forget((transport, peer), id, queue);
}

/// Moves bytes both ways until the peer closes, the connection idles out, the stream can no
/// longer be framed, or the transports are dropped.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    (transport, local, peer): Ends,
    queue: &mut mpsc::Receiver<Bytes>,
) -> io::Result<()> {
    let idle = shared.opts.tcp_idle_timeout;
    let mut framer = StreamFramer::new(shared.opts.max_message_size);
    let mut buf = vec![0; TCP_READ_BUFFER];
    let mut batch = BytesMut::new();
    let mut reading = true;
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = stream.read(&mut buf), if reading => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                deadline.as_mut().reset(Instant::now() + idle);
                framer.push(&buf[..n]);
                while let Some(frame) = framer.next_frame() {
                    let (data, too_large) = match frame {
                        Frame::Message(data) => (data, false),
                        Frame::TooLarge { head } => (head, true),
                        Frame::Ping => {
                            write(stream, b"\r\n", idle).await?;
                            continue;
                        }
                        Frame::Invalid { head } => {
                            let start = head.split(|&b| b == b'\n').next().unwrap_or_default();
                            warn!(%peer, %transport, start_line = %String::from_utf8_lossy(start).trim_end(),
                                "invalid Content-Length: closing connection");
                            return Ok(());
                        }
                    };
                    let inbound = Inbound { transport, source: peer, local, data, too_large };
                    if shared.inbound.send(inbound).await.is_err() {
                        return Ok(());
                    }
                }
                if framer.is_broken() {
                    // Stop reading, but leave the core a moment to answer 513.
                    reading = false;
                    deadline.as_mut().reset(Instant::now() + LINGER.min(idle));
                }
            }
            message = queue.recv() => {
                let Some(message) = message else { return Ok(()) };
                let data = collect_batch(message, queue, &mut batch);
                write(stream, data, idle).await?;
                batch.clear();
                if reading {
                    deadline.as_mut().reset(Instant::now() + idle);
                }
            }
            () = &mut deadline => {
                debug!(%peer, %transport, reading, "closing idle connection");
                return Ok(());
            }
        }
    }
}

/// The bytes to write for `first` and whatever else is already queued behind it.
fn collect_batch<'a>(first: Bytes, queue: &mut mpsc::Receiver<Bytes>, batch: &'a mut BytesMut) -> &'a [u8] {
    batch.extend_from_slice(&first);
    while batch.len() < WRITE_BATCH {
        match queue.try_recv() {
            Ok(next) => batch.extend_from_slice(&next),
            Err(_) => break,
        }
    }
    batch
}

/// Writes and flushes (TLS holds records back until flushed), within `limit`.
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, data: &[u8], limit: Duration) -> io::Result<()> {
    let written = async {
        stream.write_all(data).await?;
        stream.flush().await
    };
    match tokio::time::timeout(limit, written).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading")),
    }
}

/// A TCP stream that records what crosses it in the capture (`--pcap`) as TCP segments between
/// its real addresses: for TLS, the encrypted records, as a capture on the wire would see them.
struct Tapped {
    stream: TcpStream,
    shared: Arc<Shared>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl AsyncRead for Tapped {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll
            && let Some(capture) = this.shared.capture.get()
            && let Some(new) = buf.filled().get(before..).filter(|b| !b.is_empty())
        {
            capture.tcp(this.peer, this.local, new);
        }
        poll
    }
}

impl AsyncWrite for Tapped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.stream).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = poll
            && let Some(capture) = this.shared.capture.get()
            && let Some(sent) = data.get(..n).filter(|b| !b.is_empty())
        {
            capture.tcp(this.local, this.peer, sent);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const OPTIONS: &[u8] = b"OPTIONS sip:example.com SIP/2.0\r\nCall-ID: 1@a\r\nContent-Length: 0\r\n\r\n";
    const MESSAGE: &[u8] = b"MESSAGE sip:bob@example.com SIP/2.0\r\nCall-ID: 2@a\r\nContent-Length: 2\r\n\r\nhi";
    const WAIT: Duration = Duration::from_secs(5);

    fn opts() -> TransportOptions {
        TransportOptions { max_message_size: 1000, tcp_idle_timeout: Duration::from_secs(30), max_tcp_connections: 16 }
    }

    async fn bind_loopback(opts: TransportOptions) -> (Transports, mpsc::Receiver<Inbound>) {
        Transports::bind(&["127.0.0.1:0".parse().unwrap()], opts).await.unwrap()
    }

    fn addr_of(t: &Transports, transport: Transport) -> SocketAddr {
        t.local_addrs().into_iter().find(|(tr, _)| *tr == transport).unwrap().1
    }

    async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
        tokio::time::timeout(WAIT, rx.recv()).await.expect("no inbound message in time").expect("channel closed")
    }

    async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await.expect("no data in time").unwrap();
        buf
    }

    /// Resolves once the peer has closed the stream (EOF or reset).
    async fn closed_by_peer(stream: &mut TcpStream) -> bool {
        let mut buf = [0; 64];
        loop {
            match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }

    async fn eventually(mut check: impl FnMut() -> bool) -> bool {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    async fn udp_round_trip(ip: &str) {
        let listen: SocketAddr = format!("{ip}:0").parse().unwrap();
        let (transports, mut rx) = Transports::bind(&[listen], opts()).await.unwrap();
        let server = addr_of(&transports, Transport::Udp);
        let client = UdpSocket::bind(listen).await.unwrap();
        client.send_to(OPTIONS, server).await.unwrap();
        let inbound = next(&mut rx).await;
        assert_eq!(inbound.transport, Transport::Udp);
        assert_eq!(inbound.source, client.local_addr().unwrap());
        assert_eq!(inbound.local, server);
        assert_eq!(&inbound.data[..], OPTIONS);
        assert!(!inbound.too_large);

        transports.send(Transmit {
            transport: Transport::Udp,
            dest: inbound.source,
            data: Bytes::from_static(MESSAGE),
        });
        let mut buf = [0; 2000];
        let (len, from) = tokio::time::timeout(WAIT, client.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..len], MESSAGE);
        assert_eq!(from, server);
    }

    #[tokio::test]
    async fn udp_round_trip_over_ipv4() {
        udp_round_trip("127.0.0.1").await;
    }

    #[tokio::test]
    async fn udp_round_trip_over_ipv6() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("skipped: no IPv6 loopback on this machine");
            return;
        }
        udp_round_trip("[::1]").await;
    }

    #[tokio::test]
    async fn udp_goes_out_of_the_socket_of_the_destination_family() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("skipped: no IPv6 loopback on this machine");
            return;
        }
        let listen = ["[::1]:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()];
        let (transports, _rx) = Transports::bind(&listen, opts()).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        transports.send(Transmit {
            transport: Transport::Udp,
            dest: client.local_addr().unwrap(),
            data: Bytes::from_static(OPTIONS),
        });
        let mut buf = [0; 2000];
        let (_, from) = tokio::time::timeout(WAIT, client.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!(from, transports.local_addrs()[1].1);
        assert_eq!(transports.stats().send_failures, 0);
    }

    #[tokio::test]
    async fn udp_and_tcp_share_the_system_chosen_port() {
        let (transports, _rx) = bind_loopback(opts()).await;
        let udp = addr_of(&transports, Transport::Udp);
        let tcp = addr_of(&transports, Transport::Tcp);
        assert_ne!(udp.port(), 0);
        assert_eq!(udp, tcp);
    }

    #[tokio::test]
    async fn crlf_keepalive_datagrams_are_dropped() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = addr_of(&transports, Transport::Udp);
        client.send_to(b"\r\n\r\n", server).await.unwrap();
        client.send_to(b"", server).await.unwrap();
        client.send_to(OPTIONS, server).await.unwrap();
        assert_eq!(&next(&mut rx).await.data[..], OPTIONS);
    }

    #[tokio::test]
    async fn oversized_udp_datagram_is_flagged_and_cut_to_the_limit() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut big = OPTIONS.to_vec();
        big.resize(1500, b'x');
        client.send_to(&big, addr_of(&transports, Transport::Udp)).await.unwrap();
        let inbound = next(&mut rx).await;
        assert!(inbound.too_large);
        assert_eq!(&inbound.data[..], &big[..1000]);
    }

    #[tokio::test]
    async fn pipelined_tcp_messages_arrive_separately() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let server = addr_of(&transports, Transport::Tcp);
        let mut client = TcpStream::connect(server).await.unwrap();
        client.write_all(&[OPTIONS, MESSAGE].concat()).await.unwrap();
        for expected in [OPTIONS, MESSAGE] {
            let inbound = next(&mut rx).await;
            assert_eq!(inbound.transport, Transport::Tcp);
            assert_eq!(inbound.source, client.local_addr().unwrap());
            assert_eq!(inbound.local, server);
            assert_eq!(&inbound.data[..], expected);
        }
    }

    #[tokio::test]
    async fn tcp_ping_is_answered_with_pong() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let mut client = TcpStream::connect(addr_of(&transports, Transport::Tcp)).await.unwrap();
        client.write_all(b"\r\n\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut client, 2).await, b"\r\n");
        client.write_all(OPTIONS).await.unwrap();
        assert_eq!(&next(&mut rx).await.data[..], OPTIONS);
    }

    #[tokio::test]
    async fn reply_to_tcp_peer_reuses_its_connection() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let mut client = TcpStream::connect(addr_of(&transports, Transport::Tcp)).await.unwrap();
        client.write_all(OPTIONS).await.unwrap();
        let inbound = next(&mut rx).await;
        transports.send(Transmit {
            transport: Transport::Tcp,
            dest: inbound.source,
            data: Bytes::from_static(MESSAGE),
        });
        assert_eq!(read_exactly(&mut client, MESSAGE.len()).await, MESSAGE);
        assert_eq!(transports.connection_count(), 1);
    }

    #[tokio::test]
    async fn send_to_new_tcp_peer_opens_a_connection_and_reads_from_it() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = peer.local_addr().unwrap();
        for data in [OPTIONS, MESSAGE] {
            transports.send(Transmit { transport: Transport::Tcp, dest, data: Bytes::from_static(data) });
        }
        let (mut stream, _) = tokio::time::timeout(WAIT, peer.accept()).await.unwrap().unwrap();
        let expected = [OPTIONS, MESSAGE].concat();
        assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);

        stream.write_all(MESSAGE).await.unwrap();
        let inbound = next(&mut rx).await;
        assert_eq!(inbound.source, dest);
        assert_eq!(inbound.transport, Transport::Tcp);
        assert_eq!(&inbound.data[..], MESSAGE);
        assert_eq!(transports.connection_count(), 1);
    }

    #[tokio::test]
    async fn failed_tcp_connect_is_counted_and_forgotten() {
        let (transports, _rx) = bind_loopback(opts()).await;
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        transports.send(Transmit { transport: Transport::Tcp, dest: closed, data: Bytes::from_static(OPTIONS) });
        assert!(eventually(|| transports.stats().send_failures == 1).await);
        assert!(eventually(|| transports.connection_count() == 0).await);
    }

    #[tokio::test]
    async fn tcp_connections_beyond_the_cap_are_refused() {
        let (transports, mut rx) = bind_loopback(TransportOptions { max_tcp_connections: 1, ..opts() }).await;
        let server = addr_of(&transports, Transport::Tcp);
        let mut first = TcpStream::connect(server).await.unwrap();
        first.write_all(OPTIONS).await.unwrap();
        next(&mut rx).await;
        let mut second = TcpStream::connect(server).await.unwrap();
        assert!(closed_by_peer(&mut second).await);
        assert_eq!(transports.stats().connections_refused, 1);

        drop(first);
        assert!(eventually(|| transports.connection_count() == 0).await);
        let mut third = TcpStream::connect(server).await.unwrap();
        third.write_all(MESSAGE).await.unwrap();
        assert_eq!(&next(&mut rx).await.data[..], MESSAGE);
    }

    #[tokio::test]
    async fn idle_tcp_connection_is_closed() {
        let (transports, _rx) =
            bind_loopback(TransportOptions { tcp_idle_timeout: Duration::from_millis(200), ..opts() }).await;
        let mut client = TcpStream::connect(addr_of(&transports, Transport::Tcp)).await.unwrap();
        assert!(closed_by_peer(&mut client).await);
        assert!(eventually(|| transports.connection_count() == 0).await);
    }

    #[tokio::test]
    async fn oversized_tcp_message_is_flagged_and_the_stream_goes_on() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let mut client = TcpStream::connect(addr_of(&transports, Transport::Tcp)).await.unwrap();
        let head = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: big\r\nContent-Length: 5000\r\n\r\n";
        let mut bytes = head.to_vec();
        bytes.resize(head.len() + 5000, b'x');
        bytes.extend_from_slice(OPTIONS);
        client.write_all(&bytes).await.unwrap();
        let inbound = next(&mut rx).await;
        assert!(inbound.too_large);
        assert_eq!(&inbound.data[..], head);
        let inbound = next(&mut rx).await;
        assert!(!inbound.too_large);
        assert_eq!(&inbound.data[..], OPTIONS);
    }

    #[tokio::test]
    async fn endless_header_section_is_flagged_answered_then_closed() {
        let (transports, mut rx) = bind_loopback(TransportOptions {
            max_message_size: 200,
            tcp_idle_timeout: Duration::from_millis(500),
            ..opts()
        })
        .await;
        let mut client = TcpStream::connect(addr_of(&transports, Transport::Tcp)).await.unwrap();
        let mut bytes = b"INVITE sip:a@b SIP/2.0\r\nSubject: ".to_vec();
        bytes.resize(300, b'x');
        client.write_all(&bytes).await.unwrap();
        let inbound = next(&mut rx).await;
        assert!(inbound.too_large);
        assert_eq!(&inbound.data[..], &bytes[..200]);
        // The core still gets to answer before the connection goes.
        let answer = b"SIP/2.0 513 Message Too Large\r\nContent-Length: 0\r\n\r\n";
        transports.send(Transmit { transport: Transport::Tcp, dest: inbound.source, data: Bytes::from_static(answer) });
        assert_eq!(read_exactly(&mut client, answer.len()).await, answer);
        assert!(closed_by_peer(&mut client).await);
        assert!(eventually(|| transports.connection_count() == 0).await);
    }

    #[tokio::test]
    async fn invalid_content_length_closes_the_connection() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let mut client = TcpStream::connect(addr_of(&transports, Transport::Tcp)).await.unwrap();
        client.write_all(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: ten\r\n\r\n").await.unwrap();
        assert!(closed_by_peer(&mut client).await);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn busy_port_gives_one_clear_line() {
        let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let error = Transports::bind(&[addr], opts()).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot listen on udp {addr}: address already in use (is another SIP server \
                 running? pick another port with --bind)"
            )
        );
    }

    #[test]
    fn permission_denied_on_a_low_port_names_the_capability() {
        let denied = |addr: &str| BindError::Socket {
            transport: Transport::Tcp,
            addr: addr.parse().unwrap(),
            error: io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(
            denied("0.0.0.0:80").to_string(),
            "cannot listen on tcp 0.0.0.0:80: permission denied (ports below 1024 need root \
             or CAP_NET_BIND_SERVICE)"
        );
        assert_eq!(denied("0.0.0.0:5060").to_string(), "cannot listen on tcp 0.0.0.0:5060: permission denied");
    }

    #[tokio::test]
    async fn dropping_the_transports_closes_connections() {
        let (transports, mut rx) = bind_loopback(opts()).await;
        let mut client = TcpStream::connect(addr_of(&transports, Transport::Tcp)).await.unwrap();
        client.write_all(OPTIONS).await.unwrap();
        next(&mut rx).await;
        drop(transports);
        assert!(closed_by_peer(&mut client).await);
    }

    /// (protocol, source, destination, payload) of every IPv4 record of a capture file.
    fn captured(file: &[u8]) -> Vec<(u8, SocketAddr, SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = &file[24..];
        while rest.len() >= 16 {
            let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
            let ip = &rest[16 + 14..16 + len];
            let header = usize::from(if ip[9] == 6 { 20u8 } else { 8 });
            let addr = |at: usize, port: usize| {
                let octets: [u8; 4] = ip[at..at + 4].try_into().unwrap();
                SocketAddr::from((octets, u16::from_be_bytes([ip[20 + port], ip[21 + port]])))
            };
            out.push((ip[9], addr(12, 0), addr(16, 2), ip[20 + header..].to_vec()));
            rest = &rest[16 + len..];
        }
        out
    }

    #[tokio::test]
    async fn capture_records_udp_and_tcp_both_ways_with_their_real_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sip.pcap");
        let capture = Capture::create(&path, 1 << 20).unwrap();
        let (transports, mut rx) = bind_loopback(opts()).await;
        transports.set_capture(capture.clone());
        let (server_udp, server_tcp) = (addr_of(&transports, Transport::Udp), addr_of(&transports, Transport::Tcp));

        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(OPTIONS, server_udp).await.unwrap();
        let inbound = next(&mut rx).await;
        transports.send(Transmit {
            transport: Transport::Udp,
            dest: inbound.source,
            data: Bytes::from_static(MESSAGE),
        });
        let mut buf = [0; 2000];
        tokio::time::timeout(WAIT, client.recv_from(&mut buf)).await.unwrap().unwrap();

        let mut stream = TcpStream::connect(server_tcp).await.unwrap();
        stream.write_all(OPTIONS).await.unwrap();
        let inbound = next(&mut rx).await;
        transports.send(Transmit {
            transport: Transport::Tcp,
            dest: inbound.source,
            data: Bytes::from_static(MESSAGE),
        });
        read_exactly(&mut stream, MESSAGE.len()).await;

        let (udp_client, tcp_client) = (client.local_addr().unwrap(), stream.local_addr().unwrap());
        let expected = vec![
            (17, udp_client, server_udp, OPTIONS.to_vec()),
            (17, server_udp, udp_client, MESSAGE.to_vec()),
            (6, tcp_client, server_tcp, Vec::new()),
            (6, server_tcp, tcp_client, Vec::new()),
            (6, tcp_client, server_tcp, Vec::new()),
            (6, tcp_client, server_tcp, OPTIONS.to_vec()),
            (6, server_tcp, tcp_client, MESSAGE.to_vec()),
        ];
        let complete = eventually(|| {
            capture.flush();
            captured(&std::fs::read(&path).unwrap()) == expected
        })
        .await;
        assert!(complete, "captured: {:?}", captured(&std::fs::read(&path).unwrap()));
    }

    /// A server certificate for 127.0.0.1 in `dir`, its server config and a client config
    /// trusting it.
    fn tls_pair(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let (files, _) = crate::io::tls::self_signed(dir, &["127.0.0.1".to_owned()]).unwrap();
        let client = crate::io::tls::client_config(Some(&files.certificate)).unwrap();
        (files.server_config().unwrap(), client)
    }

    async fn bind_tls(tls: TlsOptions, opts: TransportOptions) -> (Transports, mpsc::Receiver<Inbound>) {
        let listen = ["127.0.0.1:0".parse().unwrap()];
        let tls = TlsOptions { listen: listen.to_vec(), ..tls };
        Transports::bind_with_tls(&listen, tls, opts).await.unwrap()
    }

    #[tokio::test]
    async fn tls_client_and_server_exchange_sip_over_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (server_config, client_config) = tls_pair(dir.path());
        let (server, mut server_rx) =
            bind_tls(TlsOptions { server: Some(server_config), ..TlsOptions::default() }, opts()).await;
        let server_addr = addr_of(&server, Transport::Tls);
        assert_ne!(server_addr, addr_of(&server, Transport::Tcp));
        let (client, mut client_rx) = Transports::bind_with_tls(
            &["127.0.0.1:0".parse().unwrap()],
            TlsOptions { client: Some(client_config), ..TlsOptions::default() },
            opts(),
        )
        .await
        .unwrap();
        client.send(Transmit { transport: Transport::Tls, dest: server_addr, data: Bytes::from_static(OPTIONS) });
        let inbound = next(&mut server_rx).await;
        assert_eq!((inbound.transport, inbound.local, &inbound.data[..]), (Transport::Tls, server_addr, OPTIONS));

        // The answer goes back over the client's own connection: it has no TLS listener.
        server.send(Transmit { transport: Transport::Tls, dest: inbound.source, data: Bytes::from_static(MESSAGE) });
        let answer = next(&mut client_rx).await;
        assert_eq!((answer.transport, answer.source, &answer.data[..]), (Transport::Tls, server_addr, MESSAGE));
        assert_eq!(answer.local, inbound.source);
        assert_eq!((server.connection_count(), client.connection_count()), (1, 1));
        assert_eq!(server.stats(), TransportStats::default());
    }

    #[tokio::test]
    async fn tls_ping_is_answered_with_pong_inside_tls() {
        let dir = tempfile::tempdir().unwrap();
        let (server_config, client_config) = tls_pair(dir.path());
        let (server, mut rx) =
            bind_tls(TlsOptions { server: Some(server_config), ..TlsOptions::default() }, opts()).await;
        let tcp = TcpStream::connect(addr_of(&server, Transport::Tls)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(client_config).connect(name, tcp).await.unwrap();
        tls.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0; 2];
        tokio::time::timeout(WAIT, tls.read_exact(&mut pong)).await.unwrap().unwrap();
        assert_eq!(&pong, b"\r\n");
        tls.write_all(OPTIONS).await.unwrap();
        assert_eq!(&next(&mut rx).await.data[..], OPTIONS);
    }

    #[tokio::test]
    async fn tls_handshake_timeout_closes_a_silent_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (server_config, _) = tls_pair(dir.path());
        let tls = TlsOptions {
            server: Some(server_config),
            handshake_timeout: Duration::from_millis(200),
            ..TlsOptions::default()
        };
        let (server, _rx) = bind_tls(tls, opts()).await;
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr_of(&server, Transport::Tls)).await.unwrap();
        assert!(eventually(|| server.connection_count() == 1).await);
        assert!(closed_by_peer(&mut silent).await);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(eventually(|| server.connection_count() == 0).await);
        assert_eq!(server.stats().handshake_failures, 1);
    }

    #[tokio::test]
    async fn handshaking_tls_connections_count_against_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (server_config, _) = tls_pair(dir.path());
        let (server, _rx) = bind_tls(
            TlsOptions { server: Some(server_config), ..TlsOptions::default() },
            TransportOptions { max_tcp_connections: 1, ..opts() },
        )
        .await;
        let _handshaking = TcpStream::connect(addr_of(&server, Transport::Tls)).await.unwrap();
        assert!(eventually(|| server.connection_count() == 1).await);
        let mut refused = TcpStream::connect(addr_of(&server, Transport::Tls)).await.unwrap();
        assert!(closed_by_peer(&mut refused).await);
        assert_eq!(server.stats().connections_refused, 1);
        let mut tcp_refused = TcpStream::connect(addr_of(&server, Transport::Tcp)).await.unwrap();
        assert!(closed_by_peer(&mut tcp_refused).await);
        assert_eq!(server.stats().connections_refused, 2);
    }

    #[tokio::test]
    async fn untrusted_server_certificate_is_reported_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let (server_config, _) = tls_pair(dir.path());
        let (server, mut server_rx) =
            bind_tls(TlsOptions { server: Some(server_config), ..TlsOptions::default() }, opts()).await;
        let server_addr = addr_of(&server, Transport::Tls);
        let (client, _rx) = Transports::bind_with_tls(
            &["127.0.0.1:0".parse().unwrap()],
            TlsOptions {
                client: Some(crate::io::tls::client_config(None).unwrap()),
                server_names: HashMap::from([(server_addr, "127.0.0.1".to_owned())]),
                ..TlsOptions::default()
            },
            opts(),
        )
        .await
        .unwrap();
        let mut failures = client.connect_failures();
        client.send(Transmit { transport: Transport::Tls, dest: server_addr, data: Bytes::from_static(OPTIONS) });
        let failure = tokio::time::timeout(WAIT, failures.recv()).await.unwrap().unwrap();
        assert_eq!((failure.transport, failure.dest), (Transport::Tls, server_addr));
        assert!(
            matches!(&failure.error, ConnectError::Untrusted { name, .. } if name == "127.0.0.1"),
            "{:?}",
            failure.error
        );
        assert!(eventually(|| client.connection_count() == 0).await);
        assert_eq!(client.stats().send_failures, 1);
        assert!(tokio::time::timeout(Duration::from_millis(200), server_rx.recv()).await.is_err());
    }

    #[tokio::test]
    async fn capture_of_tls_holds_the_encrypted_bytes_on_the_real_ports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls.pcap");
        let capture = Capture::create(&path, 1 << 20).unwrap();
        let (server_config, client_config) = tls_pair(dir.path());
        let (server, mut server_rx) =
            bind_tls(TlsOptions { server: Some(server_config), ..TlsOptions::default() }, opts()).await;
        server.set_capture(capture.clone());
        let (client, _rx) = Transports::bind_with_tls(
            &["127.0.0.1:0".parse().unwrap()],
            TlsOptions { client: Some(client_config), ..TlsOptions::default() },
            opts(),
        )
        .await
        .unwrap();
        let server_addr = addr_of(&server, Transport::Tls);
        client.send(Transmit { transport: Transport::Tls, dest: server_addr, data: Bytes::from_static(OPTIONS) });
        let inbound = next(&mut server_rx).await;
        capture.flush();
        let records = captured(&std::fs::read(&path).unwrap());
        let payload: Vec<u8> = records.iter().flat_map(|r| r.3.clone()).collect();
        assert!(records.iter().all(|r| r.0 == 6 && (r.1 == server_addr || r.2 == server_addr)));
        assert!(records.iter().any(|r| r.1 == inbound.source && r.2 == server_addr && r.3.first() == Some(&0x16)));
        assert!(!payload.windows(7).any(|w| w == b"OPTIONS"), "plaintext SIP in the TLS capture");
    }
}
