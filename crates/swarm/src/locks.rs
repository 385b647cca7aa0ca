//! The one way the engine (and the server's seeder) take a mutex, and the order they take them.
//!
//! A mutex is poisoned only when a task panicked while holding it: a bug, not something a peer
//! can cause (peers' bytes are bounded and checked before they reach anything locked), so
//! [`lock`] panics too, saying so, rather than working on half-updated state.
//!
//! Order, for code that holds more than one (taking them in this order cannot deadlock):
//! 1. the server seeder's table of seeds (`Seeder::seeds`);
//! 2. an engine's swarm and storage (`Shared::inner`);
//! 3. its peers' tasks (`Shared::peers`);
//! 4. its banned addresses (`Shared::banned`);
//! 5. the addresses being dialled (`Shared::dialing`).
//!
//! Taken alone, never with another held: the listener's routes and accept task, an engine's
//! task handles, the tracker's peer table, the seeder's record of hashed files.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`; panics if a task panicked while holding it (see the module docs).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("a lock is poisoned: a task panicked while holding it")
}
