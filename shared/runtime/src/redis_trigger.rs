//! The Redis trigger, as Spin's (`[application.trigger.redis] address`, `[[trigger.redis]]
//! channel/component`, Spin's `trigger-redis` schema): one subscriber per address; each
//! message runs `spin:redis/inbound-redis#handle-message` of the channel's components in a
//! fresh instance. A lost connection is retried every second; messages published meanwhile
//! are lost, as with any Redis pub/sub, which is why VaultX's jobs also have a sweep.

use crate::server::Host;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "redis-trigger",
        exports: { default: async | store },
        with: { "spin:redis/redis": crate::host::spin::redis::redis },
    });
}

pub type SubscriberPre = bindings::RedisTriggerPre<Host>;

/// One Redis-triggered component, instantiated per message; loaded by its first message or
/// by the runtime's background preload, whichever comes first.
pub struct Subscriber {
    pub component: String,
    pub pre: tokio::sync::OnceCell<SubscriberPre>,
    pub load: Box<dyn Fn() -> anyhow::Result<SubscriberPre> + Send + Sync>,
    pub make_host: Box<dyn Fn() -> Host + Send + Sync>,
    /// A message runs at most this many instances of the component at once; more wait.
    pub running: Arc<tokio::sync::Semaphore>,
    /// `vaultx_instances_started_total` for this component.
    pub started: vaultx_core::metrics::IntCounter,
}

pub fn subscriber_pre(pre: wasmtime::component::InstancePre<Host>) -> anyhow::Result<bindings::RedisTriggerPre<Host>> {
    bindings::RedisTriggerPre::new(pre).map_err(|e| anyhow::anyhow!("not a spin:redis/inbound-redis@3.0.0 component: {e:#}"))
}

impl Subscriber {
    pub async fn ready(&self) -> anyhow::Result<&SubscriberPre> {
        self.pre.get_or_try_init(|| async { (self.load)() }).await
    }

    /// Runs `handle-message` in a fresh instance. Errors are the component's to report; the
    /// runtime logs them and carries on, as Spin does.
    pub async fn deliver(self: Arc<Self>, engine: wasmtime::Engine, payload: Vec<u8>) {
        let Ok(_permit) = self.running.clone().acquire_owned().await else { return };
        let outcome = async {
            let mut store = wasmtime::Store::new(&engine, (self.make_host)());
            let pre = self.ready().await.map_err(|e| wasmtime::format_err!("{e:#}"))?;
            let instance = pre.instantiate_async(&mut store).await?;
            self.started.inc();
            store
                .run_concurrent(async move |accessor| instance.spin_redis_inbound_redis().call_handle_message(accessor, payload).await)
                .await?
        }
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("vaultx-runtime: component {}: handle-message failed: {e:?}", self.component),
            Err(e) => eprintln!("vaultx-runtime: component {}: instance ended with an error: {e:?}", self.component),
        }
    }
}

/// Subscribes to `channels` at `address` and delivers each message to the channel's
/// subscribers, reconnecting after a lost connection. Runs until the process stops.
pub async fn listen(engine: wasmtime::Engine, address: String, channels: HashMap<String, Vec<Arc<Subscriber>>>) {
    let mut announced = false;
    loop {
        match subscribe(&address, &channels).await {
            Ok(mut pubsub) => {
                println!("vaultx-runtime: redis trigger subscribed to {} channel(s) at {address}", channels.len());
                announced = false;
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let channel = message.get_channel_name().to_owned();
                    for s in channels.get(&channel).into_iter().flatten() {
                        tokio::spawn(s.clone().deliver(engine.clone(), message.get_payload_bytes().to_vec()));
                    }
                }
                eprintln!("vaultx-runtime: redis trigger lost its connection to {address}; reconnecting");
            }
            Err(e) if !announced => {
                eprintln!("vaultx-runtime: redis trigger cannot reach {address} ({e}); retrying every second (jobs wait for the sweep meanwhile)");
                announced = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn subscribe(address: &str, channels: &HashMap<String, Vec<Arc<Subscriber>>>) -> redis::RedisResult<redis::aio::PubSub> {
    let client = redis::Client::open(address)?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connection timed out")))??;
    for channel in channels.keys() {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub)
}

