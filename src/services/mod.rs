//! Services: each owns its maps and in-memory state. Cross-service operations are functions that
//! take `&Services`; nothing is global, so several servers can run in one process.

pub mod account_data;
pub mod admin;
pub mod appservice;
pub mod backup;
pub mod c_heap;
pub mod change_cache;
pub mod cluster;
pub mod dehydrated_devices;
pub mod directory;
pub mod directory_listing;
pub mod email;
pub mod ephemeral;
pub mod export;
pub mod external_ids;
pub mod filters;
pub mod globals;
pub mod heavy_work;
pub mod jobs;
pub mod key_backup;
pub mod keys;
pub mod ldap;
pub mod login_failures;
pub mod media;
pub mod metrics;
pub mod outgoing;
pub mod partial_state;
pub mod password_pool;
pub mod periodic;
pub mod push;
pub mod ratelimit;
pub mod receipts;
pub mod registration_tokens;
pub mod relations;
pub mod reports;
pub mod retention;
pub mod rooms;
pub mod search;
pub mod sends_in_flight;
pub mod server_notices;
pub mod sessions;
pub mod short;
pub mod sso;
pub mod state;
pub mod stream_changes;
pub mod sync;
pub mod threepids;
pub mod time_index;
pub mod timeline;
pub mod to_device;
pub mod uia;
pub mod users;
pub mod voip;
pub mod webhooks;

use std::sync::Arc;

use crate::{
    config::{Config, EngineKind},
    error::{Error, Result},
    storage::{Db, Map, counting::Counting, rocks::RocksEngine},
};

pub struct Services {
    pub globals: globals::Globals,
    pub short: short::ShortIds,
    pub state: state::StateService,
    pub timeline: timeline::Timeline,
    pub membership: rooms::membership::MembershipIndex,
    pub users: users::Users,
    pub uia: uia::Uia,
    pub directory: directory::Directory,
    pub account_data: account_data::AccountData,
    pub receipts: receipts::Receipts,
    pub typing: ephemeral::Typing,
    pub presence: ephemeral::Presence,
    pub filters: filters::Filters,
    pub push: push::Push,
    pub rate_limiter: ratelimit::RateLimiter,
    /// The growing delay after failed logins, per account.
    pub login_failures: login_failures::LoginFailures,
    pub federation: crate::federation::Federation,
    /// Rooms joined with partial state, until their full state is fetched.
    pub partial_state: partial_state::PartialState,
    pub media: media::Media,
    pub sliding_sync: sync::sliding::connection::Connections,
    /// The bound on state resolution and auth-chain walks.
    pub heavy_work: heavy_work::HeavyWork,
    /// The registered application services (read at start-up).
    pub appservices: appservice::Appservices,
    /// Sends whose answer is not given yet, per device (their device's /sync waits for them).
    pub sends_in_flight: sends_in_flight::SendsInFlight,
    /// What this process knows of the devices' to-device queues (`to_device::Queues`).
    pub to_device: to_device::Queues,
    /// Users' reports of abusive events, rooms and users, for the admins.
    pub reports: reports::Reports,
    /// Incoming webhooks and the integration user.
    pub webhooks: webhooks::Webhooks,
    /// Admins' background jobs (backups, …) and their progress.
    pub jobs: jobs::Jobs,
    /// The backup running now, if any.
    pub backups: backup::Backups,
    /// What the server counts for Prometheus (`[metrics] listen`).
    pub metrics: metrics::Metrics,
    /// Retention policies (expired events are hidden, then purged).
    pub retention: retention::Retention,
    /// Registration tokens made with the admin API, and the registrations holding one.
    pub registration_tokens: registration_tokens::RegistrationTokens,
    /// Users whose actions pretend to work (an admin's shadow-ban).
    pub shadow_bans: admin::user_set::UserSet,
    /// Users deactivated with `erase` (their events are pruned for new readers).
    pub erased_users: admin::user_set::UserSet,
    /// Single-use login tokens (`m.login.token`).
    pub login_tokens: sessions::login_tokens::LoginTokens,
    /// Locked and suspended accounts.
    pub moderation: sessions::moderation::Moderation,
    /// Links of accounts to the directory or an identity provider.
    pub external_ids: external_ids::ExternalIds,
    /// The LDAP directory (`[ldap]`), when enabled.
    pub ldap: Option<ldap::Directory>,
    /// Single sign-on providers (`[sso]`) and the state of their sign-ins.
    pub sso: sso::Sso,
    /// E-mail addresses of accounts and their validation sessions.
    pub threepids: threepids::Threepids,
    /// The SMTP client (`[email]`), when enabled.
    pub mailer: Option<email::mailer::Mailer>,
}

