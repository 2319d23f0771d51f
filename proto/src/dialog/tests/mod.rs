//! Dialog tests: one call between Alice (192.0.2.10) and Bob, through two record-routing proxies
//! (p1 on Alice's side, p2 on Bob's), seen from either end.

mod fork;
mod uac;
mod uas;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::sip::{Host, Message, Transport};

const CALL_ID: &str = "a84b4c76e66710";
const ALICE: &str = "\"Alice\" <sip:alice@atlanta.example.com>;tag=alice-tag";
const ALICE_CONTACT: &str = "<sip:alice@192.0.2.10:5060>";
const BOB_CONTACT: &str = "<sip:bob@198.51.100.20:5062>";
const P1: &str = "<sip:p1.atlanta.example.com;lr>";
const P2: &str = "<sip:p2.biloxi.example.com;lr>";

/// Alice's INVITE as she sent it.
const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinvite1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=alice-tag\r\n\
To: <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n";

/// The same INVITE as Bob receives it: p1 then p2 each added a Via and a Record-Route on top.
const INVITE_AT_BOB: &str = "INVITE sip:bob@198.51.100.20:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP p2.biloxi.example.com;branch=z9hG4bKp2\r\n\
Via: SIP/2.0/UDP p1.atlanta.example.com;branch=z9hG4bKp1\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinvite1;rport=5060;received=192.0.2.10\r\n\
Max-Forwards: 68\r\n\
Record-Route: <sip:p2.biloxi.example.com;lr>, <sip:p1.atlanta.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=alice-tag\r\n\
To: <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n";

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn alice_sent_by() -> SentBy {
    SentBy { transport: Transport::Udp, host: Host::V4([192, 0, 2, 10].into()), port: Some(5060) }
}

fn bob_sent_by() -> SentBy {
    SentBy { transport: Transport::Udp, host: Host::V4([198, 51, 100, 20].into()), port: Some(5062) }
}

fn parse(text: &str) -> Message {
    Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("unparseable {text:?}: {e}"))
}

fn request(text: &str) -> Request {
    match parse(text) {
        Message::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// The request as the peer reads it off the wire.
fn on_the_wire(request: &Request) -> Request {
    let text = String::from_utf8(request.encode().to_vec()).unwrap();
    let parsed = self::request(&text);
    parsed.validate().unwrap_or_else(|e| panic!("{e}: {text}"));
    parsed
}

fn invite() -> Request {
    request(INVITE)
}

fn invite_at_bob() -> Request {
    request(INVITE_AT_BOB)
}

fn uri(s: &str) -> Uri {
    Uri::parse(s).unwrap()
}

fn name_addr(s: &str) -> NameAddr {
    NameAddr::parse(s).unwrap()
}

/// A response to `request` as it reaches the sender: To tag, Contact and Record-Route as given.
fn reply(request: &Request, status: u16, to_tag: &str, contact: Option<&str>, record_route: &[&str]) -> Response {
    let mut response = request.response(status);
    if !to_tag.is_empty() {
        let to = request.headers.get(HeaderName::To).unwrap();
        let to = if to.contains(";tag=") { to.to_owned() } else { format!("{to};tag={to_tag}") };
        response.headers.set(HeaderName::To, to);
    }
    for rr in record_route {
        response.headers.push(HeaderName::RecordRoute, *rr);
    }
    if let Some(contact) = contact {
        response.headers.push(HeaderName::Contact, contact);
    }
    response
}

/// A request from the peer inside a dialog: `from` is the sender with its tag, `to` the receiver
/// with its tag; `extra` is more header lines, each ending in CRLF.
fn peer_request(method: &str, cseq: u32, from: &str, to: &str, extra: &str) -> Request {
    request(&format!(
        "{method} sip:me@192.0.2.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bK{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {CALL_ID}\r\nCSeq: {cseq} {method}\r\n{extra}\
         Content-Length: 0\r\n\r\n"
    ))
}

/// Alice's dialog, confirmed by Bob's 200 through p1 and p2.
fn alice_confirmed() -> Dialog {
    let invite = invite();
    Dialog::uac_from_response(&invite, &reply(&invite, 200, "bob-tag", Some(BOB_CONTACT), &[P2, P1])).unwrap()
}

/// Bob's dialog from Alice's INVITE, confirmed by his 200.
fn bob_confirmed() -> Dialog {
    let invite = invite_at_bob();
    let mut dialog = Dialog::uas_from_request(&invite, "bob-tag", name_addr(BOB_CONTACT)).unwrap();
    let _ = dialog.respond(&invite, 200);
    dialog
}

fn routes(request: &Request) -> Vec<&str> {
    request.headers.get_all(HeaderName::Route).collect()
}

fn cseq(request: &Request) -> String {
    request.headers.cseq().unwrap().to_string()
}

fn branch(request: &Request) -> String {
    request.headers.via().unwrap().branch().unwrap().to_owned()
}
