//! The UDP and TCP sockets SIP travels over (RFC 3261 §18).
//!
//! [`Transports::bind`] listens on UDP and TCP on every given address and hands every message
//! received to one channel as an [`Inbound`]. [`Transports::send`] never blocks: UDP goes out
//! at once, TCP goes to the queue of the connection to that peer, reusing the connection the peer
//! opened (RFC 3261 §18.2.2) or opening one in the background (§18.1.1). Streams are framed by
//! [`StreamFramer`] and answer RFC 5626 §3.5.1 keep-alive pings. Nothing here reads or writes
//! SIP headers: the core above deals with messages, this shell with bytes and addresses.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::WriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::io::capture::Capture;
use crate::io::framing::{Frame, StreamFramer};
use crate::sip::Transport;

/// Messages waiting for the core before the receive tasks stop reading.
const INBOUND_QUEUE: usize = 4096;
/// Messages waiting to be written to one TCP connection before further ones are dropped.
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

/// Limits of the socket shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// Largest message accepted, in bytes; larger ones reach the core flagged `too_large`.
    pub max_message_size: usize,
    /// A TCP connection with no traffic either way for this long is closed. Keep it above the
    /// clients' keep-alive interval (RFC 5626 §4.4.1 suggests 95 to 120 s).
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections open at once, inbound and outbound; further ones are refused.
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
    /// listening on a wildcard), the connection's own address for TCP.
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
    /// Inbound TCP connections refused because `max_tcp_connections` were open.
    pub connections_refused: u64,
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
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
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

/// The listening sockets and open TCP connections. Cheap to clone; the sockets close and the
/// tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Sending handles on the UDP sockets (the same sockets the receive tasks read).
    udp: Vec<(SocketAddr, std::net::UdpSocket)>,
    tcp: Vec<SocketAddr>,
    tasks: Vec<AbortHandle>,
}

/// What the receive and connection tasks need.
struct Shared {
    opts: TransportOptions,
    inbound: mpsc::Sender<Inbound>,
    connections: Mutex<HashMap<SocketAddr, Connection>>,
    next_connection: AtomicU64,
    send_failures: AtomicU64,
    connections_refused: AtomicU64,
    runtime: Handle,
    /// Where every packet sent and received is recorded, once set.
    capture: OnceLock<Capture>,
}

/// The table's handle on a TCP connection task.
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
        if listen.is_empty() {
            return Err(BindError::NoAddress);
        }
        let mut bound = Vec::with_capacity(listen.len());
        for &addr in listen {
            bound.push(bind_pair(addr)?);
        }
        let (inbound, receiver) = mpsc::channel(INBOUND_QUEUE);
        let runtime = Handle::current();
        let shared = Arc::new(Shared {
            opts,
            inbound,
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            runtime: runtime.clone(),
            capture: OnceLock::new(),
        });
        let mut inner = Inner { shared: shared.clone(), udp: Vec::new(), tcp: Vec::new(), tasks: Vec::new() };
        for Bound { udp, udp_sender, udp_addr, tcp, tcp_addr } in bound {
            let task = runtime.spawn(receive_udp(udp, udp_addr, shared.clone()));
            inner.tasks.push(task.abort_handle());
            inner.udp.push((udp_addr, udp_sender));
            let task = runtime.spawn(accept_tcp(tcp, tcp_addr, shared.clone()));
            inner.tasks.push(task.abort_handle());
            inner.tcp.push(tcp_addr);
        }
        Ok((Transports { inner: Arc::new(inner) }, receiver))
    }

    /// Sends a message without waiting. Failures are logged and counted in
    /// [`stats`](Self::stats), never returned: SIP's transaction layer handles loss.
    pub fn send(&self, t: Transmit) {
        match t.transport {
            Transport::Udp => self.send_udp(t.dest, &t.data),
            Transport::Tcp => self.inner.shared.send_tcp(t.dest, t.data),
        }
    }

    /// Records every datagram and TCP byte sent or received from now on in `capture`
    /// (`--pcap`). Only the first call has an effect.
    pub fn set_capture(&self, capture: Capture) {
        if capture.is_enabled() {
            let _ = self.inner.shared.capture.set(capture);
        }
    }

    /// The addresses listened on, with the ports the system chose.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let udp = self.inner.udp.iter().map(|(a, _)| (Transport::Udp, *a));
        let tcp = self.inner.tcp.iter().map(|a| (Transport::Tcp, *a));
        udp.chain(tcp).collect()
    }

    /// What went wrong so far.
    pub fn stats(&self) -> TransportStats {
        let shared = &self.inner.shared;
        TransportStats {
            send_failures: shared.send_failures.load(Ordering::Relaxed),
            connections_refused: shared.connections_refused.load(Ordering::Relaxed),
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

/// Accepts TCP connections until aborted.
async fn accept_tcp(listener: TcpListener, local: SocketAddr, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => shared.adopt(stream, peer),
            Err(error) => {
                // Typically out of file descriptors: give closing connections a moment.
                warn!(%local, %error, "cannot accept TCP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<SocketAddr, Connection>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send_failed(&self, dest: SocketAddr, reason: &str) {
        debug!(%dest, reason, "message dropped");
        self.send_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a connection in the table, returning its id and queue.
    fn register(
        &self,
        table: &mut HashMap<SocketAddr, Connection>,
        peer: SocketAddr,
    ) -> (u64, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (queue, receiver) = mpsc::channel(CONNECTION_QUEUE);
        table.insert(peer, Connection { id, queue: queue.clone() });
        (id, queue, receiver)
    }

    /// Takes over an accepted connection, or refuses it when at the cap.
    fn adopt(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let mut table = self.connections();
        if table.len() >= self.opts.max_tcp_connections {
            drop(table);
            self.connections_refused.fetch_add(1, Ordering::Relaxed);
            warn!(%peer, max = self.opts.max_tcp_connections, "too many TCP connections: refused");
            return;
        }
        let (id, _, queue) = self.register(&mut table, peer);
        drop(table);
        self.runtime.spawn(run_connection(self.clone(), id, stream, peer, queue));
    }

    fn send_tcp(self: &Arc<Self>, dest: SocketAddr, mut data: Bytes) {
        let mut table = self.connections();
        if let Some(connection) = table.get(&dest) {
            match connection.queue.try_send(data) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    drop(table);
                    self.send_failed(dest, "TCP connection queue full");
                    return;
                }
                // The connection just ended: open a new one.
                Err(TrySendError::Closed(returned)) => {
                    table.remove(&dest);
                    data = returned;
                }
            }
        }
        if table.len() >= self.opts.max_tcp_connections {
            drop(table);
            self.send_failed(dest, "too many TCP connections");
            return;
        }
        let (id, queue, receiver) = self.register(&mut table, dest);
        drop(table);
        // A new queue has room for its first message.
        let _ = queue.try_send(data);
        self.runtime.spawn(connect(self.clone(), id, dest, receiver));
    }

    /// Takes a finished connection out of the table and counts what it left unsent.
    fn forget(&self, peer: SocketAddr, id: u64, mut queue: mpsc::Receiver<Bytes>) {
        {
            let mut table = self.connections();
            if table.get(&peer).is_some_and(|c| c.id == id) {
                table.remove(&peer);
            }
        }
        queue.close();
        while queue.try_recv().is_ok() {
            self.send_failed(peer, "TCP connection closed before sending");
        }
    }
}

async fn connect(shared: Arc<Shared>, id: u64, dest: SocketAddr, queue: mpsc::Receiver<Bytes>) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            warn!(%dest, %error, "TCP connect failed");
            return shared.forget(dest, id, queue);
        }
        Err(_) => {
            warn!(%dest, "TCP connect timed out");
            return shared.forget(dest, id, queue);
        }
    };
    run_connection(shared, id, stream, dest, queue).await;
}

