//! Our side as client within a dialog (RFC 3261 §12.2.1, §13.2.2.4): building requests and the
//! ACK for a 2xx, and what responses to them do to the dialog.

use bytes::Bytes;
use rand::RngCore;

use super::random::{initial_cseq, new_branch};
use super::{Dialog, DialogError, DialogId, DialogState, is_target_refresh, route};
use crate::sip::{HeaderName, Host, Method, ParseError, Request, Response, Transport};

/// The top Via's sent-by (§18.1.1): the transport a request leaves on and the address its
/// responses come back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentBy {
    /// The transport.
    pub transport: Transport,
    /// Our host or address as the peer reaches it.
    pub host: Host,
    /// Our port, if not the transport's default.
    pub port: Option<u16>,
}

impl SentBy {
    /// A Via value with this sent-by, the given branch and `rport` (RFC 3581).
    pub fn via(&self, branch: &str) -> String {
        match self.port {
            Some(port) => format!("SIP/2.0/{} {}:{port};branch={branch};rport", self.transport, self.host),
            None => format!("SIP/2.0/{} {};branch={branch};rport", self.transport, self.host),
        }
    }

    /// Rewrites the top Via's transport and sent-by, keeping its branch and parameters: for a
    /// caller that learns its local address only once the next hop is resolved.
    pub fn stamp(&self, request: &mut Request) -> Result<(), ParseError> {
        let mut via = request.headers.via()?;
        via.transport = self.transport.as_str().to_owned();
        via.host = self.host.clone();
        via.port = self.port;
        request.headers.remove_first(HeaderName::Via);
        request.headers.push_front(HeaderName::Via, via.to_string());
        Ok(())
    }
}

