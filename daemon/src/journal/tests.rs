use chrono::{Duration, Local};
use serde_json::json;

use super::*;

fn rec(client_ref: &str, state: State) -> Record {
    Record {
        input: json!({"druginfo": {"psn_no": "P1"}}),
        sale_key: Some(format!("sale-{client_ref}")),
        msgid: format!("P42130200001202611231000{:06}", client_ref.len()),
        request: Some("{}".into()),
        attempts: 0,
        ..Record::sample(client_ref, "2102", state)
    }
}

/// A sale rule for these tests: any other attempt not final blocks.
fn open_blocks(other: &Record, _cancelled: bool) -> Option<()> {
    (!other.state.is_final()).then_some(())
}

#[tokio::test]
async fn insert_is_idempotent_per_client_ref_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = Journal::open(&path).unwrap();
    assert!(matches!(
        j.insert(rec("A", State::Pending), open_blocks)
            .await
            .unwrap(),
        Inserted::New
    ));
    let mut other = rec("A", State::Pending);
    other.txn_id = "t-other".into();
    match j.insert(other, open_blocks).await.unwrap() {
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
    j.insert(a, open_blocks).await.unwrap();
    let mut b = rec("B", State::Sent);
    b.sale_key = Some("sale-1".into());
    match j.insert(b.clone(), open_blocks).await.unwrap() {
        Inserted::Blocked(o, ()) => assert_eq!(o.client_ref, "A"),
        other => panic!("{other:?}"),
    }
    assert!(j.by_client_ref("B").await.unwrap().is_none());
    // Once the first is final, the sale may be tried again.
    let mut a = j.by_client_ref("A").await.unwrap().unwrap();
    a.state = State::Reversed;
    j.save(a, None).await.unwrap();
    assert!(matches!(
        j.insert(b, open_blocks).await.unwrap(),
        Inserted::New
    ));
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
        j.insert(rec(c, s), open_blocks).await.unwrap();
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
    let l = j
        .list(None, Some(State::Succeeded), None, 10)
        .await
        .unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(
        j.list(Some(Local::now() + Duration::hours(1)), None, None, 10)
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
        j.insert(r, open_blocks).await.unwrap();
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

#[tokio::test]
async fn every_send_is_checked_against_the_sale() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    // A never-sent attempt, then another attempt of the sale that settled.
    let mut a = rec("A", State::Failed);
    a.fail_kind = Some(FailKind::NotSent);
    a.sale_key = Some("sale-2".into());
    j.insert(a, open_blocks).await.unwrap();
    let mut b = rec("B", State::Succeeded);
    b.sale_key = Some("sale-2".into());
    b.setl_id = Some("S2".into());
    j.insert(b, open_blocks).await.unwrap();
    // A's resend is checked in the transaction that marks it sent.
    let settled = |o: &Record, cancelled: bool| {
        (o.state == State::Succeeded && !cancelled).then_some("settled")
    };
    let mut a = j.by_client_ref("A").await.unwrap().unwrap();
    a.state = State::Sent;
    match j
        .mark_sent(a.clone(), "resend".into(), settled)
        .await
        .unwrap()
    {
        Some((o, why)) => assert_eq!((o.client_ref.as_str(), why), ("B", "settled")),
        None => panic!("a resend got past a settled sale"),
    }
    // Nothing was written.
    assert_eq!(
        j.by_client_ref("A").await.unwrap().unwrap().state,
        State::Failed
    );
    // Once B is cancelled, A may go.
    let mut c = rec("C", State::Succeeded);
    c.infno = "2103".into();
    c.cancels_setl_id = Some("S2".into());
    j.insert(c, open_blocks).await.unwrap();
    assert!(
        j.mark_sent(a, "resend".into(), settled)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        j.by_client_ref("A").await.unwrap().unwrap().state,
        State::Sent
    );
}

#[tokio::test]
async fn unconfirmed_refusals_are_open_and_people_see_what_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    let mut u = rec("U", State::Failed);
    u.fail_kind = Some(FailKind::Unconfirmed);
    j.insert(u, open_blocks).await.unwrap();
    let mut f = rec("F", State::Failed);
    f.fail_kind = Some(FailKind::Rejected);
    j.insert(f, open_blocks).await.unwrap();
    j.insert(rec("R", State::ReversalFailed), open_blocks)
        .await
        .unwrap();
    let open: Vec<String> = j
        .unresolved()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.client_ref)
        .collect();
    assert_eq!(open, ["U"]);
    let later = Local::now() + Duration::hours(1);
    let people: Vec<String> = j
        .list(None, None, Some(later), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.client_ref)
        .collect();
    assert_eq!(people.len(), 2, "{people:?}");
    assert!(people.contains(&"R".to_string()) && people.contains(&"U".to_string()));
    // A closing survives a reopen.
    let mut r = j.by_client_ref("R").await.unwrap().unwrap();
    r.state = State::Succeeded;
    r.closed = Some(Closure {
        outcome: State::Succeeded,
        operator: "王".into(),
        note: "checked".into(),
        at: Local::now(),
    });
    j.save(r, Some("closed".into())).await.unwrap();
    let back = j.by_client_ref("R").await.unwrap().unwrap();
    assert_eq!(back.closed.unwrap().operator, "王");
}

/// Group commit: many attempts of one sale queued at once land in shared
/// batches, yet the sale rule runs after every write before it, so exactly
/// one gets in; every other client_ref and sale is written, and every
/// result is there (committed) when read back from the reader thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_inserts_keep_the_sale_rule_and_are_committed_when_answered() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = rec(&format!("C{i}"), State::Sent);
            // Even ones are attempts of one sale; odd ones each their own.
            if i % 2 == 0 {
                r.sale_key = Some("one-sale".into());
            }
            let got = j.insert(r, open_blocks).await.unwrap();
            if matches!(got, Inserted::New) {
                // Handed out only once committed: the reader sees it.
                assert!(j.by_client_ref(&format!("C{i}")).await.unwrap().is_some());
            }
            (i, got)
        }));
    }
    let mut one_sale = 0;
    for t in tasks {
        let (i, got) = t.await.unwrap();
        match got {
            Inserted::New if i % 2 == 0 => one_sale += 1,
            Inserted::New => {}
            Inserted::Blocked(..) => assert_eq!(i % 2, 0, "C{i} blocked"),
            Inserted::Existing(_) => panic!("C{i} existed"),
        }
    }
    assert_eq!(one_sale, 1, "two attempts of one sale got in");
    assert_eq!(j.counts(Local::now()).await.unwrap().unresolved, 101);
}

/// A job's failure rolls back only its own savepoint: the batch's other
/// writes commit.
#[tokio::test]
async fn a_failed_write_in_a_batch_does_not_undo_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    let mut ghost = rec("ghost", State::Sent);
    ghost.txn_id = "t-never-inserted".into();
    let (a, b, c) = tokio::join!(
        j.insert(rec("A", State::Sent), open_blocks),
        j.save(ghost, None),
        j.insert(rec("B", State::Sent), open_blocks),
    );
    assert!(matches!(a.unwrap(), Inserted::New));
    assert!(matches!(b, Err(JournalError::Db(_))), "{b:?}");
    assert!(matches!(c.unwrap(), Inserted::New));
    assert!(j.by_client_ref("A").await.unwrap().is_some());
    assert!(j.by_client_ref("B").await.unwrap().is_some());
}
