use std::path::PathBuf;

use clap::{Parser, Subcommand};
use parvis::{config::Config, server};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Parvis Matrix homeserver.
///
/// Without --config it uses the embedded defaults (server name localhost:8008, client API on
/// 127.0.0.1:8008, data in ./parvis-data). Environment variables PARVIS_<KEY>
/// (PARVIS_SECTION__KEY for nested keys) override the file.
#[derive(Parser)]
#[command(name = "parvis", version)]
struct Cli {
    /// The configuration file (TOML); see config/parvis.example.toml.
    #[arg(short, long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the homeserver (the default).
    Serve,
    /// Validates the configuration and says what it would serve, without starting.
    CheckConfig,
    /// Marks an existing local account as a server admin (server stopped).
    MakeAdmin {
        /// The user, `@name:server`.
        user: String,
    },
    /// Retires the federation signing key and makes a new one (server stopped).
    RotateKey,
    /// Copies the database and media into a backup folder, while the server runs (or not).
    ///
    /// A running server makes the copy itself (asked through its control socket); a second backup
    /// into the same folder copies only what changed.
    Backup {
        /// The backup folder (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Restores the latest backup of a backup folder into the configured data folder, which must
    /// not hold a database yet (server stopped).
    Restore {
        /// The backup folder.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Deletes the search index and indexes every stored event again (server stopped).
    RebuildSearch,
    /// Exports a room's whole history, state, members and media, with an HTML transcript, as a
    /// tar archive (the server running or not).
    ExportRoom {
        /// The room, `!id:server`.
        room_id: ruma::OwnedRoomId,
        /// The archive to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Exports a user's data (profile, devices, account data, the events of their rooms they may
    /// see, their uploads) as a tar archive, as Synapse's export-data.
    ExportUser {
        /// The user, `@name:server`.
        user_id: ruma::OwnedUserId,
        /// The archive to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Copies the whole database into an empty database of the other engine and verifies the
    /// copy (server stopped): `--from rocksdb:DIR --to postgres:URL`, or back.
    ///
    /// Then point `[storage]` at the new database. Media files stay in the data folder.
    Migrate {
        /// The database to copy: `rocksdb:DIR` or `postgres:URL`.
        #[arg(long, value_name = "ENGINE:WHERE")]
        from: parvis::cli::migrate::Location,
        /// The empty database to fill: `rocksdb:DIR` or `postgres:URL`.
        #[arg(long, value_name = "ENGINE:WHERE")]
        to: parvis::cli::migrate::Location,
        /// The PostgreSQL schema (default: `[storage.postgres] schema`).
        #[arg(long)]
        schema: Option<String>,
    },
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => fail(&e.to_string()),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let runtime = server::runtime().expect("tokio runtime");
            if let Err(e) = runtime.block_on(server::run(config)) {
                eprintln!("parvis: {e}");
                std::process::exit(1);
            }
        }
        Command::CheckConfig => check_config(&config),
        Command::MakeAdmin { user } => {
            match parvis::services::admin::make_admin::make_admin(config, &user) {
                Ok(user) => println!("{user} is now a server admin"),
                Err(e) => fail(&format!("cannot make {user} an admin: {}", e.message)),
            }
        }
        Command::RotateKey => rotate_key(config),
        Command::Backup { out } => report(parvis::cli::backup::backup(&config, &out), "backup"),
        Command::Restore { from } => {
            report(parvis::cli::backup::restore(&config, &from), "restore")
        }
        Command::RebuildSearch => report(parvis::cli::search::rebuild(&config), "rebuild"),
        Command::Migrate { from, to, schema } => report(
            parvis::cli::migrate::migrate(&config, &from, &to, schema.as_deref()),
            "migration",
        ),
        Command::ExportRoom { room_id, out } => {
            let subject = parvis::services::export::Subject::Room(room_id);
            report(
                parvis::cli::export::export(&config, subject, &out),
                "export",
            )
        }
        Command::ExportUser { user_id, out } => {
            let subject = parvis::services::export::Subject::User(user_id);
            report(
                parvis::cli::export::export(&config, subject, &out),
                "export",
            )
        }
    }
}

/// Prints a job's result (JSON) or fails with its error.
fn report(outcome: Result<serde_json::Value, String>, what: &str) {
    match outcome {
        Ok(result) => println!("{result:#}"),
        Err(e) => fail(&format!("{what} failed: {e}")),
    }
}

/// `parvis check-config`: the configuration loaded and validated (errors exit with status 2
/// before this runs); a summary of what it would serve.
fn check_config(config: &Config) {
    println!("configuration is valid");
    println!("server name:     {}", config.server_name);
    println!("client listener: {}", config.listen.client);
    if config.federation.enabled {
        println!("federation:      {}", config.federation.listen);
    } else {
        println!("federation:      off");
    }
    println!("database:        {}", config.storage.path.display());
}

/// Retires the signing key (kept as an old verify key, bytes unchanged) and makes a new one. Run
/// it while the server is stopped.
fn rotate_key(config: Config) {
    let result = parvis::services::Services::open(config).and_then(|services| {
        let rotated = parvis::federation::own_keys::rotate_signing_key(
            &services.globals.db,
            parvis::util::now_ms(),
        );
        services.shutdown();
        rotated
    });
    match result {
        Ok((old, new)) => println!("retired signing key {old}; new signing key {new}"),
        Err(e) => fail(&format!("cannot rotate the signing key: {e}")),
    }
}

/// Memory settings, before any thread starts: glibc's malloc (RocksDB's) keeps one arena
/// (`services::c_heap`). mimalloc's own setting is made before `main` ([`SET_MIMALLOC_OPTIONS`]).
fn tune_allocator() {
    parvis::services::c_heap::limit_arenas();
}

/// mimalloc (Rust's allocations) commits arena memory on demand: a third less resident memory at
/// idle. It reads this option when it reserves its first arena, at the first allocation of Rust
/// code, so the option is set by an ELF constructor, which the loader runs before `main` and
/// before the standard library's start-up allocates (from `main`, it left 15 MiB more resident;
/// starting the process again with `MIMALLOC_ARENA_EAGER_COMMIT` in its environment cost ~10 ms
/// of start-up). A value in the environment is left to mimalloc.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static SET_MIMALLOC_OPTIONS: extern "C" fn() = set_mimalloc_options;

#[cfg(target_os = "linux")]
extern "C" fn set_mimalloc_options() {
    parvis::services::c_heap::mimalloc_commit_on_demand();
}

fn fail(message: &str) -> ! {
    eprintln!("parvis: {message}");
    std::process::exit(2);
}
