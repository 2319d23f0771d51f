//! RTP media transport (RFC 3550), sans-IO: packets, RTCP, statistics and a jitter buffer.
//!
//! This module owns everything between a UDP datagram of media and a frame for the decoder:
//!
//! - [`packet`]: RTP packets (RFC 3550 §5.1), read and written through `rtp-rs`, and the
//!   RTP/RTCP demultiplexing test of RFC 5761 §4. [`seq`]: wrapping sequence arithmetic and
//!   the 32-bit extended sequence number.
//! - [`rtcp`]: SR, RR, SDES and BYE compound packets (§6.4–§6.6), parsed defensively and
//!   written; [`ntp`]: the NTP timestamps they carry.
//! - [`stats`]: per-source reception statistics exactly per Appendix A.1, A.3 and A.8;
//!   [`rtt`]: round-trip time from LSR/DLSR (§6.4.1).
//! - [`sender`]: the sending side: random SSRC, sequence and timestamp, timestamps at the
//!   codec's clock rate, the talk-spurt marker, the counts an SR reports.
//! - [`schedule`]: when RTCP is due and whether it is an SR or an RR (§6.2, §6.3); BYE on stop.
//! - [`latch`]: symmetric RTP (RFC 4961): answer where the far end's media comes from.
//! - [`jitter`]: an adaptive jitter buffer with loss, FEC-from-next, reordering, late and
//!   duplicate handling, restart resynchronisation and clock-drift compensation.
//! - [`session`]: the above joined for one two-party call: datagrams in, RTP and RTCP out.
//! - [`srtp`]: SRTP and SRTCP (RFC 3711) with the SDES suites `AES_CM_128_HMAC_SHA1_80` and
//!   `_32`: protect what we send, authenticate and decrypt what we receive.
//! - [`quality`]: the E-model's R and MOS (ITU-T G.107) from those figures, and the far end's
//!   reported loss smoothed for the Opus encoder's FEC.
//!
//! Nothing here reads a clock or a random source: the caller passes `Instant`s, wall-clock
//! `SystemTime`s or NTP values, and an `RngCore`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use proto::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
//! use proto::rtp::packet::RtpPacket;
//! use proto::rtp::sender::{OPUS_CLOCK_RATE, RtpSender};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(1);
//! let start = Instant::now();
//! let mut sender = RtpSender::new(111, OPUS_CLOCK_RATE, &mut rng);
//! let mut buffer = JitterBuffer::new(JitterConfig::default());
//! let mut datagram = Vec::new();
//! for i in 0..3u32 {
//!     let now = start + Duration::from_millis(20 * u64::from(i));
//!     datagram.clear();
//!     sender.next_packet(&i.to_be_bytes(), 960, now).write_to(&mut datagram)?;
//!     let packet = RtpPacket::parse(&datagram)?;
//!     buffer.push(packet.header.sequence, packet.header.timestamp, packet.payload, now);
//! }
//! assert_eq!(buffer.pop(start + Duration::from_millis(40)), Playout::Frame(&0u32.to_be_bytes()));
//! # Ok::<(), proto::rtp::packet::RtpError>(())
//! ```

pub mod jitter;
pub mod latch;
pub mod ntp;
pub mod packet;
pub mod quality;
pub mod rtcp;
pub mod rtt;
pub mod schedule;
pub mod sender;
pub mod seq;
pub mod session;
pub mod srtp;
pub mod stats;
