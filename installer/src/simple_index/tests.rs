//! Unit tests of index building: names, upload times, manifest import, and a built tree.

use super::metadata::tests::write_wheel;
use super::*;
use bundle::manifest::{FileEntry, LockedFile, PypiTarget};
use sha2::{Digest, Sha256};

#[test]
fn normalizes_names_per_pep_503() {
    assert_eq!(normalize_name("Friendly-Bard"), "friendly-bard");
    assert_eq!(normalize_name("FRIENDLY_BARD"), "friendly-bard");
    assert_eq!(normalize_name("friendly.bard"), "friendly-bard");
    assert_eq!(normalize_name("FrIeNdLy-._.-bArD"), "friendly-bard");
    assert_eq!(normalize_name("ansible_core"), "ansible-core");
}

#[test]
fn upload_time_is_utc_with_microseconds_or_absent() {
    assert_eq!(
        normalize_upload_time("2024-05-01T12:34:56.1Z").as_deref(),
        Some("2024-05-01T12:34:56.100000Z")
    );
    assert_eq!(
        normalize_upload_time("2024-05-01T14:34:56+02:00").as_deref(),
        Some("2024-05-01T12:34:56.000000Z")
    );
    assert_eq!(normalize_upload_time(""), None);
    assert_eq!(normalize_upload_time("yesterday"), None);
}

fn locked(name: &str, version: &str, filename: &str, sha: &str) -> LockedFile {
    LockedFile {
        name: name.into(),
        version: version.into(),
        filename: filename.into(),
        url: format!("https://files.example/{filename}"),
        sha256: sha.into(),
        size: 10,
        upload_time: Some("2024-01-01T00:00:00Z".into()),
        requires_python: Some(">=3.8".into()),
        yanked: None,
        path: format!("pypi/files/{filename}"),
    }
}

fn manifest(targets: Vec<PypiTarget>, files: Vec<FileEntry>) -> BundleManifest {
    BundleManifest {
        pypi_targets: targets,
        ..crate::test_manifest::manifest(files)
    }
}

fn target(name: &str, lock: Vec<LockedFile>) -> PypiTarget {
    PypiTarget {
        name: name.into(),
        python_version: "3.12".into(),
        implementation: "cp".into(),
        machine: "x86_64".into(),
        glibc: "2.39".into(),
        index_url: "https://pypi.org/simple/".into(),
        requirements: vec![],
        requirements_source: None,
        lock,
    }
}

#[test]
fn manifest_locks_are_merged_across_targets_and_conflicts_refused() {
    let shared = locked("six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl", "aa");
    let m = manifest(
        vec![
            target("x86", vec![shared.clone()]),
            target("arm", vec![shared.clone()]),
        ],
        vec![FileEntry {
            path: "pypi/files/extra_pkg-2.0-py3-none-any.whl".into(),
            size: 5,
            sha256: "bb".into(),
            kind: FileKind::Wheel,
            origin: None,
            in_base: false,
        }],
    );
    let (files, paths) = files_from_manifest(&m).unwrap();
    assert_eq!(files.len(), 2);
    let six = files.iter().find(|f| f.project == "six").unwrap();
    assert_eq!(
        six.upload_time.as_deref(),
        Some("2024-01-01T00:00:00.000000Z")
    );
    let extra = files.iter().find(|f| f.project == "extra_pkg").unwrap();
    assert_eq!(extra.version, "2.0");
    assert_eq!(
        paths["extra_pkg-2.0-py3-none-any.whl"],
        "pypi/files/extra_pkg-2.0-py3-none-any.whl"
    );

    let mut other = shared.clone();
    other.sha256 = "cc".into();
    let bad = manifest(
        vec![target("x86", vec![shared]), target("arm", vec![other])],
        vec![],
    );
    assert!(matches!(
        files_from_manifest(&bad),
        Err(IndexError::Conflict { .. })
    ));
}

#[test]
fn build_writes_pages_and_metadata_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let files_dir = dir.path().join("files");
    fs_err::create_dir_all(&files_dir).unwrap();
    let meta = b"Metadata-Version: 2.1\nName: Demo.Pkg\nVersion: 1.0\nRequires-Python: >=3.9\n\n";
    let wheel_name = "demo_pkg-1.0-py3-none-any.whl";
    write_wheel(
        &files_dir.join(wheel_name),
        &[("demo_pkg-1.0.dist-info/METADATA", meta)],
    );
    fs_err::write(files_dir.join("demo.pkg-0.9.tar.gz"), b"sdist").unwrap();
    let record = |filename: &str, version: &str| IndexFile {
        project: "Demo.Pkg".into(),
        version: version.into(),
        filename: filename.into(),
        sha256: "00".repeat(32),
        size: 1,
        upload_time: None,
        requires_python: Some(">=3.9".into()),
        yanked: None,
        core_metadata: None,
    };
    let files = vec![
        record(wheel_name, "1.0"),
        record("demo.pkg-0.9.tar.gz", "0.9"),
    ];
    // A stale project from an earlier bundle must disappear.
    fs_err::create_dir_all(dir.path().join("simple/gone")).unwrap();
    let summary = build(dir.path(), files.clone()).unwrap();
    assert_eq!(
        summary,
        IndexSummary {
            projects: 1,
            files: 2,
            metadata_files: 1
        }
    );
    assert!(!dir.path().join("simple/gone").exists());
    let side = fs_err::read(metadata_path(&files_dir, wheel_name)).unwrap();
    assert_eq!(side, meta);
    assert!(!metadata_path(&files_dir, "demo.pkg-0.9.tar.gz").exists());

    let html = fs_err::read_to_string(dir.path().join("simple/demo-pkg/index.html")).unwrap();
    let side_sha = hex::encode(Sha256::digest(meta));
    assert!(html.contains(&format!("data-core-metadata=\"sha256={side_sha}\"")));
    assert!(html.contains("data-requires-python=\"&gt;=3.9\""));
    let root = fs_err::read_to_string(dir.path().join("simple/index.html")).unwrap();
    assert!(root.contains("<a href=\"demo-pkg/\">demo-pkg</a>"));
    let json: serde_json::Value = serde_json::from_str(
        &fs_err::read_to_string(dir.path().join("simple/demo-pkg/index.v1_json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["name"], "demo-pkg");
    assert_eq!(
        json["files"][1]["core-metadata"]["sha256"],
        side_sha.as_str()
    );
    assert_eq!(json["files"][0]["filename"], "demo.pkg-0.9.tar.gz");

    let page = dir.path().join("simple/demo-pkg/index.html");
    let before = fs_err::metadata(&page).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    build(dir.path(), files).unwrap();
    assert_eq!(
        fs_err::metadata(&page).unwrap().modified().unwrap(),
        before,
        "an unchanged index must not be rewritten"
    );
}
