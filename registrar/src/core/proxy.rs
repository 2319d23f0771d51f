//! The transaction-stateful proxy (RFC 3261 §16): request validation and loop detection
//! (§16.3), Route processing (§16.4), target determination from the location service (§16.5),
//! forwarding with Via and Record-Route (§16.6; two Record-Route values when the request changes
//! transport, RFC 5658 §4), `sips:` requests only over TLS (RFC 5630 §3.1.3), parallel forking with best-response selection
//! (§16.7), CANCEL propagation (§16.10) and stateless forwarding of ACKs for 2xx and of stray
//! responses (§16.11).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use proto::sip::{HeaderName, Host, Method, NameAddr, Request, Response, Scheme, Transport, Uri, Via};
use proto::transaction::{ClientId, ServerId, Target};
use rand::Rng;
use tracing::{debug, warn};

use super::{Ctx, LocalAddrs};
use crate::location::Binding;

/// How long an INVITE may ring without a final answer before the proxy gives up (Timer C,
/// RFC 3261 §16.6 step 11: more than three minutes).
const TIMER_C: Duration = Duration::from_secs(181);
/// How long a finished call context stays to forward 2xx retransmissions (64·T1).
const LINGER: Duration = Duration::from_secs(32);
/// Max-Forwards written when a request carries none (RFC 3261 §16.6 step 3).
const DEFAULT_MAX_FORWARDS: u32 = 70;

/// A DNS lookup the core needs (RFC 3263): answer it with `Core::handle_resolved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// Identifies the lookup in the answer.
    pub id: u64,
    /// The host name to locate.
    pub host: String,
    /// The explicit port, if the URI has one.
    pub port: Option<u16>,
    /// The explicit transport, if the URI has one.
    pub transport: Option<Transport>,
    /// True for `sips:` URIs.
    pub sips: bool,
}

/// The proxy's state: one response context per proxied server transaction.
#[derive(Default)]
pub(super) struct Proxy {
    calls: HashMap<ServerId, Call>,
    branches: HashMap<ClientId, ServerId>,
    own_cancels: HashSet<ClientId>,
    lookups: HashMap<u64, Pending>,
    resolves: VecDeque<Resolve>,
    next_lookup: u64,
    linger: VecDeque<(Instant, ServerId)>,
    timer_c: BTreeSet<(Instant, ServerId)>,
}

