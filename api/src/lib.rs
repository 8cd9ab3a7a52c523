//! The Registre server: configuration, command line, authentication, the
//! application layer that runs commands against the log, the GraphQL schema
//! and the warp server that carries it. Only this crate knows GraphQL and HTTP.

pub mod admission;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
pub mod graphiql;
pub mod graphql;
pub mod metrics;
pub mod policy;
pub mod server;
