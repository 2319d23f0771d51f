use super::*;

fn block(ssrc: u32, cumulative_lost: i32) -> ReportBlock {
    ReportBlock {
        ssrc,
        fraction_lost: 25,
        cumulative_lost,
        extended_highest_seq: 0x0001_0005,
        jitter: 123,
        last_sr: 0x1234_5678,
        delay_since_last_sr: 65_536,
    }
}

fn round_trip(packets: &[RtcpPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    write_compound(packets, &mut out).unwrap();
    assert_eq!(out.len() % 4, 0);
    assert_eq!(parse_compound(&out).unwrap(), packets);
    out
}

#[test]
fn sender_report_with_blocks_round_trips() {
    let sr = RtcpPacket::SenderReport(SenderReport {
        ssrc: 0xdead_beef,
        info: SenderInfo {
            ntp: NtpTime(0xe9a0_0000_8000_0000),
            rtp_timestamp: 960,
            packet_count: 50,
            octet_count: 4000,
        },
        reports: vec![block(1, 3), block(2, -2)],
    });
    let bytes = round_trip(std::slice::from_ref(&sr));
    assert_eq!(bytes.len(), 28 + 2 * 24);
    assert_eq!(&bytes[..4], &[0x82, 200, 0, 18]);
}

#[test]
fn receiver_report_round_trips_and_empty_rr_is_eight_bytes() {
    let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 7, reports: vec![block(9, 0x7f_ffff)] });
    assert_eq!(round_trip(&[rr]).len(), 32);
    let empty = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 7, reports: vec![] });
    assert_eq!(round_trip(&[empty]), [0x80, 201, 0, 1, 0, 0, 0, 7]);
}

#[test]
fn cumulative_lost_is_24_bit_signed_and_clamped() {
    let mut out = Vec::new();
    let rr = |lost| RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![block(2, lost)] });
    rr(-1).write_to(&mut out).unwrap();
    assert_eq!(&out[12..16], &[25, 0xff, 0xff, 0xff]);
    out.clear();
    rr(10_000_000).write_to(&mut out).unwrap();
    assert_eq!(&out[13..16], &[0x7f, 0xff, 0xff], "clamped to the largest positive");
    let RtcpPacket::ReceiverReport(back) = &parse_compound(&out).unwrap()[0] else { panic!("not an RR") };
    assert_eq!(back.reports[0].cumulative_lost, 0x7f_ffff);
    out.clear();
    rr(-10_000_000).write_to(&mut out).unwrap();
    assert_eq!(&out[13..16], &[0x80, 0, 0], "clamped to the most negative");
}

#[test]
fn sdes_items_and_padding_round_trip() {
    let sdes = RtcpPacket::SourceDescription(vec![
        SdesChunk::cname(1, "alice@example.com"),
        SdesChunk {
            ssrc: 2,
            items: vec![
                SdesItem { kind: SdesKind::Cname, text: "b".into() },
                SdesItem { kind: SdesKind::Tool, text: "softphone".into() },
                SdesItem { kind: SdesKind::Other(42), text: String::new() },
            ],
        },
    ]);
    let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![] });
    let bytes = round_trip(&[rr, sdes.clone()]);
    // Chunk 1: SSRC 4 + item 2+17 + null = 24. Chunk 2: 4 + 3 + 11 + 2 + null = 21, padded to 24.
    // Header 4 + 48 = 13 words, length field 12.
    assert_eq!(&bytes[8..12], &[0x82, 202, 0, 12]);
    let RtcpPacket::SourceDescription(chunks) = &sdes else { unreachable!() };
    assert_eq!(chunks[0].cname_text(), Some("alice@example.com"));
}

#[test]
fn sdes_chunk_ending_on_a_word_boundary_still_gets_a_null_word() {
    // SSRC (4) + CNAME item of 2 + 2 = 8 bytes: the terminator needs a whole extra word.
    let mut out = Vec::new();
    RtcpPacket::SourceDescription(vec![SdesChunk::cname(5, "ab")]).write_to(&mut out).unwrap();
    assert_eq!(out, [0x81, 202, 0, 3, 0, 0, 0, 5, 1, 2, b'a', b'b', 0, 0, 0, 0]);
}

