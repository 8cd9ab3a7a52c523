//! The domain's rejection type. A rejection is an answer, not a failure: it is
//! distinct from store failures and concurrency conflicts, which live in the
//! store crate, so that the API maps each to its own `extensions.code`.
//! "Not allowed" is none of them: who may run a command is the API policy's
//! business, decided before the domain is asked.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    /// The command is malformed or breaks an invariant (API: INVALID_INPUT).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// A referenced thing does not exist (API: NOT_FOUND).
    #[error("{0} not found")]
    NotFound(String),
    /// The command contradicts the current state, e.g. a second grade for the
    /// same student and assessment (API: CONFLICT).
    #[error("conflict: {0}")]
    Conflict(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
