//! REGISTER processing (RFC 3261 §10.3, Path per RFC 3327, instance ids per RFC 5626 §6):
//! authenticate, authorize the AOR, validate every Contact, then apply all changes and answer
//! with every current binding.

use std::time::{Duration, Instant, SystemTime};

use proto::sip::{Contact, HeaderName, NameAddr, Request, Response};
use proto::transaction::Target;
use tracing::{debug, warn};

use super::{Core, WallSecs};
use crate::location::Binding;

/// One change a REGISTER asks for, checked before any is applied.
enum Change {
    Upsert(Binding),
    Remove(String),
}

impl Core {
    pub(super) fn register(&mut self, req: &Request, source: Target, now: Instant, wall: WallSecs) -> Response {
        let user = match self.authenticate(req, source, HeaderName::Authorization, wall, now) {
            Ok(user) => user,
            Err(challenge) => return challenge,
        };
        self.apply_register(req, &user, source, wall).unwrap_or_else(|refusal| refusal)
    }

    fn apply_register(
        &mut self,
        req: &Request,
        user: &str,
        source: Target,
        wall: WallSecs,
    ) -> Result<Response, Response> {
        let bad = |status: u16, why: &str| {
            let phrase = proto::sip::reason_phrase(status);
            req.response(status).with_reason(format!("{phrase} ({why})"))
        };
        let to = req.headers.to().map_err(|e| bad(400, e.reason()))?;
        let aor = to.uri.user.clone().ok_or_else(|| bad(400, "To has no user part"))?;
        if aor != user {
            return Err(bad(403, "you may only register your own extension"));
        }
        let unsupported: Vec<&str> =
            req.headers.get_all(HeaderName::Require).filter(|o| !o.eq_ignore_ascii_case("path")).collect();
        if !unsupported.is_empty() {
            let mut r = req.response(420);
            r.headers.push(HeaderName::Unsupported, unsupported.join(", "));
            return Err(r);
        }
        let contacts = req.headers.contacts().map_err(|e| bad(400, e.reason()))?;
        let header_expires = req.headers.expires().map_err(|e| bad(400, e.reason()))?;
        let call_id = req.headers.call_id().map_err(|e| bad(400, e.reason()))?;
        let cseq = req.headers.cseq().map_err(|e| bad(400, e.reason()))?.seq;
        let existing = self.store.lookup(&aor, wall);

        // §10.3 step 7: the same Call-ID needs a higher CSeq. An equal one is this very request
        // again (a retransmission, answered statelessly): it changes nothing and gets the same 200.
        if existing.iter().any(|b| b.call_id == call_id && cseq == b.cseq) {
            return Ok(self.current_bindings(req, &aor, &[], wall));
        }
        let stale = |b: &Binding| b.call_id == call_id && cseq < b.cseq;
        let mut changes = Vec::new();
        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(bad(400, "Contact * needs Expires: 0 and no other Contact"));
            }
            if existing.iter().any(stale) {
                return Err(bad(400, "CSeq is not newer than the binding's"));
            }
            changes.extend(existing.iter().map(|b| Change::Remove(b.uri.clone())));
        }
        let path: Vec<String> = req.headers.get_all(HeaderName::Path).map(str::to_owned).collect();
        let user_agent = req.headers.get(HeaderName::UserAgent).map(str::to_owned);
        for contact in &contacts {
            let Contact::Addr(addr) = contact else { continue };
            let expires = match addr.params.value("expires") {
                Some(v) => {
                    v.parse::<u64>().map_or(self.settings.default_expires, |n| n.min(u64::from(u32::MAX)) as u32)
                }
                None => header_expires.unwrap_or(self.settings.default_expires),
            };
            if expires != 0 && expires < self.settings.min_expires {
                let mut r = req.response(423);
                r.headers.push(HeaderName::MinExpires, self.settings.min_expires.to_string());
                return Err(r);
            }
            let uri = addr.uri.to_string();
            let instance = addr.params.value("+sip.instance").map(str::to_owned);
            let reg_id = addr.params.value("reg-id").and_then(|v| v.parse().ok());
            // RFC 5626 §6: the same instance and reg-id replaces the old binding whatever its URI.
            let same =
                |b: &&Binding| b.uri == uri || (instance.is_some() && b.instance == instance && b.reg_id == reg_id);
            for old in existing.iter().filter(same) {
                if stale(old) {
                    return Err(bad(400, "CSeq is not newer than the binding's"));
                }
                if old.uri != uri {
                    changes.push(Change::Remove(old.uri.clone()));
                }
            }
            if expires == 0 {
                changes.push(Change::Remove(uri));
                continue;
            }
            let q = match addr.params.value("q") {
                Some(v) => parse_q(v).ok_or_else(|| bad(400, "q must be a number from 0 to 1"))?,
                None => 1000,
            };
            changes.push(Change::Upsert(Binding {
                aor: aor.clone(),
                contact: contact_text(addr),
                uri,
                q,
                expires_at: wall + u64::from(expires.min(self.settings.max_expires)),
                call_id: call_id.to_owned(),
                cseq,
                source: source.addr,
                transport: source.transport,
                path: path.clone(),
                instance,
                reg_id,
                user_agent: user_agent.clone(),
            }));
        }

        for change in changes {
            let result = match change {
                Change::Upsert(b) => {
                    debug!(%aor, contact = %b.uri, peer = %source.addr, "registered");
                    self.store.upsert(b)
                }
                Change::Remove(uri) => {
                    debug!(%aor, contact = %uri, "unregistered");
                    self.store.remove(&aor, &uri).map(drop)
                }
            };
            if let Err(e) = result {
                warn!(%aor, error = %e, "location store write failed");
                return Err(bad(500, "location store unavailable"));
            }
        }

        Ok(self.current_bindings(req, &aor, &path, wall))
    }

    /// The 200 for a REGISTER: every current binding of the AOR with its remaining time, the
    /// Path values echoed (RFC 3327 §5.3), and the Date (§10.3 step 8).
    fn current_bindings(&self, req: &Request, aor: &str, path: &[String], wall: WallSecs) -> Response {
        let mut ok = req.response(200);
        for b in self.store.lookup(aor, wall) {
            let Ok(mut contact) = NameAddr::parse(&b.contact) else { continue };
            contact.params.set("expires", Some(&b.expires_at.saturating_sub(wall).to_string()));
            ok.headers.push(HeaderName::Contact, contact.to_string());
        }
        for p in path {
            ok.headers.push(HeaderName::Path, p.clone());
        }
        if !path.is_empty() {
            ok.headers.push(HeaderName::Supported, "path");
        }
        ok.headers.push(HeaderName::Date, httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(wall)));
        ok
    }
}

/// The Contact as the phone sent it, minus `expires` (the registrar's answer carries its own).
fn contact_text(addr: &NameAddr) -> String {
    let mut addr = addr.clone();
    addr.params.remove("expires");
    addr.to_string()
}

/// Reads a q-value (RFC 3261 §20.10: `0`, `1`, or up to three decimals) as thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let frac_val: u16 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    let q = whole * 1000 + frac_val;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::parse_q;

    #[test]
    fn q_values_read_as_thousandths() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("1.0"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("x"), None);
    }
}
