//! Registre's transport: the GraphQL schema over the application layer
//! (`registre_app`), the warp server that carries it over HTTP and WebSocket,
//! authentication, admission control and metrics. Only this crate knows
//! GraphQL and HTTP; the `registre` crate starts it.

pub mod admission;
pub mod auth;
// cluster (issue 12)
pub mod cluster;
pub mod config;
pub mod context;
pub mod encoding;
pub mod graphiql;
pub mod graphql;
pub mod metrics;
// pages (issue 18)
pub mod pages;
pub mod server;
