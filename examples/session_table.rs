//! A small concurrent service: a session table shared by worker threads.
//! Each worker logs users in and out and counts their requests with atomic
//! read-modify-write operations; a reporter reads the whole table while
//! the workers run. Keys are `"session/<user>"`; values are request counts
//! stored inline (no allocation per value).
//!
//! `cargo run --example session_table`

use std::sync::atomic::{AtomicBool, Ordering};

use masstree::{Change, InlineMassTree};

const WORKERS: u64 = 4;
const USERS_PER_WORKER: u64 = 250;
const REQUESTS: u64 = 20_000;

fn session_key(user: u64) -> String {
    format!("session/{user:05}")
}

fn main() {
    let sessions: InlineMassTree<u64> = InlineMassTree::new();
    let done = AtomicBool::new(false);

    std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let sessions = &sessions;
                s.spawn(move || {
                    // A guard per batch of requests, dropped now and then so
                    // that replaced and removed memory can be reclaimed.
                    let mut g = sessions.guard();
                    // A small LCG picks the user and the kind of request.
                    let mut x = w + 1;
                    for i in 0..REQUESTS {
                        if i % 1000 == 0 {
                            g = sessions.guard();
                        }
                        x = x
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        // Each worker serves its own users: no two workers
                        // log the same user in or out.
                        let user = w * USERS_PER_WORKER + (x >> 33) % USERS_PER_WORKER;
                        let key = session_key(user);
                        match (x >> 20) % 10 {
                            // Log in (keeps the count if already logged in).
                            0 => {
                                sessions.get_or_insert_with(&key, || 0, &g);
                            }
                            // Log out.
                            9 => {
                                sessions.remove(&key, &g);
                            }
                            // A request: count it if the user is logged in.
                            _ => {
                                sessions.update(
                                    &key,
                                    |n| n.map_or(Change::Keep, |n| Change::Set(n + 1)),
                                    &g,
                                );
                            }
                        }
                    }
                })
            })
            .collect();

        // A reporter reads while the workers write: lock-free, consistent
        // per key.
        let (sessions, done) = (&sessions, &done);
        s.spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let g = sessions.guard();
                let (mut active, mut requests) = (0, 0);
                for n in sessions.values(&g) {
                    active += 1;
                    requests += n;
                }
                println!("reporter: {active} sessions, {requests} requests counted");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });

    let g = sessions.guard();
    let busiest = sessions
        .prefix("session/", &g)
        .max_by_key(|&(_, n)| n)
        .map(|(k, n)| (String::from_utf8(k.into_vec()).unwrap(), n));
    println!("{} sessions open; busiest: {busiest:?}", sessions.len());
}
