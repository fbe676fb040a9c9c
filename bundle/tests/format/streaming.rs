//! The streaming writer: sources handed over one by one from another thread give the same bytes
//! as the two-pass writer, and sources that end early or hold a wrong file leave no bundle.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use bundle::write::{WriteOptions, finalize, write_bundle, write_bundle_streaming};
use bundle::{BundleError, BundleManifest, NoProgress};

use crate::harness::*;

/// Ten files of assorted sizes (empty, one block, over a copy chunk) and their manifest.
fn inputs(dir: &Path) -> (BundleManifest, Vec<PathBuf>) {
    let mut manifest = base_manifest();
    let mut sources = Vec::new();
    fs_err::create_dir_all(dir).unwrap();
    for i in 0..10u32 {
        let len = [
            0,
            1,
            511,
            512,
            513,
            4096,
            1 << 20,
            (1 << 20) + 7,
            3 << 20,
            70_000,
        ][i as usize];
        let data: Vec<u8> = (0..len).map(|j| (j as u32 ^ (i * 7919)) as u8).collect();
        let path = dir.join(format!("f{i}"));
        fs_err::write(&path, &data).unwrap();
        manifest
            .files
            .push(entry(&format!("repos/x/Packages/p-{i}.rpm"), &data));
        sources.push(path);
    }
    finalize(&mut manifest);
    (manifest, sources)
}

fn leftovers(dir: &Path, prefix: &str) -> Vec<String> {
    fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn sources_fed_one_by_one_give_the_two_pass_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, sources) = inputs(&tmp.path().join("src"));
    let opts = WriteOptions::default();
    let two_pass = tmp.path().join("a.tar.zst");
    write_bundle(&two_pass, &manifest, &sources, &opts, &NoProgress).unwrap();

    let streamed = tmp.path().join("b.tar.zst");
    let (tx, rx) = mpsc::channel();
    let feeder = std::thread::spawn({
        let sources = sources.clone();
        move || {
            for s in sources {
                // Arrive slower than the writer takes them, as downloads do.
                std::thread::sleep(Duration::from_millis(5));
                tx.send(s).unwrap();
            }
        }
    });
    let written = write_bundle_streaming(&streamed, &manifest, rx, &opts, &NoProgress).unwrap();
    feeder.join().unwrap();
    assert_eq!(
        fs_err::read(&two_pass).unwrap(),
        fs_err::read(&streamed).unwrap()
    );
    assert_eq!(written.size, fs_err::metadata(&streamed).unwrap().len());
    let verified = bundle::read::verify(&streamed, None, &NoProgress).unwrap();
    assert_eq!(verified.files, manifest.files);
}

#[test]
fn sources_that_end_early_leave_no_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, sources) = inputs(&tmp.path().join("src"));
    let out = tmp.path().join("b.tar.zst");
    let (tx, rx) = mpsc::channel();
    for s in &sources[..6] {
        tx.send(s.clone()).unwrap();
    }
    drop(tx);
    let err = write_bundle_streaming(&out, &manifest, rx, &WriteOptions::default(), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(&err, BundleError::InvalidInput { reason } if reason.contains("after 6 of 10")),
        "{err}"
    );
    assert!(leftovers(tmp.path(), "b.tar.zst").is_empty());
}

#[test]
fn an_extra_source_or_a_changed_file_leaves_no_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, mut sources) = inputs(&tmp.path().join("src"));
    let out = tmp.path().join("b.tar.zst");
    let opts = WriteOptions::default();
    let mut extra = sources.clone();
    extra.push(sources[0].clone());
    let err = write_bundle_streaming(&out, &manifest, extra, &opts, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("more sources than"), "{err}");
    assert!(leftovers(tmp.path(), "b.tar.zst").is_empty());

    // A file whose bytes differ from its manifest entry (same size) is refused by name.
    let changed = tmp.path().join("changed");
    let mut data = fs_err::read(&sources[6]).unwrap();
    data[100] ^= 1;
    fs_err::write(&changed, &data).unwrap();
    sources[6] = changed;
    let err = write_bundle_streaming(&out, &manifest, sources, &opts, &NoProgress).unwrap_err();
    assert!(
        matches!(&err, BundleError::SourceMismatch { entry, .. } if entry.ends_with("p-6.rpm")),
        "{err}"
    );
    assert!(leftovers(tmp.path(), "b.tar.zst").is_empty());
}

#[test]
fn bytes_in_memory_give_the_same_bundle_and_are_checked_too() {
    use bundle::write::Input;
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, sources) = inputs(&tmp.path().join("src"));
    let opts = WriteOptions::default();
    let from_files = tmp.path().join("a.tar.zst");
    write_bundle(&from_files, &manifest, &sources, &opts, &NoProgress).unwrap();

    // Every other file from memory, half of those with the digest their producer computed.
    let memory = |i: usize, data: Vec<u8>, sha256: Option<String>| Input::Memory {
        data: Arc::new(data),
        path: sources[i].clone(),
        sha256,
    };
    let mixed = |data_for: &dyn Fn(usize) -> Vec<u8>, sha_for: &dyn Fn(usize) -> String| {
        (0..sources.len())
            .map(|i| match i % 4 {
                0 => memory(i, data_for(i), Some(sha_for(i))),
                2 => memory(i, data_for(i), None),
                _ => Input::File(sources[i].clone()),
            })
            .collect::<Vec<_>>()
    };
    let data = |i: usize| fs_err::read(&sources[i]).unwrap();
    let sha = |i: usize| manifest.files[i].sha256.clone();
    let out = tmp.path().join("b.tar.zst");
    write_bundle_streaming(&out, &manifest, mixed(&data, &sha), &opts, &NoProgress).unwrap();
    assert_eq!(
        fs_err::read(&from_files).unwrap(),
        fs_err::read(&out).unwrap()
    );

    // A producer digest that is not the entry's: refused without hashing (file 4).
    let wrong_sha = |i: usize| if i == 4 { "0".repeat(64) } else { sha(i) };
    let bad = tmp.path().join("c.tar.zst");
    let err = write_bundle_streaming(
        &bad,
        &manifest,
        mixed(&data, &wrong_sha),
        &opts,
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(&err, BundleError::SourceMismatch { entry, .. } if entry.ends_with("p-4.rpm")),
        "{err}"
    );
    // Changed bytes without a producer digest: hashed and refused (file 6).
    let changed = |i: usize| {
        let mut d = data(i);
        if i == 6 {
            d[100] ^= 1;
        }
        d
    };
    let err = write_bundle_streaming(&bad, &manifest, mixed(&changed, &sha), &opts, &NoProgress)
        .unwrap_err();
    assert!(
        matches!(&err, BundleError::SourceMismatch { entry, .. } if entry.ends_with("p-6.rpm")),
        "{err}"
    );
    assert!(leftovers(tmp.path(), "c.tar.zst").is_empty());
}
