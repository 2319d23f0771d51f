//! Offer/answer against SDP in the shape real phones send, round trips, and hostile input.

use std::net::{IpAddr, SocketAddr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fixtures::*;
use super::*;
use crate::rtp::srtp::SrtpProfile;

const ALL_FIXTURES: &[&str] = &[
    BARESIP,
    LINPHONE,
    SIPP_UAC,
    SIPP_UAC_PCAP,
    ASTERISK,
    FREESWITCH,
    WITH_T38,
    WITH_MSRP,
    SAVP_ONLY,
    AVP_WITH_CRYPTO,
    SAVP_THEN_AVP,
    RFC4566_EXAMPLE,
    STATIC_ONLY_LF,
    IPV6_MEDIA_LEVEL,
    HOLD_RFC2543,
];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn local() -> LocalMedia {
    LocalMedia::new(ip("192.0.2.100"), 40000)
}

/// Answers `offer_text` with `local`, and checks what every answer must be: one `m=` line per
/// offered one with the same media and protocol, text that reads back to the same answer, and an
/// outcome the offerer reaches too.
fn answer_with(offer_text: &str, local: &LocalMedia) -> (SessionDescription, Negotiated) {
    let offer = parse(offer_text).expect("offer parses");
    let (answer, negotiated) = create_answer(&offer, local, 1000, 1).expect("offer is answerable");
    assert_eq!(answer.media.len(), offer.media.len(), "one m= line per offered one");
    for (answered, offered) in answer.media.iter().zip(&offer.media) {
        assert_eq!((&answered.kind, &answered.protocol), (&offered.kind, &offered.protocol));
    }
    let text = answer.to_string();
    assert_eq!(parse(&text).expect("answer re-parses"), answer, "{text}");

    let theirs = apply_answer(&offer, &answer).expect("the offerer accepts our answer");
    assert_eq!(theirs.payload_type, negotiated.payload_type);
    assert!(theirs.codec.same_format(&negotiated.codec));
    assert_eq!(theirs.telephone_event, negotiated.telephone_event);
    assert_eq!(theirs.media_index, negotiated.media_index);
    assert_eq!(theirs.remote_rtp, SocketAddr::new(local.address, local.rtp_port));
    (answer, negotiated)
}

fn answer(offer_text: &str) -> (SessionDescription, Negotiated) {
    answer_with(offer_text, &local())
}

fn ports(sdp: &SessionDescription) -> Vec<u16> {
    sdp.media.iter().map(|m| m.port).collect()
}

#[test]
fn baresip_offer_gets_opus_with_its_8khz_telephone_event() {
    let (answer, n) = answer(BARESIP);
    assert_eq!(ports(&answer), [40000]);
    assert_eq!(answer.media[0].formats, ["96", "101"]);
    assert_eq!((n.payload_type, n.codec.name.as_str(), n.codec.clock_rate, n.codec.channels), (96, "opus", 48000, 2));
    assert_eq!(n.telephone_event, Some(TelephoneEvent { payload_type: 101, clock_rate: 8000 }));
    assert_eq!((n.ptime, n.direction), (20, Direction::SendRecv));
    assert_eq!((n.remote_rtp, n.remote_rtcp), (addr("10.99.0.1:10078"), addr("10.99.0.1:10079")));
    assert!(!n.remote_fec);
    assert_eq!(n.codec.fmtp.get("sprop-stereo"), Some("1"));
    let text = answer.to_string();
    for line in
        ["a=rtpmap:96 opus/48000/2\r\n", "a=fmtp:96 useinbandfec=1\r\n", "a=fmtp:101 0-15\r\n", "a=sendrecv\r\n"]
    {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}

#[test]
fn linphone_offer_gets_opus_with_the_48khz_telephone_event_and_its_rtcp_port() {
    let (answer, n) = answer(LINPHONE);
    assert_eq!(answer.media[0].formats, ["96", "101"]);
    assert_eq!(n.codec.name, "opus");
    assert_eq!(n.telephone_event, Some(TelephoneEvent { payload_type: 101, clock_rate: 48000 }));
    assert!(n.remote_fec);
    assert!(!n.rtcp_mux, "we did not say we can mux");
    assert!(!answer.media[0].rtcp_mux);
    assert_eq!(n.remote_rtcp, addr("192.0.2.20:7079"));
    assert!(answer.attributes.is_empty(), "its session attributes are not echoed");
}

#[test]
fn linphone_rtcp_mux_is_taken_when_we_can_mux() {
    let (answer, n) = answer_with(LINPHONE, &LocalMedia { rtcp_mux: true, ..local() });
    assert!(n.rtcp_mux);
    assert_eq!(n.remote_rtcp, n.remote_rtp);
    assert!(answer.to_string().contains("a=rtcp-mux\r\n"));
}

#[test]
fn sipp_uac_offer_gets_pcmu_and_no_telephone_event() {
    let (answer, n) = answer(SIPP_UAC);
    assert_eq!(answer.media[0].formats, ["0"]);
    assert_eq!((n.payload_type, n.codec.name.as_str()), (0, "PCMU"));
    assert_eq!(n.telephone_event, None);
    assert_eq!(n.remote_rtp, addr("127.0.0.1:6000"));
    assert!(answer.to_string().contains("m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"));
}

#[test]
fn sipp_uac_pcap_offer_gets_pcma_and_its_event_list_echoed() {
    let (answer, n) = answer(SIPP_UAC_PCAP);
    assert_eq!(answer.media[0].formats, ["8", "101"]);
    assert_eq!(n.codec.name, "PCMA");
    assert!(answer.to_string().contains("a=fmtp:101 0-11,16\r\n"));
}

#[test]
fn asterisk_offer_gets_pcmu_at_its_ptime() {
    let (answer, n) = answer(ASTERISK);
    assert_eq!(answer.media[0].formats, ["0", "101"]);
    assert_eq!((n.codec.name.as_str(), n.ptime, n.direction), ("PCMU", 20, Direction::SendRecv));
    assert_eq!(answer.media[0].ptime, Some(20));
}

#[test]
fn answer_takes_the_first_offered_codec_we_support_not_our_favourite() {
    let pcma_first = LocalMedia { codecs: vec![Codec::pcma(), Codec::pcmu()], ..local() };
    let (_, n) = answer_with(ASTERISK, &pcma_first);
    assert_eq!(n.codec.name, "PCMU", "Asterisk listed PCMU first (RFC 3264 §6.1)");
}

#[test]
fn offered_ptime_is_honoured_and_capped_by_maxptime() {
    let offer = ASTERISK.replace("a=ptime:20", "a=ptime:30");
    let (answer, n) = answer(&offer);
    assert_eq!((n.ptime, answer.media[0].ptime), (30, Some(30)));

    let offer = SIPP_UAC.replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=maxptime:10\r\n");
    assert_eq!(answer_with(&offer, &local()).1.ptime, 10);
}

#[test]
fn freeswitch_offer_gets_opus_limits_and_its_rtcp_address() {
    let (answer, n) = answer(FREESWITCH);
    assert_eq!(answer.media[0].formats, ["102", "100"]);
    assert_eq!(n.telephone_event, Some(TelephoneEvent { payload_type: 100, clock_rate: 48000 }));
    assert!(n.remote_fec);
    assert_eq!(n.remote_maxplaybackrate, Some(16000));
    assert_eq!(n.remote_rtcp, addr("192.0.2.60:16385"));
}

#[test]
fn t38_section_is_answered_with_port_zero_in_its_place() {
    let (answer, n) = answer(WITH_T38);
    assert_eq!(ports(&answer), [40000, 0]);
    assert_eq!(n.codec.name, "PCMA");
    assert!(answer.to_string().ends_with("m=image 0 udptl t38\r\n"));
}

#[test]
fn msrp_section_is_answered_with_port_zero_and_its_star_format() {
    let (answer, n) = answer(WITH_MSRP);
    assert_eq!(ports(&answer), [40000, 0]);
    assert_eq!(n.direction, Direction::SendRecv, "the MSRP section's sendonly is its own");
    assert!(answer.to_string().ends_with("m=message 0 TCP/MSRP *\r\n"));
}

#[test]
fn srtp_only_offer_cannot_be_answered() {
    let offer = parse(SAVP_ONLY).unwrap();
    assert_eq!(create_answer(&offer, &local(), 1, 1).unwrap_err(), SdpError::NoUsableAudio);
}

#[test]
fn optional_srtp_in_plain_rtp_is_answered_in_the_clear() {
    let (answer, n) = answer(AVP_WITH_CRYPTO);
    assert_eq!(n.codec.name, "opus");
    assert!(answer.media[0].crypto.is_empty());
    assert!(!answer.to_string().contains("a=crypto"));
}

#[test]
fn srtp_section_is_rejected_and_the_plain_rtp_one_taken() {
    let (answer, n) = answer(SAVP_THEN_AVP);
    assert_eq!(ports(&answer), [0, 40000]);
    assert_eq!(n.media_index, 1);
    assert_eq!(n.remote_rtp, addr("192.0.2.52:30202"));
    assert!(answer.to_string().contains("m=audio 0 RTP/SAVP 0 101\r\n"));
}

#[test]
fn session_level_recvonly_is_answered_sendonly_and_video_rejected() {
    let (answer, n) = answer(RFC4566_EXAMPLE);
    assert_eq!(ports(&answer), [40000, 0]);
    assert_eq!(n.direction, Direction::SendOnly);
    assert_eq!(n.remote_rtp, addr("224.2.17.12:49170"));
    assert!(answer.to_string().contains("m=video 0 RTP/AVP 99\r\n"));
}

#[test]
fn static_payload_types_without_rtpmap_are_understood() {
    let (answer, n) = answer(STATIC_ONLY_LF);
    assert_eq!((n.payload_type, n.codec.name.as_str()), (8, "PCMA"), "G.729 (18) is not ours");
    assert!(answer.to_string().contains("m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"));
}

#[test]
fn ipv6_media_level_connection_is_used() {
    let v6 = LocalMedia::new(ip("2001:db8::100"), 40000);
    let (answer, n) = answer_with(IPV6_MEDIA_LEVEL, &v6);
    assert_eq!(n.remote_rtp, addr("[2001:db8::20]:7078"));
    assert_eq!(n.remote_rtcp, addr("[2001:db8::20]:7079"));
    assert_eq!(ports(&answer), [40000, 0]);
    assert!(answer.to_string().contains("c=IN IP6 2001:db8::100\r\n"));
}

#[test]
fn media_level_connection_overrides_session_level() {
    let offer = SIPP_UAC.replace("m=audio 6000 RTP/AVP 0\r\n", "m=audio 6000 RTP/AVP 0\r\nc=IN IP4 198.51.100.7\r\n");
    assert_eq!(answer(&offer).1.remote_rtp, addr("198.51.100.7:6000"));
}

#[test]
fn rfc2543_hold_is_answered_without_sending() {
    let (answer, n) = answer(HOLD_RFC2543);
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(!n.direction.sends());
    assert_eq!(n.remote_rtp, addr("0.0.0.0:13560"));
    assert_eq!(answer.media[0].direction, Some(Direction::RecvOnly));
}

#[test]
fn inactive_offer_is_answered_inactive() {
    let offer = SIPP_UAC.replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=inactive\r\n");
    assert_eq!(answer(&offer).1.direction, Direction::Inactive);
}

#[test]
fn no_common_codec_is_an_error_for_a_488() {
    let offer = parse(&SIPP_UAC.replace("RTP/AVP 0", "RTP/AVP 18").replace("0 PCMU", "18 G729")).unwrap();
    assert_eq!(create_answer(&offer, &local(), 1, 1).unwrap_err(), SdpError::NoCommonCodec);

    let video = IPV6_MEDIA_LEVEL.replace("m=audio 7078", "m=audio 0");
    let offer = parse(&video).unwrap();
    assert_eq!(create_answer(&offer, &local(), 1, 1).unwrap_err(), SdpError::NoUsableAudio);
}

#[test]
fn a_second_audio_stream_is_rejected_and_a_disabled_one_skipped() {
    let two = format!(
        "{}m=audio 6002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n",
        SIPP_UAC.replace("m=audio 6000", "m=audio 0 RTP/AVP 0\r\nm=audio 6000")
    );
    let (answer, n) = answer(&two);
    assert_eq!(ports(&answer), [0, 40000, 0]);
    assert_eq!(n.media_index, 1);
}

#[test]
fn missing_connection_is_an_error() {
    let offer = parse(&SIPP_UAC.replace("c=IN IP4 127.0.0.1\r\n", "")).unwrap();
    assert_eq!(create_answer(&offer, &local(), 1, 1).unwrap_err(), SdpError::MissingConnection { media: 0 });
}

#[test]
fn our_offer_is_opus_g711_and_one_telephone_event_per_clock_rate() {
    let offer = create_offer(&local(), 42, 1);
    assert_eq!(
        offer.to_string(),
        "v=0\r\n\
         o=- 42 1 IN IP4 192.0.2.100\r\n\
         s=-\r\n\
         c=IN IP4 192.0.2.100\r\n\
         t=0 0\r\n\
         m=audio 40000 RTP/AVP 96 0 8 97 98\r\n\
         a=rtpmap:96 opus/48000/2\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:97 telephone-event/48000\r\n\
         a=rtpmap:98 telephone-event/8000\r\n\
         a=fmtp:96 useinbandfec=1\r\n\
         a=fmtp:97 0-16\r\n\
         a=fmtp:98 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn our_offers_round_trip_through_text() {
    let opus_limits = Codec::opus().with_fmtp("maxplaybackrate", Some("16000")).with_fmtp("stereo", Some("0"));
    let cases = [
        local(),
        LocalMedia { rtcp_mux: true, telephone_event: false, ptime: 0, ..local() },
        LocalMedia { codecs: vec![opus_limits, Codec::new("G722", 8000, 1)], ..LocalMedia::new(ip("::1"), 5004) },
        LocalMedia { direction: Direction::SendOnly, ..local() },
    ];
    for local in cases {
        let offer = create_offer(&local, 7, 3);
        assert_eq!(parse(&offer.to_string()).unwrap(), offer, "{offer}");
    }
}

#[test]
fn every_fixture_round_trips_through_our_writer() {
    for text in ALL_FIXTURES {
        let first = parse(text).unwrap();
        let written = first.to_string();
        assert!(written.ends_with("\r\n") && !written.replace("\r\n", "").contains('\n'));
        assert_eq!(parse(&written).unwrap(), first, "{written}");
    }
}

#[test]
fn our_offer_answered_by_a_peer_preferring_g711_gives_pcmu() {
    let offer = create_offer(&local(), 42, 1);
    let peer = LocalMedia { codecs: vec![Codec::pcmu()], ..LocalMedia::new(ip("192.0.2.200"), 50000) };
    let (answer, theirs) = create_answer(&offer, &peer, 9, 1).unwrap();
    assert_eq!(theirs.telephone_event, Some(TelephoneEvent { payload_type: 98, clock_rate: 8000 }));
    let ours = apply_answer(&offer, &answer).unwrap();
    assert_eq!((ours.payload_type, ours.codec.name.as_str()), (0, "PCMU"));
    assert_eq!(ours.telephone_event, Some(TelephoneEvent { payload_type: 98, clock_rate: 8000 }));
    assert_eq!((ours.remote_rtp, ours.remote_rtcp), (addr("192.0.2.200:50000"), addr("192.0.2.200:50001")));
}

#[test]
fn apply_answer_sends_with_the_answers_payload_type_and_ptime() {
    let offer = create_offer(&local(), 42, 1);
    let answer = parse(concat!(
        "v=0\r\no=- 9 1 IN IP4 192.0.2.200\r\ns=-\r\nc=IN IP4 192.0.2.200\r\nt=0 0\r\n",
        "m=audio 50000 RTP/AVP 111\r\n",
        "a=rtpmap:111 OPUS/48000/2\r\n",
        "a=fmtp:111 useinbandfec=1;maxplaybackrate=24000\r\n",
        "a=ptime:40\r\n",
        "a=recvonly\r\n",
    ))
    .unwrap();
    let n = apply_answer(&offer, &answer).unwrap();
    assert_eq!((n.payload_type, n.ptime, n.direction), (111, 40, Direction::SendOnly));
    assert_eq!((n.remote_fec, n.remote_maxplaybackrate), (true, Some(24000)));
    assert_eq!(n.telephone_event, None);
}

#[test]
fn apply_answer_refuses_answers_that_do_not_fit_the_offer() {
    let offer = create_offer(&local(), 42, 1);
    let (answer, _) = create_answer(&offer, &LocalMedia::new(ip("192.0.2.200"), 50000), 9, 1).unwrap();

    let mut fewer = answer.clone();
    fewer.media.clear();
    assert_eq!(apply_answer(&offer, &fewer).unwrap_err(), SdpError::AnswerMismatch { offered: 1, answered: 0 });

    let mut rejected = answer.clone();
    rejected.media[0].port = 0;
    assert_eq!(apply_answer(&offer, &rejected).unwrap_err(), SdpError::AudioRejected);

    let foreign = parse(&SIPP_UAC.replace("RTP/AVP 0", "RTP/AVP 18").replace("0 PCMU", "18 G729")).unwrap();
    assert_eq!(apply_answer(&offer, &foreign).unwrap_err(), SdpError::NoCommonCodec);
}

#[test]
fn hold_and_resume_reoffers_bump_the_version_and_flip_the_direction() {
    let peer = LocalMedia::new(ip("192.0.2.200"), 50000);
    let offer = create_offer(&local(), 42, 1);

    let hold = create_reoffer(&offer, &LocalMedia { direction: Direction::SendOnly, ..local() });
    assert_eq!((hold.origin.session_id, hold.origin.session_version), (42, 2));
    assert!(hold.to_string().contains("a=sendonly\r\n"));
    let (answer, theirs) = create_answer(&hold, &peer, 9, 2).unwrap();
    assert_eq!(theirs.direction, Direction::RecvOnly);
    assert_eq!(apply_answer(&hold, &answer).unwrap().direction, Direction::SendOnly);

    let resume = create_reoffer(&hold, &local());
    assert_eq!(resume.origin.session_version, 3);
    assert!(resume.to_string().contains("a=sendrecv\r\n"));
    assert_eq!(create_answer(&resume, &peer, 9, 3).unwrap().1.direction, Direction::SendRecv);
}

#[test]
fn reoffer_after_answering_keeps_every_m_line() {
    let (our_answer, _) = answer(WITH_T38);
    let hold = create_reoffer(&our_answer, &LocalMedia { direction: Direction::SendOnly, ..local() });
    assert_eq!(ports(&hold), [40000, 0]);
    assert_eq!(hold.media[1].protocol, "udptl");
    assert_eq!((hold.origin.session_id, hold.origin.session_version), (1000, 2));
    assert_eq!(hold.media[0].direction, Some(Direction::SendOnly));
}

#[test]
fn malformed_descriptions_are_errors() {
    let header = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
    let syntax = [
        "v=1\r\n".to_owned(),
        "v=0\r\nhello\r\n".to_owned(),
        "v=0\r\nxy=1\r\n".to_owned(),
        "v=0\r\no=- 1 1 IN IP4\r\n".to_owned(),
        "v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n".to_owned(),
        format!("{header}x=1\r\n"),
        format!("{header}c=IN IP4 192.0.2.2\r\n"),
        format!("{header}m=audio 70000 RTP/AVP 0\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 200\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 300\r\n"),
        format!("{header}m=audio 5000 RTP/AVP pcmu\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\na=fmtp:0 x=1\rc=IN IP4 192.0.2.9\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\na=label:\u{0}\r\n"),
        format!("{header}m=audio 5000\r\n"),
        format!("{header}m=image five udptl t38\r\n"),
        format!("{header}m=image 5000 udptl\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\nc=IN IP4 999.1.1.1\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\nc=IN IP4 media.example.com\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 96\r\na=rtpmap:300 opus/48000\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\na=ptime:soon\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\na=rtcp:99999\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\na=sendonly:yes\r\n"),
        format!("{header}m=audio 5000 RTP/AVP 0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"),
    ];
    for text in &syntax {
        assert!(matches!(parse(text), Err(SdpError::Syntax { .. })), "{text:?} gave {:?}", parse(text));
    }
    let structure =
        ["", "\r\n\r\n", "o=- 1 1 IN IP4 192.0.2.1\r\n", "v=0\r\ns=-\r\n", "v=0\r\nm=audio 1 RTP/AVP 0\r\n"];
    for text in structure {
        assert!(matches!(parse(text), Err(SdpError::Structure(_))), "{text:?} gave {:?}", parse(text));
    }
}

#[test]
fn syntax_errors_name_the_line_without_control_characters() {
    let err = parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nq=\u{7}bell\r\n").unwrap_err();
    assert_eq!(err.to_string().lines().count(), 1);
    let SdpError::Syntax { line, text, .. } = err else { panic!("{err:?}") };
    assert_eq!((line, text.as_str()), (3, "q=bell"));
}

#[test]
fn every_truncation_of_every_fixture_parses_or_errors_without_panicking() {
    let mut errors = 0;
    for text in ALL_FIXTURES {
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            match parse(&text[..end]) {
                Ok(sdp) => exercise(&sdp),
                Err(_) => errors += 1,
            }
        }
    }
    assert!(errors > 0);
}

#[test]
fn seeded_random_corruption_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5d9);
    let noise = [" ", "=", ":", "/", "\r\n", "\n", "0", "99999", "-", "a=", "m=", "é", "\u{0}", "IN IP6 ::", "*"];
    for round in 0..4000 {
        let base = ALL_FIXTURES[round % ALL_FIXTURES.len()];
        let mut text = base.to_owned();
        for _ in 0..rng.random_range(1..4) {
            let mut at = rng.random_range(0..=text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let cut = rng.random_range(0..3).min(text.len() - at);
            let mut end = at + cut;
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(at..end, noise[rng.random_range(0..noise.len())]);
        }
        if let Ok(sdp) = parse(&text) {
            exercise(&sdp);
        }
    }
}

/// Everything a parsed description goes through afterwards: none of it may panic.
fn exercise(sdp: &SessionDescription) {
    let written = sdp.to_string();
    let _ = parse(&written);
    if let Ok((answer, _)) = create_answer(sdp, &local(), 1, 1) {
        let _ = apply_answer(sdp, &answer);
    }
    let _ = create_reoffer(sdp, &local());
    let _ = apply_answer(&create_offer(&local(), 1, 1), sdp);
}

/// Our side with SDES keys from a seeded source.
fn secure_local(require: bool) -> LocalMedia {
    LocalMedia { crypto: CryptoAttribute::offer_set(&mut StdRng::seed_from_u64(77)), require_srtp: require, ..local() }
}

fn crypto_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("a=crypto:")).collect()
}

