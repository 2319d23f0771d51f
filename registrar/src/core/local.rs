//! Who we are: our domain, addresses and ports. Decides whether a URI names this server
//! (RFC 3261 §16.4: Route values we put there, Request-URIs of our domain) and which address
//! to write in Via and Record-Route toward a given peer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proto::sip::{Host, Scheme, Transport, Uri};

/// Our addresses.
#[derive(Debug, Clone, Default)]
pub struct LocalAddrs {
    /// The SIP domain this registrar serves, if one is configured.
    pub domain: Option<String>,
    /// The machine's interface addresses (a registrar bound to 0.0.0.0 answers on all of them).
    pub interface_ips: Vec<IpAddr>,
    /// The sockets we listen on.
    pub listen: Vec<(Transport, SocketAddr)>,
    /// The host (and port) to write in Via and Record-Route instead of a listening address.
    pub advertise: Option<(Host, Option<u16>)>,
}

impl LocalAddrs {
    /// True if the URI names this server: our domain (any port), or one of our addresses with
    /// one of our ports.
    pub fn is_us(&self, uri: &Uri) -> bool {
        if uri.scheme == Scheme::Tel {
            return false;
        }
        if let Some((host, port)) = &self.advertise
            && host.eq_ignore_case(&uri.host)
            && (port.is_none() || *port == uri.port || uri.port.is_some_and(|p| self.has_port(p)))
        {
            return true;
        }
        match &uri.host {
            Host::Domain(d) => {
                self.domain.as_deref().is_some_and(|ours| ours.eq_ignore_ascii_case(d))
                    || (d.eq_ignore_ascii_case("localhost") && self.has_port(uri.port.unwrap_or(5060)))
            }
            host => {
                let ip = host.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                let port = uri.port.unwrap_or(if uri.scheme == Scheme::Sips { 5061 } else { 5060 });
                self.listen.iter().any(|(_, l)| {
                    l.port() == port
                        && (l.ip() == ip
                            || (l.ip().is_unspecified()
                                && (ip.is_loopback() || self.interface_ips.contains(&ip) || self.domain_is_ip(ip))))
                })
            }
        }
    }

    fn has_port(&self, port: u16) -> bool {
        self.listen.iter().any(|(_, l)| l.port() == port)
    }

    fn domain_is_ip(&self, ip: IpAddr) -> bool {
        self.domain.as_deref().and_then(|d| d.parse::<IpAddr>().ok()) == Some(ip)
    }

    /// Our host and port as seen from `peer` over `transport`: the advertised address (its port
    /// is the UDP and TCP one: TLS keeps its own listening port), else the
    /// listening address of that transport and family, with an unspecified IP replaced by the
    /// loopback address (for a loopback peer) or the first interface address of the family.
    pub fn toward(&self, peer: SocketAddr, transport: Transport) -> (Host, u16) {
        let listen = self
            .listen
            .iter()
            .find(|(t, a)| *t == transport && a.is_ipv4() == peer.is_ipv4())
            .or_else(|| self.listen.iter().find(|(_, a)| a.is_ipv4() == peer.is_ipv4()))
            .or_else(|| self.listen.first())
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)));
        if let Some((host, port)) = &self.advertise {
            let port = port.filter(|_| transport != Transport::Tls);
            return (host.clone(), port.unwrap_or(listen.port()));
        }
        let ip = if !listen.ip().is_unspecified() {
            listen.ip()
        } else if peer.ip().is_loopback() {
            if peer.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) }
        } else {
            self.interface_ips
                .iter()
                .copied()
                .find(|ip| !ip.is_loopback() && ip.is_ipv4() == peer.is_ipv4())
                .unwrap_or(listen.ip())
        };
        (ip.into(), listen.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalAddrs {
        LocalAddrs {
            domain: Some("voip.example".into()),
            interface_ips: vec!["10.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            listen: vec![
                (Transport::Udp, "0.0.0.0:5060".parse().unwrap()),
                (Transport::Tcp, "0.0.0.0:5060".parse().unwrap()),
            ],
            advertise: None,
        }
    }

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    #[test]
    fn our_domain_and_addresses_are_us_other_ports_are_not() {
        let l = local();
        assert!(l.is_us(&uri("sip:1001@voip.example")));
        assert!(l.is_us(&uri("sip:1001@VOIP.example:5080")));
        assert!(l.is_us(&uri("sip:10.0.0.1")));
        assert!(l.is_us(&uri("sip:127.0.0.1:5060;lr")));
        assert!(!l.is_us(&uri("sip:127.0.0.1:5062")), "a phone on the same host");
        assert!(!l.is_us(&uri("sip:10.0.0.2")));
        assert!(!l.is_us(&uri("sip:bob@elsewhere.example")));
        assert!(!l.is_us(&uri("tel:+15551234")));
    }

    #[test]
    fn advertised_port_is_not_used_for_tls_but_our_tls_port_is_still_us() {
        let mut l = local();
        l.listen.push((Transport::Tls, "0.0.0.0:5061".parse().unwrap()));
        l.advertise = Some((Host::Domain("sip.example".into()), Some(5070)));
        let peer = "192.0.2.9:40000".parse().unwrap();
        assert_eq!(l.toward(peer, Transport::Udp), (Host::Domain("sip.example".into()), 5070));
        assert_eq!(l.toward(peer, Transport::Tls), (Host::Domain("sip.example".into()), 5061));
        assert!(l.is_us(&uri("sip:sip.example:5061;transport=tls;lr")));
        assert!(l.is_us(&uri("sip:sip.example:5070;lr")));
        assert!(!l.is_us(&uri("sip:sip.example:5099;lr")));
    }

    #[test]
    fn via_address_follows_the_peer() {
        let l = local();
        assert_eq!(l.toward("127.0.0.1:5062".parse().unwrap(), Transport::Udp), (Host::V4(Ipv4Addr::LOCALHOST), 5060));
        assert_eq!(
            l.toward("10.0.0.7:5060".parse().unwrap(), Transport::Tcp),
            (Host::V4("10.0.0.1".parse().unwrap()), 5060)
        );
    }
}
