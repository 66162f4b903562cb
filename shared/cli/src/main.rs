//! `vaultx`: the VaultX command-line client.
//!
//! ```text
//! vaultx register EMAIL            vaultx login EMAIL          (password from VAULTX_PASSWORD or a prompt)
//! vaultx put FILE [--parallel 4]   uploads in chunks, resumes a broken upload of the same file
//! vaultx get ID -o FILE            downloads through a signed URL
//! vaultx ls | vaultx rm ID | vaultx url ID [--expires 3600]
//! ```
//!
//! The server URL and access token live in `$XDG_CONFIG_HOME/vaultx/config.json` (or
//! `~/.config/vaultx/`); `--url` / `VAULTX_URL` override the server. Exit codes: 0 success,
//! 1 the server or the network said no, 2 bad usage, 3 an upload stopped early (`--max-chunks`).
//!
//! # In detail
//!
//! In detail (depends on ureq, clap, indicatif): `vaultx`, the command-line client: parallel
//! resumable `put`, `get` through signed URLs.

mod api;
mod transfer;

use api::{Api, CliError};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vaultx", version, about = "VaultX object store client")]
struct Cli {
    /// The VaultX server, e.g. http://127.0.0.1:3000 (remembered after login).
    #[arg(long, env = "VAULTX_URL", global = true)]
    url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account.
    Register { email: String },
    /// Sign in and remember the access token.
    Login { email: String },
    /// Upload a file in chunks, several at a time; re-running resumes a broken upload.
    Put {
        file: PathBuf,
        /// Chunks uploaded at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Name to store (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Send at most this many chunks now and stop (exit 3); run again to send the rest.
        #[arg(long)]
        max_chunks: Option<usize>,
        /// Store the file compressed (DEFLATE, by a background job) where that saves space.
        #[arg(long)]
        compress: bool,
        #[arg(long)]
        quiet: bool,
    },
    /// Print a file's SHA-256 and CRC-64/NVME, as `put` declares them (no server involved).
    Checksum { file: PathBuf },
    /// Download a file through a signed URL.
    Get {
        id: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        quiet: bool,
    },
    /// List your files.
    Ls,
    /// Delete a file.
    Rm { id: String },
    /// Print a temporary download URL.
    Url {
        id: String,
        /// Lifetime in seconds (at most 7 days).
        #[arg(long, default_value_t = 3600)]
        expires: u64,
    },
}

fn password() -> Result<String, CliError> {
    if let Ok(p) = std::env::var("VAULTX_PASSWORD") {
        return Ok(p);
    }
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| CliError::Usage(format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Checksum { file } = &cli.command {
        let (sha, crc) = transfer::checksums_of(file)?;
        println!("sha256:{sha}  crc64nvme:{crc}  {}", file.display());
        return Ok(());
    }
    let mut config = api::Config::load();
    if let Some(url) = &cli.url {
        config.url = Some(url.trim_end_matches('/').to_owned());
    }
    let api = Api::new(&config)?;
    match cli.command {
        Command::Register { email } => {
            let account = api.register(&email, &password()?)?;
            println!("registered {} ({})", account["email"].as_str().unwrap_or(&email), account["id"].as_str().unwrap_or("?"));
        }
        Command::Login { email } => {
            config.token = Some(api.login(&email, &password()?)?);
            config.save()?;
            println!("signed in as {email}");
        }
        Command::Put { file, parallel, name, max_chunks, compress, quiet } => {
            let id = transfer::put(&api, &file, name, parallel.max(1), max_chunks, compress, quiet)?;
            println!("{id}");
        }
        Command::Get { id, output, quiet } => transfer::get(&api, &id, &output, quiet)?,
        Command::Checksum { .. } => unreachable!("answered above, without a server"),
        Command::Ls => {
            let mut page = 1;
            println!("{:<36}  {:<9}  {:>12}  NAME", "ID", "STATUS", "SIZE");
            loop {
                let listing = api.list(page)?;
                let items = listing["items"].as_array().cloned().unwrap_or_default();
                for f in &items {
                    println!(
                        "{:<36}  {:<9}  {:>12}  {}",
                        f["id"].as_str().unwrap_or(""),
                        f["status"].as_str().unwrap_or(""),
                        f["size"].as_u64().unwrap_or(0),
                        f["name"].as_str().unwrap_or("")
                    );
                }
                if items.is_empty() || page * api::PAGE >= listing["total"].as_u64().unwrap_or(0) {
                    break;
                }
                page += 1;
            }
        }
        Command::Rm { id } => {
            api.delete(&id)?;
            println!("deleted {id}");
        }
        Command::Url { id, expires } => println!("{}", api.signed_url(&id, expires)?),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vaultx: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
