//! `bundler keygen --out PREFIX`: create the ed25519 key pair that signs bundles
//! (`bundler build --sign PREFIX.key`) and verifies them offline
//! (`installer verify|apply --key PREFIX.pub`).

use std::path::PathBuf;

use anyhow::Context;
use bundle::sign::generate_keypair;
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "Files:\n",
    "  PREFIX.key  secret key, PKCS#8 PEM, mode 0600: keep it on the online host\n",
    "  PREFIX.pub  public key, SubjectPublicKeyInfo PEM: carry it to the admin server\n\n",
    "Examples:\n",
    "  bundler keygen --out /etc/bundler/site\n",
    "  openssl pkey -in /etc/bundler/site.key -pubout   # same public key, standard tools\n\n",
    "Existing files are never overwritten. Exit status: 0 success; 1 failure; 2 usage error."
))]
pub struct KeygenArgs {
    /// Path prefix of the two key files; `.key` and `.pub` are appended.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

pub fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let files = generate_keypair(&args.out).context("creating the signing key pair")?;
    println!(
        "secret key: {} (mode 0600, keep it private)",
        files.secret.display()
    );
    println!("public key: {}", files.public.display());
    println!("fingerprint: {}", files.fingerprint);
    Ok(())
}
