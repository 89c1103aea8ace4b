use chrono::{Duration, Local};
use serde_json::json;

use super::*;

fn rec(client_ref: &str, state: State) -> Record {
    let now = Local::now();
    Record {
        txn_id: format!("t-{client_ref}"),
        client_ref: client_ref.into(),
        infno: "2102".into(),
        request_hash: "h".into(),
        session_id: None,
        input: json!({"druginfo": {"psn_no": "P1"}}),
        insuplc_admdvs: "421381".into(),
        psn_no: "P1".into(),
        mdtrt_cert_type: "01".into(),
        sale_key: Some(format!("sale-{client_ref}")),
        msgid: format!("P42130200001202611231000{:06}", client_ref.len()),
        request: Some("{}".into()),
        state,
        fail_kind: None,
        output: None,
        error: None,
        reversal: None,
        attempts: 0,
        setl_id: None,
        cancels_setl_id: None,
        sent_at: Some(now),
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn insert_is_idempotent_per_client_ref_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = Journal::open(&path).unwrap();
    assert!(matches!(
        j.insert(rec("A", State::Pending)).await.unwrap(),
        Inserted::New
    ));
    let mut other = rec("A", State::Pending);
    other.txn_id = "t-other".into();
    match j.insert(other).await.unwrap() {
        Inserted::Existing(e) => assert_eq!(e.txn_id, "t-A"),
        other => panic!("duplicate client_ref inserted: {other:?}"),
    }
    let mut r = j.by_client_ref("A").await.unwrap().unwrap();
    r.state = State::Succeeded;
    // Parsed, not built with json!: a Rust float literal would lose "12.30".
    r.output = Some(
        serde_json::from_str(r#"{"setlinfo": {"setl_id": "S1", "medfee_sumamt": 12.30}}"#).unwrap(),
    );
    r.setl_id = Some("S1".into());
    r.reversal = Some(Reversal {
        msgid: "P42130200001202611231000009999".into(),
        infno: "2601".into(),
        state: "sent".into(),
        attempts: 1,
    });
    j.save(r.clone(), Some("done".into())).await.unwrap();
    drop(j);
    let j = Journal::open(&path).unwrap();
    let back = j.by_txn_id("t-A").await.unwrap().unwrap();
    assert_eq!(back.state, State::Succeeded);
    assert_eq!(
        back.output.unwrap()["setlinfo"]["medfee_sumamt"].to_string(),
        "12.30"
    );
    assert_eq!(back.reversal.unwrap().attempts, 1);
    assert_eq!(
        j.max_msgid("P42130200001").await.unwrap().as_deref(),
        Some("P42130200001202611231000009999")
    );
}

#[tokio::test]
async fn a_second_attempt_of_an_unresolved_sale_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    let mut a = rec("A", State::Reversing);
    a.sale_key = Some("sale-1".into());
    j.insert(a).await.unwrap();
    let mut b = rec("B", State::Sent);
    b.sale_key = Some("sale-1".into());
    match j.insert(b.clone()).await.unwrap() {
        Inserted::SaleUnresolved(o) => assert_eq!(o.client_ref, "A"),
        other => panic!("{other:?}"),
    }
    assert!(j.by_client_ref("B").await.unwrap().is_none());
    // Once the first is final, the sale may be tried again.
    let mut a = j.by_client_ref("A").await.unwrap().unwrap();
    a.state = State::Reversed;
    j.save(a, None).await.unwrap();
    assert!(matches!(j.insert(b).await.unwrap(), Inserted::New));
}

#[tokio::test]
async fn unresolved_counts_and_sales() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    for (c, s) in [
        ("a", State::Sent),
        ("b", State::Reversing),
        ("c", State::Succeeded),
        ("d", State::ReversalFailed),
    ] {
        j.insert(rec(c, s)).await.unwrap();
    }
    let u = j.unresolved().await.unwrap();
    assert_eq!(
        u.iter().map(|r| r.client_ref.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let n = j.counts(Local::now() + Duration::seconds(1)).await.unwrap();
    assert_eq!(
        n,
        Counts {
            unresolved: 2,
            reversal_failed: 1,
            stale: 2
        }
    );
    let l = j.list(None, Some(State::Succeeded), 10).await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(
        j.list(Some(Local::now() + Duration::hours(1)), None, 10)
            .await
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn usage_counts_settlements_net_of_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    let mut n = 0;
    let mut add = |infno: &str, cert: &str, setl: &str, cancels: Option<&str>, state: State| {
        n += 1;
        let mut r = rec(&format!("r{n}"), state);
        r.infno = infno.into();
        r.mdtrt_cert_type = cert.into();
        r.setl_id = Some(setl.into());
        r.cancels_setl_id = cancels.map(String::from);
        r
    };
    let rows = vec![
        add("2102", "01", "S1", None, State::Succeeded),
        add("2207", "01", "S2", None, State::Succeeded),
        add("2304", "02", "S3", None, State::Succeeded),
        add("2102", "03", "S4", None, State::Succeeded),
        add("2103", "03", "S5", Some("S4"), State::Succeeded),
        add("2207", "01", "S6", None, State::Failed),
        add("2208", "01", "S7", Some("S2"), State::Failed),
    ];
    for r in rows {
        j.insert(r).await.unwrap();
    }
    let today = Local::now().date_naive();
    let u = j.usage(today, today).await.unwrap();
    let get = |c: &str| {
        u.iter()
            .find(|r| r.mdtrt_cert_type == c)
            .map(|r| r.count)
            .unwrap_or(0)
    };
    assert_eq!((get("01"), get("02"), get("03")), (2, 1, 0));
    assert!(
        j.usage(today - Duration::days(3), today - Duration::days(1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let e = Journal::open(&path).unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
}
