//! The tokio shell around the sans-IO [`Core`]: sockets in, timers, DNS lookups and sockets
//! out. It decides nothing about SIP.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use config::RegistrarConfig;
use proto::auth::{DigestConfig, DigestServer, FailureLimiter, LimiterConfig};
use proto::io::{Capture, CertificateFiles, DEFAULT_CAPTURE_LIMIT, Locator, TlsOptions, TransportOptions, Transports};
use proto::sip::Host;
use proto::transaction::{Target, TimerConfig, TransactionLayer};
use tokio::sync::mpsc;
use tracing::{info, trace, warn};

use crate::core::{AdmissionSettings, Core, LocalAddrs, Resolve, Settings};
use crate::location::SqliteStore;

/// Runs the registrar until interrupted.
pub async fn run(config: RegistrarConfig) -> anyhow::Result<()> {
    let mut store = SqliteStore::open(&config.data_dir, wall())?;
    let crate::accounts::Prepared { accounts, created } = crate::accounts::prepare(&mut store, &config.accounts)?;

    let options = TransportOptions { max_message_size: config.limits.max_message_size, ..TransportOptions::default() };
    let tls = tls_options(&config)?;
    let (transports, mut inbound) = Transports::bind_with_tls(&config.bind, tls, options).await?;
    let listen = transports.local_addrs();
    let capture = Capture::open(config.pcap.as_deref(), DEFAULT_CAPTURE_LIMIT)?;
    transports.set_capture(capture.clone());

    let realm = config.realm.clone().or_else(|| config.domain.clone()).unwrap_or_else(|| "registrar".to_owned());
    let advertise = config.advertise.as_deref().map(parse_advertise).transpose()?;
    let local =
        LocalAddrs { domain: config.domain.clone(), interface_ips: interface_ips(), listen: listen.clone(), advertise };
    let settings = Settings {
        local,
        realm: realm.clone(),
        min_expires: config.registration.min_expires,
        max_expires: config.registration.max_expires,
        default_expires: config.registration.default_expires,
        server_header: config.server_header.then(|| format!("voip-registrar/{}", env!("CARGO_PKG_VERSION"))),
        admission: AdmissionSettings {
            register_per_source_per_s: config.limits.register_per_source_per_s,
            invite_per_source_per_s: config.limits.invite_per_source_per_s,
            transactions_high_water: config.limits.max_transactions / 10 * 9,
            queue_high_water: inbound.max_capacity() * 3 / 4,
            ..AdmissionSettings::default()
        },
    };
    let timers =
        TimerConfig { t1: config.timers.t1(), t2: config.timers.t2(), t4: config.timers.t4(), auto_trying: false };
    let digest = DigestServer::new(
        DigestConfig {
            algorithms: config.auth.algorithms.clone(),
            nonce_lifetime: Duration::from_secs(config.auth.nonce_lifetime_secs),
            ..DigestConfig::new(realm.clone(), rand::random())
        },
        &mut rand::rng(),
    )?;
    let limiter = FailureLimiter::new(LimiterConfig {
        // 0 turns the lockout off (the limiter itself treats 0 as 1).
        max_failures: if config.auth.max_failures == 0 { u32::MAX } else { config.auth.max_failures },
        window: Duration::from_secs(config.auth.failure_window_secs),
        lockout: Duration::from_secs(config.auth.lockout_secs),
        ..LimiterConfig::default()
    });
    let seed = rand::random();
    let mut core = Core::new(
        settings,
        TransactionLayer::new(timers, config.limits.max_transactions),
        digest,
        limiter,
        accounts,
        Box::new(store),
        seed,
    );

    announce(&listen, &realm, &config, &created);

    let locator = std::sync::Arc::new(
        Locator::from_system_conf()
            .inspect_err(|e| warn!(error = %e, "no DNS configuration; calls to other domains will fail"))
            .ok(),
    );
    let (dns_tx, mut dns_rx) = mpsc::channel::<(Resolve, Vec<Target>)>(1024);
    let trace = config.sip_trace;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;

    loop {
        let mut batch_done = false;
        let deadline = core.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            msg = inbound.recv() => {
                let Some(msg) = msg else { break };
                take_batch(msg, &mut inbound, |msg, queued| {
                    core.set_backlog(queued);
                    if trace {
                        trace!(target: "sip", "recv {} from {}:\n{}", msg.transport, msg.source, String::from_utf8_lossy(&msg.data));
                    }
                    core.handle_input(msg.transport, msg.source, &msg.data, msg.too_large, Instant::now(), wall());
                });
                // Group commit: the batch's bindings reach the store before any 200 goes out.
                core.flush();
                batch_done = true;
            }
            _ = sleep_until(deadline) => core.handle_timeout(Instant::now(), wall()),
            Some((resolve, targets)) = dns_rx.recv() => core.handle_resolved(resolve, targets, Instant::now(), wall()),
            _ = tokio::signal::ctrl_c() => {
                info!("interrupted; shutting down");
                break;
            }
            _ = terminate.recv() => {
                info!("terminated; shutting down");
                break;
            }
        }
        while let Some(t) = core.poll_transmit() {
            if trace {
                trace!(target: "sip", "send {} to {}:\n{}", t.target.transport, t.target.addr, String::from_utf8_lossy(&t.data));
            }
            transports.send(proto::io::Transmit { transport: t.target.transport, dest: t.target.addr, data: t.data });
        }
        while let Some(resolve) = core.poll_resolve() {
            let (locator, tx) = (locator.clone(), dns_tx.clone());
            tokio::spawn(async move {
                let found = match &*locator {
                    Some(l) => l.locate(&resolve.host, resolve.port, resolve.transport, resolve.sips).await,
                    None => Ok(Vec::new()),
                };
                let targets = found
                    .inspect_err(|e| warn!(host = %resolve.host, error = %e, "DNS lookup failed"))
                    .unwrap_or_default();
                let _ = tx.send((resolve, targets)).await;
            });
        }
        if batch_done {
            let_readers_run(&inbound).await;
        }
    }
    core.flush();
    capture.flush();
    Ok(())
}

