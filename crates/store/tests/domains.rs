//! Custom domains in the store: one domain installation-wide, conditional updates, per-account lists and deletes.

use store::{DomainOrder, DomainRow, SqliteSync, Store, StoreError};
use testkit::{Backend, fresh_database_url, on_both_backends_async};

fn row(domain: &str, app_id: i64, at: i64) -> DomainRow {
    DomainRow {
        domain: domain.into(),
        app_id,
        protocol: "HTTP".into(),
        endpoints: "[]".into(),
        cert_id: String::new(),
        waf_open: String::new(),
        waf_instance_id: String::new(),
        tags: "[]".into(),
        rev: 1,
        add_ms: at,
        mod_ms: at,
    }
}

async fn a_domain_belongs_to_one_account(b: Backend) {
    let db = fresh_database_url(&b);
    let dir = tempfile::tempdir().expect("dir");
    let s = Store::open(db.url(), dir.path(), SqliteSync::Normal)
        .await
        .expect("open");
    s.create_domain(&row("a.example.com", 1, 10))
        .await
        .expect("create");
    s.create_domain(&row("b.example.com", 1, 20))
        .await
        .expect("create");
    for app in [1, 2] {
        assert!(matches!(
            s.create_domain(&row("a.example.com", app, 30)).await,
            Err(StoreError::AlreadyExists("domain"))
        ));
    }
    let (page, total) = s
        .list_domains(1, DomainOrder::AddTime, true, 0, 1)
        .await
        .expect("list");
    assert_eq!(total, 2);
    assert_eq!(page[0].domain, "b.example.com");
    let (none, total) = s
        .list_domains(2, DomainOrder::AddTime, true, 0, 20)
        .await
        .expect("list");
    assert!(none.is_empty() && total == 0);

    let mut next = row("a.example.com", 1, 10);
    next.protocol = "HTTPS".into();
    next.cert_id = "c1".into();
    next.rev = 2;
    next.mod_ms = 40;
    s.update_domain(1, &next).await.expect("update");
    // A second update from the same read is refused, and so is another account's.
    assert!(matches!(
        s.update_domain(1, &next).await,
        Err(StoreError::Conflict)
    ));
    let got = s.domain("a.example.com").await.expect("read").expect("row");
    assert_eq!(
        (got.protocol.as_str(), got.cert_id.as_str(), got.rev),
        ("HTTPS", "c1", 2)
    );

    assert!(!s.delete_domain(2, "a.example.com").await.expect("delete"));
    assert!(s.delete_domain(1, "a.example.com").await.expect("delete"));
    assert!(s.domain("a.example.com").await.expect("read").is_none());
    // Free again: another account may take it.
    s.create_domain(&row("a.example.com", 2, 50))
        .await
        .expect("create again");
}

on_both_backends_async!(a_domain_belongs_to_one_account);
