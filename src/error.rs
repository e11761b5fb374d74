//! One error type for the whole crate: a message, optionally wrapped in the
//! context of what was being done ("attach eth0 to db_net: create link: ...").

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
    /// The errno behind the error, when a system call or the kernel gave one.
    errno: Option<i32>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error { msg: msg.into(), errno: None }
    }

    pub fn with_errno(msg: impl Into<String>, errno: i32) -> Self {
        Error { msg: msg.into(), errno: Some(errno) }
    }

    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// Prefix the message with what was being done, keeping the errno.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { msg: format!("{what}: {}", self.msg), errno: self.errno }
    }

    /// Several errors reported at once (teardown keeps going and reports all).
    pub fn join(errors: Vec<Error>) -> Option<Self> {
        match errors.len() {
            0 => None,
            1 => errors.into_iter().next(),
            _ => Some(Error::new(
                errors.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>().join("; "),
            )),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let errno = e.raw_os_error();
        Error { msg: e.to_string(), errno }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error { msg: e.desc().to_string(), errno: Some(e as i32) }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(e.to_string())
    }
}

/// `.context("what")` on any result whose error converts into [`Error`].
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

/// Return early with a formatted [`Error`].
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::new(format!($($arg)*))) };
}
