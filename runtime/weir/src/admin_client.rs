//! The admin API from the command line (`weir reload`, `weir canary`), and where the admin
//! token comes from: `--token-file PATH` or `WEIR_ADMIN_TOKEN`, never an argument, which `ps`
//! shows to every user of the machine.

use std::env::VarError;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use weir_telemetry::{AdminToken, TelemetryError};

/// The environment variable that holds the admin token.
const TOKEN_ENV: &str = "WEIR_ADMIN_TOKEN";

/// Why the admin API could not be called. No variant holds the token.
#[derive(Debug, thiserror::Error)]
pub enum AdminCallError {
    #[error(
        "--token is not accepted: the command line is visible to every user through `ps`; set \
         {TOKEN_ENV} or pass --token-file PATH instead"
    )]
    TokenArgument,
    #[error("{TOKEN_ENV} is unusable: {0}")]
    TokenEnv(TelemetryError),
    #[error("{TOKEN_ENV} is unusable: it is not UTF-8")]
    TokenEnvNotUnicode,
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: io::Error },
    #[error("the token file {} is unusable: {source}", path.display())]
    TokenFileUnusable {
        path: PathBuf,
        source: TelemetryError,
    },
    #[error("the admin API needs its token: set {TOKEN_ENV} or pass --token-file PATH")]
    NoToken,
    #[error("bad admin address {admin:?}: {source}")]
    Address { admin: String, source: io::Error },
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
    #[error("cannot reach the admin listener at {admin}: {source}")]
    Connect { admin: String, source: io::Error },
    #[error("the exchange with the admin listener at {admin} failed: {source}")]
    Exchange { admin: String, source: io::Error },
}

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
    pub fn token(&self) -> Result<Option<AdminToken>, AdminCallError> {
        if self.token.is_some() {
            return Err(AdminCallError::TokenArgument);
        }
        if let Some(path) = &self.token_file {
            return read_token_file(path).map(Some);
        }
        match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.is_empty() => AdminToken::new(token)
                .map(Some)
                .map_err(AdminCallError::TokenEnv),
            Ok(_) | Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(_)) => Err(AdminCallError::TokenEnvNotUnicode),
        }
    }

    /// The token, which every call to the admin API needs.
    pub fn required(&self) -> Result<AdminToken, AdminCallError> {
        self.token()?.ok_or(AdminCallError::NoToken)
    }
}

/// The token in `path`: the file's content without one final line end.
fn read_token_file(path: &Path) -> Result<AdminToken, AdminCallError> {
    let text = std::fs::read_to_string(path).map_err(|source| AdminCallError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let token = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    AdminToken::new(token.to_owned()).map_err(|source| AdminCallError::TokenFileUnusable {
        path: path.to_owned(),
        source,
    })
}

/// One call to a running pipeline's admin API; prints the answer.
pub fn call(
    admin: &str,
    method: &str,
    path: &str,
    token: &AdminToken,
) -> Result<ExitCode, AdminCallError> {
    use std::io::Read;
    let mut stream = send(admin, method, path, token, Duration::from_secs(10))?;
    let exchange = |source| AdminCallError::Exchange {
        admin: admin.to_owned(),
        source,
    };
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(exchange)?;
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

/// Connects to the admin listener at `admin` and sends a `method` request of `path`; the
/// answer is read from the stream returned, each read within `read_timeout`.
pub fn send(
    admin: &str,
    method: &str,
    path: &str,
    token: &AdminToken,
    read_timeout: Duration,
) -> Result<TcpStream, AdminCallError> {
    use std::io::Write;
    use std::net::ToSocketAddrs;
    let addr = admin
        .to_socket_addrs()
        .map_err(|source| AdminCallError::Address {
            admin: admin.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| AdminCallError::NoAddress(admin.to_owned()))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|source| {
            AdminCallError::Connect {
                admin: admin.to_owned(),
                source,
            }
        })?;
    let exchange = |source| AdminCallError::Exchange {
        admin: admin.to_owned(),
        source,
    };
    stream
        .set_read_timeout(Some(read_timeout))
        .map_err(exchange)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(exchange)?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {admin}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 0\r\n\r\n",
        token.secret()
    )
    .map_err(exchange)?;
    Ok(stream)
}
