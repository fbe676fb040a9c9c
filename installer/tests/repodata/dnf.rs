//! dnf consumes our repodata: with gpgcheck on it installs a signed package and its dependency
//! into an `--installroot`, refuses one signed by a key it was not given, lists the groups of
//! the carried comps and shows the carried advisories.

use std::path::Path;
use std::process::{Command, Output};

use installer::repodata::{self, Options, PackageSet, RepodataInput, UpstreamRecords};

use super::oracle::fixtures;

fn signed_rpm(repo: &Path, name: &str, requires: Option<&str>, secret_key: &Path) {
    let signer = rpm::signature::pgp::Signer::from_asc_file(secret_key).unwrap();
    let mut builder = rpm::PackageBuilder::new(name, "1.0", "MIT", "noarch", "dnf test package");
    builder.release("1");
    builder
        .with_file_contents(
            format!("{name}\n"),
            rpm::FileOptions::new(format!("/usr/share/{name}/data")),
        )
        .unwrap();
    if let Some(dependency) = requires {
        builder.requires(rpm::Dependency::any(dependency));
    }
    let package = builder.build_and_sign(signer).unwrap();
    let dir = repo.join(format!("Packages/{}", &name[..1]));
    std::fs::create_dir_all(&dir).unwrap();
    package
        .write_file(dir.join(format!("{name}-1.0-1.noarch.rpm")))
        .unwrap();
}

const COMPS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">
<comps>
  <group>
    <id>kso-tools</id>
    <name>KSO Tools</name>
    <description>Tools for the dnf test</description>
    <default>false</default>
    <uservisible>true</uservisible>
    <packagelist>
      <packagereq type="mandatory">kso-app</packagereq>
    </packagelist>
  </group>
</comps>
"#;

const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="releng@example.invalid" status="final" type="security" version="2">
    <id>KSO-2026:0001</id>
    <title>Important: kso-app security update</title>
    <issued date="2026-01-01 00:00:00"/>
    <updated date="2026-01-02 00:00:00"/>
    <severity>Important</severity>
    <summary>kso-app fix</summary>
    <description>Fixes a flaw in kso-app.</description>
    <references/>
    <pkglist>
      <collection short="kso">
        <name>kso</name>
        <package name="kso-app" version="1.0" release="1" epoch="0" arch="noarch">
          <filename>kso-app-1.0-1.noarch.rpm</filename>
        </package>
      </collection>
    </pkglist>
  </update>
</updates>
"#;

struct Dnf<'a> {
    root: &'a Path,
    repo: &'a Path,
    key: &'a Path,
}

impl Dnf<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("dnf")
            .arg("-y")
            .arg(format!("--installroot={}", self.root.display()))
            .args([
                "--releasever=10",
                "--disableplugin=*",
                "--setopt=install_weak_deps=0",
            ])
            .arg(format!(
                "--setopt=reposdir={}",
                self.root.join("no-repos").display()
            ))
            .arg(format!(
                "--setopt=cachedir={}",
                self.root.join("cache").display()
            ))
            .arg(format!("--repofrompath=kso,file://{}", self.repo.display()))
            .args(["--repo=kso", "--setopt=kso.gpgcheck=1"])
            .arg(format!("--setopt=kso.gpgkey=file://{}", self.key.display()))
            .args(args)
            .output()
            .expect("dnf is installed (Debian package dnf)")
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn dnf_installs_signed_packages_with_groups_and_advisories_public_fixture() {
    let keys = fixtures().join("keys/v4");
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let secret = keys.join("rpm-testkey-v4-rsa4096.secret");
    signed_rpm(&repo, "kso-app", Some("kso-lib"), &secret);
    signed_rpm(&repo, "kso-lib", None, &secret);
    // Signed, but by a key dnf is not given: must be refused.
    signed_rpm(
        &repo,
        "kso-rogue",
        None,
        &keys.join("rpm-testkey-v4-ed25519.secret"),
    );

    let upstream_dir = temp.path().join("upstream");
    std::fs::create_dir_all(&upstream_dir).unwrap();
    std::fs::write(upstream_dir.join("comps.xml"), COMPS).unwrap();
    std::fs::write(upstream_dir.join("updateinfo.xml"), UPDATEINFO).unwrap();
    let input = RepodataInput {
        repo_dir: repo.clone(),
        package_sets: vec![PackageSet::scan(&repo, "noarch").unwrap()],
        upstream: vec![UpstreamRecords {
            comps: Some(upstream_dir.join("comps.xml")),
            updateinfo: Some(upstream_dir.join("updateinfo.xml")),
            modules: None,
        }],
    };
    let outcome = repodata::build(&input, &Options::default(), &bundle::NoProgress).unwrap();
    assert_eq!(outcome.packages, 3);

    let root = temp.path().join("root");
    std::fs::create_dir_all(root.join("no-repos")).unwrap();
    let dnf = Dnf {
        root: &root,
        repo: &repo,
        key: &keys.join("rpm-testkey-v4-rsa4096.asc"),
    };

    let install = dnf.run(&["install", "kso-app"]);
    assert!(
        install.status.success(),
        "dnf install failed:\n{}",
        text(&install)
    );
    assert!(root.join("usr/share/kso-app/data").is_file());
    assert!(
        root.join("usr/share/kso-lib/data").is_file(),
        "dependency installed"
    );

    let rogue = dnf.run(&["install", "kso-rogue"]);
    assert!(
        !rogue.status.success() && !root.join("usr/share/kso-rogue/data").exists(),
        "a package signed with another key must be refused:\n{}",
        text(&rogue)
    );

    let groups = dnf.run(&["group", "list", "--hidden"]);
    assert!(groups.status.success(), "{}", text(&groups));
    assert!(text(&groups).contains("KSO Tools"), "{}", text(&groups));

    let advisories = dnf.run(&["updateinfo", "list", "--all"]);
    assert!(advisories.status.success(), "{}", text(&advisories));
    assert!(
        text(&advisories).contains("KSO-2026:0001"),
        "{}",
        text(&advisories)
    );
}
