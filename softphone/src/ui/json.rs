//! `--events json`: each [`UiEvent`] as one JSON object on one line.

use std::fmt::Write;

use super::UiEvent;
use crate::media::MediaStats;

/// The event as one line of JSON, with an `"event"` field naming it.
pub fn to_json(event: &UiEvent) -> String {
    let mut o = Object::new(match event {
        UiEvent::Registered { .. } => "registered",
        UiEvent::RegistrationFailed { .. } => "registration_failed",
        UiEvent::RegistrationLost { .. } => "registration_lost",
        UiEvent::Incoming { .. } => "incoming",
        UiEvent::Dialling { .. } => "dialling",
        UiEvent::Ringing => "ringing",
        UiEvent::Answered { .. } => "answered",
        UiEvent::Held { .. } => "held",
        UiEvent::Resumed { .. } => "resumed",
        UiEvent::Muted { .. } => "muted",
        UiEvent::Dtmf { .. } => "dtmf",
        UiEvent::Referred { .. } => "referred",
        UiEvent::TransferProgress { .. } => "transfer_progress",
        UiEvent::TransferFailed { .. } => "transfer_failed",
        UiEvent::Stats(_) => "stats",
        UiEvent::OnsetSent { .. } => "onset_sent",
        UiEvent::OnsetPlayed { .. } => "onset_played",
        UiEvent::HungUp { .. } => "hung_up",
        UiEvent::Unregistered => "unregistered",
    });
    match event {
        UiEvent::Registered { aor, expires } => {
            o.string("aor", aor);
            o.raw("expires", &expires.to_string());
        }
        UiEvent::RegistrationFailed { status, reason } => {
            o.raw("status", &status.to_string());
            o.string("reason", reason);
        }
        UiEvent::RegistrationLost { status, reason, retry_in_s } => {
            o.raw("status", &status.to_string());
            o.string("reason", reason);
            o.raw("retry_in_s", &retry_in_s.to_string());
        }
        UiEvent::Incoming { from } => o.string("from", from),
        UiEvent::Dialling { target } => o.string("target", target),
        UiEvent::Muted { muted } => o.raw("muted", if *muted { "true" } else { "false" }),
        UiEvent::Answered { codec, remote_rtp, srtp } => {
            o.string("codec", codec);
            o.string("remote_rtp", remote_rtp);
            if let Some(suite) = srtp {
                o.string("srtp", suite);
            }
        }
        UiEvent::Held { by } | UiEvent::Resumed { by } => o.string("by", by),
        UiEvent::Dtmf { digit, via } => {
            o.string("digit", digit.encode_utf8(&mut [0; 4]));
            o.string("via", via);
        }
        UiEvent::Referred { target } => o.string("target", target),
        UiEvent::TransferProgress { status } | UiEvent::TransferFailed { status } => {
            o.raw("status", &status.to_string())
        }
        UiEvent::Stats(stats) => stats_fields(&mut o, stats),
        UiEvent::OnsetSent { unix_us } | UiEvent::OnsetPlayed { unix_us } => o.raw("unix_us", &unix_us.to_string()),
        UiEvent::HungUp { reason, status, stats } => {
            o.string("reason", reason);
            if let Some(status) = status {
                o.raw("status", &status.to_string());
            }
            if let Some(stats) = stats {
                let mut inner = Object::bare();
                stats_fields(&mut inner, stats);
                o.raw("stats", &inner.finish());
            }
        }
        UiEvent::Ringing | UiEvent::Unregistered => {}
    }
    o.finish()
}

fn stats_fields(o: &mut Object, s: &MediaStats) {
    o.raw("packets_sent", &s.packets_sent.to_string());
    o.raw("packets_received", &s.packets_received.to_string());
    o.raw("lost", &s.lost.to_string());
    o.raw("loss_percent", &format!("{:.2}", s.loss_percent));
    if let Some(remote) = s.remote_loss_percent {
        o.raw("remote_loss_percent", &format!("{remote:.2}"));
    }
    o.raw("jitter_ms", &format!("{:.2}", s.jitter_ms));
    o.raw("jitter_buffer_ms", &format!("{:.1}", s.jitter_buffer_ms));
    o.raw("concealed", &s.concealed.to_string());
    o.raw("fec_recovered", &s.fec_recovered.to_string());
    if let Some(failures) = s.srtp_auth_failures {
        o.raw("srtp_auth_failures", &failures.to_string());
    }
    if let Some(rtt) = s.rtt_ms {
        o.raw("rtt_ms", &format!("{rtt:.1}"));
    }
    if let Some(mos) = s.mos {
        o.raw("mos", &format!("{mos:.2}"));
    }
    o.raw("input_level_dbfs", &format!("{:.1}", s.input_level_dbfs));
    o.raw("output_level_dbfs", &format!("{:.1}", s.output_level_dbfs));
    o.raw("muted", if s.muted { "true" } else { "false" });
}

/// A JSON object being written.
struct Object(String);