/// Every column family of the database, service by service.
pub fn all_maps() -> Vec<Map> {
    [
        globals::MAPS,
        short::MAPS,
        state::MAPS,
        timeline::MAPS,
        timeline::backfilled::MAPS,
        timeline::redaction::MAPS,
        timeline::redacted_originals::MAPS,
        rooms::membership::MAPS,
        users::MAPS,
        directory::MAPS,
        account_data::MAPS,
        receipts::MAPS,
        ephemeral::MAPS,
        filters::MAPS,
        push::MAPS,
        keys::MAPS,
        to_device::MAPS,
        key_backup::MAPS,
        dehydrated_devices::MAPS,
        crate::federation::MAPS,
        media::MAPS,
        admin::MAPS,
        search::MAPS,
        relations::MAPS,
        reports::MAPS,
        time_index::MAPS,
        sync::sliding::bumps::MAPS,
        appservice::queue::MAPS,
        webhooks::MAPS,
        jobs::MAPS,
        registration_tokens::MAPS,
        server_notices::MAPS,
        sessions::MAPS,
        external_ids::MAPS,
        sso::MAPS,
        threepids::MAPS,
        uia::store::MAPS,
        partial_state::MAPS,
    ]
    .concat()
}

impl Services {
    /// Opens the database named by `config` and builds every service.
    pub fn open(config: Config) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.storage.path).map_err(|e| {
            Error::internal(format!(
                "cannot create {}: {e}",
                config.storage.path.display()
            ))
        })?;
        let engine: Arc<dyn crate::storage::Engine> = match config.storage.engine {
            EngineKind::Rocksdb => RocksEngine::open(
                &config.storage.path,
                &all_maps(),
                config.storage.cache_mb,
                config.storage.write_buffer_mb,
                config.storage.sync_writes,
            )?,
            EngineKind::Postgres => {
                crate::storage::postgres::PgEngine::open(&config.storage.postgres, &all_maps())?
            }
        };
        Self::with_db(config, Db::new(Counting::wrap(engine)))
    }

    pub fn with_db(config: Config, db: Db) -> Result<Arc<Self>> {
        let shared =
            config.storage.engine == EngineKind::Postgres && config.storage.postgres.shared;
        let rate_limiter = ratelimit::RateLimiter::new(&config.rate_limits);
        rate_limiter.load_overrides(&db)?;
        let shadow_bans = admin::user_set::UserSet::load(&db, admin::shadow_ban::SHADOW_BANNED)?;
        let erased_users = admin::user_set::UserSet::load(&db, admin::deactivation::ERASED_USERS)?;
        let moderation = sessions::moderation::Moderation::load(&db)?;
        let ldap = ldap::Directory::from_config(&config.ldap).map_err(Error::internal)?;
        let login_failures = login_failures::LoginFailures::new(&config.rate_limits);
        let heavy_work = heavy_work::HeavyWork::new(config.limits.heavy_work_threads);
        let passwords = password_pool::PasswordPool::new(
            config.limits.password_hash_threads,
            config.limits.password_hash_queue,
        );
        let federation = crate::federation::Federation::new(&config, db.clone())?;
        let partial_state = partial_state::PartialState::open(db.clone(), shared)?;
        let media = media::Media::open(&config, db.clone())?;
        let appservices = appservice::registration::load(
            &config.appservices.registration_files,
            &config.server_name,
        )
        .map(appservice::Appservices::new)
        .map_err(Error::internal)?;
        let webhooks = webhooks::Webhooks::new(db.clone(), &config.webhooks);
        let retention = retention::Retention::new(&config.retention);
        let sso = sso::Sso::open(&config.sso, &db)?;
        let mailer = email::mailer::Mailer::from_config(&config.email).map_err(Error::internal)?;
        let services = Arc::new(Self {
            globals: globals::Globals::open(config, db.clone())?,
            short: short::ShortIds::new(db.clone()),
            state: state::StateService::new(db.clone()),
            timeline: timeline::Timeline::new(db.clone()),
            membership: rooms::membership::MembershipIndex::new(db.clone()).uncached(shared),
            users: users::Users::new(db.clone(), passwords).without_token_cache(shared),
            uia: if shared {
                uia::Uia::shared(db.clone())
            } else {
                uia::Uia::default()
            },
            directory: directory::Directory::new(db.clone()),
            account_data: account_data::AccountData::new(db.clone()),
            receipts: receipts::Receipts::new(db.clone()),
            typing: ephemeral::Typing::new(shared),
            presence: ephemeral::Presence::new(db.clone()),
            push: push::Push::open(db.clone(), shared)?,
            reports: reports::Reports::new(db.clone()),
            jobs: jobs::Jobs::open(db.clone(), &[retention::JOB_KIND])?,
            backups: Default::default(),
            metrics: Default::default(),
            retention,
            registration_tokens: registration_tokens::RegistrationTokens::new(db.clone()),
            shadow_bans,
            erased_users,
            login_tokens: sessions::login_tokens::LoginTokens::new(db.clone()),
            moderation,
            external_ids: external_ids::ExternalIds::new(db.clone()),
            ldap,
            sso,
            threepids: threepids::Threepids::new(db.clone()),
            mailer,
            webhooks,
            filters: filters::Filters::new(db),
            rate_limiter,
            login_failures,
            federation,
            partial_state,
            media,
            sliding_sync: Default::default(),
            heavy_work,
            appservices,
            sends_in_flight: Default::default(),
            to_device: Default::default(),
        });
        // Alone on the database, every later change passes through this process.
        if !shared {
            let now = services.globals.current_pos();
            services.globals.stream_changes.start(now);
        }
        // Other processes' invalidations reach this process's caches (a no-op alone).
        let weak = Arc::downgrade(&services);
        services
            .globals
            .set_invalidation_handler(Box::new(move |pos, invalidation| {
                if let Some(s) = weak.upgrade() {
                    cluster::apply(&s, pos, invalidation);
                }
            }));
        Ok(services)
    }

    pub fn config(&self) -> &Config {
        &self.globals.config
    }

    /// Runs blocking service work (RocksDB calls) on the blocking pool, off the async workers.
    pub async fn run<R, F>(self: &Arc<Self>, f: F) -> Result<R>
    where
        F: FnOnce(&Services) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| Error::internal(format!("worker failed: {e}")))?
    }

    /// Like `run`, for work that may resolve state or walk auth chains on behalf of another server:
    /// it first waits (asynchronously, holding no thread) for one of the `limits.heavy_work_threads`
    /// admissions, so such work never fills the blocking pool that every database call needs.
    pub async fn run_heavy<R, F>(self: &Arc<Self>, f: F) -> Result<R>
    where
        F: FnOnce(&Services) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let _admitted = self.heavy_work.admit().await;
        self.run(f).await
    }

    pub fn shutdown(&self) {
        if let Err(e) = self.globals.db.flush() {
            tracing::warn!("flush on shutdown: {e}");
        }
    }
}
