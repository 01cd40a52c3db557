//! napi-rs bindings for pconn: conversion only, no policy.
//!
//! Organization:
//! - `runtime`: the Tokio runtime the pools run on, and panic-safe spawning;
//! - `bridge`: one long-lived threadsafe function that carries every async
//!   completion back to the Node thread (no per-call Promise machinery);
//! - `errors`: core errors as JS errors with the contract's codes;
//! - `options`, `stats`: plain conversions;
//! - `pool`, `connection`, `http`: the classes the TypeScript façade wraps.

mod bridge;
mod connection;
mod errors;
mod http;
mod options;
mod pool;
mod runtime;
mod stats;

#[napi_derive::module_init]
fn init() {
    runtime::install();
}
