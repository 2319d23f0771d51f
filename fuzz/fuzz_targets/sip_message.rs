//! SIP message parsing (RFC 3261 §7) on arbitrary bytes. What parses must survive a round trip:
//! encoding normalises only Content-Length (always written from the body's length, so one is
//! added when absent), so the re-parsed message equals the original once both drop that header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::sip::{HeaderName, Message};

fn without_content_length(mut m: Message) -> Message {
    match &mut m {
        Message::Request(r) => r.headers.remove_all(HeaderName::ContentLength),
        Message::Response(r) => r.headers.remove_all(HeaderName::ContentLength),
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let Ok(first) = Message::parse(data) else { return };
    let encoded = first.encode();
    let second = Message::parse(&encoded).expect("an encoded message parses again");
    assert_eq!(without_content_length(first), without_content_length(second));
});