#[test]
fn srtp_offer_is_answered_with_its_first_usable_line_its_tag_and_our_own_key() {
    let local = secure_local(true);
    let (answer, n) = answer_with(SAVP_ONLY, &local);
    assert_eq!(answer.media[0].protocol, "RTP/SAVP");
    let ours = CryptoAttribute::parse(&answer.media[0].crypto[0]).unwrap();
    assert_eq!(answer.media[0].crypto.len(), 1, "one line in the answer");
    assert_eq!((ours.tag, ours.suite), (1, SrtpProfile::AesCm128HmacSha1_80));
    assert_eq!(ours.key, local.crypto[0].key, "our own key, not the offerer's");
    let offered = CryptoAttribute::parse(&parse(SAVP_ONLY).unwrap().media[0].crypto[0]).unwrap();
    let keys = n.srtp.expect("an SRTP stream");
    assert_eq!((keys.send, keys.receive, keys.receive_mki), (ours.key.clone(), offered.key.clone(), offered.mki));

    // The offerer comes to the mirror image.
    let theirs = apply_answer(&parse(SAVP_ONLY).unwrap(), &answer).unwrap().srtp.unwrap();
    assert_eq!(
        (theirs.send, theirs.receive, theirs.profile),
        (offered.key, ours.key, SrtpProfile::AesCm128HmacSha1_80)
    );
}

