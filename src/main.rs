use std::path::PathBuf;

use parvis::{config::Config, server};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: parvis [serve | rotate-key | make-admin @user:server] [--config FILE]\n\
Runs the Parvis homeserver. Without --config it uses the embedded defaults\n\
(server name localhost:8008, client API on 127.0.0.1:8008, data in ./parvis-data).\n\
Environment variables PARVIS_<KEY> (PARVIS_SECTION__KEY for nested keys) override the file.";

fn main() {
    tune_allocator();
    let mut config_path: Option<PathBuf> = None;
    let mut rotate = false;
    let mut make_admin: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "serve" => {}
            "rotate-key" => rotate = true,
            "make-admin" => match args.next() {
                Some(user) => make_admin = Some(user),
                None => fail("make-admin needs a user id"),
            },
            "--config" | "-c" => match args.next() {
                Some(path) => config_path = Some(path.into()),
                None => fail("--config needs a file"),
            },
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument `{other}`")),
        }
    }
    let config = match Config::load(config_path.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => fail(&e.to_string()),
    };
    if rotate {
        rotate_key(config);
        return;
    }
    if let Some(user) = make_admin {
        match parvis::services::admin::make_admin::make_admin(config, &user) {
            Ok(user) => println!("{user} is now a server admin"),
            Err(e) => fail(&format!("cannot make {user} an admin: {}", e.message)),
        }
        return;
    }
    let runtime = server::runtime().expect("tokio runtime");
    if let Err(e) = runtime.block_on(server::run(config)) {
        eprintln!("parvis: {e}");
        std::process::exit(1);
    }
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

/// mimalloc reads its options from the environment when it starts, before `main`. Two of them
/// matter for a long-running server on an overcommitting system: committing arenas lazily (a third
/// less resident memory at idle) and returning freed memory at once. When they are not set, set
/// them and start again (a few milliseconds, once).
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    const SETTINGS: [(&str, &str); 2] = [
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ("MIMALLOC_PURGE_DELAY", "0"),
    ];
    if SETTINGS.iter().all(|(k, _)| std::env::var_os(k).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command.args(std::env::args_os().skip(1));
    for (key, value) in SETTINGS {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    // `exec` only returns on failure; then run with the defaults.
    let _ = command.exec();
}

fn fail(message: &str) -> ! {
    eprintln!("parvis: {message}\n{USAGE}");
    std::process::exit(2);
}
