//! `installer site init` and the site settings at the command line: the example file is the
//! defaults, an existing file is not overwritten by accident, and a bad value is refused with
//! the setting's name before anything is done.

mod services_support;

use std::process::Command;

use installer::site::SiteConfig;
use services_support::*;

fn installer() -> std::path::PathBuf {
    e2e::workspace_bin("installer")
}

#[test]
fn site_init_writes_the_defaults_and_keeps_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    run_ok(Command::new(installer()).args(["site", "init"]).arg(&path));
    assert_eq!(
        SiteConfig::load(Some(&path), &[]).unwrap(),
        SiteConfig::default()
    );

    fs_err::write(&path, "domain = \"mine.internal\"\n").unwrap();
    let refused = Command::new(installer())
        .args(["site", "init"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(
        fs_err::read_to_string(&path).unwrap(),
        "domain = \"mine.internal\"\n"
    );

    let stdout = run_ok(Command::new(installer()).args(["site", "init"]));
    assert_eq!(stdout.stdout, SiteConfig::example_toml().as_bytes());
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (set, setting) in [
        ("admin.address=10.9.9.9", "`admin.address`"),
        (
            "admin.internal_interface=eth0/1",
            "`admin.internal_interface`",
        ),
        ("http.port=53", "`http.port`"),
    ] {
        let out = Command::new(installer())
            .args(["nat", "enable", "--no-runtime", "--set", set, "--root"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{set}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(setting), "{set}: {err}");
    }
    assert!(
        fs_err::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