/// TLS listeners with the configured certificate, or with the self-signed one kept in the data
/// directory (made on the first start for the domain, the advertised host and the bound IPs).
fn tls_options(config: &RegistrarConfig) -> anyhow::Result<TlsOptions> {
    let listen = config.tls_bind();
    if listen.is_empty() {
        return Ok(TlsOptions::default());
    }
    let files = match (&config.tls.certificate, &config.tls.private_key) {
        (Some(certificate), Some(private_key)) => {
            CertificateFiles { certificate: certificate.clone(), private_key: private_key.clone() }
        }
        _ => {
            let mut names: Vec<String> = config.domain.iter().cloned().collect();
            if let Some(advertise) = config.advertise.as_deref().map(parse_advertise).transpose()? {
                names.push(advertise.0.to_string());
            }
            let ips: Vec<IpAddr> = config.bind.iter().chain(&listen).map(SocketAddr::ip).collect();
            for ip in ips {
                let ips = if ip.is_unspecified() { interface_ips() } else { vec![ip] };
                names.extend(ips.iter().map(IpAddr::to_string));
            }
            names.push("localhost".to_owned());
            let mut seen = std::collections::HashSet::new();
            names.retain(|n| seen.insert(n.to_ascii_lowercase()));
            let (files, created) = proto::io::tls::self_signed(&config.data_dir, &names)
                .context("cannot set up the self-signed TLS certificate")?;
            if created {
                info!(certificate = %files.certificate.display(), names = ?names, "made a self-signed TLS certificate");
            }
            files
        }
    };
    println!(
        "TLS certificate {} (phones trust it with: softphone --ca {})",
        files.certificate.display(),
        files.certificate.display()
    );
    let server = files.server_config().context("cannot use the TLS certificate")?;
    let client = proto::io::tls::client_config(Some(&files.certificate)).context("cannot set up TLS")?;
    Ok(TlsOptions { listen, server: Some(server), client: Some(client), ..TlsOptions::default() })
}

/// The most messages handled in one batch, between two turns of the socket readers.
const BATCH: usize = 64;

/// Hands `first` and what is already queued behind it, up to [`BATCH`] messages, to `handle`
/// with the number still queued at that moment.
fn take_batch<T>(first: T, inbound: &mut mpsc::Receiver<T>, mut handle: impl FnMut(T, usize)) {
    let mut msg = first;
    for _ in 0..BATCH {
        handle(msg, inbound.len());
        match inbound.try_recv() {
            Ok(next) => msg = next,
            Err(_) => break,
        }
    }
}

