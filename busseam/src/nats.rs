//! The bus as NATS, through `async-nats`.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::{BucketConfig, BusError, Entry, Message, Subscription, Watch};

fn failed(e: impl std::fmt::Display) -> BusError {
    BusError::Failed(e.to_string())
}

pub(crate) async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2_000))
        })
        .connect(url)
        .await
        .map_err(failed)
}

pub(crate) async fn publish(
    client: &async_nats::Client,
    subject: String,
    header: Option<(&'static str, String)>,
    payload: Bytes,
) -> Result<(), BusError> {
    match header {
        Some((name, value)) => {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(name, value.as_str());
            client.publish_with_headers(subject, headers, payload).await
        }
        None => client.publish(subject, payload).await,
    }
    .map_err(failed)
}

pub(crate) async fn subscribe(
    client: &async_nats::Client,
    subject: String,
) -> Result<Subscription, BusError> {
    let subscriber = client.subscribe(subject).await.map_err(failed)?;
    Ok(Box::pin(subscriber.map(|m| {
        Message {
            subject: m.subject.to_string(),
            reply: m.reply.map(|r| r.to_string()),
            headers: m
                .headers
                .map(|h| {
                    h.iter()
                        .flat_map(|(name, values)| {
                            values
                                .iter()
                                .map(move |v| (name.to_string(), v.as_str().to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            payload: m.payload,
        }
    })))
}

pub(crate) async fn request(
    client: &async_nats::Client,
    subject: String,
    payload: Bytes,
    timeout: Duration,
) -> Result<Bytes, BusError> {
    let request = async_nats::Request::new()
        .payload(payload)
        .timeout(Some(timeout));
    match client.send_request(subject, request).await {
        Ok(reply) => Ok(reply.payload),
        Err(e) => Err(match e.kind() {
            async_nats::RequestErrorKind::TimedOut => BusError::TimedOut,
            async_nats::RequestErrorKind::NoResponders => BusError::NoResponders,
            async_nats::RequestErrorKind::Other => failed(e),
        }),
    }
}

pub(crate) async fn kv(
    client: &async_nats::Client,
    bucket: &str,
    config: BucketConfig,
) -> Result<kv::Store, BusError> {
    let js = async_nats::jetstream::new(client.clone());
    match js.get_key_value(bucket).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: bucket.into(),
                history: 1,
                max_age: config.max_age.unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(failed),
    }
}

fn entry_of(e: kv::Entry) -> Entry {
    Entry {
        deleted: e.operation != kv::Operation::Put,
        key: e.key,
        value: e.value,
        revision: e.revision,
        created: e.created.into(),
    }
}

pub(crate) async fn entry(store: &kv::Store, key: &str) -> Result<Option<Entry>, BusError> {
    Ok(store.entry(key).await.map_err(failed)?.map(entry_of))
}

pub(crate) async fn put(store: &kv::Store, key: &str, value: Bytes) -> Result<u64, BusError> {
    store.put(key, value).await.map_err(failed)
}

pub(crate) async fn update(
    store: &kv::Store,
    key: &str,
    value: Bytes,
    revision: u64,
) -> Result<u64, BusError> {
    store
        .update(key, value, revision)
        .await
        .map_err(|e| match e.kind() {
            kv::UpdateErrorKind::TimedOut => BusError::TimedOut,
            // The server's refusal of a write at another revision than the key's last.
            kv::UpdateErrorKind::Other => BusError::Refused(e.to_string()),
            kv::UpdateErrorKind::InvalidKey => failed(e),
        })
}

pub(crate) async fn delete_at(store: &kv::Store, key: &str, revision: u64) -> Result<(), BusError> {
    store
        .delete_expect_revision(key, Some(revision))
        .await
        .map_err(failed)
}

pub(crate) async fn watch(
    store: &kv::Store,
    pattern: &str,
    history: bool,
) -> Result<Watch, BusError> {
    let watch = match history {
        true => store.watch_with_history(pattern).await,
        false => store.watch(pattern).await,
    }
    .map_err(failed)?;
    Ok(Box::pin(watch.map(|e| e.map(entry_of).map_err(failed))))
}
