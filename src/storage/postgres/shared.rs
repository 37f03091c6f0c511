//! Several Parvis processes on one schema (`[storage.postgres] shared`, spec/scale-out.md step 2):
//! sequenced commits, and the wake-ups that tell the other processes about them.
//!
//! A sequenced commit holds the `sequencer` row `FOR UPDATE` from its start to its `COMMIT`, so
//! commits of all processes are in one order, and what a commit reads under the lock (the stream
//! counters, and anything else on any connection: READ COMMITTED statements see every commit
//! that finished before them) includes every earlier commit. The lock and the counters are one
//! pipelined round trip; the batch, the `pg_notify` and the `COMMIT` another. `NOTIFY` is only
//! a wake-up: every process also reads the position itself every [`POLL`], so a lost
//! notification delays, never loses, what another process committed.

use std::{
    sync::{Arc, MutexGuard},
    time::Duration,
};

use futures_util::{StreamExt, future};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Conn, PgEngine, PostgresConfig, connect, err, pg_config};
use crate::storage::{
    Result,
    engine::{Batch, Map, Sequenced},
};

/// How often a process checks for commits of the others without being told.
const POLL: Duration = Duration::from_secs(1);

/// The notification channel of a schema (at most 63 bytes, PostgreSQL's identifier length).
fn channel(schema: &str) -> String {
    let mut channel = format!("parvis_{schema}");
    channel.truncate(63);
    channel
}

struct PgSequenced<'a> {
    engine: &'a PgEngine,
    conn: Arc<Conn>,
    /// The engine's sequencer connection, this commit's until it ends.
    _held: MutexGuard<'a, Option<Arc<Conn>>>,
    values: Vec<Option<Vec<u8>>>,
    /// The transaction is open (rolled back on drop).
    open: bool,
}

impl PgEngine {
    /// [`crate::storage::Engine::sequence`]: `BEGIN`, the lock and the read in one round trip.
    pub(super) fn begin_sequenced(
        &self,
        map: Map,
        keys: &[&[u8]],
    ) -> Result<Option<Box<dyn Sequenced + '_>>> {
        if !self.config.shared {
            return Ok(None);
        }
        let mut held = self.sequencer.lock().unwrap_or_else(|e| e.into_inner());
        let conn = match held.as_ref() {
            Some(conn) if !conn.client.is_closed() => conn.clone(),
            _ => {
                let config = self.config.clone();
                let fresh = Arc::new(self.block(async move { connect(&config).await })??);
                *held = Some(fresh.clone());
                fresh
            }
        };
        let id = self.id(map);
        let wanted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        let reading = conn.clone();
        let rows = self.block(async move {
            let conn = reading;
            let locked = conn
                .client
                .batch_execute("BEGIN; SELECT id FROM sequencer WHERE id = 1 FOR UPDATE");
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&id, &wanted];
            let read = conn.client.query(&conn.multi_get, &params);
            match future::try_join(locked, read).await {
                Ok(((), rows)) => Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
                    .collect::<Vec<_>>()),
                Err(e) => {
                    let _ = conn.client.batch_execute("ROLLBACK").await;
                    Err(err(e))
                }
            }
        })??;
        let values = keys
            .iter()
            .map(|k| {
                rows.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            })
            .collect();
        Ok(Some(Box::new(PgSequenced {
            engine: self,
            conn,
            _held: held,
            values,
            open: true,
        })))
    }

    /// [`crate::storage::Engine::watch_commits`]: a `LISTEN` connection and a periodic call,
    /// on the engine's runtime, for as long as the engine lives.
    pub(super) fn watch(&self, on_commit: Arc<dyn Fn() + Send + Sync>) -> Result<()> {
        if !self.config.shared {
            return Ok(());
        }
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| err("the engine is closed"))?;
        let config = self.config.clone();
        runtime.spawn(async move {
            loop {
                if let Err(e) = listen(&config, &on_commit).await {
                    tracing::warn!(error = %e, "the LISTEN connection ended; reconnecting");
                }
                on_commit();
                tokio::time::sleep(POLL).await;
            }
        });
        Ok(())
    }
}

/// Listens until the connection fails, calling `on_commit` on every notification and every
/// [`POLL`].
async fn listen(config: &PostgresConfig, on_commit: &Arc<dyn Fn() + Send + Sync>) -> Result<()> {
    let (client, mut connection) = pg_config(config)?.connect(NoTls).await.map_err(err)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN \"{}\"", channel(&config.schema)))
        .await
        .map_err(err)?;
    // Listening from here on: what committed before is found by the position read this causes.
    on_commit();
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(()) => on_commit(),
                None => break,
            },
            _ = tick.tick() => on_commit(),
        }
    }
    match driver.await {
        Ok(Err(e)) => Err(err(e)),
        _ => Err(err("the LISTEN connection closed")),
    }
}

impl Sequenced for PgSequenced<'_> {
    fn values(&self) -> &[Option<Vec<u8>>] {
        &self.values
    }

    fn commit(mut self: Box<Self>, batch: Batch, wake: &str) -> Result<()> {
        let params = self.engine.write_params(batch);
        let conn = self.conn.clone();
        let (channel, wake) = (channel(&self.engine.config.schema), wake.to_owned());
        self.open = false;
        self.engine.block(async move {
            let write = async {
                match &params {
                    Some((del_m, del_k, put_m, put_k, put_v)) => conn
                        .client
                        .execute(&conn.write, &[del_m, del_k, put_m, put_k, put_v])
                        .await
                        .map(|_| ()),
                    None => Ok(()),
                }
            };
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&channel, &wake];
            let notify = conn.client.execute(&conn.notify, &params);
            let commit = conn.client.batch_execute("COMMIT");
            let outcome = future::try_join3(write, notify, commit).await;
            if outcome.is_err() {
                // A failed statement makes `COMMIT` roll back; make sure nothing stays open.
                let _ = conn.client.batch_execute("ROLLBACK").await;
            }
            outcome.map(|_| ()).map_err(err)
        })?
    }
}

impl Drop for PgSequenced<'_> {
    fn drop(&mut self) {
        if self.open {
            let conn = self.conn.clone();
            let _ = self
                .engine
                .block(async move { conn.client.batch_execute("ROLLBACK").await });
        }
    }
}
