use super::*;
use crate::{DEFAULT_REGISTRAR_TOML, Position};

fn parse(text: &str) -> Result<RegistrarConfig, ConfigError> {
    RegistrarConfig::from_toml(text, Path::new("registrar.toml"))
}

/// The rendered error for `text`, which must fail.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_file_gives_the_defaults() {
    assert_eq!(parse("").expect("empty is valid"), RegistrarConfig::default());
}

#[test]
fn example_file_holds_exactly_the_defaults() {
    let parsed = parse(DEFAULT_REGISTRAR_TOML).expect("the example parses");
    assert_eq!(parsed, RegistrarConfig::default());
}

#[test]
fn example_file_mentions_every_option() {
    let keys = [
        "bind",
        "domain",
        "realm",
        "data_dir",
        "sip_trace",
        "pcap",
        "advertise",
        "[timers]",
        "t1_ms",
        "t2_ms",
        "t4_ms",
        "[registration]",
        "min_expires",
        "max_expires",
        "default_expires",
        "[auth]",
        "algorithms",
        "nonce_lifetime_secs",
        "max_failures",
        "failure_window_secs",
        "lockout_secs",
        "[limits]",
        "max_message_size",
        "max_transactions",
        "[tls]",
        "certificate",
        "private_key",
        "[accounts]",
    ];
    for key in keys {
        assert!(DEFAULT_REGISTRAR_TOML.contains(key), "example lacks {key}");
    }
}

#[test]
fn example_file_commented_options_parse_when_uncommented() {
    let uncommented: String = DEFAULT_REGISTRAR_TOML
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.contains(" = ") => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = parse(&uncommented).expect("uncommented example parses");
    assert_eq!(config.domain.as_deref(), Some("example.com"));
    assert_eq!(config.advertise.as_deref(), Some("sip.example.com:5060"));
    assert_eq!(config.accounts.len(), 2);
}

#[test]
fn set_values_override_defaults() {
    let config = parse(
        "bind = [\"127.0.0.1:5070\", \"[::1]:5070\"]\ndomain = \"example.com\"\n\
         [timers]\nt1_ms = 100\n[auth]\nalgorithms = [\"sha-256\", \"SHA-512-256\"]\n\
         [accounts]\n1001 = \"pw\"\n",
    )
    .expect("valid");
    assert_eq!(config.bind.len(), 2);
    assert_eq!(config.bind[1], "[::1]:5070".parse::<SocketAddr>().expect("addr"));
    assert_eq!(config.timers.t1(), Duration::from_millis(100));
    assert_eq!(config.timers.t2(), Duration::from_millis(4000));
    assert_eq!(config.auth.algorithms, vec![DigestAlgorithm::Sha256, DigestAlgorithm::Sha512_256]);
    assert_eq!(config.accounts.get("1001").map(String::as_str), Some("pw"));
}

#[test]
fn realm_defaults_to_domain() {
    let config = parse("domain = \"example.com\"").expect("valid");
    assert_eq!(config.realm(), Some("example.com"));
    let config = parse("domain = \"example.com\"\nrealm = \"office\"").expect("valid");
    assert_eq!(config.realm(), Some("office"));
    assert_eq!(RegistrarConfig::default().realm(), None);
}

#[test]
fn syntax_error_points_at_the_bad_character() {
    let text = "bind = [\"0.0.0.0:5060\"]\n[timers\nt1_ms = 1\n";
    let e = parse(text).expect_err("syntax error");
    assert_eq!(e.position(), Some(Position { line: 2, column: 8 }));
    let rendered = e.to_string();
    assert!(rendered.starts_with("registrar.toml:2:8: "), "{rendered}");
    assert!(rendered.contains("; expected"), "{rendered}");
    assert!(!rendered.contains('\n'), "one line: {rendered}");
}

#[test]
fn unknown_key_names_the_key_and_the_known_ones() {
    let text = "[registration]\nmin_expires = 60\nmax_expire = 600\n";
    assert_eq!(
        error(text),
        "registrar.toml:3:1: unknown field `max_expire`; expected one of `min_expires`, \
         `max_expires`, `default_expires`"
    );
}

