//! SDP as real phones send it, written out by hand in their shape, for the tests.

/// Joins lines with CRLF, the way SDP goes on the wire.
macro_rules! sdp {
    ($($line:literal),* $(,)?) => { concat!($($line, "\r\n"),*) };
}

/// baresip 1.0 with `opus.so` loaded before `g711.so`: Opus first, G.711, telephone-event/8000.
pub(crate) const BARESIP: &str = sdp!(
    "v=0",
    "o=- 1193376392 2129394580 IN IP4 10.99.0.1",
    "s=-",
    "c=IN IP4 10.99.0.1",
    "t=0 0",
    "m=audio 10078 RTP/AVP 96 0 8 101",
    "b=AS:113",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 stereo=1;sprop-stereo=1",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=label:1",
    "a=ssrc:1497066548 cname:c2ba2fd2-8d26-4fbd-bb8d-2d3e1e27e4f2",
    "a=rtcp-rsize",
    "a=ptime:20",
);

/// linphone 5: Opus with in-band FEC, Speex, G.711, one telephone-event per clock rate, RTCP
/// feedback and mux, and its session-level `a=record` and `a=rtcp-xr`.
pub(crate) const LINPHONE: &str = sdp!(
    "v=0",
    "o=alice 2345 3456 IN IP4 192.0.2.20",
    "s=Talk",
    "c=IN IP4 192.0.2.20",
    "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "a=record:off",
    "m=audio 7078 RTP/AVP 96 97 98 0 8 101 99 100",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 speex/16000",
    "a=fmtp:97 vbr=on",
    "a=rtpmap:98 speex/8000",
    "a=fmtp:98 vbr=on",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000",
    "a=rtcp:7079",
    "a=rtcp-mux",
    "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:* ccm tmmbr",
);

/// SIPp 3.6's built-in `uac` scenario with `[local_ip_type]`/`[media_ip_type]` rendered as `4`.
pub(crate) const SIPP_UAC: &str = sdp!(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
);

/// SIPp 3.6's `uac_pcap` scenario: PCMA and telephone-event with an event list, not a range.
pub(crate) const SIPP_UAC_PCAP: &str = sdp!(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 8 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-11,16",
);

/// Asterisk 18 (chan_pjsip): G.711 first, G.722, RFC 4733 events, ptime and maxptime.
pub(crate) const ASTERISK: &str = sdp!(
    "v=0",
    "o=- 1680000000 1680000002 IN IP4 192.0.2.10",
    "s=Asterisk",
    "c=IN IP4 192.0.2.10",
    "t=0 0",
    "m=audio 13560 RTP/AVP 0 8 9 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
);

/// Audio beside a disabled T.38 stream, as a fax-capable gateway offers it.
pub(crate) const WITH_T38: &str = sdp!(
    "v=0",
    "o=- 4001 4001 IN IP4 192.0.2.30",
    "s=-",
    "c=IN IP4 192.0.2.30",
    "t=0 0",
    "m=audio 20000 RTP/AVP 8 0 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "m=image 0 udptl t38",
    "a=T38FaxVersion:0",
    "a=T38MaxBitRate:14400",
    "a=T38FaxRateManagement:transferredTCF",
    "a=T38FaxMaxDatagram:400",
    "a=T38FaxUdpEC:t38UDPRedundancy",
);

/// Audio beside an MSRP file transfer (RFC 4975, RFC 5547) pushed to us with `a=sendonly`.
pub(crate) const WITH_MSRP: &str = sdp!(
    "v=0",
    "o=bob 2890844526 2890844527 IN IP4 192.0.2.40",
    "s=-",
    "c=IN IP4 192.0.2.40",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "m=message 2855 TCP/MSRP *",
    "a=accept-types:text/plain",
    "a=path:msrp://192.0.2.40:2855/kjhd37s2s20w2a;tcp",
    "a=sendonly",
    "a=file-selector:name:\"notes.txt\" type:text/plain size:1024",
);

/// SDES-SRTP only (RFC 4568): an `RTP/SAVP` section with two `a=crypto` lines.
pub(crate) const SAVP_ONLY: &str = sdp!(
    "v=0",
    "o=- 3000 3000 IN IP4 192.0.2.50",
    "s=-",
    "c=IN IP4 192.0.2.50",
    "t=0 0",
    "m=audio 30000 RTP/SAVP 96 0 101",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/48000",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
    "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4",
    "a=sendrecv",
);

