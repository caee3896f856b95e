//! What a newcomer meets when something is wrong at start-up: the error
//! names the address, server or file, and nothing is left behind.

use std::process::Command;

/// Runs the binary; returns (success, stdout and stderr together).
fn accessd(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_accessd"))
        .args(args)
        .env("ACCESSD_LOG", "warn")
        .env_remove("ACCESSD_ADMIN_TOKEN")
        .output()
        .unwrap_or_else(|e| panic!("run accessd: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_taken_port_is_named_and_nothing_is_created_or_printed() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let address = taken
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let database = format!("sqlite://{}/accessd.db", dir.path().display());
    let (ok, text) = accessd(&["serve", "--listen", &address, "--database", &database]);
    assert!(!ok);
    assert!(
        text.contains(&format!("cannot listen on {address}")),
        "{text}"
    );
    assert!(!text.contains("admin token"), "no token printed: {text}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing created: {left:?}");
}

#[test]
fn a_mistyped_database_path_is_refused_by_admin_token() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("typo.db");
    let url = format!("sqlite://{}", missing.display());
    let (ok, text) = accessd(&["admin-token", "--database", &url]);
    assert!(!ok);
    assert!(
        text.contains(&format!("no database at {}", missing.display())),
        "{text}"
    );
    assert!(!missing.exists(), "no new database was made");
}

#[test]
fn unreachable_databases_are_named_with_their_cause() {
    // A port nothing listens on: taken, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("postgres://postgres@127.0.0.1:{port}/nowhere");
    let (ok, text) = accessd(&["migrate", "--database", &url]);
    assert!(!ok);
    assert!(
        text.contains(&format!(
            "cannot reach PostgreSQL at 127.0.0.1:{port} (database nowhere)"
        )),
        "{text}"
    );
    assert!(text.contains("refused"), "the cause is given: {text}");

    let file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    // A path below a regular file cannot be created.
    let below_a_file = file.path().join("accessd.db");
    let url = format!("sqlite://{}", below_a_file.display());
    let (ok, text) = accessd(&["migrate", "--database", &url]);
    assert!(!ok);
    assert!(
        text.contains(&format!(
            "cannot open the SQLite database {}",
            below_a_file.display()
        )),
        "{text}"
    );
}
