//! The outbox's queue semantics on both engines, at the SQL level: per-user
//! order, leases, copies that claim at once, the endpoint that is disabled.

use cutover::outbox::store::{self, Attempt, NewDelivery};
use cutover::outbox::{Kind, new_msg_id};

use crate::both_engines;
use crate::harness::Engine;
use crate::harness::databases::TestDatabase;

fn row(key: &str, dest: &str, ty: &str) -> NewDelivery {
    NewDelivery {
        msg_id: new_msg_id(),
        kind: Kind::Webhook,
        event_type: ty.into(),
        ordering_key: Some(key.into()),
        destination: dest.into(),
        payload: format!("{{\"type\":\"{ty}\"}}"),
        due_at: 1_000,
    }
}

async fn claim(db: &cutover::db::Db, owner: &str, now: i64) -> Vec<store::Claimed> {
    let mut tx = db.begin().await.unwrap();
    let rows = store::claim(&mut tx.conn(), owner, now, now + 60_000, 100)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows
}

async fn later_events_of_a_user_wait_for_earlier_ones(engine: Engine) {
    let tdb = TestDatabase::create(engine).await;
    let db = tdb.connect().await;
    db.migrate().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let rows = vec![
        row("user_a", "https://one", "user.created"),
        row("user_a", "https://one", "user.updated"),
        row("user_b", "https://one", "user.created"),
        row("user_a", "https://two", "user.created"),
    ];
    store::enqueue(&mut tx.conn(), &rows, 1_000).await.unwrap();
    // Enqueuing the same (message, destination) again changes nothing.
    store::enqueue(&mut tx.conn(), &rows[..1], 1_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Only the head of each (destination, user) is due; a second copy
    // claiming at the same time gets nothing the first holds.
    let first = claim(&db, "copy-1", 2_000).await;
    let types: Vec<(&str, &str)> = first
        .iter()
        .map(|r| (r.destination.as_str(), r.event_type.as_str()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("https://one", "user.created"),
            ("https://one", "user.created"),
            ("https://two", "user.created")
        ]
    );
    assert!(first.iter().all(|r| r.attempts == 1));
    assert!(
        claim(&db, "copy-2", 2_000).await.is_empty(),
        "leased rows and their followers wait"
    );

    // user_a's first event fails and waits 5 s: its update still waits.
    let a1 = first
        .iter()
        .find(|r| {
            r.destination == "https://one" && r.payload.contains("created") && r.seq == first[0].seq
        })
        .unwrap();
    let mut conn = db.acquire().await.unwrap();
    store::mark_failed(
        &mut conn.conn(),
        "copy-1",
        &Attempt {
            seq: a1.seq,
            status: Some(500),
            error: Some("the endpoint answered 500".into()),
        },
        Some(7_000),
        false,
        2_100,
    )
    .await
    .unwrap();
    // A stale owner cannot record over someone else's claim.
    store::mark_delivered(
        &mut conn.conn(),
        "copy-9",
        &Attempt {
            seq: first[1].seq,
            status: Some(200),
            error: None,
        },
        false,
        2_100,
    )
    .await
    .unwrap();
    for r in &first[1..] {
        store::mark_delivered(
            &mut conn.conn(),
            "copy-1",
            &Attempt {
                seq: r.seq,
                status: Some(200),
                error: None,
            },
            false,
            2_200,
        )
        .await
        .unwrap();
    }
    drop(conn);
    assert!(
        claim(&db, "copy-2", 3_000).await.is_empty(),
        "user_a's update waits for the retry"
    );
    let retry = claim(&db, "copy-2", 7_000).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0].msg_id.as_str(), retry[0].attempts),
        (a1.msg_id.as_str(), 2),
        "the same svix-id, attempt 2"
    );

    // A lease that runs out (a copy killed mid-delivery) makes the row due again.
    let again = claim(&db, "copy-3", 7_000 + 60_001).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].seq, again[0].attempts), (retry[0].seq, 3));
    let mut conn = db.acquire().await.unwrap();
    store::mark_delivered(
        &mut conn.conn(),
        "copy-3",
        &Attempt {
            seq: again[0].seq,
            status: Some(204),
            error: None,
        },
        false,
        70_000,
    )
    .await
    .unwrap();
    drop(conn);
    let next = claim(&db, "copy-1", 70_001).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event_type, "user.updated");

    let mut conn = db.acquire().await.unwrap();
    let c = store::counts(&mut conn.conn(), 70_001).await.unwrap();
    assert_eq!((c.pending, c.delivered, c.failed), (1, 3, 0));
}
both_engines!(later_events_of_a_user_wait_for_earlier_ones);

async fn a_destination_failing_too_long_is_disabled_until_enabled(engine: Engine) {
    let tdb = TestDatabase::create(engine).await;
    let db = tdb.connect().await;
    db.migrate().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    store::enqueue(
        &mut tx.conn(),
        &[row("u", "https://down", "user.created")],
        0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let day = 86_400_000;
    let mut conn = db.acquire().await.unwrap();
    assert!(
        !store::destination_failed(&mut conn.conn(), "https://down", 1_000, Some(5 * day))
            .await
            .unwrap()
    );
    assert!(
        !store::destination_failed(&mut conn.conn(), "https://down", 4 * day, Some(5 * day))
            .await
            .unwrap()
    );
    // A success in between would have reset the clock; there was none.
    assert!(
        store::destination_failed(
            &mut conn.conn(),
            "https://down",
            5 * day + 1_000,
            Some(5 * day)
        )
        .await
        .unwrap()
    );
    drop(conn);
    assert!(
        claim(&db, "c", 6 * day).await.is_empty(),
        "a disabled destination's rows wait"
    );
    let mut conn = db.acquire().await.unwrap();
    assert_eq!(
        store::disabled_destinations(&mut conn.conn())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store::enable_destination(&mut conn.conn(), "https://down", 6 * day)
            .await
            .unwrap()
    );
    drop(conn);
    assert_eq!(
        claim(&db, "c", 6 * day).await.len(),
        1,
        "enabled again: its rows go out"
    );
}
both_engines!(a_destination_failing_too_long_is_disabled_until_enabled);

/// Two workers claiming at once on PostgreSQL never take the same row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_on_postgres_are_disjoint() {
    let tdb = TestDatabase::create(Engine::Postgres).await;
    let db = tdb.connect().await;
    db.migrate().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let rows: Vec<NewDelivery> = (0..200)
        .map(|i| row(&format!("user_{i}"), "https://one", "user.created"))
        .collect();
    store::enqueue(&mut tx.conn(), &rows, 0).await.unwrap();
    tx.commit().await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut tx = db.begin().await.unwrap();
                let got = store::claim(&mut tx.conn(), &format!("w{w}"), 1_000, 100_000, 7)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|r| r.seq));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "a row was claimed twice");
    assert_eq!(n, 200);
}