/// Optional SRTP the way baresip's `mediaenc srtp` offers it: plain `RTP/AVP` carrying
/// `a=crypto`, so a peer without SRTP can still answer in the clear.
pub(crate) const AVP_WITH_CRYPTO: &str = sdp!(
    "v=0",
    "o=- 3100 3100 IN IP4 192.0.2.51",
    "s=-",
    "c=IN IP4 192.0.2.51",
    "t=0 0",
    "m=audio 30100 RTP/AVP 96 0 101",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 stereo=1;sprop-stereo=1",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/48000",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
    "a=sendrecv",
);

/// Best-effort SRTP with two sections, SRTP first and plain RTP as the fallback.
pub(crate) const SAVP_THEN_AVP: &str = sdp!(
    "v=0",
    "o=- 3200 3200 IN IP4 192.0.2.52",
    "s=-",
    "c=IN IP4 192.0.2.52",
    "t=0 0",
    "m=audio 30200 RTP/SAVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
    "m=audio 30202 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
);

/// FreeSWITCH 1.10: Opus with its fmtp parameters separated by `"; "`, G.722, G.711, one
/// telephone-event per clock rate and an explicit `a=rtcp`.
pub(crate) const FREESWITCH: &str = sdp!(
    "v=0",
    "o=FreeSWITCH 1700000000 1700000001 IN IP4 192.0.2.60",
    "s=FreeSWITCH",
    "c=IN IP4 192.0.2.60",
    "t=0 0",
    "m=audio 16384 RTP/AVP 102 9 0 8 100 101",
    "a=rtpmap:102 opus/48000/2",
    "a=fmtp:102 useinbandfec=1; maxplaybackrate=16000; sprop-maxcapturerate=16000; maxaveragebitrate=30000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:100 telephone-event/48000",
    "a=fmtp:100 0-16",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
    "a=rtcp:16385 IN IP4 192.0.2.60",
);

/// The example of RFC 4566 §5: `i=`, `u=`, `e=`, a multicast `c=` with a TTL, a session-level
/// `a=recvonly`, and a video section.
pub(crate) const RFC4566_EXAMPLE: &str = sdp!(
    "v=0",
    "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
    "s=SDP Seminar",
    "i=A Seminar on the session description protocol",
    "u=http://www.example.com/seminars/sdp.pdf",
    "e=j.doe@example.com (Jane Doe)",
    "c=IN IP4 224.2.17.12/127",
    "t=2873397496 2873404696",
    "a=recvonly",
    "m=audio 49170 RTP/AVP 0",
    "m=video 51372 RTP/AVP 99",
    "a=rtpmap:99 h263-1998/90000",
);

/// An older desk phone: static payload types with no rtpmap at all, LF line ends.
pub(crate) const STATIC_ONLY_LF: &str = "v=0\n\
o=- 5 5 IN IP4 192.0.2.70\n\
s=-\n\
c=IN IP4 192.0.2.70\n\
t=0 0\n\
m=audio 3456 RTP/AVP 18 8 0\n\
a=fmtp:18 annexb=no\n";

/// Over IPv6 with the address at media level only, and audio and video (linphone's shape).
pub(crate) const IPV6_MEDIA_LEVEL: &str = sdp!(
    "v=0",
    "o=carol 77 78 IN IP6 2001:db8::20",
    "s=Talk",
    "t=0 0",
    "m=audio 7078 RTP/AVP 96 0 101",
    "c=IN IP6 2001:db8::20",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:101 telephone-event/48000",
    "m=video 9078 RTP/AVP 103",
    "c=IN IP6 2001:db8::20",
    "a=rtpmap:103 VP8/90000",
    "a=rtcp-fb:103 nack pli",
);

/// An RFC 2543 hold re-INVITE: same session, version up, `c=0.0.0.0`.
pub(crate) const HOLD_RFC2543: &str = sdp!(
    "v=0",
    "o=- 1680000000 1680000003 IN IP4 192.0.2.10",
    "s=Asterisk",
    "c=IN IP4 0.0.0.0",
    "t=0 0",
    "m=audio 13560 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
);
