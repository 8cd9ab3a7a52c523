//! The API's error type: one variant per `extensions.code` of the contract.
//! Domain rejections and store failures are mapped here, once; a backend's text
//! is logged, never returned.

use registre_domain::DomainError;
use registre_store::{Partition, StoreError};
use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ApiError {
    /// No token, or a token that was refused (the reason is safe to show).
    #[error("{0}")]
    Unauthenticated(String),
    /// The viewer may not do or see this. Says nothing of existence.
    #[error("{0}")]
    Forbidden(String),
    /// Something the viewer could see, had it existed.
    #[error("{0} not found")]
    NotFound(String),
    /// A malformed argument; `field` names the input field.
    #[error("invalid {field}: {message}")]
    InvalidInput { field: String, message: String },
    /// The command contradicts the current state, or lost a race too often, or
    /// reused an idempotency key with another command.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RateLimited(String),
    /// A per-person limit was reached (see `app::limits`): the message says
    /// when to retry, and `extensions.retryAfter` gives it in whole seconds.
    #[error("{message}")]
    RetryLater {
        message: String,
        retry_after_secs: u64,
    },
    /// The node cannot serve this now (e.g. the access log cannot keep up,
    /// and a read that cannot be logged is not served); retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of ours; details are in the logs under the request id.
    #[error("{0}")]
    Internal(String),
    // cluster (issue 12)
    /// The request needs an establishment this node does not fold: nothing
    /// was decided or written here. The transport forwards the whole
    /// request to a live node that holds it; a client only sees it (as
    /// UNAVAILABLE, the partition named) where that is not possible.
    #[error("establishment {0} is served by another node; send the request there")]
    Elsewhere(Partition),
    /// No live node folds this establishment now (its nodes are down):
    /// never a partial answer presented as whole. Retrying later may work.
    #[error("no live node serves establishment {0} now; retry later")]
    PartitionUnavailable(Partition),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::InvalidInput { .. } => "INVALID_INPUT",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::RateLimited(_) | ApiError::RetryLater { .. } => "RATE_LIMITED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
            ApiError::Elsewhere(_) | ApiError::PartitionUnavailable(_) => "UNAVAILABLE",
        }
    }

    /// The partition a cluster refusal names (`extensions.partition`).
    pub fn partition(&self) -> Option<&Partition> {
        match self {
            ApiError::Elsewhere(p) | ApiError::PartitionUnavailable(p) => Some(p),
            _ => None,
        }
    }

    pub fn forbidden() -> Self {
        ApiError::Forbidden("not allowed for this viewer".into())
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An id argument that is not a UUID.
    pub fn bad_id(field: &str) -> Self {
        Self::invalid(field, "not a UUID")
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { field, message } => ApiError::InvalidInput { field, message },
            DomainError::NotFound(m) => ApiError::NotFound(m),
            DomainError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => {
                ApiError::Conflict("the record changed concurrently too many times; retry".into())
            }
            StoreError::IdempotencyKeyReused(_) => ApiError::Conflict(
                "this idempotency key was already used for a different request".into(),
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::Internal("storage failure; see the server logs".into())
            }
        }
    }
}
