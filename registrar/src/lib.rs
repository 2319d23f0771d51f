//! The registrar and proxy as a library: the sans-IO [`core`], the [`location`] store, the
//! [`accounts`] bootstrap and the tokio [`server`] shell that runs them. The `registrar` binary
//! is a thin command line around [`server::run`].

pub mod accounts;
pub mod core;
pub mod location;
pub mod server;
