//! Transaction tests in simulated time: `Instant`s are advanced by hand, never slept on.

mod client;
mod server;

use std::time::{Duration, Instant};

use super::*;
use crate::sip::{Message, Request, Response};

/// The far end our client transactions talk to.
const UAS: &str = "192.0.2.20:5060";
/// The phone our server transactions hear from (its Via sent-by is the same address).
const UAC: &str = "198.51.100.7:5062";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn udp(addr: &str) -> Target {
    Target { transport: Transport::Udp, addr: addr.parse().unwrap() }
}

fn tcp(addr: &str) -> Target {
    Target { transport: Transport::Tcp, addr: addr.parse().unwrap() }
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(TimerConfig::default(), 1000)
}

fn parse(data: &[u8]) -> Message {
    Message::parse(data).unwrap_or_else(|e| panic!("unparseable {:?}: {e}", String::from_utf8_lossy(data)))
}

fn request(text: &str) -> Request {
    match parse(text.as_bytes()) {
        Message::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn response(data: &[u8]) -> Response {
    match parse(data) {
        Message::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// A response as the far end would send it, with a To tag when one is given.
fn reply(request: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut response = request.response(status);
    if let (Some(tag), Some(to)) = (to_tag, request.headers.get(HeaderName::To)) {
        response.headers.set(HeaderName::To, format!("{to};tag={tag}"));
    }
    response
}

fn transmits(layer: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| layer.poll_transmit()).collect()
}

fn events(layer: &mut TransactionLayer) -> Vec<Event> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

/// What the layer did while its timers ran: each transmit and event with its offset from `start`.
struct Run {
    transmits: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, Event)>,
}

impl Run {
    fn transmit_times(&self) -> Vec<u64> {
        self.transmits.iter().map(|(at, _)| at.as_millis() as u64).collect()
    }
}

/// Fires the layer's timers, deadline by deadline as a shell would, up to `until`.
fn run_until(layer: &mut TransactionLayer, start: Instant, until: Instant) -> Run {
    let mut run = Run { transmits: Vec::new(), events: Vec::new() };
    while let Some(at) = layer.poll_timeout().filter(|&at| at <= until) {
        layer.handle_timeout(at);
        run.transmits.extend(transmits(layer).into_iter().map(|t| (at - start, t)));
        run.events.extend(events(layer).into_iter().map(|e| (at - start, e)));
    }
    run
}
