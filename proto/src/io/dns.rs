//! Locating a SIP server (RFC 3263 §4): from a URI's host, port and transport to the list of
//! transport and address pairs to try, in order.
//!
//! A numeric host is used as it is; an explicit port skips SRV; an explicit transport picks its
//! SRV name; otherwise NAPTR records choose among the transports we speak, with SRV for each
//! transport as the fallback and A/AAAA on the default port as the last resort. SRV records are
//! ordered by priority and, within one priority, by the weighted random choice of RFC 2782.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::rdata::{NAPTR, SRV};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::debug;

use crate::sip::Transport;

/// The default port of `sip:` URIs (RFC 3261 §19.1.2).
const SIP_PORT: u16 = 5060;
/// The default port of `sips:` URIs.
const SIPS_PORT: u16 = 5061;

/// One place to send a request to; for a `sips:` URI the transport is TLS.
pub use crate::transaction::Target;

/// Server location failed.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The DNS resolver could not be set up.
    #[error("cannot set up DNS resolution: {0} (check /etc/resolv.conf)")]
    Setup(#[source] NetError),
    /// The host is neither an IP address nor a valid domain name.
    #[error("{host:?} is not a valid host name or IP address")]
    InvalidHost {
        /// The host as given.
        host: String,
    },
    /// A `sips:` URI asked for UDP, which cannot carry TLS (RFC 3261 §26.2.2).
    #[error("a sips: URI cannot use transport=udp: SIPS needs TLS over TCP")]
    SipsOverUdp,
    /// DNS answered, but with nothing to send to.
    #[error("no SIP server found for {host}: DNS has no NAPTR, SRV or address records for it")]
    NotFound {
        /// The host looked up.
        host: String,
    },
    /// A DNS query failed (as opposed to finding no records).
    #[error("DNS {record} lookup of {name} failed: {error}")]
    Dns {
        /// The name queried.
        name: String,
        /// The record type queried.
        record: RecordType,
        /// What went wrong.
        #[source]
        error: NetError,
    },
}

/// Finds the servers for a SIP URI's host through DNS.
pub struct Locator {
    resolver: TokioResolver,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator").finish_non_exhaustive()
    }
}

impl Locator {
    /// A locator using the system's name servers (`/etc/resolv.conf` on Unix).
    pub fn from_system_conf() -> Result<Self, LocateError> {
        let mut builder = TokioResolver::builder_tokio().map_err(LocateError::Setup)?;
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        Ok(Self::new(builder.build().map_err(LocateError::Setup)?))
    }

