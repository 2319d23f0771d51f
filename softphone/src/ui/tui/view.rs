//! Draws a [`TuiState`] on a ratatui frame: registration, the call, level meters and media
//! quality, the event log and the command line. Pure: the same state and time draw the same
//! screen, which the tests read back from a `TestBackend`.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::state::{CallState, METER_FLOOR_DB, Registration, Severity, TuiState, clock};

/// Width of a level meter's bar, in cells.
const METER_CELLS: usize = 20;
/// How fast an incoming call's banner blinks.
const BLINK: Duration = Duration::from_millis(500);

/// Draws the whole screen.
pub fn render(frame: &mut Frame, state: &TuiState, now: Instant) {
    let [registration, middle, log, command] =
        Layout::vertical([Constraint::Length(3), Constraint::Length(8), Constraint::Min(3), Constraint::Length(3)])
            .areas(frame.area());
    let [call, quality] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(middle);
    frame.render_widget(registration_view(state, now), registration);
    frame.render_widget(call_view(state, now), call);
    frame.render_widget(quality_view(state), quality);
    render_log(frame, state, log);
    render_command_line(frame, state, command);
}

fn registration_view(state: &TuiState, now: Instant) -> Paragraph<'static> {
    let (status, style) = match &state.registration {
        Registration::NotConfigured => ("no registrar: dial sip: URIs".to_owned(), Style::new().fg(Color::Gray)),
        Registration::Registering => ("registering…".to_owned(), Style::new().fg(Color::Yellow)),
        Registration::Registered { .. } => (
            format!("registered, expires in {} s", state.expires_in(now).unwrap_or_default()),
            Style::new().fg(Color::Green),
        ),
        Registration::Failed { status, reason } => {
            (format!("registration failed: {status} {reason}"), Style::new().fg(Color::Red).bold())
        }
        Registration::Lost { status, retry_at } => (
            format!(
                "registration lost ({status}), retrying in {} s",
                retry_at.saturating_duration_since(now).as_secs()
            ),
            Style::new().fg(Color::Red).bold(),
        ),
        Registration::Unregistered => ("unregistered".to_owned(), Style::new().fg(Color::Gray)),
    };
    let via = state.registrar.as_deref().map(|r| format!(" via {r}")).unwrap_or_default();
    let line = Line::from(vec![Span::raw(format!("{}{via}  ", state.aor)).bold(), Span::styled(status, style)]);
    Paragraph::new(line).block(Block::bordered().title(" Registration "))
}

fn call_view(state: &TuiState, now: Instant) -> Paragraph<'static> {
    let label = state.call.label().to_ascii_uppercase();
    let mut state_style = match &state.call {
        CallState::Idle => Style::new().fg(Color::Gray),
        CallState::Dialling | CallState::Ringing => Style::new().fg(Color::Cyan).bold(),
        CallState::Incoming => {
            Style::new().fg(Color::Black).bg(Color::Yellow).bold().add_modifier(Modifier::SLOW_BLINK)
        }
        CallState::Connected => Style::new().fg(Color::Green).bold(),
        CallState::Held(_) => Style::new().fg(Color::Blue).bold(),
    };
    let mut block = Block::bordered().title(" Call ");
    if let Some(since) = state.ringing_since {
        // Blink by hand too: not every terminal honours the blink attribute.
        let phase = now.saturating_duration_since(since).as_millis() / BLINK.as_millis();
        if phase % 2 == 1 {
            state_style = state_style.add_modifier(Modifier::REVERSED);
        }
        block = Block::bordered()
            .border_style(Style::new().fg(Color::Yellow).bold())
            .title(" Call: INCOMING — a answers, r rejects ");
    }
    let mut first = vec![Span::styled(format!(" {label} "), state_style)];
    if let CallState::Held(by) = &state.call {
        first.push(Span::raw(format!(" by {by}")));
    }
    if state.muted {
        first.push(Span::styled("  MUTED", Style::new().fg(Color::Red).bold()));
    }
    let field = |name: &str, value: String| Line::from(vec![Span::raw(format!("{name:<7}")).dim(), Span::raw(value)]);
    let lines = vec![
        Line::from(first),
        field("peer", state.peer.clone().unwrap_or_else(|| "—".to_owned())),
        field("codec", state.codec.clone().unwrap_or_else(|| "—".to_owned())),
        field("time", state.call_duration(now).map_or_else(|| "—".to_owned(), clock)),
        meter("in", state.input_db, state.muted),
        meter("out", state.output_db, false),
    ];
    Paragraph::new(lines).block(block)
}

