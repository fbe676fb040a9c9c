//! Fuzz targets: every parser that reads bytes someone else wrote. A target takes arbitrary
//! bytes and must return (an error is fine) without panicking, hanging or allocating without
//! bound. The AFL binaries in `src/bin` call these; `tests/regressions.rs` replays every input
//! kept under `regressions/<target>/`, so a fault the fuzzer found stays fixed in `cargo test`.
//! [`seeds`] gives each target a few valid inputs to start from.

use std::collections::HashSet;
use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

mod seeds;

pub use seeds::seeds;

/// A fuzz target: takes any bytes, returns only if it handled them.
pub type Target = fn(&[u8]);

/// The targets by name, as scripts/fuzz and the regression test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("bundle", bundle),
    ("rpm_xml", rpm_xml),
    ("pypi_index", pypi_index),
    ("wheel", wheel),
    ("requirements", requirements),
    ("site_toml", site_toml),
];

/// The bundle reader (tar entries, manifest JSON and its rules, signature entry, end of
/// archive). The input is the uncompressed tar: compressing it here keeps the fuzzer's
/// mutations in the format we parse instead of in zstd's frame checks. What verifies is also
/// extracted, to hold the path rules to a real directory.
pub fn bundle(data: &[u8]) {
    let dir = scratch();
    let file = dir.join("fuzz.bundle");
    let compressed = zstd::encode_all(data, 1).expect("zstd compresses from memory");
    std::fs::write(&file, compressed).expect("scratch directory is writable");
    let reporter = &bundle::NoProgress;
    let _ = bundle::read::read_manifest(&file);
    if bundle::read::verify(&file, None, reporter).is_ok() {
        let dest = dir.join("extracted");
        let _ = std::fs::remove_dir_all(&dest);
        let _ = bundle::read::extract(&file, &dest, None, reporter);
        let _ = std::fs::remove_dir_all(&dest);
    }
    if data.len() >= bundle::volume::TRAILER_LEN as usize {
        let tail = &data[data.len() - bundle::volume::TRAILER_LEN as usize..];
        let _ = bundle::volume::VolumeTrailer::parse(tail);
    }
    let _ = bundle::read::parse_manifest(Path::new("fuzz.bundle"), data);
}

/// repomd.xml, primary.xml and filelists.xml as the bundler reads them from a mirror; the
/// first byte picks which, the rest goes through the magic-byte decompressor first.
pub fn rpm_xml(data: &[u8]) {
    use bundler::rpm::{filelists, primary, repomd};
    let Some((&which, xml)) = data.split_first() else {
        return;
    };
    let url = "https://mirror.invalid/repodata/fuzz.xml";
    match which % 3 {
        0 => {
            let _ = repomd::parse_repomd(xml, url);
        }
        1 => {
            if let Ok(reader) = repomd::decompress(xml)
                && let Ok(packages) = primary::parse_primary(reader, url)
            {
                for package in &packages {
                    let _ = package.nevra();
                }
            }
        }
        _ => {
            let mut packages = primary::parse_primary(seeds::PRIMARY.as_bytes(), url)
                .expect("the seed primary.xml parses");
            let wanted: HashSet<String> = ["/usr/share/doc/a/README", "/usr/libexec/a/helper"]
                .into_iter()
                .map(str::to_string)
                .collect();
            if let Ok(reader) = repomd::decompress(xml) {
                let _ = filelists::add_wanted_files(reader, url, &mut packages, &wanted);
            }
        }
    }
}

/// A PEP 691 JSON (first byte even) or PEP 503 HTML (odd) project page, then the filename of
/// every file it lists, as the resolver reads them.
pub fn pypi_index(data: &[u8]) {
    use bundler::pypi::index::parse_project_page;
    use bundler::pypi::metadata::DistFilename;
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let content_type = if which % 2 == 0 {
        "application/vnd.pypi.simple.v1+json"
    } else {
        "text/html"
    };
    let name: pep508_rs::PackageName = "fuzz-pkg".parse().expect("a valid project name");
    let url = url::Url::parse("https://pypi.invalid/simple/fuzz-pkg/").expect("a valid URL");
    if let Ok(page) = parse_project_page(&name, url, content_type, body) {
        for file in &page.files {
            let _ = DistFilename::parse(&file.filename, &name);
        }
    }
}

/// Wheel core metadata: the METADATA text itself (first byte even), or a whole wheel (odd)
/// from which both the bundler and the installer take METADATA.
pub fn wheel(data: &[u8]) {
    use bundler::pypi::metadata::{CoreMetadata, wheel_metadata};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(metadata) = CoreMetadata::parse(rest) {
            let _ = metadata.dependencies_are_static();
        }
        return;
    }
    if let Ok(bytes) = wheel_metadata(Cursor::new(rest)) {
        let _ = CoreMetadata::parse(&bytes);
    }
    let _ = installer::simple_index::wheel_metadata_from(Cursor::new(rest), Path::new("fuzz.whl"));
}

/// A requirements file as `--requirements` reads it (`-r`/`-c` refused without a directory).
pub fn requirements(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = bundler::pypi::RequirementSet::from_text(text, "fuzz.txt", None) {
        let _ = set.lines();
    }
}

/// The site file, read and validated as every installer command does.
pub fn site_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(site) =
        installer::site::SiteConfig::parse(Some((Path::new("site.toml"), text)), &[], &[])
    {
        let _ = site.http_base();
        let _ = site.nodes().count();
    }
}

/// A directory for the bundle target's files, one per process, removed at exit by the OS's
/// temp cleaning at worst (AFL kills the process rather than letting it return).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("koi-fuzz-")
            .tempdir()
            .expect("a temp directory")
    })
    .path()
}