async fn run_connection(
    shared: Arc<Shared>,
    id: u64,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut queue: mpsc::Receiver<Bytes>,
) {
    // Small messages must not wait for more to fill a segment.
    let _ = stream.set_nodelay(true);
    match drive(&shared, &mut stream, peer, &mut queue).await {
        Ok(()) => debug!(%peer, "TCP connection closed"),
        Err(error) => debug!(%peer, %error, "TCP connection failed"),
    }
    shared.forget(peer, id, queue);
}

/// Moves bytes both ways until the peer closes, the connection idles out, the stream can no
/// longer be framed, or the transports are dropped.
async fn drive(
    shared: &Shared,
    stream: &mut TcpStream,
    peer: SocketAddr,
    queue: &mut mpsc::Receiver<Bytes>,
) -> io::Result<()> {
    let local = stream.local_addr()?;
    let idle = shared.opts.tcp_idle_timeout;
    let (mut reader, mut writer) = stream.split();
    let mut framer = StreamFramer::new(shared.opts.max_message_size);
    let mut buf = vec![0; TCP_READ_BUFFER];
    let mut batch = BytesMut::new();
    let mut reading = true;
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = reader.read(&mut buf), if reading => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                deadline.as_mut().reset(Instant::now() + idle);
                if let Some(capture) = shared.capture.get() {
                    capture.tcp(peer, local, &buf[..n]);
                }
                framer.push(&buf[..n]);
                while let Some(frame) = framer.next_frame() {
                    let (data, too_large) = match frame {
                        Frame::Message(data) => (data, false),
                        Frame::TooLarge { head } => (head, true),
                        Frame::Ping => {
                            write(&mut writer, b"\r\n", idle).await?;
                            if let Some(capture) = shared.capture.get() {
                                capture.tcp(local, peer, b"\r\n");
                            }
                            continue;
                        }
                        Frame::Invalid { head } => {
                            let start = head.split(|&b| b == b'\n').next().unwrap_or_default();
                            warn!(%peer, start_line = %String::from_utf8_lossy(start).trim_end(),
                                "invalid Content-Length: closing TCP connection");
                            return Ok(());
                        }
                    };
                    let inbound = Inbound { transport: Transport::Tcp, source: peer, local, data, too_large };
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
                write(&mut writer, data, idle).await?;
                if let Some(capture) = shared.capture.get() {
                    capture.tcp(local, peer, data);
                }
                batch.clear();
                if reading {
                    deadline.as_mut().reset(Instant::now() + idle);
                }
            }
            () = &mut deadline => {
                debug!(%peer, reading, "closing idle TCP connection");
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

async fn write(writer: &mut WriteHalf<'_>, data: &[u8], limit: Duration) -> io::Result<()> {
    match tokio::time::timeout(limit, writer.write_all(data)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading")),
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
}