#[test]
fn unknown_top_level_table_is_an_error() {
    let e = error("sip_trace = true\n[timer]\nt1_ms = 5\n");
    assert!(e.starts_with("registrar.toml:2:2: unknown field `timer`; expected one of `bind`"), "{e}");
}

#[test]
fn bad_bind_address_points_at_the_address() {
    let text = "# listen\nbind = [\"127.0.0.1:5060\", \"0.0.0.0:99999\"]\n";
    assert_eq!(
        error(text),
        "registrar.toml:2:27: invalid bind address \"0.0.0.0:99999\"; expected ADDR:PORT like \
         0.0.0.0:5060 or [::]:5060"
    );
}

#[test]
fn duplicate_bind_address_is_refused() {
    let e = error("bind = [\"0.0.0.0:5060\", \"0.0.0.0:5060\"]");
    assert_eq!(e, "registrar.toml:1:1: bind address 0.0.0.0:5060 is listed twice; expected each address once");
}

#[test]
fn bind_as_a_single_string_asks_for_a_list() {
    assert_eq!(
        error("bind = \"0.0.0.0:5060\""),
        "registrar.toml:1:8: invalid type: string \"0.0.0.0:5060\"; expected a list of addresses \
         like [\"0.0.0.0:5060\"]"
    );
}

#[test]
fn empty_bind_list_is_refused() {
    assert!(error("bind = []").starts_with("registrar.toml:1:1: no bind address;"));
}

#[test]
fn min_expires_above_max_expires_points_at_min_expires() {
    let text = "[registration]\nmax_expires = 600\n  min_expires = 900\n";
    assert_eq!(
        error(text),
        "registrar.toml:3:3: min_expires (900) is greater than max_expires (600); expected \
         min_expires <= default_expires <= max_expires"
    );
}

#[test]
fn max_expires_below_default_min_points_at_max_expires() {
    // min_expires is the default 60, so only max_expires is in the file to point at.
    let text = "[registration]\nmax_expires = 30\n";
    assert!(error(text).starts_with("registrar.toml:2:1: min_expires (60) is greater than max_expires (30)"));
}

#[test]
fn default_expires_outside_range_is_refused() {
    let text = "[registration]\ndefault_expires = 7200\n";
    assert!(error(text).starts_with("registrar.toml:2:1: default_expires (7200) is outside"), "{}", error(text));
}

#[test]
fn problem_points_at_whichever_offending_key_is_in_the_file() {
    // t2_ms is blamed first, but only t1_ms is written in the file.
    let text = "[timers]\nt1_ms = 5000\n";
    assert!(error(text).starts_with("registrar.toml:2:1: t2_ms (4000) is less than t1_ms (5000)"));
    let text = "[timers]\nt1_ms = 5000\nt2_ms = 10\n";
    assert!(error(text).starts_with("registrar.toml:3:1: t2_ms (10) is less than t1_ms (5000)"));
}

#[test]
fn dotted_keys_are_located_like_table_keys() {
    let text = "sip_trace = true\nregistration.min_expires = 7200\n";
    assert!(error(text).starts_with("registrar.toml:2:14: min_expires (7200) is greater"), "{}", error(text));
}

#[test]
fn unknown_algorithm_points_at_the_name() {
    let text = "[auth]\nalgorithms = [\"MD5\", \"SHA1\"]\n";
    assert_eq!(
        error(text),
        "registrar.toml:2:22: unknown digest algorithm \"SHA1\"; expected one of MD5, SHA-256, SHA-512-256"
    );
}