impl Object {
    fn new(event: &str) -> Object {
        let mut o = Object::bare();
        o.string("event", event);
        o
    }

    fn bare() -> Object {
        Object(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        quote(&mut self.0, key);
        self.0.push(':');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        quote(&mut self.0, value);
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.0.push_str(value);
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Writes `s` as a JSON string (RFC 8259 §7).
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_names_the_codec_and_the_srtp_suite_when_encrypted() {
        let e = UiEvent::Answered { codec: "opus".into(), remote_rtp: "127.0.0.1:4000".into(), srtp: None };
        assert_eq!(to_json(&e), r#"{"event":"answered","codec":"opus","remote_rtp":"127.0.0.1:4000"}"#);
        let e = UiEvent::Answered {
            codec: "opus".into(),
            remote_rtp: "127.0.0.1:4000".into(),
            srtp: Some("AES_CM_128_HMAC_SHA1_80".into()),
        };
        assert_eq!(
            to_json(&e),
            r#"{"event":"answered","codec":"opus","remote_rtp":"127.0.0.1:4000","srtp":"AES_CM_128_HMAC_SHA1_80"}"#
        );
    }

    #[test]
    fn hold_and_dtmf_events_say_who_and_how() {
        assert_eq!(to_json(&UiEvent::Held { by: "remote".into() }), r#"{"event":"held","by":"remote"}"#);
        assert_eq!(to_json(&UiEvent::Resumed { by: "local".into() }), r#"{"event":"resumed","by":"local"}"#);
        let dtmf = UiEvent::Dtmf { digit: '#', via: "rtp".into() };
        assert_eq!(to_json(&dtmf), r##"{"event":"dtmf","digit":"#","via":"rtp"}"##);
    }

    #[test]
    fn transfer_events_carry_the_target_and_the_sipfrag_status() {
        let referred = UiEvent::Referred { target: "sip:1003@voip.test".into() };
        assert_eq!(to_json(&referred), r#"{"event":"referred","target":"sip:1003@voip.test"}"#);
        let progress = UiEvent::TransferProgress { status: 200 };
        assert_eq!(to_json(&progress), r#"{"event":"transfer_progress","status":200}"#);
        let failed = UiEvent::TransferFailed { status: 486 };
        assert_eq!(to_json(&failed), r#"{"event":"transfer_failed","status":486}"#);
    }

    #[test]
    fn onsets_carry_their_realtime_instant() {
        let e = UiEvent::OnsetPlayed { unix_us: 1_764_000_000_123_456 };
        assert_eq!(to_json(&e), r#"{"event":"onset_played","unix_us":1764000000123456}"#);
    }

    #[test]
    fn strings_are_escaped() {
        let e = UiEvent::Incoming { from: "\"Bob\" <sip:b@x>\n".into() };
        assert_eq!(to_json(&e), r#"{"event":"incoming","from":"\"Bob\" <sip:b@x>\n"}"#);
    }

    #[test]
    fn stats_carry_quality_levels_and_mute_and_leave_out_what_is_unknown() {
        let stats = MediaStats {
            packets_sent: 50,
            packets_received: 49,
            lost: 1,
            loss_percent: 2.0,
            remote_loss_percent: Some(5.078125),
            jitter_ms: 1.234,
            jitter_buffer_ms: 40.0,
            concealed: 2,
            fec_recovered: 1,
            rtt_ms: Some(80.25),
            mos: Some(4.3891),
            input_level_dbfs: -15.25,
            output_level_dbfs: -96.0,
            muted: true,
            srtp_auth_failures: Some(3),
        };
        assert_eq!(
            to_json(&UiEvent::Stats(stats)),
            concat!(
                r#"{"event":"stats","packets_sent":50,"packets_received":49,"lost":1,"loss_percent":2.00,"#,
                r#""remote_loss_percent":5.08,"jitter_ms":1.23,"jitter_buffer_ms":40.0,"concealed":2,"#,
                r#""fec_recovered":1,"srtp_auth_failures":3,"rtt_ms":80.2,"mos":4.39,"input_level_dbfs":-15.2,"#,
                r#""output_level_dbfs":-96.0,"muted":true}"#
            )
        );
        let early = to_json(&UiEvent::Stats(MediaStats::default()));
        assert!(!early.contains("rtt_ms") && !early.contains("mos") && !early.contains("remote_loss"), "{early}");
        assert!(!early.contains("srtp"), "plain RTP says nothing of SRTP: {early}");
        assert!(early.ends_with(r#""input_level_dbfs":-96.0,"output_level_dbfs":-96.0,"muted":false}"#), "{early}");
    }

    #[test]
    fn hung_up_carries_final_stats() {
        let stats = MediaStats { packets_sent: 3, ..MediaStats::default() };
        let e = UiEvent::HungUp { reason: "remote".into(), status: None, stats: Some(stats) };
        let line = to_json(&e);
        assert!(line.starts_with(r#"{"event":"hung_up","reason":"remote","stats":{"packets_sent":3,"#), "{line}");
        assert!(line.ends_with("}}"));
    }
}
