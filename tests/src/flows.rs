//! The SIP flows the integration tests run, the same against our registrar and
//! against Kamailio: each one drives the SIPp scenarios of `tests/sipp/` with the
//! right users, keys and digest-uri, and returns SIPp's outcome for the test to judge.

use crate::{HarnessError, Result, Sipp, SippOutcome, SippRun};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a callee may take to register before the flow gives up.
const REGISTER_LIMIT: Duration = Duration::from_secs(10);

/// The server under test: where requests go and the domain it serves.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Its domain, also the digest realm.
    pub domain: String,
}

impl Target {
    /// A target at `addr` serving `domain`.
    pub fn new(addr: SocketAddr, domain: &str) -> Self {
        Self { addr, domain: domain.to_owned() }
    }

    /// A run of `scenario` against this target with `[domain]` set.
    pub fn sipp(&self, scenario: &str) -> Sipp {
        Sipp::scenario(scenario).remote(self.addr).key("domain", &self.domain)
    }
}

/// `register.xml`: REGISTER → 401 → REGISTER with credentials, from a free port.
pub fn register(target: &Target, extension: &str, password: &str) -> Result<SippOutcome> {
    register_from(target, extension, password, crate::free_port()?)
}

/// `register.xml` from the UDP port `local_port`, so the binding's Contact is
/// `sip:EXT@127.0.0.1:local_port` (a later [`answer_one_call`] on it gets the calls).
pub fn register_from(target: &Target, extension: &str, password: &str, local_port: u16) -> Result<SippOutcome> {
    target.sipp("register.xml").account(extension, password).auth_uri(&target.domain).local_port(local_port).run()
}

/// `register_wrong.xml`: the same REGISTER round answered with `password`, which
/// must be refused.
pub fn register_wrong(target: &Target, extension: &str, password: &str) -> Result<SippOutcome> {
    target.sipp("register_wrong.xml").account(extension, password).auth_uri(&target.domain).run()
}

/// Starts `uas.xml` + `uas_answer.xml`: the callee registers `extension` and then
/// answers one call through the proxy. Returns once it is registered.
pub fn spawn_registered_callee(target: &Target, extension: &str, password: &str) -> Result<SippRun> {
    spawn_callee(target, extension, password, "uas_answer.xml", &[])
}

/// Starts `uas.xml` with the out-of-call scenario `handler` (`uas_answer.xml`,
/// `uas_busy.xml`, `uas_silent.xml`, `uas_ring_cancel.xml`, `uas_reinvite.xml`) and
/// `-set NAME VALUE` for each of `globals`: the callee registers `extension`, then
/// `handler` takes the one call the proxy forwards. Returns once it is registered.
pub fn spawn_callee(
    target: &Target,
    extension: &str,
    password: &str,
    handler: &str,
    globals: &[(&str, &str)],
) -> Result<SippRun> {
    let mut sipp = target
        .sipp("uas.xml")
        .out_of_call(handler)
        .account(extension, password)
        .auth_uri(&target.domain)
        .limit(Duration::from_secs(45));
    for (name, value) in globals {
        sipp = sipp.set(name, value);
    }
    let mut run = sipp.spawn()?;
    if run.wait_for_log(&format!("registered {extension}"), REGISTER_LIMIT) {
        return Ok(run);
    }
    let report = match run.wait() {
        Ok(outcome) => outcome.report(),
        Err(error) => error.to_string(),
    };
    Err(HarnessError::Scenario {
        what: format!("the callee {extension} did not register within {REGISTER_LIMIT:?}"),
        report,
    })
}

/// Starts `uas_answer.xml` alone on `local_port`: it answers one call through the
/// proxy without registering (the binding must already exist).
pub fn answer_one_call(local_port: u16) -> Result<SippRun> {
    Sipp::scenario("uas_answer.xml").local_port(local_port).limit(Duration::from_secs(30)).spawn()
}

/// `uac.xml`: `caller` calls `callee` through the proxy with proxy authentication.
pub fn call(target: &Target, caller: &str, password: &str, callee: &str) -> Result<SippOutcome> {
    call_with(target, "uac.xml", caller, password, callee)
}

/// The caller scenario `scenario` (`uac.xml`, `uac_cancel.xml`, `uac_reinvited.xml`,
/// `uac_compact.xml`): `caller` calls `callee` through the proxy with proxy
/// authentication.
pub fn call_with(target: &Target, scenario: &str, caller: &str, password: &str, callee: &str) -> Result<SippOutcome> {
    target
        .sipp(scenario)
        .account(caller, password)
        .service(callee)
        .auth_uri(&format!("{callee}@{}", target.domain))
        .run()
}

/// `uac_expect.xml`: `caller` calls `callee` and must be refused with `code`
/// after authenticating.
pub fn call_expecting(target: &Target, caller: &str, password: &str, callee: &str, code: u16) -> Result<SippOutcome> {
    target
        .sipp("uac_expect.xml")
        .account(caller, password)
        .service(callee)
        .set("expected", &code.to_string())
        .auth_uri(&format!("{callee}@{}", target.domain))
        .run()
}

/// Both sides of a call through the proxy.
#[derive(Debug)]
pub struct CallOutcome {
    /// The caller (`uac.xml`).
    pub caller: SippOutcome,
    /// The callee (`uas.xml` with `uas_answer.xml`).
    pub callee: SippOutcome,
}

impl CallOutcome {
    /// Whether both sides completed their one call.
    pub fn passed(&self) -> bool {
        self.caller.passed(1) && self.callee.passed(1)
    }

    /// Both reports, for assertion messages.
    pub fn report(&self) -> String {
        format!("caller: {}\n\ncallee: {}", self.caller.report(), self.callee.report())
    }
}

/// The callee registers, then the caller calls it through the proxy:
/// INVITE/407/INVITE/100/180/200/ACK/BYE/200, with ACK and BYE routed via the proxy.
pub fn call_through_proxy(target: &Target, caller: (&str, &str), callee: (&str, &str)) -> Result<CallOutcome> {
    let callee_run = spawn_registered_callee(target, callee.0, callee.1)?;
    let caller_outcome = call(target, caller.0, caller.1, callee.0)?;
    Ok(CallOutcome { caller: caller_outcome, callee: callee_run.wait()? })
}
