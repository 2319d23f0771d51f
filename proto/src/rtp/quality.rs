//! Call quality from what RTP and RTCP measure: the E-model's transmission rating R and its MOS
//! (ITU-T G.107), and the far end's reported loss smoothed for the Opus encoder's FEC.
//!
//! This lives beside the RTP statistics because it is what they are for: RTCP XR's VoIP metrics
//! block (RFC 3611 §4.7.5) carries exactly this R factor and MOS, computed from the same loss,
//! jitter-buffer and round-trip figures. It reads nothing but numbers, so it stays sans-IO.
//!
//! # The E-model, simplified for VoIP monitoring
//!
//! `R = Ro − Is − Id − Ie,eff + A` (G.107 §7). With every G.107 default value (no extra noise,
//! echo well controlled, TELR 65 dB) `Ro − Is = 93.2` and `A = 0` for wired telephony. What is
//! left depends on the call:
//!
//! - `Id`, the delay impairment, from the one-way mouth-to-ear delay `d` in ms. With the default
//!   echo and sidetone parameters G.107's `Idte + Idle + Idd` is well fitted by
//!   `Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3)` (Cole and Rosenbluth, "Voice over IP
//!   performance monitoring", ACM SIGCOMM CCR 31(2), 2001), the form VoIP monitors use.
//! - `Ie,eff = Ie + (95 − Ie)·Ppl / (Ppl/BurstR + Bpl)` (G.107 §7.4), with `Ppl` the
//!   loss in percent the listener hears and `BurstR = 1` (random loss). `Ie` and `Bpl` are the
//!   codec's ([`CodecImpairment`]).
//!
//! MOS comes from R by G.107 Annex B: 1 below R = 0, 4.5 above R = 100, and
//! `1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶` between; R = 93.2 gives 4.41.

use std::time::Duration;

use crate::codec::CodecKind;

/// `Ro − Is` with G.107's default values.
pub const R_DEFAULT: f64 = 93.2;

/// How a codec impairs speech in the narrowband E-model: its equipment impairment `Ie`, its
/// packet-loss robustness `Bpl`, and the delay it adds on top of the frame itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor with no loss (G.113 Appendix I).
    pub ie: f64,
    /// Packet-loss robustness factor (G.113 Appendix I).
    pub bpl: f64,
    /// Algorithmic delay beyond the frame (the encoder's look-ahead).
    pub lookahead: Duration,
}

impl CodecImpairment {
    /// G.711 without concealment: `Ie = 0`, `Bpl = 4.3` (G.113 Appendix I).
    pub const G711: Self = Self { ie: 0.0, bpl: 4.3, lookahead: Duration::ZERO };
    /// G.711 with packet loss concealment (G.711 Appendix I): `Ie = 0`, `Bpl = 25.1` (G.113
    /// Appendix I). Our G.711 decoder conceals, so this is what PCMU and PCMA use.
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1, lookahead: Duration::ZERO };
    /// Opus as this phone runs it (32 kbit/s, voice mode). G.113 lists no Opus values, so:
    /// `Ie = 0`, because at this rate Opus is at least as good as G.711 and the narrowband
    /// E-model has no room above G.711; and `Bpl = 25.1`, G.711-with-PLC's value, as a
    /// conservative stand-in for Opus's own (stronger) concealment. The loss it is fed is what
    /// FEC could not recover. Look-ahead 6.5 ms: what libopus reports (`OPUS_GET_LOOKAHEAD`)
    /// in voice mode at 48 kHz.
    pub const OPUS: Self = Self { ie: 0.0, bpl: 25.1, lookahead: Duration::from_micros(6_500) };

    /// The values this phone uses for `kind`.
    pub fn for_codec(kind: CodecKind) -> Self {
        match kind {
            CodecKind::Opus => Self::OPUS,
            CodecKind::Pcmu | CodecKind::Pcma => Self::G711_PLC,
        }
    }
}

/// The delay impairment `Id` for a one-way mouth-to-ear delay (see the module docs).
pub fn delay_impairment(one_way: Duration) -> f64 {
    let d = one_way.as_secs_f64() * 1000.0;
    0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 }
}

