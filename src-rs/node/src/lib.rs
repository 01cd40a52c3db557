//! napi-rs bindings for pconn: conversion only, no policy.
//!
//! Organization:
//! - `runtime`: the process-wide Tokio runtime, and panic-safe spawning;
//! - `scope`: what one JavaScript environment (main thread or worker) owns
//!   natively, installed when it loads the addon and torn down with it;
//! - `bridge`: a completion channel (one JavaScript call per batch of
//!   completions); `wakeup`: how it wakes its thread (the raw threadsafe
//!   function, and wake-ups deferred on I/O threads);
//! - `batch`: how a batch is encoded (numbers, a byte slab, a few objects),
//!   and `record`: the layout of its records, shared with the façade;
//! - `errors`: core errors as JavaScript errors with the contract's codes;
//! - `options`, `stats`: plain conversions;
//! - `pool`, `connection`, `http`: the classes the TypeScript façade wraps.

mod batch;
mod bridge;
mod connection;
mod errors;
mod http;
mod lookup;
mod options;
mod pool;
mod record;
mod runtime;
mod scope;
mod stats;
mod wakeup;

use napi::bindgen_prelude::Object;
use napi::Env;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs once for every environment that loads the addon.
#[napi_derive::napi(module_exports)]
pub fn init(_exports: Object, env: Env) -> napi::Result<()> {
    scope::install(&env)
}
