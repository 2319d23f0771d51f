//! The registrar against the scanner attackers use on SIP servers (SIPVicious): `svwar` must
//! learn no extension whatever method it scans with, `svcrack` must be locked out before it
//! reaches the right password, and `svmap` must see no software version. Each hostile run is
//! paired, where the tool can succeed, with a run it must win, so the test can fail.

use std::path::PathBuf;
use std::time::Duration;

use voip_tests::{Peer, Registrar, RegistrarConfig, ScanOutput, free_port, peers_ready, scan, temp_dir};

const DOMAIN: &str = "voip.test";
/// Extensions inside the range svwar scans.
const EXTENSIONS: [(&str, &str); 3] = [("1001", "pw1001"), ("1050", "pw1050"), ("1099", "pw1099")];
/// The registrar's default lockout: failures from one source before it is refused.
const MAX_FAILURES: usize = 10;

/// A registrar with [`EXTENSIONS`], and `toml` as its config file.
fn registrar(toml: &str) -> (Registrar, tempfile::TempDir) {
    let dir = temp_dir("hostile-").unwrap();
    let file: PathBuf = dir.path().join("registrar.toml");
    std::fs::write(&file, toml).unwrap();
    let mut config = RegistrarConfig::new(DOMAIN);
    for (ext, pw) in EXTENSIONS {
        config = config.user(ext, pw);
    }
    config.config_file = Some(file);
    let registrar = Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"));
    (registrar, dir)
}

fn run(peer: Peer, registrar: &Registrar, extra: &[&str], limit: Duration) -> ScanOutput {
    let (port, local) = (registrar.addr().port().to_string(), free_port().unwrap().to_string());
    let mut args = extra.to_vec();
    args.extend(["-p", &port, "-P", &local, "127.0.0.1"]);
    scan(peer, &args, limit).unwrap_or_else(|error| panic!("run {}: {error}", peer.program()))
}

/// svcrack against extension 1050 with a wordlist whose right password comes after
/// `MAX_FAILURES + 5` wrong ones.
fn crack(registrar: &Registrar) -> ScanOutput {
    let dir = temp_dir("words-").unwrap();
    let words = dir.path().join("words.txt");
    let mut list: Vec<String> = (0..MAX_FAILURES + 5).map(|n| format!("guess{n}")).collect();
    list.push("pw1050".to_owned());
    std::fs::write(&words, list.join("\n") + "\n").unwrap();
    let words = words.display().to_string();
    run(Peer::Svcrack, registrar, &["-u1050", "-d", &words, "--domain", DOMAIN], Duration::from_secs(10))
}

#[test]
fn svwar_learns_no_extension_with_register_invite_or_options() {
    if !peers_ready(&[Peer::Svwar]) {
        return;
    }
    let (registrar, _dir) = registrar("");
    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let out = run(Peer::Svwar, &registrar, &["-e1000-1100", "-m", method, "--force"], Duration::from_secs(60));
        assert!(!out.stopped, "svwar -m {method} did not finish in 60 s:\n{}", out.text);
        assert!(out.text.contains("found nothing"), "svwar -m {method} reported something:\n{}", out.text);
        for (ext, _) in EXTENSIONS {
            assert!(
                !out.text.lines().any(|l| l.starts_with('|') && l.contains(ext)),
                "svwar -m {method} listed extension {ext}:\n{}",
                out.text
            );
        }
    }
}

#[test]
fn svcrack_is_locked_out_before_it_reaches_the_password() {
    if !peers_ready(&[Peer::Svcrack]) {
        return;
    }
    let (registrar, _dir) = registrar("");
    let out = crack(&registrar);
    assert!(!out.text.contains("pw1050"), "svcrack found the password:\n{}", out.text);
}

#[test]
fn svcrack_finds_the_password_when_the_lockout_is_off() {
    if !peers_ready(&[Peer::Svcrack]) {
        return;
    }
    // The control for the test above: the same wordlist wins without the lockout.
    let (registrar, _dir) = registrar("[auth]\nmax_failures = 0\n");
    let out = crack(&registrar);
    assert!(
        out.text.lines().any(|l| l.contains("1050") && l.contains("pw1050")),
        "svcrack did not find the password with the lockout off:\n{}",
        out.text
    );
}

#[test]
fn svmap_sees_no_software_version_unless_server_header_is_on() {
    if !peers_ready(&[Peer::Svmap]) {
        return;
    }
    let (quiet, _dir) = registrar("");
    let out = run(Peer::Svmap, &quiet, &[], Duration::from_secs(20));
    let row = format!("127.0.0.1:{}", quiet.addr().port());
    let line = out.text.lines().find(|l| l.contains(&row)).unwrap_or_else(|| panic!("svmap missed us:\n{}", out.text));
    assert!(line.contains("unknown") && !line.contains("voip-registrar"), "svmap fingerprinted us:\n{}", out.text);

    let (named, _dir) = registrar("server_header = true\n");
    let out = run(Peer::Svmap, &named, &[], Duration::from_secs(20));
    assert!(
        out.text.contains(&format!("voip-registrar/{}", env!("CARGO_PKG_VERSION"))),
        "with server_header = true svmap should show the version:\n{}",
        out.text
    );
}