    /// A locator asking only the name server at `server`, over UDP and TCP, ignoring the hosts
    /// file.
    pub fn with_name_server(server: SocketAddr) -> Result<Self, LocateError> {
        let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
            .into_iter()
            .map(|mut c| {
                c.port = server.port();
                c
            })
            .collect();
        let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(server.ip(), true, connections)]);
        let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.use_hosts_file = ResolveHosts::Never;
        Ok(Self::new(builder.build().map_err(LocateError::Setup)?))
    }

    fn new(resolver: TokioResolver) -> Self {
        Locator { resolver, rng: Mutex::new(StdRng::from_os_rng()) }
    }

    /// Seeds the random choice among SRV records of equal priority, for reproducible runs.
    pub fn with_seed(self, seed: u64) -> Self {
        Locator { rng: Mutex::new(StdRng::seed_from_u64(seed)), ..self }
    }

    /// The targets for a URI's host, port and `transport=` parameter, in the order to try
    /// (RFC 3263 §4). `sips` selects `sips:` URI rules: TLS, default port 5061 (as for
    /// `transport=tls`). IPv4 addresses of a name come before its IPv6 ones.
    pub async fn locate(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
        sips: bool,
    ) -> Result<Vec<Target>, LocateError> {
        if sips && transport == Some(Transport::Udp) {
            return Err(LocateError::SipsOverUdp);
        }
        // RFC 5630 §3.1.3: `sips:…;transport=tcp` is TLS over TCP; so is a bare `sips:`.
        let transport = if sips { Some(Transport::Tls) } else { transport };
        let default_transport = transport.unwrap_or(Transport::Udp);
        let default_port = if sips || default_transport == Transport::Tls { SIPS_PORT } else { SIP_PORT };
        if let Some(ip) = parse_ip(host) {
            let addr = SocketAddr::new(ip, port.unwrap_or(default_port));
            return Ok(vec![Target { transport: default_transport, addr }]);
        }
        let name = Name::from_utf8(host).map_err(|_| LocateError::InvalidHost { host: host.to_owned() })?;
        if name.is_root() || name.num_labels() == 0 {
            return Err(LocateError::InvalidHost { host: host.to_owned() });
        }

        let mut targets = Vec::new();
        if let Some(port) = port {
            // §4.2: an explicit port means plain address records.
            self.addresses(&name, default_transport, port, &mut targets).await?;
        } else {
            if let Some(transport) = transport {
                self.srv(&name, transport, sips, &mut targets).await?;
            } else {
                self.naptr(&name, sips, &mut targets).await?;
                if targets.is_empty() {
                    // §4.1: no usable NAPTR, so try SRV for every transport we speak.
                    for &transport in supported_transports(sips) {
                        self.srv(&name, transport, sips, &mut targets).await?;
                    }
                }
            }
            if targets.is_empty() {
                self.addresses(&name, default_transport, default_port, &mut targets).await?;
            }
        }
        dedup(&mut targets);
        if targets.is_empty() {
            return Err(LocateError::NotFound { host: host.to_owned() });
        }
        Ok(targets)
    }

    /// NAPTR for `name`, then SRV for every record naming a service we speak, in order.
    async fn naptr(&self, name: &Name, sips: bool, targets: &mut Vec<Target>) -> Result<(), LocateError> {
        let Some(lookup) = self.query(name, RecordType::NAPTR).await? else {
            return Ok(());
        };
        let records: Vec<&NAPTR> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::NAPTR(naptr) => Some(naptr),
                _ => None,
            })
            .collect();
        for (transport, srv_name) in sip_services(&records, sips) {
            self.srv_at(&srv_name, transport, targets).await?;
        }
        Ok(())
    }

    /// SRV `_sip._udp.name` (or `_sip._tcp`, `_sips._tcp`) and the addresses of its targets.
    async fn srv(
        &self,
        name: &Name,
        transport: Transport,
        sips: bool,
        targets: &mut Vec<Target>,
    ) -> Result<(), LocateError> {
        let service = match (sips, transport) {
            (false, Transport::Udp) => "_sip._udp",
            (false, Transport::Tcp) => "_sip._tcp",
            (true, _) | (false, Transport::Tls) => "_sips._tcp",
        };
        let srv_name = Name::from_ascii(service)
            .and_then(|s| s.append_name(name))
            .map_err(|_| LocateError::InvalidHost { host: name.to_string() })?;
        self.srv_at(&srv_name, transport, targets).await
    }

    async fn srv_at(
        &self,
        srv_name: &Name,
        transport: Transport,
        targets: &mut Vec<Target>,
    ) -> Result<(), LocateError> {
        let Some(lookup) = self.query(srv_name, RecordType::SRV).await? else {
            return Ok(());
        };
        let records = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(srv.clone()),
                _ => None,
            })
            .collect();
        let ordered = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            order_srv(records, &mut *rng)
        };
        for srv in ordered {
            // A target of "." says the service is not offered here (RFC 2782).
            if !srv.target.is_root() {
                self.addresses(&srv.target, transport, srv.port, targets).await?;
            }
        }
        Ok(())
    }

    /// A and AAAA records of `name`, each with `port`.
    async fn addresses(
        &self,
        name: &Name,
        transport: Transport,
        port: u16,
        targets: &mut Vec<Target>,
    ) -> Result<(), LocateError> {
        match self.resolver.lookup_ip(name.clone()).await {
            Ok(ips) => {
                targets.extend(ips.iter().map(|ip| Target { transport, addr: SocketAddr::new(ip, port) }));
                Ok(())
            }
            Err(error) if error.is_no_records_found() => {
                debug!(%name, "no address records");
                Ok(())
            }
            Err(error) => Err(LocateError::Dns { name: name.to_string(), record: RecordType::A, error }),
        }
    }

    /// One lookup; `None` when the name or record does not exist.
    async fn query(
        &self,
        name: &Name,
        record: RecordType,
    ) -> Result<Option<hickory_resolver::lookup::Lookup>, LocateError> {
        match self.resolver.lookup(name.clone(), record).await {
            Ok(lookup) => Ok(Some(lookup)),
            Err(error) if error.is_no_records_found() => {
                debug!(%name, %record, "no records");
                Ok(None)
            }
            Err(error) => Err(LocateError::Dns { name: name.to_string(), record, error }),
        }
    }
}

