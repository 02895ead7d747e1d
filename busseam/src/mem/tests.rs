use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;

use super::{MemBus, Reach};
use crate::{BucketConfig, BusError};

fn bus() -> MemBus {
    MemBus::new(SystemTime::UNIX_EPOCH)
}

#[tokio::test(start_paused = true)]
async fn messages_reach_matching_subscriptions_in_order_with_their_header() {
    let bus = bus();
    let a = bus.client("a");
    let b = bus.client("b");
    let mut sub = b.subscribe("cti.hq.*.events".into()).await.unwrap();
    for n in 0..3u8 {
        a.publish(
            "cti.hq.sw1.events".into(),
            Some(("Cti-Seq", n.to_string())),
            Bytes::from(vec![n]),
        )
        .await
        .unwrap();
    }
    a.publish("cti.hq.sw1.state".into(), None, Bytes::new())
        .await
        .unwrap();
    for n in 0..3u8 {
        let m = sub.next().await.unwrap();
        assert_eq!(
            (m.subject.as_str(), m.header("Cti-Seq"), &m.payload[..]),
            ("cti.hq.sw1.events", Some(n.to_string().as_str()), &[n][..])
        );
    }
    assert_eq!(bus.stats().delivered, 3);
}

#[tokio::test(start_paused = true)]
async fn a_cut_client_loses_what_is_published_meanwhile_and_a_paused_one_gets_it_later() {
    let bus = bus();
    let a = bus.client("a");
    let cut = bus.client("cut");
    let paused = bus.client("paused");
    let mut to_cut = cut.subscribe("s".into()).await.unwrap();
    let mut to_paused = paused.subscribe("s".into()).await.unwrap();
    bus.set_reach("cut", Reach::Cut);
    bus.set_reach("paused", Reach::Paused);
    a.publish("s".into(), None, Bytes::from_static(b"1"))
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(1), to_paused.next()).await;
    assert!(waited.is_err(), "nothing while paused");
    bus.set_reach("cut", Reach::Connected);
    bus.set_reach("paused", Reach::Connected);
    a.publish("s".into(), None, Bytes::from_static(b"2"))
        .await
        .unwrap();
    assert_eq!(&to_paused.next().await.unwrap().payload[..], b"1");
    assert_eq!(&to_paused.next().await.unwrap().payload[..], b"2");
    assert_eq!(
        &to_cut.next().await.unwrap().payload[..],
        b"2",
        "1 was lost"
    );
    assert_eq!(bus.stats().lost, 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_gets_its_one_answer_or_says_why_not() {
    let bus = bus();
    let asker = bus.client("asker");
    let server = bus.client("server");
    assert_eq!(
        asker
            .request("q".into(), Bytes::new(), Duration::from_secs(1))
            .await,
        Err(BusError::NoResponders)
    );
    let mut requests = server.subscribe("q".into()).await.unwrap();
    let answering = tokio::spawn(async move {
        let m = requests.next().await.unwrap();
        let mut answer = m.payload.to_vec();
        answer.push(b'!');
        server
            .publish(m.reply.unwrap(), None, answer.into())
            .await
            .unwrap();
    });
    let answer = asker
        .request(
            "q".into(),
            Bytes::from_static(b"hi"),
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(answer, Ok(Bytes::from_static(b"hi!")));
    answering.await.unwrap();
    bus.set_down(true);
    let started = tokio::time::Instant::now();
    assert_eq!(
        asker
            .request("q".into(), Bytes::new(), Duration::from_secs(2))
            .await,
        Err(BusError::TimedOut)
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn bucket_writes_are_refused_at_the_wrong_revision_and_entries_expire() {
    let bus = bus();
    let a = bus.client("a");
    let b = bus.client("b");
    let config = BucketConfig {
        max_age: Some(Duration::from_secs(6)),
    };
    let ka = a.kv("leases", config).await.unwrap();
    let kb = b.kv("leases", config).await.unwrap();
    let mut watch = kb.watch("hq").await.unwrap();
    let first = ka.update("hq", Bytes::from_static(b"a"), 0).await.unwrap();
    assert_eq!(first, 1);
    assert!(matches!(
        kb.update("hq", Bytes::from_static(b"b"), 0).await,
        Err(BusError::Refused(_))
    ));
    // A refused write takes no revision.
    assert_eq!(
        ka.update("hq", Bytes::from_static(b"a"), first).await,
        Ok(2)
    );
    ka.delete_at("hq", 2).await.unwrap();
    let deleted = kb.entry("hq").await.unwrap().unwrap();
    assert!(deleted.deleted);
    assert_eq!(kb.get("hq").await, Ok(None));
    let seen: Vec<(u64, bool)> = [watch.next().await, watch.next().await, watch.next().await]
        .into_iter()
        .map(|e| e.unwrap().unwrap())
        .map(|e| (e.revision, e.deleted))
        .collect();
    assert_eq!(seen, [(1, false), (2, false), (3, true)]);
    // Taken again at the deletion's revision; then, unrenewed, it expires after 6 s.
    assert_eq!(kb.update("hq", Bytes::from_static(b"b"), 3).await, Ok(4));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(ka.entry("hq").await, Ok(None));
    assert_eq!(ka.update("hq", Bytes::from_static(b"a"), 0).await, Ok(5));
}

#[tokio::test(start_paused = true)]
async fn bucket_operations_of_a_cut_client_time_out_and_its_watch_catches_up() {
    let bus = bus();
    let a = bus.client("a");
    let b = bus.client("b");
    let config = BucketConfig { max_age: None };
    let ka = a.kv("config", config).await.unwrap();
    let kb = b.kv("config", config).await.unwrap();
    ka.put("hq", Bytes::from_static(b"1")).await.unwrap();
    let mut history = kb.watch_with_history("hq").await.unwrap();
    assert_eq!(&history.next().await.unwrap().unwrap().value[..], b"1");
    bus.set_reach("b", Reach::Cut);
    let started = tokio::time::Instant::now();
    assert_eq!(kb.get("hq").await, Err(BusError::TimedOut));
    assert_eq!(started.elapsed(), super::OP_LIMIT);
    ka.put("hq", Bytes::from_static(b"2")).await.unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), history.next()).await;
    assert!(early.is_err(), "a cut client's watch waits");
    bus.set_reach("b", Reach::Connected);
    assert_eq!(&history.next().await.unwrap().unwrap().value[..], b"2");
}

#[tokio::test(start_paused = true)]
async fn a_delayed_bus_delivers_late_and_in_order() {
    let bus = bus();
    let a = bus.client("a");
    let b = bus.client("b");
    let mut sub = b.subscribe("s".into()).await.unwrap();
    bus.set_delay(Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    for n in 0..3u8 {
        a.publish("s".into(), None, Bytes::from(vec![n]))
            .await
            .unwrap();
    }
    for n in 0..3u8 {
        assert_eq!(&sub.next().await.unwrap().payload[..], &[n]);
    }
    assert_eq!(started.elapsed(), Duration::from_millis(300));
}