/// The response context of one proxied request (§16.7).
struct Call {
    request: Request,
    /// Where the request came from: the hop the caller's side of the dialog uses.
    source: Target,
    /// The branch prefix of every branch: magic cookie and loop hash (§16.6 step 8).
    cookie: String,
    branches: Vec<(ClientId, Branch)>,
    lookups: usize,
    best: Option<Response>,
    challenges: Vec<(HeaderName, String)>,
    final_sent: bool,
    cancelled: bool,
    timer_c: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Branch {
    Calling,
    Ringing,
    Done,
}

/// A request waiting for a DNS answer.
enum Pending {
    Branch { call: ServerId, request: Request },
    Ack { request: Request },
}

/// Where a request goes next.
enum NextHop {
    Direct(Target),
    Lookup(Uri),
}

/// §16.3 steps 3 and 4, before anything else is done with a request to forward: Max-Forwards
/// exhausted (483) and loops (482): our own Via with this request's loop hash.
pub(super) fn precheck(req: &Request, local: &LocalAddrs) -> Result<(), Response> {
    let refuse = |status: u16, why: &str| {
        Err(req.response(status).with_reason(format!("{} ({why})", proto::sip::reason_phrase(status))))
    };
    if req.headers.max_forwards() == Ok(Some(0)) {
        return refuse(483, "Max-Forwards reached 0");
    }
    let cookie = format!("z9hG4bK{}.", loop_hash(req));
    let looped = req.headers.get_all(HeaderName::Via).filter_map(|v| Via::parse(v).ok()).any(|v| {
        v.branch().is_some_and(|b| b.starts_with(&cookie)) && local.is_us(&Uri::sip(None, v.host.clone(), v.port))
    });
    if looped {
        return refuse(482, "this request has passed here before");
    }
    Ok(())
}

/// True when an out-of-dialog request must carry credentials for our realm: every request
/// leaving our domain, and every request whose From claims to be one of our users. Calls from
/// other domains to our users come in without credentials.
pub(super) fn needs_auth(req: &Request, local: &LocalAddrs) -> bool {
    if matches!(req.method, Method::Ack | Method::Cancel) || req.headers.to().is_ok_and(|to| to.tag().is_some()) {
        return false;
    }
    let target_foreign = match req.headers.get(HeaderName::Route).and_then(|r| NameAddr::parse(r).ok()) {
        Some(route) if !local.is_us(&route.uri) => true,
        _ => !local.is_us(&req.uri),
    };
    let from_foreign_domain = req.headers.from().is_ok_and(|f| match &f.uri.host {
        Host::Domain(d) => local.domain.as_deref().is_none_or(|ours| !ours.eq_ignore_ascii_case(d)) && d != "localhost",
        _ => false,
    });
    target_foreign || !from_foreign_domain
}

impl Proxy {
    pub(super) fn on_request(&mut self, ctx: &mut Ctx<'_>, id: ServerId, mut req: Request, source: Target) {
        let refuse = |ctx: &mut Ctx<'_>, req: &Request, status: u16, why: &str| {
            let phrase = proto::sip::reason_phrase(status);
            ctx.respond(id, req.response(status).with_reason(format!("{phrase} ({why})")));
        };
        // §16.6 step 3: Max-Forwards (a 0 was refused by `precheck`).
        let hops = req.headers.max_forwards().ok().flatten().unwrap_or(DEFAULT_MAX_FORWARDS);
        req.headers.set(HeaderName::MaxForwards, hops.saturating_sub(1).to_string());
        let cookie = format!("z9hG4bK{}.", loop_hash(&req));
        // §16.4: Route processing.
        let our_route = process_routes(&mut req, &ctx.settings.local);
        // §16.3 step 5: Proxy-Require.
        let required: Vec<String> = req.headers.get_all(HeaderName::ProxyRequire).map(str::to_owned).collect();
        if !required.is_empty() {
            let mut r = req.response(420);
            r.headers.push(HeaderName::Unsupported, required.join(", "));
            return ctx.respond(id, r);
        }

        let in_dialog = req.headers.to().is_ok_and(|to| to.tag().is_some());
        let mut plans: Vec<(Request, NextHop)> = Vec::new();
        if let Some(route) = top_route(&req) {
            plans.push((req.clone(), hop_for_uri(&route)));
        } else if ctx.settings.local.is_us(&req.uri) {
            let Some(user) = req.uri.user.clone() else {
                return refuse(ctx, &req, 404, "no user in the Request-URI");
            };
            if !ctx.accounts.contains_key(&user) {
                return refuse(ctx, &req, 404, "no such extension");
            }
            let mut bindings = ctx.store.lookup(&user, ctx.wall);
            if bindings.is_empty() {
                return refuse(ctx, &req, 480, "the extension is not registered");
            }
            if req.uri.scheme == Scheme::Sips {
                // RFC 5630 §3.1.3: a sips: request goes to contacts reached over TLS only.
                bindings.retain(|b| b.transport == Transport::Tls);
                if bindings.is_empty() {
                    return refuse(ctx, &req, 480, "no contact of the extension is reachable over TLS");
                }
            }
            for b in &bindings {
                if let Some(plan) = branch_for_binding(&req, b) {
                    plans.push(plan);
                }
            }
            if plans.is_empty() {
                return refuse(ctx, &req, 480, "no usable contact");
            }
        } else if in_dialog && !our_route {
            return refuse(ctx, &req, 403, "not relaying in-dialog requests that did not route through here");
        } else {
            let uri = req.uri.clone();
            plans.push((req.clone(), hop_for_uri(&uri)));
        }