#[test]
fn unknown_suites_are_skipped_for_one_we_support() {
    let offer = SAVP_ONLY.replace(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
        "a=crypto:1 AEAD_AES_256_GCM inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzWVNfX19zZW1jdGwgKCkgewkyMjA7fQp9",
    );
    let (answer, n) = answer_with(&offer, &secure_local(true));
    assert_eq!(crypto_lines(&answer.to_string()).len(), 1);
    assert!(answer.media[0].crypto[0].starts_with("2 AES_CM_128_HMAC_SHA1_32 inline:"));
    assert_eq!(n.srtp.unwrap().profile, SrtpProfile::AesCm128HmacSha1_32);

    let none_usable = offer.replace("a=crypto:2 AES_CM_128_HMAC_SHA1_32", "a=crypto:2 F8_128_HMAC_SHA1_80");
    let offer = parse(&none_usable).unwrap();
    assert_eq!(create_answer(&offer, &secure_local(false), 1, 1).unwrap_err(), SdpError::NoCryptoSuite);
}

#[test]
fn plain_rtp_offer_is_refused_when_srtp_is_required_and_answered_plain_when_not() {
    let offer = parse(SIPP_UAC).unwrap();
    assert_eq!(create_answer(&offer, &secure_local(true), 1, 1).unwrap_err(), SdpError::SrtpRequired);
    let (answer, n) = answer_with(SIPP_UAC, &secure_local(false));
    assert_eq!(answer.media[0].protocol, "RTP/AVP");
    assert!(crypto_lines(&answer.to_string()).is_empty(), "no key goes out on a plain stream");
    assert_eq!(n.srtp, None);
}

