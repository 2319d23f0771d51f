//! kill -9 safety of the location store: every REGISTER the registrar answered 200 must still be
//! bound after it is killed with SIGKILL mid-load and restarted on the same data directory. The
//! store claims each batch of bindings is committed before its 200s go out (group commit).

use std::collections::BTreeSet;
use std::time::Duration;

use voip_tests::flows::Target;
use voip_tests::{Peer, Registrar, RegistrarConfig, peers_ready};

const DOMAIN: &str = "voip.test";
/// Distinct users registered, and the steady rate SIPp registers them at.
const USERS: u32 = 300;
const RATE_PER_S: u32 = 60;
/// When the registrar is killed, well inside the load's USERS / RATE_PER_S = 5 s.
const KILL_AFTER: Duration = Duration::from_millis(2500);

fn extension(n: u32) -> String {
    format!("{}", 2000 + n)
}

fn password(ext: &str) -> String {
    format!("pw{ext}")
}

/// The extensions whose REGISTER got a 200, from SIPp's message trace.
fn registered(messages: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut in_ok = false;
    for line in messages.lines() {
        if line.starts_with("SIP/2.0 ") {
            in_ok = line.starts_with("SIP/2.0 200");
        } else if in_ok && (line.starts_with("To:") || line.starts_with("t:")) {
            let user = line.split("sip:").nth(1).and_then(|rest| rest.split('@').next());
            found.extend(user.map(str::to_owned));
            in_ok = false;
        }
    }
    found
}

#[test]
fn every_registration_answered_200_survives_sigkill_and_restart() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let mut config = RegistrarConfig::new(DOMAIN).user("9999", "pw9999");
    for n in 0..USERS {
        let ext = extension(n);
        let pw = password(&ext);
        config = config.user(&ext, &pw);
    }
    let mut registrar = Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"));
    let target = Target::new(registrar.addr(), DOMAIN);

    let mut load = target.sipp("register.xml").auth_uri(DOMAIN).arg("-r").arg(&RATE_PER_S.to_string());
    for n in 0..USERS {
        let ext = extension(n);
        load = load.account(&ext, &password(&ext));
    }
    // Calls cut off by the kill give up after one retransmission instead of SIPp's five.
    let run = load.calls(USERS).arg("-max_non_invite_retrans").arg("1").limit(Duration::from_secs(30)).spawn().unwrap();
    std::thread::sleep(KILL_AFTER);
    registrar.kill();
    let outcome = run.wait().unwrap();
    let acknowledged = registered(&outcome.messages);
    assert!(
        !acknowledged.is_empty() && acknowledged.len() < USERS as usize,
        "the kill should land mid-load: {} of {USERS} registered\n{}",
        acknowledged.len(),
        outcome.report().lines().take(20).collect::<Vec<_>>().join("\n")
    );

    registrar.restart().unwrap_or_else(|error| panic!("restart on the same data: {error}"));
    let mut query = target.sipp("register_query.xml").auth_uri(DOMAIN).arg("-r").arg("200");
    for ext in &acknowledged {
        query = query.account(ext, &password(ext));
    }
    let kept = query.calls(acknowledged.len() as u32).limit(Duration::from_secs(30)).run().unwrap();
    println!(
        "kill -9: {} of {USERS} REGISTERs answered 200 before SIGKILL at {KILL_AFTER:?} ({RATE_PER_S}/s); \
         after restart {} bindings kept, {} lost",
        acknowledged.len(),
        kept.successful,
        acknowledged.len() as u64 - kept.successful
    );
    assert!(kept.passed(acknowledged.len() as u64), "bindings lost:\n{}", kept.report());

    // The query can fail: an extension that never registered has nothing to list.
    let never = target.sipp("register_query.xml").auth_uri(DOMAIN).account("9999", "pw9999").run().unwrap();
    assert!(!never.passed(1), "an extension that never registered must show no binding:\n{}", never.report());
}
