//! RTP packets and RTCP compound packets (RFC 3550 §5.1, §6) on arbitrary datagrams. An RTP packet
//! that parses must write back out without error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::rtp::packet::RtpPacket;
use proto::rtp::rtcp::parse_compound;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = RtpPacket::parse(data) {
        let mut out = Vec::new();
        packet.write_to(&mut out).expect("a parsed packet writes back");
        assert_eq!(RtpPacket::parse(&out).map(|p| p.payload), Ok(packet.payload));
    }
    let _ = parse_compound(data);
});
