//! `kubespray-upstream`: what the internet holds for one Kubespray version's download list, made
//! up locally, for `scripts/bench-images` and the air-gap lab. Starts Debian's `docker-registry`
//! on 127.0.0.1 and pushes one generated multi-arch image (linux/amd64 + linux/arm64) per image
//! reference, at roughly the real image's size times `--scale`; with `--files DIR`, writes a
//! generated file for each listed file at `DIR/<host>/<path>`. Writes `lists.json` (the shipped
//! JSON form, the original references and URLs, the generated files' sha256) and `images.txt`
//! (`<repository>:<tag>` per line, for skopeo), prints the registry URL, then serves until killed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use e2e::ociimage::large_image;
use e2e::registry::Registry;
use sha2::{Digest, Sha256};

/// Serve Kubespray-sized images from a local registry.
///
/// Example:
///   kubespray-upstream manifests/kubespray/2.31.0.json --out /tmp/bench --scale 0.5
///   kubespray-upstream manifests/kubespray/2.31.0.json --out /tmp/lab --scale 0.01 --files /tmp/lab/files
#[derive(Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    /// A download list (manifests/kubespray/<version>.json): its image references are served.
    lists: PathBuf,
    /// Where to write lists.json (for bundler --download-lists) and images.txt (one
    /// `<name>:<tag>` per line, for skopeo).
    #[arg(long)]
    out: PathBuf,
    /// Multiplies every image's size.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Also write a generated file (64 KiB) for each listed file, at DIR/<host>/<path>.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
}

/// Compressed size per platform (MB) of the real images, roughly, by repository suffix.
fn size_mb(repository: &str) -> f64 {
    let table = [
        ("calico/node", 150.0),
        ("calico/cni", 95.0),
        ("calico/kube-controllers", 35.0),
        ("kube-apiserver", 28.0),
        ("kube-controller-manager", 26.0),
        ("kube-proxy", 30.0),
        ("kube-scheduler", 20.0),
        ("coredns", 22.0),
        ("k8s-dns-node-cache", 30.0),
        ("cluster-proportional-autoscaler", 15.0),
        ("nginx", 20.0),
        ("pause", 0.3),
    ];
    table
        .iter()
        .find(|(suffix, _)| repository.ends_with(suffix))
        .map_or(20.0, |(_, mb)| *mb)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = fs_err::read_to_string(&args.lists)?;
    let lists: serde_json::Value = serde_json::from_str(&text).context("a download list")?;
    fs_err::create_dir_all(&args.out)?;
    // Under --out: this process runs until killed, so the registry is never dropped and its
    // storage would otherwise stay behind in /tmp (about 900 MB for the demo).
    let registry = Registry::start_in(&args.out)?;
    let mut images = Vec::new();
    let mut plain = String::new();
    for (i, image) in lists["images"]
        .as_array()
        .context("images")?
        .iter()
        .enumerate()
    {
        let reference = image["reference"].as_str().context("reference")?;
        let (name, tag) = reference.rsplit_once(':').context("name:tag")?;
        let repository = name.split_once('/').map_or(name, |(_, r)| r);
        // Layers of at most 32 MB, as real images split theirs.
        let bytes = (size_mb(repository) * args.scale * 1e6) as usize;
        let layers = bytes.div_ceil(32_000_000).max(1);
        let pushed = large_image(repository, tag, i as u64 + 1, layers, bytes / layers);
        registry.push(&pushed)?;
        plain.push_str(&format!("{repository}:{tag}\n"));
        images.push(serde_json::json!({ "name": image["name"], "reference": reference }));
    }
    let mut files = Vec::new();
    if let Some(dir) = &args.files {
        for file in lists["files"].as_array().context("files")? {
            let url = file["url"].as_str().context("url")?;
            let path = dir.join(url.split_once("://").context("a URL")?.1);
            // Content from the URL alone: a file listed for both arches is one file.
            let seed = Sha256::digest(url.as_bytes());
            let bytes: Vec<u8> = (0..65536usize).map(|b| (b as u8) ^ seed[b % 32]).collect();
            fs_err::create_dir_all(path.parent().context("a file path")?)?;
            fs_err::write(&path, &bytes)?;
            let mut entry = file.clone();
            entry["sha256"] = hex::encode(Sha256::digest(&bytes)).into();
            files.push(entry);
        }
    }
    let out = serde_json::json!({
        "kubespray": lists["kubespray"],
        "files": files,
        "images": images,
    });
    fs_err::write(
        args.out.join("lists.json"),
        serde_json::to_vec_pretty(&out)?,
    )?;
    fs_err::write(args.out.join("images.txt"), plain)?;
    println!("{}", registry.url());
    // Until the script that started us ends: then `registry` drops, which stops
    // docker-registry and removes its storage.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .context("waiting for SIGTERM")?;
    signals.forever().next();
    drop(registry);
    Ok(())
}
