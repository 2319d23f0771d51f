//! The tokio shell: the SIP transports, the RTP/RTCP socket pair and a paced 20 ms clock around
//! the sans-IO [`UserAgent`] and [`MediaSession`]. It decides nothing about SIP or RTP. One loop
//! serves both modes: [`Command`]s come from the script's timers (`--dial`, `--duration`,
//! `--hangup-after`, `--cancel-after`, `--hold-at`, `--resume-at`, `--mute-at`, `--unmute-at`,
//! `--dtmf` at `--dtmf-at`, `--transfer` at `--transfer-at`) or from the keys typed on the
//! interactive screen, and [`execute`] carries them out alike.
//! While a call is being set up it plays the ring (incoming, unless auto-answering) or the
//! ringback (after 180) on the output.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use proto::codec::CodecKind;
use proto::io::{Capture, ConnectError, DEFAULT_CAPTURE_LIMIT, TlsOptions, TransportOptions, Transports};
use proto::sdp::{Codec, LocalMedia};
use proto::sip::{Host, Transport, Uri};
use proto::transaction::{Target, TimerConfig};
use rand::Rng;
use ratatui::crossterm::event::KeyEvent;
use tokio::net::UdpSocket;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{info, warn};

use crate::agent::{CommandError, Event, HangupReason, Settings, UserAgent};
use crate::audio::{OnsetDetector, Ringer, Sink, Source, TONE_AMPLITUDE};
use crate::config::{AudioIn, Config, DialTarget};
use crate::media::MediaSession;
use crate::ui::tui::command::MuteChange;
use crate::ui::tui::{Command, Tui, TuiState, read_keys};
use crate::ui::{Ui, UiEvent};

/// How long the way out may take: hanging up and unregistering.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);
/// The registration interval we ask for.
const REGISTER_EXPIRES: u32 = 300;
/// Tries at finding a free even/odd port pair for RTP and RTCP.
const RTP_PORT_ATTEMPTS: usize = 64;
/// How often the interactive screen is redrawn (call time, meters, blinking).
const REDRAW: Duration = Duration::from_millis(200);

/// How the run went, for the exit status.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    dialled: bool,
    auto_answer: bool,
    registration_failed: bool,
    registered: bool,
    /// A call was connected and ended normally.
    call_completed: bool,
    /// `--cancel-after` gave up on the dialled call and the far end confirmed it (487).
    cancelled_as_asked: bool,
    /// The person at the screen ran the phone: leaving it is success.
    interactive: bool,
}

impl Outcome {
    /// 0 when the script happened as asked (a call completed, or cancelled by `--cancel-after`)
    /// or the interactive phone was left, 1 when the call did not, 3 when registration failed.
    pub fn exit_code(&self) -> u8 {
        if self.registration_failed {
            3
        } else if self.interactive {
            0
        } else if self.dialled || self.auto_answer {
            if self.call_completed || self.cancelled_as_asked { 0 } else { 1 }
        } else if self.registered {
            0
        } else {
            1
        }
    }
}

/// The media of the call in progress.
struct ActiveMedia {
    session: MediaSession,
    source: Source,
    sink: Sink,
    frame: Vec<i16>,
    tick: Interval,
    /// The user muted our audio.
    muted: bool,
    /// With `--audio-in pulse:`, finds the bursts in the far end's audio.
    onsets: Option<OnsetDetector>,
}

/// The ring or ringback playing on our output while a call is being set up.
struct Ringing {
    ringer: Ringer,
    sink: Sink,
    frame: Vec<i16>,
    tick: Interval,
}

impl Ringing {
    /// Plays `make(rate)` on the configured output at the first codec's rate; `None` (and a
    /// warning) when the output cannot open.
    fn start(config: &Config, make: fn(u32) -> Ringer) -> Option<Ringing> {
        let rate = config.codecs.first().map_or(8000, |c| c.clock_rate());
        match Sink::open(&config.audio_out, rate) {
            Ok(sink) => {
                Some(Ringing { ringer: make(rate), sink, frame: vec![0; rate as usize / 50], tick: frame_clock(20) })
            }
            Err(e) => {
                warn!(error = %e, "cannot play the ring");
                None
            }
        }
    }

    fn stop(ringing: &mut Option<Ringing>) {
        if let Some(r) = ringing.take()
            && let Err(e) = r.sink.finish()
        {
            warn!(error = %e, "ring output not finished");
        }
    }
}

/// TLS toward the registrar: its certificate checked for the name it was given (a host name or
/// IP address) against the system's roots and `--ca`.
fn tls_options(config: &Config, registrar: Option<SocketAddr>) -> anyhow::Result<TlsOptions> {
    if config.transport != Transport::Tls {
        return Ok(TlsOptions::default());
    }
    let client = proto::io::tls::client_config(config.ca.as_deref())?;
    let mut tls = TlsOptions { client: Some(client), ..TlsOptions::default() };
    if let (Some(addr), Some(hp)) = (registrar, &config.registrar) {
        tls.server_names.insert(addr, hp.host.clone());
    }
    Ok(tls)
}