#[test]
fn bye_with_and_without_reason_round_trips() {
    let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![] });
    let bye = RtcpPacket::Bye(Bye { sources: vec![1, 2], reason: Some("hang up".into()) });
    let bytes = round_trip(&[rr.clone(), bye]);
    assert_eq!(&bytes[8..12], &[0x82, 203, 0, 4]);
    round_trip(&[rr, RtcpPacket::Bye(Bye { sources: vec![1], reason: None })]);
}

#[test]
fn unknown_types_are_kept() {
    let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![] });
    let app = RtcpPacket::Other { packet_type: 204, count: 3, body: b"\0\0\0\x01nameDATA".to_vec() };
    round_trip(&[rr, app]);
}

/// Captured on loopback from a baresip 1.0 Opus call (each side sends SR + SDES every 5 s).
const BARESIP_SR_SDES: &str = "81c8000c46130ae6eeb15278e2d794a600081041000001f400009e74ed5104ac0000000000003dec0000002f5278e2880000004181ca000746130ae601157369703a61403132372e302e302e313a313530363000";
/// The SR this one's report block answers (its LSR is this SR's middle 32 bits).
const BARESIP_PEER_SR: &str = "81c8000ced5104aceeb15278e288df37000824e9000001f400009e7446130ae60000000000001a8e0000003d5273e2e50004ff7c81ca0007ed5104ac01157369703a62403132372e302e302e313a313530373000";
/// baresip's goodbye: BYE first, then SDES, against RFC 3550 §6.1's "SR or RR first".
const BARESIP_BYE: &str =
    "81cb000346130ae60441646a6f00000081ca000746130ae601157369703a61403132372e302e302e313a313530363000";
/// baresip's keepalive before media flows: a lone APP packet named "PING".
const BARESIP_APP_PING: &str = "80cc0003ed5104ac50494e47504f4e47";

#[test]
fn parses_a_compound_from_a_real_phone() {
    let bytes = hex::decode(BARESIP_SR_SDES).unwrap();
    let packets = parse_compound(&bytes).unwrap();
    let [RtcpPacket::SenderReport(sr), RtcpPacket::SourceDescription(sdes)] = &packets[..] else {
        panic!("expected SR + SDES, got {packets:?}");
    };
    assert_eq!(sr.ssrc, 0x4613_0ae6);
    assert_eq!(
        sr.info,
        SenderInfo {
            ntp: NtpTime(0xeeb1_5278_e2d7_94a6),
            rtp_timestamp: 528_449,
            packet_count: 500,
            octet_count: 40_564
        }
    );
    assert_eq!(
        sr.reports,
        [ReportBlock {
            ssrc: 0xed51_04ac,
            fraction_lost: 0,
            cumulative_lost: 0,
            extended_highest_seq: 15_852,
            jitter: 47,
            last_sr: 0x5278_e288,
            delay_since_last_sr: 65,
        }]
    );
    assert_eq!(sdes[0].ssrc, 0x4613_0ae6);
    assert_eq!(sdes[0].cname_text(), Some("sip:a@127.0.0.1:15060"));
    let mut out = Vec::new();
    write_compound(&packets, &mut out).unwrap();
    assert_eq!(out, bytes, "rewrites byte for byte");

    let peer = parse_compound(&hex::decode(BARESIP_PEER_SR).unwrap()).unwrap();
    let RtcpPacket::SenderReport(peer_sr) = &peer[0] else { panic!("expected SR") };
    assert_eq!(peer_sr.info.ntp.middle32(), sr.reports[0].last_sr, "the block echoes the peer's SR");
}

/// baresip sends BYE before its SDES and a bare APP as keepalive. §A.2's "first packet must be
/// SR or RR" check would drop its goodbye, so it is not applied; version, lengths and padding
/// still are.
#[test]
fn accepts_baresips_bye_first_compound_and_app_ping() {
    let packets = parse_compound(&hex::decode(BARESIP_BYE).unwrap()).unwrap();
    assert_eq!(packets[0], RtcpPacket::Bye(Bye { sources: vec![0x4613_0ae6], reason: Some("Adjo".into()) }));
    let RtcpPacket::SourceDescription(sdes) = &packets[1] else { panic!("expected SDES") };
    assert_eq!(sdes[0].cname_text(), Some("sip:a@127.0.0.1:15060"));
    let ping = parse_compound(&hex::decode(BARESIP_APP_PING).unwrap()).unwrap();
    assert_eq!(ping, [RtcpPacket::Other { packet_type: 204, count: 0, body: b"\xed\x51\x04\xacPINGPONG".to_vec() }]);
}

