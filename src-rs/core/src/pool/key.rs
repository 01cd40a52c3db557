//! What the pool asks of a key: equality, a hash, and a display form (the
//! names `stats()` shows). The pool knows nothing else of keys.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::{BuildHasher, Hash};

/// A pool key.
pub trait PoolKey: Clone + Eq + Hash + Display + Send + Sync + 'static {
    /// How the pool's maps hash keys: a key that carries a precomputed
    /// digest can pass it through, so a lookup hashes nothing.
    type BuildHasher: BuildHasher + Default + Send + Sync;
}

/// A map keyed by pool keys.
pub(crate) type KeyMap<K, V> = HashMap<K, V, <K as PoolKey>::BuildHasher>;

impl PoolKey for crate::key::Key {
    type BuildHasher = crate::key::DigestHasher;
}