/// The effective equipment impairment `Ie,eff` for `loss_percent` random loss (BurstR = 1).
pub fn effective_equipment_impairment(codec: CodecImpairment, loss_percent: f64) -> f64 {
    let ppl = if loss_percent.is_finite() { loss_percent.clamp(0.0, 100.0) } else { 0.0 };
    let denominator = ppl + codec.bpl;
    if denominator <= 0.0 {
        return codec.ie;
    }
    codec.ie + (95.0 - codec.ie) * ppl / denominator
}

/// The transmission rating R for a call with this one-way delay, heard loss and codec.
pub fn r_factor(one_way: Duration, loss_percent: f64, codec: CodecImpairment) -> f64 {
    R_DEFAULT - delay_impairment(one_way) - effective_equipment_impairment(codec, loss_percent)
}

/// The mean opinion score (conversational quality, 1 to 4.5) for a rating R (G.107 Annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        // Eq. B-4 dips just below 1 for R under about 6.5; a MOS is never below 1.
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).max(1.0)
    }
}

/// The MOS for a call with this one-way delay, heard loss and codec.
pub fn mos(one_way: Duration, loss_percent: f64, codec: CodecImpairment) -> f64 {
    mos_from_r(r_factor(one_way, loss_percent, codec))
}

/// The packet loss the far end reports on our stream (RFC 3550 §6.4.1 fraction lost), smoothed
/// into the percentage an Opus encoder should plan its in-band FEC for.
///
/// Each report covers one RTCP interval (about 5 s). The estimate is the larger of the latest
/// report and an exponentially weighted average of all of them (gain 1/4): it rises at once when
/// loss appears, because too little FEC costs audible gaps, and falls over several clean
/// reports, because loss comes in bursts and one clean interval between them says little, while
/// FEC spent meanwhile only costs a few kbit/s of the main layer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReportedLoss {
    latest: f64,
    average: Option<f64>,
}

impl ReportedLoss {
    /// No report yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one report's fraction lost (in 1/256) and returns the new estimate in percent.
    pub fn on_report(&mut self, fraction_lost: u8) -> u8 {
        let percent = f64::from(fraction_lost) * 100.0 / 256.0;
        self.latest = percent;
        let average = self.average.map_or(percent, |a| a + (percent - a) / 4.0);
        self.average = Some(average);
        self.percent().unwrap_or_default()
    }

    /// The estimate in percent, `None` before the first report. Loss in the latest report counts
    /// as at least 1 %, since libopus spends nothing on FEC at 0; the average decays to 0.
    pub fn percent(&self) -> Option<u8> {
        let average = self.average?.round().clamp(0.0, 100.0) as u8;
        let latest = self.latest.round().clamp(0.0, 100.0) as u8;
        let latest = if self.latest > 0.0 { latest.max(1) } else { 0 };
        Some(latest.max(average))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn mos_matches_g107_annex_b_and_the_g109_category_bounds() {
        // R = 93.2 (every default) gives 4.41 (G.107 Annex B).
        assert!(close(mos_from_r(93.2), 4.41, 0.005), "{}", mos_from_r(93.2));
        // G.109's R ↔ MOS category bounds (printed to two decimals).
        for (r, expected) in [(90.0, 4.34), (80.0, 4.03), (70.0, 3.60), (60.0, 3.10), (50.0, 2.58)] {
            assert!(close(mos_from_r(r), expected, 0.01), "R {r}: {}", mos_from_r(r));
        }
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(3.0), 1.0, "never below 1");
        assert_eq!(mos_from_r(120.0), 4.5);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
    }