#[test]
fn empty_or_repeated_algorithms_are_refused() {
    assert!(error("[auth]\nalgorithms = []").starts_with("registrar.toml:2:1: no digest algorithm"));
    assert!(
        error("[auth]\nalgorithms = [\"MD5\", \"md5\"]")
            .starts_with("registrar.toml:2:1: digest algorithm MD5 is listed twice")
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    let e = error("[timers]\nt1_ms = \"fast\"\n");
    assert!(e.starts_with("registrar.toml:2:9: invalid type: string \"fast\"; expected"), "{e}");
}

#[test]
fn zero_t1_is_refused() {
    assert!(error("[timers]\nt1_ms = 0").starts_with("registrar.toml:2:1: t1_ms is 0;"));
}

#[test]
fn message_size_outside_bounds_is_refused() {
    assert!(error("[limits]\nmax_message_size = 100").contains("expected 1500 to 1048576 bytes"));
    assert!(error("[limits]\nmax_message_size = 2000000").contains("out of range"));
    parse("[limits]\nmax_message_size = 1048576").expect("1 MiB is allowed for TCP");
}

#[test]
fn bad_extension_points_at_the_extension() {
    let text = "[accounts]\n1001 = \"pw\"\n\"10 02\" = \"pw\"\n";
    assert_eq!(
        error(text),
        "registrar.toml:3:1: invalid extension \"10 02\"; expected a SIP user part of letters, \
         digits and -_.!~*'()&=+$,;?/"
    );
    assert!(error("[accounts]\n\"10%41\" = \"pw\"").contains("invalid extension"));
}

#[test]
fn empty_password_is_refused() {
    assert_eq!(
        error("[accounts]\nalice = \"\"\n"),
        "registrar.toml:2:1: empty password for extension \"alice\"; expected a non-empty password"
    );
}

#[test]
fn domain_realm_and_advertise_are_checked() {
    assert!(error("domain = \"sip:example.com\"").starts_with("registrar.toml:1:1: invalid domain"));
    parse("domain = \"192.0.2.1\"").expect("IPv4 domain");
    parse("domain = \"[2001:db8::1]\"").expect("IPv6 domain");
    assert!(error("realm = \"a\\\"b\"").contains("invalid realm"));
    for good in ["sip.example.com", "192.0.2.1:5060", "[::1]:5070"] {
        parse(&format!("advertise = {good:?}")).expect(good);
    }
    for bad in ["", "host:0", "host:port", "::1", "[::1", "example.com:5060:1"] {
        assert!(error(&format!("advertise = {bad:?}")).contains("invalid advertise"), "{bad}");
    }
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("registrar.toml");
    std::fs::write(&path, "sip_trace = true\n").expect("write");
    assert!(RegistrarConfig::load(&path).expect("loads").sip_trace);

    std::fs::write(&path, "sip_trace = 1\n").expect("write");
    let e = RegistrarConfig::load(&path).expect_err("wrong type");
    assert!(e.to_string().starts_with(&format!("{}:1:13: ", path.display())), "{e}");

    std::fs::write(&path, b"domain = \"a\"\n# \xff\n").expect("write");
    let e = RegistrarConfig::load(&path).expect_err("not UTF-8");
    assert_eq!(e.position(), Some(Position { line: 2, column: 3 }));

    let missing = dir.join("missing.toml");
    let e = RegistrarConfig::load(&missing).expect_err("missing");
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("cannot read the configuration file"), "{e}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn pcap_key_names_the_capture_file() {
    let config = parse("pcap = \"calls.pcap\"\n").expect("valid");
    assert_eq!(config.pcap.as_deref(), Some(std::path::Path::new("calls.pcap")));
    assert_eq!(parse("").expect("valid").pcap, None, "no capture unless asked");
}

#[test]
fn tls_listens_on_the_port_after_each_bind_address_by_default() {
    let config = parse("bind = [\"0.0.0.0:5060\", \"127.0.0.1:7000\", \"[::1]:0\"]").unwrap();
    let expected: Vec<std::net::SocketAddr> =
        ["0.0.0.0:5061", "127.0.0.1:7001", "[::1]:0"].iter().map(|a| a.parse().unwrap()).collect();
    assert_eq!(config.tls_bind(), expected);
    let off = parse("[tls]\nbind = []").unwrap();
    assert!(off.tls_bind().is_empty());
}

#[test]
fn tls_certificate_without_key_is_refused() {
    let error = parse("[tls]\ncertificate = \"a.pem\"").unwrap_err().to_string();
    assert!(error.contains("tls.certificate is set without tls.private_key"), "{error}");
}