        if req.method == Method::Invite {
            // §16.2: tell the caller we are working on it, so it stops retransmitting.
            ctx.respond(id, req.response(100));
        }
        if req.uri.scheme == Scheme::Sips
            && plans.iter().any(|(_, hop)| matches!(hop, NextHop::Direct(t) if t.transport != Transport::Tls))
        {
            return refuse(ctx, &req, 480, "a sips: request cannot be forwarded over a transport other than TLS");
        }
        let record_route = !in_dialog && req.method != Method::Register;
        // §16.6 step 4: a sips: Request-URI gets a sips: Record-Route.
        let placeholder = if req.uri.scheme == Scheme::Sips { RECORD_ROUTE_SIPS } else { RECORD_ROUTE_PLACEHOLDER };
        let mut call = Call {
            source,
            request: req,
            cookie,
            branches: Vec::new(),
            lookups: 0,
            best: None,
            challenges: Vec::new(),
            final_sent: false,
            cancelled: false,
            timer_c: None,
        };
        for (mut branch_req, hop) in plans {
            if record_route {
                // Added when the transport is known, in `send_branch`.
                branch_req.headers.push_front(HeaderName::RecordRoute, placeholder);
            }
            match hop {
                NextHop::Direct(target) => match send_branch(ctx, branch_req, target, &call.cookie, call.source) {
                    Some(client) => {
                        call.branches.push((client, Branch::Calling));
                        self.branches.insert(client, id);
                    }
                    None => {
                        let failed = call.request.response(500);
                        consider(&mut call, failed);
                    }
                },
                NextHop::Lookup(uri) => {
                    call.lookups += 1;
                    self.lookup(uri, Pending::Branch { call: id, request: branch_req });
                }
            }
        }
        if call.request.method == Method::Invite {
            let deadline = ctx.now + TIMER_C;
            call.timer_c = Some(deadline);
            self.timer_c.insert((deadline, id));
        }
        self.calls.insert(id, call);
        // Every branch may have failed at once: then the caller gets the best failure now.
        self.maybe_finish(ctx, id);
    }

    fn lookup(&mut self, uri: Uri, pending: Pending) {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let Host::Domain(host) = &uri.host else { return };
        self.resolves.push_back(Resolve {
            id,
            host: host.clone(),
            port: uri.port,
            transport: uri.transport_param().and_then(|t| t.parse().ok()),
            sips: uri.scheme == Scheme::Sips,
        });
        self.lookups.insert(id, pending);
    }

    pub(super) fn poll_resolve(&mut self) -> Option<Resolve> {
        self.resolves.pop_front()
    }

    pub(super) fn resolved(&mut self, ctx: &mut Ctx<'_>, resolve: Resolve, targets: Vec<Target>) {
        let Some(pending) = self.lookups.remove(&resolve.id) else { return };
        match pending {
            Pending::Ack { request } => {
                if let Some(target) = targets.first() {
                    send_stateless(ctx, request, *target);
                }
            }
            Pending::Branch { call: id, request } => {
                let Some(call) = self.calls.get_mut(&id) else { return };
                call.lookups -= 1;
                if call.cancelled || call.final_sent {
                    return self.maybe_finish(ctx, id);
                }
                match targets.first() {
                    Some(&target) => match send_branch(ctx, request, target, &call.cookie, call.source) {
                        Some(client) => {
                            call.branches.push((client, Branch::Calling));
                            self.branches.insert(client, id);
                        }
                        None => {
                            let failed = call.request.response(500);
                            consider(call, failed);
                            self.maybe_finish(ctx, id);
                        }
                    },
                    None => {
                        let unreachable = call
                            .request
                            .response(404)
                            .with_reason(format!("Not Found (no SIP server found for {})", resolve.host));
                        consider(call, unreachable);
                        self.maybe_finish(ctx, id);
                    }
                }
            }
        }
    }