impl Dialog {
    /// Builds a request within the dialog (§12.2.1.1): Request-URI and Route from the remote
    /// target and route set (strict routers handled), From and To with their tags, the Call-ID,
    /// the next local CSeq (a random first one if we have sent none, §8.1.1.5), Max-Forwards 70,
    /// a top Via with a fresh branch, and our Contact on INVITE, UPDATE, SUBSCRIBE, NOTIFY and
    /// REFER. The caller adds the body and any other headers, and sends it to
    /// [`next_hop`](Self::next_hop).
    ///
    /// ACK and CANCEL reuse the CSeq of our last re-INVITE: the ACK (for its 2xx) gets a fresh
    /// branch, the CANCEL the re-INVITE's own Via (§9.1). Building an INVITE marks it pending
    /// until [`receive_response`](Self::receive_response) sees its final response.
    ///
    /// Refused on a terminated dialog, for an INVITE while another is in progress either way
    /// (§14.1), and for BYE from the callee on an early dialog (§15).
    pub fn request<R: RngCore + ?Sized>(
        &mut self,
        method: Method,
        sent_by: &SentBy,
        rng: &mut R,
    ) -> Result<Request, DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        match method {
            Method::Ack => {
                let (cseq, _) = self.last_invite.as_ref().ok_or(DialogError::NoInvite)?;
                return Ok(self.build(Method::Ack, *cseq, sent_by.via(&new_branch(rng))));
            }
            Method::Cancel => {
                let (cseq, via) = self
                    .last_invite
                    .as_ref()
                    .filter(|(cseq, _)| self.local_invite_pending == Some(*cseq))
                    .ok_or(DialogError::NoInvite)?;
                return Ok(self.build(Method::Cancel, *cseq, via.clone()));
            }
            Method::Invite if self.local_invite_pending.is_some() || self.remote_invite_pending.is_some() => {
                return Err(DialogError::InvitePending);
            }
            Method::Bye if self.state == DialogState::Early && !self.owns_call_id => {
                return Err(DialogError::ByeOnEarlyDialog);
            }
            _ => {}
        }
        let cseq = match self.local_cseq {
            None => initial_cseq(rng),
            Some(n) => n.checked_add(1).ok_or(DialogError::CSeqExhausted)?,
        };
        self.local_cseq = Some(cseq);
        let via = sent_by.via(&new_branch(rng));
        let mut request = self.build(method, cseq, via.clone());
        if is_target_refresh(&request.method) || request.method == Method::Refer {
            request.headers.push(HeaderName::Contact, self.local_contact.to_string());
        }
        if request.method == Method::Invite {
            self.last_invite = Some((cseq, via));
            self.local_invite_pending = Some(cseq);
        }
        Ok(request)
    }

    /// Builds the ACK for a 2xx to `invite` (§13.2.2.4): end to end through the route set like
    /// any request on the dialog, with a fresh branch, the INVITE's CSeq number with method ACK,
    /// and the INVITE's credentials. `sdp` is the answer when the INVITE carried no offer.
    /// Resend the same ACK for every retransmission of that 2xx.
    pub fn ack_for_2xx<R: RngCore + ?Sized>(
        &self,
        invite: &Request,
        sdp: Option<Bytes>,
        sent_by: &SentBy,
        rng: &mut R,
    ) -> Result<Request, DialogError> {
        let cseq = invite.headers.cseq()?;
        if cseq.method != Method::Invite {
            return Err(DialogError::NotThisRequest("method"));
        }
        let mut ack = self.build(Method::Ack, cseq.seq, sent_by.via(&new_branch(rng)));
        for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
            for value in invite.headers.get_all(name) {
                ack.headers.push(name, value);
            }
        }
        if let Some(sdp) = sdp {
            ack.headers.push(HeaderName::ContentType, "application/sdp");
            ack.body = sdp;
        }
        Ok(ack)
    }

    /// The ACK and then the BYE for a 2xx we do not want, as from a second fork after another
    /// fork's 2xx was accepted (§13.2.2.4). The dialog is terminated afterwards.
    pub fn ack_and_bye<R: RngCore + ?Sized>(
        &mut self,
        invite: &Request,
        sent_by: &SentBy,
        rng: &mut R,
    ) -> Result<(Request, Request), DialogError> {
        let ack = self.ack_for_2xx(invite, None, sent_by, rng)?;
        let bye = self.request(Method::Bye, sent_by, rng)?;
        self.state = DialogState::Terminated;
        Ok((ack, bye))
    }

    /// Applies a response to a request we sent on this dialog (§12.2.1.2, §13.2.2.4, §15):
    /// - any final response to our pending INVITE ends its pendency;
    /// - a 2xx to the INVITE that made an early dialog confirms it, and the route set and remote
    ///   target are recomputed from that 2xx;
    /// - a 2xx to a re-INVITE, UPDATE, SUBSCRIBE or NOTIFY replaces the remote target with its
    ///   Contact;
    /// - a non-2xx final to the INVITE that made an early dialog, a 481 or 408 to anything, and
    ///   a final response to BYE (except a 401/407 challenge) terminate the dialog.
    ///
    /// A response of another dialog is refused, and so is one whose headers cannot be read;
    /// neither changes the dialog.
    pub fn receive_response(&mut self, response: &Response) -> Result<(), DialogError> {
        if DialogId::of_response(response).as_ref() != Some(&self.id) {
            return Err(DialogError::NotThisDialog);
        }
        let cseq = response.headers.cseq()?;
        let status = response.status;
        if status >= 200 && cseq.method == Method::Invite && self.local_invite_pending == Some(cseq.seq) {
            self.local_invite_pending = None;
        }
        let success = (200..300).contains(&status);
        match cseq.method {
            _ if status == 481 || status == 408 => self.state = DialogState::Terminated,
            Method::Invite if success && self.state == DialogState::Early => {
                let mut route_set = route::record_route(&response.headers)?;
                route_set.reverse();
                self.refresh_target(&response.headers)?;
                self.route_set = route_set;
                self.state = DialogState::Confirmed;
            }
            Method::Invite if status >= 300 && self.state == DialogState::Early => {
                self.state = DialogState::Terminated;
            }
            ref m if success && is_target_refresh(m) => self.refresh_target(&response.headers)?,
            Method::Bye if status >= 200 && status != 401 && status != 407 => self.state = DialogState::Terminated,
            _ => {}
        }
        Ok(())
    }

    /// A request on this dialog with the given CSeq and top Via, before Contact and body.
    fn build(&self, method: Method, cseq: u32, via: String) -> Request {
        let (uri, routes) = route::request_target(&self.route_set, &self.remote_target);
        let mut request = Request::new(method, uri);
        let h = &mut request.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        for route in routes {
            h.push(HeaderName::Route, route);
        }
        h.push(HeaderName::From, self.local.to_string());
        h.push(HeaderName::To, self.remote.to_string());
        h.push(HeaderName::CallId, self.id.call_id.as_str());
        h.push(HeaderName::CSeq, format!("{cseq} {}", request.method));
        request
    }
}