/// Yields to the socket readers until they stop adding to the inbound queue (they have moved
/// everything waiting in the sockets' buffers) or it is full.
///
/// On the single-threaded runtime this is what puts a backlog where the core can see it. A
/// reader's turn moves about as many messages as one batch takes, so with one turn per batch
/// the queue looks short however far behind the server is, and the excess waits (and is
/// dropped) unseen in the kernel's socket buffers, beyond the reach of the core's 503s.
async fn let_readers_run<T>(inbound: &mpsc::Receiver<T>) {
    // Each turn that continues adds at least one message, so this ends within the queue's size.
    loop {
        let before = inbound.len();
        tokio::task::yield_now().await;
        if inbound.len() <= before || inbound.capacity() == 0 {
            break;
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn wall() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn parse_advertise(s: &str) -> anyhow::Result<(Host, Option<u16>)> {
    let uri = proto::sip::Uri::parse(&format!("sip:{s}"))
        .with_context(|| format!("advertise = {s:?}: expected HOST or HOST:PORT"))?;
    Ok((uri.host, uri.port))
}

/// The machine's interface addresses, so a registrar bound to 0.0.0.0 knows its own.
fn interface_ips() -> Vec<IpAddr> {
    if_addrs::get_if_addrs().map(|ifs| ifs.into_iter().map(|i| i.ip()).collect()).unwrap_or_default()
}

/// Tells the person who started the registrar where it listens and, on first start, the
/// extensions it created and how to use them.
fn announce(
    listen: &[(proto::sip::Transport, SocketAddr)],
    realm: &str,
    config: &RegistrarConfig,
    created: &[(String, String)],
) {
    let addrs: Vec<String> = listen.iter().map(|(t, a)| format!("{}:{a}", t.as_str().to_lowercase())).collect();
    println!("registrar listening on {} (realm {realm}, data in {})", addrs.join(" "), config.data_dir.display());
    if created.is_empty() {
        return;
    }
    let host = listen
        .first()
        .map(|(_, a)| if a.ip().is_unspecified() { SocketAddr::new(guess_reachable_ip(), a.port()) } else { *a })
        .map_or_else(|| "127.0.0.1:5060".to_owned(), |a| a.to_string());
    println!("created extensions (shown once; stored in {}):", config.data_dir.display());
    for (ext, password) in created {
        println!("  {ext}  password {password}   softphone --registrar {host} --user {ext} --password {password}");
    }
}

fn guess_reachable_ip() -> IpAddr {
    interface_ips().into_iter().find(|ip| ip.is_ipv4() && !ip.is_loopback()).unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams that wait in the socket while the loop is busy must show up as backlog in the
    /// inbound queue, or the core's high-water marks never see an overload. With one reader turn
    /// per batch instead, the queue never held more than one batch (63 of 2000 here).
    #[tokio::test]
    async fn a_busy_loop_sees_the_socket_backlog_in_its_inbound_queue() {
        const SENT: usize = 1000;
        let (transports, mut inbound) =
            Transports::bind(&[SocketAddr::from(([127, 0, 0, 1], 0))], TransportOptions::default()).await.unwrap();
        let (_, addr) = transports.local_addrs()[0];
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // All of them wait in the kernel's buffer before the loop below first runs.
        for i in 0..SENT {
            sender.send_to(format!("OPTIONS sip:{i}@x SIP/2.0\r\n\r\n").as_bytes(), addr).unwrap();
        }
        let (mut handled, mut peak) = (0, 0);
        for _ in 0..SENT {
            let wait = tokio::time::timeout(Duration::from_secs(1), inbound.recv());
            let Ok(Some(first)) = wait.await else { break };
            take_batch(first, &mut inbound, |_, queued| {
                handled += 1;
                peak = peak.max(queued);
            });
            if handled == SENT {
                break;
            }
            let_readers_run(&inbound).await;
        }
        assert!(handled > SENT / 2, "only {handled} of {SENT} datagrams arrived");
        assert!(peak >= handled / 2, "the backlog reached only {peak} of {handled} waiting datagrams");
    }
}