/// An IP literal host, with or without the brackets of an IPv6 reference.
fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

/// The transports tried by SRV when there is no NAPTR, in order of preference.
fn supported_transports(sips: bool) -> &'static [Transport] {
    if sips { &[Transport::Tls] } else { &[Transport::Udp, Transport::Tcp] }
}

/// The NAPTR records naming SRV lookups for services we speak (RFC 3263 §4.1), ordered by
/// order then preference, as (transport, SRV name).
fn sip_services(records: &[&NAPTR], sips: bool) -> Vec<(Transport, Name)> {
    let mut usable: Vec<&NAPTR> = records
        .iter()
        .copied()
        .filter(|r| r.flags.eq_ignore_ascii_case(b"s") && !r.replacement.is_root())
        .filter(|r| service_transport(&r.services, sips).is_some())
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    usable.into_iter().filter_map(|r| Some((service_transport(&r.services, sips)?, r.replacement.clone()))).collect()
}

fn service_transport(service: &[u8], sips: bool) -> Option<Transport> {
    let is = |s: &[u8]| service.eq_ignore_ascii_case(s);
    if sips {
        is(b"SIPS+D2T").then_some(Transport::Tls)
    } else if is(b"SIP+D2U") {
        Some(Transport::Udp)
    } else if is(b"SIP+D2T") {
        Some(Transport::Tcp)
    } else {
        None
    }
}

/// Orders SRV records as RFC 2782 says: by priority, and within a priority by repeated
/// weighted random choice. A record's chance is exactly its share of the remaining weight, so
/// weight-0 records come after the weighted ones (RFC 2782's inclusive draw would give them a
/// small chance and skew the others); among weight-0 records the choice is uniform.
fn order_srv<R: Rng + ?Sized>(mut records: Vec<SRV>, rng: &mut R) -> Vec<SRV> {
    records.sort_by_key(|r| r.priority);
    let mut ordered = Vec::with_capacity(records.len());
    while let Some(priority) = records.first().map(|r| r.priority) {
        let end = records.iter().take_while(|r| r.priority == priority).count();
        let mut group: Vec<SRV> = records.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let chosen = if total == 0 {
                rng.random_range(0..group.len())
            } else {
                let draw = rng.random_range(0..total);
                let mut running = 0;
                group
                    .iter()
                    .position(|r| {
                        running += u32::from(r.weight);
                        running > draw
                    })
                    .unwrap_or(0)
            };
            ordered.push(group.remove(chosen));
        }
    }
    ordered
}

