//! Typed configuration for the registrar and the softphone.
