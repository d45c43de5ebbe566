//! The admin API from the command line (`weir reload`, `weir canary`), and where the admin
//! token comes from: `--token-file PATH` or `WEIR_ADMIN_TOKEN`, never an argument, which `ps`
//! shows to every user of the machine.

use std::env::VarError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use weir_telemetry::AdminToken;

/// The environment variable that holds the admin token.
const TOKEN_ENV: &str = "WEIR_ADMIN_TOKEN";

/// Where the admin token comes from.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// A file holding the admin API's bearer token, on one line [default: the token in
    /// $WEIR_ADMIN_TOKEN]. The token itself is never an argument: `ps` shows arguments to every
    /// user.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Refused with a message saying what to use instead.
    #[arg(long, hide = true, value_name = "T")]
    token: Option<String>,
}

impl TokenArgs {
    /// The token from `--token-file`, else from `WEIR_ADMIN_TOKEN`; `None` without either.
    pub fn token(&self) -> Result<Option<AdminToken>> {
        if self.token.is_some() {
            bail!(
                "--token is not accepted: the command line is visible to every user through `ps`; \
                 set {TOKEN_ENV} or pass --token-file PATH instead"
            );
        }
        if let Some(path) = &self.token_file {
            return read_token_file(path).map(Some);
        }
        match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.is_empty() => AdminToken::new(token)
                .map(Some)
                .with_context(|| format!("{TOKEN_ENV} is unusable")),
            Ok(_) | Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(_)) => bail!("{TOKEN_ENV} is unusable: it is not UTF-8"),
        }
    }

    /// The token, which every call to the admin API needs.
    pub fn required(&self) -> Result<AdminToken> {
        self.token()?.with_context(|| {
            format!("the admin API needs its token: set {TOKEN_ENV} or pass --token-file PATH")
        })
    }
}

/// The token in `path`: the file's content without one final line end.
fn read_token_file(path: &Path) -> Result<AdminToken> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    AdminToken::new(token.to_owned())
        .with_context(|| format!("the token file {} is unusable", path.display()))
}

/// One call to a running pipeline's admin API; prints the answer.
pub fn call(admin: &str, method: &str, path: &str, token: &AdminToken) -> Result<ExitCode> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let addr = admin
        .to_socket_addrs()
        .with_context(|| format!("bad admin address {admin:?}"))?
        .next()
        .with_context(|| format!("{admin:?} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the admin listener at {admin}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {admin}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 0\r\n\r\n",
        token.secret()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).unwrap_or("?");
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim();
    if status.starts_with('2') {
        println!("{body}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {admin} answered {status}: {body}");
        Ok(ExitCode::FAILURE)
    }
}
