//! Extensions and their passwords: merged from the configuration into the store, and a first
//! set made up with random passwords when there are none, so a fresh install is usable at once.

use std::collections::HashMap;

use anyhow::Context;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::location::AccountStore;

/// The extensions a fresh install creates.
const FIRST_EXTENSIONS: [&str; 4] = ["1001", "1002", "1003", "1004"];

/// The accounts the registrar serves, after [`prepare`].
pub struct Prepared {
    /// Every extension and its password.
    pub accounts: HashMap<String, String>,
    /// The extensions created just now, with their passwords, to be shown once.
    pub created: Vec<(String, String)>,
}

/// Stores the configured accounts, creates the first ones if none exist, and returns them all.
pub fn prepare(
    store: &mut dyn AccountStore,
    configured: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Prepared> {
    for (ext, password) in configured {
        store.put_account(ext, password).with_context(|| format!("storing account {ext}"))?;
    }
    let mut accounts: HashMap<String, String> = store.accounts().context("reading accounts")?.into_iter().collect();
    let mut created = Vec::new();
    if accounts.is_empty() {
        let mut rng = rand::rng();
        for ext in FIRST_EXTENSIONS {
            let password: String = (&mut rng).sample_iter(Alphanumeric).take(12).map(char::from).collect();
            store.put_account(ext, &password).with_context(|| format!("storing account {ext}"))?;
            accounts.insert(ext.to_owned(), password.clone());
            created.push((ext.to_owned(), password));
        }
    }
    Ok(Prepared { accounts, created })
}
