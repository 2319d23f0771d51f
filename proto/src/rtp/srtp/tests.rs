use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.replace(' ', "")).expect("test hex")
}

/// RFC 3711 Appendix B.3's master key and salt.
fn rfc_master() -> MasterKey {
    MasterKey::from_bytes(&unhex("E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6")).unwrap()
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, 0];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// A receiver report with one SDES CNAME: what our RTCP sends.
fn rtcp(ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 201, 0, 1];
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&[0x81, 202, 0, 3]);
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&[1, 4, b'a', b'b', b'c', b'd', 0, 0]);
    packet
}

fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let key = MasterKey::random(&mut StdRng::seed_from_u64(3));
    (SrtpContext::new(profile, &key, None), SrtpContext::new(profile, &key, None))
}

#[test]
fn aes_cm_keystream_matches_rfc3711_b2() {
    let keys = SessionKeys {
        cipher: Aes128::new(&<[u8; 16]>::try_from(unhex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap().into()),
        salt: unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
        auth: hmac_key(&[0; AUTH_KEY_LEN]),
    };
    let mut stream = vec![0u8; 0xff02 * 16];
    keys.apply_keystream(0, 0, &mut stream);
    let block = |n: usize| stream[n * 16..(n + 1) * 16].to_vec();
    assert_eq!(block(0), unhex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), unhex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), unhex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xfeff), unhex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xff00), unhex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xff01), unhex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