/// Drops repeated targets, keeping the first of each.
fn dedup(targets: &mut Vec<Target>) {
    let mut seen = std::collections::HashSet::with_capacity(targets.len());
    targets.retain(|t| seen.insert(*t));
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
    use hickory_resolver::proto::rr::Record;
    use hickory_resolver::proto::rr::rdata::{A, AAAA};
    use std::sync::Arc;
    use tokio::net::UdpSocket;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn srv(priority: u16, weight: u16, target: &str) -> SRV {
        SRV::new(priority, weight, 5060, name(target))
    }

    fn naptr(order: u16, preference: u16, flags: &str, service: &str, replacement: &str) -> NAPTR {
        NAPTR::new(
            order,
            preference,
            flags.as_bytes().into(),
            service.as_bytes().into(),
            Box::default(),
            name(replacement),
        )
    }

    fn targets_of(ordered: &[SRV]) -> Vec<String> {
        ordered.iter().map(|r| r.target.to_string()).collect()
    }

    #[test]
    fn srv_lower_priority_always_comes_first() {
        let records = vec![srv(20, 100, "c."), srv(10, 1, "a."), srv(30, 0, "d."), srv(10, 1, "b.")];
        for seed in 0..50 {
            let ordered = order_srv(records.clone(), &mut StdRng::seed_from_u64(seed));
            let mut first_two = targets_of(&ordered[..2]);
            first_two.sort();
            assert_eq!(first_two, ["a.", "b."]);
            assert_eq!(targets_of(&ordered[2..]), ["c.", "d."]);
        }
    }

    #[test]
    fn srv_weights_set_the_odds_of_going_first() {
        let records = vec![srv(10, 1, "light."), srv(10, 3, "heavy.")];
        let mut rng = StdRng::seed_from_u64(2782);
        let runs = 4000;
        let heavy_first =
            (0..runs).filter(|_| order_srv(records.clone(), &mut rng)[0].target == name("heavy.")).count();
        // Expected 3/4 of the runs.
        assert!((2800..3200).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn srv_zero_weight_comes_after_weighted_records() {
        let records = vec![srv(10, 0, "zero."), srv(10, 1, "light."), srv(10, 0, "nil.")];
        let mut rng = StdRng::seed_from_u64(1);
        let mut zero_second = 0;
        for _ in 0..1000 {
            let ordered = order_srv(records.clone(), &mut rng);
            assert_eq!(ordered[0].target, name("light."));
            zero_second += usize::from(ordered[1].target == name("zero."));
        }
        // Uniform among the weight-0 records: expected 500.
        assert!((400..600).contains(&zero_second), "{zero_second}");
    }

    #[test]
    fn srv_order_is_reproducible_with_a_seed() {
        let records: Vec<SRV> = (0..8).map(|i| srv(1, 10, &format!("s{i}."))).collect();
        let a = order_srv(records.clone(), &mut StdRng::seed_from_u64(7));
        let b = order_srv(records.clone(), &mut StdRng::seed_from_u64(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 8);
        let mut all = targets_of(&a);
        all.sort();
        assert_eq!(all, targets_of(&records));
    }

    #[test]
    fn naptr_keeps_sip_services_in_order_and_preference() {
        let records = [
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.example.test."),
            naptr(10, 50, "S", "sip+d2t", "_sip._tcp.example.test."),
            naptr(10, 40, "s", "SIPS+D2T", "_sips._tcp.example.test."),
            naptr(5, 10, "s", "SIP+D2S", "_sip._sctp.example.test."),
            naptr(1, 10, "a", "SIP+D2U", "other.example.test."),
            naptr(1, 10, "s", "SIP+D2U", "."),
        ];
        let refs: Vec<&NAPTR> = records.iter().collect();
        assert_eq!(
            sip_services(&refs, false),
            vec![(Transport::Tcp, name("_sip._tcp.example.test.")), (Transport::Udp, name("_sip._udp.example.test.")),]
        );
        assert_eq!(sip_services(&refs, true), vec![(Transport::Tls, name("_sips._tcp.example.test."))]);
    }

    #[test]
    fn ip_literals_are_recognised_with_and_without_brackets() {
        assert_eq!(parse_ip("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(parse_ip("[2001:db8::1]"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_ip("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_ip("example.com"), None);
        assert_eq!(parse_ip("[example.com]"), None);
    }

    /// A tiny authoritative name server on a loopback port, answering from `zone` and
    /// recording every question.
    struct TestServer {
        addr: SocketAddr,
        questions: Arc<Mutex<Vec<(String, RecordType)>>>,
    }

    impl TestServer {
        async fn start(zone: Vec<Record>) -> Self {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = socket.local_addr().unwrap();
            let questions = Arc::new(Mutex::new(Vec::new()));
            let log = questions.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                loop {
                    let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                        return;
                    };
                    let Ok(request) = Message::from_vec(&buf[..len]) else {
                        continue;
                    };
                    let mut response = Message::response(request.metadata.id, OpCode::Query);
                    response.metadata.authoritative = true;
                    response.metadata.recursion_desired = request.metadata.recursion_desired;
                    for query in &request.queries {
                        log.lock().unwrap().push((query.name().to_string(), query.query_type()));
                        response.add_query(query.clone());
                        let mut known = false;
                        for record in zone.iter().filter(|r| &r.name == query.name()) {
                            known = true;
                            if record.record_type() == query.query_type() {
                                response.add_answer(record.clone());
                            }
                        }
                        if !known {
                            response.metadata.response_code = ResponseCode::NXDomain;
                        }
                    }
                    let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
                }
            });
            TestServer { addr, questions }
        }

        fn locator(&self) -> Locator {
            Locator::with_name_server(self.addr).unwrap().with_seed(3263)
        }

        fn asked(&self, record: RecordType) -> Vec<String> {
            let questions = self.questions.lock().unwrap();
            questions.iter().filter(|(_, r)| *r == record).map(|(n, _)| n.clone()).collect()
        }
    }

    fn rr(owner: &str, data: RData) -> Record {
        Record::from_rdata(name(owner), 300, data)
    }

    fn a(owner: &str, ip: &str) -> Record {
        rr(owner, RData::A(A(ip.parse().unwrap())))
    }

    fn aaaa(owner: &str, ip: &str) -> Record {
        rr(owner, RData::AAAA(AAAA(ip.parse().unwrap())))
    }

    fn srv_rr(owner: &str, priority: u16, port: u16, target: &str) -> Record {
        rr(owner, RData::SRV(SRV::new(priority, 0, port, name(target))))
    }

    fn naptr_rr(owner: &str, order: u16, service: &str, replacement: &str) -> Record {
        rr(owner, RData::NAPTR(naptr(order, 0, "s", service, replacement)))
    }

    fn target(transport: Transport, addr: &str) -> Target {
        Target { transport, addr: addr.parse().unwrap() }
    }

    #[tokio::test]
    async fn naptr_then_srv_then_address_records() {
        let server = TestServer::start(vec![
            naptr_rr("example.test.", 20, "SIP+D2U", "_sip._udp.example.test."),
            naptr_rr("example.test.", 10, "SIP+D2T", "_sip._tcp.example.test."),
            srv_rr("_sip._tcp.example.test.", 10, 5070, "tcp1.example.test."),
            srv_rr("_sip._tcp.example.test.", 20, 5071, "tcp2.example.test."),
            srv_rr("_sip._udp.example.test.", 10, 5080, "udp.example.test."),
            a("tcp1.example.test.", "192.0.2.1"),
            aaaa("tcp1.example.test.", "2001:db8::1"),
            a("tcp2.example.test.", "192.0.2.2"),
            a("udp.example.test.", "192.0.2.3"),
        ])
        .await;
        let targets = server.locator().locate("example.test", None, None, false).await.unwrap();
        assert_eq!(
            targets,
            vec![
                target(Transport::Tcp, "192.0.2.1:5070"),
                target(Transport::Tcp, "[2001:db8::1]:5070"),
                target(Transport::Tcp, "192.0.2.2:5071"),
                target(Transport::Udp, "192.0.2.3:5080"),
            ]
        );
        assert_eq!(server.asked(RecordType::NAPTR), ["example.test."]);
    }

    #[tokio::test]
    async fn without_naptr_srv_of_each_transport_is_tried() {
        let server = TestServer::start(vec![
            a("example.test.", "192.0.2.9"),
            srv_rr("_sip._tcp.example.test.", 10, 5072, "pbx.example.test."),
            a("pbx.example.test.", "192.0.2.4"),
        ])
        .await;
        let targets = server.locator().locate("example.test", None, None, false).await.unwrap();
        assert_eq!(targets, vec![target(Transport::Tcp, "192.0.2.4:5072")]);
        let mut srv = server.asked(RecordType::SRV);
        srv.sort();
        assert_eq!(srv, ["_sip._tcp.example.test.", "_sip._udp.example.test."]);
    }

    #[tokio::test]
    async fn without_naptr_or_srv_address_records_on_5060_udp() {
        let server = TestServer::start(vec![a("example.test.", "192.0.2.9")]).await;
        let targets = server.locator().locate("example.test", None, None, false).await.unwrap();
        assert_eq!(targets, vec![target(Transport::Udp, "192.0.2.9:5060")]);
    }

    #[tokio::test]
    async fn explicit_port_skips_naptr_and_srv() {
        let server = TestServer::start(vec![
            naptr_rr("example.test.", 10, "SIP+D2T", "_sip._tcp.example.test."),
            srv_rr("_sip._tcp.example.test.", 10, 5070, "pbx.example.test."),
            a("example.test.", "192.0.2.9"),
        ])
        .await;
        let targets = server.locator().locate("example.test", Some(5099), None, false).await.unwrap();
        assert_eq!(targets, vec![target(Transport::Udp, "192.0.2.9:5099")]);
        assert!(server.asked(RecordType::NAPTR).is_empty());
        assert!(server.asked(RecordType::SRV).is_empty());
    }

    #[tokio::test]
    async fn explicit_transport_looks_up_its_srv_only() {
        let server = TestServer::start(vec![
            naptr_rr("example.test.", 10, "SIP+D2U", "_sip._udp.example.test."),
            srv_rr("_sip._udp.example.test.", 10, 5080, "udp.example.test."),
            srv_rr("_sip._tcp.example.test.", 10, 5070, "tcp.example.test."),
            a("udp.example.test.", "192.0.2.3"),
            a("tcp.example.test.", "192.0.2.1"),
        ])
        .await;
        let targets = server.locator().locate("example.test", None, Some(Transport::Tcp), false).await.unwrap();
        assert_eq!(targets, vec![target(Transport::Tcp, "192.0.2.1:5070")]);
        assert!(server.asked(RecordType::NAPTR).is_empty());
        assert_eq!(server.asked(RecordType::SRV), ["_sip._tcp.example.test."]);
    }

    #[tokio::test]
    async fn explicit_transport_without_srv_uses_the_default_port() {
        let server = TestServer::start(vec![a("example.test.", "192.0.2.9")]).await;
        let targets = server.locator().locate("example.test", None, Some(Transport::Tcp), false).await.unwrap();
        assert_eq!(targets, vec![target(Transport::Tcp, "192.0.2.9:5060")]);
    }

    #[tokio::test]
    async fn sips_uses_sips_srv_and_port_5061() {
        let server = TestServer::start(vec![
            srv_rr("_sips._tcp.example.test.", 10, 5063, "tls.example.test."),
            a("tls.example.test.", "192.0.2.5"),
            a("plain.test.", "192.0.2.6"),
        ])
        .await;
        let locator = server.locator();
        let targets = locator.locate("example.test", None, None, true).await.unwrap();
        assert_eq!(targets, vec![target(Transport::Tls, "192.0.2.5:5063")]);
        let targets = locator.locate("plain.test", None, None, true).await.unwrap();
        assert_eq!(targets, vec![target(Transport::Tls, "192.0.2.6:5061")]);
    }

    #[tokio::test]
    async fn srv_target_dot_means_no_service() {
        let server = TestServer::start(vec![
            srv_rr("_sip._udp.example.test.", 10, 5060, "."),
            srv_rr("_sip._tcp.example.test.", 10, 5060, "."),
        ])
        .await;
        let error = server.locator().locate("example.test", None, None, false).await.unwrap_err();
        assert!(matches!(error, LocateError::NotFound { .. }), "{error}");
    }

    #[tokio::test]
    async fn unknown_name_is_not_found() {
        let server = TestServer::start(Vec::new()).await;
        let error = server.locator().locate("nowhere.test", None, None, false).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no SIP server found for nowhere.test: DNS has no NAPTR, SRV or address records for it"
        );
    }

    #[tokio::test]
    async fn ip_literals_need_no_dns() {
        // No name server listens here: any query would fail.
        let locator = Locator::with_name_server("127.0.0.1:9".parse().unwrap()).unwrap();
        let cases = [
            ("192.0.2.1", None, None, false, target(Transport::Udp, "192.0.2.1:5060")),
            ("[2001:db8::1]", Some(5070), None, false, target(Transport::Udp, "[2001:db8::1]:5070")),
            ("192.0.2.1", None, Some(Transport::Tcp), false, target(Transport::Tcp, "192.0.2.1:5060")),
            ("192.0.2.1", None, None, true, target(Transport::Tls, "192.0.2.1:5061")),
            ("192.0.2.1", None, Some(Transport::Tcp), true, target(Transport::Tls, "192.0.2.1:5061")),
            ("192.0.2.1", None, Some(Transport::Tls), false, target(Transport::Tls, "192.0.2.1:5061")),
        ];
        for (host, port, transport, sips, expected) in cases {
            let targets = locator.locate(host, port, transport, sips).await.unwrap();
            assert_eq!(targets, vec![expected], "{host}");
        }
    }

    #[tokio::test]
    async fn sips_over_udp_is_refused() {
        let locator = Locator::with_name_server("127.0.0.1:9".parse().unwrap()).unwrap();
        let error = locator.locate("192.0.2.1", None, Some(Transport::Udp), true).await.unwrap_err();
        assert!(matches!(error, LocateError::SipsOverUdp));
    }

    #[tokio::test]
    async fn malformed_host_is_rejected() {
        let locator = Locator::with_name_server("127.0.0.1:9".parse().unwrap()).unwrap();
        for host in ["", ".", "a..b", &"x".repeat(300)] {
            let error = locator.locate(host, None, None, false).await.unwrap_err();
            assert!(matches!(error, LocateError::InvalidHost { .. }), "{host:?}: {error}");
        }
    }
}
