//! Concurrency shares on SQLite and on PostgreSQL: a grow is granted only while the other nodes' live shares leave
//! room under the limit as written now, a renewal only shrinks (and a lapsed share comes back as 0), a lapsed
//! share of another node no longer counts, and what the nodes run is summed for GetAccount.

use std::time::Duration;

use store::{ShareLimit, ShareRenewal, SqliteSync, Store};
use testkit::{Backend, TestDatabase, fresh_database_url, on_both_backends_async};

const APP: i64 = 1_300_000_012;
const LEASE: i64 = 60_000;

async fn open(b: &Backend) -> (Store, TestDatabase, tempfile::TempDir) {
    let db = fresh_database_url(b);
    let dir = tempfile::tempdir().expect("data dir");
    let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
        .await
        .expect("open store");
    (store, db, dir)
}

fn pool() -> ShareLimit {
    ShareLimit::AccountPool { quota_mb: 512 }
}

fn renewal(scope: &str, share_mb: i64, used_mb: i64) -> ShareRenewal {
    ShareRenewal {
        app_id: APP,
        scope: scope.into(),
        share_mb,
        used_mb,
    }
}

async fn shares_never_sum_past_the_limit(b: Backend) {
    let (s, _db, _dir) = open(&b).await;
    let grow = |node: &'static str, want: i64| {
        let s = s.clone();
        async move {
            s.grow_share(node, APP, "account", &pool(), want, LEASE)
                .await
                .expect("grow")
        }
    };
    assert_eq!(grow("a", 256).await, (true, 256));
    assert_eq!(grow("b", 384).await, (false, 0), "256 + 384 > 512");
    assert_eq!(grow("b", 256).await, (true, 256));
    assert_eq!(grow("a", 384).await, (false, 256), "a keeps what it held");
    // Asking for less than it holds keeps the share.
    assert_eq!(grow("a", 128).await, (true, 256));
    // A renewal shrinks a's share, never grows it; b can then take what a gave back.
    let kept = s
        .renew_shares("a", &[renewal("account", 128, 128)], LEASE)
        .await
        .expect("renew");
    assert_eq!(kept, vec![128]);
    let kept = s
        .renew_shares("a", &[renewal("account", 512, 128)], LEASE)
        .await
        .expect("renew");
    assert_eq!(kept, vec![128], "a renewal never grows a share");
    assert_eq!(grow("b", 384).await, (true, 384));
    assert_eq!(grow("b", 385).await, (false, 384));
}

async fn a_lapsed_share_no_longer_counts_and_renews_as_zero(b: Backend) {
    let (s, _db, _dir) = open(&b).await;
    assert_eq!(
        s.grow_share("a", APP, "account", &pool(), 512, 100)
            .await
            .expect("grow"),
        (true, 512)
    );
    assert_eq!(
        s.grow_share("b", APP, "account", &pool(), 128, LEASE)
            .await
            .expect("grow"),
        (false, 0),
        "a's live share takes the whole pool"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.grow_share("b", APP, "account", &pool(), 512, LEASE)
            .await
            .expect("grow"),
        (true, 512),
        "a's lease lapsed"
    );
    let kept = s
        .renew_shares("a", &[renewal("account", 512, 0)], LEASE)
        .await
        .expect("renew");
    assert_eq!(
        kept,
        vec![0],
        "capacity another node may have taken is never taken back"
    );
}

async fn the_limit_is_read_when_the_share_grows(b: Backend) {
    let (s, _db, _dir) = open(&b).await;
    // No namespace total: the namespace's pool has no limit of its own.
    let ns = ShareLimit::NamespacePool {
        namespace: "default".into(),
    };
    assert_eq!(
        s.grow_share("a", APP, "ns:default", &ns, 1_000_000, LEASE)
            .await
            .expect("grow"),
        (true, 1_000_000)
    );
    // A reservation that does not exist (any more) is a limit of 0.
    let r = ShareLimit::Reservation {
        namespace: "default".into(),
        function: "gone".into(),
    };
    assert_eq!(
        s.grow_share("a", APP, "fn:default/gone", &r, 128, LEASE)
            .await
            .expect("grow"),
        (false, 0)
    );
}

async fn usage_is_summed_over_the_other_nodes_and_released(b: Backend) {
    let (s, _db, _dir) = open(&b).await;
    s.renew_shares("a", &[renewal("use:default", 0, 256)], LEASE)
        .await
        .expect("renew");
    s.renew_shares("b", &[renewal("use:default", 0, 128)], LEASE)
        .await
        .expect("renew");
    let mut seen = s.others_usage(APP, "c").await.expect("usage");
    seen.sort();
    assert_eq!(seen, vec![("use:default".to_string(), 384)]);
    assert_eq!(
        s.others_usage(APP, "a").await.expect("usage"),
        vec![("use:default".to_string(), 128)]
    );
    // Nothing held and nothing running: the row goes.
    s.renew_shares("b", &[renewal("use:default", 0, 0)], LEASE)
        .await
        .expect("renew");
    s.release_shares("a").await.expect("release");
    assert!(s.others_usage(APP, "c").await.expect("usage").is_empty());
}

on_both_backends_async!(
    shares_never_sum_past_the_limit,
    a_lapsed_share_no_longer_counts_and_renews_as_zero,
    the_limit_is_read_when_the_share_grows,
    usage_is_summed_over_the_other_nodes_and_released,
);