    pub(super) fn on_response(&mut self, ctx: &mut Ctx<'_>, client: ClientId, response: Response) {
        if self.own_cancels.contains(&client) {
            if response.status >= 200 {
                self.own_cancels.remove(&client);
            }
            return;
        }
        let Some(&id) = self.branches.get(&client) else {
            return self.forward_stray_response(ctx, response);
        };
        let Some(call) = self.calls.get_mut(&id) else { return };
        let status = response.status;
        let Some(mut upstream) = strip_our_via(response) else { return };
        let invite = call.request.method == Method::Invite;
        if status < 200 {
            if let Some(b) = call.branches.iter_mut().find(|(c, _)| *c == client) {
                b.1 = Branch::Ringing;
            }
            if status > 100 && !call.final_sent {
                if let Some(deadline) = call.timer_c.take() {
                    self.timer_c.remove(&(deadline, id));
                    let next = ctx.now + TIMER_C;
                    call.timer_c = Some(next);
                    self.timer_c.insert((next, id));
                }
                ctx.relay(id, upstream);
            }
            return;
        }
        if let Some(b) = call.branches.iter_mut().find(|(c, _)| *c == client) {
            b.1 = Branch::Done;
        }
        if (200..300).contains(&status) {
            // §16.7 step 5: every 2xx to INVITE is forwarded, even after the first.
            if !call.final_sent || invite {
                call.final_sent = true;
                ctx.relay(id, upstream);
            }
            if invite {
                cancel_pending(ctx, call, &mut self.own_cancels);
            }
        } else {
            if status >= 600 && invite {
                cancel_pending(ctx, call, &mut self.own_cancels);
            }
            if matches!(status, 401 | 407) {
                for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
                    call.challenges.extend(upstream.headers.get_all(name).map(|v| (name, v.to_owned())));
                }
                upstream.headers.remove_all(HeaderName::WwwAuthenticate);
                upstream.headers.remove_all(HeaderName::ProxyAuthenticate);
            }
            consider(call, upstream);
        }
        self.maybe_finish(ctx, id);
    }

    pub(super) fn on_timeout(&mut self, ctx: &mut Ctx<'_>, client: ClientId) {
        if self.own_cancels.remove(&client) {
            return;
        }
        let Some(&id) = self.branches.get(&client) else { return };
        let Some(call) = self.calls.get_mut(&id) else { return };
        if let Some(b) = call.branches.iter_mut().find(|(c, _)| *c == client) {
            b.1 = Branch::Done;
        }
        let timeout = call.request.response(408);
        consider(call, timeout);
        self.maybe_finish(ctx, id);
    }

    /// §16.10: the caller cancelled; cancel every pending branch and answer 487 when none is
    /// left to answer for itself.
    pub(super) fn cancel(&mut self, ctx: &mut Ctx<'_>, invite: ServerId) {
        let Some(call) = self.calls.get_mut(&invite) else { return };
        if call.final_sent {
            return;
        }
        call.cancelled = true;
        let terminated = call.request.response(487);
        consider(call, terminated);
        cancel_pending(ctx, call, &mut self.own_cancels);
        self.maybe_finish(ctx, invite);
    }

    /// Sends the best final response once every branch has answered (§16.7 step 6), and
    /// schedules the context's removal.
    fn maybe_finish(&mut self, ctx: &mut Ctx<'_>, id: ServerId) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        let open = call.lookups > 0 || call.branches.iter().any(|(_, b)| *b != Branch::Done);
        let nothing_to_wait_for = call.cancelled && call.branches.iter().all(|(_, b)| *b == Branch::Done);
        if open && !nothing_to_wait_for {
            return;
        }
        if !call.final_sent {
            call.final_sent = true;
            let mut best = call.best.take().unwrap_or_else(|| call.request.response(408));
            if best.status == 503 {
                // §16.7 step 6: a 503 from downstream must not make the caller think we are down.
                best.status = 500;
                best.reason = "Server Internal Error (the next hop is unavailable)".into();
            }
            if matches!(best.status, 401 | 407) {
                for (name, value) in call.challenges.drain(..) {
                    best.headers.push(name, value);
                }
            }
            ctx.respond(id, best);
        }
        if let Some(deadline) = call.timer_c.take() {
            self.timer_c.remove(&(deadline, id));
        }
        if !open {
            self.linger.push_back((ctx.now + LINGER, id));
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let linger = self.linger.front().map(|(t, _)| *t);
        let c = self.timer_c.first().map(|(t, _)| *t);
        linger.into_iter().chain(c).min()
    }

    pub(super) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(&(deadline, id)) = self.timer_c.first() {
            if deadline > ctx.now {
                break;
            }
            self.timer_c.remove(&(deadline, id));
            if let Some(call) = self.calls.get_mut(&id) {
                debug!(?id, "Timer C fired: cancelling unanswered branches");
                call.timer_c = None;
                cancel_pending(ctx, call, &mut self.own_cancels);
                let timeout = call.request.response(408);
                consider(call, timeout);
                for b in call.branches.iter_mut() {
                    b.1 = Branch::Done;
                }
                call.lookups = 0;
                self.maybe_finish(ctx, id);
            }
        }
        while let Some(&(deadline, id)) = self.linger.front() {
            if deadline > ctx.now {
                break;
            }
            self.linger.pop_front();
            if let Some(call) = self.calls.remove(&id) {
                for (client, _) in call.branches {
                    self.branches.remove(&client);
                }
            }
        }
    }

    /// §16.11: an ACK for a 2xx, or any request the transaction layer passed through without
    /// a transaction, is forwarded statelessly along its Route set.
    pub(super) fn forward_ack(&mut self, ctx: &mut Ctx<'_>, mut req: Request) {
        match req.headers.max_forwards() {
            Ok(Some(0)) => return,
            Ok(Some(n)) => req.headers.set(HeaderName::MaxForwards, (n - 1).to_string()),
            _ => req.headers.set(HeaderName::MaxForwards, (DEFAULT_MAX_FORWARDS - 1).to_string()),
        }
        process_routes(&mut req, &ctx.settings.local);
        let hop = if let Some(route) = top_route(&req) {
            hop_for_uri(&route)
        } else if ctx.settings.local.is_us(&req.uri) {
            let Some(user) = req.uri.user.clone() else { return };
            let bindings = ctx.store.lookup(&user, ctx.wall);
            let Some((r, hop)) = bindings.first().and_then(|b| branch_for_binding(&req, b)) else { return };
            req = r;
            hop
        } else {
            hop_for_uri(&req.uri.clone())
        };
        match hop {
            NextHop::Direct(target) => send_stateless(ctx, req, target),
            NextHop::Lookup(uri) => self.lookup(uri, Pending::Ack { request: req }),
        }
    }

    /// §16.7 step 3 / §18.2.2: a response with no transaction (a 2xx retransmission after the
    /// context ended) goes back along the Via chain without us.
    pub(super) fn forward_stray_response(&mut self, ctx: &mut Ctx<'_>, response: Response) {
        let Ok(top) = response.headers.via() else { return };
        if !ctx.settings.local.is_us(&Uri::sip(None, top.host.clone(), top.port)) {
            return;
        }
        let Some(upstream) = strip_our_via(response) else { return };
        let Ok(next) = upstream.headers.via() else { return };
        if let Some(target) = via_target(&next) {
            ctx.send(target, upstream.encode());
        }
    }
}

