//! Answering digest challenges for our requests (RFC 3261 §22.2, §22.3; RFC 7616 §3.4): the
//! chosen challenge is kept, so later requests carry credentials up front with the nonce count
//! counting up, and a second challenge for the same nonce means the password is wrong.

use proto::auth::{Challenge, choose, respond};
use proto::sip::{HeaderName, Request, Response};
use rand::RngCore;

/// The credentials of one user and the challenge they last answered.
#[derive(Debug, Clone)]
pub(crate) struct Digest {
    user: String,
    password: String,
    /// The challenge being answered, and whether it came in a 407 (Proxy-Authorization).
    current: Option<(Challenge, bool)>,
    nc: u32,
}

impl Digest {
    pub(crate) fn new(user: &str, password: &str) -> Digest {
        Digest { user: user.to_owned(), password: password.to_owned(), current: None, nc: 0 }
    }

    /// Takes the challenges of a 401 or 407. False when there is nothing new to answer: no
    /// usable challenge, or the same nonce again without `stale` (the password is wrong).
    pub(crate) fn on_challenge(&mut self, response: &Response) -> bool {
        let proxy = response.status == 407;
        let header = if proxy { HeaderName::ProxyAuthenticate } else { HeaderName::WwwAuthenticate };
        let offered: Vec<Challenge> =
            response.headers.get_all(header).filter_map(|value| Challenge::parse(value).ok()).collect();
        let Some(chosen) = choose(&offered) else { return false };
        let repeated = self.current.as_ref().is_some_and(|(c, _)| c.nonce == chosen.nonce && c.realm == chosen.realm);
        if repeated && !chosen.stale {
            return false;
        }
        self.current = Some((chosen.clone(), proxy));
        self.nc = 0;
        true
    }

    /// Adds credentials for the kept challenge to `request`, if there is one.
    pub(crate) fn authorize<R: RngCore + ?Sized>(&mut self, request: &mut Request, rng: &mut R) {
        let Some((challenge, proxy)) = &self.current else { return };
        self.nc = self.nc.wrapping_add(1);
        let cnonce = format!("{:016x}", rng.next_u64());
        let uri = request.uri.to_string();
        let credentials =
            respond(challenge, request.method.as_str(), &uri, &self.user, &self.password, &cnonce, self.nc);
        let header = if *proxy { HeaderName::ProxyAuthorization } else { HeaderName::Authorization };
        request.headers.remove_all(header);
        request.headers.push(header, credentials.to_string());
    }
}
