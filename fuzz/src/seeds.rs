//! Starting inputs for each target: small valid documents of each format, built from the
//! formats' own writers where the project has one (a bundle), so that the fuzzer starts inside
//! the parser instead of at its first check. Written by `fuzz-seeds DIR` before each run.

use std::io::Write;

use bundle::manifest::BundleManifest;
use bundle::{FileEntry, FileKind, ToolInfo, Totals};
use sha2::{Digest, Sha256};

pub(crate) const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm">
  <name>a</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="1.0" rel="1.el10"/>
  <checksum type="sha256" pkgid="YES">aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</checksum>
  <size package="1234" installed="5678" archive="6000"/>
  <location href="Packages/a/a-1.0-1.el10.x86_64.rpm"/>
  <format>
    <rpm:provides>
      <rpm:entry name="a" flags="EQ" epoch="0" ver="1.0" rel="1.el10"/>
      <rpm:entry name="liba.so.1()(64bit)"/>
    </rpm:provides>
    <rpm:requires>
      <rpm:entry name="b" flags="GE" epoch="0" ver="2"/>
      <rpm:entry name="(c if d)"/>
      <rpm:entry name="/usr/share/doc/a/README"/>
    </rpm:requires>
    <rpm:recommends>
      <rpm:entry name="e"/>
    </rpm:recommends>
    <file>/usr/bin/a</file>
  </format>
</package>
<package type="rpm">
  <name>b</name>
  <arch>noarch</arch>
  <version epoch="1" ver="2.5" rel="3"/>
  <checksum type="sha256" pkgid="YES">bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb</checksum>
  <size package="99"/>
  <location href="Packages/b/b-2.5-3.noarch.rpm"/>
  <format><rpm:provides><rpm:entry name="b" flags="EQ" epoch="1" ver="2.5" rel="3"/></rpm:provides></format>
</package>
</metadata>
"#;

const REPOMD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1733000000</revision>
  <data type="primary">
    <checksum type="sha256">cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc</checksum>
    <open-checksum type="sha256">dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd</open-checksum>
    <location href="repodata/ccc-primary.xml.gz"/>
    <timestamp>1733000000</timestamp>
    <size>1234</size>
    <open-size>5678</open-size>
  </data>
  <data type="filelists">
    <checksum type="sha1">eeee</checksum>
    <location href="repodata/eee-filelists.xml.zst"/>
    <size>99</size>
  </data>
</repomd>
"#;

const FILELISTS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="2">
<package pkgid="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" name="a" arch="x86_64">
  <version epoch="0" ver="1.0" rel="1.el10"/>
  <file>/usr/bin/a</file>
  <file>/usr/share/doc/a/README</file>
  <file type="dir">/usr/share/doc/a</file>
</package>
<package pkgid="ffff" name="b" arch="noarch">
  <version epoch="1" ver="2.5" rel="3"/>
  <file>/usr/libexec/a/helper</file>
</package>
</filelists>
"#;

const HTML_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta name="pypi:repository-version" content="1.1"><base href="../../files/"></head>
<body>
<a href="fuzz_pkg-1.0-py3-none-any.whl#sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=00">fuzz_pkg-1.0-py3-none-any.whl</a>
<a href="https://files.invalid/fuzz-pkg-0.9.tar.gz" data-yanked="broken &amp; bad">fuzz-pkg-0.9.tar.gz</a>
<a href='fuzz_pkg-1.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl' data-yanked>x</a>
</body></html>
"#;

const JSON_PAGE: &str = r#"{"meta":{"api-version":"1.1"},"name":"fuzz-pkg","versions":["0.9","1.0"],
"files":[
 {"filename":"fuzz_pkg-1.0-py3-none-any.whl","url":"../../files/fuzz_pkg-1.0-py3-none-any.whl","hashes":{"sha256":"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"},"requires-python":">=3.8","core-metadata":{"sha256":"00"},"size":1000,"upload-time":"2025-01-01T00:00:00.000000Z"},
 {"filename":"fuzz-pkg-0.9.tar.gz","url":"https://files.invalid/fuzz-pkg-0.9.tar.gz","hashes":{},"yanked":"broken","size":10},
 {"filename":"fuzz_pkg-1.1-cp312-abi3-win_amd64.whl","url":"x.whl","hashes":{"sha256":"11"},"yanked":true}
]}
"#;

const METADATA: &str = "Metadata-Version: 2.4
Name: fuzz-pkg
Version: 1.0
Summary: a package
Requires-Python: >=3.8, !=3.9.*
Requires-Dist: requests (>=2.0)
Requires-Dist: idna; python_version >= \"3.8\" and extra == \"net\"
Requires-Dist: pywin32>=300; sys_platform == \"win32\"
Provides-Extra: net
Dynamic: Requires-Dist
License: long
  folded line