/// One line saying why the registrar could not be reached, and what to do.
fn connect_failure(transport: Transport, registrar: &crate::config::HostPort, error: &ConnectError) -> String {
    let at = format!("{}:{}", registrar.host, registrar.port);
    match error {
        ConnectError::Untrusted { name, error } => format!(
            "cannot register over TLS: the certificate of {at} is not trusted for {name} ({error}); \
             if it is the registrar's own or from a private CA, trust it with --ca FILE"
        ),
        error => format!("cannot register: no {transport} connection to the registrar {at}: {error}"),
    }
}

/// Runs the phone until the script is done, the user quits, or it is interrupted. With
/// `screen`, the interactive screen takes over the terminal and shows the log lines sent there.
pub async fn run(config: Config, screen: Option<std::sync::mpsc::Receiver<String>>) -> anyhow::Result<Outcome> {
    let registrar = match &config.registrar {
        Some(hp) => Some(
            tokio::net::lookup_host((hp.host.as_str(), hp.port))
                .await
                .with_context(|| format!("cannot resolve the registrar {}", hp.host))?
                .find(SocketAddr::is_ipv4)
                .with_context(|| format!("the registrar {} has no IPv4 address", hp.host))?,
        ),
        None => None,
    };
    let peer = registrar.or_else(|| match &config.dial {
        Some(DialTarget::Uri(uri)) => uri.socket_addr(),
        _ => None,
    });
    let bind = config.bind.unwrap_or_else(|| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
    let local_ip = if bind.ip().is_unspecified() { route_ip(peer) } else { bind.ip() };
    let listen = SocketAddr::new(if bind.ip().is_unspecified() { local_ip } else { bind.ip() }, bind.port());
    let tls = tls_options(&config, registrar)?;
    let (transports, mut inbound) = Transports::bind_with_tls(&[listen], tls, TransportOptions::default()).await?;
    let capture = Capture::open(config.pcap.as_deref(), DEFAULT_CAPTURE_LIMIT)?;
    transports.set_capture(capture.clone());
    let local = match (config.transport, registrar, &config.registrar) {
        (Transport::Udp, _, _) | (_, None, _) | (_, _, None) => transports
            .local_addrs()
            .into_iter()
            .find(|(t, _)| *t == Transport::Udp)
            .map(|(_, addr)| addr)
            .context("no UDP socket for SIP")?,
        // Over a stream the registrar reaches us back through our connection: its address is ours.
        (transport, Some(addr), Some(hp)) => match transports.connect(transport, addr).await {
            Ok(local) => local,
            Err(error) => {
                eprintln!("softphone: {}", connect_failure(transport, hp, &error));
                return Ok(Outcome { registration_failed: true, ..Outcome::default() });
            }
        },
    };
    let (rtp, rtcp) = bind_rtp_pair(local_ip)?;
    let rtp_port = rtp.local_addr()?.port();
    let (rtp_addr, rtcp_addr) = (rtp.local_addr()?, rtcp.local_addr()?);
    info!(sip = %local, transport = %config.transport, rtp = rtp_port, "listening");

    let domain = config.domain.clone().or_else(|| config.registrar.as_ref().map(|r| r.host.clone()));
    let mut media_local = LocalMedia::new(local_ip, rtp_port);
    media_local.codecs = config.codecs.iter().map(|k| sdp_codec(*k)).collect();
    media_local.telephone_event = config.telephone_event;
    let settings = Settings {
        user: config.user.clone(),
        password: config.password.clone(),
        domain: domain.unwrap_or_else(|| local_ip.to_string()),
        local,
        transport: config.transport,
        registrar,
        register_expires: REGISTER_EXPIRES,
        media: media_local,
        auto_answer: config.auto_answer,
        timers: TimerConfig::default(),
        srtp: config.srtp,
        keepalive: config.keepalive,
    };
    let mut agent = UserAgent::new(settings, rand::random());
    info!(aor = %agent.aor(), transport = %agent.transport(), "account");
    let start = Instant::now();
    let (mut ui, mut keys) = match screen {
        Some(log_lines) => {
            let registrar = config.registrar.as_ref().map(|r| format!("{}:{}", r.host, r.port));
            let state = TuiState::new(agent.aor().to_string(), registrar, start);
            let tui = Tui::start(state, Some(log_lines)).context("cannot take over the terminal")?;
            (Ui::interactive(tui), Some(read_keys()))
        }
        None => (Ui::new(config.json_events), None),
    };
    let interactive = ui.is_interactive();
    let mut outcome =
        Outcome { dialled: config.dial.is_some(), auto_answer: config.auto_answer, interactive, ..Outcome::default() };

    let mut rng = rand::rng();
    // What to do next, from the script or the keyboard.
    let mut commands = VecDeque::new();
    let mut dial_pending = config.dial.clone();
    if registrar.is_some() {
        agent.register(start)?;
    } else if let Some(target) = dial_pending.take() {
        commands.push_back(Command::Dial(target));
    }
    // When `--cancel-after` gives up on the unanswered call, and whether it has.
    let mut cancel_at = None;
    let mut cancel_sent = false;
    let mut end_at = config.duration.and_then(|d| start.checked_add(d));
    let mut hangup_at: Option<Instant> = None;
    let mut script = Script::default();
    let mut shutdown_at: Option<Instant> = None;
    let mut media: Option<ActiveMedia> = None;
    let mut ringing: Option<Ringing> = None;
    // The media is that of a call we are being transferred from, until the new call's takes over.
    let mut media_of_old_leg = false;
    let mut stats_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    let (mut rtp_buf, mut rtcp_buf) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut out = Vec::with_capacity(1500);
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut redraw = tokio::time::interval(REDRAW);

    loop {
        let now = Instant::now();
        while let Some(command) = commands.pop_front() {
            if command == Command::Quit {
                shutdown_at.get_or_insert_with(|| begin_shutdown(&mut agent, now));
                continue;
            }
            match execute(&command, &config, &mut agent, media.as_mut(), &mut ui, now) {
                Ok(()) if matches!(command, Command::Dial(_)) => {
                    cancel_at = config.cancel_after.and_then(|d| now.checked_add(d));
                }
                Ok(()) => {}
                Err(why) => {
                    ui.refused(&command, &why);
                    if !interactive && matches!(command, Command::Dial(_)) {
                        shutdown_at.get_or_insert_with(|| begin_shutdown(&mut agent, now));
                    }
                }
            }
        }
        while let Some(event) = agent.poll_event() {
            if matches!(event, Event::Answered { .. } | Event::HungUp { .. }) {
                Ringing::stop(&mut ringing);
            }
            match event {
                Event::Registered { expires } => {
                    outcome.registered = true;
                    ui.show(&UiEvent::Registered { aor: agent.aor().to_string(), expires });
                    if let Some(target) = dial_pending.take() {
                        commands.push_back(Command::Dial(target));
                    }
                }
                Event::RegistrationFailed { status, reason } => {
                    outcome.registration_failed = true;
                    ui.show(&UiEvent::RegistrationFailed { status, reason });
                    if !interactive {
                        shutdown_at.get_or_insert_with(|| begin_shutdown(&mut agent, now));
                    }
                }
                Event::RegistrationLost { status, reason, retry_in } => {
                    ui.show(&UiEvent::RegistrationLost { status, reason, retry_in_s: retry_in.as_secs() })
                }
                Event::Unregistered => ui.show(&UiEvent::Unregistered),
                Event::Incoming { from } => {
                    ui.show(&UiEvent::Incoming { from });
                    if !config.auto_answer && ringing.is_none() {
                        ringing = Ringing::start(&config, Ringer::ring);
                    }
                }
                Event::Ringing => {
                    ui.show(&UiEvent::Ringing);
                    if media.is_none() && ringing.is_none() {
                        ringing = Ringing::start(&config, Ringer::ringback);
                    }
                }
                Event::Answered { negotiated } => {
                    match switch_media(&config, media.take(), &negotiated, (now, &rtcp, &capture, &mut out), &mut rng)
                        .await
                    {
                        Ok(m) => {
                            ui.show(&UiEvent::Answered {
                                codec: m.session.codec().name().to_owned(),
                                remote_rtp: negotiated.remote_rtp.to_string(),
                                srtp: m.session.srtp_profile().map(|p| p.name().to_owned()),
                            });
                            media = Some(m);
                            media_of_old_leg = false;
                            cancel_at = None;
                            hangup_at = config.hangup_after.and_then(|d| now.checked_add(d));
                            script = Script::after_answer(&config, now);
                        }
                        Err(e) => {
                            warn!(error = %e, "media could not start; hanging up");
                            let _ = agent.hangup(now);
                        }
                    }
                }
                Event::MediaChanged { negotiated, muted } => {
                    if let Some(m) = media.as_mut() {
                        restart_or_update(m, &negotiated, muted, now, &mut rng);
                    }
                }
                Event::Held { by } => ui.show(&UiEvent::Held { by: by.as_str().to_owned() }),
                Event::Resumed { by } => ui.show(&UiEvent::Resumed { by: by.as_str().to_owned() }),
                Event::DtmfInfo { digit } => ui.show(&UiEvent::Dtmf { digit, via: "info".to_owned() }),
                Event::Referred { target } => {
                    media_of_old_leg = media.is_some();
                    ui.show(&UiEvent::Referred { target });
                }
                Event::TransferProgress { status } => ui.show(&UiEvent::TransferProgress { status }),
                Event::TransferFailed { status } => {
                    media_of_old_leg = false;
                    ui.show(&UiEvent::TransferFailed { status });
                }
                Event::OldLegHungUp { reason } => {
                    // Its media stops at once; the source and recording wait for the new call's.
                    let stats = match media.as_mut().filter(|_| media_of_old_leg) {
                        Some(m) => {
                            if let Some(dest) = m.session.stop(now, &mut out) {
                                send(&rtcp, &capture, &mut m.session, &out, dest).await;
                            }
                            Some(m.session.stats())
                        }
                        None => None,
                    };
                    outcome.call_completed |= stats.is_some() && reason.is_normal();
                    show_hangup(&mut ui, &reason, stats);
                }
                Event::HungUp { reason } => {
                    script = Script::default();
                    let stats = media.take().map(|m| stop_media(m, now, &rtcp, &capture, &mut out));
                    let stats = match stats {
                        Some(fut) => Some(fut.await),
                        None => None,
                    };
                    // The media of a call we were transferred from is not this call's.
                    let stats = if std::mem::take(&mut media_of_old_leg) { None } else { stats };
                    outcome.call_completed |= stats.is_some() && reason.is_normal();
                    outcome.cancelled_as_asked |= cancel_sent && reason == HangupReason::Cancelled;
                    cancel_at = None;
                    show_hangup(&mut ui, &reason, stats);
                    if !interactive && (outcome.dialled || outcome.auto_answer) {
                        shutdown_at.get_or_insert_with(|| begin_shutdown(&mut agent, now));
                    }
                }
            }
        }
        if !commands.is_empty() {
            continue;
        }
        while let Some(t) = agent.poll_transmit() {
            if config.sip_trace {
                tracing::trace!(target: "sip", "send {} to {}:\n{}", t.target.transport, t.target.addr, String::from_utf8_lossy(&t.data));
            }
            transports.send(proto::io::Transmit { transport: t.target.transport, dest: t.target.addr, data: t.data });
        }
        if let Some(limit) = shutdown_at
            && (agent.is_idle() || Instant::now() >= limit)
        {
            break;
        }
        let next = [
            agent.poll_timeout(),
            end_at,
            hangup_at,
            cancel_at,
            script.next(),
            media.as_ref().and_then(|m| m.session.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            msg = inbound.recv() => {
                let Some(msg) = msg else { break };
                if config.sip_trace {
                    tracing::trace!(target: "sip", "recv {} from {}:\n{}", msg.transport, msg.source, String::from_utf8_lossy(&msg.data));
                }
                agent.handle_message(&msg.data, Target { transport: msg.transport, addr: msg.source }, Instant::now());
            }
            got = rtp.recv_from(&mut rtp_buf) => {
                if let Ok((n, from)) = got { receive(media.as_mut().map(|m| &mut m.session), &capture, rtp_buf.get(..n).unwrap_or_default(), from, rtp_addr) }
            }
            got = rtcp.recv_from(&mut rtcp_buf) => {
                if let Ok((n, from)) = got { receive(media.as_mut().map(|m| &mut m.session), &capture, rtcp_buf.get(..n).unwrap_or_default(), from, rtcp_addr) }
            }
            _ = frame_tick(&mut media) => {
                if let Some(m) = media.as_mut() {
                    let now = Instant::now();
                    m.source.fill(&mut m.frame);
                    let rate = m.session.sample_rate();
                    if let Some(at) = m.source.onset() {
                        ui.show(&UiEvent::OnsetSent { unix_us: unix_us_at(at, rate) });
                    }
                    match m.session.send_frame(&m.frame, now, &mut out) {
                        Ok(Some(dest)) => send(&rtp, &capture, &mut m.session, &out, dest).await,
                        Ok(None) => {}
                        Err(e) => warn!(error = %e, "frame not encoded"),
                    }
                    let played = m.session.play_frame(now);
                    ui.on_audio(&m.frame, played);
                    if let Some(at) = m.onsets.as_mut().and_then(|d| d.process(played)) {
                        ui.show(&UiEvent::OnsetPlayed { unix_us: unix_us_at(at, rate) });
                    }
                    if let Err(e) = m.sink.write(played) {
                        warn!(error = %e, "audio output failed; recording stops");
                        m.sink = Sink::Null;
                    }
                    while let Some(digit) = m.session.poll_dtmf() {
                        ui.show(&UiEvent::Dtmf { digit, via: "rtp".to_owned() });
                    }
                }
            }
            _ = ring_tick(&mut ringing) => {
                if let Some(r) = ringing.as_mut() {
                    r.ringer.fill(&mut r.frame);
                    if let Err(e) = r.sink.write(&r.frame) {
                        warn!(error = %e, "ring output failed");
                        Ringing::stop(&mut ringing);
                    }
                }
            }
            _ = stats_tick.tick() => {
                if let Some(m) = &media {
                    ui.show(&UiEvent::Stats(m.session.stats()));
                }
            }
            _ = sleep_until(next) => {
                let now = Instant::now();
                agent.handle_timeout(now);
                if let Some(m) = media.as_mut()
                    && let Some(dest) = m.session.poll_rtcp(now, &mut rng, &mut out)
                {
                    send(&rtcp, &capture, &mut m.session, &out, dest).await;
                }
                script.due(&config, now, &mut commands);
                if hangup_at.take_if(|at| *at <= now).is_some() {
                    commands.push_back(Command::Hangup);
                }
                if cancel_at.take_if(|at| *at <= now).is_some() {
                    cancel_sent = true;
                    commands.push_back(Command::Hangup);
                }
                if end_at.take_if(|at| *at <= now).is_some() {
                    commands.push_back(Command::Quit);
                }
            }
            key = next_key(&mut keys) => match key {
                Some(key) => {
                    commands.extend(ui.on_key(key));
                    ui.draw();
                }
                None => keys = None,
            },
            _ = redraw.tick(), if interactive => ui.draw(),
            _ = &mut interrupt, if shutdown_at.is_none() => {
                info!("interrupted; hanging up");
                shutdown_at = Some(begin_shutdown(&mut agent, Instant::now()));
            }
            _ = terminate.recv(), if shutdown_at.is_none() => {
                info!("terminated; hanging up");
                shutdown_at = Some(begin_shutdown(&mut agent, Instant::now()));
            }
        }
    }
    Ringing::stop(&mut ringing);
    if let Some(m) = media.take() {
        let stats = stop_media(m, Instant::now(), &rtcp, &capture, &mut out).await;
        show_hangup(&mut ui, &HangupReason::Local, Some(stats));
    }
    // Give the last datagrams (ACK, 200 to BYE) a moment to leave before the sockets close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    capture.flush();
    Ok(outcome)
}

/// The scripted steps of a connected call, timed from its answer.
#[derive(Debug, Default)]
struct Script {
    hold_at: Option<Instant>,
    resume_at: Option<Instant>,
    mute_at: Option<Instant>,
    unmute_at: Option<Instant>,
    dtmf_at: Option<Instant>,
    transfer_at: Option<Instant>,
}

impl Script {
    fn after_answer(config: &Config, answered: Instant) -> Script {
        let at = |d: Option<Duration>| d.and_then(|d| answered.checked_add(d));
        Script {
            hold_at: at(config.hold_at),
            resume_at: at(config.resume_at),
            mute_at: at(config.mute_at),
            unmute_at: at(config.unmute_at),
            dtmf_at: if config.dtmf.is_empty() { None } else { at(Some(config.dtmf_at)) },
            transfer_at: config.transfer.as_ref().and_then(|_| at(Some(config.transfer_at))),
        }
    }

    fn next(&self) -> Option<Instant> {
        [self.hold_at, self.resume_at, self.mute_at, self.unmute_at, self.dtmf_at, self.transfer_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Queues what is due at `now`: hold, resume, mute, unmute, DTMF, transfer.
    fn due(&mut self, config: &Config, now: Instant, commands: &mut VecDeque<Command>) {
        let due = |at: &mut Option<Instant>| at.take_if(|at| *at <= now).is_some();
        if due(&mut self.mute_at) {
            commands.push_back(Command::Mute(MuteChange::On));
        }
        if due(&mut self.unmute_at) {
            commands.push_back(Command::Mute(MuteChange::Off));
        }
        if due(&mut self.hold_at) {
            commands.push_back(Command::Hold);
        }
        if due(&mut self.resume_at) {
            commands.push_back(Command::Resume);
        }
        if due(&mut self.dtmf_at) {
            commands.push_back(Command::Dtmf(config.dtmf.clone()));
        }
        if due(&mut self.transfer_at)
            && let Some(target) = &config.transfer
        {
            commands.push_back(Command::Transfer(target.clone()));
        }
    }
}

/// The URI of a `--dial` or `--transfer` target: an extension is in our domain.
fn target_uri(target: &DialTarget, agent: &UserAgent) -> Uri {
    match target {
        DialTarget::Extension(ext) => Uri::sip(Some(ext), Host::Domain(agent.aor().host.to_string()), None),
        DialTarget::Uri(uri) => uri.clone(),
    }
}

/// Carries out one command, from the script or the keyboard; [`Command::Quit`] is the loop's.
/// The error says why it could not be done.
fn execute(
    command: &Command,
    config: &Config,
    agent: &mut UserAgent,
    media: Option<&mut ActiveMedia>,
    ui: &mut Ui,
    now: Instant,
) -> Result<(), String> {
    let refused = |e: CommandError| e.to_string();
    match command {
        Command::Dial(target) => {
            if let DialTarget::Extension(ext) = target
                && config.registrar.is_none()
            {
                return Err(format!("extension {ext} needs a registrar (--registrar): dial a sip: URI instead"));
            }
            let uri = target_uri(target, agent);
            agent.dial(&uri, now).map_err(refused)?;
            ui.show(&UiEvent::Dialling { target: uri.to_string() });
        }
        Command::Answer => agent.answer(now).map_err(refused)?,
        Command::Reject => agent.reject(now).map_err(refused)?,
        Command::Hangup => agent.hangup(now).map_err(refused)?,
        Command::Hold => agent.hold(now).map_err(refused)?,
        Command::Resume => agent.resume(now).map_err(refused)?,
        Command::Mute(change) => {
            let m = media.ok_or("there is no connected call to mute")?;
            m.muted = match change {
                MuteChange::On => true,
                MuteChange::Off => false,
                MuteChange::Toggle => !m.muted,
            };
            m.session.set_muted(m.muted);
            ui.show(&UiEvent::Muted { muted: m.muted });
        }
        // As RTP events when the far end takes them, else by SIP INFO.
        Command::Dtmf(digits) => match media {
            Some(m) if m.session.can_send_dtmf() => m.session.send_dtmf(digits),
            _ => agent.send_dtmf_info(digits, now).map_err(refused)?,
        },
        Command::Transfer(target) => {
            if let DialTarget::Extension(ext) = target
                && config.registrar.is_none()
            {
                return Err(format!("extension {ext} needs a registrar (--registrar): give a sip: URI instead"));
            }
            agent.transfer(&target_uri(target, agent), now).map_err(refused)?;
        }
        Command::Help | Command::Quit => {}
    }
    Ok(())
}

fn show_hangup(ui: &mut Ui, reason: &HangupReason, stats: Option<crate::media::MediaStats>) {
    ui.show(&UiEvent::HungUp { reason: reason.as_str().to_owned(), status: reason.status(), stats });
}

/// Hangs up any call and removes our registration; returns when to stop waiting for that.
fn begin_shutdown(agent: &mut UserAgent, now: Instant) -> Instant {
    let _ = agent.hangup(now);
    agent.unregister(now);
    now + SHUTDOWN_LIMIT
}

fn start_media<R: rand::RngCore>(
    config: &Config,
    negotiated: &proto::sdp::Negotiated,
    now: Instant,
    rng: &mut R,
) -> anyhow::Result<ActiveMedia> {
    let session = MediaSession::new(negotiated, config.opus, now, rng)?;
    let rate = session.sample_rate();
    let source = Source::open(&config.audio_in, rate)?;
    let sink = Sink::open(&config.audio_out, rate)?;
    let frame_ms = (session.frame_samples() as u64 * 1000) / u64::from(rate.max(1));
    let onsets = matches!(config.audio_in, AudioIn::Pulse(_)).then(|| OnsetDetector::new(rate, TONE_AMPLITUDE));
    Ok(ActiveMedia {
        frame: vec![0; session.frame_samples()],
        session,
        source,
        sink,
        tick: frame_clock(frame_ms),
        onsets,
        muted: false,
    })
}

/// A clock ticking every `ms` milliseconds that catches up after a late tick.
fn frame_clock(ms: u64) -> Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(ms.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    tick
}

/// Media for a call just answered. The media of a call we were transferred from stops (RTCP
/// BYE) and hands its audio source and recording over when the codec's rate and frame length
/// allow, so one recording holds both calls; otherwise it is finished and a new one begins.
async fn switch_media<R: rand::RngCore>(
    config: &Config,
    old: Option<ActiveMedia>,
    negotiated: &proto::sdp::Negotiated,
    (now, rtcp, capture, out): (Instant, &UdpSocket, &Capture, &mut Vec<u8>),
    rng: &mut R,
) -> anyhow::Result<ActiveMedia> {
    let Some(mut old) = old else { return start_media(config, negotiated, now, rng) };
    match MediaSession::new(negotiated, config.opus, now, rng) {
        Ok(session)
            if session.sample_rate() == old.session.sample_rate()
                && session.frame_samples() == old.session.frame_samples() =>
        {
            if let Some(dest) = old.session.stop(now, out) {
                send(rtcp, capture, &mut old.session, out, dest).await;
            }
            old.session = session;
            old.session.set_muted(old.muted);
            Ok(old)
        }
        _ => {
            stop_media(old, now, rtcp, capture, out).await;
            start_media(config, negotiated, now, rng)
        }
    }
}

/// The realtime instant of sample `at` of the frame handled now, in µs since the Unix epoch.
fn unix_us_at(at: usize, rate: u32) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let offset = Duration::from_secs_f64(at as f64 / f64::from(rate.max(1)));
    u64::try_from((now + offset).as_micros()).unwrap_or(u64::MAX)
}

/// Applies a re-INVITE's outcome: in place when the stream stays the same, else on a new RTP
/// stream when the codec's rate and frame length allow the source and recording to go on.
fn restart_or_update<R: rand::RngCore>(
    m: &mut ActiveMedia,
    negotiated: &proto::sdp::Negotiated,
    muted: bool,
    now: Instant,
    rng: &mut R,
) {
    if m.session.same_stream(negotiated) {
        return m.session.update(negotiated, muted);
    }
    match MediaSession::new(negotiated, m.session.opus_settings(), now, rng) {
        Ok(mut session)
            if session.sample_rate() == m.session.sample_rate()
                && session.frame_samples() == m.session.frame_samples() =>
        {
            session.update(negotiated, muted);
            session.set_muted(m.muted);
            m.session = session;
        }
        Ok(_) => {
            warn!("the far end changed the codec's rate or frame length mid-call; keeping the old stream");
            m.session.update(negotiated, muted);
        }
        Err(e) => {
            warn!(error = %e, "the new media could not start; keeping the old stream");
            m.session.update(negotiated, muted);
        }
    }
}

async fn stop_media(
    mut m: ActiveMedia,
    now: Instant,
    rtcp: &UdpSocket,
    capture: &Capture,
    out: &mut Vec<u8>,
) -> crate::media::MediaStats {
    if let Some(dest) = m.session.stop(now, out) {
        send(rtcp, capture, &mut m.session, out, dest).await;
    }
    m.source.close();
    if let Err(e) = m.sink.finish() {
        warn!(error = %e, "audio output not finished");
    }
    m.session.stats()
}

/// Sends a packet the media session wrote, sealed for the wire (SRTP when agreed), recording
/// it in the capture (`--pcap`) once sent, as plain RTP/RTCP so the capture decodes as usual.
async fn send(socket: &UdpSocket, capture: &Capture, session: &mut MediaSession, plain: &[u8], dest: SocketAddr) {
    let Some(wire) = session.seal(plain) else { return };
    if socket.send_to(wire, dest).await.is_ok()
        && capture.is_enabled()
        && let Ok(local) = socket.local_addr()
    {
        capture.udp(local, dest, plain);
    }
}

/// A datagram from a media socket: to the call's media, and to the capture as the plain packet
/// the media took (SRTP that fails authentication is dropped, not recorded); as it came when
/// no call has media.
fn receive(
    session: Option<&mut MediaSession>,
    capture: &Capture,
    datagram: &[u8],
    from: SocketAddr,
    local: SocketAddr,
) {
    match session {
        Some(session) => {
            if let Some(plain) = session.handle_datagram(datagram, from, Instant::now()) {
                capture.udp(from, local, plain);
            }
        }
        None => capture.udp(from, local, datagram),
    }
}

/// The next 20 ms frame period of the call's media; never while there is none.
async fn frame_tick(media: &mut Option<ActiveMedia>) {
    match media {
        Some(m) => {
            m.tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The next key pressed on the interactive screen; never without one. `None` once the
/// terminal's input is gone.
async fn next_key(keys: &mut Option<tokio::sync::mpsc::UnboundedReceiver<KeyEvent>>) -> Option<KeyEvent> {
    match keys {
        Some(keys) => keys.recv().await,
        None => std::future::pending().await,
    }
}

/// The next 20 ms frame of the ring; never while there is none.
async fn ring_tick(ringing: &mut Option<Ringing>) {
    match ringing {
        Some(r) => {
            r.tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The codec as SDP writes it.
fn sdp_codec(kind: CodecKind) -> Codec {
    match kind {
        CodecKind::Opus => Codec::opus(),
        CodecKind::Pcmu => Codec::pcmu(),
        CodecKind::Pcma => Codec::pcma(),
    }
}

/// Our address on the route to `peer` (the system's choice of source address), else loopback.
fn route_ip(peer: Option<SocketAddr>) -> IpAddr {
    peer.and_then(|peer| {
        let socket = StdUdpSocket::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)).ok()?;
        socket.connect(peer).ok()?;
        Some(socket.local_addr().ok()?.ip())
    })
    .unwrap_or(Ipv4Addr::LOCALHOST.into())
}

/// An RTP socket on an even port and its RTCP socket on the next (RFC 3550 §11).
fn bind_rtp_pair(ip: IpAddr) -> anyhow::Result<(UdpSocket, UdpSocket)> {
    let mut rng = rand::rng();
    for _ in 0..RTP_PORT_ATTEMPTS {
        let port = rng.random_range(8_192u16..30_000) * 2;
        let Ok(rtp) = StdUdpSocket::bind(SocketAddr::new(ip, port)) else { continue };
        let Ok(rtcp) = StdUdpSocket::bind(SocketAddr::new(ip, port + 1)) else { continue };
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        return Ok((UdpSocket::from_std(rtp)?, UdpSocket::from_std(rtcp)?));
    }
    anyhow::bail!("no free UDP port pair for RTP on {ip}: free some ports or check the address")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCMU session toward `remote` under SRTP, sending under `send` and taking `receive`.
    fn srtp_session(remote: SocketAddr, send: u8, receive: u8) -> MediaSession {
        use proto::rtp::srtp::{MasterKey, SrtpProfile};
        let keys = proto::sdp::SrtpKeys {
            profile: SrtpProfile::AesCm128HmacSha1_80,
            send: MasterKey::new([send; 16], [send; 14]),
            send_mki: None,
            receive: MasterKey::new([receive; 16], [receive; 14]),
            receive_mki: None,
        };
        let negotiated = proto::sdp::Negotiated {
            media_index: 0,
            remote_rtp: remote,
            remote_rtcp: SocketAddr::new(remote.ip(), remote.port() + 1),
            payload_type: 0,
            codec: Codec::pcmu(),
            ptime: 20,
            telephone_event: None,
            direction: proto::sdp::Direction::SendRecv,
            rtcp_mux: false,
            remote_fec: false,
            remote_maxplaybackrate: None,
            srtp: Some(keys),
        };
        MediaSession::new(&negotiated, Default::default(), Instant::now(), &mut rand::rng()).unwrap()
    }

    /// `--pcap` over SRTP: both the packets sent and those received are recorded as the plain
    /// RTP, which tshark decodes as PCMU, and the protected form is nowhere in the file.
    #[tokio::test]
    async fn the_capture_records_srtp_media_decrypted_and_tshark_reads_it_as_pcmu() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("srtp.pcap");
        let capture = Capture::create(&path, DEFAULT_CAPTURE_LIMIT).unwrap();
        let a_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a_sock.local_addr().unwrap(), b_sock.local_addr().unwrap());
        let mut a = srtp_session(b_addr, 1, 2);
        let mut b = srtp_session(a_addr, 2, 1);
        let (mut plain, mut buf, mut plains, mut wires) = (Vec::new(), vec![0u8; 2048], Vec::new(), Vec::new());
        let frame: Vec<i16> = (0..160).map(|i| ((i as f64 * 0.785).sin() * 8000.0) as i16).collect();
        let start = Instant::now();
        for i in 0..20u64 {
            let dest = a.send_frame(&frame, start + Duration::from_millis(20 * i), &mut plain).unwrap().unwrap();
            send(&a_sock, &capture, &mut a, &plain, dest).await;
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(2), b_sock.recv_from(&mut buf)).await.unwrap().unwrap();
            receive(Some(&mut b), &capture, &buf[..n], from, b_addr);
            plains.push(plain.clone());
            wires.push(buf[..n].to_vec());
        }
        capture.flush();
        drop(capture);
        let file = std::fs::read(&path).unwrap();
        let count = |needle: &[u8]| file.windows(needle.len()).filter(|w| *w == needle).count();
        for (plain, wire) in plains.iter().zip(&wires) {
            assert_ne!(plain, wire);
            assert_eq!(count(plain), 2, "the plain packet, sent and received");
            assert_eq!(count(&wire[12..]), 0, "no protected payload in the capture");
        }
        assert_eq!(b.stats().srtp_auth_failures, Some(0));

        let port = b_addr.port();
        let out = std::process::Command::new("tshark")
            .args(["-r", path.to_str().unwrap(), "-d", &format!("udp.port=={port},rtp"), "-q", "-z", "rtp,streams"])
            .output();
        match out {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains("g711U"), "tshark sees PCMU RTP: {text}");
            }
            Err(e) => eprintln!("tshark not run ({e}); the byte checks above stand"),
        }
    }

    #[test]
    fn a_call_cancelled_by_cancel_after_exits_zero_but_an_unanswered_one_exits_one() {
        let dialled = Outcome { dialled: true, registered: true, ..Outcome::default() };
        assert_eq!(dialled.exit_code(), 1, "a dialled call that never connected failed");
        let cancelled = Outcome { cancelled_as_asked: true, ..dialled.clone() };
        assert_eq!(cancelled.exit_code(), 0, "--cancel-after did what it was asked");
        let refused = Outcome { registration_failed: true, ..cancelled };
        assert_eq!(refused.exit_code(), 3);
    }

    #[test]
    fn commands_that_cannot_be_done_say_why() {
        use clap::Parser;
        let cli = crate::config::Cli::try_parse_from(["softphone", "--user", "1001"]).unwrap();
        let config = Config::from_cli(cli).unwrap();
        let local: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let settings = Settings {
            user: "1001".into(),
            password: String::new(),
            domain: "voip.test".into(),
            local,
            transport: Transport::Udp,
            registrar: None,
            register_expires: REGISTER_EXPIRES,
            media: LocalMedia::new(local.ip(), 40_000),
            auto_answer: false,
            timers: TimerConfig::default(),
            srtp: crate::agent::SrtpPolicy::Offer,
            keepalive: None,
        };
        let mut agent = UserAgent::new(settings, 1);
        let mut ui = Ui::new(false);
        let now = Instant::now();
        let mut run = |command: Command| execute(&command, &config, &mut agent, None, &mut ui, now);
        let ext = || DialTarget::Extension("1002".into());
        assert_eq!(
            run(Command::Dial(ext())),
            Err("extension 1002 needs a registrar (--registrar): dial a sip: URI instead".into())
        );
        assert_eq!(
            run(Command::Transfer(ext())),
            Err("extension 1002 needs a registrar (--registrar): give a sip: URI instead".into())
        );
        let uri = DialTarget::Uri(Uri::parse("sip:1003@127.0.0.1:5090").unwrap());
        assert_eq!(run(Command::Transfer(uri)), Err("there is no call to act on".into()));
        assert_eq!(run(Command::Mute(MuteChange::Toggle)), Err("there is no connected call to mute".into()));
        assert_eq!(run(Command::Answer), Err("there is no call to act on".into()));
        assert_eq!(run(Command::Hold), Err(CommandError::NoCall.to_string()));
        assert!(agent.poll_transmit().is_none(), "nothing was sent");
    }

    #[test]
    fn leaving_the_interactive_phone_exits_zero_unless_registration_failed() {
        let left = Outcome { interactive: true, ..Outcome::default() };
        assert_eq!(left.exit_code(), 0, "no registrar, no call: the person simply quit");
        assert_eq!(Outcome { registration_failed: true, ..left }.exit_code(), 3);
    }
}
