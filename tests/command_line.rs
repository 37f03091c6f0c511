//! The `parvis` command line (issue 11, "Operator experience"): subcommands with `--help`,
//! `check-config` validating without starting, and configuration errors that name the key and
//! where its value came from.

use std::process::{Command, Output};

fn parvis(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parvis"));
    command.args(args);
    // The test's own environment may hold PARVIS_* settings of the suite: start from none.
    for (key, _) in std::env::vars() {
        if key.starts_with("PARVIS_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("parvis runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    let help = parvis(&["--help"], &[]);
    assert!(help.status.success());
    let listed = text(&help.stdout);
    for sub in [
        "serve",
        "check-config",
        "make-admin",
        "rotate-key",
        "backup",
        "restore",
        "export-room",
        "export-user",
        "rebuild-search",
    ] {
        assert!(listed.contains(sub), "{sub} missing from --help:\n{listed}");
        let out = parvis(&[sub, "--help"], &[]);
        assert!(out.status.success(), "{sub} --help: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Usage: parvis"), "{sub}");
    }
    let unknown = parvis(&["frobnicate"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn check_config_validates_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let ok = parvis(
        &["check-config"],
        &[
            ("PARVIS_STORAGE__PATH", data),
            ("PARVIS_SERVER_NAME", "example.org"),
            // Typed by the setting: the room version is the string "11".
            ("PARVIS_ROOMS__DEFAULT_VERSION", "11"),
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let said = text(&ok.stdout);
    assert!(said.contains("configuration is valid"), "{said}");
    assert!(said.contains("example.org"), "{said}");
    // Nothing was started or created.
    assert!(!std::path::Path::new(data).exists());

    let bad = parvis(
        &["check-config"],
        &[("PARVIS_LIMITS__MAX_SYNC_TIMEOUT_MS", "soon")],
    );
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    assert!(
        err.contains("`limits.max_sync_timeout_ms`")
            && err.contains("PARVIS_LIMITS__MAX_SYNC_TIMEOUT_MS"),
        "{err}"
    );

    let file = dir.path().join("parvis.toml");
    std::fs::write(
        &file,
        "server_name = \"example.org\"\n\n[rooms]\ndefault_version = \"999\"\n",
    )
    .unwrap();
    let bad = parvis(&["check-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    assert!(
        err.contains("`rooms.default_version`") && err.contains("parvis.toml line 4"),
        "{err}"
    );
}

#[test]
fn the_example_configuration_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/parvis.example.toml");
    let out = parvis(&["check-config", "--config", example], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
