//! The registrar under load it cannot serve: first REGISTER and INVITE floods well above its
//! per-source limits, then REGISTER load at twice its own measured capacity with no per-source
//! limit at all. In each the excess is answered 503 with Retry-After, memory stays bounded, and
//! a phone registers normally right after.

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

/// Samples a process's resident memory every 50 ms on a thread of its own, until stopped.
struct PeakRss {
    done: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakRss {
    fn start(pid: u32) -> PeakRss {
        let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let thread = {
            let (done, peak) = (done.clone(), peak.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid).unwrap_or(0), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        PeakRss { done, peak, thread }
    }

    /// Stops sampling; the highest RSS seen, in KiB.
    fn stop(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler does not panic");
        self.peak.load(Ordering::Relaxed)
    }
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
    let sampler = PeakRss::start(pid);
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
    let peak_kib = sampler.stop();

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

/// Accounts the capacity and overload runs register, beside 1001 and 1002.
const LOAD_USERS: u32 = 500;
/// Registrations SIPp keeps in flight while measuring capacity: enough to keep the registrar
/// busy all the time, so what it completes per second is what it can do.
const IN_FLIGHT: u32 = 200;
const CAPACITY_SECS: u64 = 4;
/// How long the overload lasts, and how many SIPp processes generate it (each from its own
/// port, with half the rate), so that no single generator is the limit.
const OVERLOAD_SECS: u64 = 8;
const GENERATORS: u64 = 2;
/// How long after the load a registration and a call may take to work again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(10);
const OVERLOAD_RSS_BOUND_KIB: u64 = 128 * 1024;

/// Counts the received answers in a SIPp message trace whose status line starts with `status`.
fn answers(messages: &str, status: &str) -> u64 {
    messages.lines().filter(|l| l.starts_with(status)).count() as u64
}

/// Twice the registrar's capacity, from one machine, over UDP, with per-source limits off: what
/// its own overload protection does. The capacity is measured first in the same run, closed
/// loop: SIPp keeps [`IN_FLIGHT`] registrations (REGISTER → 401 → REGISTER → 200) going for
/// [`CAPACITY_SECS`], and the 200s per second are the capacity of the registrar binary under
/// test (the debug build under `cargo test`), sharing the machine's two cores with SIPp. Then
/// [`GENERATORS`] SIPp processes start twice that many registrations per second, open loop, for
/// [`OVERLOAD_SECS`]. Every answer must be a 401, a 200 or a 503 with Retry-After; the registrar
/// must stay up with bounded memory, refuse part of the load with 503, and after the load stops
/// register a phone and put a call through within [`RECOVERY_LIMIT`].
///
/// What was seen here (2026-11-25, other builds sharing the machine): capacity 1,935/s, then
/// 3,872/s offered for 8 s: 6,300 registrations completed and 24,675 answered 503, none lost,
/// RSS 34 MB at most; 130 ms after the load a phone registered, 630 ms after it a call had
/// completed. Most of the registrar's time under this load goes to answering 503s: it completed
/// about 40% of its capacity meanwhile. Before the shell let its socket readers drain the
/// kernel's buffer into the inbound queue, the same load got no 503 at all: the backlog waited
/// unseen in the kernel (8 MB), clients retransmitted into it, and 16,000 registrations took 25 s.
#[test]
fn register_load_at_twice_the_measured_capacity_is_shed_with_503_and_service_returns() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let extension = |n: u32| format!("{}", 3000 + n);
    let mut config = RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002");
    for n in 0..LOAD_USERS {
        config = config.user(&extension(n), &format!("pw{}", extension(n)));
    }
    let mut registrar = Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"));
    let target = Target::new(registrar.addr(), DOMAIN);
    let load = |scenario: &str| {
        let mut sipp = target.sipp(scenario).auth_uri(DOMAIN);
        for n in 0..LOAD_USERS {
            sipp = sipp.account(&extension(n), &format!("pw{}", extension(n)));
        }
        sipp
    };

    // Capacity, closed loop: registrations completed per second. SIPp's -timeout ends the run,
    // so it exits with an error status.
    let started = Instant::now();
    let probe = load("register_limited.xml")
        .arg("-r")
        .arg("20000")
        .arg("-l")
        .arg(&IN_FLIGHT.to_string())
        .calls(1_000_000)
        .limit(Duration::from_secs(CAPACITY_SECS))
        .run()
        .unwrap();
    let completed = answers(&probe.messages, "SIP/2.0 200");
    let capacity = completed as f64 / started.elapsed().as_secs_f64();
    assert!(
        completed > 100 && probe.failed == 0,
        "the capacity run should register steadily:\n{}",
        probe.report().lines().take(30).collect::<Vec<_>>().join("\n")
    );

    // Twice that, open loop.
    let rate = (2.0 * capacity).round() as u64;
    let per_generator = rate.div_ceil(GENERATORS);
    let calls = per_generator * OVERLOAD_SECS;
    let pid = registrar.pid().expect("running");
    let idle_kib = rss_kib(pid).unwrap_or(0);
    let sampler = PeakRss::start(pid);
    let started = Instant::now();
    let runs: Vec<_> = (0..GENERATORS)
        .map(|_| {
            load("register_limited.xml")
                .arg("-r")
                .arg(&per_generator.to_string())
                .arg("-l")
                .arg(&calls.to_string())
                .calls(calls as u32)
                // The load ends here: what has not finished a second after the last call
                // started is cut off with SIPp.
                .limit(Duration::from_secs(OVERLOAD_SECS + 1))
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<_> = runs.into_iter().map(|run| run.wait().unwrap()).collect();
    let load_secs = started.elapsed().as_secs_f64();
    let peak_kib = sampler.stop();
    let alive = registrar.is_running();

    let sum = |f: &dyn Fn(&voip_tests::SippOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let started_calls = sum(&|o| o.created);
    let ok = sum(&|o| answers(&o.messages, "SIP/2.0 200"));
    let refused = sum(&|o| answers(&o.messages, "SIP/2.0 503"));
    let retry_after = sum(&|o| answers(&o.messages, "Retry-After:"));
    let (registered, failed) = (sum(&|o| o.successful), sum(&|o| o.failed));
    let offered = started_calls as f64 / OVERLOAD_SECS as f64;
    println!(
        "overload: capacity {capacity:.0} registrations/s ({completed} in {CAPACITY_SECS} s, {IN_FLIGHT} in flight); \
         then {started_calls} registrations started at {offered:.0}/s ({:.2}× capacity) by {GENERATORS} SIPps \
         over {load_secs:.1} s: {registered} ended 200 or 503, {failed} failed (timed out or cut off); \
         answers: {ok} × 200, {refused} × 503 ({retry_after} Retry-After); RSS {idle_kib} KiB idle, \
         {peak_kib} KiB peak",
        offered / capacity
    );
    let challenged = sum(&|o| answers(&o.messages, "SIP/2.0 401"));
    let answered = sum(&|o| answers(&o.messages, "SIP/2.0 "));
    assert_eq!(answered, ok + challenged + refused, "every answer is a 401, a 200 or a 503");
    assert!(alive, "the registrar died under the load:\n{}", registrar.log_tail(30));
    assert!(offered >= 1.8 * capacity, "the generators reached only {offered:.0}/s: not an overload");
    assert!(refused > 0, "past its capacity the registrar must refuse some registrations with 503");
    assert_eq!(retry_after, refused, "every 503 carries Retry-After");
    assert!(ok > 0, "registrations still succeed during the overload");
    assert!(peak_kib < OVERLOAD_RSS_BOUND_KIB, "RSS peaked at {peak_kib} KiB, over {OVERLOAD_RSS_BOUND_KIB} KiB");

    // After the load: a normal registration, then a call through the proxy.
    let stopped = Instant::now();
    let mut registered_after = None;
    while stopped.elapsed() < RECOVERY_LIMIT {
        if flows::register(&target, "1002", "pw1002").unwrap().passed(1) {
            registered_after = Some(stopped.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let registered_after = registered_after
        .unwrap_or_else(|| panic!("no normal registration within {RECOVERY_LIMIT:?}:\n{}", registrar.log_tail(30)));
    let callee = flows::spawn_registered_callee(&target, "1002", "pw1002").unwrap();
    let call = flows::call(&target, "1001", "pw1001", "1002").unwrap();
    let call_after = stopped.elapsed();
    drop(callee);
    assert!(call.passed(1), "a call after the overload must go through:\n{}", call.report());
    assert!(call_after < RECOVERY_LIMIT, "the first call completed only {call_after:?} after the load");
    println!(
        "overload: after the load, a normal registration succeeded in {:.0} ms, a full call completed in {:.0} ms",
        registered_after.as_secs_f64() * 1000.0,
        call_after.as_secs_f64() * 1000.0
    );
}
