//! Pool options as the façade passes them, and the defaults it shows (the
//! core's `PoolConfig::default()` is their one home).

use std::collections::HashMap;
use std::time::Duration;

use napi::bindgen_prelude::Buffer;

use napi_derive::napi;
use pconn_core::pool::CircuitBreaker;
use pconn_core::transport::ProxyPolicy;
use pconn_core::{ConnectOptions, PoolConfig, PoolLimits, Scheduling, TlsOptions, Trust};

#[napi(object)]
pub struct NativeTlsOptions {
    /// PEM certificates to trust instead of the defaults.
    pub ca: Option<Buffer>,
    /// Trust the operating system's store instead of the defaults.
    pub ca_system: bool,
    pub cert: Option<Buffer>,
    pub key: Option<Buffer>,
    pub reject_unauthorized: bool,
    pub servername: Option<String>,
    pub alpn: Vec<String>,
}

/// `circuitBreaker`: connect failures in a row that open a key's circuit,
/// and how long it stays open before a trial.
#[napi(object)]
pub struct NativeCircuitBreaker {
    pub failures: u32,
    pub cooldown_ms: f64,
}

/// Limits are `None` for "no limit"; durations in milliseconds.
#[napi(object)]
pub struct NativePoolOptions {
    pub max_idle_per_host: u32,
    pub max_connections_per_host: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_pending: Option<u32>,
    pub idle_timeout_ms: f64,
    pub max_lifetime_ms: f64,
    pub max_uses: f64,
    pub fifo: bool,
    pub connect_timeout_ms: f64,
    pub acquire_timeout_ms: f64,
    pub dns_cache_ms: f64,
    pub no_delay: bool,
    pub keep_alive_initial_delay_ms: f64,
    pub max_header_size: u32,
    /// HTTPS requests offer HTTP/2.
    pub allow_h2: bool,
    /// Retire idle connections before the server's learned idle timeout.
    pub learn_idle_timeout: bool,
    /// Absent: no circuit breaker.
    pub circuit_breaker: Option<NativeCircuitBreaker>,
    pub min_idle_per_host: u32,
    /// New connections of a key go to the least used of its addresses.
    pub spread_addresses: bool,
    /// An `http://` proxy URL, or `env` for the `HTTP_PROXY` variables.
    pub proxy: Option<String>,
    /// With `env`: the calling thread's `process.env` (a worker's can
    /// differ from the process's environment, which Rust would read).
    pub proxy_env: Option<HashMap<String, String>>,
    pub tls: NativeTlsOptions,
}

/// Milliseconds from JavaScript (negative as zero) as a Duration.
pub(crate) fn from_millis(v: f64) -> Duration {
    Duration::from_millis(v.max(0.0) as u64)
}

impl TryFrom<NativePoolOptions> for PoolConfig {
    type Error = pconn_core::Error;

    fn try_from(o: NativePoolOptions) -> pconn_core::Result<PoolConfig> {
        let proxy = match o.proxy.as_deref() {
            None => None,
            Some("env") => {
                let env = o.proxy_env.unwrap_or_default();
                Some(ProxyPolicy::from_env(|name| env.get(name).cloned())?)
            }
            Some(url) => Some(ProxyPolicy::fixed(url)?),
        };
        Ok(PoolConfig {
            limits: PoolLimits {
                max_idle_per_host: o.max_idle_per_host as usize,
                max_connections_per_host: o.max_connections_per_host.map(|v| v as usize),
                max_connections: o.max_connections.map(|v| v as usize),
                max_pending: o.max_pending.map(|v| v as usize),
                idle_timeout: from_millis(o.idle_timeout_ms),
                max_lifetime: from_millis(o.max_lifetime_ms),
                max_uses: o.max_uses.max(0.0) as u64,
                scheduling: if o.fifo {
                    Scheduling::Fifo
                } else {
                    Scheduling::Lifo
                },
                acquire_timeout: from_millis(o.acquire_timeout_ms),
                learn_idle_timeout: o.learn_idle_timeout,
                min_idle_per_host: o.min_idle_per_host as usize,
                circuit_breaker: o.circuit_breaker.map(|b| CircuitBreaker {
                    failures: b.failures.max(1),
                    cooldown: from_millis(b.cooldown_ms),
                }),
            },
            connect: ConnectOptions {
                connect_timeout: from_millis(o.connect_timeout_ms),
                dns_cache: from_millis(o.dns_cache_ms),
                no_delay: o.no_delay,
                keep_alive_initial_delay: from_millis(o.keep_alive_initial_delay_ms),
                spread_addresses: o.spread_addresses,
                // The `lookup` function is set by `NativePool::new`.
                lookup: None,
                tls: TlsOptions {
                    ca: match (o.tls.ca, o.tls.ca_system) {
                        (Some(pem), _) => Trust::Pem(pem.to_vec()),
                        (None, true) => Trust::System,
                        (None, false) => Trust::Default,
                    },
                    cert_pem: o.tls.cert.map(|b| b.to_vec()),
                    key_pem: o.tls.key.map(|b| b.to_vec()),
                    reject_unauthorized: o.tls.reject_unauthorized,
                    // Checked now, not at the first request it would fail.
                    servername: o
                        .tls
                        .servername
                        .map(|name| pconn_core::key::normalize_host(&name))
                        .transpose()?,
                    alpn: o.tls.alpn.into_iter().map(String::into_bytes).collect(),
                },
            },
            max_header_size: o.max_header_size as usize,
            allow_h2: o.allow_h2,
            proxy,
        })
    }
}

fn limit(v: Option<usize>) -> Option<u32> {
    v.map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The defaults of every pool option (limits absent: no limit).
#[napi]
pub fn default_pool_options() -> NativePoolOptions {
    let PoolConfig {
        limits: l,
        connect: c,
        max_header_size,
        allow_h2,
        ..
    } = PoolConfig::default();
    NativePoolOptions {
        max_idle_per_host: u32::try_from(l.max_idle_per_host).unwrap_or(u32::MAX),
        max_connections_per_host: limit(l.max_connections_per_host),
        max_connections: limit(l.max_connections),
        max_pending: limit(l.max_pending),
        idle_timeout_ms: l.idle_timeout.as_millis() as f64,
        max_lifetime_ms: l.max_lifetime.as_millis() as f64,
        max_uses: l.max_uses as f64,
        fifo: l.scheduling == Scheduling::Fifo,
        connect_timeout_ms: c.connect_timeout.as_millis() as f64,
        acquire_timeout_ms: l.acquire_timeout.as_millis() as f64,
        dns_cache_ms: c.dns_cache.as_millis() as f64,
        no_delay: c.no_delay,
        keep_alive_initial_delay_ms: c.keep_alive_initial_delay.as_millis() as f64,
        max_header_size: u32::try_from(max_header_size).unwrap_or(u32::MAX),
        allow_h2,
        learn_idle_timeout: l.learn_idle_timeout,
        min_idle_per_host: u32::try_from(l.min_idle_per_host).unwrap_or(u32::MAX),
        spread_addresses: c.spread_addresses,
        circuit_breaker: l.circuit_breaker.map(|b| NativeCircuitBreaker {
            failures: b.failures,
            cooldown_ms: b.cooldown.as_millis() as f64,
        }),
        proxy: None,
        proxy_env: None,
        tls: NativeTlsOptions {
            ca: None,
            ca_system: c.tls.ca == Trust::System,
            cert: None,
            key: None,
            reject_unauthorized: c.tls.reject_unauthorized,
            servername: c.tls.servername,
            alpn: Vec::new(),
        },
    }
}
