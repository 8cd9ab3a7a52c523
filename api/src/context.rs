//! What the transport layer hands to the GraphQL layer for each request or
//! WebSocket connection. The transport (server, auth) produces these; the
//! GraphQL resolvers and the application layer consume them.

use uuid::Uuid;

/// An authenticated caller, as proven by a verified JWT. Its `subject` is the
/// `sub` claim, i.e. the `Person.externalId`; `admin` is true when the subject
/// is listed in REGISTRE_ADMIN_SUBJECTS. Absent from the request data when the
/// request carried no token (resolvers then answer UNAUTHENTICATED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub admin: bool,
}

/// Set instead of [`Caller`] when a token was presented but refused, so that
/// resolvers can say why (expired, wrong audience...) without the transport
/// failing the whole request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRejection(pub String);

/// One per HTTP request or WebSocket operation: logged, and written as the
/// correlation id of every event the request causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId(pub Uuid);
