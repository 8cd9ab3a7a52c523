//! What the transport layer hands to the GraphQL layer for each request or
//! WebSocket connection. The transport (server, auth) produces these; the
//! GraphQL resolvers and the application layer consume them.

use uuid::Uuid;

pub use registre_app::policy::Caller;

/// Set instead of [`Caller`] (the application layer defines it) when a token
/// was presented but refused, so that
/// resolvers can say why (expired, wrong audience...) without the transport
/// failing the whole request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRejection(pub String);

/// One per HTTP request or WebSocket operation: logged, and written as the
/// correlation id of every event the request causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId(pub Uuid);