#[test]
fn rejects_bad_version_lengths_and_padding() {
    let mut out = Vec::new();
    let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![block(2, 0)] });
    let sdes = RtcpPacket::SourceDescription(vec![SdesChunk::cname(1, "x")]);
    write_compound(&[rr, sdes], &mut out).unwrap();

    let mut v1 = out.clone();
    v1[0] = (v1[0] & 0x3f) | 0x40;
    assert_eq!(parse_compound(&v1), Err(RtcpError::Version(1)));

    let mut second_v0 = out.clone();
    second_v0[32] &= 0x3f;
    assert_eq!(parse_compound(&second_v0), Err(RtcpError::Version(0)));

    assert!(matches!(parse_compound(&out[..out.len() - 4]), Err(RtcpError::Truncated { .. })));
    assert!(matches!(parse_compound(&out[..3]), Err(RtcpError::Truncated { .. })));
    assert!(parse_compound(&[]).is_err());

    let mut long = out.clone();
    long[3] += 1; // RR length one word too long: overlaps the SDES
    assert!(parse_compound(&long).is_err());

    let mut count = out.clone();
    count[0] += 1; // two report blocks claimed, one present
    assert_eq!(
        parse_compound(&count),
        Err(RtcpError::Malformed { packet_type: PT_RR, what: "fewer report blocks than its count" })
    );

    let mut first_padded = out.clone();
    first_padded[0] |= 0x20;
    assert_eq!(parse_compound(&first_padded), Err(RtcpError::Padding));
}

#[test]
fn padding_on_the_last_packet_is_removed() {
    // RR, then BYE padded by one word whose last octet counts 4.
    let bytes = [0x80, 201, 0, 1, 0, 0, 0, 1, 0xa1, 203, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4];
    let packets = parse_compound(&bytes).unwrap();
    assert_eq!(packets[1], RtcpPacket::Bye(Bye { sources: vec![1], reason: None }));
    let mut bad = bytes;
    bad[19] = 9;
    assert_eq!(parse_compound(&bad), Err(RtcpError::Padding));
}

#[test]
fn writing_rejects_too_many_blocks_and_long_text() {
    let mut out = vec![1, 2, 3];
    let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![block(2, 0); 32] });
    assert_eq!(write_compound(&[rr], &mut out), Err(RtcpError::TooMany(32)));
    let long = RtcpPacket::SourceDescription(vec![SdesChunk::cname(1, &"x".repeat(256))]);
    assert_eq!(long.write_to(&mut out), Err(RtcpError::TextTooLong(256)));
    assert_eq!(out, [1, 2, 3], "buffer untouched on error");
}

#[test]
fn random_bytes_never_panic() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let mut rng = StdRng::seed_from_u64(5);
    let mut valid = Vec::new();
    write_compound(
        &[
            RtcpPacket::SenderReport(SenderReport { ssrc: 1, info: SenderInfo::default(), reports: vec![block(2, 1)] }),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(1, "someone@somewhere")]),
            RtcpPacket::Bye(Bye { sources: vec![1], reason: Some("bye".into()) }),
        ],
        &mut valid,
    )
    .unwrap();
    let mut accepted = 0;
    for round in 0..30_000 {
        let mut bytes =
            if round % 2 == 0 { valid.clone() } else { (0..rng.random_range(0..120)).map(|_| rng.random()).collect() };
        for _ in 0..rng.random_range(0..4) {
            if !bytes.is_empty() {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
        }
        if let Ok(packets) = parse_compound(&bytes) {
            accepted += 1;
            let mut again = Vec::new();
            if write_compound(&packets, &mut again).is_ok() {
                assert_eq!(parse_compound(&again).unwrap(), packets);
            }
        }
    }
    assert!(accepted > 100, "mutations of a valid packet are often still valid");
}
