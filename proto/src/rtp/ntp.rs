//! NTP timestamps as RTCP carries them (RFC 3550 §4, §6.4.1).
//!
//! A sender report holds a full 64-bit NTP timestamp (seconds since 1900 and a binary fraction);
//! LSR is its middle 32 bits and DLSR a duration in units of 1/65536 s. The caller passes the
//! wall clock in; nothing here reads it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp: seconds since 1900 in the high half, fraction in the low half.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The NTP timestamp of a wall-clock time. Seconds wrap modulo 2³² (the 2036 era rollover),
    /// as on the wire; times before 1900 read as 1900.
    pub fn from_system_time(time: SystemTime) -> Self {
        let nanos_since_1900: u128 = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => u128::from(NTP_UNIX_OFFSET) * 1_000_000_000 + after.as_nanos(),
            Err(before) => (u128::from(NTP_UNIX_OFFSET) * 1_000_000_000).saturating_sub(before.duration().as_nanos()),
        };
        let secs = (nanos_since_1900 / 1_000_000_000) as u64 & 0xffff_ffff;
        let frac = ((nanos_since_1900 % 1_000_000_000) << 32) / 1_000_000_000;
        NtpTime((secs << 32) | frac as u64)
    }

    /// The wall-clock time of this timestamp. Following RFC 4330 §3, seconds with the top bit
    /// clear are read in era 1 (2036–2104), the rest in era 0 (1968–2036).
    pub fn to_system_time(self) -> SystemTime {
        let secs = self.0 >> 32;
        let era_secs = if secs & 0x8000_0000 == 0 { secs + (1 << 32) } else { secs };
        let frac_nanos = ((self.0 & 0xffff_ffff) * 1_000_000_000) >> 32;
        UNIX_EPOCH + Duration::new(era_secs - NTP_UNIX_OFFSET, frac_nanos as u32)
    }

    /// The middle 32 bits, as echoed in a report block's LSR field.
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// A duration in the 16.16 fixed-point seconds of the DLSR field, saturating at about 18 hours.
pub fn to_ntp_short(duration: Duration) -> u32 {
    let units = (duration.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// The duration of a 16.16 fixed-point value (DLSR, or a difference of middle-32 timestamps).
pub fn from_ntp_short(units: u32) -> Duration {
    Duration::from_nanos((u64::from(units) * 1_000_000_000) >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_is_ntp_2208988800() {
        assert_eq!(NtpTime::from_system_time(UNIX_EPOCH), NtpTime(NTP_UNIX_OFFSET << 32));
    }

    #[test]
    fn half_second_is_half_the_fraction() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(NtpTime::from_system_time(t).0, ((NTP_UNIX_OFFSET + 1) << 32) | 0x8000_0000);
    }

    #[test]
    fn round_trips_within_a_nanosecond_in_both_eras() {
        for unix_secs in [1_790_000_000u64, 2_085_978_495, 2_085_978_497, 3_000_000_000] {
            let t = UNIX_EPOCH + Duration::new(unix_secs, 123_456_789);
            let back = NtpTime::from_system_time(t).to_system_time();
            let error = back.duration_since(t).unwrap_or_else(|e| e.duration());
            assert!(error <= Duration::from_nanos(1), "{unix_secs}: off by {error:?}");
        }
    }

    #[test]
    fn middle32_takes_low_seconds_and_high_fraction() {
        assert_eq!(NtpTime(0x1234_5678_9abc_def0).middle32(), 0x5678_9abc);
    }

    #[test]
    fn ntp_short_durations() {
        assert_eq!(to_ntp_short(Duration::from_secs(1)), 65_536);
        assert_eq!(to_ntp_short(Duration::from_millis(250)), 16_384);
        assert_eq!(from_ntp_short(98_304), Duration::from_millis(1_500));
        assert_eq!(to_ntp_short(Duration::from_secs(1 << 20)), u32::MAX);
    }
}
