//! The registrar's sans-IO core fed arbitrary bytes as UDP datagrams: a REGISTER, INVITE or
//! anything else a scanner might send, then its timers run out. The core must never panic and
//! everything it transmits must be a SIP message that parses.
//!
//! The input is split on NUL bytes (which SIP headers never hold) into up to four datagrams 100 ms
//! apart, so the fuzzer can build exchanges (a challenge and its answer, INVITE then CANCEL) as
//! well as single messages.
#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use proto::auth::{DigestConfig, DigestServer, FailureLimiter, LimiterConfig};
use proto::sip::{Message, Transport};
use proto::transaction::{TimerConfig, TransactionLayer};
use rand::SeedableRng;
use rand::rngs::StdRng;
use registrar::core::{AdmissionSettings, Core, LocalAddrs, Settings};
use registrar::location::MemoryStore;

const WALL: u64 = 1_800_000_000;

fn core() -> Core {
    let registrar: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let settings = Settings {
        local: LocalAddrs {
            domain: None,
            interface_ips: vec![],
            listen: vec![(Transport::Udp, registrar), (Transport::Tcp, registrar)],
            advertise: None,
        },
        realm: "test".into(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 3600,
        server_header: None,
        admission: AdmissionSettings::default(),
    };
    let digest = DigestServer::new(DigestConfig::new("test", [3; 32]), &mut StdRng::seed_from_u64(7)).unwrap();
    let limiter = FailureLimiter::new(LimiterConfig::default());
    let accounts: HashMap<String, String> = [("1001".to_owned(), "pw1".to_owned())].into();
    Core::new(
        settings,
        TransactionLayer::new(TimerConfig::default(), 10_000),
        digest,
        limiter,
        accounts,
        Box::new(MemoryStore::default()),
        1,
    )
}

fn drain(core: &mut Core) {
    while let Some(t) = core.poll_transmit() {
        if let Err(e) = Message::parse(&t.data) {
            panic!("the core sent unparseable bytes {:?}: {e}", String::from_utf8_lossy(&t.data));
        }
    }
    while core.poll_resolve().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    let mut core = core();
    let start = Instant::now();
    let mut now = start;
    let source: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    for datagram in data.split(|&b| b == 0).take(4) {
        core.handle_input(Transport::Udp, source, datagram, false, now, WALL);
        drain(&mut core);
        now += Duration::from_millis(100);
    }
    // Let the timers fire (retransmissions, transaction ends, purges), a bounded number of times.
    for _ in 0..64 {
        let Some(at) = core.poll_timeout() else { break };
        now = now.max(at);
        core.handle_timeout(now, WALL + (now - start).as_secs());
        drain(&mut core);
    }
});