    #[test]
    fn delay_costs_little_below_177_ms_and_much_above() {
        assert_eq!(delay_impairment(Duration::ZERO), 0.0);
        // 0.024 · 150 = 3.6.
        assert!(close(delay_impairment(Duration::from_millis(150)), 3.6, 1e-9));
        // 0.024 · 300 + 0.11 · 122.7 = 7.2 + 13.497.
        assert!(close(delay_impairment(Duration::from_millis(300)), 20.697, 1e-9));
        // G.114's 400 ms limit: Id = 9.6 + 24.5, R = 59.1, at the edge of "nearly all users
        // dissatisfied" (G.109: R 50 to 60) for G.711 without loss.
        let mos_400 = mos(Duration::from_millis(400), 0.0, CodecImpairment::G711_PLC);
        assert!(close(mos_400, 3.05, 0.01), "{mos_400}");
    }

    #[test]
    fn g711_without_loss_and_with_low_delay_scores_about_4_4() {
        let score = mos(Duration::from_millis(40), 0.0, CodecImpairment::G711_PLC);
        // R = 93.2 − 0.96 = 92.24.
        assert!(close(score, 4.39, 0.01), "{score}");
    }

    #[test]
    fn loss_costs_what_g113_appendix_i_says_for_g711() {
        // Ie,eff = 95 · Ppl / (Ppl + Bpl): with PLC (Bpl 25.1) 1 % → 3.64, 2 % → 7.01,
        // 5 % → 15.78; without PLC (Bpl 4.3) 1 % → 17.92.
        for (ppl, expected) in [(1.0, 3.640), (2.0, 7.011), (5.0, 15.781)] {
            let ie_eff = effective_equipment_impairment(CodecImpairment::G711_PLC, ppl);
            assert!(close(ie_eff, expected, 0.001), "{ppl} %: {ie_eff}");
        }
        assert!(close(effective_equipment_impairment(CodecImpairment::G711, 1.0), 17.925, 0.001));
        // R = 93.2 − 15.781 = 77.42 at 5 % and no delay: MOS 3.92.
        let at_5 = mos(Duration::ZERO, 5.0, CodecImpairment::G711_PLC);
        assert!(close(at_5, 3.92, 0.005), "{at_5}");
        // All lost: Ie,eff → 95 · 100/125.1, R ≈ 17.3, MOS 1.18.
        let all_lost = mos(Duration::ZERO, 100.0, CodecImpairment::G711_PLC);
        assert!(close(all_lost, 1.18, 0.005), "{all_lost}");
        // Nonsense loss figures are clamped, not propagated.
        assert_eq!(effective_equipment_impairment(CodecImpairment::OPUS, f64::NAN), 0.0);
        assert!(close(effective_equipment_impairment(CodecImpairment::OPUS, 250.0), 75.94, 0.01));
    }

    #[test]
    fn each_codec_has_its_impairment() {
        assert_eq!(CodecImpairment::for_codec(CodecKind::Pcmu), CodecImpairment::G711_PLC);
        assert_eq!(CodecImpairment::for_codec(CodecKind::Pcma), CodecImpairment::G711_PLC);
        assert_eq!(CodecImpairment::for_codec(CodecKind::Opus), CodecImpairment::OPUS);
    }

    #[test]
    fn reported_loss_rises_at_once_and_falls_slowly() {
        let mut loss = ReportedLoss::new();
        assert_eq!(loss.percent(), None);
        // 13/256 = 5.08 %.
        assert_eq!(loss.on_report(13), 5);
        assert_eq!(loss.on_report(0), 4, "average 3.8 after one clean report");
        assert_eq!(loss.on_report(0), 3);
        assert_eq!(loss.on_report(51), 20, "a burst is followed at once");
        let mut falling = vec![];
        for _ in 0..12 {
            falling.push(loss.on_report(0));
        }
        assert!(falling.windows(2).all(|w| w[1] <= w[0]), "{falling:?}");
        assert_eq!(falling[..9], [5, 4, 3, 2, 2, 1, 1, 1, 1], "a quarter less each clean report");
        assert_eq!(falling.last(), Some(&0), "a long clean run ends FEC");
        assert_eq!(ReportedLoss::new().on_report(1), 1, "0.4 % rounds up to 1 %");
        assert_eq!(ReportedLoss::new().on_report(255), 100);
        assert_eq!(ReportedLoss::new().on_report(0), 0);
    }
}