The description body, ignored.
";

const REQUIREMENTS: &str = "# the kind of file Kubespray ships
ansible==11.13.0
cryptography==46.0.3 \\
    --hash=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
jinja2>=3.1,<4 ; python_version >= \"3.10\"
netaddr[nicer]~=1.3
--index-url https://pypi.invalid/simple
--pre
-r other.txt
";

/// Named seed inputs of `target` (one of [`crate::TARGETS`]).
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let prefixed = |prefix: u8, name: &str, text: &[u8]| {
        let mut bytes = vec![prefix];
        bytes.extend_from_slice(text);
        (name.to_string(), bytes)
    };
    match target {
        "bundle" => vec![
            ("two-files.tar".into(), bundle_tar(false)),
            ("empty.tar".into(), bundle_tar(true)),
        ],
        "rpm_xml" => vec![
            prefixed(0, "repomd.xml", REPOMD.as_bytes()),
            prefixed(1, "primary.xml", PRIMARY.as_bytes()),
            prefixed(
                1,
                "primary.xml.zst",
                &zstd::encode_all(PRIMARY.as_bytes(), 1).expect("zstd"),
            ),
            prefixed(2, "filelists.xml", FILELISTS.as_bytes()),
        ],
        "pypi_index" => vec![
            prefixed(0, "page.json", JSON_PAGE.as_bytes()),
            prefixed(1, "page.html", HTML_PAGE.as_bytes()),
        ],
        "wheel" => vec![
            prefixed(0, "METADATA", METADATA.as_bytes()),
            prefixed(1, "fuzz_pkg-1.0-py3-none-any.whl", &wheel_zip()),
        ],
        "requirements" => vec![("requirements.txt".into(), REQUIREMENTS.as_bytes().to_vec())],
        "site_toml" => vec![(
            "site.toml".into(),
            installer::site::SiteConfig::example_toml()
                .as_bytes()
                .to_vec(),
        )],
        other => panic!("no fuzz target {other}"),
    }
}

/// The uncompressed tar of a bundle written by the bundle writer: two payload files, or none.
fn bundle_tar(empty: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temp directory");
    let payload: &[(&str, &[u8], FileKind)] = if empty {
        &[]
    } else {
        &[
            (
                "pypi/files/a-1.0-py3-none-any.whl",
                b"not really a wheel",
                FileKind::Wheel,
            ),
            (
                "rpm/rocky/10/BaseOS/x86_64/Packages/a.rpm",
                b"rpm bytes\n",
                FileKind::Rpm,
            ),
        ]
    };
    let mut files = Vec::new();
    let mut sources = Vec::new();
    for (i, (path, bytes, kind)) in payload.iter().enumerate() {
        let source = dir.path().join(format!("src{i}"));
        std::fs::write(&source, bytes).expect("write a seed payload file");
        sources.push(source);
        files.push(FileEntry {
            path: (*path).to_string(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            kind: *kind,
            origin: None,
            in_base: false,
        });
    }
    let mut manifest = BundleManifest {
        format: bundle::FORMAT_VERSION,
        min_installer_version: None,
        bundle_id: String::new(),
        created: time::OffsetDateTime::UNIX_EPOCH,
        tool: ToolInfo {
            name: "fuzz-seeds".into(),
            version: "0".into(),
        },
        release: None,
        arches: vec!["x86_64".into()],
        rpm: None,
        pypi_targets: Vec::new(),
        kubespray: None,
        base: None,
        files,
        totals: Totals::default(),
    };
    bundle::write::finalize(&mut manifest);
    let output = dir.path().join("seed.bundle");
    let opts = bundle::write::WriteOptions {
        threads: 1,
        ..Default::default()
    };
    bundle::write::write_bundle(&output, &manifest, &sources, &opts, &bundle::NoProgress)
        .expect("the seed bundle writes");
    let compressed = std::fs::read(&output).expect("read the seed bundle");
    zstd::decode_all(&compressed[..]).expect("the seed bundle is one zstd stream")
}

/// A wheel holding METADATA, a RECORD and a module.
fn wheel_zip() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, bytes) in [
        ("fuzz_pkg/__init__.py", b"x = 1\n".as_slice()),
        ("fuzz_pkg-1.0.dist-info/METADATA", METADATA.as_bytes()),
        ("fuzz_pkg-1.0.dist-info/RECORD", b"fuzz_pkg/__init__.py,,\n"),
    ] {
        zip.start_file(name, opts).expect("zip entry");
        zip.write_all(bytes).expect("zip data");
    }
    zip.finish().expect("zip finishes").into_inner()
}