/// A level meter: a bar from the floor to 0 dBFS, and the figure.
fn meter(name: &str, db: f32, muted: bool) -> Line<'static> {
    let fill = ((db - METER_FLOOR_DB) / -METER_FLOOR_DB * METER_CELLS as f32).round().clamp(0.0, METER_CELLS as f32);
    let fill = fill as usize;
    let colour = if db > -6.0 {
        Color::Red
    } else if db > -20.0 {
        Color::Yellow
    } else {
        Color::Green
    };
    let figure = if db <= METER_FLOOR_DB { "  silent".to_owned() } else { format!("{db:>5.0} dBFS") };
    Line::from(vec![
        Span::raw(format!("{name:<7}")).dim(),
        Span::styled("█".repeat(fill), Style::new().fg(if muted { Color::DarkGray } else { colour })),
        Span::styled("░".repeat(METER_CELLS - fill), Style::new().fg(Color::DarkGray)),
        Span::raw(format!(" {figure}")),
    ])
}

fn quality_view(state: &TuiState) -> Paragraph<'static> {
    let block = Block::bordered().title(" Media ");
    let Some(s) = state.stats else {
        return Paragraph::new(Line::from("no media").dim()).block(block);
    };
    let field = |name: &str, value: String| Line::from(vec![Span::raw(format!("{name:<10}")).dim(), Span::raw(value)]);
    Paragraph::new(vec![
        field("jitter", format!("{:.1} ms", s.jitter_ms)),
        field(
            "loss",
            format!("{} ({:.1} %), far end {}", s.lost, s.loss_percent, optional(s.remote_loss_percent, "%")),
        ),
        field(
            "RTT / MOS",
            format!("{} / {}", optional(s.rtt_ms, "ms"), s.mos.map_or("—".to_owned(), |m| format!("{m:.2}"))),
        ),
        field("buffer", format!("{:.0} ms", s.jitter_buffer_ms)),
        field(
            "packets",
            match s.srtp_auth_failures {
                Some(failed) => {
                    format!("{} sent, {} received, {failed} failed SRTP auth", s.packets_sent, s.packets_received)
                }
                None => format!("{} sent, {} received", s.packets_sent, s.packets_received),
            },
        ),
        field("concealed", format!("{} frames, {} by FEC", s.concealed, s.fec_recovered)),
    ])
    .block(block)
}

/// A figure that may not be known yet (RTT before the first RTCP report).
fn optional(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.1} {unit}"))
}

