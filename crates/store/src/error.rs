use thiserror::Error;

/// Everything that can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    /// A row with the same key exists already.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The row changed since it was read (its revision moved on): re-read and decide again.
    #[error("the record changed concurrently")]
    Conflict,
    /// The operation was finished, or claimed again by another worker, since this worker claimed it.
    #[error("operation {0} is no longer held by this worker")]
    StaleOperation(String),
    /// Stored data that does not decode: a bug or a tampered database.
    #[error("corrupt stored value in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("blob {sha256} is missing")]
    BlobMissing { sha256: String },
    #[error(transparent)]
    Unzip(#[from] crate::unzip::UnzipError),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// True when a database error is a unique-key violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