/// A stand-in Record-Route value, replaced in [`send_branch`] once the outgoing transport and
/// address are known.
const RECORD_ROUTE_PLACEHOLDER: &str = "<sip:record-route-placeholder>";
/// The same, for a request whose Record-Route must be a `sips:` URI.
const RECORD_ROUTE_SIPS: &str = "<sips:record-route-placeholder>";

/// §16.4: if the Request-URI is a Record-Route value of ours, a strict router sent this and the
/// real target is the last Route; then a top Route naming us is removed. Returns true when a
/// Route of ours was found (the request is inside a dialog we record-route).
fn process_routes(req: &mut Request, local: &LocalAddrs) -> bool {
    let mut ours = false;
    if local.is_us(&req.uri) && req.uri.user.is_none() && req.uri.params.has("lr") {
        let routes: Vec<String> = req.headers.get_all(HeaderName::Route).map(str::to_owned).collect();
        if let Some(last) = routes.last().and_then(|r| NameAddr::parse(r).ok()) {
            req.uri = last.uri;
            req.headers.remove_all(HeaderName::Route);
            for r in &routes[..routes.len() - 1] {
                req.headers.push(HeaderName::Route, r.clone());
            }
            ours = true;
        }
    }
    while let Some(top) = req.headers.get(HeaderName::Route).and_then(|r| NameAddr::parse(r).ok()) {
        if !local.is_us(&top.uri) {
            break;
        }
        req.headers.remove_first(HeaderName::Route);
        ours = true;
    }
    ours
}