#[test]
fn key_derivation_matches_rfc3711_b3() {
    let master = rfc_master();
    let kdf = Aes128::new(&master.key.into());
    let mut key = [0; 16];
    derive(&kdf, &master.salt, LABEL_RTP_ENCRYPTION, &mut key);
    assert_eq!(key.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt = [0; 14];
    derive(&kdf, &master.salt, LABEL_RTP_SALT, &mut salt);
    assert_eq!(salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut auth = [0; 20];
    derive(&kdf, &master.salt, LABEL_RTP_AUTH, &mut auth);
    assert_eq!(auth.to_vec(), unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
}

#[test]
fn protects_rtp_exactly_as_the_reference_implementation() {
    // The packet and its protected form from libsrtp's test driver, under the B.3 master key.
    let plain = unhex("800f1234 decafbad cafebabe abababababababababababababababab");
    let expected = unhex("800f1234 decafbad cafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let mut sender = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master(), None);
    let mut wire = Vec::new();
    sender.protect_rtp(&plain, &mut wire).unwrap();
    assert_eq!(wire, expected);
    let mut receiver = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master(), None);
    let mut back = Vec::new();
    receiver.unprotect_rtp(&expected, &mut back).unwrap();
    assert_eq!(back, plain);
}

#[test]
fn rtp_round_trips_under_both_suites_with_their_tag_lengths() {
    for (profile, tag) in [(SrtpProfile::AesCm128HmacSha1_80, 10), (SrtpProfile::AesCm128HmacSha1_32, 4)] {
        let (mut sender, mut receiver) = pair(profile);
        let payload = [0x55u8; 160];
        let plain = rtp(1000, 0x1234_5678, &payload);
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        sender.protect_rtp(&plain, &mut wire).unwrap();
        assert_eq!(wire.len(), plain.len() + tag, "{profile}");
        assert_eq!(wire[..12], plain[..12], "the header stays in the clear");
        assert_ne!(wire[12..172], payload, "the payload is encrypted");
        receiver.unprotect_rtp(&wire, &mut back).unwrap();
        assert_eq!(back, plain);
    }
}

#[test]
fn rtcp_round_trips_encrypted_with_the_e_bit_and_a_rising_index() {
    for profile in SrtpProfile::ALL {
        let (mut sender, mut receiver) = pair(profile);
        let plain = rtcp(0xabcd);
        for index in 0..3u32 {
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            sender.protect_rtcp(&plain, &mut wire).unwrap();
            assert_eq!(wire.len(), plain.len() + 4 + 10, "SRTCP keeps an 80-bit tag under {profile}");
            assert_eq!(wire[..8], plain[..8]);
            assert_ne!(wire[8..plain.len()], plain[8..]);
            let e_index = u32::from_be_bytes(wire[plain.len()..plain.len() + 4].try_into().unwrap());
            assert_eq!(e_index, 0x8000_0000 | index);
            receiver.unprotect_rtcp(&wire, &mut back).unwrap();
            assert_eq!(back, plain);
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_fails_and_changes_nothing() {
    let (mut sender, mut receiver) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let mut wire = Vec::new();
    sender.protect_rtp(&rtp(7, 99, &[1; 20]), &mut wire).unwrap();
    let mut out = Vec::new();
    for bit in 0..wire.len() * 8 {
        let mut bad = wire.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let result = receiver.unprotect_rtp(&bad, &mut out);
        assert!(result.is_err(), "bit {bit} flipped went through");
        // Past the version bits and the CSRC count, only the tag check can notice.
        if bit >= 8 {
            assert_eq!(result, Err(SrtpError::AuthFailed), "bit {bit}");
        }
    }
    receiver.unprotect_rtp(&wire, &mut out).unwrap();

    let mut wire = Vec::new();
    sender.protect_rtcp(&rtcp(99), &mut wire).unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 0x80;
    assert_eq!(receiver.unprotect_rtcp(&wire, &mut out), Err(SrtpError::AuthFailed));
}

#[test]
fn another_key_fails_every_packet() {
    let (mut sender, _) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let other = MasterKey::random(&mut StdRng::seed_from_u64(4));
    let mut receiver = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &other, None);
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    for seq in 0..50 {
        sender.protect_rtp(&rtp(seq, 5, &[9; 40]), &mut wire).unwrap();
        assert_eq!(receiver.unprotect_rtp(&wire, &mut out), Err(SrtpError::AuthFailed));
    }
}

#[test]
fn a_replayed_packet_is_rejected_and_a_late_one_in_the_window_accepted() {
    let (mut sender, mut receiver) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let mut wires = Vec::new();
    for seq in 100..200u16 {
        let mut wire = Vec::new();
        sender.protect_rtp(&rtp(seq, 1, &[seq as u8; 8]), &mut wire).unwrap();
        wires.push(wire);
    }
    let mut out = Vec::new();
    // 100..180 arrive except 150; then 150 late; then replays.
    for (i, wire) in wires.iter().enumerate().take(80) {
        if i != 50 {
            receiver.unprotect_rtp(wire, &mut out).unwrap();
        }
    }
    receiver.unprotect_rtp(&wires[50], &mut out).unwrap();
    assert_eq!(receiver.unprotect_rtp(&wires[50], &mut out), Err(SrtpError::Replayed { index: 150 }));
    assert_eq!(receiver.unprotect_rtp(&wires[79], &mut out), Err(SrtpError::Replayed { index: 179 }));
    // 100 is 79 behind the highest: outside the 64-packet window.
    assert_eq!(receiver.unprotect_rtp(&wires[0], &mut out), Err(SrtpError::TooOld { index: 100 }));

    let mut wire = Vec::new();
    sender.protect_rtcp(&rtcp(1), &mut wire).unwrap();
    receiver.unprotect_rtcp(&wire, &mut out).unwrap();
    assert_eq!(receiver.unprotect_rtcp(&wire, &mut out), Err(SrtpError::Replayed { index: 0 }));
}

#[test]
fn the_rollover_counter_follows_the_sequence_across_65535_to_0() {
    let (mut sender, mut receiver) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let seqs: Vec<u16> = (65530..=65535).chain(0..10).collect();
    let mut wires = Vec::new();
    for &seq in &seqs {
        let mut wire = Vec::new();
        sender.protect_rtp(&rtp(seq, 42, &[seq as u8; 16]), &mut wire).unwrap();
        wires.push(wire);
    }
    // After the wrap the sender counts ROC 1: the index enters the keystream, so a sender that
    // kept ROC 0 would give another ciphertext than one started at ROC 1's first packet.
    let mut fresh = pair(SrtpProfile::AesCm128HmacSha1_80).0;
    let mut at_roc0 = Vec::new();
    fresh.protect_rtp(&rtp(3, 42, &[3; 16]), &mut at_roc0).unwrap();
    let after_wrap = &wires[seqs.iter().position(|&s| s == 3).unwrap()];
    assert_ne!(after_wrap[12..28], at_roc0[12..28]);

    // Received with 65535 and 0 swapped across the wrap, all authenticate and decrypt.
    let mut order: Vec<usize> = (0..wires.len()).collect();
    order.swap(5, 6);
    let mut out = Vec::new();
    for i in order {
        receiver.unprotect_rtp(&wires[i], &mut out).unwrap();
        assert_eq!(out, rtp(seqs[i], 42, &[seqs[i] as u8; 16]));
    }
    assert_eq!(receiver.stream(42).roc, 1);
}

#[test]
fn the_mki_travels_and_a_foreign_one_is_refused() {
    let key = rfc_master();
    let mki = Mki { value: 1, len: 4 };
    let mut sender = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &key, Some(mki));
    let mut receiver = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &key, Some(mki));
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    sender.protect_rtp(&rtp(1, 1, &[0; 10]), &mut wire).unwrap();
    assert_eq!(wire[22..26], [0, 0, 0, 1]);
    receiver.unprotect_rtp(&wire, &mut out).unwrap();
    sender.protect_rtcp(&rtcp(1), &mut wire).unwrap();
    receiver.unprotect_rtcp(&wire, &mut out).unwrap();
    let mut other = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &key, Some(Mki { value: 2, len: 4 }));
    sender.protect_rtp(&rtp(2, 1, &[0; 10]), &mut wire).unwrap();
    assert_eq!(other.unprotect_rtp(&wire, &mut out), Err(SrtpError::UnknownMki));
}

#[test]
fn hostile_input_is_refused_without_panicking() {
    let (mut sender, mut receiver) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let mut out = Vec::new();
    let mut wire = Vec::new();
    sender.protect_rtp(&rtp(1, 1, &[1; 30]), &mut wire).unwrap();
    for len in 0..wire.len() {
        assert!(receiver.unprotect_rtp(&wire[..len], &mut out).is_err());
        assert!(receiver.unprotect_rtcp(&wire[..len], &mut out).is_err());
    }
    // Headers that claim more CSRCs or extension words than the packet holds.
    for claim in [vec![0x8f, 0, 0, 1], vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff]] {
        assert!(receiver.unprotect_rtp(&claim, &mut out).is_err());
        assert!(sender.protect_rtp(&claim, &mut out).is_err());
    }
    let mut rng = StdRng::seed_from_u64(9);
    let mut garbage = [0u8; 200];
    for _ in 0..20_000 {
        let len = rng.random_range(0..garbage.len());
        rng.fill(&mut garbage[..len]);
        garbage[0] = (garbage[0] & 0x3f) | 0x80;
        assert!(receiver.unprotect_rtp(&garbage[..len], &mut out).is_err());
        assert!(receiver.unprotect_rtcp(&garbage[..len], &mut out).is_err());
        let _ = sender.protect_rtp(&garbage[..len], &mut out);
        let _ = sender.protect_rtcp(&garbage[..len], &mut out);
    }
    assert!(receiver.streams.is_empty(), "forged packets left no state behind");
}

#[test]
fn master_keys_read_30_bytes_and_hide_in_debug() {
    assert_eq!(MasterKey::from_bytes(&[0; 29]), Err(SrtpError::KeyLength { len: 29 }));
    let key = rfc_master();
    assert_eq!(MasterKey::from_bytes(&key.to_bytes()).unwrap(), key);
    assert_eq!(format!("{key:?}"), "MasterKey(..)");
    assert_eq!(SrtpProfile::from_name("AES_CM_128_HMAC_SHA1_32"), Some(SrtpProfile::AesCm128HmacSha1_32));
    assert_eq!(SrtpProfile::from_name("aes_cm_128_hmac_sha1_80"), None);
}

/// Packets the reference implementation (libsrtp 2) protected under the B.3 master key: RTP with
/// sequence numbers 65535 then 0 (so the second is under ROC 1), then two SRTCP packets (its
/// SRTCP index starts at 1), for each suite.
const LIBSRTP_PROTECTED: [(SrtpProfile, [&str; 4]); 2] = [
    (
        SrtpProfile::AesCm128HmacSha1_80,
        [
            "8000ffff009fff6000001234b4e179164ff8bfc8a17c2e724b5045be1fa553e3588e917fd5b54a19347b9adcad0f95ce425b922d04ca9c",
            "8000000000000000000012343a227d59e21611f3cadb7c67ee47db5e4d430faa8ed1a9b3b73f0e76e767878e7ab2d3353342739142868e",
            "80c9000100001234c4f11c520cb48ea4fa1acbcd5ae0fe2f80000001c16785662d34c0a42511",
            "80c90001000012341db984675b29e3c2636515929af38b0c800000025b6ab28020b552b47abc",
        ],
    ),
    (
        SrtpProfile::AesCm128HmacSha1_32,
        [
            "8000ffff009fff6000001234b4e179164ff8bfc8a17c2e724b5045be1fa553e3588e917fd5b54a19347b9adcad0f95ce42",
            "8000000000000000000012343a227d59e21611f3cadb7c67ee47db5e4d430faa8ed1a9b3b73f0e76e767878e7ab2d33533",
            "80c9000100001234c4f11c520cb48ea4fa1acbcd5ae0fe2f80000001c16785662d34c0a42511",
            "80c90001000012341db984675b29e3c2636515929af38b0c800000025b6ab28020b552b47abc",
        ],
    ),
];

#[test]
fn opens_what_the_reference_implementation_protected_across_a_rollover() {
    for (profile, [rtp_last, rtp_wrapped, rtcp_1, rtcp_2]) in LIBSRTP_PROTECTED {
        let mut receiver = SrtpContext::new(profile, &rfc_master(), None);
        let mut out = Vec::new();
        receiver.unprotect_rtp(&unhex(rtp_last), &mut out).unwrap();
        assert_eq!(out, rtp(65535, 0x1234, &[0xff; 33]), "{profile}");
        receiver.unprotect_rtp(&unhex(rtp_wrapped), &mut out).unwrap();
        assert_eq!(out, rtp(0, 0x1234, &[0; 33]), "{profile}");
        assert_eq!(receiver.stream(0x1234).roc, 1);
        for packet in [rtcp_1, rtcp_2] {
            receiver.unprotect_rtcp(&unhex(packet), &mut out).unwrap();
            assert_eq!(out, rtcp(0x1234), "{profile}");
        }
        // And it protects RTP exactly so, across the same rollover.
        let mut sender = SrtpContext::new(profile, &rfc_master(), None);
        let mut wire = Vec::new();
        sender.protect_rtp(&rtp(65535, 0x1234, &[0xff; 33]), &mut wire).unwrap();
        assert_eq!(wire, unhex(rtp_last), "{profile}");
        sender.protect_rtp(&rtp(0, 0x1234, &[0; 33]), &mut wire).unwrap();
        assert_eq!(wire, unhex(rtp_wrapped), "{profile}");
    }
}
