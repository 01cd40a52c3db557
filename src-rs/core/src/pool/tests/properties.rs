//! Random sequences of operations against the pool's invariants.

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Acquire(u8),
    Release(usize, bool),
    Drop(usize),
    Withdraw(usize),
    PeerClose(usize),
    Flush(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::Acquire),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Release(i, ok)),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Withdraw),
        1 => any::<usize>().prop_map(Op::PeerClose),
        1 => (0u8..4).prop_map(Op::Flush),
        1 => (0u16..3000).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any sequence of operations keeps the counts consistent, never
    /// strands a waiter that capacity could serve, and never exceeds a limit.
    #[test]
    fn capacity_always_reaches_waiters(ops in proptest::collection::vec(op(), 1..120),
                                       per_host in 1usize..4, global in 1usize..6) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let (pool, connector) = pool_with(PoolLimits {
                max_connections_per_host: Some(per_host),
                max_connections: Some(global),
                max_idle_per_host: 2,
                ..PoolLimits::default()
            });
            let mut loans: Vec<Pooled<Key, Fake>> = Vec::new();
            let mut queued: Vec<Queued<Key, Fake>> = Vec::new();
            let granted: Arc<Mutex<Vec<Pooled<Key, Fake>>>> = Arc::default();
            let permits: Arc<Mutex<Vec<ConnectSlot<Key, Fake>>>> = Arc::default();
            for op in ops {
                match op {
                    Op::Acquire(h) => {
                        let (sink, rooms) = (granted.clone(), permits.clone());
                        let deliver = move |g: Grant<Key, Fake>| match g {
                            Grant::Conn(p) => { sink.lock().unwrap().push(p.received()); Ok(()) }
                            Grant::Permit(slot) => { rooms.lock().unwrap().push(slot); Ok(()) }
                            other => Err(other),
                        };
                        match pool.begin_acquire_with(&key(&format!("h{h}")), &opts(), deliver).unwrap() {
                            Acquiring::Ready(p) => loans.push(p),
                            Acquiring::Connect(slot) => loans.push(slot.open().await.unwrap()),
                            Acquiring::Queued(q) => queued.push(q),
                        }
                    }
                    Op::Release(i, ok) if !loans.is_empty() => { let n = loans.len(); loans.swap_remove(i % n).release(ok) }
                    Op::Drop(i) if !loans.is_empty() => { let n = loans.len(); drop(loans.swap_remove(i % n)) }
                    Op::Withdraw(i) if !queued.is_empty() => { let n = queued.len(); drop(queued.swap_remove(i % n)) }
                    Op::PeerClose(i) => {
                        let peers = connector.peers.lock().unwrap().clone();
                        if !peers.is_empty() { peers[i % peers.len()].close() }
                    }
                    Op::Flush(h) => { let host = format!("h{h}"); pool.flush(|k| k.host() == host); }
                    Op::Advance(ms) => { advance(Duration::from_millis(u64::from(ms))).await; tokio::task::yield_now().await; }
                    _ => {}
                }
                loans.append(&mut granted.lock().unwrap());
                let opened: Vec<_> = permits.lock().unwrap().drain(..).collect();
                for slot in opened {
                    loans.push(slot.open().await.unwrap());
                }
                loans.append(&mut granted.lock().unwrap());
                assert_consistent(&pool);
                assert_no_stranded_waiter(&pool);
                let s = pool.stats();
                assert!(s.connections + s.connecting <= global);
                assert!(s.hosts.values().all(|h| h.connections + h.connecting <= per_host));
            }
        });
    }
}