fn top_route(req: &Request) -> Option<Uri> {
    req.headers.get(HeaderName::Route).and_then(|r| NameAddr::parse(r).ok()).map(|r| r.uri)
}

/// The next hop for a URI: direct for an IP literal, a DNS lookup for a host name (RFC 3263).
/// A `sips:` URI, or `transport=tls`, means TLS, on port 5061 unless the URI names one.
fn hop_for_uri(uri: &Uri) -> NextHop {
    let named = uri.transport_param().and_then(|t| t.parse().ok());
    let transport = if uri.scheme == Scheme::Sips { Transport::Tls } else { named.unwrap_or(Transport::Udp) };
    match uri.host.ip() {
        Some(ip) => NextHop::Direct(Target {
            transport,
            addr: std::net::SocketAddr::new(ip, uri.port.unwrap_or(transport.default_port())),
        }),
        None => NextHop::Lookup(uri.clone()),
    }
}

/// The request to one registered contact and where to send it. Path values become Route
/// headers (RFC 3327 §5.3). A binding is reached at the address its REGISTER came from when that
/// differs from its Contact or came over a stream: the phone is behind a NAT, or its connection
/// is the only way in.
fn branch_for_binding(req: &Request, b: &Binding) -> Option<(Request, NextHop)> {
    let uri = Uri::parse(&b.uri).ok()?;
    let mut out = req.clone();
    out.uri = uri.clone();
    for p in b.path.iter().rev() {
        out.headers.push_front(HeaderName::Route, p.clone());
    }
    if let Some(first) = b.path.first().and_then(|p| NameAddr::parse(p).ok()) {
        return Some((out, hop_for_uri(&first.uri)));
    }
    let flow = Target { transport: b.transport, addr: b.source };
    let hop = if b.transport.is_reliable() || uri.socket_addr().is_some_and(|a| a != b.source) {
        NextHop::Direct(flow)
    } else {
        hop_for_uri(&uri)
    };
    Some((out, hop))
}

/// §16.6 steps 4–8: Record-Route and Via for the chosen transport, then a client transaction.
/// When the request leaves over another transport or address than it came in on (UDP in, TLS
/// out), two Record-Route values name us, one for each side (RFC 5658 §4): each side's requests
/// then reach us over its own transport. `None` if the transaction layer refused the request
/// (logged).
fn send_branch(ctx: &mut Ctx<'_>, mut req: Request, target: Target, cookie: &str, source: Target) -> Option<ClientId> {
    let local = &ctx.settings.local;
    let (host, port) = local.toward(target.addr, target.transport);
    let placeholder = req.headers.get(HeaderName::RecordRoute);
    let sips = placeholder == Some(RECORD_ROUTE_SIPS);
    if sips || placeholder == Some(RECORD_ROUTE_PLACEHOLDER) {
        req.headers.remove_first(HeaderName::RecordRoute);
        let outward = record_route(&host, port, target.transport, sips);
        let inward = local.toward(source.addr, source.transport);
        let inward = record_route(&inward.0, inward.1, source.transport, sips && source.transport == Transport::Tls);
        if inward != outward {
            req.headers.push_front(HeaderName::RecordRoute, inward);
        }
        req.headers.push_front(HeaderName::RecordRoute, outward);
    }
    let branch = format!("{cookie}{:016x}", ctx.rng.random::<u64>());
    req.headers
        .push_front(HeaderName::Via, format!("SIP/2.0/{} {host}:{port};branch={branch};rport", target.transport));
    ctx.txns.send_request(req, target, ctx.now).inspect_err(|e| warn!(error = %e, "cannot forward request")).ok()
}

