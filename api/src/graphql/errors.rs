//! The contract requires `extensions.code` on every error. Resolvers set it
//! themselves (`ApiError` through `.gql()`); what async-graphql reports on its
//! own (parse and validation errors, depth and complexity limits, a `Date`,
//! `DateTime` or `Int` that does not parse, an unknown field, a wrong argument
//! type) has none. [`add_codes`], run by the schema's extension (`graphql::Guard`) outermost, adds one to every error of
//! every response, queries and subscriptions alike, and never replaces a code
//! already set:
//!
//! - `INVALID_INPUT` for an error about the request itself: any error without
//!   a path (it was raised before execution), and errors raised while an
//!   argument was being read (async-graphql's "Failed to parse ...",
//!   "Invalid value for argument ...", "Expected input type ..." messages);
//! - `INTERNAL` for an error raised while resolving a field that carries no
//!   code: every resolver answers coded errors, so an uncoded one is ours.

use async_graphql::Response;
use registre_app::ApiError;

/// An application error as a GraphQL error, carrying `extensions.code` (and
/// `field` for INVALID_INPUT, `retryAfter` for RATE_LIMITED/UNAVAILABLE).
pub fn to_gql(error: &ApiError) -> async_graphql::Error {
    use async_graphql::ErrorExtensions as _;
    async_graphql::Error::new(error.to_string()).extend_with(|_, ext| {
        ext.set("code", error.code());
        if let ApiError::InvalidInput { field, .. } = error {
            ext.set("field", field.as_str());
        }
        if let ApiError::RetryLater {
            retry_after_secs, ..
        } = error
        {
            ext.set("retryAfter", *retry_after_secs);
        }
        // cluster (issue 12)
        if let Some(partition) = error.partition() {
            ext.set("partition", partition.as_str());
        }
        if matches!(error, ApiError::Elsewhere(_)) {
            ext.set(crate::server::FORWARD_EXTENSION, true);
        }
    })
}

/// Turns an [`ApiError`] into a GraphQL error carrying `extensions.code`.
/// (A plain `?` would go through async-graphql's `Display` conversion and lose
/// the code, so resolvers call `.gql()`.)
pub trait GqlResult<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for Result<T, ApiError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| to_gql(&e))
    }
}

/// Messages async-graphql gives an input value that does not parse.
const INPUT_MESSAGES: &[&str] = &[
    "Failed to parse ",
    "Invalid value for ",
    "Expected input type ",
];

/// The code an uncoded error gets (see the module doc).
pub fn code_for(message: &str, raised_in_a_field: bool) -> &'static str {
    if !raised_in_a_field || INPUT_MESSAGES.iter().any(|m| message.starts_with(m)) {
        "INVALID_INPUT"
    } else {
        "INTERNAL"
    }
}

/// Sets `extensions.code` on every error of `response` that has none.
pub fn add_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        let coded = error
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if coded {
            continue;
        }
        let code = code_for(&error.message, !error.path.is_empty());
        if code == "INTERNAL" {
            tracing::error!(message = %error.message, path = ?error.path, "an error without a code reached a response");
        }
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    response
}
