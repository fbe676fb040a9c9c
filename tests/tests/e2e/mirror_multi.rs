//! `bundler build` with several `--mirror`s on 127.0.0.1: files come from all of them, a
//! mirror that dies mid-build is dropped with a note and the build completes from the others,
//! and a mirror serving altered packages is caught by the checksums from the signed metadata
//! while the files come from elsewhere. No mirror is trusted: every bundle here is extracted,
//! which checks every file against the manifest.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::Ordering;

use bundle::progress::NoProgress;
use e2e::harness::assert_success;
use e2e::mirror::{GeneratedMirror, MirrorSpec, generate_mirror};
use e2e::server::{Faults, TestServer};
use e2e::workspace_bin;

fn mirror(dir: &Path) -> GeneratedMirror {
    let mut spec = MirrorSpec::small(dir.join("mirror"));
    spec.filler_packages = 40;
    generate_mirror(&spec).expect("generate mirror (needs createrepo_c, modifyrepo_c)")
}

/// Build against `mirrors` (in that order) into `<dir>/b.tar.zst`; the output of the run.
fn build(dir: &Path, m: &GeneratedMirror, mirrors: &[&TestServer]) -> Output {
    build_with(dir, m, mirrors, &[])
}

/// [`build`] with `extra` flags.
fn build_with(dir: &Path, m: &GeneratedMirror, mirrors: &[&TestServer], extra: &[&str]) -> Output {
    let mut cmd = e2e::harness::rpm_only_build(&workspace_bin("bundler"));
    cmd.args(extra);
    for server in mirrors {
        cmd.args(["--mirror", &server.url()]);
    }
    cmd.args([
        "--gpg-key".as_ref(),
        m.key_path.as_os_str(),
        "--cache".as_ref(),
        dir.join("cache").as_os_str(),
        "-o".as_ref(),
        dir.join("b.tar.zst").as_os_str(),
    ]);
    cmd.output().expect("run bundler")
}

/// Extracts the bundle (every file checked against the manifest) and returns how many RPMs
/// it holds.
fn extracted_rpms(dir: &Path) -> usize {
    let manifest =
        bundle::read::extract(&dir.join("b.tar.zst"), &dir.join("tree"), None, &NoProgress)
            .expect("bundle extracts and verifies");
    manifest
        .files
        .iter()
        .filter(|f| f.path.ends_with(".rpm"))
        .count()
}

fn rpm_count(m: &GeneratedMirror) -> usize {
    m.repos.iter().map(|r| r.packages.len()).sum()
}

#[test]
fn files_from_both_mirrors_are_used() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path());
    let a = TestServer::start(&m.root, Faults::none()).unwrap();
    let b = TestServer::start(&m.root, Faults::none()).unwrap();
    let out = assert_success(build(tmp.path(), &m, &[&a, &b]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("dropped"), "{stderr}");
    assert_eq!(extracted_rpms(tmp.path()), rpm_count(&m));
    let (from_a, from_b) = (
        a.stats.rpm_bodies.load(Ordering::SeqCst),
        b.stats.rpm_bodies.load(Ordering::SeqCst),
    );
    assert!(from_a > 0 && from_b > 0, "a: {from_a}, b: {from_b}");
    assert_eq!(
        from_a + from_b,
        rpm_count(&m) as u64,
        "each file fetched once"
    );
}

#[test]
fn a_mirror_failing_mid_build_is_dropped_with_a_note_and_the_build_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path());
    let mut dying = Faults::none();
    dying.dead_after_rpms = Some(4);
    let failing = TestServer::start(&m.root, dying).unwrap();
    let good = TestServer::start(&m.root, Faults::none()).unwrap();
    let out = assert_success(build_with(tmp.path(), &m, &[&failing, &good], &["-v"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("note: mirror {} dropped", failing.url())),
        "{stderr}"
    );
    // With -v the operator sees each step on the way there: the retries on the dead mirror,
    // the fallback to the other one, and the drop.
    let logged = |what: &str| {
        stderr
            .lines()
            .any(|l| l.contains(what) && l.contains(&failing.url()))
    };
    assert!(logged("retry 1 of"), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("trying the next")
            && l.contains(&format!("url={}", failing.url()))
            && l.contains(&format!("next={}", good.url()))),
        "{stderr}"
    );
    assert!(logged("mirror dropped after"), "{stderr}");
    assert!(
        !stderr.contains(&format!("mirror {} dropped", good.url())),
        "{stderr}"
    );
    assert!(failing.stats.rpm_bodies.load(Ordering::SeqCst) > 0);
    assert!(
        failing.stats.rpm_requests.load(Ordering::SeqCst) > 4,
        "the failing mirror was asked again after it died"
    );
    assert_eq!(extracted_rpms(tmp.path()), rpm_count(&m));
}

