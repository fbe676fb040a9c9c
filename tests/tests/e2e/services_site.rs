//! `installer site init` and the site settings at the command line: the example file is the
//! defaults, an existing file is not overwritten by accident, and a bad value is refused with
//! the setting's name before anything is done, with exit status 2 (usage) whether it came from
//! the site file, `--set` or a dedicated flag such as `--http-port`.

use crate::harness::*;
use installer::site::SiteConfig;

#[test]
fn site_init_writes_the_defaults_and_keeps_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    run_ok(installer().args(["site", "init"]).arg(&path));
    assert_eq!(
        SiteConfig::load(Some(&path), &[]).unwrap(),
        SiteConfig::default()
    );

    fs_err::write(&path, "domain = \"mine.internal\"\n").unwrap();
    let refused = installer()
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

    let stdout = run_ok(installer().args(["site", "init"]));
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
        let out = installer()
            .args(["nat", "enable", "--no-runtime", "--set", set, "--root"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{set}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(setting), "{set}: {err}");
    }
    assert!(
        fs_err::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn apply_flags_are_refused_like_the_settings_they_stand_for() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs_err::create_dir(&root).unwrap();
    let bad_site = dir.path().join("site.toml");
    fs_err::write(&bad_site, "[ntp]\nport = 53\n").unwrap();
    // No bundle exists: a refusal of the site (2) comes before the bundle is looked at (1).
    let absent = dir.path().join("absent.tar.zst");
    let apply = |args: &[&str]| {
        installer()
            .arg("apply")
            .arg(&absent)
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };
    let bad_site_arg = bad_site.to_str().unwrap();
    for (args, names) in [
        (
            &["--http-port", "53"][..],
            &["--http-port", "`http.port`", "clashes with dns.port"][..],
        ),
        (&["--http-port", "0"], &["--http-port", "`http.port`"]),
        (
            &["--data-root", "data"],
            &["--data-root", "`data_root`", "must be absolute"],
        ),
        (
            &["--set", "http.port=53"],
            &["`http.port`", "clashes with dns.port"],
        ),
        (
            &["--site", bad_site_arg],
            &["`ntp.port`", "clashes with dns.port"],
        ),
        (&["--http-port", "x"], &["--http-port"]),
    ] {
        let out = apply(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for name in names {
            assert!(err.contains(name), "{args:?}: {name} not in {err}");
        }
    }
    // The flag wins over `--set`, and a valid site reaches the bundle: a plain failure.
    let out = apply(&["--set", "http.port=53", "--http-port", "8080"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("absent.tar.zst"), "{err}");
    assert!(
        fs_err::read_dir(&root).unwrap().next().is_none(),
        "nothing written"
    );
}
