//! `installer apply` on a bundle of the Kubespray wheels (fetched once from the live PyPI):
//! the generated index, served by a real nginx through the generated conf.d file, resolves the
//! Kubespray requirements for Python 3.12 on both arches with current pip, pip 23.3 and uv,
//! from the `.metadata` side files alone, at `/pypi/simple/` and at the classic `/pypi`.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::*;

struct Served {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    req: PathBuf,
    nginx: Nginx,
}

fn apply_and_serve() -> Served {
    let wheels: Vec<PathBuf> = fs_err::read_dir(kubespray_wheels())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert!(
        wheels.len() >= 14,
        "expected the Kubespray closure, got {wheels:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("wheels.tar.zst");
    build_wheel_bundle(
        &wheels,
        &tmp.path().join("tree"),
        &bundle,
        base_manifest("2026-09-01T00:00:00Z"),
    );
    let root = tmp.path().join("root");
    let port = free_port();
    run_ok(&mut installer_apply(&bundle, &root, port, &[]));
    let req = tmp.path().join("requirements.txt");
    fs_err::write(&req, KUBESPRAY_REQUIREMENTS).unwrap();
    let nginx = Nginx::start(&root, port);
    Served {
        _tmp: tmp,
        root,
        req,
        nginx,
    }
}

fn pip_dry_run(pip_venv: &std::path::Path, index: &str, arch: &str, s: &Served) -> String {
    let target = s._tmp.path().join(format!("target-{arch}"));
    let mut cmd = Command::new(pip_venv.join("bin/pip"));
    cmd.args([
        "install",
        "--dry-run",
        "--no-cache-dir",
        "--disable-pip-version-check",
    ])
    .args([
        "--index-url",
        index,
        "--only-binary=:all:",
        "--python-version",
        "3.12",
    ])
    .arg("--target")
    .arg(&target)
    .arg("-r")
    .arg(&s.req);
    for p in pip_platforms(arch) {
        cmd.args(["--platform", &p]);
    }
    String::from_utf8_lossy(&run_ok(&mut cmd).stdout).to_string()
}

fn assert_resolved(out: &str, tool: &str) {
    for pin in [
        "ansible-11.13.0",
        "cryptography-50.0.0",
        "jmespath-1.1.0",
        "netaddr-1.3.0",
        "passlib-1.7.4",
        "ansible-core-2.18",
    ] {
        let (name, version) = pin.rsplit_once('-').unwrap();
        let uv_form = format!("{name}=={version}");
        assert!(
            out.contains(pin) || out.contains(&uv_form),
            "{tool}: {pin} not in the resolution:\n{out}"
        );
    }
}

/// Requests in the access log: (.metadata GETs, wheel GETs).
fn metadata_and_wheel_requests(log: &str) -> (usize, usize) {
    let metadata = log.matches(".whl.metadata HTTP").count();
    let wheels = log.matches(".whl HTTP").count();
    (metadata, wheels)
}

#[test]
fn apply_pypi_index_resolves_kubespray_with_pip_and_uv_through_nginx_live_pypi() {
    e2e::harness::require_live_pypi();
    let s = apply_and_serve();
    let simple = s.nginx.url("/pypi/simple/");

    // Content negotiation, redirects and what is not served.
    let json = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
    let (code, ctype, _) = curl(&s.nginx.url("/pypi/simple/ansible/"), Some(json));
    assert_eq!(
        (code.as_str(), ctype.as_str()),
        ("200", "application/vnd.pypi.simple.v1+json")
    );
    let (code, ctype, _) = curl(&s.nginx.url("/pypi/simple/ansible/"), None);
    assert_eq!((code.as_str(), ctype.as_str()), ("200", "text/html"));
    let (code, _, location) = curl(&s.nginx.url("/pypi"), None);
    assert_eq!(code, "301");
    assert!(location.ends_with("/pypi/simple/"), "{location}");
    let (code, _, location) = curl(&s.nginx.url("/pypi/ansible/"), None);
    assert_eq!(code, "301");
    assert!(location.ends_with("/pypi/simple/ansible/"), "{location}");
    let (code, _, _) = curl(&s.nginx.url("/pypi/.installer-state.json"), None);
    assert_eq!(code, "404", "state files are never served");
    let (code, _, _) = curl(&s.nginx.url("/etc/passwd"), None);
    assert_eq!(code, "404");

    // Current pip and pip 23.3 (Rocky 10), both arches, from .metadata only.
    let pip_now = venv("venv-pip-latest", &["-U", "pip"]);
    let pip_233 = venv("venv-pip-23.3", &["pip==23.3"]);
    for (tool, venv) in [("pip latest", &pip_now), ("pip 23.3", &pip_233)] {
        for arch in ARCHES {
            s.nginx.clear_access_log();
            let out = pip_dry_run(venv, &simple, arch, &s);
            assert_resolved(&out, tool);
            let (metadata, wheels) = metadata_and_wheel_requests(&s.nginx.access_log());
            assert!(
                metadata >= 14,
                "{tool} {arch}: {metadata} .metadata requests"
            );
            // pip before 24.x still downloads the chosen wheels at the end of `--dry-run`
            // (after resolving from .metadata); current pip does not.
            if tool == "pip latest" {
                assert_eq!(
                    wheels, 0,
                    "{tool} {arch} downloaded wheels instead of metadata"
                );
            }
        }
    }

    // The classic URL of the usual pip.conf.
    let out = pip_dry_run(&pip_now, &s.nginx.url("/pypi"), "x86_64", &s);
    assert_resolved(&out, "pip via /pypi");

    // uv pip compile, both arches.
    let uv = venv("venv-uv", &["uv"]);
    for arch in ARCHES {
        s.nginx.clear_access_log();
        let out = run_ok(
            Command::new(uv.join("bin/uv"))
                .args(["pip", "compile", "--no-cache", "--python-version", "3.12"])
                .args(["--python-platform", &format!("{arch}-manylinux_2_39")])
                .args(["--index-url", &simple])
                .arg(&s.req),
        );
        assert_resolved(&String::from_utf8_lossy(&out.stdout), "uv");
        let (metadata, wheels) = metadata_and_wheel_requests(&s.nginx.access_log());
        assert!(metadata >= 14, "uv {arch}: {metadata} .metadata requests");
        assert_eq!(wheels, 0, "uv {arch} downloaded wheels");
    }
    assert!(s.root.join("data/pypi/files").is_dir());
}