#[test]
fn a_mirror_serving_altered_packages_is_caught_and_the_files_come_from_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path());
    let mut tampered = Faults::none();
    tampered.always_corrupt = vec![".rpm".into()];
    let bad = TestServer::start(&m.root, tampered).unwrap();
    let good = TestServer::start(&m.root, Faults::none()).unwrap();
    let out = assert_success(build(tmp.path(), &m, &[&bad, &good]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let asked = bad.stats.rpm_requests.load(Ordering::SeqCst);
    assert!(asked > 0, "the altering mirror was never asked");
    assert_eq!(bad.stats.faults.load(Ordering::SeqCst), asked);
    // Every altered body was refused: the good mirror served each file whole.
    assert_eq!(
        good.stats.rpm_bodies.load(Ordering::SeqCst),
        rpm_count(&m) as u64
    );
    assert!(
        stderr.contains(&format!("note: mirror {} dropped", bad.url())),
        "{stderr}"
    );
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
    assert_eq!(extracted_rpms(tmp.path()), rpm_count(&m));
}

#[test]
fn a_mirrorlist_spreads_the_build_over_the_mirrors_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path());
    let a = TestServer::start(&m.root, Faults::none()).unwrap();
    let b = TestServer::start(&m.root, Faults::none()).unwrap();
    // MirrorManager's form: one repo base URL a line, comments first.
    let lists = m.root.join("mirrorlist");
    fs_err::create_dir_all(&lists).unwrap();
    for dir in ["BaseOS", "AppStream", "extras"] {
        let list = format!(
            "# repo = {dir}-10 arch = x86_64 country = global\n{}/10/{dir}/x86_64/os/\n{}/10/{dir}/x86_64/os\n",
            a.url(),
            b.url()
        );
        fs_err::write(lists.join(format!("{dir}-x86_64")), list).unwrap();
    }
    let template = format!("{}/mirrorlist/{{repo}}-{{arch}}?country=global", a.url());
    let mut cmd = e2e::harness::rpm_only_build(&workspace_bin("bundler"));
    cmd.args(["--mirrorlist", &template]).args([
        "--gpg-key".as_ref(),
        m.key_path.as_os_str(),
        "--cache".as_ref(),
        tmp.path().join("cache").as_os_str(),
        "-o".as_ref(),
        tmp.path().join("b.tar.zst").as_os_str(),
    ]);
    assert_success(cmd.output().unwrap());
    assert_eq!(extracted_rpms(tmp.path()), rpm_count(&m));
    let (from_a, from_b) = (
        a.stats.rpm_bodies.load(Ordering::SeqCst),
        b.stats.rpm_bodies.load(Ordering::SeqCst),
    );
    assert!(from_a > 0 && from_b > 0, "a: {from_a}, b: {from_b}");
}

/// A test CA and a certificate for 127.0.0.1 it signed, made with openssl in `dir`; returns the
/// CA's PEM file.
fn test_ca(dir: &Path) -> std::path::PathBuf {
    let openssl = |args: &[&str]| {
        assert_success(
            std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl"),
        )
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    fs_err::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    dir.join("ca.pem")
}

#[test]
fn an_https_mirror_with_a_private_ca_is_fetched_over_http1_and_http2_with_ca_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path());
    let ca = test_ca(tmp.path());
    let port = e2e::harness::free_port();
    let run = tmp.path().join("nginx");
    fs_err::create_dir_all(&run).unwrap();
    let conf = format!(
        "pid {run}/nginx.pid;\nerror_log {run}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n \
         client_body_temp_path {run}/body;\n proxy_temp_path {run}/proxy;\n fastcgi_temp_path {run}/fastcgi;\n \
         uwsgi_temp_path {run}/uwsgi;\n scgi_temp_path {run}/scgi;\n server {{\n  listen 127.0.0.1:{port} ssl http2;\n  \
         ssl_certificate {dir}/server.pem;\n  ssl_certificate_key {dir}/server.key;\n  root {root};\n }}\n}}\n",
        run = run.display(),
        dir = tmp.path().display(),
        root = m.root.display(),
    );
    fs_err::write(run.join("nginx.conf"), conf).unwrap();
    let _nginx = e2e::harness::Daemon::spawn(
        "nginx",
        std::process::Command::new("nginx")
            .arg("-c")
            .arg(run.join("nginx.conf"))
            .args(["-g", "daemon off;"]),
        &run.join("nginx.log"),
    )
    .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let repomd = format!("{url}/10/BaseOS/x86_64/os/repodata/repomd.xml");
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::process::Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", "--cacert"])
            .arg(&ca)
            .arg(&repomd)
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(up, "nginx did not come up on {url}");

    let build = |connections: &str, ca_cert: Option<&Path>| {
        let mut cmd = e2e::harness::rpm_only_build(&workspace_bin("bundler"));
        cmd.args(["--mirror", &url, "--connections", connections])
            .env_remove("KUBESPRAY_OFFLINE_CA_CERT")
            .args([
                "--gpg-key".as_ref(),
                m.key_path.as_os_str(),
                "--cache".as_ref(),
                tmp.path().join(format!("cache-{connections}")).as_os_str(),
                "-o".as_ref(),
                tmp.path().join("b.tar.zst").as_os_str(),
            ]);
        if let Some(ca) = ca_cert {
            cmd.arg("--ca-cert").arg(ca);
        }
        cmd.output().expect("run bundler")
    };
    let refused = build("http1", None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&url) && stderr.contains("certificate"),
        "{stderr}"
    );

    for connections in ["http1", "http2", "http2-shared"] {
        assert_success(build(connections, Some(&ca)));
        assert_eq!(extracted_rpms(tmp.path()), rpm_count(&m), "{connections}");
        fs_err::remove_dir_all(tmp.path().join("tree")).unwrap();
    }
}
