//! The registrar under REGISTER and INVITE load well above its per-source limits: the excess is
//! answered 503 with Retry-After, memory stays bounded, and a phone registers normally right after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use voip_tests::flows::{self, Target};
use voip_tests::{Peer, Registrar, RegistrarConfig, peers_ready, temp_dir};

const DOMAIN: &str = "voip.test";
/// The deliberately low limit under test.
const LIMIT_PER_S: u64 = 50;
/// SIPp's rate, in registration attempts (calls) per second, and how long it keeps it up.
const LOAD_PER_S: u64 = 400;
const LOAD_SECS: u64 = 5;
/// The registrar's resident memory may not pass this during the load.
const RSS_BOUND_KIB: u64 = 64 * 1024;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn register_flood_above_the_source_limit_gets_503_with_retry_after_and_recovers() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let dir = temp_dir("overload-").unwrap();
    let file = dir.path().join("registrar.toml");
    std::fs::write(&file, format!("[limits]\nregister_per_source_per_s = {LIMIT_PER_S}\n")).unwrap();
    let mut config = RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002");
    config.config_file = Some(file);
    let registrar = Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"));
    let target = Target::new(registrar.addr(), DOMAIN);

    let pid = registrar.pid().expect("running");
    let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid).unwrap_or(0), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let idle_kib = rss_kib(pid).unwrap_or(0);
    let calls = LOAD_PER_S * LOAD_SECS;
    let started = Instant::now();
    let outcome = target
        .sipp("register_limited.xml")
        .account("1001", "pw1001")
        .auth_uri(DOMAIN)
        .arg("-r")
        .arg(&LOAD_PER_S.to_string())
        .calls(calls as u32)
        .limit(Duration::from_secs(LOAD_SECS + 20))
        .run()
        .unwrap();
    let load_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak_kib = peak.load(Ordering::Relaxed);

    // Every attempt ended in 200 or in a 503 with Retry-After (the scenario checks both).
    assert!(
        outcome.passed(calls),
        "{}\n{}",
        outcome.report().lines().take(40).collect::<Vec<_>>().join("\n"),
        registrar.log_tail(20)
    );
    let count = |status: &str| outcome.messages.lines().filter(|l| l.starts_with(status)).count() as u64;
    let (ok, challenged, refused) = (count("SIP/2.0 200"), count("SIP/2.0 401"), count("SIP/2.0 503"));
    let retry_after = outcome.messages.lines().filter(|l| l.starts_with("Retry-After:")).count() as u64;
    let admitted = ok + challenged;
    println!(
        "overload: {calls} attempts at {LOAD_PER_S}/s in {load_secs:.1} s against {LIMIT_PER_S} REGISTER/s: \
         {admitted} REGISTERs admitted ({ok} registered), {refused} answered 503 (all with Retry-After: {}), \
         RSS {idle_kib} KiB idle, {peak_kib} KiB peak",
        retry_after == refused
    );
    assert!(refused > calls / 2, "most attempts exceed the limit and must get 503: {refused} of {calls}");
    assert_eq!(retry_after, refused, "every 503 carries Retry-After");
    // One second's burst plus the rate over the time the load lasted.
    let allowed = LIMIT_PER_S + (LIMIT_PER_S as f64 * (load_secs + 0.5)) as u64;
    assert!(admitted <= allowed, "{admitted} REGISTERs admitted, more than the limit allows ({allowed})");
    assert!(ok > 0, "some registrations get through during the flood");
    assert!(peak_kib < RSS_BOUND_KIB, "RSS peaked at {peak_kib} KiB, over the {RSS_BOUND_KIB} KiB bound");

    // Right after the flood, a phone at the same address registers normally.
    let stopped = Instant::now();
    let mut recovered = None;
    while stopped.elapsed() < Duration::from_secs(5) {
        if flows::register(&target, "1002", "pw1002").unwrap().passed(1) {
            recovered = Some(stopped.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let recovered =
        recovered.unwrap_or_else(|| panic!("no normal registration within 5 s:\n{}", registrar.log_tail(30)));
    println!(
        "overload: a normal registration succeeded {:.0} ms after the load stopped",
        recovered.as_secs_f64() * 1000.0
    );
}

#[test]
fn invite_flood_above_the_source_limit_gets_503_with_retry_after() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    const INVITE_LIMIT: u64 = 20;
    const INVITE_LOAD: u64 = 200;
    const INVITE_SECS: u64 = 3;
    let dir = temp_dir("overload-").unwrap();
    let file = dir.path().join("registrar.toml");
    std::fs::write(&file, format!("[limits]\ninvite_per_source_per_s = {INVITE_LIMIT}\n")).unwrap();
    let mut config = RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002");
    config.config_file = Some(file);
    let registrar = Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"));
    let target = Target::new(registrar.addr(), DOMAIN);

    let calls = INVITE_LOAD * INVITE_SECS;
    let started = Instant::now();
    let outcome = target
        .sipp("invite_limited.xml")
        .account("1001", "pw1001")
        .service("1002")
        .arg("-r")
        .arg(&INVITE_LOAD.to_string())
        .calls(calls as u32)
        .limit(Duration::from_secs(INVITE_SECS + 20))
        .run()
        .unwrap();
    let load_secs = started.elapsed().as_secs_f64();
    assert!(
        outcome.passed(calls),
        "{}\n{}",
        outcome.report().lines().take(40).collect::<Vec<_>>().join("\n"),
        registrar.log_tail(20)
    );
    let count = |prefix: &str| outcome.messages.lines().filter(|l| l.starts_with(prefix)).count() as u64;
    let (challenged, refused, retry_after) = (count("SIP/2.0 407"), count("SIP/2.0 503"), count("Retry-After:"));
    println!(
        "overload: {calls} INVITEs at {INVITE_LOAD}/s in {load_secs:.1} s against {INVITE_LIMIT}/s: \
         {challenged} admitted (407), {refused} answered 503 ({retry_after} with Retry-After)"
    );
    assert_eq!(challenged + refused, calls, "each INVITE got one final answer");
    assert_eq!(retry_after, refused, "every 503 carries Retry-After");
    let allowed = INVITE_LIMIT + (INVITE_LIMIT as f64 * (load_secs + 0.5)) as u64;
    assert!(challenged <= allowed, "{challenged} INVITEs admitted, more than the limit allows ({allowed})");
    assert!(challenged >= INVITE_LIMIT, "at least one burst is admitted: {challenged}");
}
