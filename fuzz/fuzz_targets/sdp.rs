//! SDP offers (RFC 4566) on arbitrary text, and the answer (RFC 3264) a phone offering Opus,
//! PCMU and PCMA with telephone-event would build for each one that parses; that answer, as
//! written on the wire, must read back.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use proto::sdp::{LocalMedia, create_answer, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(offer) = parse(text) else { return };
    let local = LocalMedia::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40_000);
    if let Ok((answer, _)) = create_answer(&offer, &local, 1, 1) {
        assert_eq!(answer.media.len(), offer.media.len(), "an answer has one m= line per offered one");
        let text = answer.to_string();
        let again = parse(&text).unwrap_or_else(|e| panic!("our answer {text:?} does not read back: {e}"));
        assert_eq!(again.media.len(), answer.media.len());
    }
});