/// A Record-Route value naming us at `host:port` over `transport` (RFC 3261 §16.6 step 4).
fn record_route(host: &Host, port: u16, transport: Transport, sips: bool) -> String {
    match transport {
        _ if sips => format!("<sips:{host}:{port};lr>"),
        Transport::Udp => format!("<sip:{host}:{port};lr>"),
        stream => format!("<sip:{host}:{port};transport={};lr>", stream.param()),
    }
}

/// Forwards without a transaction, with a branch derived from the incoming one so that a
/// retransmitted ACK gets the same branch (§16.11).
fn send_stateless(ctx: &mut Ctx<'_>, mut req: Request, target: Target) {
    let (host, port) = ctx.settings.local.toward(target.addr, target.transport);
    let mut h = DefaultHasher::new();
    req.headers.get(HeaderName::Via).hash(&mut h);
    let branch = format!("z9hG4bK{:016x}", h.finish());
    req.headers
        .push_front(HeaderName::Via, format!("SIP/2.0/{} {host}:{port};branch={branch};rport", target.transport));
    ctx.send(target, req.encode());
}

/// §16.7 step 10: CANCEL every branch still waiting for a final response.
fn cancel_pending(ctx: &mut Ctx<'_>, call: &mut Call, own: &mut HashSet<ClientId>) {
    for (client, state) in call.branches.iter() {
        if *state != Branch::Done
            && let Some(cancel) = ctx.txns.cancel(*client, ctx.now)
        {
            own.insert(cancel);
        }
    }
}

/// Keeps the better of the stored and the new final response (§16.7 step 6): any 6xx wins,
/// then the lowest class, and within 4xx the ones a caller can act on.
fn consider(call: &mut Call, response: Response) {
    fn rank(status: u16) -> u32 {
        let class = u32::from(status / 100);
        let preferred = matches!(status, 401 | 407 | 415 | 420 | 484);
        match class {
            6 => 0,
            _ => class * 10 + if preferred { 0 } else { 1 } + if status == 408 || status == 487 { 1 } else { 0 },
        }
    }
    if call.best.as_ref().is_none_or(|b| rank(response.status) < rank(b.status)) {
        call.best = Some(response);
    }
}

/// Removes our top Via from a response (§16.7 step 3); `None` if there is no Via left under it.
fn strip_our_via(mut response: Response) -> Option<Response> {
    response.headers.remove_first(HeaderName::Via)?;
    response.headers.has(HeaderName::Via).then_some(response)
}

/// Where to send a response per the Via (RFC 3261 §18.2.2, RFC 3581): received and rport if
/// present, else sent-by.
fn via_target(via: &Via) -> Option<Target> {
    let transport = via.transport()?;
    let ip = match via.params.value("received").and_then(|r| r.parse().ok()) {
        Some(ip) => ip,
        None => via.host.ip()?,
    };
    let port = via.params.value("rport").and_then(|p| p.parse().ok()).or(via.port).unwrap_or(5060);
    Some(Target { transport, addr: std::net::SocketAddr::new(ip, port) })
}

/// The loop-detection hash of §16.6 step 8: over the fields that identify this request as it
/// arrives, so a spiral (a changed Request-URI) is not mistaken for a loop.
fn loop_hash(req: &Request) -> String {
    let mut h = DefaultHasher::new();
    req.uri.to_string().hash(&mut h);
    req.headers.get(HeaderName::From).hash(&mut h);
    req.headers.get(HeaderName::CallId).hash(&mut h);
    req.headers.get(HeaderName::CSeq).and_then(|c| c.split_whitespace().next()).hash(&mut h);
    req.headers.get_all(HeaderName::ProxyRequire).for_each(|v| v.hash(&mut h));
    format!("{:08x}", h.finish() as u32)
}
