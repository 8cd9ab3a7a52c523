//! The `registre` node: its command line (`cli`), its configuration read from
//! flags and the environment (`config`), starting and stopping a node
//! (`node`), and the demo collège (`demo`).

pub mod cli;
pub mod config;
pub mod demo;
pub mod node;