#[test]
fn best_effort_offer_gets_its_srtp_section_taken_when_we_have_keys() {
    let (answer, n) = answer_with(SAVP_THEN_AVP, &secure_local(false));
    assert_eq!(ports(&answer), [40000, 0]);
    assert_eq!(n.media_index, 0);
    assert!(n.srtp.is_some());
}

#[test]
fn our_srtp_offer_lists_a_line_per_suite_and_checks_the_answers_line() {
    let local = secure_local(true);
    let offer = create_offer(&local, 1, 1);
    let text = offer.to_string();
    assert!(text.contains("m=audio 40000 RTP/SAVP "), "{text}");
    assert_eq!(
        crypto_lines(&text),
        [format!("a=crypto:{}", local.crypto[0]).as_str(), format!("a=crypto:{}", local.crypto[1]).as_str()]
    );

    let peer = secure_local(false);
    let peer = LocalMedia { crypto: CryptoAttribute::offer_set(&mut StdRng::seed_from_u64(78)), ..peer };
    let (answer, theirs) = create_answer(&parse(&text).unwrap(), &peer, 5, 1).unwrap();
    let ours = apply_answer(&offer, &answer).unwrap().srtp.unwrap();
    let theirs = theirs.srtp.unwrap();
    assert_eq!((&ours.send, &ours.receive), (&theirs.receive, &theirs.send));
    assert_eq!(ours.send, local.crypto[0].key);

    let mut bad = answer.clone();
    bad.media[0].crypto.clear();
    assert!(matches!(apply_answer(&offer, &bad), Err(SdpError::CryptoAnswer(_))));
    for wrong in ["3 AES_CM_128_HMAC_SHA1_80", "1 AES_CM_128_HMAC_SHA1_32"] {
        let mut bad = answer.clone();
        let key = bad.media[0].crypto[0].split_once(" inline:").unwrap().1.to_owned();
        bad.media[0].crypto = vec![format!("{wrong} inline:{key}")];
        assert!(matches!(apply_answer(&offer, &bad), Err(SdpError::CryptoAnswer(_))), "{wrong}");
    }
}

#[test]
fn a_reoffer_keeps_our_key_and_a_peer_rekey_is_taken() {
    let local = secure_local(true);
    let (answer, first) = answer_with(SAVP_ONLY, &local);
    // Our re-offer (hold) carries the same line, so the same key.
    let reoffer = create_reoffer(&answer, &LocalMedia { direction: Direction::SendOnly, ..local.clone() });
    assert_eq!(reoffer.media[0].crypto, answer.media[0].crypto);
    // The peer's re-offer with a new key: our answer keeps our key, the receive key changes.
    let rekeyed =
        SAVP_ONLY.replace("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk");
    let (again, second) = answer_with(&rekeyed, &local);
    assert_eq!(again.media[0].crypto, answer.media[0].crypto);
    let (first, second) = (first.srtp.unwrap(), second.srtp.unwrap());
    assert_eq!(first.send, second.send);
    assert_ne!(first.receive, second.receive);
}
