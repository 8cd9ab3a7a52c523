//! Registre's transport: the GraphQL schema over the application layer
//! (`registre_app`), the warp server that carries it over HTTP and WebSocket,
//! authentication, admission control and metrics; for now also the command
//! line, configuration and demo. Only this crate knows GraphQL and HTTP.

pub mod admission;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
pub mod graphiql;
pub mod graphql;
pub mod metrics;
pub mod server;
