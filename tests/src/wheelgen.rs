//! Generates small but valid distribution files for PyPI tests: wheels (zip files with a
//! module, `METADATA`, `WHEEL` and a `RECORD` that lists every member's hash) and sdists
//! (`.tar.gz` with a `PKG-INFO`), so resolvers and installers read them like real ones.

use std::io::Write;

use base64::Engine;
use sha2::{Digest, Sha256};

/// What goes into a generated distribution's core metadata.
#[derive(Debug, Clone)]
pub struct DistSpec {
    /// Project name as written in METADATA, e.g. "Demo_Pkg".
    pub name: String,
    pub version: String,
    /// Wheel tag triple `python-abi-platform`, e.g. "py3-none-any".
    pub tag: String,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub provides_extra: Vec<String>,
    pub metadata_version: String,
    /// `Dynamic:` fields (sdists, PEP 643).
    pub dynamic: Vec<String>,
    /// Bytes of incompressible filler stored between METADATA and RECORD, so a reader that
    /// fetched the wheel's tail must ask for another range to reach METADATA.
    pub padding: usize,
}

impl DistSpec {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            tag: "py3-none-any".into(),
            requires_dist: Vec::new(),
            requires_python: None,
            provides_extra: Vec::new(),
            metadata_version: "2.1".into(),
            dynamic: Vec::new(),
            padding: 0,
        }
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = tag.into();
        self
    }

    pub fn requires(mut self, requirement: &str) -> Self {
        self.requires_dist.push(requirement.into());
        self
    }

    pub fn requires_python(mut self, specifiers: &str) -> Self {
        self.requires_python = Some(specifiers.into());
        self
    }

    pub fn extra(mut self, extra: &str) -> Self {
        self.provides_extra.push(extra.into());
        self
    }

    pub fn metadata_version(mut self, version: &str) -> Self {
        self.metadata_version = version.into();
        self
    }

    pub fn dynamic(mut self, field: &str) -> Self {
        self.dynamic.push(field.into());
        self
    }

    pub fn padding(mut self, bytes: usize) -> Self {
        self.padding = bytes;
        self
    }

    /// The distribution name as it appears in file names (`-` and `.` become `_`).
    fn file_stem_name(&self) -> String {
        self.name.replace(['-', '.'], "_")
    }

    /// The core metadata text (METADATA / PKG-INFO).
    pub fn metadata(&self) -> String {
        let mut text = format!(
            "Metadata-Version: {}\nName: {}\nVersion: {}\n",
            self.metadata_version, self.name, self.version
        );
        for field in &self.dynamic {
            text.push_str(&format!("Dynamic: {field}\n"));
        }
        if let Some(requires) = &self.requires_python {
            text.push_str(&format!("Requires-Python: {requires}\n"));
        }
        for extra in &self.provides_extra {
            text.push_str(&format!("Provides-Extra: {extra}\n"));
        }
        for requirement in &self.requires_dist {
            text.push_str(&format!("Requires-Dist: {requirement}\n"));
        }
        text.push_str("\nA generated test distribution.\n");
        text
    }

    pub fn wheel_filename(&self) -> String {
        format!(
            "{}-{}-{}.whl",
            self.file_stem_name(),
            self.version,
            self.tag
        )
    }

    pub fn sdist_filename(&self) -> String {
        format!("{}-{}.tar.gz", self.file_stem_name(), self.version)
    }

    /// Builds the wheel; returns its filename and bytes.
    pub fn wheel(&self) -> (String, Vec<u8>) {
        let stem = self.file_stem_name();
        let dist_info = format!("{stem}-{}.dist-info", self.version);
        let module = stem.to_ascii_lowercase();
        let root_is_purelib = self.tag.ends_with("-none-any");
        let mut members: Vec<(String, Vec<u8>)> = vec![(
            format!("{module}/__init__.py"),
            format!("__version__ = \"{}\"\n", self.version).into_bytes(),
        )];
        members.push((
            format!("{dist_info}/METADATA"),
            self.metadata().into_bytes(),
        ));
        members.push((
            format!("{dist_info}/WHEEL"),
            format!(
                "Wheel-Version: 1.0\nGenerator: e2e-wheelgen\nRoot-Is-Purelib: {root_is_purelib}\nTag: {}\n",
                self.tag
            )
            .into_bytes(),
        ));
        if self.padding > 0 {
            members.push((format!("{module}/filler.bin"), filler(self.padding)));
        }
        let mut record = String::new();
        for (path, bytes) in &members {
            let digest =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes));
            record.push_str(&format!("{path},sha256={digest},{}\n", bytes.len()));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        members.push((format!("{dist_info}/RECORD"), record.into_bytes()));

        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (path, bytes) in &members {
            let method = if path.ends_with("filler.bin") {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            };
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(method)
                .last_modified_time(zip::DateTime::default());
            writer
                .start_file(path.as_str(), options)
                .expect("zip member");
            writer.write_all(bytes).expect("zip write");
        }
        (
            self.wheel_filename(),
            writer.finish().expect("zip finish").into_inner(),
        )
    }

    /// Builds a `.tar.gz` sdist holding `PKG-INFO` and a `pyproject.toml`.
    pub fn sdist(&self) -> (String, Vec<u8>) {
        let top = format!("{}-{}", self.file_stem_name(), self.version);
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let pyproject = format!(
            "[project]\nname = \"{}\"\nversion = \"{}\"\n",
            self.name, self.version
        );
        for (path, bytes) in [
            (format!("{top}/PKG-INFO"), self.metadata().into_bytes()),
            (format!("{top}/pyproject.toml"), pyproject.into_bytes()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, &path, bytes.as_slice())
                .expect("tar member");
        }
        let gz = builder.into_inner().expect("tar finish");
        (self.sdist_filename(), gz.finish().expect("gzip finish"))
    }
}

/// Deterministic bytes that do not compress (xorshift).
fn filler(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn wheel_is_a_valid_zip_with_record() {
        let spec = DistSpec::new("Demo-Pkg", "1.0")
            .requires("six>=1")
            .padding(1000);
        let (filename, bytes) = spec.wheel();
        assert_eq!(filename, "Demo_Pkg-1.0-py3-none-any.whl");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut metadata = String::new();
        archive
            .by_name("Demo_Pkg-1.0.dist-info/METADATA")
            .unwrap()
            .read_to_string(&mut metadata)
            .unwrap();
        assert!(metadata.contains("Requires-Dist: six>=1\n"));
        let mut record = String::new();
        archive
            .by_name("Demo_Pkg-1.0.dist-info/RECORD")
            .unwrap()
            .read_to_string(&mut record)
            .unwrap();
        assert_eq!(record.lines().count(), 5);
    }
}