fn render_log(frame: &mut Frame, state: &TuiState, area: Rect) {
    let rows = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line> = state
        .log
        .iter()
        .skip(state.log.len().saturating_sub(rows))
        .map(|l| {
            let style = match l.severity {
                Severity::Info => Style::new(),
                Severity::Error => Style::new().fg(Color::Red),
            };
            Line::from(vec![Span::raw(format!("{} ", clock(l.at))).dim(), Span::styled(l.text.clone(), style)])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Events ")), area);
}

fn render_command_line(frame: &mut Frame, state: &TuiState, area: Rect) {
    let block = Block::bordered().title(" Command ");
    match &state.line {
        Some(line) => {
            frame.render_widget(Paragraph::new(format!("> {line}")).block(block), area);
            let x = area.x.saturating_add(3).saturating_add(u16::try_from(line.chars().count()).unwrap_or(u16::MAX));
            frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(2)), area.y + 1));
        }
        None => {
            let hint = match state.call {
                CallState::Incoming => "a answer · r reject · : command · ? help",
                CallState::Connected | CallState::Held(_) => {
                    "h hang up · m mute · 0-9*# DTMF · t transfer · : command (hold, resume) · ? help · q quit"
                }
                CallState::Dialling | CallState::Ringing => "h hang up · ? help · q quit",
                CallState::Idle => "d dial · : command · ? help · q quit",
            };
            frame.render_widget(Paragraph::new(Line::from(hint).dim()).wrap(Wrap { trim: true }).block(block), area);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaStats;
    use crate::ui::UiEvent;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(state: &TuiState, now: Instant) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
        terminal.draw(|f| render(f, state, now)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn connected(now: Instant) -> TuiState {
        let mut s = TuiState::new("sip:1001@voip.test".into(), Some("127.0.0.1:5060".into()), now);
        s.on_event(&UiEvent::Registered { aor: "sip:1001@voip.test".into(), expires: 300 }, now);
        s.on_event(&UiEvent::Dialling { target: "sip:1002@voip.test".into() }, now);
        s.on_event(&UiEvent::Answered { codec: "opus".into(), remote_rtp: "127.0.0.1:40000".into(), srtp: None }, now);
        s
    }

    #[test]
    fn a_connected_call_shows_state_peer_codec_duration_and_registration() {
        let t0 = Instant::now();
        let s = connected(t0);
        let text = screen(&s, t0 + Duration::from_secs(65));
        for expected in [
            "sip:1001@voip.test via 127.0.0.1:5060",
            "registered, expires in 235 s",
            " CONNECTED ",
            "peer   sip:1002@voip.test",
            "codec  opus",
            "time   01:05",
            "connected: opus, media to 127.0.0.1:40000",
            "h hang up · m mute",
        ] {
            assert!(text.contains(expected), "{expected:?} not on screen:\n{text}");
        }
    }

    #[test]
    fn meters_fill_with_the_level_and_mute_is_shown() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        let half: Vec<i16> = (0..960).map(|n| if n % 2 == 0 { 16384 } else { -16384 }).collect();
        s.on_audio(&half, &[0; 960]);
        s.on_event(&UiEvent::Muted { muted: true }, t0);
        let text = screen(&s, t0);
        // -6 dBFS on a 60 dB scale of 20 cells: 18 cells full.
        assert!(text.contains(&format!("in     {}{}    -6 dBFS", "█".repeat(18), "░".repeat(2))), "{text}");
        assert!(text.contains(&format!("out    {}   silent", "░".repeat(20))), "{text}");
        assert!(text.contains("MUTED"), "{text}");
    }

    #[test]
    fn media_counters_show_jitter_loss_rtt_mos_and_buffer() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        assert!(screen(&s, t0).contains("no media"));
        let stats = MediaStats {
            packets_sent: 500,
            packets_received: 495,
            lost: 5,
            jitter_ms: 3.25,
            jitter_buffer_ms: 40.0,
            concealed: 7,
            fec_recovered: 2,
            loss_percent: 1.0,
            remote_loss_percent: Some(0.5),
            rtt_ms: Some(12.34),
            mos: Some(4.31),
            ..MediaStats::default()
        };
        s.on_event(&UiEvent::Stats(stats), t0);
        let text = screen(&s, t0);
        for expected in [
            "jitter    3.2 ms",
            "loss      5 (1.0 %), far end 0.5 %",
            "RTT / MOS 12.3 ms / 4.31",
            "buffer    40 ms",
            "concealed 7 frames, 2 by FEC",
        ] {
            assert!(text.contains(expected), "{expected:?} not on screen:\n{text}");
        }
    }

    #[test]
    fn an_incoming_call_is_highlighted_and_blinks() {
        let t0 = Instant::now();
        let mut s = TuiState::new("sip:1001@voip.test".into(), None, t0);
        s.on_event(&UiEvent::Incoming { from: "<sip:1002@voip.test>;tag=a".into() }, t0);
        let on = screen(&s, t0);
        assert!(on.contains("┌ Call: INCOMING — a answers, r rejects ─"), "{on}");
        assert!(on.contains("peer   <sip:1002@voip.test>;tag=a"), "{on}");
        assert!(on.contains("no registrar: dial sip: URIs"), "{on}");
        let style_at = |now: Instant| {
            let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
            terminal.draw(|f| render(f, &s, now)).unwrap();
            let buffer = terminal.backend().buffer().clone();
            assert_eq!(buffer[(2, 4)].symbol(), "I", "the state label opens the call box");
            buffer[(2, 4)].modifier
        };
        let first = style_at(t0);
        let second = style_at(t0 + BLINK);
        assert!(first.contains(Modifier::SLOW_BLINK) && !first.contains(Modifier::REVERSED));
        assert!(second.contains(Modifier::REVERSED), "the banner alternates every {BLINK:?}");
    }

    #[test]
    fn control_characters_from_the_network_never_reach_the_terminal() {
        let t0 = Instant::now();
        let mut s = TuiState::new("sip:1001@voip.test".into(), None, t0);
        s.on_event(&UiEvent::Incoming { from: "\x1b[2J\x07<sip:evil@x>\r\n".into() }, t0);
        let text = screen(&s, t0);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(text.contains("[2J<sip:evil@x>"), "the printable rest is shown: {text}");
    }

    #[test]
    fn the_open_command_line_shows_what_is_typed() {
        let t0 = Instant::now();
        let mut s = TuiState::new("sip:1001@voip.test".into(), None, t0);
        s.line = Some("dial 1002".into());
        assert!(screen(&s, t0).contains("> dial 1002"));
    }
}
